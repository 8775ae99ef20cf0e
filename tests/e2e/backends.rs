//! The host's second wasi-nn backend, OpenVINO, end to end: the same component and the same
//! .onnx graphs, served by a host of its own started with `--backend openvino`.

use crate::harness::{normalize, Server, Suite};

pub fn register(s: &mut Suite) {
    s.add("openvino_transcribes_like_onnx_runtime", openvino_transcribes_like_onnx_runtime);
}

/// Greedy decoding on both backends must give the same words on jfk and on a German clip
/// (detected as German), with ordered timestamps. Punctuation may differ: the backends' float
/// rounding differs, and a near-tie such as "Morgen." vs "Morgen!" can go either way.
fn openvino_transcribes_like_onnx_runtime(onnx: &Server) {
    let library = std::env::var("OPENVINO_LIB").expect("OPENVINO_LIB (the Makefile sets it from the openvino wheel)");
    let openvino = Server::start_with(&["base"], &["--backend", "openvino", "--openvino-lib", &library])
        .unwrap_or_else(|e| panic!("the host with --backend openvino: {e}"));
    for (clip, language) in [("gen/jfk.wav", "en"), ("gen/espeak/de.wav", "de")] {
        let fields = [("beam_size", "1"), ("timestamps", "true")];
        let ours = onnx.transcribe("/", clip, &fields).expect(200).json();
        let theirs = openvino.transcribe("/", clip, &fields).expect(200).json();
        let (ours, theirs) = (&ours["results"][0], &theirs["results"][0]);
        println!("    {clip}: onnx {:?} | openvino {:?}", ours["transcript"], theirs["transcript"]);
        assert_eq!(theirs["language"], language, "{theirs}");
        let words = |v: &serde_json::Value| normalize(v["transcript"].as_str().unwrap());
        assert_eq!(words(theirs), words(ours), "{clip}");
        let starts: Vec<f64> = theirs["segments"].as_array().unwrap().iter().map(|s| s["start"].as_f64().unwrap()).collect();
        assert!(!starts.is_empty() && starts.windows(2).all(|w| w[0] <= w[1]), "{theirs}");
    }
    assert!(openvino.transcribe("/", "gen/jfk.wav", &[]).expect(200).json()["results"][0]["transcript"]
        .as_str()
        .unwrap()
        .contains("ask not what your country can do for you"));
}
