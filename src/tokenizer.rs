//! Whisper's byte-level BPE tokenizer, built from the `vocab` and `merges` that the model's
//! `meta` graph carries (see models/README.md), so the component reads no files.
//!
//! Tokens are stored in GPT-2's "byte-level" form: every byte is mapped to a printable
//! character (`bytes_to_unicode`), so a token that holds half of a multi-byte UTF-8 character
//! is still a string. Decoding maps the characters back to bytes and only then to UTF-8, which
//! is what keeps Japanese or accented Latin split across tokens intact.

use std::collections::HashMap;

use crate::model::SpecialTokens;

/// GPT-2's byte → printable char table: printable Latin-1 bytes map to themselves, the other
/// 68 bytes to U+0100 onwards, in byte order.
fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next_extra = 256u32;
    for b in 0..=255u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            let c = char::from_u32(next_extra).unwrap();
            next_extra += 1;
            c
        };
    }
    table
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerError {
    VocabSize { expected: usize, found: usize },
    BadMerge(usize),
}

impl std::fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::VocabSize { expected, found } => {
                write!(f, "vocabulary has {found} tokens, the model expects {expected}")
            }
            Self::BadMerge(line) => write!(f, "BPE merge on line {line} is not a pair"),
        }
    }
}

pub struct Tokenizer {
    /// All token bytes back to back; token `i` is `bytes[offsets[i]..offsets[i + 1]]`.
    /// Built eagerly (decoding needs it on every request); one buffer, not 51k allocations.
    bytes: Vec<u8>,
    offsets: Vec<u32>,
    /// The raw vocab and merges; the encoder tables are built from them only when a request
    /// needs encoding (prompts), since each request runs in a fresh instance.
    vocab_text: String,
    merges_text: String,
    encoder: std::sync::OnceLock<Encoder>,
    byte_chars: [char; 256],
    pub special: SpecialTokens,
}

struct Encoder {
    /// Byte-level token string → id.
    ids: HashMap<String, u32>,
    /// (left, right) → merge rank; lower merges first.
    merge_ranks: HashMap<(String, String), usize>,
}

impl Tokenizer {
    /// `vocab`: tokens in id order joined by `\n`; `merges`: `left right` per line, in rank order.
    pub fn new(
        vocab: &[u8],
        merges: &[u8],
        special: SpecialTokens,
        n_vocab: usize,
    ) -> Result<Self, TokenizerError> {
        let byte_chars = byte_to_char_table();
        let mut char_bytes = [None; 512];
        for (b, c) in byte_chars.iter().enumerate() {
            char_bytes[*c as usize] = Some(b as u8);
        }
        let vocab_text = String::from_utf8_lossy(vocab).into_owned();
        let mut bytes = Vec::with_capacity(vocab_text.len());
        let mut offsets = Vec::with_capacity(n_vocab + 1);
        offsets.push(0);
        for token in vocab_text.split('\n') {
            // Specials (`<|en|>`) are plain ASCII and map to themselves; anything outside the
            // table (never in a real vocab) is kept as its UTF-8 bytes rather than dropped.
            for c in token.chars() {
                match char_bytes.get(c as usize).copied().flatten() {
                    Some(b) => bytes.push(b),
                    None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            offsets.push(bytes.len() as u32);
        }
        let found = offsets.len() - 1;
        if found != n_vocab {
            return Err(TokenizerError::VocabSize { expected: n_vocab, found });
        }
        let merges_text = String::from_utf8_lossy(merges).into_owned();
        if let Some(line) = merges_text
            .lines()
            .position(|l| !l.is_empty() && !l.starts_with("#version") && !l.contains(' '))
        {
            return Err(TokenizerError::BadMerge(line + 1));
        }
        Ok(Self {
            bytes,
            offsets,
            vocab_text,
            merges_text,
            encoder: std::sync::OnceLock::new(),
            byte_chars,
            special,
        })
    }

    fn encoder(&self) -> &Encoder {
        self.encoder.get_or_init(|| {
            let ids = self.vocab_text.split('\n').enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
            let merge_ranks = self
                .merges_text
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with("#version"))
                .filter_map(|l| l.split_once(' '))
                .enumerate()
                .map(|(rank, (l, r))| ((l.to_string(), r.to_string()), rank))
                .collect();
            Encoder { ids, merge_ranks }
        })
    }

    pub fn n_vocab(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Text of the ordinary (non-special, non-timestamp) tokens among `tokens`.
    pub fn decode(&self, tokens: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &t in tokens {
            if t < self.special.eot {
                bytes.extend_from_slice(self.token_bytes(t));
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Raw bytes of one token (specials included): word timestamps group tokens into words by
    /// these, since a token may hold part of a UTF-8 character.
    pub fn token_bytes(&self, token: u32) -> &[u8] {
        let i = token as usize;
        if i + 1 >= self.offsets.len() {
            return &[];
        }
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// The id of a literal token string such as `<|en|>` (byte-level form).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.encoder().ids.get(token).copied()
    }

    /// Byte-level BPE encoding of ordinary text (no special tokens are recognised in it).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let enc = self.encoder();
        let mut out = Vec::new();
        for piece in pretokenize(text) {
            let symbols: Vec<String> =
                piece.bytes().map(|b| self.byte_chars[b as usize].to_string()).collect();
            for sym in bpe(&enc.merge_ranks, symbols) {
                match enc.ids.get(&sym) {
                    Some(id) => out.push(*id),
                    // Not in the vocab as a whole (cannot happen with a complete merge table):
                    // fall back to its single-byte tokens, which always exist.
                    None => out.extend(sym.chars().filter_map(|c| enc.ids.get(&c.to_string()))),
                }
            }
        }
        out
    }

}

/// Applies merges, lowest rank first, until none applies.
fn bpe(ranks: &HashMap<(String, String), usize>, mut symbols: Vec<String>) -> Vec<String> {
    loop {
        let best = symbols
            .windows(2)
            .enumerate()
            .filter_map(|(i, w)| ranks.get(&(w[0].clone(), w[1].clone())).map(|rank| (*rank, i)))
            .min();
        let Some((_, i)) = best else { return symbols };
        let right = symbols.remove(i + 1);
        symbols[i].push_str(&right);
    }
}

/// Splits text the way GPT-2's pattern does:
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
/// Hand-written because the `regex` crate has no look-ahead (`\s+(?!\S)`).
pub fn pretokenize(text: &str) -> Vec<&str> {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Letter,
        Number,
        Space,
        Other,
    }
    fn class(c: char) -> Class {
        if c.is_alphabetic() {
            Class::Letter
        } else if c.is_numeric() {
            Class::Number
        } else if c.is_whitespace() {
            Class::Space
        } else {
            Class::Other
        }
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| if i < chars.len() { chars[i].0 } else { text.len() };
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let (_, c) = chars[i];
        // contractions
        if c == '\'' {
            let rest = &text[chars[i].0..];
            if let Some(len) = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
                .iter()
                .find(|s| rest.starts_with(**s))
                .map(|s| s.chars().count())
            {
                i += len;
                pieces.push(&text[chars[start].0..end_of(i)]);
                continue;
            }
        }
        // optional single leading space followed by a letter/number/other run
        let mut j = i;
        if c == ' ' && j + 1 < chars.len() && class(chars[j + 1].1) != Class::Space {
            j += 1;
        }
        let k = class(chars[j].1);
        if k != Class::Space {
            let mut m = j + 1;
            while m < chars.len() && class(chars[m].1) == k {
                m += 1;
            }
            i = m;
            pieces.push(&text[chars[start].0..end_of(i)]);
            continue;
        }
        // whitespace run: `\s+(?!\S)` leaves the last space to prefix the next word
        let mut m = i;
        while m < chars.len() && class(chars[m].1) == Class::Space {
            m += 1;
        }
        if m < chars.len() && m - i > 1 {
            m -= 1;
        }
        i = m;
        pieces.push(&text[chars[start].0..end_of(i)]);
    }
    pieces
}

/// Whisper's languages: code and English name, in token order (`<|en|>` is the first
/// language token). Names are what OpenAI's `verbose_json` reports.
pub const LANGUAGES: [(&str, &str); 100] = [
    ("en", "english"), ("zh", "chinese"), ("de", "german"), ("es", "spanish"), ("ru", "russian"),
    ("ko", "korean"), ("fr", "french"), ("ja", "japanese"), ("pt", "portuguese"), ("tr", "turkish"),
    ("pl", "polish"), ("ca", "catalan"), ("nl", "dutch"), ("ar", "arabic"), ("sv", "swedish"),
    ("it", "italian"), ("id", "indonesian"), ("hi", "hindi"), ("fi", "finnish"), ("vi", "vietnamese"),
    ("he", "hebrew"), ("uk", "ukrainian"), ("el", "greek"), ("ms", "malay"), ("cs", "czech"),
    ("ro", "romanian"), ("da", "danish"), ("hu", "hungarian"), ("ta", "tamil"), ("no", "norwegian"),
    ("th", "thai"), ("ur", "urdu"), ("hr", "croatian"), ("bg", "bulgarian"), ("lt", "lithuanian"),
    ("la", "latin"), ("mi", "maori"), ("ml", "malayalam"), ("cy", "welsh"), ("sk", "slovak"),
    ("te", "telugu"), ("fa", "persian"), ("lv", "latvian"), ("bn", "bengali"), ("sr", "serbian"),
    ("az", "azerbaijani"), ("sl", "slovenian"), ("kn", "kannada"), ("et", "estonian"), ("mk", "macedonian"),
    ("br", "breton"), ("eu", "basque"), ("is", "icelandic"), ("hy", "armenian"), ("ne", "nepali"),
    ("mn", "mongolian"), ("bs", "bosnian"), ("kk", "kazakh"), ("sq", "albanian"), ("sw", "swahili"),
    ("gl", "galician"), ("mr", "marathi"), ("pa", "punjabi"), ("si", "sinhala"), ("km", "khmer"),
    ("sn", "shona"), ("yo", "yoruba"), ("so", "somali"), ("af", "afrikaans"), ("oc", "occitan"),
    ("ka", "georgian"), ("be", "belarusian"), ("tg", "tajik"), ("sd", "sindhi"), ("gu", "gujarati"),
    ("am", "amharic"), ("yi", "yiddish"), ("lo", "lao"), ("uz", "uzbek"), ("fo", "faroese"),
    ("ht", "haitian creole"), ("ps", "pashto"), ("tk", "turkmen"), ("nn", "nynorsk"), ("mt", "maltese"),
    ("sa", "sanskrit"), ("lb", "luxembourgish"), ("my", "myanmar"), ("bo", "tibetan"), ("tl", "tagalog"),
    ("mg", "malagasy"), ("as", "assamese"), ("tt", "tatar"), ("haw", "hawaiian"), ("ln", "lingala"),
    ("ha", "hausa"), ("ba", "bashkir"), ("jw", "javanese"), ("su", "sundanese"), ("yue", "cantonese"),
];

/// English name of a language code (`"de"` → `"german"`).
pub fn language_name(code: &str) -> Option<&'static str> {
    LANGUAGES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// Accepts a code (`de`) or an English name (`German`), as Whisper's CLI does.
pub fn language_code(code_or_name: &str) -> Option<&'static str> {
    let wanted = code_or_name.trim().to_ascii_lowercase();
    LANGUAGES.iter().find(|(c, n)| *c == wanted || *n == wanted).map(|(c, _)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn special() -> SpecialTokens {
        SpecialTokens {
            eot: 6,
            sot: 7,
            translate: 8,
            transcribe: 9,
            sot_lm: 10,
            sot_prev: 11,
            no_speech: 12,
            no_timestamps: 13,
            timestamp_begin: 14,
        }
    }

    #[test]
    fn pretokenize_matches_gpt2_pattern() {
        assert_eq!(pretokenize("Hello world"), vec!["Hello", " world"]);
        assert_eq!(pretokenize("it's 42!"), vec!["it", "'s", " 42", "!"]);
        assert_eq!(pretokenize("a  b"), vec!["a", " ", " b"]);
        assert_eq!(pretokenize("end   "), vec!["end", "   "]);
        assert_eq!(pretokenize("naïve café"), vec!["naïve", " café"]);
        assert_eq!(pretokenize(" ..."), vec![" ..."]);
    }

    #[test]
    fn byte_table_is_a_bijection() {
        let t = byte_to_char_table();
        let set: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'A' as usize], 'A');
    }

    #[test]
    fn decodes_utf8_split_across_tokens_and_skips_specials() {
        // "é" is C3 A9 in UTF-8: two byte-level tokens "Ã" (C3) and "©" (A9).
        let vocab = "Ã\n©\nĠcaf\nh\ni\nĠ\n<|endoftext|>\n<|startoftranscript|>\n<|translate|>\n<|transcribe|>\n<|startoflm|>\n<|startofprev|>\n<|nospeech|>\n<|notimestamps|>\n<|0.00|>";
        let tok = Tokenizer::new(vocab.as_bytes(), b"", special(), 15).unwrap();
        assert_eq!(tok.decode(&[2, 0, 1]), " café");
        assert_eq!(tok.decode(&[7, 3, 4, 6, 14]), "hi");
        // Japanese: "日" = E6 97 A5 split over three single-byte tokens.
        let t = byte_to_char_table();
        let vocab2: Vec<String> = [0xE6u8, 0x97, 0xA5].iter().map(|b| t[*b as usize].to_string()).collect();
        let mut v = vocab2.join("\n");
        v.push_str("\nx\ny\nz\n<|endoftext|>\na\nb\nc\nd\ne\nf\ng\nh");
        let tok2 = Tokenizer::new(v.as_bytes(), b"", special(), 15).unwrap();
        assert_eq!(tok2.decode(&[0, 1, 2]), "日");
    }

    #[test]
    fn encodes_with_merge_ranks() {
        let vocab = "h\ne\nl\no\nĠ\n<|endoftext|>\nhe\nll\nhell\nhello\nĠhello";
        let merges = "#version: 0.2\nh e\nl l\nhe ll\nhell o\nĠ hello";
        let mut sp = special();
        sp.eot = 5;
        let tok = Tokenizer::new(vocab.as_bytes(), merges.as_bytes(), sp, 11).unwrap();
        assert_eq!(tok.encode("hello"), vec![9]);
        assert_eq!(tok.encode("hello hello"), vec![9, 10]);
        assert_eq!(tok.encode("oh"), vec![3, 0]);
    }

    #[test]
    fn wrong_vocab_size_is_an_error() {
        let err = Tokenizer::new(b"a\nb", b"", special(), 3).err().unwrap();
        assert_eq!(err, TokenizerError::VocabSize { expected: 3, found: 2 });
    }

    #[test]
    fn language_lookup() {
        assert_eq!(language_code("German"), Some("de"));
        assert_eq!(language_code("de"), Some("de"));
        assert_eq!(language_code("xx"), None);
        assert_eq!(language_name("yue"), Some("cantonese"));
    }
}
