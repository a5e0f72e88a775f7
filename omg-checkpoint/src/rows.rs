//! Reading rows of a stored float tensor as f32, straight from a memory map: the
//! conversion runs in parallel, and the mapped pages are handed back to the OS once
//! read, so a load's resident memory is what it keeps, not the files it has read.

use std::ops::Range;

use burn::tensor::{DType, f16};
use memmap2::Mmap;
use rayon::prelude::*;

use crate::{CheckpointError, TensorInfo};

/// Elements converted per parallel task.
const TASK: usize = 1 << 16;

/// Checks a request for `rows` of tensor `name` (of `info`) into a buffer of
/// `out_len` values; returns the number of values per row.
pub(crate) fn check_rows(
    name: &str,
    info: &TensorInfo,
    rows: &Range<usize>,
    out_len: usize,
) -> Result<usize, CheckpointError> {
    if !matches!(
        info.dtype,
        DType::F32 | DType::F16 | DType::BF16 | DType::F64
    ) {
        return Err(CheckpointError::UnsupportedDType {
            key: name.to_owned(),
            dtype: format!("{:?} (a float tensor was expected)", info.dtype),
        });
    }
    let first = info.shape.first().copied().unwrap_or(1);
    let row_len: usize = info.shape.iter().skip(1).product();
    if rows.start > rows.end || rows.end > first {
        return Err(CheckpointError::Apply(format!(
            "rows {rows:?} of `{name}`, which has {first}"
        )));
    }
    if out_len != rows.len() * row_len {
        return Err(CheckpointError::Apply(format!(
            "rows {rows:?} of `{name}` (shape {:?}) need {} values, the buffer holds {out_len}",
            info.shape,
            rows.len() * row_len
        )));
    }
    Ok(row_len)
}

/// Converts little-endian `bytes` of `dtype` (a float type checked by [`check_rows`])
/// into `out`, one value per element.
pub(crate) fn convert_into(bytes: &[u8], dtype: DType, out: &mut [f32]) {
    let size = dtype.size();
    debug_assert_eq!(bytes.len(), out.len() * size);
    out.par_chunks_mut(TASK)
        .zip(bytes.par_chunks(TASK * size))
        .for_each(|(out, bytes)| {
            let values = out.iter_mut().zip(bytes.chunks_exact(size));
            match dtype {
                DType::F32 => values.for_each(|(o, b)| {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }),
                // bf16 is the upper half of an f32
                DType::BF16 => values.for_each(|(o, b)| {
                    *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
                }),
                DType::F16 => values.for_each(|(o, b)| {
                    *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
                }),
                _ => values.for_each(|(o, b)| {
                    let mut le = [0u8; 8];
                    le.copy_from_slice(b);
                    *o = f64::from_le_bytes(le) as f32;
                }),
            }
        });
}

/// Hands the pages of `range` back to the OS once they have been read: a read-only
/// file mapping reads them again from the page cache (or the file) if they are touched
/// again, so this only lowers the process's resident memory.
pub(crate) fn release(mmap: &Mmap, range: Range<usize>) {
    #[cfg(unix)]
    if range.start < range.end && range.end <= mmap.len() {
        // SAFETY: `mmap` is a read-only mapping of a file; after MADV_DONTNEED the
        // pages are read again from the same file on their next access, so every
        // slice of the map keeps its contents (given the file is not modified while
        // mapped, which every use of the map already assumes).
        let _ = unsafe {
            mmap.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                range.start,
                range.len(),
            )
        };
    }
    #[cfg(not(unix))]
    let _ = (mmap, range);
}

/// The bytes of `rows` of a contiguous row-major tensor of `info` stored from byte
/// `start` of a map of `len` bytes, if they lie inside it.
pub(crate) fn row_span(
    info: &TensorInfo,
    start: usize,
    rows: &Range<usize>,
    len: usize,
) -> Option<Range<usize>> {
    let row_bytes = info.shape.iter().skip(1).product::<usize>() * info.dtype.size();
    let first = start.checked_add(rows.start.checked_mul(row_bytes)?)?;
    let end = first.checked_add(rows.len().checked_mul(row_bytes)?)?;
    (end <= len).then_some(first..end)
}

/// Asks the OS to read `range` of `mmap` ahead (a hint; errors are ignored).
pub(crate) fn prefetch(mmap: &Mmap, range: Range<usize>) {
    #[cfg(unix)]
    if range.start < range.end && range.end <= mmap.len() {
        let _ = mmap.advise_range(memmap2::Advice::WillNeed, range.start, range.len());
    }
    #[cfg(not(unix))]
    let _ = (mmap, range);
}

/// A copy of `bytes`, made by all threads for a large one (the copy out of a map is
/// bound by page faults on both sides, which one thread leaves half used).
pub(crate) fn copy_out(bytes: &[u8]) -> Vec<u8> {
    const PARALLEL_FROM: usize = 1 << 24;
    if bytes.len() < PARALLEL_FROM {
        return bytes.to_vec();
    }
    let mut out = vec![0u8; bytes.len()];
    out.par_chunks_mut(1 << 20)
        .zip(bytes.par_chunks(1 << 20))
        .for_each(|(o, i)| o.copy_from_slice(i));
    out
}

/// Reads `rows` of the contiguous row-major tensor `name` (of `info`, whose bytes
/// start at byte `start` of `mmap`) into `out` as f32, then hands the read pages back.
pub(crate) fn read_mapped_rows(
    mmap: &Mmap,
    name: &str,
    info: &TensorInfo,
    start: usize,
    rows: Range<usize>,
    out: &mut [f32],
) -> Result<(), CheckpointError> {
    check_rows(name, info, &rows, out.len())?;
    let span = row_span(info, start, &rows, mmap.len()).ok_or_else(|| {
        CheckpointError::Apply(format!("rows {rows:?} of `{name}` lie outside the file"))
    })?;
    convert_into(&mmap[span.clone()], info.dtype, out);
    release(mmap, span);
    Ok(())
}
