//! Every LLM precision loaded the way a user loads it (`LoadOptions::with_llm_weights`,
//! `Pipeline::from_dir` on the demo bundle) answers a `segment` question with a mask
//! close to the f32 one, within the figures `docs/precision.md` gives for the demo
//! bundle.

use std::path::Path;

use burn::backend::Flex;
use omg_llava::{GenerateOptions, LlmWeights, LoadOptions, Pipeline, Task};

type B = Flex;

/// The `[SEG]` mask of "the cat" on the demo photo with the LLM held in `weights`.
fn mask(weights: LlmWeights) -> omg_llava::BinaryMask {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny");
    let options = LoadOptions::default().with_llm_weights(weights);
    let p = Pipeline::<B>::from_dir(&dir, &options, Default::default(), |_| {}).unwrap();
    let photo = image::open(dir.join("../chelsea.png")).unwrap();
    let img = p.encode(&photo).unwrap();
    let generate = GenerateOptions::default()
        .with_max_new_tokens(3)
        .with_forced_seg(1);
    let answer = p.run(&img, &Task::segment("the cat"), &generate).unwrap();
    assert_eq!(answer.masks.len(), 1, "{weights}");
    answer.masks[0].mask().clone()
}

#[test]
fn every_precision_keeps_the_demo_mask() {
    // The demo bundle's random weights give a mask whose logits lie near the threshold
    // over much of the photo, so its IoU moves more than the fixtures' (whose goals are
    // in `omg_parity::precision::goal`); the floors are the figures of
    // `docs/precision.md` for the demo bundle, rounded down.
    let reference = mask(LlmWeights::F32);
    let mut ious = Vec::new();
    for (weights, least) in [
        (LlmWeights::Bf16, 0.89),
        (LlmWeights::F16, 0.9999),
        (LlmWeights::Int8, 0.997),
        (LlmWeights::Int4, 0.96),
    ] {
        let ours = mask(weights);
        let iou = ours.iou(&reference).unwrap();
        assert_ne!(ours, reference, "{weights} changes nothing");
        assert!(iou >= least, "{weights}: IoU {iou} < {least}");
        ious.push(iou);
    }
    // f16 keeps 3 more mantissa bits than bf16
    assert!(ious[1] > ious[0], "{ious:?}");
}
