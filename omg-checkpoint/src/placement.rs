//! Where loaded weights live in memory: each large weight in its own anonymous mapping
//! that the kernel is asked to back with transparent huge pages (2 MiB on x86-64).
//!
//! Decoding reads every weight once per token as long streams. With 4 KiB pages each
//! 4 KiB of a stream costs a page walk; with 2 MiB pages almost none (on a 2-core EPYC,
//! the int4 GEMV over 1 GB of 7.74 B-shaped weights ran about 12 % faster from huge
//! pages, as did a plain streaming read). Under the usual Linux setting
//! (`/sys/kernel/mm/transparent_hugepage/enabled` = `madvise`) only memory that asked for
//! them gets them, and only when asked before it is first written: heap memory reused
//! from freed buffers keeps its small pages. A fresh mapping per weight, advised before
//! the loader writes it, gets them from its first write.
//!
//! A mapped buffer also becomes the tensor's storage as it is, while a heap `Vec<u8>`
//! handed to burn's `Bytes::from_bytes_vec` is copied once more (its alignment is below
//! the 16 bytes burn's storage asks for).

use std::ops::Range;

use burn::tensor::{AllocationProperty, Bytes};
use memmap2::{MmapMut, MmapOptions};

/// The size of a transparent huge page on x86-64 and aarch64 Linux (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;
/// Buffers smaller than this come from the heap (no whole huge page would fit).
const MAPPED_FROM: usize = HUGE_PAGE;

/// A zeroed buffer for a weight the loader writes next, then hands to a tensor
/// ([`WeightBuffer::into_bytes`]) without a copy.
pub struct WeightBuffer(Storage);

/// Where a [`WeightBuffer`]'s bytes are.
enum Storage {
    /// Its own anonymous mapping, advised to use huge pages; the buffer starts at the
    /// first 2 MiB boundary in it (the offset).
    Mapped(MmapMut, usize),
    /// A heap buffer (small, or where no mapping could be made).
    Heap(Vec<u8>),
}

impl WeightBuffer {
    /// `len` zero bytes: a fresh anonymous mapping with huge pages requested (Linux) for
    /// 2 MiB and more, else (or where mapping fails) a heap buffer.
    pub fn zeroed(len: usize) -> Self {
        // room to start at a 2 MiB boundary (the pages before it are never touched)
        if len >= MAPPED_FROM
            && let Ok(map) = MmapOptions::new().len(len + HUGE_PAGE).map_anon()
        {
            #[cfg(target_os = "linux")]
            // only a request: a refusal (THP switched off) leaves small pages
            let _ = map.advise(memmap2::Advice::HugePage);
            let offset =
                (map.as_ptr() as usize).next_multiple_of(HUGE_PAGE) - map.as_ptr() as usize;
            return Self(Storage::Mapped(map, offset));
        }
        Self(Storage::Heap(vec![0; len]))
    }

    /// The bytes, to write.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Storage::Mapped(map, offset) => {
                let len = map.len() - HUGE_PAGE;
                &mut map[*offset..*offset + len]
            }
            Storage::Heap(v) => v,
        }
    }

    /// The byte ranges `parts` as the storages of as many tensors (one weight's parts
    /// placed together, e.g. a quantized weight's values and scales): a mapping is
    /// shared by all, not copied; a heap buffer's ranges are copied out.
    ///
    /// # Panics
    /// If a range is not inside the buffer.
    pub fn into_parts<const N: usize>(self, parts: [Range<usize>; N]) -> [Bytes; N] {
        match self.0 {
            Storage::Mapped(map, offset) => {
                let len = map.len() - HUGE_PAGE;
                let all = bytes::Bytes::from_owner(Owned(map)).slice(offset..offset + len);
                parts.map(|r| Bytes::from_shared(all.slice(r), AllocationProperty::Other))
            }
            Storage::Heap(v) => parts.map(|r| Bytes::from_bytes_vec(v[r].to_vec())),
        }
    }

    /// The bytes as a tensor's storage (the mapping is shared, not copied; a tensor
    /// op that writes it in place copies it first).
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            Storage::Mapped(map, offset) => {
                let len = map.len() - HUGE_PAGE;
                Bytes::from_shared(
                    bytes::Bytes::from_owner(Owned(map)).slice(offset..offset + len),
                    AllocationProperty::Other,
                )
            }
            Storage::Heap(v) => Bytes::from_bytes_vec(v),
        }
    }
}

/// A mapping as the owner of shared bytes.
struct Owned(MmapMut);

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_hold_their_ranges_of_the_buffer() {
        for len in [10, MAPPED_FROM + 100] {
            let mut buffer = WeightBuffer::zeroed(len);
            for (i, b) in buffer.as_mut_slice().iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            assert_eq!(matches!(buffer.0, Storage::Mapped(..)), len >= MAPPED_FROM);
            let [a, b] = buffer.into_parts([0..3, 8..len]);
            assert_eq!(&a[..], &[0, 1, 2]);
            let want: Vec<u8> = (8..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(&b[..], &want[..]);
        }
    }

    #[test]
    fn buffers_are_zeroed_and_keep_what_was_written() {
        for len in [0, 100, MAPPED_FROM - 1, MAPPED_FROM, 3 * MAPPED_FROM + 5] {
            let mut buffer = WeightBuffer::zeroed(len);
            assert_eq!(
                matches!(buffer.0, Storage::Mapped(..)),
                len >= MAPPED_FROM,
                "{len}"
            );
            let bytes = buffer.as_mut_slice();
            assert_eq!(bytes.len(), len);
            assert!(bytes.iter().all(|&b| b == 0));
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            let shared = buffer.into_bytes();
            assert_eq!(shared.len(), len);
            assert!(
                shared
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == (i % 251) as u8)
            );
        }
    }
}
