//! Upload bytes → symphonia decode → downmix → 16 kHz → log-mel (`whisper_component::fuzzing::audio`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| whisper_component::fuzzing::audio(data));
