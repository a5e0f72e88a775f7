//! Image preprocessing, exact to the official OMG-LLaVA Python pipeline.
//!
//! The official tools do
//!
//! ```python
//! image = Image.open(path).convert("RGB")
//! image = expand2square(image, tuple(int(x * 255) for x in image_processor.image_mean))
//! pixel_values = image_processor.preprocess(image, return_tensors="pt")["pixel_values"][0]
//! ```
//!
//! with a transformers `CLIPImageProcessor(size=1024, crop_size=1024, resample=3, ...)`. For a square
//! input that is: a Pillow BICUBIC resize of the uint8 square to `target × target`, a no-op centre crop,
//! `x · (1/255)` and `(x − mean) / std`, channels first. This module reproduces every step bit for bit:
//!
//! 1. [`to_rgb8`]: `.convert("RGB")` for the pixel formats the `image` crate decodes.
//! 2. [`expand_to_square`]: `expand2square` with [`PAD_COLOR`].
//! 3. [`resize_bicubic_pil`]: Pillow's fixed-point resampler (`libImaging/Resample.c`) with the bicubic
//!    filter, bit-exact for 8-bit RGB (up- and down-scaling, any sizes; [`resize_bicubic_pil_with`]
//!    also reproduces Pillow 13's pass order for non-square resizes).
//! 4. [`normalize_chw`]: the float arithmetic of transformers 4.36 (`rescale` in float64 then a cast to
//!    float32, `normalize` in float32), bit-exact.
//!
//! [`preprocess`] / [`preprocess_rgb`] chain them and also return the [`SquareTransform`] that maps
//! original pixel coordinates into the model's `target × target` frame and back.
//!
//! The output is a plain `Vec<f32>` in `[3, target, target]` order; turning it into a tensor of some
//! backend is the caller's business.
//!
//! Decoding is not part of the parity claim: PNG decodes identically everywhere, but a JPEG decoded by the
//! `image` crate (zune-jpeg) is not bit-identical to Pillow's libjpeg-turbo: on the sample photo
//! re-encoded as JPEG, 4:2:0 quality 90 differs by up to 4 (mean 0.18) per channel, 4:4:4 quality 95 by up
//! to 3 (mean 0.01). Feed the same decoded pixels to both sides when comparing. Neither side applies the
//! EXIF orientation (the official code does not call `exif_transpose`).

use image::{DynamicImage, ImageBuffer, Rgb, RgbImage};
use serde::{Deserialize, Serialize};

/// Fill colour of the square canvas: `tuple(int(m * 255) for m in image_mean)` of the official
/// pipeline, i.e. `(int(122.76), int(116.74), int(104.09))`.
pub const PAD_COLOR: [u8; 3] = [122, 116, 104];

/// Per-channel (R, G, B) mean of the CLIP normalisation, as `f32` (the dtype transformers casts it to).
pub const CLIP_MEAN: [f32; 3] = [0.4814, 0.4578, 0.4082];

/// Per-channel (R, G, B) standard deviation of the CLIP normalisation, as `f32`.
pub const CLIP_STD: [f32; 3] = [0.2686, 0.2613, 0.2757];

/// The side of the model input of the released OMG-LLaVA (`size = crop_size = 1024`).
pub const DEFAULT_TARGET: u32 = 1024;

/// The model input side must be a multiple of this (ConvNeXt stride 32 followed by a 2× pixel shuffle).
pub const TARGET_MULTIPLE: u32 = 64;

/// What can go wrong when preprocessing user-supplied pixels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreprocessError {
    /// The image has no pixels (width or height is zero).
    #[error("the image is empty ({width}x{height})")]
    EmptyImage {
        /// Width of the rejected image.
        width: u32,
        /// Height of the rejected image.
        height: u32,
    },
    /// The requested model input side is zero.
    #[error("the target size must be positive")]
    ZeroTarget,
    /// The requested model input side is not a multiple of [`TARGET_MULTIPLE`].
    #[error("the target size {0} is not a multiple of {TARGET_MULTIPLE}")]
    TargetNotMultiple(u32),
    /// The raw RGB buffer does not hold `width · height · 3` bytes.
    #[error("an RGB buffer of {width}x{height} needs {expected} bytes, got {actual}")]
    BufferLength {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// `width · height · 3` (as `u128`, so it cannot overflow).
        expected: u128,
        /// Length of the buffer that was passed.
        actual: usize,
    },
}

/// How original pixels map to the model input (and back).
///
/// The original `orig_width × orig_height` image is pasted at `(pad_x, pad_y)` on a `side × side`
/// canvas (`side = max(W, H)`; exactly one of the pads is non-zero unless the image is square), which
/// is then resized to `target × target`. A point therefore maps as
/// `((x + pad_x) · s, (y + pad_y) · s)` with `s = target / side` ([`SquareTransform::scale`]).
///
/// Coordinates are continuous pixel coordinates: the same formula is used by the official
/// `expand2square_points` followed by the multiplication by `1024 / S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SquareTransform {
    /// Width `W` of the original image.
    pub orig_width: u32,
    /// Height `H` of the original image.
    pub orig_height: u32,
    /// Side `S = max(W, H)` of the padded square.
    pub side: u32,
    /// Horizontal paste offset: `(H − W) // 2` if `H > W`, else 0.
    pub pad_x: u32,
    /// Vertical paste offset: `(W − H) // 2` if `W > H`, else 0.
    pub pad_y: u32,
    /// Side of the model input (1024 for the released model).
    pub target: u32,
}

impl SquareTransform {
    /// The transform of a `orig_width × orig_height` image padded to a square and resized to `target`.
    ///
    /// Any odd extra pixel of padding goes to the bottom or the right, like `expand2square`.
    /// Never panics; a zero-sized image gives `side = 0` and [`scale`](Self::scale) is then infinite or
    /// NaN (the preprocessing functions reject such images before building a transform).
    pub fn new(orig_width: u32, orig_height: u32, target: u32) -> Self {
        let side = orig_width.max(orig_height);
        Self {
            orig_width,
            orig_height,
            side,
            pad_x: (side - orig_width) / 2,
            pad_y: (side - orig_height) / 2,
            target,
        }
    }

    /// Model pixels per original pixel: `target / side`.
    pub fn scale(self) -> f64 {
        f64::from(self.target) / f64::from(self.side)
    }

    /// Original pixel coordinates → model frame: `((x + pad_x) · scale, (y + pad_y) · scale)`.
    pub fn to_model(self, x: f64, y: f64) -> (f64, f64) {
        let s = self.scale();
        (
            (x + f64::from(self.pad_x)) * s,
            (y + f64::from(self.pad_y)) * s,
        )
    }

    /// Model frame → original pixel coordinates (the inverse of [`to_model`](Self::to_model)).
    /// Points in the padding map outside `0..W × 0..H`; clamp them if needed.
    pub fn to_original(self, x: f64, y: f64) -> (f64, f64) {
        let s = self.scale();
        (x / s - f64::from(self.pad_x), y / s - f64::from(self.pad_y))
    }

    /// A box `[x1, y1, x2, y2]` in original pixels → model frame, shifting **both** corners.
    ///
    /// Difference from the official code: `OL/dataset/utils/utils.py::expand2square_bbox` (and the demo,
    /// which inherits it) adds the pad offset to `x1` (or `y1`) only, not to `x2` (or `y2`), so its boxes
    /// are too short by the padding on one side. This port applies the geometrically correct shift to
    /// both corners.
    pub fn box_to_model(self, b: [f64; 4]) -> [f64; 4] {
        let (x1, y1) = self.to_model(b[0], b[1]);
        let (x2, y2) = self.to_model(b[2], b[3]);
        [x1, y1, x2, y2]
    }

    /// A box `[x1, y1, x2, y2]` in the model frame → original pixels (both corners shifted).
    pub fn box_to_original(self, b: [f64; 4]) -> [f64; 4] {
        let (x1, y1) = self.to_original(b[0], b[1]);
        let (x2, y2) = self.to_original(b[2], b[3]);
        [x1, y1, x2, y2]
    }

    /// `(x0, y0, x1, y1)`: the original image's pixels inside the `side × side` square, end-exclusive,
    /// with `x1 = pad_x + W` and `y1 = pad_y + H`.
    ///
    /// This is exactly where `expand2square` pasted the image, and what the official RES/GCG evaluation
    /// crops. The official demo (`show_mask_pred`) instead ends the crop at
    /// `W − pad_y` (or `H − pad_x`), which is one pixel more when `|W − H|` is odd (it keeps one padding
    /// row/column); use [`demo_crop_in_square`](Self::demo_crop_in_square) to reproduce that.
    pub fn crop_in_square(self) -> (u32, u32, u32, u32) {
        (
            self.pad_x,
            self.pad_y,
            self.pad_x + self.orig_width,
            self.pad_y + self.orig_height,
        )
    }

    /// The official demo's crop box `(sx, sy, ex, ey)`: `ey = S − sy` (or `ex = S − sx`), one pixel taller
    /// (wider) than [`crop_in_square`](Self::crop_in_square) when `|W − H|` is odd. Only for reproducing
    /// the demo's output exactly.
    pub fn demo_crop_in_square(self) -> (u32, u32, u32, u32) {
        (
            self.pad_x,
            self.pad_y,
            self.side - self.pad_x,
            self.side - self.pad_y,
        )
    }
}

/// The preprocessed model input.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    /// Normalised pixels, `[3, target, target]` channels-first, row-major (R plane, then G, then B).
    pub pixel_values: Vec<f32>,
    /// How original pixel coordinates map to the model frame.
    pub transform: SquareTransform,
}

/// Converts any decoded image to 8-bit RGB the way Pillow's `.convert("RGB")` does.
///
/// - 8-bit RGB: unchanged. RGBA / grey+alpha: the alpha channel is dropped (no compositing), as Pillow
///   does. Grey: replicated into the three channels. (Palette PNGs are expanded by the decoder; the
///   palette colour is kept, transparency dropped, as in Pillow.)
/// - 16-bit RGB / RGBA / grey+alpha: the most significant byte (`v >> 8`), which is what Pillow's PNG
///   decoder keeps for these formats (raw modes `RGB;16B`, `RGBA;16B`, `LA;16B`).
/// - 16-bit grey: also the most significant byte. **This differs from Pillow on purpose**: Pillow opens a
///   16-bit grey PNG as mode `I;16` and `.convert("RGB")` then clamps the 16-bit value at 255, which turns
///   nearly every real 16-bit grey image white.
/// - 32-bit float formats: the `image` crate's conversion (clamp to `[0, 1]`, scale to 255, round);
///   Pillow does not open such files as RGB at all.
pub fn to_rgb8(img: &DynamicImage) -> RgbImage {
    fn map<P: image::Pixel, F: Fn(&P) -> [u8; 3]>(
        buf: &ImageBuffer<P, Vec<P::Subpixel>>,
        f: F,
    ) -> RgbImage {
        let mut out = RgbImage::new(buf.width(), buf.height());
        for (o, p) in out.pixels_mut().zip(buf.pixels()) {
            *o = Rgb(f(p));
        }
        out
    }
    let hi = |v: u16| (v >> 8) as u8;
    match img {
        DynamicImage::ImageRgb8(b) => b.clone(),
        DynamicImage::ImageRgba8(b) => map(b, |p| [p[0], p[1], p[2]]),
        DynamicImage::ImageLuma8(b) => map(b, |p| [p[0]; 3]),
        DynamicImage::ImageLumaA8(b) => map(b, |p| [p[0]; 3]),
        DynamicImage::ImageRgb16(b) => map(b, |p| [hi(p[0]), hi(p[1]), hi(p[2])]),
        DynamicImage::ImageRgba16(b) => map(b, |p| [hi(p[0]), hi(p[1]), hi(p[2])]),
        DynamicImage::ImageLuma16(b) => map(b, |p| [hi(p[0]); 3]),
        DynamicImage::ImageLumaA16(b) => map(b, |p| [hi(p[0]); 3]),
        other => other.to_rgb8(),
    }
}

/// Pads an RGB image to a centred square filled with [`PAD_COLOR`], like the official `expand2square`.
///
/// Returns the `S × S` square (`S = max(W, H)`) and the paste offset `(pad_x, pad_y)`: `(0, (W − H)//2)`
/// if `W > H`, `((H − W)//2, 0)` if `H > W`, `(0, 0)` if square (the image is returned unchanged).
pub fn expand_to_square(img: &RgbImage) -> (RgbImage, (u32, u32)) {
    let t = SquareTransform::new(img.width(), img.height(), 0);
    if img.width() == img.height() {
        return (img.clone(), (0, 0));
    }
    let (w, h, s) = (img.width() as usize, img.height() as usize, t.side as usize);
    let mut data = Vec::with_capacity(s * s * 3);
    for _ in 0..s * s {
        data.extend_from_slice(&PAD_COLOR);
    }
    let src = img.as_raw();
    for y in 0..h {
        let dst = ((y + t.pad_y as usize) * s + t.pad_x as usize) * 3;
        data[dst..dst + w * 3].copy_from_slice(&src[y * w * 3..(y + 1) * w * 3]);
    }
    let square = RgbImage::from_raw(t.side, t.side, data).expect("buffer has S*S*3 bytes");
    (square, (t.pad_x, t.pad_y))
}

/// The order of the two separable passes, which changed in Pillow 13.
///
/// Both passes round to 8 bits, so the order matters for non-square resizes. For the square-to-square
/// resize of the preprocessing both variants are identical (Pillow 13 only goes vertical-first when the
/// height shrinks by more than twice as many pixels as the width).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassOrder {
    /// Pillow ≤ 12 (the official OMG-LLaVA environment): horizontal pass, then vertical pass.
    #[default]
    HorizontalFirst,
    /// Pillow 13: vertical pass first when `in_h − out_h > 0` and `in_h − out_h > 2 · (in_w − out_w)`,
    /// otherwise horizontal first.
    Pillow13,
}

/// Pillow-exact `img.resize((width, height), Image.BICUBIC)` of an 8-bit RGB image, with the pass order
/// of Pillow ≤ 12 ([`PassOrder::HorizontalFirst`]); see [`resize_bicubic_pil_with`].
pub fn resize_bicubic_pil(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_bicubic_pil_with(img, width, height, PassOrder::HorizontalFirst)
}

/// Pillow-exact `img.resize((width, height), Image.BICUBIC)` of an 8-bit RGB image.
///
/// A port of Pillow's `ImagingResample` (`src/libImaging/Resample.c`, numerically unchanged from
/// Pillow 4.x to 13.0 except for the pass order, see [`PassOrder`]): a separable convolution with the
/// bicubic kernel `a = −0.5` and support `2 · max(1, in/out)` (so downscaling antialiases), coefficients
/// normalised to sum 1 in `f64` and converted to fixed point with 22 fractional bits, a horizontal pass
/// (only over the rows the vertical pass reads) into an 8-bit intermediate and a vertical pass, each
/// accumulating in `i32` from the rounding term `1 << 21` and clipping to `0..=255`. A pass is skipped
/// when its axis keeps its size, and an unchanged size returns a copy, as `Image.resize` does.
/// The tests check it byte for byte against Pillow 13.0 (and 10.1 for the pass order).
///
/// Pillow built for CPUs where the C compiler fuses multiply-adds (FMA, e.g. arm64) may compute a
/// coefficient one `f64` ulp differently, which could very rarely move a fixed-point weight by one unit;
/// this port follows the unfused x86-64 arithmetic.
///
/// Never panics: a zero `width` or `height` gives an empty image (Pillow raises instead), and an empty
/// input resized to a non-empty size gives black, which is what Pillow's C code computes for it.
pub fn resize_bicubic_pil_with(
    img: &RgbImage,
    width: u32,
    height: u32,
    order: PassOrder,
) -> RgbImage {
    let (in_w, in_h) = (img.width(), img.height());
    if (in_w, in_h) == (width, height) {
        return img.clone();
    }
    if width == 0 || height == 0 {
        return RgbImage::new(width, height);
    }
    let (in_w, in_h) = (in_w as usize, in_h as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let src = img.as_raw().as_slice();
    let need_horizontal = out_w != in_w;
    let need_vertical = out_h != in_h;
    let horizontal_first = match order {
        PassOrder::HorizontalFirst => true,
        PassOrder::Pillow13 => {
            let dh = in_h as i64 - out_h as i64;
            let dw = in_w as i64 - out_w as i64;
            !(dh > 0 && dh > dw * 2)
        }
    };
    // `(in0, in1)` of Pillow's `box`, as `float`: the whole image.
    let vert = Coeffs::new(in_h, 0.0, in_h as f32, out_h);
    let horiz = Coeffs::new(in_w, 0.0, in_w as f32, out_w);

    let out = if horizontal_first {
        if need_horizontal {
            // Only the rows the vertical pass reads (Pillow's `ybox_first..ybox_last`).
            let first = vert.spans.first().map_or(0, |s| s.start);
            let last = vert.spans.last().map_or(0, |s| s.start + s.len);
            let mid = horizontal_pass(src, in_w, first..last.max(first), &horiz);
            if need_vertical {
                vertical_pass(&mid, out_w, first, &vert)
            } else {
                mid
            }
        } else {
            vertical_pass(src, in_w, 0, &vert)
        }
    } else if need_vertical {
        let mid = vertical_pass(src, in_w, 0, &vert);
        if need_horizontal {
            horizontal_pass(&mid, in_w, 0..out_h, &horiz)
        } else {
            mid
        }
    } else {
        horizontal_pass(src, in_w, 0..in_h, &horiz)
    };
    RgbImage::from_raw(width, height, out).expect("the passes produce width*height*3 bytes")
}

/// Pillow's `_ImagingResampleHorizontal_8bpc` for RGB over the source rows `rows` of an `in_w`-wide image.
fn horizontal_pass(
    src: &[u8],
    in_w: usize,
    rows: std::ops::Range<usize>,
    coeffs: &Coeffs,
) -> Vec<u8> {
    let out_w = coeffs.spans.len();
    let mut out = vec![0u8; out_w * rows.len() * 3];
    if out.is_empty() {
        return out;
    }
    for (y, out_row) in rows.zip(out.chunks_exact_mut(out_w * 3)) {
        let in_row = &src[y * in_w * 3..(y + 1) * in_w * 3];
        for (span, out_px) in coeffs.spans.iter().zip(out_row.chunks_exact_mut(3)) {
            let k = &coeffs.weights[span.offset..span.offset + span.len];
            let px = &in_row[span.start * 3..(span.start + span.len) * 3];
            let (mut s0, mut s1, mut s2) = (ROUNDING, ROUNDING, ROUNDING);
            for (p, &w) in px.chunks_exact(3).zip(k) {
                s0 = s0.wrapping_add(i32::from(p[0]).wrapping_mul(w));
                s1 = s1.wrapping_add(i32::from(p[1]).wrapping_mul(w));
                s2 = s2.wrapping_add(i32::from(p[2]).wrapping_mul(w));
            }
            out_px.copy_from_slice(&[clip8(s0), clip8(s1), clip8(s2)]);
        }
    }
    out
}

/// Pillow's `_ImagingResampleVertical_8bpc` for RGB; `row_offset` is the first source row held in `src`.
/// Integer addition is exact, so accumulating whole rows at a time gives Pillow's per-pixel sums.
fn vertical_pass(src: &[u8], width: usize, row_offset: usize, coeffs: &Coeffs) -> Vec<u8> {
    let stride = width * 3;
    let mut out = vec![0u8; stride * coeffs.spans.len()];
    if out.is_empty() {
        return out;
    }
    let mut acc = vec![ROUNDING; stride];
    for (span, out_row) in coeffs.spans.iter().zip(out.chunks_exact_mut(stride)) {
        let k = &coeffs.weights[span.offset..span.offset + span.len];
        acc.fill(ROUNDING);
        for (j, &w) in k.iter().enumerate() {
            let y = span.start + j - row_offset;
            let row = &src[y * stride..(y + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(i32::from(p).wrapping_mul(w));
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// `PRECISION_BITS` of Pillow's 8-bit resampler: 32 − 8 − 2 fractional bits.
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Rounding term every accumulator starts from.
const ROUNDING: i32 = 1 << (PRECISION_BITS - 1);

/// Pillow's `clip8`: drop the fraction (arithmetic shift) and clamp to `0..=255`.
#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `bicubic_filter` (Keys kernel with `a = −0.5`), same operation order.
#[inline]
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Source window of one output pixel.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// First source pixel (`xmin`).
    start: usize,
    /// Number of source pixels (`xmax` after `xmax -= xmin`).
    len: usize,
    /// Index of the first weight in [`Coeffs::weights`].
    offset: usize,
}

/// Fixed-point resampling coefficients of one axis (`precompute_coeffs` + `normalize_coeffs_8bpc`).
struct Coeffs {
    spans: Vec<Span>,
    weights: Vec<i32>,
}

impl Coeffs {
    /// `in0`/`in1` are the `float` box edges Pillow passes (`0` and the input size for a plain resize).
    fn new(in_size: usize, in0: f32, in1: f32, out_size: usize) -> Self {
        const SUPPORT: f64 = 2.0; // BICUBIC.support
        // C: `(double)(in1 - in0) / outSize`, the subtraction in float.
        let scale = f64::from(in1 - in0) / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = SUPPORT * filterscale;
        let inv_filterscale = 1.0 / filterscale;
        let ksize = (support.ceil() as usize) * 2 + 1;

        let mut spans = Vec::with_capacity(out_size);
        let mut weights = Vec::with_capacity(out_size * ksize);
        let mut k = Vec::with_capacity(ksize);
        for xx in 0..out_size {
            let center = f64::from(in0) + (xx as f64 + 0.5) * scale;
            // C `(int)` truncates toward zero; negative values are clamped to 0 right after.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let len = (xmax - xmin).max(0) as usize;
            let xmin = xmin as usize;
            k.clear();
            let mut ww = 0.0;
            for x in 0..len {
                let w = bicubic_filter(((x + xmin) as f64 - center + 0.5) * inv_filterscale);
                k.push(w);
                ww += w;
            }
            if ww != 0.0 {
                for w in &mut k {
                    *w /= ww;
                }
            }
            let offset = weights.len();
            weights.extend(k.iter().map(|&w| {
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                if w < 0.0 {
                    (-0.5 + scaled) as i32
                } else {
                    (0.5 + scaled) as i32
                }
            }));
            spans.push(Span {
                start: xmin,
                len,
                offset,
            });
        }
        Self { spans, weights }
    }
}

/// Rescales and normalises a `target × target` RGB square into `[3, target, target]` floats, with the
/// exact arithmetic of transformers 4.36 `CLIPImageProcessor`:
///
/// - `rescale`: `image * (1/255)` on the uint8 array promotes to **float64**, then `.astype(float32)`;
/// - `normalize`: the mean and std become float32 arrays and `(x − mean) / std` runs in **float32**.
///
/// So each value is `(f32(u8 · (1/255)_f64) − mean_f32) / std_f32`, correctly rounded like numpy.
pub fn normalize_chw(square: &RgbImage) -> Vec<f32> {
    let plane = square.width() as usize * square.height() as usize;
    let mut out = vec![0f32; 3 * plane];
    // The 256 possible values per channel, computed once.
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, slot) in table.iter_mut().enumerate() {
            let rescaled = (v as f64 * (1.0 / 255.0)) as f32;
            *slot = (rescaled - CLIP_MEAN[c]) / CLIP_STD[c];
        }
    }
    for (i, p) in square.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = lut[c][p[c] as usize];
        }
    }
    out
}

fn check_target(target: u32) -> Result<(), PreprocessError> {
    if target == 0 {
        Err(PreprocessError::ZeroTarget)
    } else if !target.is_multiple_of(TARGET_MULTIPLE) {
        Err(PreprocessError::TargetNotMultiple(target))
    } else {
        Ok(())
    }
}

/// The full official preprocessing of a decoded image: [`to_rgb8`], [`expand_to_square`],
/// [`resize_bicubic_pil`] to `target × target`, [`normalize_chw`].
///
/// `target` is the model input side: 1024 ([`DEFAULT_TARGET`]) for the released model; any positive
/// multiple of 64 is accepted. See [`to_rgb8`] for how non-RGB8 formats (alpha, grey, 16-bit) are
/// converted.
///
/// # Errors
/// [`PreprocessError::EmptyImage`] for a zero-sized image, [`PreprocessError::ZeroTarget`] and
/// [`PreprocessError::TargetNotMultiple`] for a bad `target`.
pub fn preprocess(img: &DynamicImage, target: u32) -> Result<Preprocessed, PreprocessError> {
    check_target(target)?;
    if img.width() == 0 || img.height() == 0 {
        return Err(PreprocessError::EmptyImage {
            width: img.width(),
            height: img.height(),
        });
    }
    Ok(preprocess_rgb8(&to_rgb8(img), target))
}

/// [`preprocess`] for a raw, row-major, interleaved 8-bit RGB buffer of `width · height · 3` bytes.
///
/// # Errors
/// [`PreprocessError::EmptyImage`], [`PreprocessError::ZeroTarget`],
/// [`PreprocessError::TargetNotMultiple`], and [`PreprocessError::BufferLength`] when `rgb.len()` is not
/// `width · height · 3`.
pub fn preprocess_rgb(
    width: u32,
    height: u32,
    rgb: &[u8],
    target: u32,
) -> Result<Preprocessed, PreprocessError> {
    check_target(target)?;
    if width == 0 || height == 0 {
        return Err(PreprocessError::EmptyImage { width, height });
    }
    let expected = u128::from(width) * u128::from(height) * 3;
    let length_error = || PreprocessError::BufferLength {
        width,
        height,
        expected,
        actual: rgb.len(),
    };
    if rgb.len() as u128 != expected {
        return Err(length_error());
    }
    let img = RgbImage::from_raw(width, height, rgb.to_vec()).ok_or_else(length_error)?;
    Ok(preprocess_rgb8(&img, target))
}

/// The official pipeline on a non-empty RGB image; `target` already checked.
fn preprocess_rgb8(img: &RgbImage, target: u32) -> Preprocessed {
    let transform = SquareTransform::new(img.width(), img.height(), target);
    let (square, _) = expand_to_square(img);
    let resized = resize_bicubic_pil(&square, target, target);
    Preprocessed {
        pixel_values: normalize_chw(&resized),
        transform,
    }
}
