//! Upload bytes → symphonia decode → downmix → 16 kHz → log-mel (`whisper_component::fuzzing::audio`).
//!
//! `KNOWN_UPSTREAM_PANICS` lists symphonia crates whose panics a run passes over, so that it
//! goes on to find new ones. The symphonia 0.5.5 entries are kept only until this target has
//! been re-run on 0.6, which fixed the four reproducers they were for (now in
//! `fuzz/regressions/audio/`); they can no longer match a 0.6 panic location.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;

#[path = "capped_alloc.rs"]
mod capped_alloc;

#[global_allocator]
static ALLOC: capped_alloc::Capped = capped_alloc::Capped;

/// Source files of known upstream panics (crate directory and path, as in a panic location).
const KNOWN_UPSTREAM_PANICS: [&str; 2] = [
    "symphonia-codec-aac-0.5.5/src/aac/ics/mod.rs",
    "symphonia-codec-alac-0.5.5/src/lib.rs",
];

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

/// An ALAC magic cookie (`alac` box: size, type, version/flags, then the frame length) with a
/// frame length over 2^16: symphonia-codec-alac allocates that many frames per channel up
/// front (6 GB for 2^32). Apple's encoder writes 4096.
fn alac_frame_length_too_big(data: &[u8]) -> bool {
    data.windows(4).enumerate().any(|(i, w)| {
        w == b"alac"
            && data
                .get(i + 8..i + 12)
                .is_some_and(|f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]) > 1 << 16)
    })
}

fuzz_target!(|data: &[u8]| {
    install_hook();
    if alac_frame_length_too_big(data) {
        return;
    }
    let _ = std::panic::catch_unwind(|| whisper_component::fuzzing::audio(data));
});
