//! Unit tests of word timestamps: DTW and the median filter against literal ports, word
//! splitting and punctuation on a toy vocabulary, and one window end to end with a scripted
//! network. The toy model is shared here.

mod alignment;
mod assign;
mod split;
mod window;

use super::*;
use crate::nn::StepOutput;

// ---- a toy model with words

// 0 " And", 1 " so", 2 ",", 3 " my", 4 " fel", 5 "low", 6 ".", 7 " caf", 8/9 the two bytes
// of "é", 10 " (", 11 "hi", 12 ")", 13/14 "京" split (E4 BA | AC), 15 "人", 16 " ¿", 17 "!?",
// 18 eot, 19 sot, 20 <|en|>, 21 <|ja|>, 22 <|zh|>, 23 translate, 24 transcribe, 25 sot_lm,
// 26 sot_prev, 27 nospeech, 28 notimestamps, 29.. timestamps.
const EOT: u32 = 18;
const SOT_SEQ: [u32; 3] = [19, 20, 24];
const N_VOCAB: usize = 39;

fn word_model() -> Model {
    let config = r#"{"name":"words","multilingual":true,
      "dims":{"n_mels":80,"n_audio_ctx":1500,"n_text_ctx":448,"n_text_state":4,"n_text_layer":1,"n_text_head":1,"n_vocab":39},
      "tokens":{"eot":18,"sot":19,"translate":23,"transcribe":24,"sot_lm":25,"sot_prev":26,"no_speech":27,"no_timestamps":28,"timestamp_begin":29},
      "languages":[["en",20],["ja",21],["zh",22]],"suppress_ids":[],"suppress_ids_begin":[18],
      "alignment_heads":[[0,0],[0,1]]}"#;
    let mut vocab: Vec<String> = [
        "ĠAnd", "Ġso", ",", "Ġmy", "Ġfel", "low", ".", "Ġcaf", "Ã", "©", "Ġ(", "hi", ")", "äº", "¬", "äºº",
        "ĠÂ¿", "!?", "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|ja|>", "<|zh|>", "<|translate|>",
        "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for i in 0..10 {
        vocab.push(format!("<|{:.2}|>", i as f32 * 0.02));
    }
    assert_eq!(vocab.len(), N_VOCAB);
    Model::from_meta(config.as_bytes(), vocab.join("\n").as_bytes(), b"").unwrap()
}
