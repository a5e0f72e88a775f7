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

    /// `values` in the CPU's byte order (as a tensor's storage holds them), placed as
    /// [`WeightBuffer::zeroed`] places them (a quantized weight's scales, read beside its
    /// values on every decoding step).
    pub fn from_f32s(values: &[f32]) -> Self {
        let mut buffer = Self::zeroed(4 * values.len());
        for (bytes, v) in buffer.as_mut_slice().chunks_exact_mut(4).zip(values) {
            bytes.copy_from_slice(&v.to_ne_bytes());
        }
        buffer
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
    fn f32_values_are_stored_in_the_cpus_byte_order() {
        for len in [0, 3, MAPPED_FROM / 4 + 1] {
            let values: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 7.25).collect();
            let mut buffer = WeightBuffer::from_f32s(&values);
            assert_eq!(
                matches!(buffer.0, Storage::Mapped(..)),
                4 * len >= MAPPED_FROM
            );
            let bytes = buffer.as_mut_slice();
            assert_eq!(bytes.len(), 4 * len);
            let back: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_ne_bytes(b.try_into().unwrap()))
                .collect();
            assert_eq!(back, values);
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
