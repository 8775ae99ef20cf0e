//! The provider never opens a file: its graphs are in linear memory, loaded from stdin at
//! pre-initialisation. One path that could still reach wasi-libc's file-system layer is linked
//! in (tract's ONNX tensor loader canonicalises the path of external data, which
//! `NoExternalData` refuses anyway), and with it that layer would make the component import
//! `wasi:filesystem`: every host would have to grant it, and the composed component would not
//! be file-free.
//!
//! This definition stands in for libc's `realpath`, so the linker leaves the layer out and the
//! imports disappear. Were it ever called, it fails as for a path that does not exist.

#[no_mangle]
extern "C" fn realpath(_path: *const u8, _resolved: *mut u8) -> *mut u8 {
    std::ptr::null_mut()
}
