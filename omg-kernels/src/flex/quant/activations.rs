//! Input rows quantized for the integer products: per row, one f32 scale per group of
//! [`QUANT_GROUP`] input channels (`s = absmax / L`), values
//! `q = round_half_even(x · (1/s))` in `[−L, L]` (0 where `s = 0`), as the fallback
//! (`crate::quant`) computes them in burn's ops. The level `L` is the weight's
//! [`activation_level`]: 32767 (int16) under int8 weights, 127 (int8) under int4.

use rayon::prelude::*;

use super::super::multiversion;
use crate::quant_format::QUANT_GROUP;

/// Rows quantized at once below this many values (no threads).
const SERIAL: usize = 1 << 15;

/// One row's values, scales and sums to fill, and its input.
type RowParts<'a> = (((&'a mut [i16], &'a mut [f32]), &'a mut [i32]), &'a [f32]);

/// `[rows, in]` f32 rows as quantized groups.
pub(crate) struct QuantRows {
    /// Number of rows.
    pub(crate) rows: usize,
    /// Groups per row (`⌈in / 64⌉`).
    pub(crate) groups: usize,
    /// `[rows, groups · 64]` values in `[−level, level]`; the tail of a short last group
    /// is 0.
    pub(crate) q: Vec<i16>,
    /// `[rows, groups]` scales.
    pub(crate) scales: Vec<f32>,
    /// `[rows, groups]` `Σ q` of each group.
    pub(crate) sums: Vec<i32>,
}

impl QuantRows {
    /// Quantizes `rows` rows of `k` values (`xs.len() == rows · k`, asserted) with
    /// values in `[−level, level]` (`level` ≤ 32767).
    pub(crate) fn quantize(xs: &[f32], rows: usize, k: usize, level: f32) -> Self {
        assert_eq!(xs.len(), rows * k, "{rows} rows of {k} values");
        assert!((1.0..=32767.0).contains(&level), "level {level}");
        let groups = k.div_ceil(QUANT_GROUP);
        let kp = groups * QUANT_GROUP;
        let mut q = vec![0i16; rows * kp];
        let mut scales = vec![0.0f32; rows * groups];
        let mut sums = vec![0i32; rows * groups];
        if rows > 0 && k > 0 {
            let one = |(((q, s), sum), x): RowParts<'_>| run(x, level, q, s, sum);
            if rows * k <= SERIAL {
                q.chunks_mut(kp)
                    .zip(scales.chunks_mut(groups))
                    .zip(sums.chunks_mut(groups))
                    .zip(xs.chunks(k))
                    .for_each(one);
            } else {
                q.par_chunks_mut(kp)
                    .zip(scales.par_chunks_mut(groups))
                    .zip(sums.par_chunks_mut(groups))
                    .zip(xs.par_chunks(k))
                    .for_each(one);
            }
        }
        Self {
            rows,
            groups,
            q,
            scales,
            sums,
        }
    }

    /// Row `r`'s `groups · 64` values.
    pub(crate) fn row(&self, r: usize) -> &[i16] {
        let kp = self.groups * QUANT_GROUP;
        &self.q[r * kp..(r + 1) * kp]
    }

    /// All values as bytes (each in `[−127, 127]` when quantized with level 127).
    pub(crate) fn bytes(&self) -> Vec<i8> {
        self.q.iter().map(|&v| v as i8).collect()
    }

    /// Row `r`'s scales.
    pub(crate) fn row_scales(&self, r: usize) -> &[f32] {
        &self.scales[r * self.groups..(r + 1) * self.groups]
    }

    /// Row `r`'s group sums.
    pub(crate) fn row_sums(&self, r: usize) -> &[i32] {
        &self.sums[r * self.groups..(r + 1) * self.groups]
    }
}

/// Quantizes one row `x` into `q` (`groups · 64` values), `scales` and `sums`.
#[inline(always)]
fn body<const FMA: bool>(
    x: &[f32],
    level: f32,
    q: &mut [i16],
    scales: &mut [f32],
    sums: &mut [i32],
) {
    for (g, chunk) in x.chunks(QUANT_GROUP).enumerate() {
        let absmax = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = absmax / level;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        let mut sum = 0i32;
        for (d, &v) in q[g * QUANT_GROUP..].iter_mut().zip(chunk) {
            // NaN (from ±∞ · 0) becomes 0
            let v = (v * inv).round_ties_even().clamp(-level, level) as i32;
            sum += v;
            *d = v as i16;
        }
        scales[g] = scale;
        sums[g] = sum;
    }
}

multiversion!(
    body_avx2,
    body,
    (x: &[f32], level: f32, q: &mut [i16], scales: &mut [f32], sums: &mut [i32])
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant_format::activation_level;

    #[test]
    fn a_row_is_quantized_per_group_with_its_absmax() {
        // 70 values: a whole group and a short one of 6
        let mut x: Vec<f32> = (0..70).map(|i| (i as f32 - 30.0) / 8.0).collect();
        x[66] = 0.0;
        let a = QuantRows::quantize(&x, 1, 70, 127.0);
        assert_eq!((a.rows, a.groups, a.q.len()), (1, 2, 128));
        assert_eq!(a.scales[0], 33.0 / 8.0 / 127.0);
        assert_eq!(a.q[63], 127);
        assert_eq!(a.q[0], (-30.0f32 / 33.0 * 127.0).round() as i16);
        // the short group: absmax 39/8 at x[69]
        assert_eq!(a.scales[1], 39.0 / 8.0 / 127.0);
        assert_eq!((a.q[69], a.q[66]), (127, 0));
        assert!(a.q[70..].iter().all(|&v| v == 0), "the padding is 0");
        for g in 0..2 {
            let s: i32 = a.q[g * 64..(g + 1) * 64].iter().map(|&v| v as i32).sum();
            assert_eq!(a.sums[g], s);
        }
    }

    #[test]
    fn the_int16_level_keeps_four_more_digits() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let a = QuantRows::quantize(&x, 1, 64, activation_level(crate::QuantBits::Int8));
        let s = a.scales[0];
        assert!(a.q.iter().any(|&v| v.abs() == 32767));
        for (&q, &v) in a.q.iter().zip(&x) {
            assert!(
                (q as f32 * s - v).abs() <= 0.5 * s * 1.0001,
                "{q} · {s} vs {v}"
            );
        }
        assert_eq!(activation_level(crate::QuantBits::Int4), 127.0);
    }

    #[test]
    fn a_zero_group_has_scale_zero_and_values_zero() {
        let x = [0.0f32; 64];
        let a = QuantRows::quantize(&x, 1, 64, 32767.0);
        assert_eq!((a.scales[0], a.sums[0]), (0.0, 0));
        assert!(a.q.iter().all(|&v| v == 0));
    }

    #[test]
    fn halves_round_to_even() {
        // absmax 127 → scale 1, inverse 1: 2.5 → 2, 3.5 → 4, −2.5 → −2
        let mut x = [0.0f32; 64];
        x[..4].copy_from_slice(&[127.0, 2.5, 3.5, -2.5]);
        let a = QuantRows::quantize(&x, 1, 64, 127.0);
        assert_eq!(&a.q[..4], &[127, 2, 4, -2]);
    }
}
