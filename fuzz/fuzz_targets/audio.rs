//! Upload bytes → symphonia decode → downmix → 16 kHz → log-mel (`whisper_component::fuzzing::audio`).
//!
//! Every panic is a crash. The symphonia bugs found so far are checked for in `src/audio/`
//! before symphonia reads the input; their reproducers are in `fuzz/regressions/audio/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "capped_alloc.rs"]
mod capped_alloc;

#[global_allocator]
static ALLOC: capped_alloc::Capped = capped_alloc::Capped;

fuzz_target!(|data: &[u8]| {
    whisper_component::fuzzing::audio(data);
});
