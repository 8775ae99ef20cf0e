//! Upload bytes → symphonia decode → downmix → 16 kHz → log-mel (`whisper_component::fuzzing::audio`).
//!
//! Known symphonia 0.6.1 bugs that `src/audio/` cannot check for before decoding
//! (`fuzz/upstream/README.md`) are passed over, so a run goes on to find new ones: a panic
//! inside one of `KNOWN_UPSTREAM_PANICS` unwinds instead of aborting. Every other panic is a
//! crash. (The 0.5.5 entries went with 0.6, which fixed them; their reproducers are in
//! `fuzz/regressions/audio/`.)
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;

#[path = "capped_alloc.rs"]
mod capped_alloc;

#[global_allocator]
static ALLOC: capped_alloc::Capped = capped_alloc::Capped;

/// Source files of known upstream panics (crate directory and path, as in a panic location).
const KNOWN_UPSTREAM_PANICS: [&str; 1] = ["symphonia-codec-vorbis-0.6.1/src/codebook.rs"];

static HOOK: Once = Once::new();

/// Wraps libfuzzer-sys's panic hook (which aborts: a crash): a known upstream panic unwinds
/// to the `catch_unwind` below instead.
fn install_hook() {
    HOOK.call_once(|| {
        let crash = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let known = info
                .location()
                .is_some_and(|l| KNOWN_UPSTREAM_PANICS.iter().any(|k| l.file().ends_with(k)));
            if !known {
                crash(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    install_hook();
    let _ = std::panic::catch_unwind(|| whisper_component::fuzzing::audio(data));
});
