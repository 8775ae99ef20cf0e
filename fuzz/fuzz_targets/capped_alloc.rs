//! A global allocator that aborts on any single allocation over 256 MiB, as libFuzzer's
//! `-malloc_limit_mb=256` does under a sanitizer: without one (`-s none`) a lying length whose
//! memory is never touched would not even show as RSS. The input is then saved as a crash.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

pub const LIMIT: usize = 256 << 20;

pub struct Capped;

fn check(size: usize) {
    if size > LIMIT {
        // No allocation here: format into a stack buffer, write unbuffered, abort.
        let mut buf = [0u8; 100];
        let left = {
            let mut w = &mut buf[..];
            let _ = writeln!(w, "capped_alloc: {size} bytes requested (limit {LIMIT})");
            w.len()
        };
        let _ = std::io::stderr().write_all(&buf[..buf.len() - left]);
        std::process::abort();
    }
}

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}
