//! Request bytes → multipart/form-data (multer) → options of both APIs (`whisper_component::fuzzing::multipart`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "capped_alloc.rs"]
mod capped_alloc;

#[global_allocator]
static ALLOC: capped_alloc::Capped = capped_alloc::Capped;

fuzz_target!(|data: &[u8]| whisper_component::fuzzing::multipart(data));
