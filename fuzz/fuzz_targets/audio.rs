//! Upload bytes → symphonia decode → downmix → 16 kHz → log-mel (`whisper_component::fuzzing::audio`).
//!
//! Every panic is a crash. (On symphonia 0.5.5 this target passed over known panics in its AAC
//! and ALAC decoders and skipped ALAC cookies with huge frame lengths; 0.6 fixed all four, whose
//! reproducers are now in `fuzz/regressions/audio/`.)
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "capped_alloc.rs"]
mod capped_alloc;

#[global_allocator]
static ALLOC: capped_alloc::Capped = capped_alloc::Capped;

fuzz_target!(|data: &[u8]| {
    whisper_component::fuzzing::audio(data);
});
