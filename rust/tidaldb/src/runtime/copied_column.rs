//! A caller's column copied into memory of our own, for a bulk call that must read its
//! inputs as they were when it was made (a Python caller's arrays can change as soon as
//! the call releases the interpreter).
//!
//! A large copy is written into pages the process has never touched: the allocator maps a
//! block of that size afresh for every call, and unmaps it when freed. One page fault per
//! 4 KiB page cost more than the copy: filling a fresh 24 MB buffer took 11.6 ms. So a
//! large column gets a mapping of its own, its pages populated by the kernel without a
//! fault each (`MADV_POPULATE_WRITE`), in pieces on every core, and then copied in pieces
//! on every core: three 8 MB columns in 3.8-4.1 ms, against 5.0-5.4 populated in one
//! system call (`MAP_POPULATE`) and copied on one thread. Huge pages (`MADV_HUGEPAGE`)
//! filled it in 3.0 ms, but now and then took 70-110 ms to allocate, all of it while the
//! interpreter is held (the copy must be complete before it is released), so they are not
//! used. A small column is a plain vector, which the allocator serves from memory it
//! keeps. Either way the memory is returned when the column drops: nothing is kept from
//! one call to the next.

use std::ops::{Deref, DerefMut};

use bytemuck::Zeroable;
#[cfg(target_os = "linux")]
use memmap2::Advice;
use memmap2::{MmapMut, MmapOptions};

use crate::ledger::{piece_count, piece_len, run_pieces};
use crate::node::default_ingest_threads;

/// Columns of at least this many bytes get a mapping of their own: below it, the
/// allocator's kept memory is already faulted in, and a mapping's system calls cost more.
const MAPPED_MIN_BYTES: usize = 4 << 20;

/// `len` values of `T`, zeroed until written.
pub struct CopiedColumn<T> {
    storage: Storage<T>,
}

enum Storage<T> {
    Heap(Vec<T>),
    Mapped { map: MmapMut, len: usize },
}

impl<T: Zeroable + Copy + Send + Sync> CopiedColumn<T> {
    /// A column of `len` zeroes, for the caller to overwrite.
    pub fn zeroed(len: usize) -> Self {
        let bytes = len.saturating_mul(size_of::<T>());
        if bytes >= MAPPED_MIN_BYTES
            && let Some(storage) = Self::mapped(len, bytes)
        {
            return CopiedColumn { storage };
        }
        CopiedColumn {
            storage: Storage::Heap(vec![T::zeroed(); len]),
        }
    }

    /// A copy of `values`, a large one copied on every core.
    pub fn copy_of(values: &[T]) -> Self {
        let mut column = Self::zeroed(values.len());
        if matches!(column.storage, Storage::Heap(_)) {
            column.copy_from_slice(values);
            return column;
        }
        let pieces = column.chunks_mut(piece_len(values.len()));
        run_pieces(
            default_ingest_threads(),
            values.len(),
            pieces,
            |rows, piece| piece.copy_from_slice(&values[rows]),
        );
        column
    }

    /// An anonymous mapping of `bytes`, its pages populated; `None` if the system refuses
    /// it (the heap then serves).
    fn mapped(len: usize, bytes: usize) -> Option<Storage<T>> {
        let map = MmapOptions::new().len(bytes).map_anon().ok()?;
        debug_assert!(
            map.len() >= bytes && (map.as_ptr() as usize).is_multiple_of(align_of::<T>()),
            "a mapping is page-aligned"
        );
        populate_spread(&map);
        Some(Storage::Mapped { map, len })
    }
}

/// Populates `map`'s pages (`MADV_POPULATE_WRITE`, Linux 5.14 and later) in pieces, on
/// every core: the kernel zeroes each page it maps, and populating a 24 MB copy's pages
/// on one thread was most of the copy's time. Where the kernel refuses, the copy faults
/// each page in as it writes it.
fn populate_spread(map: &MmapMut) {
    #[cfg(target_os = "linux")]
    {
        let bytes = map.len();
        run_pieces(
            default_ingest_threads(),
            bytes,
            0..piece_count(bytes),
            |range, _| {
                let _ = map.advise_range(Advice::PopulateWrite, range.start, range.len());
            },
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = map;
}

impl<T: Zeroable + Copy> Deref for CopiedColumn<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.storage {
            Storage::Heap(v) => v,
            // SAFETY: `mapped` made room for `len` values, at a page boundary (aligned for
            // any `T`); an anonymous mapping starts zeroed, and all zeroes is a valid `T`
            // (`Zeroable`); after that only values of `T` are written (through
            // `deref_mut`). The mapping lives as long as `self`.
            Storage::Mapped { map, len } => unsafe {
                std::slice::from_raw_parts(map.as_ptr().cast::<T>(), *len)
            },
        }
    }
}

impl<T: Zeroable + Copy> DerefMut for CopiedColumn<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.storage {
            Storage::Heap(v) => v,
            // SAFETY: as in `deref`; `&mut self` makes this the only reference.
            Storage::Mapped { map, len } => unsafe {
                std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<T>(), *len)
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_columns_hold_what_was_copied() {
        for len in [
            0,
            1,
            1000,
            MAPPED_MIN_BYTES / 8 - 1,
            MAPPED_MIN_BYTES / 8,
            3_000_001,
        ] {
            let values: Vec<u64> = (0..len as u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9))
                .collect();
            let column = CopiedColumn::copy_of(&values);
            assert_eq!(&column[..], &values[..], "{len}");
            assert_eq!(
                matches!(column.storage, Storage::Mapped { .. }),
                len * 8 >= MAPPED_MIN_BYTES,
                "{len}"
            );
        }
        let zeroes: CopiedColumn<f64> = CopiedColumn::zeroed(MAPPED_MIN_BYTES);
        assert!(zeroes.iter().all(|&x| x.to_bits() == 0));
    }
}
