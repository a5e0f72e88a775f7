//! Parity of the image preprocessing with Pillow and transformers 4.36.2.
//!
//! The references under `tests/data/preprocess/` are written by `tests/data/make_pil_reference.py`
//! (real Pillow + transformers, see its docstring); `reference.json` lists the cases.

use omg_encoder::preprocess;

use std::path::{Path, PathBuf};

use image::{DynamicImage, RgbImage};
use preprocess::{
    CLIP_MEAN, CLIP_STD, PAD_COLOR, PassOrder, PreprocessError, SquareTransform, expand_to_square,
    normalize_chw, preprocess, preprocess_rgb, resize_bicubic_pil, resize_bicubic_pil_with,
    to_rgb8,
};
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(data_dir().join("preprocess/reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn open(rel: &str) -> DynamicImage {
    let path = data_dir().join(rel);
    image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn open_rgb(rel: &str) -> RgbImage {
    let img = open(rel);
    assert!(
        matches!(img, DynamicImage::ImageRgb8(_)),
        "{rel} is not 8-bit RGB"
    );
    img.to_rgb8()
}

/// (max |Δ|, mean |Δ|, number of differing bytes).
fn u8_diff(a: &RgbImage, b: &RgbImage) -> (u8, f64, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    let (mut max, mut sum, mut n) = (0u8, 0u64, 0usize);
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        sum += u64::from(d);
        n += usize::from(d != 0);
    }
    (max, sum as f64 / a.as_raw().len() as f64, n)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn u32_of(v: &Value, key: &str) -> u32 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}")) as u32
}

#[test]
fn pad_color_matches_the_reference() {
    let meta = reference();
    let pad: Vec<u8> = meta["pad_color"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(pad, PAD_COLOR);
    // tuple(int(m * 255) for m in image_mean), computed in f64 like Python.
    let from_mean: Vec<u8> = [0.4814f64, 0.4578, 0.4082]
        .iter()
        .map(|m| (m * 255.0) as u8)
        .collect();
    assert_eq!(from_mean, PAD_COLOR);
    assert_eq!(CLIP_MEAN, [0.4814f32, 0.4578, 0.4082]);
    assert_eq!(CLIP_STD, [0.2686f32, 0.2613, 0.2757]);
}

/// expand2square + PIL BICUBIC resize to the target, byte-exact, for the real photo (upscaled to 1024,
/// downscaled to 128) and the synthetic images.
#[test]
fn square_resize_matches_pil_exactly() {
    let meta = reference();
    let cases = meta["square_cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = str_of(case, "name");
        let target = u32_of(case, "target");
        let input = open(str_of(case, "input"));
        assert_eq!(input.width(), u32_of(case, "width"));
        assert_eq!(input.height(), u32_of(case, "height"));
        let (square, _) = expand_to_square(&to_rgb8(&input));
        let ours = resize_bicubic_pil(&square, target, target);
        let pil = open_rgb(str_of(case, "resized_png"));
        let (max, mean, n) = u8_diff(&ours, &pil);
        println!("{name} -> {target}: max |d| = {max}, mean |d| = {mean:.6}, {n} bytes differ");
        assert_eq!(max, 0, "{name} at {target}: {n} bytes differ from Pillow");
    }
}

/// Plain (non-square) resizes: up, down, one axis only, both, to 1×1; in the pass order of Pillow ≤ 12
/// (the default) and of Pillow 13.
#[test]
fn general_resize_matches_pil_exactly() {
    let meta = reference();
    let cases = meta["resize_cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    let mut order_matters = 0;
    for case in cases {
        let name = str_of(case, "name");
        let input = to_rgb8(&open(str_of(case, "input")));
        let (w, h) = (u32_of(case, "width"), u32_of(case, "height"));
        let ours = resize_bicubic_pil(&input, w, h);
        assert_eq!(
            resize_bicubic_pil_with(&input, w, h, PassOrder::HorizontalFirst),
            ours
        );
        let pil = open_rgb(str_of(case, "png"));
        let (max, _, n) = u8_diff(&ours, &pil);
        assert_eq!(
            max, 0,
            "{name} -> {w}x{h}: {n} bytes differ from Pillow <= 12"
        );

        let Some(png13) = case["png_pillow13"].as_str() else {
            continue;
        };
        let ours13 = resize_bicubic_pil_with(&input, w, h, PassOrder::Pillow13);
        let pil13 = open_rgb(png13);
        let (max, _, n) = u8_diff(&ours13, &pil13);
        assert_eq!(max, 0, "{name} -> {w}x{h}: {n} bytes differ from Pillow 13");
        order_matters += usize::from(ours13 != ours);
    }
    // The references include cases where the pass order changes the result.
    assert!(order_matters >= 1);
}

/// Square to square, the two pass orders agree (Pillow 13 only reorders when the height shrinks more).
#[test]
fn pass_order_is_irrelevant_for_squares() {
    let meta = reference();
    for case in meta["square_cases"].as_array().unwrap() {
        let (square, _) = expand_to_square(&to_rgb8(&open(str_of(case, "input"))));
        let t = u32_of(case, "target");
        assert_eq!(
            resize_bicubic_pil_with(&square, t, t, PassOrder::Pillow13),
            resize_bicubic_pil(&square, t, t)
        );
    }
}

/// The whole pipeline against transformers' `CLIPImageProcessor.preprocess` float32 output: bit-exact.
#[test]
fn pixel_values_match_transformers() {
    let meta = reference();
    let bytes = std::fs::read(data_dir().join("preprocess/clip_pixel_values.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut checked = 0;
    for case in meta["square_cases"].as_array().unwrap() {
        let Some(key) = case["pixel_values_key"].as_str() else {
            continue;
        };
        let target = u32_of(case, "target");
        let t = st.tensor(key).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        assert_eq!(t.shape(), &[3, target as usize, target as usize]);
        let want: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();

        let input = open(str_of(case, "input"));
        let got = preprocess(&input, target).unwrap();
        assert_eq!(
            got.transform,
            SquareTransform::new(input.width(), input.height(), target)
        );
        assert_eq!(got.pixel_values.len(), want.len());
        let mut max = 0f32;
        let mut bit_diff = 0usize;
        for (a, b) in got.pixel_values.iter().zip(&want) {
            max = max.max((a - b).abs());
            bit_diff += usize::from(a.to_bits() != b.to_bits());
        }
        println!("{key}: max |d| = {max:e}, {bit_diff} values not bit-identical");
        assert!(max <= 1e-6, "{key}: max |d| = {max}");
        assert_eq!(bit_diff, 0, "{key}: not bit-identical to transformers");

        // The raw-buffer entry point gives the same.
        let rgb = to_rgb8(&input);
        let raw = preprocess_rgb(rgb.width(), rgb.height(), rgb.as_raw(), target).unwrap();
        assert_eq!(raw, got);
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} float references");
}

/// `.convert("RGB")` of other pixel formats; 16-bit grey deliberately keeps the high byte instead of
/// Pillow's clamp at 255.
#[test]
fn pixel_formats_convert_like_pil() {
    let meta = reference();
    let cases = meta["mode_cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for case in cases {
        let input = open(str_of(case, "input"));
        let ours = to_rgb8(&input);
        let pil = open_rgb(str_of(case, "rgb"));
        if str_of(case, "pil_mode") == "I;16" {
            let DynamicImage::ImageLuma16(grey) = &input else {
                panic!("16-bit grey PNG decoded as {:?}", input.color());
            };
            for (o, g) in ours.pixels().zip(grey.pixels()) {
                assert_eq!(o.0, [(g.0[0] >> 8) as u8; 3]);
            }
            // Pillow clamps instead: the first pixels 0, 1, 127, 128, 254, 255, 256, 65535.
            let first: Vec<u8> = (0..8).map(|x| pil.get_pixel(x, 0).0[0]).collect();
            assert_eq!(first, [0, 1, 127, 128, 254, 255, 255, 255]);
            continue;
        }
        let (max, _, n) = u8_diff(&ours, &pil);
        assert_eq!(max, 0, "{}: {n} bytes differ", str_of(case, "input"));
    }
}

/// The headline figure: the real photo at 1024 against Pillow.
#[test]
fn photo_at_1024_report() {
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/chelsea.png");
    let img = image::open(&photo).unwrap();
    assert_eq!((img.width(), img.height()), (451, 300));
    let pre = preprocess(&img, 1024).unwrap();
    assert_eq!(pre.pixel_values.len(), 3 * 1024 * 1024);
    let t = pre.transform;
    assert_eq!((t.side, t.pad_x, t.pad_y), (451, 0, 75));

    let (square, _) = expand_to_square(&img.to_rgb8());
    let ours = resize_bicubic_pil(&square, 1024, 1024);
    let pil = open_rgb("preprocess/chelsea_sq1024.png");
    let (max, mean, n) = u8_diff(&ours, &pil);
    println!("chelsea 451x300 -> 1024: max |d| = {max}, mean |d| = {mean}, {n} bytes differ");
    assert_eq!((max, n), (0, 0));
    assert_eq!(normalize_chw(&ours), pre.pixel_values);
}

#[test]
fn expand_to_square_pastes_centred() {
    // W > H with an odd difference: the extra row goes to the bottom.
    let img = RgbImage::from_fn(7, 2, |x, y| image::Rgb([x as u8, y as u8, 200]));
    let (sq, (px, py)) = expand_to_square(&img);
    assert_eq!((sq.width(), sq.height(), px, py), (7, 7, 0, 2));
    for (x, y, p) in sq.enumerate_pixels() {
        let inside = (2..4).contains(&y);
        let want = if inside {
            [x as u8, (y - 2) as u8, 200]
        } else {
            PAD_COLOR
        };
        assert_eq!(p.0, want, "({x},{y})");
    }
    // H > W with an odd difference: the extra column goes to the right.
    let img = RgbImage::from_pixel(2, 5, image::Rgb([1, 2, 3]));
    let (sq, (px, py)) = expand_to_square(&img);
    assert_eq!((sq.width(), px, py), (5, 1, 0));
    assert_eq!(sq.get_pixel(0, 0).0, PAD_COLOR);
    assert_eq!(sq.get_pixel(1, 4).0, [1, 2, 3]);
    assert_eq!(sq.get_pixel(2, 0).0, [1, 2, 3]);
    assert_eq!(sq.get_pixel(3, 0).0, PAD_COLOR);
    assert_eq!(sq.get_pixel(4, 4).0, PAD_COLOR);
    // Square: unchanged.
    let img = RgbImage::from_pixel(3, 3, image::Rgb([9, 9, 9]));
    let (sq, pad) = expand_to_square(&img);
    assert_eq!((sq, pad), (img, (0, 0)));
}

#[test]
fn square_transform_offsets() {
    // W > H, even and odd differences.
    let t = SquareTransform::new(600, 400, 1024);
    assert_eq!((t.side, t.pad_x, t.pad_y), (600, 0, 100));
    assert_eq!(t.crop_in_square(), (0, 100, 600, 500));
    assert_eq!(t.demo_crop_in_square(), (0, 100, 600, 500));
    let t = SquareTransform::new(451, 300, 1024);
    assert_eq!((t.side, t.pad_x, t.pad_y), (451, 0, 75));
    assert_eq!(t.crop_in_square(), (0, 75, 451, 375));
    // The demo's `W - sy` keeps one padding row when W - H is odd.
    assert_eq!(t.demo_crop_in_square(), (0, 75, 451, 376));
    // H > W, odd difference.
    let t = SquareTransform::new(37, 101, 64);
    assert_eq!((t.side, t.pad_x, t.pad_y), (101, 32, 0));
    let t = SquareTransform::new(30, 45, 64);
    assert_eq!((t.side, t.pad_x, t.pad_y), (45, 7, 0));
    assert_eq!(t.crop_in_square(), (7, 0, 37, 45));
    assert_eq!(t.demo_crop_in_square(), (7, 0, 38, 45));
    // Square.
    let t = SquareTransform::new(64, 64, 1024);
    assert_eq!((t.side, t.pad_x, t.pad_y, t.scale()), (64, 0, 0, 16.0));
    assert_eq!(t.crop_in_square(), (0, 0, 64, 64));
}

#[test]
fn square_transform_maps_and_round_trips() {
    let t = SquareTransform::new(600, 400, 1024);
    assert_eq!(t.scale(), 1024.0 / 600.0);
    let close = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9;
    // The corners of the original image land on the pasted region, scaled.
    let s = 1024.0 / 600.0;
    assert!(close(t.to_model(0.0, 0.0), (0.0, 100.0 * s)));
    assert!(close(t.to_model(600.0, 400.0), (1024.0, 500.0 * s)));
    let t2 = SquareTransform::new(300, 451, 1024);
    assert!(close(t2.to_model(0.0, 0.0), (75.0 * 1024.0 / 451.0, 0.0)));
    // Box: both corners shifted (unlike the official expand2square_bbox).
    let b = t.box_to_model([10.0, 20.0, 110.0, 220.0]);
    let want = [10.0 * s, 120.0 * s, 110.0 * s, 320.0 * s];
    for (a, w) in b.iter().zip(want) {
        assert!((a - w).abs() < 1e-9, "{b:?} vs {want:?}");
    }
    for t in [
        SquareTransform::new(600, 400, 1024),
        SquareTransform::new(37, 101, 128),
        SquareTransform::new(451, 300, 64),
        SquareTransform::new(5, 5, 1024),
    ] {
        for &(x, y) in &[(0.0, 0.0), (3.5, 1.25), (36.0, 99.9), (-2.0, 450.0)] {
            let (mx, my) = t.to_model(x, y);
            let (ox, oy) = t.to_original(mx, my);
            assert!(
                (ox - x).abs() < 1e-9 && (oy - y).abs() < 1e-9,
                "{t:?} ({x},{y})"
            );
        }
        let b = [1.0, 2.0, 30.0, 40.0];
        let back = t.box_to_original(t.box_to_model(b));
        for (a, w) in back.iter().zip(b) {
            assert!((a - w).abs() < 1e-9);
        }
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<SquareTransform>(&json).unwrap(), t);
    }
}

#[test]
fn errors_on_bad_input() {
    let img = DynamicImage::ImageRgb8(RgbImage::new(4, 3));
    assert_eq!(preprocess(&img, 0), Err(PreprocessError::ZeroTarget));
    assert_eq!(
        preprocess(&img, 100),
        Err(PreprocessError::TargetNotMultiple(100))
    );
    assert_eq!(
        preprocess(&img, 32),
        Err(PreprocessError::TargetNotMultiple(32))
    );
    let empty = DynamicImage::ImageRgb8(RgbImage::new(0, 7));
    assert_eq!(
        preprocess(&empty, 64),
        Err(PreprocessError::EmptyImage {
            width: 0,
            height: 7
        })
    );
    assert_eq!(
        preprocess_rgb(5, 0, &[], 64),
        Err(PreprocessError::EmptyImage {
            width: 5,
            height: 0
        })
    );
    assert_eq!(
        preprocess_rgb(2, 2, &[0; 11], 64),
        Err(PreprocessError::BufferLength {
            width: 2,
            height: 2,
            expected: 12,
            actual: 11
        })
    );
    assert!(matches!(
        preprocess_rgb(u32::MAX, u32::MAX, &[0; 3], 64),
        Err(PreprocessError::BufferLength { actual: 3, .. })
    ));
    // Error messages are readable.
    assert_eq!(
        PreprocessError::TargetNotMultiple(100).to_string(),
        "the target size 100 is not a multiple of 64"
    );
    // Valid: any multiple of 64, tiny images, square images.
    let ok = preprocess_rgb(1, 1, &[255, 0, 10], 64).unwrap();
    assert_eq!(ok.pixel_values.len(), 3 * 64 * 64);
    assert_eq!(ok.transform.side, 1);
    // A uniform image stays uniform through the resampler.
    let v = ok.pixel_values[0];
    assert!(ok.pixel_values[..64 * 64].iter().all(|&x| x == v));
}

#[test]
fn resize_edge_cases_do_not_panic() {
    let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([(x * 40) as u8, (y * 80) as u8, 7]));
    assert_eq!(resize_bicubic_pil(&img, 5, 3), img);
    assert_eq!(resize_bicubic_pil(&img, 0, 3).dimensions(), (0, 3));
    assert_eq!(resize_bicubic_pil(&img, 4, 0).dimensions(), (4, 0));
    let empty = RgbImage::new(0, 0);
    let out = resize_bicubic_pil(&empty, 3, 2);
    assert_eq!(out.dimensions(), (3, 2));
    assert!(out.as_raw().iter().all(|&v| v == 0));
    let out = resize_bicubic_pil(&RgbImage::new(0, 4), 2, 4);
    assert_eq!(out.dimensions(), (2, 4));
    // Extreme ratios.
    assert_eq!(resize_bicubic_pil(&img, 1000, 1).dimensions(), (1000, 1));
    assert_eq!(resize_bicubic_pil(&img, 1, 700).dimensions(), (1, 700));
}
