//! The quantized input rows of the GEMMs laid out sixteen to a vector (lanes are rows):
//! [`PairLanes`] (int16 values two to a 32-bit lane, under int8 weights) and
//! [`QuadLanes`] (int8 values four to a lane, under int4 weights). The AVX-512 kernels
//! read a step of 16 rows as one vector, the AVX2 ones as two halves of 8 rows.

use rayon::prelude::*;

use super::activations::QuantRows;
use super::tiling::LANES;
use crate::quant_format::QUANT_GROUP;

/// Two-value steps per group of [`PairLanes`].
const PAIR_STEPS: usize = QUANT_GROUP / 2;
/// Four-value steps per group of [`QuadLanes`].
const QUAD_STEPS: usize = QUANT_GROUP / 4;

/// The quantized rows sixteen to a vector: per row vector and group, 32 two-value steps
/// of 16 rows × 2 input channels (`[vectors][groups][32 steps][16 rows][2]`), and the
/// scale of each row's group (`[vectors][groups][16 rows]`); rows past the last are 0.
pub(super) struct PairLanes {
    pub(super) vectors: usize,
    pub(super) groups: usize,
    q: Vec<i16>,
    scales: Vec<f32>,
}

/// Values of one (vector, group) block of [`PairLanes::q`].
pub(super) const PAIR_BLOCK: usize = QUANT_GROUP * LANES;

impl PairLanes {
    pub(super) fn new(x: &QuantRows) -> Self {
        let (groups, vectors) = (x.groups, x.rows.div_ceil(LANES));
        let mut lanes = Self {
            vectors,
            groups,
            q: vec![0i16; vectors * groups * PAIR_BLOCK],
            scales: vec![0.0f32; vectors * groups * LANES],
        };
        lanes
            .q
            .par_chunks_mut(groups * PAIR_BLOCK)
            .zip(lanes.scales.par_chunks_mut(groups * LANES))
            .enumerate()
            .for_each(|(v, (q, scales))| {
                for lane in 0..LANES.min(x.rows - v * LANES) {
                    let r = v * LANES + lane;
                    let (xq, sx) = (x.row(r), x.row_scales(r));
                    for g in 0..groups {
                        scales[g * LANES + lane] = sx[g];
                        for s in 0..PAIR_STEPS {
                            let d = ((g * PAIR_STEPS + s) * LANES + lane) * 2;
                            let k = g * QUANT_GROUP + 2 * s;
                            q[d..d + 2].copy_from_slice(&xq[k..k + 2]);
                        }
                    }
                }
            });
        lanes
    }

    /// Vector `v`'s group `g`: its values and scales.
    pub(super) fn group(&self, v: usize, g: usize) -> (&[i16; PAIR_BLOCK], &[f32; LANES]) {
        let i = v * self.groups + g;
        let q = self.q[i * PAIR_BLOCK..(i + 1) * PAIR_BLOCK]
            .try_into()
            .expect("a block");
        let scales = self.scales[i * LANES..(i + 1) * LANES]
            .try_into()
            .expect("16 scales");
        (q, scales)
    }
}

/// The quantized rows sixteen to a vector: per row vector and group, 16 four-byte steps
/// of 16 rows × 4 input channels (`[vectors][groups][16 steps][16 rows][4]`), and the
/// accumulator start `−offset · Σ q` and the scale of each row's group
/// (`[vectors][groups][16 rows]`); rows past the last are 0.
pub(super) struct QuadLanes {
    pub(super) vectors: usize,
    pub(super) groups: usize,
    q: Vec<i8>,
    start: Vec<i32>,
    scales: Vec<f32>,
}

impl QuadLanes {
    pub(super) fn new(x: &QuantRows, offset: i32) -> Self {
        let (groups, vectors) = (x.groups, x.rows.div_ceil(LANES));
        let mut lanes = Self {
            vectors,
            groups,
            q: vec![0i8; vectors * groups * QUANT_GROUP * LANES],
            start: vec![0i32; vectors * groups * LANES],
            scales: vec![0.0f32; vectors * groups * LANES],
        };
        lanes
            .q
            .par_chunks_mut(groups * QUANT_GROUP * LANES)
            .zip(lanes.start.par_chunks_mut(groups * LANES))
            .zip(lanes.scales.par_chunks_mut(groups * LANES))
            .enumerate()
            .for_each(|(v, ((q, start), scales))| {
                for lane in 0..LANES.min(x.rows - v * LANES) {
                    let r = v * LANES + lane;
                    let (xq, sums, sx) = (x.row(r), x.row_sums(r), x.row_scales(r));
                    for g in 0..groups {
                        start[g * LANES + lane] = -offset * sums[g];
                        scales[g * LANES + lane] = sx[g];
                        for s in 0..QUAD_STEPS {
                            let d = ((g * QUAD_STEPS + s) * LANES + lane) * 4;
                            for (b, &v) in q[d..d + 4].iter_mut().zip(&xq[g * 64 + s * 4..]) {
                                *b = v as i8;
                            }
                        }
                    }
                }
            });
        lanes
    }

    /// Vector `v`'s group `g`: its 1024 bytes, accumulator starts and scales.
    pub(super) fn group(&self, v: usize, g: usize) -> (&[i8; 1024], &[i32; 16], &[f32; 16]) {
        let i = v * self.groups + g;
        let q = self.q[i * 1024..(i + 1) * 1024].try_into().expect("1024");
        let start = self.start[i * 16..(i + 1) * 16].try_into().expect("16");
        let scales = self.scales[i * 16..(i + 1) * 16].try_into().expect("16");
        (q, start, scales)
    }
}
