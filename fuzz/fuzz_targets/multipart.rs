//! Request bytes → multipart/form-data (multer) → options of both APIs (`whisper_component::fuzzing::multipart`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| whisper_component::fuzzing::multipart(data));
