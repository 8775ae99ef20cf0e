//! End-to-end: the real host (`whisper-host`), the real component, real models and real
//! speech, over HTTP on loopback. One server serves every case; it is killed at the end.
//!
//! Run with `make test-e2e` (or `make test`). Needs `WHISPER_HOST_BIN`, `WHISPER_COMPONENT`,
//! `WHISPER_MODELS_DIR` and `ORT_DYLIB_PATH` (the Makefile sets them) and the clips made by
//! `make fixtures`. Missing pieces fail the run under `CI=true` and skip it otherwise.
//! Arguments filter cases by substring, like libtest.

mod backends;
mod bad_input;
mod formats;
mod harness;
mod live;
mod long_form;
mod seed;
mod startup;
mod vad;
mod diarize;

use harness::Suite;

fn main() {
    let mut suite = Suite::from_env();
    seed::register(&mut suite);
    bad_input::register(&mut suite);
    formats::register(&mut suite);
    backends::register(&mut suite);
    startup::register(&mut suite);
    vad::register(&mut suite);
    diarize::register(&mut suite);
    live::register(&mut suite);
    long_form::register(&mut suite);
    std::process::exit(suite.run());
}
