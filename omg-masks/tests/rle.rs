//! COCO RLE, bbox/area, error and export tests for `omg-masks`.
//!
//! The reference data `data/rle_reference.json` was produced by pycocotools with
//! `data/make_rle_reference.py`.

use std::path::PathBuf;

use image::{Rgb, RgbImage};
use ndarray::Array2;
use omg_masks::{
    BBox, BinaryMask, CocoRle, MaskError, area_from_rle, decode_counts, encode_counts,
    overlay_many, palette,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    pycocotools_version: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    height: usize,
    width: usize,
    bits: String,
    rle: CocoRle,
    area: u64,
    bbox: [f64; 4],
    runs: Vec<u32>,
}

fn reference() -> Reference {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rle_reference.json");
    let text = std::fs::read_to_string(&path).expect("read rle_reference.json");
    serde_json::from_str(&text).expect("parse rle_reference.json")
}

fn case_mask(case: &Case) -> BinaryMask {
    let data: Vec<bool> = case.bits.bytes().map(|b| b == b'1').collect();
    BinaryMask::from_vec(case.height, case.width, data).expect("reference mask")
}

/// Mask from a row-major picture of '#' (true) and '.' (false).
fn mask_from_rows(rows: &[&str]) -> BinaryMask {
    let height = rows.len();
    let width = rows.first().map_or(0, |r| r.len());
    let data = rows
        .iter()
        .flat_map(|r| r.bytes().map(|b| b == b'#'))
        .collect();
    BinaryMask::from_vec(height, width, data).unwrap()
}

#[test]
fn reference_file_covers_the_required_cases() {
    let r = reference();
    assert!(
        r.pycocotools_version.starts_with("2."),
        "{}",
        r.pycocotools_version
    );
    assert!(r.cases.len() >= 12, "only {} cases", r.cases.len());
    for name in [
        "1x1_one",
        "1x7",
        "7x1",
        "3x5",
        "17x13_random",
        "64x33_blobs",
        "101x97_blobs",
        "all_zero_20x30",
        "all_one_20x30",
        "checkerboard_20x30",
        "single_pixel_bottom_right_9x11",
        "first_pixel_one_23x19",
        "long_runs_300x211",
    ] {
        assert!(
            r.cases.iter().any(|c| c.name == name),
            "missing case {name}"
        );
    }
    // The long-runs case really has runs over 10000 pixels.
    let long = r
        .cases
        .iter()
        .find(|c| c.name == "long_runs_300x211")
        .unwrap();
    assert!(long.runs.iter().any(|&run| run > 10_000));
    // The first-pixel-one case starts with an empty zero run.
    let first = r
        .cases
        .iter()
        .find(|c| c.name == "first_pixel_one_23x19")
        .unwrap();
    assert_eq!(first.runs[0], 0);
}

#[test]
fn to_rle_matches_pycocotools_byte_for_byte() {
    for case in reference().cases {
        let mask = case_mask(&case);
        assert_eq!(case.bits.len(), case.height * case.width, "{}", case.name);
        let rle = mask.to_rle();
        assert_eq!(rle.counts, case.rle.counts, "counts of {}", case.name);
        assert_eq!(rle.size, case.rle.size, "size of {}", case.name);
        assert_eq!(
            rle.size,
            [case.height as u32, case.width as u32],
            "{}",
            case.name
        );
        // Same JSON shape as pycocotools' dict.
        let ours = serde_json::to_value(&rle).unwrap();
        let theirs = serde_json::json!({"size": case.rle.size, "counts": case.rle.counts});
        assert_eq!(ours, theirs, "json of {}", case.name);
    }
}

#[test]
fn from_rle_round_trips_pycocotools_strings() {
    for case in reference().cases {
        let mask = case_mask(&case);
        let decoded = BinaryMask::from_rle(&case.rle).unwrap();
        assert_eq!(decoded, mask, "decode of {}", case.name);
        assert_eq!(
            BinaryMask::from_rle(&mask.to_rle()).unwrap(),
            mask,
            "{}",
            case.name
        );
    }
}

#[test]
fn uncompressed_runs_match_reference() {
    for case in reference().cases {
        assert_eq!(
            decode_counts(&case.rle.counts).unwrap(),
            case.runs,
            "{}",
            case.name
        );
        assert_eq!(case.rle.runs().unwrap(), case.runs, "{}", case.name);
        assert_eq!(encode_counts(&case.runs), case.rle.counts, "{}", case.name);
        let h = case.height as u32;
        let w = case.width as u32;
        assert_eq!(
            CocoRle::from_runs(h, w, &case.runs),
            case.rle,
            "{}",
            case.name
        );
    }
}

#[test]
fn area_and_bbox_match_pycocotools() {
    for case in reference().cases {
        let mask = case_mask(&case);
        assert_eq!(mask.area(), case.area, "area of {}", case.name);
        assert_eq!(
            area_from_rle(&case.rle).unwrap(),
            case.area,
            "rle area of {}",
            case.name
        );
        assert_eq!(case.rle.area().unwrap(), case.area, "{}", case.name);
        let bbox = mask.bbox().map_or([0.0; 4], |b| {
            [b.x as f64, b.y as f64, b.width as f64, b.height as f64]
        });
        assert_eq!(bbox, case.bbox, "bbox of {}", case.name);
        assert_eq!(mask.bbox().is_none(), case.area == 0, "{}", case.name);
    }
}

#[test]
fn bbox_is_tight_and_converts_to_xyxy() {
    let mask = mask_from_rows(&["......", "..#...", "....#.", "......"]);
    let bbox = mask.bbox().unwrap();
    assert_eq!(
        bbox,
        BBox {
            x: 2,
            y: 1,
            width: 3,
            height: 2
        }
    );
    assert_eq!(bbox.to_xyxy(), [2, 1, 5, 3]);
    assert_eq!(mask.height(), 4);
    assert_eq!(mask.width(), 6);
    assert_eq!(mask.area(), 2);
    assert!(mask.array()[[1, 2]]);
    assert!(!mask.clone().into_array()[[0, 0]]);
}

#[test]
fn random_masks_round_trip_and_extreme_runs_encode() {
    // Small deterministic LCG: many sizes and densities, including long runs.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    };
    for _ in 0..200 {
        let h = (next() % 40) as usize;
        let w = (next() % 40) as usize;
        let density = next() % 100;
        let sticky = next() % 100;
        let mut prev = false;
        let data: Vec<bool> = (0..h * w)
            .map(|_| {
                if next() % 100 >= sticky {
                    prev = next() % 100 < density;
                }
                prev
            })
            .collect();
        let mask = BinaryMask::from_vec(h, w, data).unwrap();
        let rle = mask.to_rle();
        assert_eq!(BinaryMask::from_rle(&rle).unwrap(), mask, "{h}x{w}");
        assert_eq!(area_from_rle(&rle).unwrap(), mask.area());
    }
    // Deltas at the ends of the u32 range survive the string encoding.
    let runs = [0, u32::MAX, 1, 0, u32::MAX, 7, u32::MAX, 0, 12_345_678];
    assert_eq!(decode_counts(&encode_counts(&runs)).unwrap(), runs);
}

#[test]
fn array_constructor_matches_vec_constructor() {
    let array = Array2::from_shape_fn((3, 4), |(y, x)| (x + 2 * y) % 3 == 0);
    let from_array = BinaryMask::from_array(array.clone()).unwrap();
    let from_vec = BinaryMask::from_vec(3, 4, array.iter().copied().collect()).unwrap();
    assert_eq!(from_array, from_vec);
    assert_eq!(from_array.into_array(), array);
}

#[test]
fn iou_values() {
    let a = mask_from_rows(&["##..", "...."]);
    let b = mask_from_rows(&[".##.", "..#."]);
    assert!((a.iou(&b).unwrap() - 0.25).abs() < 1e-12);
    assert_eq!(b.iou(&a).unwrap(), a.iou(&b).unwrap());
    assert_eq!(a.iou(&a).unwrap(), 1.0);
    let empty = mask_from_rows(&["....", "...."]);
    assert_eq!(empty.iou(&empty).unwrap(), 0.0);
    assert_eq!(a.iou(&empty).unwrap(), 0.0);
}

#[test]
fn corrupt_rle_strings_are_errors() {
    let bad = |counts: &str| CocoRle {
        size: [2, 2],
        counts: counts.to_string(),
    };
    // Positive control: "31" is a valid 2x2 mask (3 zeros then 1 one).
    let ok = BinaryMask::from_rle(&bad("31")).unwrap();
    assert_eq!(ok.area(), 1);
    assert!(ok.array()[[1, 1]]);
    for counts in [
        "",           // no runs at all, 4 pixels expected
        "05",         // runs cover 5 pixels, not 4
        "0 1",        // space is outside the alphabet
        "0p",         // 'p' (112) is outside the alphabet
        "0h",         // 'h' has the continuation bit but nothing follows
        "O",          // first run decodes to -1
        "hhhhhhhhh1", // one value longer than 8 characters
        "00\u{e9}",   // non-ASCII
    ] {
        let rle = bad(counts);
        let err = BinaryMask::from_rle(&rle).unwrap_err();
        assert!(
            matches!(err, MaskError::CorruptRle(_)),
            "{counts:?}: {err:?}"
        );
        assert!(err.to_string().starts_with("corrupt COCO RLE: "), "{err}");
        assert!(area_from_rle(&rle).is_err(), "{counts:?}");
    }
    let err = decode_counts("0p").unwrap_err();
    assert!(
        err.to_string().contains("outside the RLE alphabet"),
        "{err}"
    );
    let err = decode_counts("O").unwrap_err();
    assert!(err.to_string().contains("decodes to -1"), "{err}");
}

#[test]
fn run_total_must_equal_size() {
    let rle = CocoRle {
        size: [3, 3],
        counts: "31".to_string(),
    };
    let err = rle.runs().unwrap_err();
    assert_eq!(
        err.to_string(),
        "corrupt COCO RLE: runs cover 4 pixels but size 3x3 has 9"
    );
}

#[test]
fn wrong_length_is_an_error() {
    let err = BinaryMask::from_vec(3, 5, vec![true; 14]).unwrap_err();
    assert!(matches!(
        err,
        MaskError::BadLength {
            height: 3,
            width: 5,
            expected: 15,
            actual: 14
        }
    ));
    assert!(err.to_string().contains("bad mask length"), "{err}");
    assert!(BinaryMask::from_vec(usize::MAX, 2, vec![]).is_err());
}

#[test]
fn size_mismatch_on_iou_and_overlay() {
    let a = BinaryMask::from_vec(2, 3, vec![true; 6]).unwrap();
    let b = BinaryMask::from_vec(3, 2, vec![true; 6]).unwrap();
    let err = a.iou(&b).unwrap_err();
    assert!(matches!(
        err,
        MaskError::SizeMismatch {
            expected_height: 2,
            expected_width: 3,
            actual_height: 3,
            actual_width: 2
        }
    ));
    assert!(err.to_string().contains("size mismatch"), "{err}");

    let image = RgbImage::new(2, 3); // width 2, height 3: matches b, not a
    assert!(b.overlay(&image, [1, 2, 3], 0.5).is_ok());
    let err = a.overlay(&image, [1, 2, 3], 0.5).unwrap_err();
    assert!(matches!(err, MaskError::SizeMismatch { .. }), "{err:?}");
    let err = overlay_many(&image, &[(&b, [1, 2, 3]), (&a, [4, 5, 6])], 0.5).unwrap_err();
    assert!(matches!(err, MaskError::SizeMismatch { .. }), "{err:?}");
    for alpha in [-0.1, 1.5, f32::NAN] {
        let err = b.overlay(&image, [1, 2, 3], alpha).unwrap_err();
        assert!(matches!(err, MaskError::InvalidAlpha(_)), "{err:?}");
    }
}

#[test]
fn png_round_trip() {
    let mask = mask_from_rows(&["#....", ".#..#", "..#..", "#...#"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mask.png");
    mask.save_png(&path).unwrap();
    let img = image::open(&path).unwrap();
    assert_eq!(img.color(), image::ColorType::L8);
    let gray = img.to_luma8();
    assert_eq!(gray.dimensions(), (5, 4));
    for ((y, x), &v) in mask.array().indexed_iter() {
        let expected = if v { 255 } else { 0 };
        assert_eq!(
            gray.get_pixel(x as u32, y as u32).0[0],
            expected,
            "pixel ({x}, {y})"
        );
    }
    let missing_dir = dir.path().join("no/such/dir/mask.png");
    let err = mask.save_png(&missing_dir).unwrap_err();
    assert!(matches!(err, MaskError::Image(_)), "{err:?}");
    assert!(err.to_string().starts_with("image I/O error"), "{err}");
}

#[test]
fn overlay_blends_only_masked_pixels() {
    let mask = mask_from_rows(&["#..", ".#.", "..."]);
    let image = RgbImage::from_fn(3, 3, |x, y| Rgb([(10 * x + 3 * y) as u8, 100, 200]));
    let out = mask.overlay(&image, [255, 0, 50], 0.5).unwrap();
    for (x, y, px) in out.enumerate_pixels() {
        let src = image.get_pixel(x, y).0;
        if mask.array()[[y as usize, x as usize]] {
            let expected: Vec<u8> = src
                .iter()
                .zip([255u8, 0, 50])
                .map(|(&s, c)| ((f32::from(s) + f32::from(c)) / 2.0).round() as u8)
                .collect();
            assert_eq!(px.0.to_vec(), expected, "masked ({x}, {y})");
        } else {
            assert_eq!(px.0, src, "unmasked ({x}, {y})");
        }
    }
    assert_eq!(out.get_pixel(0, 0).0, [128, 50, 125]);
    // alpha = 1 paints the colour, alpha = 0 leaves the image unchanged.
    let full = mask.overlay(&image, [1, 2, 3], 1.0).unwrap();
    assert_eq!(full.get_pixel(1, 1).0, [1, 2, 3]);
    assert_eq!(full.get_pixel(2, 2).0, image.get_pixel(2, 2).0);
    assert_eq!(mask.overlay(&image, [1, 2, 3], 0.0).unwrap(), image);
}

#[test]
fn overlay_many_applies_masks_in_order() {
    let a = mask_from_rows(&["##", ".."]);
    let b = mask_from_rows(&[".#", ".#"]);
    let image = RgbImage::from_pixel(2, 2, Rgb([0, 0, 0]));
    let out = overlay_many(&image, &[(&a, [255, 0, 0]), (&b, [0, 0, 255])], 1.0).unwrap();
    assert_eq!(out.get_pixel(0, 0).0, [255, 0, 0]);
    assert_eq!(out.get_pixel(1, 0).0, [0, 0, 255]); // b drawn over a
    assert_eq!(out.get_pixel(1, 1).0, [0, 0, 255]);
    assert_eq!(out.get_pixel(0, 1).0, [0, 0, 0]);
    assert_eq!(overlay_many(&image, &[], 0.5).unwrap(), image);
}

#[test]
fn palette_colours_are_distinct() {
    // as many as a panoptic result has segments at most (100), the 20 hand-picked
    // colours and the generated ones, far enough apart to tell masks apart
    let colours: Vec<[u8; 3]> = (0..100).map(palette).collect();
    for i in 0..colours.len() {
        for j in 0..i {
            let distance: u32 = (0..3)
                .map(|c| u32::from(colours[i][c].abs_diff(colours[j][c])))
                .sum();
            assert!(
                distance >= 12,
                "palette({i}) {:?} ~ palette({j}) {:?}",
                colours[i],
                colours[j]
            );
        }
    }
}
