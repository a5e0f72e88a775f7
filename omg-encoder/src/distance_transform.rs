//! Centre point of a mask prompt, bit-compatible with OMG-LLaVA's `get_center_coords`.
//!
//! OMG-LLaVA turns every mask prompt (`<region>` token) into a single point before it builds the
//! SAM-style query (`get_center_coords` in `omg_llava/model/omg_seg/mask2former_vid_semanticsam.py`):
//!
//! ```python
//! mask_dt = distance_transform((~F.pad(mask, pad=(1,1,1,1), mode='constant', value=0)).float())[:, :, 1:-1, 1:-1]
//! selected_point = torch.tensor([mask_dt.argmax() / w, mask_dt.argmax() % w]).long().flip(0)   # (x, y)
//! ```
//!
//! with `kornia.contrib.distance_transform(image, kernel_size=3, h=0.35)` of kornia 0.7.1.
//!
//! # kornia's cascaded-convolution distance transform
//!
//! kornia approximates a distance transform with `n_iters = max(H, W)` passes. Every pass
//! correlates the current *boundary* image (non-zero pixels of the input, plus every pixel
//! updated so far) with the un-normalised 3×3 kernel `k = exp(-hypot(dy, dx) / 0.35)` under
//! replicate padding, computes `cdt = -0.35 · ln(sum)` (`+inf` turned into 0) and, for every
//! pixel with `cdt > 0`, adds `offset + cdt` to the output and adds the pixel to the boundary;
//! it stops early once a pass updates nothing.
//!
//! Boundary pixels have the kernel centre `1` in their sum, so `sum ≥ 1` and `cdt ≤ 0`: they stay
//! 0. A non-boundary pixel without a boundary pixel in its 8-neighbourhood has `sum = 0`, so
//! `cdt = 0` and it waits. A non-boundary pixel with at least one boundary neighbour has
//! `0 < sum ≤ 4·k_edge + 4·k_diag ≈ 0.30 < 1` (also with replicate padding), so `cdt > 0` and it is
//! updated. Hence **every pixel is updated exactly once**, in the pass `i` whose boundary first
//! touches it, i.e. `i + 1` is its chessboard (8-neighbourhood) distance to the nearest non-zero
//! input pixel, and all updates of a pass are simultaneous: the boundary seen by a pixel of pass
//! `i` is exactly the set of pixels at a smaller distance. This module therefore computes
//! that distance with the exact two-pass raster chamfer and then every value in one more raster
//! pass, `O(pixels)` instead of `max(H, W)` full-image convolutions, with the same `f32`
//! arithmetic as PyTorch on the CPU:
//!
//! * the kernel in `f32`: `exp(hypot(dy, dx) / -0.35)` (bit-identical to kornia's);
//! * the 3×3 sum in `f32`, adding the products one by one in row-major kernel order (this is the
//!   order of PyTorch's CPU `conv2d` for this one-channel case, checked bit-exactly on images up
//!   to 1026×1026); clamped (replicate) coordinates decide which pixel a kernel tap reads. The sum
//!   only depends on which of the 8 off-centre taps read a boundary pixel, so the 256 possible
//!   `cdt` values are computed once;
//! * `cdt = (-0.35f32) · ln(sum)` in `f32` (with PyTorch's `log`, see *Accuracy*), then
//!   `out = offset + cdt` in `f32` (kornia's `out` starts at zero and each pixel receives exactly
//!   one addition).
//!
//! **The offset quirk.** kornia writes `offset = i * kernel_size // 2`, which Python parses as
//! `(i * 3) // 2`, not `i * (3 // 2)`: the offsets of the passes are `0, 1, 3, 4, 6, 7, …`, not
//! `0, 1, 2, 3, …`. It is reproduced here because it decides which pixel wins the arg-max.
//!
//! **Accuracy.** Kernel values and sums are bit-identical to kornia. The logarithm is
//! [`f32::ln`] (correctly rounded) except for three of the 29 sums that can occur, where
//! PyTorch's CPU `log` is one ulp off and its result is used instead (see
//! `TORCH_CPU_LN`), so every value is bit-identical to kornia 0.7.1 on PyTorch 2.5.1 (CPU). This
//! matters for the arg-max: with a correctly rounded `ln`, the two summation orders of
//! `k_diag + k_edge + k_diag` (one ulp apart) tie after `ln`, while PyTorch separates them, and
//! that ordering survives `offset + cdt` for offsets up to 7, i.e. in thin masks. (On a GPU,
//! kornia's convolution and `log` round differently again; the official parity fixtures are CPU.)
//!
//! # Centre point
//!
//! [`region_center`] pads the mask by one background pixel on every side, inverts it (the
//! background becomes the boundary), runs the transform, crops the padding and returns the
//! first maximum in row-major order, as `torch.argmax` does on the CPU. Background pixels are
//! boundary pixels whose value is 0, and a mask pixel only sees pixels at most one step away, so
//! the work is restricted to the mask's bounding box grown by one pixel; the result is identical
//! to transforming the whole padded image. A full 1024×1024 mask (the worst case) takes about
//! 15 ms in release builds, a typical region far less.

/// `h` of `kornia.contrib.distance_transform` as used by OMG-LLaVA (kornia's default).
const H: f32 = 0.35;

/// Level of a pixel that no pass reaches (an image without any boundary pixel).
const UNREACHED: u32 = u32::MAX;

/// `torch.log` of PyTorch 2.5.1 on the CPU (x86-64 build, the same under every
/// `ATEN_CPU_CAPABILITY`, presumably MKL's VML) is not correctly rounded. Of the 29 distinct sums a 3×3 neighbourhood can produce, it differs
/// from the correctly rounded [`f32::ln`] (by one ulp) at exactly these three, given as
/// `(sum bits, torch.log bits)`. The first, `k_diag + k_edge + k_diag`, is the sum of every pixel
/// next to a straight boundary, and it makes `ln` of the two summation orders of that sum
/// differ in PyTorch while they tie with `f32::ln`, which can move the arg-max of thin masks.
const TORCH_CPU_LN: [(u32, u32); 3] = [
    (0x3dbd_a843, 0xc018_4818), // ln(0.09260609) = -2.3794003 (correctly rounded: -2.3794005)
    (0x3e2b_a601, 0xbfe4_9c6a), // ln(0.16762544) = -1.7860234 (correctly rounded: -1.7860233)
    (0x3e87_a17d, 0xbfaa_089e), // ln(0.26490393) = -1.3283880 (correctly rounded: -1.3283881)
];

/// Natural logarithm with PyTorch's CPU results on the sums of [`kornia_distance_transform`].
fn torch_cpu_ln(x: f32) -> f32 {
    let bits = x.to_bits();
    TORCH_CPU_LN
        .iter()
        .find(|&&(s, _)| s == bits)
        .map_or_else(|| x.ln(), |&(_, l)| f32::from_bits(l))
}

/// kornia's 3×3 kernel `exp(hypot(dy, dx) / -h)` in `f32`, indexed `[dy + 1][dx + 1]`.
fn kernel() -> [[f32; 3]; 3] {
    let mut k = [[0.0f32; 3]; 3];
    for (ky, row) in k.iter_mut().enumerate() {
        for (kx, v) in row.iter_mut().enumerate() {
            let dy = ky as f32 - 1.0;
            let dx = kx as f32 - 1.0;
            *v = (dy.hypot(dx) / -H).exp();
        }
    }
    k
}

/// Chessboard distance of every pixel to the nearest `true` pixel (`u32::MAX` without any), by
/// the two-pass raster chamfer with unit weights on the 8-neighbourhood, which is exact for this
/// metric. It equals the pass (plus one) in which kornia updates the pixel.
fn chessboard_levels(boundary: &[bool], height: usize, width: usize) -> Vec<u32> {
    let mut d: Vec<u32> = boundary
        .iter()
        .map(|&b| if b { 0 } else { UNREACHED })
        .collect();
    let step = |v: u32| v.saturating_add(1);
    // Forward: upper-left, up, upper-right, left.
    for y in 0..height {
        for x in 0..width {
            let p = y * width + x;
            let mut v = d[p];
            if v == 0 {
                continue;
            }
            if x > 0 {
                v = v.min(step(d[p - 1]));
            }
            if y > 0 {
                let u = p - width;
                v = v.min(step(d[u]));
                if x > 0 {
                    v = v.min(step(d[u - 1]));
                }
                if x + 1 < width {
                    v = v.min(step(d[u + 1]));
                }
            }
            d[p] = v;
        }
    }
    // Backward: lower-right, down, lower-left, right.
    for y in (0..height).rev() {
        for x in (0..width).rev() {
            let p = y * width + x;
            let mut v = d[p];
            if v == 0 {
                continue;
            }
            if x + 1 < width {
                v = v.min(step(d[p + 1]));
            }
            if y + 1 < height {
                let b = p + width;
                v = v.min(step(d[b]));
                if x > 0 {
                    v = v.min(step(d[b - 1]));
                }
                if x + 1 < width {
                    v = v.min(step(d[b + 1]));
                }
            }
            d[p] = v;
        }
    }
    d
}

/// kornia 0.7.1 `kornia.contrib.distance_transform(image, kernel_size=3, h=0.35)` of one
/// `height × width` image, row-major.
///
/// `boundary[y * width + x]` is `true` where the image is non-zero: kornia measures the
/// (approximate) distance of every pixel to the nearest non-zero pixel. The result equals kornia's
/// for a float image holding exactly `1.0` at those pixels and `0.0` elsewhere (the usual binary
/// input, and the one OMG-LLaVA passes). Boundary pixels get 0; a pixel first touched in pass `i`
/// (i.e. at Chebyshev distance `i + 1` from the boundary) gets `(i * 3) / 2 + cdt` with
/// `cdt = -0.35 · ln(Σ k · boundary)` over its replicate-padded 3×3 neighbourhood, all in `f32`
/// (see the [module documentation](self)). Pixels the boundary never reaches (an image without any
/// non-zero pixel) stay 0, like in kornia.
///
/// Runs in `O(height · width)` time.
///
/// Returns `None` if `boundary.len() != height * width`.
pub fn kornia_distance_transform(
    boundary: &[bool],
    height: usize,
    width: usize,
) -> Option<Vec<f32>> {
    if boundary.len() != height * width {
        return None;
    }
    Some(transform_checked(boundary, height, width))
}

fn transform_checked(boundary: &[bool], height: usize, width: usize) -> Vec<f32> {
    let n = height * width;
    let mut out = vec![0.0f32; n];
    if n == 0 {
        return out;
    }
    // `cdt` of every combination of boundary taps: bit `j` of the index is set when the `j`-th
    // off-centre tap (row-major) reads a boundary pixel; the centre tap reads the pixel itself,
    // which is not boundary yet. The sum adds the products in row-major tap order like PyTorch's
    // CPU `conv2d` (adding the zero products changes nothing).
    let k = kernel();
    let taps: [f32; 8] = [
        k[0][0], k[0][1], k[0][2], k[1][0], k[1][2], k[2][0], k[2][1], k[2][2],
    ];
    let cdt_of: Vec<f32> = (0..256usize)
        .map(|bits| {
            let mut sum = 0.0f32;
            for (j, &kv) in taps.iter().enumerate() {
                if bits >> j & 1 == 1 {
                    sum += kv;
                }
            }
            // kornia: cdt = nan_to_num(-h * log(sum), posinf=0).
            let cdt = -H * torch_cpu_ln(sum);
            if cdt.is_finite() { cdt } else { 0.0 }
        })
        .collect();

    // level[p] = the pass in which p is updated, plus one = its chessboard (8-neighbourhood)
    // distance to the nearest boundary pixel; 0 on the boundary. Two raster passes of the
    // unit-weight 3×3 chamfer give it exactly.
    let level = chessboard_levels(boundary, height, width);
    // kornia: n_iters = ceil(max(H, W) / floor(kernel_size / 2)). Levels are contiguous, so
    // the early `break` (a pass that updates nothing) only skips passes without any pixel.
    let n_iters = u32::try_from(height.max(width)).unwrap_or(u32::MAX);
    for y in 0..height {
        // Replicate padding: clamp the taps' coordinates into the image.
        let rows = [y.saturating_sub(1), y, (y + 1).min(height - 1)].map(|r| r * width);
        for x in 0..width {
            let lvl = level[y * width + x];
            if lvl == 0 || lvl > n_iters {
                // Boundary (cdt <= 0), or never reached (no boundary at all).
                continue;
            }
            let cols = [x.saturating_sub(1), x, (x + 1).min(width - 1)];
            // Taps on the boundary of pass i = lvl - 1: pixels with a smaller level.
            let mut bits = 0usize;
            let mut j = 0;
            for (ky, &r) in rows.iter().enumerate() {
                for (kx, &c) in cols.iter().enumerate() {
                    if ky == 1 && kx == 1 {
                        continue;
                    }
                    if level[r + c] < lvl {
                        bits |= 1 << j;
                    }
                    j += 1;
                }
            }
            let cdt = cdt_of[bits];
            // A pixel of level >= 1 has a neighbour of the level below: 0 < sum < 1, so
            // cdt > 0 and kornia updates it in this pass (`mask = cdt > 0`).
            debug_assert!(cdt > 0.0, "pixel ({y}, {x}) of level {lvl} has cdt {cdt}");
            // kornia: offset = i * kernel_size // 2 == (i * 3) // 2 with i = lvl - 1; out starts
            // at 0 and receives this single addition.
            let i = lvl - 1;
            out[y * width + x] = (i * 3 / 2) as f32 + cdt;
        }
    }
    out
}

/// Centre point `(x, y)` of a mask prompt, exactly as OMG-LLaVA's `get_center_coords`.
///
/// `mask[y * width + x]` is `true` inside the region. The mask is padded by one background pixel
/// on each side and inverted, [`kornia_distance_transform`] is applied, the padding is cropped,
/// and the position of the first maximum in row-major order is returned as `(x, y)` (column,
/// row), like `torch.argmax` followed by `[idx / w, idx % w].long().flip(0)`. (That official
/// index split goes through `f32` and is exact while `height * width ≤ 2^24`, which covers every
/// input size OMG-LLaVA uses.) Only the mask's bounding box plus one pixel is transformed.
///
/// Returns `None` for an empty mask (no `true` pixel), so that callers can report an error. The
/// official code does not fail there: every distance is 0, the arg-max is index 0, and it
/// silently uses the point `(0, 0)`.
///
/// Also `None` if `mask.len() != height * width`.
pub fn region_center(mask: &[bool], height: usize, width: usize) -> Option<(usize, usize)> {
    if mask.len() != height * width {
        return None;
    }
    // Bounding box of the mask (inclusive).
    let mut y0 = usize::MAX;
    let mut y1 = 0;
    let mut x0 = usize::MAX;
    let mut x1 = 0;
    for y in 0..height {
        let row = &mask[y * width..(y + 1) * width];
        if let Some(first) = row.iter().position(|&m| m) {
            let last = row.iter().rposition(|&m| m).unwrap_or(first);
            y0 = y0.min(y);
            y1 = y;
            x0 = x0.min(first);
            x1 = x1.max(last);
        }
    }
    if y0 == usize::MAX {
        return None;
    }
    // Window = bounding box grown by one pixel, in the coordinates of the unpadded mask; its
    // outer ring is background (inside the image) or zero padding, i.e. boundary either way.
    let wh = y1 - y0 + 3;
    let ww = x1 - x0 + 3;
    let mut boundary = vec![true; wh * ww];
    for wy in 1..wh - 1 {
        let y = y0 + wy - 1;
        let src = &mask[y * width + x0..=y * width + x1];
        for (b, &m) in boundary[wy * ww + 1..wy * ww + ww - 1].iter_mut().zip(src) {
            *b = !m;
        }
    }
    let dt = transform_checked(&boundary, wh, ww);
    // First maximum in row-major order. Every mask pixel has a positive value and every other
    // pixel of the (cropped) full image has 0, and row-major order within the window agrees with
    // row-major order in the image, so the window's first maximum is the image's.
    let mut best = 0;
    for (p, &v) in dt.iter().enumerate() {
        if v > dt[best] {
            best = p;
        }
    }
    let (wy, wx) = (best / ww, best % ww);
    Some((x0 + wx - 1, y0 + wy - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_matches_kornia_bits() {
        // torch 2.5.1: create_meshgrid(3, 3, False) - 1, exp(hypot / -0.35), float32.
        let k = kernel();
        assert_eq!(k[0][0].to_bits(), 0x3c90_120f);
        assert_eq!(k[0][1].to_bits(), 0x3d6b_3e76);
        assert_eq!(k[1][1].to_bits(), 0x3f80_0000);
        assert_eq!(k[1][0], k[0][1]);
        assert_eq!(k[2][2], k[0][0]);
    }

    /// Every sum a pixel can see is a row-major sequential sum over a subset of the 8
    /// off-centre taps (replicate padding only changes which pixel a tap reads); there are 29
    /// distinct ones and the `TORCH_CPU_LN` overrides are among them.
    #[test]
    fn possible_sums_cover_overrides() {
        let k = kernel();
        let taps: Vec<f32> = (0..9)
            .filter(|&t| t != 4)
            .map(|t| k[t / 3][t % 3])
            .collect();
        let mut sums: Vec<u32> = (1u32..256)
            .map(|m| {
                let mut s = 0.0f32;
                for (j, &kv) in taps.iter().enumerate() {
                    if m >> j & 1 == 1 {
                        s += kv;
                    }
                }
                assert!(s < 1.0 && -H * torch_cpu_ln(s) > 0.0);
                s.to_bits()
            })
            .collect();
        sums.sort_unstable();
        sums.dedup();
        assert_eq!(sums.len(), 29);
        for (s, l) in TORCH_CPU_LN {
            assert!(sums.contains(&s));
            let (x, t) = (f32::from_bits(s), f32::from_bits(l));
            assert_eq!(x.ln().to_bits().abs_diff(t.to_bits()), 1);
        }
    }

    /// kornia's loop, literally: `max(H, W)` passes of a replicate-padded 3×3 correlation.
    fn kornia_loop(image: &[bool], height: usize, width: usize) -> Vec<f32> {
        let k = kernel();
        let mut boundary: Vec<f32> = image.iter().map(|&b| f32::from(u8::from(b))).collect();
        let mut out = vec![0.0f32; image.len()];
        for i in 0..height.max(width) {
            let mut cdt = vec![0.0f32; image.len()];
            for y in 0..height {
                for x in 0..width {
                    let mut sum = 0.0f32;
                    for (ky, krow) in k.iter().enumerate() {
                        let sy = (y + ky).saturating_sub(1).min(height - 1);
                        for (kx, &kv) in krow.iter().enumerate() {
                            let sx = (x + kx).saturating_sub(1).min(width - 1);
                            sum += boundary[sy * width + sx] * kv;
                        }
                    }
                    let c = -H * torch_cpu_ln(sum);
                    cdt[y * width + x] = if c == f32::INFINITY { 0.0 } else { c };
                }
            }
            let mask: Vec<bool> = cdt.iter().map(|&c| c > 0.0).collect();
            if !mask.iter().any(|&m| m) {
                break;
            }
            let offset = (i * 3 / 2) as f32;
            for p in 0..image.len() {
                if mask[p] {
                    out[p] += offset + cdt[p];
                    boundary[p] = 1.0;
                }
            }
        }
        out
    }

    #[test]
    fn matches_literal_kornia_loop() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..300 {
            let height = 1 + (rand() % 19) as usize;
            let width = 1 + (rand() % 23) as usize;
            let density = rand() % 100;
            let image: Vec<bool> = (0..height * width)
                .map(|_| rand() % 1000 < density * 3)
                .collect();
            let got = kornia_distance_transform(&image, height, width).expect("sizes match");
            let want = kornia_loop(&image, height, width);
            for (p, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "case {case} ({height}x{width}) pixel {p}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn offsets_follow_kornia_precedence() {
        // A 1x9 strip with a boundary pixel at the left end: pass i reaches x = i + 1.
        let mut b = vec![false; 9];
        b[0] = true;
        let dt = kornia_distance_transform(&b, 1, 9).expect("sizes match");
        let offsets: Vec<f32> = dt.iter().skip(1).map(|v| v.floor()).collect();
        assert_eq!(offsets, [0.0, 1.0, 3.0, 4.0, 6.0, 7.0, 9.0, 10.0]);
    }

    #[test]
    fn no_boundary_gives_zeros() {
        assert!(
            kornia_distance_transform(&[false; 12], 3, 4)
                .expect("sizes match")
                .iter()
                .all(|&v| v == 0.0)
        );
        assert!(
            kornia_distance_transform(&[true; 12], 3, 4)
                .expect("sizes match")
                .iter()
                .all(|&v| v == 0.0)
        );
    }

    #[test]
    fn empty_mask_is_none_single_pixel_is_itself() {
        assert_eq!(region_center(&[false; 20], 4, 5), None);
        let mut m = vec![false; 20];
        m[2 * 5 + 3] = true;
        assert_eq!(region_center(&m, 4, 5), Some((3, 2)));
    }
}
