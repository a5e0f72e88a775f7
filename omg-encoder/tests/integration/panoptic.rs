//! Parity of the panoptic ("segment everything") output with mmdet 3.1.0's
//! `MaskFormerFusionHead.panoptic_postprocess`.
//!
//! `tests/data/panoptic_reference.json` is written by `tests/data/make_panoptic_reference.py` (torch
//! 2.5.1, a transcription of the mmdet code). Each case stores the last-stage logits, the frame, the
//! config and the expected map in mmdet's encoding (`class + instance · 1000`, `num_classes` = none).
//! The Rust map is compared through [`PanopticResult::to_mmdet_map`], which undoes the only renaming:
//! segment ids `1..=n` in painting order instead of mmdet's values.

use std::collections::BTreeMap;
use std::path::Path;

use burn::backend::Flex;
use burn::tensor::{Bool, Tensor, TensorData};
use omg_encoder::EncoderError;
use omg_encoder::StagePrediction;
use omg_encoder::panoptic::{
    INSTANCE_OFFSET, PanopticConfig, PanopticFrame, PanopticResult, panoptic_from_stage,
    panoptic_segmentation,
};
use omg_encoder::preprocess::SquareTransform;
use serde_json::Value;

type B = Flex;

fn reference() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/panoptic_reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn usize_of(v: &Value, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in case")) as usize
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn tensor2(values: Vec<f32>, shape: [usize; 2]) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn tensor3(values: Vec<f32>, shape: [usize; 3]) -> Tensor<B, 3> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

struct Case {
    name: String,
    cls: Tensor<B, 2>,
    masks: Tensor<B, 3>,
    frame: PanopticFrame,
    config: PanopticConfig,
    case: Value,
}

fn cases() -> Vec<Case> {
    let r = reference();
    assert_eq!(
        r["instance_offset"].as_u64(),
        Some(u64::from(INSTANCE_OFFSET))
    );
    r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let q = usize_of(c, "num_queries");
            let things = usize_of(c, "num_things");
            let stuff = usize_of(c, "num_stuff");
            let (h, w) = (usize_of(c, "mask_height"), usize_of(c, "mask_width"));
            let f = &c["frame"];
            let frame = match f["kind"].as_str().unwrap() {
                "model" => PanopticFrame::Model {
                    height: usize_of(f, "height"),
                    width: usize_of(f, "width"),
                },
                "original" => PanopticFrame::Original(SquareTransform::new(
                    usize_of(f, "width") as u32,
                    usize_of(f, "height") as u32,
                    usize_of(f, "target") as u32,
                )),
                other => panic!("unknown frame {other}"),
            };
            let cfg = &c["config"];
            let config = PanopticConfig {
                object_mask_thr: cfg["object_mask_thr"].as_f64().unwrap(),
                iou_thr: cfg["iou_thr"].as_f64().unwrap(),
                filter_low_score: cfg["filter_low_score"].as_bool().unwrap(),
                num_things: things,
                num_stuff: stuff,
            };
            Case {
                name: c["name"].as_str().unwrap().to_string(),
                cls: tensor2(f32s(&c["cls_logits"]), [q, things + stuff + 1]),
                masks: tensor3(f32s(&c["mask_logits"]), [q, h, w]),
                frame,
                config,
                case: c.clone(),
            }
        })
        .collect()
}

/// Structural invariants of any result.
fn check_invariants(r: &PanopticResult) {
    assert_eq!(r.segment_map.len(), r.width * r.height);
    let mut area: BTreeMap<u32, u64> = BTreeMap::new();
    for &v in &r.segment_map {
        *area.entry(v).or_default() += 1;
    }
    for (i, s) in r.segments.iter().enumerate() {
        assert_eq!(s.id as usize, i + 1, "ids are 1..=n");
        assert_eq!(
            area.get(&s.id).copied().unwrap_or(0),
            s.area,
            "area of {}",
            s.id
        );
        assert!(s.area > 0, "empty segments are dropped");
        assert_eq!(r.segment(s.id), Some(s));
        assert_eq!(s.is_thing, s.instance_id > 0);
    }
    assert!(area.keys().all(|&v| (v as usize) <= r.segments.len()));
    // Painting order: ids follow the first painting query.
    assert!(
        r.segments
            .windows(2)
            .all(|p| p[0].queries[0] < p[1].queries[0])
    );
}

#[test]
fn matches_mmdet_reference() {
    let cases = cases();
    assert!(cases.len() >= 4);
    for c in cases {
        let r = panoptic_segmentation(c.cls.clone(), c.masks.clone(), c.frame, &c.config)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let (eh, ew) = (
            usize_of(&c.case, "map_height"),
            usize_of(&c.case, "map_width"),
        );
        assert_eq!((r.height, r.width), (eh, ew), "{}: map size", c.name);
        assert_eq!(c.frame.output_size(), (eh, ew));
        check_invariants(&r);

        let expected: Vec<u32> = u64s(&c.case["expected_map"])
            .into_iter()
            .map(|v| v as u32)
            .collect();
        let got = r.to_mmdet_map().expect("small class count");
        let diff = got.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 0, "{}: {diff} pixels differ from mmdet", c.name);

        let exp_segments = c.case["segments"].as_array().unwrap();
        assert_eq!(
            r.segments.len(),
            exp_segments.len(),
            "{}: segment count",
            c.name
        );
        for e in exp_segments {
            let value = e["value"].as_u64().unwrap() as u32;
            let s = r
                .segments
                .iter()
                .find(|s| s.class_id as u32 + s.instance_id * INSTANCE_OFFSET == value)
                .unwrap_or_else(|| panic!("{}: no segment for mmdet value {value}", c.name));
            assert_eq!(s.class_id as u64, e["class_id"].as_u64().unwrap());
            assert_eq!(u64::from(s.instance_id), e["instance_id"].as_u64().unwrap());
            assert_eq!(
                s.area,
                e["area"].as_u64().unwrap(),
                "{}: area of {value}",
                c.name
            );
            let queries: Vec<usize> = u64s(&e["queries"])
                .into_iter()
                .map(|q| q as usize)
                .collect();
            assert_eq!(s.queries, queries, "{}: queries of {value}", c.name);
            let score = e["score"].as_f64().unwrap() as f32;
            assert!(
                (s.score - score).abs() <= 1e-6,
                "{}: score of {value}: {} vs {score}",
                c.name,
                s.score
            );
            assert_eq!(s.is_thing, s.class_id < c.config.num_things);
            // The names table has 133 classes; these tests use 5.
            assert_eq!(s.label, format!("class_{}", s.class_id));
        }
        println!(
            "{}: {}x{} map, {} segments, identical to mmdet",
            c.name,
            r.width,
            r.height,
            r.segments.len()
        );
    }
}

/// Random logits for `q` queries over `k` classes (+ background).
fn random_inputs(q: usize, k: usize, h: usize, w: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    // A small LCG keeps the test free of extra dependencies.
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut cls = Vec::with_capacity(q * (k + 1));
    for i in 0..q {
        for j in 0..k {
            cls.push(if j == i % k { 6.0 } else { next() });
        }
        cls.push(0.0);
    }
    let masks = (0..q * h * w).map(|_| 4.0 * next()).collect();
    (cls, masks)
}

#[test]
fn original_frame_has_original_size() {
    let (q, k, h, w) = (7, 5, 16, 16);
    let (cls, masks) = random_inputs(q, k, h, w, 7);
    let config = PanopticConfig {
        num_things: 3,
        num_stuff: 2,
        iou_thr: 0.0,
        filter_low_score: false,
        ..Default::default()
    };
    for (ow, oh) in [(37u32, 20u32), (20, 37), (33, 33)] {
        let t = SquareTransform::new(ow, oh, 64);
        let r = panoptic_segmentation(
            tensor2(cls.clone(), [q, k + 1]),
            tensor3(masks.clone(), [q, h, w]),
            PanopticFrame::Original(t),
            &config,
        )
        .unwrap();
        assert_eq!((r.width, r.height), (ow as usize, oh as usize));
        assert_eq!(r.segment_map.len(), (ow * oh) as usize);
        check_invariants(&r);
        // With iou_thr 0 and no filtering, every pixel belongs to some kept query.
        assert!(r.segment_map.iter().all(|&v| v > 0));
        assert_eq!(r.to_mmdet_map().unwrap().len(), (ow * oh) as usize);
        assert!(r.id_at(ow as usize - 1, oh as usize - 1).is_some());
        assert_eq!(r.id_at(ow as usize, 0), None);
    }
    // The model frame of the same transform is target x target.
    let t = SquareTransform::new(37, 20, 64);
    assert_eq!(PanopticFrame::model_input(&t).output_size(), (64, 64));
}

#[test]
fn coco_labels_and_things() {
    // 133 classes: the labels come from the COCO table.
    let (q, k, h, w) = (3, 133, 8, 8);
    let mut cls = vec![0.0f32; q * (k + 1)];
    cls[0] = 12.0; // query 0 -> person (thing)
    cls[(k + 1) + 131] = 12.0; // query 1 -> wall-other-merged (stuff)
    cls[2 * (k + 1) + 40] = 1.0; // query 2: low score, dropped
    let mut masks = vec![-5.0f32; q * h * w];
    for y in 0..h {
        for x in 0..w {
            let query = if y < 4 { 0 } else { 1 };
            masks[query * h * w + y * w + x] = 5.0;
        }
    }
    let r = panoptic_segmentation(
        tensor2(cls, [q, k + 1]),
        tensor3(masks, [q, h, w]),
        PanopticFrame::Model {
            height: 16,
            width: 16,
        },
        &PanopticConfig::default(),
    )
    .unwrap();
    check_invariants(&r);
    assert_eq!(r.segments.len(), 2);
    assert_eq!(r.segments[0].label, "person");
    assert!(r.segments[0].is_thing);
    assert_eq!(r.segments[0].instance_id, 1);
    assert_eq!(r.segments[1].label, "wall-other-merged");
    assert!(!r.segments[1].is_thing);
    assert_eq!(r.segments[1].instance_id, 0);
    assert_eq!(r.segments[0].area + r.segments[1].area, 256);
    let mm = r.to_mmdet_map().unwrap();
    assert_eq!(mm[0], 1000);
    assert_eq!(mm[255], 131);
}

#[test]
fn nothing_kept_and_no_queries() {
    let config = PanopticConfig {
        num_things: 3,
        num_stuff: 2,
        ..Default::default()
    };
    let frame = PanopticFrame::Model {
        height: 8,
        width: 6,
    };
    // Every query prefers the background.
    let cls = tensor2([-3.0, -3.0, -3.0, -3.0, -3.0, 0.0].repeat(4), [4, 6]);
    let masks = tensor3(vec![3.0; 4 * 4 * 4], [4, 4, 4]);
    let r = panoptic_segmentation(cls, masks, frame, &config).unwrap();
    assert!(r.segments.is_empty());
    assert_eq!(r.segment_map, vec![0; 48]);
    assert_eq!(r.to_mmdet_map().unwrap(), vec![5; 48]);

    let r = panoptic_segmentation(
        Tensor::<B, 2>::zeros([0, 6], &Default::default()),
        Tensor::<B, 3>::zeros([0, 4, 4], &Default::default()),
        frame,
        &config,
    )
    .unwrap();
    assert!(r.segments.is_empty());
    assert_eq!(r.segment_map.len(), 48);
}

#[test]
fn from_stage_selects_the_image() {
    let c = cases();
    let c = c.iter().find(|c| c.name == "model_main").unwrap();
    let [q, k1] = c.cls.dims();
    let [_, h, w] = c.masks.dims();
    let device = Default::default();
    // Batch of 2: image 0 is noise, image 1 the reference case.
    let (noise_cls, noise_masks) = random_inputs(q, k1 - 1, h, w, 3);
    let cls = Tensor::cat(
        vec![
            tensor2(noise_cls, [q, k1]).unsqueeze_dim::<3>(0),
            c.cls.clone().unsqueeze_dim::<3>(0),
        ],
        0,
    );
    let masks = Tensor::cat(
        vec![
            tensor3(noise_masks, [q, h, w]).unsqueeze_dim::<4>(0),
            c.masks.clone().unsqueeze_dim::<4>(0),
        ],
        0,
    );
    let stage = StagePrediction::<B> {
        cls_logits: Some(cls),
        iou: Some(Tensor::zeros([2, q, 1], &device)),
        mask_logits: Some(masks),
        attn_mask: Tensor::<B, 3, Bool>::empty([2, q, 1], &device),
    };
    let direct = panoptic_segmentation(c.cls.clone(), c.masks.clone(), c.frame, &c.config).unwrap();
    let via_stage = panoptic_from_stage(&stage, 1, c.frame, &c.config).unwrap();
    assert_eq!(direct, via_stage);
    assert!(matches!(
        panoptic_from_stage(&stage, 2, c.frame, &c.config),
        Err(EncoderError::Input(_))
    ));
}

#[test]
fn shape_and_input_errors() {
    let config = PanopticConfig {
        num_things: 3,
        num_stuff: 2,
        ..Default::default()
    };
    let frame = PanopticFrame::Model {
        height: 8,
        width: 8,
    };
    let cls = |q: usize, k1: usize| tensor2(vec![0.0; q * k1], [q, k1]);
    let masks = |q: usize, h: usize, w: usize| tensor3(vec![0.0; q * h * w], [q, h, w]);

    // K+1 must be num_things + num_stuff + 1 (e.g. the IoU column left appended).
    let e = panoptic_segmentation(cls(4, 7), masks(4, 4, 4), frame, &config).unwrap_err();
    assert!(
        matches!(e, EncoderError::ShapeMismatch { ref actual, .. } if actual == &[4, 7]),
        "{e}"
    );
    // Q of the masks must match.
    let e = panoptic_segmentation(cls(4, 6), masks(3, 4, 4), frame, &config).unwrap_err();
    assert!(
        matches!(e, EncoderError::ShapeMismatch { ref actual, .. } if actual == &[3, 4, 4]),
        "{e}"
    );
    // Empty masks.
    let e = panoptic_segmentation(cls(4, 6), masks(4, 0, 4), frame, &config).unwrap_err();
    assert!(matches!(e, EncoderError::ShapeMismatch { .. }), "{e}");
    // Empty model frame.
    let empty = PanopticFrame::Model {
        height: 0,
        width: 8,
    };
    let e = panoptic_segmentation(cls(4, 6), masks(4, 4, 4), empty, &config).unwrap_err();
    assert!(matches!(e, EncoderError::Input(_)), "{e}");
    // A frame too large to index is refused before anything is allocated.
    let huge = PanopticFrame::Model {
        height: 1 << 20,
        width: 1 << 20,
    };
    let e = panoptic_segmentation(cls(4, 6), masks(4, 4, 4), huge, &config).unwrap_err();
    assert!(matches!(e, EncoderError::Input(_)), "{e}");
    // Inconsistent or empty square transforms.
    let mut t = SquareTransform::new(30, 20, 64);
    t.pad_y = 15; // 15 + 20 > 30
    for bad in [t, SquareTransform::new(0, 20, 64)] {
        let e = panoptic_segmentation(
            cls(4, 6),
            masks(4, 4, 4),
            PanopticFrame::Original(bad),
            &config,
        )
        .unwrap_err();
        assert!(matches!(e, EncoderError::Input(_)), "{e}");
    }
    // Invalid config.
    let bad = PanopticConfig {
        object_mask_thr: f64::INFINITY,
        ..config.clone()
    };
    let e = panoptic_segmentation(cls(4, 6), masks(4, 4, 4), frame, &bad).unwrap_err();
    assert!(matches!(e, EncoderError::Config(_)), "{e}");
    // The error message names the shapes.
    let e = panoptic_segmentation(cls(4, 7), masks(4, 4, 4), frame, &config).unwrap_err();
    assert!(e.to_string().contains("cls_logits"), "{e}");
}

#[test]
fn config_serde_and_mmdet_encoding_limits() {
    let c: PanopticConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, PanopticConfig::default());
    assert_eq!(
        (
            c.object_mask_thr,
            c.iou_thr,
            c.filter_low_score,
            c.num_things,
            c.num_stuff
        ),
        (0.8, 0.8, true, 80, 53)
    );
    let c: PanopticConfig = serde_json::from_str(r#"{"iou_thr": 0.5}"#).unwrap();
    assert_eq!(c.iou_thr, 0.5);
    assert_eq!(c.num_classes(), 133);
    assert!(serde_json::from_str::<PanopticConfig>(r#"{"iou": 0.5}"#).is_err());

    // mmdet's encoding is ambiguous from 1000 classes on.
    let r = PanopticResult {
        width: 1,
        height: 1,
        num_classes: 1203,
        segments: vec![],
        segment_map: vec![0],
    };
    assert_eq!(r.to_mmdet_map(), None);
}
