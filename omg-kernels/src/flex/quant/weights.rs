//! The packed weight of a quantized product as stored ([`crate::quant_format`]), and its
//! groups unpacked to bytes: signed (`q`) or unsigned (`q + offset`, the operand the
//! unsigned-by-signed byte products take).

use std::borrow::Cow;

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::quant_format::{QUANT_GROUP, QuantBits, QuantLayout};

/// The `[out, groups]` scales of a quantized weight, as stored.
#[derive(Clone, Copy)]
pub(crate) enum Scales<'a> {
    /// f32 (int8 weights).
    F32(&'a [f32]),
    /// f16 (int4 weights on Flex), widened where they are read.
    F16(&'a [f16]),
}

impl Scales<'_> {
    fn len(&self) -> usize {
        match self {
            Self::F32(s) => s.len(),
            Self::F16(s) => s.len(),
        }
    }
}

/// A quantized `[out, in]` weight: packed rows and scales, sizes checked.
#[derive(Clone, Copy)]
pub(crate) struct Packed<'a> {
    /// `[out, row_bytes]` packed values.
    pub(crate) values: &'a [u8],
    /// `[out, groups]` scales.
    scales: Scales<'a>,
    /// Shape and format.
    pub(crate) layout: QuantLayout,
    /// Bytes of one packed row.
    pub(crate) row_bytes: usize,
    /// Groups per row.
    pub(crate) groups: usize,
}

impl<'a> Packed<'a> {
    /// The weight of `layout` in `values` (at least `out · row_bytes` bytes) and
    /// `scales` (`out · groups`).
    ///
    /// # Panics
    /// If either is shorter than the layout needs: every unchecked load of the kernels
    /// relies on these sizes.
    pub(crate) fn new(values: &'a [u8], scales: Scales<'a>, layout: QuantLayout) -> Self {
        let (row_bytes, groups) = (layout.row_bytes(), layout.groups());
        let n = layout.out_features;
        assert!(
            values.len() >= n * row_bytes && scales.len() == n * groups,
            "quant_linear kernel: {} value bytes and {} scales for {layout:?}",
            values.len(),
            scales.len()
        );
        Self {
            values: &values[..n * row_bytes],
            scales,
            layout,
            row_bytes,
            groups,
        }
    }

    /// Channel `c`'s packed row.
    pub(crate) fn row(&self, c: usize) -> &'a [u8] {
        &self.values[c * self.row_bytes..(c + 1) * self.row_bytes]
    }

    /// Channel `c`'s scales as f32: borrowed, or widened into `buf` (resized to fit).
    pub(crate) fn row_scales<'b>(&self, c: usize, buf: &'b mut Vec<f32>) -> &'b [f32]
    where
        'a: 'b,
    {
        let range = c * self.groups..(c + 1) * self.groups;
        match self.scales {
            Scales::F32(s) => &s[range],
            Scales::F16(s) => {
                buf.resize(self.groups, 0.0);
                s[range].convert_to_f32_slice(buf);
                buf
            }
        }
    }

    /// Channel `c`'s scale of group `g`, as f32.
    pub(crate) fn scale(&self, c: usize, g: usize) -> f32 {
        let i = c * self.groups + g;
        match self.scales {
            Scales::F32(s) => s[i],
            Scales::F16(s) => s[i].to_f32(),
        }
    }

    /// Every scale as f32 (`[out, groups]`): borrowed, or widened into a new vector.
    pub(crate) fn all_scales(&self) -> Cow<'a, [f32]> {
        match self.scales {
            Scales::F32(s) => Cow::Borrowed(s),
            Scales::F16(s) => Cow::Owned(s.to_f32_vec()),
        }
    }

    /// Groups of a row that hold all 64 values (the last may be shorter).
    pub(crate) fn full_groups(&self) -> usize {
        self.layout.in_features / QUANT_GROUP
    }

    /// What the unsigned form adds to each value: 128 (int8) or 8 (int4).
    pub(crate) fn offset(&self) -> i32 {
        match self.layout.bits {
            QuantBits::Int8 => 128,
            QuantBits::Int4 => 8,
        }
    }

    /// The values of group `g` of channel `c`, in input order; 0 past a short group.
    pub(crate) fn signed_group(&self, c: usize, g: usize, dst: &mut [i8; QUANT_GROUP]) {
        let mut u = [0u8; QUANT_GROUP];
        let len = self.unsigned_group(c, g, &mut u);
        let offset = self.offset();
        for (d, &v) in dst.iter_mut().zip(&u[..len]) {
            *d = (v as i32 - offset) as i8;
        }
        dst[len..].fill(0);
    }

    /// `q + offset` of group `g` of channel `c` in input order (0 past a short group);
    /// returns the group's length.
    pub(crate) fn unsigned_group(&self, c: usize, g: usize, dst: &mut [u8; QUANT_GROUP]) -> usize {
        let k0 = g * QUANT_GROUP;
        let len = QUANT_GROUP.min(self.layout.in_features - k0);
        let row = self.row(c);
        match self.layout.bits {
            QuantBits::Int8 => {
                for (d, &b) in dst.iter_mut().zip(&row[k0..k0 + len]) {
                    *d = b ^ 0x80;
                }
            }
            QuantBits::Int4 => {
                // byte j: value j (low nibble) and value j + h (high nibble), h = ⌈len/2⌉
                let h = len.div_ceil(2);
                let bytes = &row[k0 / 2..k0 / 2 + h];
                for (j, &b) in bytes.iter().enumerate() {
                    dst[j] = b & 15;
                    if j + h < len {
                        dst[j + h] = b >> 4;
                    }
                }
            }
        }
        dst[len..].fill(0);
        len
    }
}
