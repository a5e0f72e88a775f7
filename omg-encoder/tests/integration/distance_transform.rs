//! Parity of `omg_encoder::distance_transform` with kornia 0.7.1 and OMG-LLaVA's
//! `get_center_coords`.
//!
//! References: `tests/data/distance_transform_reference.json` (written by
//! `tests/data/make_distance_transform_reference.py`) and the parity fixture
//! `fixtures/parity/visual_prompts.safetensors` (`in.regions` → `out.region.center_points`).

use std::path::{Path, PathBuf};

use omg_encoder::distance_transform::{kornia_distance_transform, region_center};
use serde_json::Value;

use crate::common;

/// Tolerance on individual distance values (kornia uses PyTorch's vectorised `log`, which may
/// differ from `f32::ln` in the last bit).
const DT_TOL: f32 = 1e-5;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn reference() -> Value {
    let path = data_dir().join("distance_transform_reference.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn usize_of(v: &Value) -> usize {
    usize::try_from(v.as_u64().unwrap()).unwrap()
}

/// Rows of `"0"`/`"1"` → row-major bools, checking the shape.
fn bits(rows: &Value, height: usize, width: usize) -> Vec<bool> {
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), height);
    let mut out = Vec::with_capacity(height * width);
    for r in rows {
        let r = r.as_str().unwrap();
        assert_eq!(r.len(), width);
        out.extend(r.bytes().map(|b| b == b'1'));
    }
    out
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Maximum |a - b| and the number of entries that are not bit-identical.
fn compare(name: &str, got: &[f32], want: &[f32]) -> (f32, usize) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let mut max = 0.0f32;
    let mut inexact = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        assert!(
            d <= DT_TOL,
            "{name}: dt[{i}] = {g} vs kornia {w} (diff {d:e})"
        );
        max = max.max(d);
        inexact += usize::from(g != w);
    }
    (max, inexact)
}

/// Crops `1..h+1, 1..w+1` of the transform of the padded, inverted mask: the official `mask_dt`.
fn official_mask_dt(mask: &[bool], height: usize, width: usize) -> Vec<f32> {
    let (ph, pw) = (height + 2, width + 2);
    let mut boundary = vec![true; ph * pw];
    for y in 0..height {
        for x in 0..width {
            boundary[(y + 1) * pw + x + 1] = !mask[y * width + x];
        }
    }
    let dt = kornia_distance_transform(&boundary, ph, pw).expect("sizes match");
    let mut out = Vec::with_capacity(height * width);
    for y in 0..height {
        out.extend_from_slice(&dt[(y + 1) * pw + 1..(y + 1) * pw + 1 + width]);
    }
    out
}

#[test]
fn centres_and_values_match_kornia() {
    let doc = reference();
    let mut max_diff = 0.0f32;
    let mut inexact = 0;
    let mut n_values = 0;
    let mut n_centres = 0;
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (h, w) = (usize_of(&case["height"]), usize_of(&case["width"]));
        let mask = bits(&case["mask"], h, w);
        let want = (usize_of(&case["center"][0]), usize_of(&case["center"][1]));
        let got = region_center(&mask, h, w);
        if mask.iter().any(|&m| m) {
            assert_eq!(got, Some(want), "{name}: centre (x, y)");
            n_centres += 1;
        } else {
            // Official code: all-zero transform, arg-max 0 → (0, 0); we report None instead.
            assert_eq!(want, (0, 0), "{name}: official centre of an empty mask");
            assert_eq!(got, None, "{name}: empty mask");
        }
        if let Some(dt) = case.get("dt") {
            let (d, n) = compare(name, &official_mask_dt(&mask, h, w), &floats(dt));
            max_diff = max_diff.max(d);
            inexact += n;
            n_values += h * w;
        }
    }
    for case in doc["raw_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (h, w) = (usize_of(&case["height"]), usize_of(&case["width"]));
        let image = bits(&case["image"], h, w);
        let (d, n) = compare(
            name,
            &kornia_distance_transform(&image, h, w).expect("sizes match"),
            &floats(&case["dt"]),
        );
        max_diff = max_diff.max(d);
        inexact += n;
        n_values += h * w;
    }
    println!(
        "{n_centres} centres exact; {n_values} dt values: max |diff| = {max_diff:e}, \
         {inexact} not bit-identical"
    );
}

#[test]
fn empty_mask_is_none() {
    assert_eq!(region_center(&[], 0, 0), None);
    assert_eq!(region_center(&[false; 64 * 48], 64, 48), None);
}

/// Bounding-box restriction must not change anything: compare with the full padded transform.
#[test]
fn bounding_box_restriction_is_exact() {
    let doc = reference();
    for case in doc["cases"].as_array().unwrap() {
        let (h, w) = (usize_of(&case["height"]), usize_of(&case["width"]));
        let mask = bits(&case["mask"], h, w);
        if !mask.iter().any(|&m| m) {
            continue;
        }
        let dt = official_mask_dt(&mask, h, w);
        let mut best = 0;
        for (i, &v) in dt.iter().enumerate() {
            if v > dt[best] {
                best = i;
            }
        }
        assert_eq!(
            region_center(&mask, h, w),
            Some((best % w, best / w)),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn large_masks_find_their_centres() {
    let (h, w) = (1024, 1024);
    // A full mask (worst case: the whole image is transformed) and a disc centred at
    // (530, 500): the points farthest from the outside are the middle and the centre.
    let full = vec![true; h * w];
    let disc: Vec<bool> = (0..h * w)
        .map(|i| {
            let (y, x) = ((i / w) as f64 - 500.0, (i % w) as f64 - 530.0);
            x * x + y * y <= 400.0 * 400.0
        })
        .collect();
    let (x, y) = region_center(&full, h, w).unwrap();
    assert!(
        (511..=512).contains(&x) && (511..=512).contains(&y),
        "{x}, {y}"
    );
    assert_eq!(region_center(&disc, h, w), Some((530, 500)));
}

#[test]
fn fixture_region_centres() {
    let dir = common::parity_dir_with("visual_prompts.safetensors");
    let path = dir.join("visual_prompts.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();

    let regions = st.tensor("in.regions").unwrap();
    assert_eq!(regions.dtype(), safetensors::Dtype::F32);
    let &[n, h, w] = regions.shape() else {
        panic!("in.regions shape {:?}", regions.shape())
    };
    let values: Vec<f32> = regions
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();

    let centres = st.tensor("out.region.center_points").unwrap();
    assert_eq!(centres.dtype(), safetensors::Dtype::I64);
    assert_eq!(centres.shape(), [n, 2]);
    let want: Vec<i64> = centres
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();

    for r in 0..n {
        // Official: `mask.to(torch.bool)`, i.e. non-zero = inside.
        let mask: Vec<bool> = values[r * h * w..(r + 1) * h * w]
            .iter()
            .map(|&v| v != 0.0)
            .collect();
        let (x, y) = region_center(&mask, h, w).expect("non-empty region");
        println!(
            "region {r}: centre ({x}, {y}), official ({}, {})",
            want[2 * r],
            want[2 * r + 1]
        );
        assert_eq!(
            [x as i64, y as i64],
            [want[2 * r], want[2 * r + 1]],
            "region {r}"
        );
    }
}
