//! Words from tokens (faster-whisper's `split_to_word_tokens`).

use crate::tokenizer::Tokenizer;

/// Python's `string.punctuation`.
const ASCII_PUNCTUATION: &str = r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##;
/// Languages whose words are not separated by spaces: split at every complete character.
const NO_SPACE_LANGUAGES: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];

/// faster-whisper `Tokenizer.split_to_word_tokens`: words on spaces and punctuation, or on
/// every complete character for languages written without spaces (zh, ja, th, lo, my, yue).
/// Tokens from `<|endoftext|>` up decode to nothing (faster-whisper decodes with the Hugging Face
/// tokenizer, which skips special tokens).
pub fn split_to_word_tokens(tokenizer: &Tokenizer, language: &str, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
    if NO_SPACE_LANGUAGES.contains(&language) {
        split_tokens_on_unicode(tokenizer, tokens)
    } else {
        split_tokens_on_spaces(tokenizer, tokens)
    }
}

/// Text of `tokens` as faster-whisper's `decode_with_timestamps` gives it for text and special
/// tokens: the tokens' bytes as UTF-8, invalid sequences replaced by U+FFFD.
fn decode_lossy(tokenizer: &Tokenizer, tokens: &[u32]) -> String {
    let eot = tokenizer.special.eot;
    let bytes: Vec<u8> =
        tokens.iter().filter(|t| **t < eot).flat_map(|t| tokenizer.token_bytes(*t).iter().copied()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// faster-whisper `split_tokens_on_unicode`: a word ends after every token at which the decoded
/// text so far has no replacement character, other than ones the whole text has there too (a
/// character split over tokens is kept whole; invalid bytes in the text do not block forever).
pub fn split_tokens_on_unicode(tokenizer: &Tokenizer, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
    const REPLACEMENT: char = '\u{FFFD}';
    let full: Vec<char> = decode_lossy(tokenizer, tokens).chars().collect();
    let mut words = Vec::new();
    let mut word_tokens = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut offset = 0; // characters of `full` already given to words
    for &token in tokens {
        current.push(token);
        let decoded = decode_lossy(tokenizer, &current);
        let bad = decoded.chars().position(|c| c == REPLACEMENT).map(|i| i + offset);
        let complete = match bad {
            None => true,
            Some(i) => i < full.len() && full[i] == REPLACEMENT,
        };
        if complete {
            offset += decoded.chars().count();
            words.push(decoded);
            word_tokens.push(std::mem::take(&mut current));
        }
    }
    (words, word_tokens)
}

/// faster-whisper `split_tokens_on_spaces`: the pieces of `split_tokens_on_unicode`, joined onto
/// the previous word unless they start with a space, are punctuation (Python's
/// `piece.strip() in string.punctuation`, a substring test) or are special tokens.
pub fn split_tokens_on_spaces(tokenizer: &Tokenizer, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
    let (pieces, piece_tokens) = split_tokens_on_unicode(tokenizer, tokens);
    let eot = tokenizer.special.eot;
    let mut words: Vec<String> = Vec::new();
    let mut word_tokens: Vec<Vec<u32>> = Vec::new();
    for (piece, toks) in pieces.into_iter().zip(piece_tokens) {
        let special = toks[0] >= eot;
        let with_space = piece.starts_with(' ');
        let punctuation = ASCII_PUNCTUATION.contains(py_strip(&piece));
        if special || with_space || punctuation || words.is_empty() {
            words.push(piece);
            word_tokens.push(toks);
        } else {
            words.last_mut().unwrap().push_str(&piece);
            word_tokens.last_mut().unwrap().extend(toks);
        }
    }
    (words, word_tokens)
}

/// Python's `str.strip()` (Unicode whitespace plus the ASCII separators 0x1C–0x1F).
pub(super) fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}
