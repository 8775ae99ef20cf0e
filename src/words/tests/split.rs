//! Words from tokens.

use super::*;

fn split(model: &Model, lang: &str, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
    split_to_word_tokens(&model.tokenizer, lang, tokens)
}

#[test]
fn splits_on_spaces_and_punctuation() {
    let m = word_model();
    let (words, toks) = split(&m, "en", &[0, 1, 2, 3, 4, 5, 6, EOT]);
    assert_eq!(words, vec![" And", " so", ",", " my", " fellow", ".", ""]);
    assert_eq!(toks, vec![vec![0], vec![1], vec![2], vec![3], vec![4, 5], vec![6], vec![EOT]]);
    // "!?" is not a substring of string.punctuation: it sticks to the word before.
    let (words, _) = split(&m, "en", &[0, 17, EOT]);
    assert_eq!(words, vec![" And!?", ""]);
    // ")" is punctuation on its own; "hi" has no space and joins " (".
    let (words, toks) = split(&m, "en", &[10, 11, 12, EOT]);
    assert_eq!(words, vec![" (hi", ")", ""]);
    assert_eq!(toks, vec![vec![10, 11], vec![12], vec![EOT]]);
}

#[test]
fn a_character_split_over_tokens_stays_whole() {
    let m = word_model();
    // " caf" + C3 + A9 = " café": the C3 piece alone is not valid UTF-8.
    let (words, toks) = split(&m, "en", &[7, 8, 9, 1, EOT]);
    assert_eq!(words, vec![" café", " so", ""]);
    assert_eq!(toks, vec![vec![7, 8, 9], vec![1], vec![EOT]]);
    // Without spaces (ja): every complete character is a word.
    let (words, toks) = split(&m, "ja", &[13, 14, 15, 6, EOT]);
    assert_eq!(words, vec!["京", "人", ".", ""]);
    assert_eq!(toks, vec![vec![13, 14], vec![15], vec![6], vec![EOT]]);
    // zh, th, lo, my and yue split the same way; others by spaces.
    let (words, _) = split(&m, "zh", &[13, 14, 15, EOT]);
    assert_eq!(words, vec!["京", "人", ""]);
    let (words, _) = split(&m, "de", &[13, 14, 15, EOT]);
    assert_eq!(words, vec!["京人", ""]);
}

#[test]
fn an_unfinished_character_does_not_swallow_the_rest() {
    let m = word_model();
    // A lone C3 (token 8) before " so": invalid in the whole text too, so it is a word of
    // its own (U+FFFD) and the split goes on.
    let (words, toks) = split(&m, "ja", &[8, 1, EOT]);
    assert_eq!(words, vec!["\u{FFFD}", " so", ""]);
    assert_eq!(toks, vec![vec![8], vec![1], vec![EOT]]);
}
