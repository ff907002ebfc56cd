//! The server's global allocator: mimalloc, asked the way its own entry points are meant to be.
//!
//! A request allocates and frees many small blocks (headers, JSON, sled's nodes), and glibc's
//! malloc took a fifth of a durable create's instructions (README "Benchmarks"), so the server
//! runs on mimalloc. The `mimalloc` crate's allocator passes every allocation, whatever its
//! alignment, to `mi_malloc_aligned`; for a block over 1 KB (a boxed operation future, a
//! connection's read buffer) whose size class is not a power of two, mimalloc cannot count on
//! the class's alignment and over-allocates, which also marks the block's page so that every
//! later free from that page takes the slow path (`mi_theap_malloc_zero_aligned_at_overalloc`,
//! 1,443 instructions a get user under callgrind). Every mimalloc block is aligned to a machine
//! word, so an allocation that needs no more is a plain `mi_malloc` here, and only the rest are
//! aligned ones.
//!
//! Built without transparent huge pages (the `no_thp` feature): with them a server holding
//! 100,000 users took 108 MB of RSS instead of 61.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The alignment of every block mimalloc hands out: its blocks are whole words, in pages that
/// start on a word.
const WORD: usize = std::mem::size_of::<usize>();

pub struct MiMalloc;

// SAFETY: each method passes mimalloc a size and alignment it honours (the word alignment of
// every mimalloc block, or the layout's own alignment through the aligned entry points) and
// frees only what mimalloc allocated.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match layout.align() <= WORD {
            true => mi_malloc(layout.size()).cast(),
            false => mi_malloc_aligned(layout.size(), layout.align()).cast(),
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match layout.align() <= WORD {
            true => mi_zalloc(layout.size()).cast(),
            false => mi_zalloc_aligned(layout.size(), layout.align()).cast(),
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match layout.align() <= WORD {
            true => mi_realloc(ptr.cast(), new_size).cast(),
            false => mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes around mimalloc's small-block limit (1 KB), its size classes and a page, with
    /// every alignment a Rust type can ask of them up to a page.
    fn layouts() -> impl Iterator<Item = Layout> {
        let sizes = [1, 7, 8, 9, 24, 40, 1000, 1024, 1025, 1160, 2700, 4096, 8192, 70_000];
        let aligns = [1, 2, 4, 8, 16, 32, 64, 128, 4096];
        sizes.into_iter().flat_map(move |size| {
            aligns.into_iter().map(move |align| Layout::from_size_align(size, align).unwrap())
        })
    }

    #[test]
    fn blocks_are_aligned_writable_and_keep_their_bytes_when_grown_or_shrunk() {
        for layout in layouts() {
            // SAFETY: every pointer comes from this allocator with the layout it is used with.
            unsafe {
                let zeroed = MiMalloc.alloc_zeroed(layout);
                assert_eq!(zeroed as usize % layout.align(), 0, "{layout:?} zeroed");
                assert!(std::slice::from_raw_parts(zeroed, layout.size()).iter().all(|b| *b == 0));
                MiMalloc.dealloc(zeroed, layout);

                let mut block = MiMalloc.alloc(layout);
                assert_eq!(block as usize % layout.align(), 0, "{layout:?}");
                let pattern = |i: usize| (i % 251) as u8;
                for i in 0..layout.size() {
                    block.add(i).write(pattern(i));
                }
                // Grown and back, then shrunk and back: the bytes both sizes hold are kept.
                for new_size in [layout.size() * 3, layout.size().div_ceil(2)] {
                    let moved = MiMalloc.realloc(block, layout, new_size);
                    assert_eq!(moved as usize % layout.align(), 0, "{layout:?} to {new_size}");
                    let kept = layout.size().min(new_size);
                    assert!((0..kept).all(|i| moved.add(i).read() == pattern(i)), "{layout:?}");
                    let moved_layout = Layout::from_size_align(new_size, layout.align()).unwrap();
                    block = MiMalloc.realloc(moved, moved_layout, layout.size());
                    assert_eq!(block as usize % layout.align(), 0, "{layout:?} back");
                    assert!((0..kept).all(|i| block.add(i).read() == pattern(i)), "{layout:?}");
                }
                MiMalloc.dealloc(block, layout);
            }
        }
    }
}
