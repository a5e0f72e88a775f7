//! Masks back in the photo's pixels against the official post-processing computed by
//! torch (`fixtures/photo_frame/make_reference.py`): upsample the logits to the padded
//! square, crop the padding, threshold; on wide and tall photos with odd and even
//! padding, a square one, one smaller than the logits and an extreme tall one.

use std::path::Path;

use burn::tensor::{Tensor, TensorData};
use omg_decoder::postprocess::masks_in_original;
use omg_encoder::preprocess::SquareTransform;
use serde_json::Value;

type B = burn::backend::Flex;

fn reference() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/photo_frame/reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn num(v: &Value) -> u32 {
    v.as_u64().unwrap() as u32
}

/// The logits `[N, 1, side, side]` of a case.
fn logits(case: &Value) -> Tensor<B, 4> {
    let masks = case["logits"].as_array().unwrap();
    let side = masks[0].as_array().unwrap().len();
    let values: Vec<f32> = masks
        .iter()
        .flat_map(|m| m.as_array().unwrap().iter())
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    Tensor::from_data(
        TensorData::new(values, [masks.len(), 1, side, side]),
        &Default::default(),
    )
}

fn transform(case: &Value) -> SquareTransform {
    SquareTransform::new(
        num(&case["width"]),
        num(&case["height"]),
        num(&case["target"]),
    )
}

/// The cases, checked to cover what the reference promises.
fn cases() -> Vec<Value> {
    let cases = reference()["cases"].as_array().unwrap().clone();
    let odd = |c: &Value| (num(&c["width"]) as i64 - num(&c["height"]) as i64).abs() % 2 == 1;
    let wide = |c: &Value| num(&c["width"]) > num(&c["height"]);
    let tall = |c: &Value| num(&c["width"]) < num(&c["height"]);
    assert!(cases.iter().any(|c| odd(c) && wide(c)));
    assert!(cases.iter().any(|c| odd(c) && tall(c)));
    cases
}

#[test]
fn the_transform_is_the_official_padding() {
    for case in cases() {
        let t = transform(&case);
        let what = format!("{}x{}", case["width"], case["height"]);
        assert_eq!(t.side, num(&case["side"]), "{what}");
        assert_eq!(
            (t.pad_x, t.pad_y),
            (num(&case["pad_x"]), num(&case["pad_y"])),
            "{what}"
        );
        let boxes = [
            ("crop_in_square", t.crop_in_square()),
            ("demo_crop_in_square", t.demo_crop_in_square()),
        ];
        for (name, (x0, y0, x1, y1)) in boxes {
            let want: Vec<u32> = case[name].as_array().unwrap().iter().map(num).collect();
            assert_eq!(vec![x0, y0, x1, y1], want, "{name} of {what}");
        }
    }
}

#[test]
fn masks_in_the_photo_equal_the_official_post_processing() {
    for case in cases() {
        let what = format!("{}x{}", case["width"], case["height"]);
        let masks = masks_in_original(logits(&case), transform(&case)).unwrap();
        let want = case["masks"].as_array().unwrap();
        assert_eq!(masks.len(), want.len(), "{what}");
        for (i, (mask, want)) in masks.iter().zip(want).enumerate() {
            let rows = want.as_array().unwrap();
            assert_eq!(
                (mask.height(), mask.width()),
                (rows.len(), rows[0].as_array().unwrap().len()),
                "size of mask {i} of {what}"
            );
            let mut wrong = 0;
            for (y, row) in rows.iter().enumerate() {
                for (x, v) in row.as_array().unwrap().iter().enumerate() {
                    wrong += usize::from(mask.array()[[y, x]] != (v.as_u64() == Some(1)));
                }
            }
            assert_eq!(wrong, 0, "pixels that differ in mask {i} of {what}");
        }
    }
}
