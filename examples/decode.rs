//! The audio stage alone, built for wasm32-wasip2 and run by stock `wasmtime run`: decodes the
//! file on stdin exactly as a request would (same code, same sandbox) and prints one JSON line
//! with what it measured. Used by `make bench-decode` (bench/decode.sh).
//!
//! `wasmtime run -S cli decode.wasm [hint] < clip.opus`

use std::io::Read;
use std::time::Instant;

fn main() {
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes).expect("read stdin");
    let hint = std::env::args().nth(1);
    let start = Instant::now();
    let decoded = whisper_component::audio::decode_to_pcm16k(&bytes, hint.as_deref(), f32::INFINITY);
    let decode_s = start.elapsed().as_secs_f64();
    // Linear memory only grows, so its size at the end is the peak.
    #[cfg(target_arch = "wasm32")]
    let memory_bytes = core::arch::wasm32::memory_size(0) * 65536;
    #[cfg(not(target_arch = "wasm32"))]
    let memory_bytes = 0usize;
    match decoded {
        Ok(pcm) => println!(
            "{{\"codec\":\"{}\",\"input_bytes\":{},\"audio_s\":{:.3},\"decode_s\":{:.4},\"x_realtime\":{:.1},\
             \"output_samples\":{},\"skipped_packets\":{},\"linear_memory_mib\":{:.1}}}",
            pcm.codec,
            bytes.len(),
            pcm.duration_s,
            decode_s,
            f64::from(pcm.duration_s) / decode_s,
            pcm.samples.len(),
            pcm.skipped_packets,
            memory_bytes as f64 / 1048576.0
        ),
        Err(e) => {
            eprintln!("decode: {e}");
            std::process::exit(1);
        }
    }
}
