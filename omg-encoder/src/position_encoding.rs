//! Sine positional encodings of mmdet (`SinePositionalEncoding`, normalised), computed
//! on the host in f32 exactly as the official code orders the operations.

use burn::tensor::{Tensor, TensorData, backend::Backend};

const TEMPERATURE: f32 = 10000.0;
const SCALE: f32 = 2.0 * std::f32::consts::PI;
const EPS: f32 = 1e-6;

/// `pe(v)[k] = sin(v / τ^(2⌊k/2⌋/F))` for even `k`, `cos(…)` for odd `k`.
fn interleaved(v: f32, num_feats: usize, out: &mut Vec<f32>) {
    for k in 0..num_feats {
        let dim_t = TEMPERATURE.powf((2 * (k / 2)) as f32 / num_feats as f32);
        let a = v / dim_t;
        out.push(if k % 2 == 0 { a.sin() } else { a.cos() });
    }
}

/// mmdet `coordinate_to_encoding` of one box `(cx, cy, w, h)` (relative, in [0, 1]):
/// `[pe(cy·2π), pe(cx·2π), pe(w·2π), pe(h·2π)]`, `num_feats` channels each (y first).
pub fn coordinate_encoding(cxcywh: [f32; 4], num_feats: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(4 * num_feats);
    for v in [cxcywh[1], cxcywh[0], cxcywh[2], cxcywh[3]] {
        interleaved(v * SCALE, num_feats, &mut out);
    }
    out
}

/// The 2-D encoding of an `h×w` map without padding: `[pe(ŷ), pe(x̂)]` per pixel with
/// `ŷ = (i+1)/(h+ε)·2π`, `x̂ = (j+1)/(w+ε)·2π`; `num_feats` channels each. Returned as
/// `[1, 2·num_feats, h, w]`.
pub fn sine_2d<B: Backend>(
    h: usize,
    w: usize,
    num_feats: usize,
    device: &B::Device,
) -> Tensor<B, 4> {
    let c = 2 * num_feats;
    let mut pix = Vec::with_capacity(c);
    let mut data = vec![0f32; c * h * w];
    for i in 0..h {
        let y = (i + 1) as f32 / (h as f32 + EPS) * SCALE;
        for j in 0..w {
            let x = (j + 1) as f32 / (w as f32 + EPS) * SCALE;
            pix.clear();
            interleaved(y, num_feats, &mut pix);
            interleaved(x, num_feats, &mut pix);
            for (ch, v) in pix.iter().enumerate() {
                data[(ch * h + i) * w + j] = *v;
            }
        }
    }
    Tensor::from_data(TensorData::new(data, [1, c, h, w]), device)
}

/// mmdet `SinePositionalEncoding3D` of a single frame (`T = 1`): the 2-D encoding
/// plus a constant `z` term, `pe_z(1/(1+ε)·2π)` over `2·num_feats` channels, added to
/// every position. `[1, 2·num_feats, h, w]`.
pub fn sine_3d_single_frame<B: Backend>(
    h: usize,
    w: usize,
    num_feats: usize,
    device: &B::Device,
) -> Tensor<B, 4> {
    let c = 2 * num_feats;
    let z = 1.0f32 / (1.0 + EPS) * SCALE;
    let mut pe_z = Vec::with_capacity(c);
    interleaved(z, c, &mut pe_z);
    let pe_z = Tensor::<B, 4>::from_data(TensorData::new(pe_z, [1, c, 1, 1]), device);
    sine_2d::<B>(h, w, num_feats, device) + pe_z
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn y_comes_first_and_channels_interleave_sin_cos() {
        let pe = sine_2d::<Flex>(2, 3, 4, &Default::default());
        let v = pe.into_data().into_vec::<f32>().unwrap();
        let at = |ch: usize, i: usize, j: usize| v[(ch * 2 + i) * 3 + j];
        let y1 = 2.0 / (2.0 + 1e-6) * SCALE; // row 1
        let x2 = 3.0 / (3.0 + 1e-6) * SCALE; // col 2
        assert!((at(0, 1, 2) - y1.sin()).abs() < 1e-6);
        assert!((at(1, 1, 2) - y1.cos()).abs() < 1e-6);
        let d = 10000f32.powf(0.5);
        assert!((at(2, 1, 2) - (y1 / d).sin()).abs() < 1e-6);
        assert!((at(4, 1, 2) - x2.sin()).abs() < 1e-6);
        assert!((at(7, 1, 2) - (x2 / d).cos()).abs() < 1e-6);
    }
}
