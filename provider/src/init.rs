//! Pre-initialisation: the graphs are loaded once, at build time, by `wasmtime wizer`, which then
//! snapshots linear memory. Every instance starts from that snapshot, so a request parses no
//! model.
//!
//! What a snapshot keeps, and why this file is careful about it: wizer records memory and
//! globals only (no open handles survive, so none are kept), and it records *every* non-zero
//! byte, freed or not. The model files read from stdin (and tract's intermediate copies) would be
//! dead weight in every composed .wasm and in each instance's memory image, so while loading,
//! the allocator zeroes large blocks as they are freed ([`Scrubbing`]).

use crate::engine::Pins;
use crate::registry::Registry;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The graphs, set by [`initialize`] (at build time) and read by every instance.
pub static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// The system allocator; while [`SCRUB`] is set, blocks of a page or more are zeroed when freed
/// (or moved by `realloc`), so the snapshot holds no stale copies of the graphs.
struct Scrubbing;

static SCRUB: AtomicBool = AtomicBool::new(false);
const SCRUB_MIN: usize = 4096;

#[global_allocator]
static ALLOCATOR: Scrubbing = Scrubbing;

// SAFETY: every call is forwarded to `System`; zeroing writes only inside the block being freed.
unsafe impl GlobalAlloc for Scrubbing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= SCRUB_MIN && SCRUB.load(Ordering::Relaxed) {
            unsafe { ptr.write_bytes(0, layout.size()) };
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < SCRUB_MIN || !SCRUB.load(Ordering::Relaxed) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_size` is non-zero and does not overflow (GlobalAlloc's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { System.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// Reads the graph archive from stdin and loads every graph, with the symbolic dimensions that
/// `WASI_NN_TRACT_PINS` fixes (`NAME=SIZE,…`; see `Pins`). A failure stops the build with its
/// reason (wizer reports the trap).
pub fn initialize() {
    SCRUB.store(true, Ordering::Relaxed);
    let pins = Pins::parse(&std::env::var("WASI_NN_TRACT_PINS").unwrap_or_default())
        .unwrap_or_else(|e| panic!("WASI_NN_TRACT_PINS: {e}"));
    let mut registry = Registry::default();
    let stdin = std::io::stdin().lock();
    if let Err(e) = registry.load_tar(stdin, &pins) {
        panic!("wasi-nn-tract pre-initialisation: {e}");
    }
    SCRUB.store(false, Ordering::Relaxed);
    if REGISTRY.set(registry).is_err() {
        panic!("wasi-nn-tract pre-initialisation ran twice");
    }
}
