//! Edge cases of the metric definitions that the reference set may not pin down alone.

use ndarray::{Array2, array};
use omg_eval::gcg::{self, PhraseMatches, PhraseSimilarity};
use omg_eval::{
    CaptionSample, CocoImage, Detection, EvalError, GroundTruth, MetricTable, MetricValue,
    MiouAccumulator, RecallAccumulator, ReferringAccumulator, cider_d, coco_caption_tokens,
    evaluate_segm, mask_from_logits, union_of,
};
use omg_masks::BinaryMask;

/// A `h x w` mask with the rectangle `[y0, y1) x [x0, x1)` set.
fn rect(h: usize, w: usize, y0: usize, y1: usize, x0: usize, x1: usize) -> BinaryMask {
    let a = Array2::from_shape_fn((h, w), |(y, x)| {
        (y0..y1).contains(&y) && (x0..x1).contains(&x)
    });
    BinaryMask::from_array(a).unwrap()
}

fn empty(h: usize, w: usize) -> BinaryMask {
    rect(h, w, 0, 0, 0, 0)
}

#[test]
fn missing_prediction_counts_in_giou_but_not_in_ciou() {
    let gt = rect(4, 6, 0, 2, 0, 3); // 6 pixels
    let mut acc = ReferringAccumulator::new();
    acc.add(Some(&gt), &gt, "a").unwrap();
    acc.add(None, &rect(4, 6, 0, 4, 0, 6), "b").unwrap();
    let s = acc.scores().unwrap();
    assert_eq!((s.intersection, s.union, s.missing_predictions), (6, 6, 1));
    assert!((s.ciou - 1.0).abs() < 1e-9);
    let first = 6.0 / (6.0 + 1e-5);
    assert!((s.giou - first / 2.0).abs() < 1e-15);
}

#[test]
fn empty_masks_in_referring() {
    let mut acc = ReferringAccumulator::new();
    // Both empty: a perfect sample for gIoU, nothing for cIoU.
    let both = acc.add(Some(&empty(3, 5)), &empty(3, 5), "both").unwrap();
    assert_eq!(both.giou, 1.0);
    // Empty ground truth, non-empty prediction: 0.
    let spurious = acc
        .add(Some(&rect(3, 5, 0, 1, 0, 1)), &empty(3, 5), "spurious")
        .unwrap();
    assert_eq!(spurious.giou, 0.0);
    // Empty prediction, non-empty ground truth: 0, and the union grows.
    let missed = acc
        .add(Some(&empty(3, 5)), &rect(3, 5, 0, 3, 0, 5), "missed")
        .unwrap();
    assert_eq!(missed.giou, 0.0);
    let s = acc.scores().unwrap();
    assert_eq!((s.intersection, s.union), (0, 16));
    assert!((s.giou - 1.0 / 3.0).abs() < 1e-15);
    assert_eq!(s.ciou, 0.0);
}

#[test]
fn referring_rejects_bad_input() {
    let mut acc = ReferringAccumulator::new();
    assert!(matches!(acc.scores(), Err(EvalError::Empty(_))));
    let err = acc
        .add(Some(&empty(3, 5)), &empty(5, 3), "sample 7")
        .unwrap_err();
    assert!(matches!(err, EvalError::SizeMismatch { .. }));
    assert!(err.to_string().contains("sample 7"));
    assert_eq!(acc.samples(), 0);
    assert!(matches!(union_of(&[], "x"), Err(EvalError::Invalid(_))));
    assert!(union_of(&[empty(2, 2), empty(2, 3)], "x").is_err());
}

#[test]
fn union_of_ground_truth_parts() {
    let u = union_of(&[rect(4, 4, 0, 1, 0, 4), rect(4, 4, 0, 4, 0, 1)], "x").unwrap();
    assert_eq!(u.area(), 7);
}

#[test]
fn logits_are_thresholded_as_sigmoid_above_one_half_in_f32() {
    let m = mask_from_logits(1, 5, &[-1.0, 0.0, 1e-9, 1e-3, 5.0]).unwrap();
    let bits: Vec<bool> = m.array().iter().copied().collect();
    assert_eq!(bits, [false, false, false, true, true]);
    assert!(mask_from_logits(2, 2, &[0.0; 3]).is_err());
}

#[test]
fn miou_pairing_is_greedy_and_stops_at_nan() {
    // Greedy: the best pair first, even if a global assignment would be better.
    let ious = array![[0.9, 0.8], [0.85, 0.0]];
    let pairs = gcg::greedy_pairs(ious.view());
    assert_eq!(pairs, vec![(0, 0, 0.9)]);
    // Ties: the first maximum in row-major order.
    let ties = array![[0.0, 0.5], [0.5, 0.0]];
    assert_eq!(gcg::greedy_pairs(ties.view())[0], (0, 1, 0.5));
    // A NaN anywhere ends the pairing.
    let nan = array![[0.7, f64::NAN]];
    assert!(gcg::greedy_pairs(nan.view()).is_empty());
    // Two empty masks have a NaN IoU, so the image scores 0 here.
    let mut acc = MiouAccumulator::new();
    let v = acc
        .add_image(
            &[empty(3, 4), rect(3, 4, 0, 2, 0, 2)],
            &[empty(3, 4), rect(3, 4, 0, 2, 0, 2)],
            "img",
        )
        .unwrap();
    assert_eq!(v, 0.0);
    // No prediction: 0; the mean is over images.
    acc.add_image(&[], &[rect(3, 4, 0, 1, 0, 1)], "img2")
        .unwrap();
    acc.add_image(&[rect(3, 4, 0, 1, 0, 1)], &[rect(3, 4, 0, 1, 0, 1)], "img3")
        .unwrap();
    assert_eq!(acc.images(), 3);
    assert!((acc.miou() - 1.0 / 3.0).abs() < 1e-15);
}

#[test]
fn recall_matching_stops_at_the_first_dissimilar_best_pair() {
    let ious = array![[0.9, 0.0], [0.0, 0.8]];
    // The best pair's phrases are dissimilar: the matching stops, although the second
    // pair would pass.
    let sims = array![[0.2, 0.0], [0.0, 0.9]];
    let m = gcg::match_phrases(ious.view(), sims.view(), 0.5, 0.5).unwrap();
    assert_eq!(m, PhraseMatches::Matched(vec![]));
    let sims = array![[0.6, 0.0], [0.0, 0.5]];
    let m = gcg::match_phrases(ious.view(), sims.view(), 0.5, 0.5).unwrap();
    assert_eq!(m, PhraseMatches::Matched(vec![(0, 0), (1, 1)]));
    // A NaN IoU (two empty masks) is taken first and passes the IoU test.
    let nan = array![[0.9, f64::NAN]];
    let m = gcg::match_phrases(nan.view(), array![[0.9, 0.9]].view(), 0.5, 0.5).unwrap();
    assert_eq!(m, PhraseMatches::Matched(vec![(0, 1)]));
    // A cell outside the similarity matrix.
    let m = gcg::match_phrases(ious.view(), array![[0.9, 0.9]].view(), 0.5, 0.5).unwrap();
    assert_eq!(m, PhraseMatches::OutOfRange { gt: 1, pred: 1 }.clone());
    assert!(gcg::match_phrases(ious.view(), sims.view(), 0.0, 0.5).is_err());
}

struct Exact;

impl PhraseSimilarity for Exact {
    fn similarity(&self, reference: &str, candidate: &str) -> Result<f64, EvalError> {
        Ok(if reference == candidate { 1.0 } else { 0.0 })
    }
}

#[test]
fn recall_with_a_similarity_implementation() {
    let gt = [rect(5, 7, 0, 2, 0, 2), rect(5, 7, 3, 5, 3, 7)];
    let pred = [rect(5, 7, 3, 5, 3, 7), rect(5, 7, 0, 2, 0, 2)];
    let mut acc = RecallAccumulator::new();
    assert_eq!(acc.recall(), 0.0);
    let m = acc
        .add_image_with(
            &gt,
            &["a dog", "a cat"],
            &pred,
            &["a cat", "a dog"],
            &Exact,
            "img",
        )
        .unwrap();
    assert_eq!(m.count(), 2);
    let m = acc
        .add_image_with(
            &gt,
            &["a dog", "a cat"],
            &pred,
            &["a cow", "a dog"],
            &Exact,
            "img",
        )
        .unwrap();
    assert_eq!(m.count(), 1);
    assert_eq!((acc.true_positives(), acc.actual_positives()), (3, 4));
    assert_eq!(acc.recall(), 0.75);
}

fn gt(id: u64, mask: BinaryMask, iscrowd: bool) -> GroundTruth {
    GroundTruth { id, mask, iscrowd }
}

fn det(mask: BinaryMask, score: f64) -> Detection {
    Detection { mask, score }
}

#[test]
fn ap_of_perfect_and_absent_detections() {
    let m = rect(6, 9, 1, 4, 2, 7);
    let perfect = CocoImage {
        id: 3,
        ground_truth: vec![gt(1, m.clone(), false)],
        detections: vec![det(m.clone(), 1.0)],
    };
    // Precision is tp / (tp + fp + eps): one less a rounding step, as in pycocotools.
    let one = |v: Option<f64>| (v.unwrap() - 1.0).abs() < 1e-12;
    let s = evaluate_segm(std::slice::from_ref(&perfect)).unwrap();
    assert!(one(s.ap) && one(s.ap50) && one(s.ar100), "{s:?}");
    // A detection on a crowd region is ignored, not a false positive.
    let mut with_crowd = perfect.clone();
    with_crowd
        .ground_truth
        .push(gt(2, rect(6, 9, 4, 6, 0, 9), true));
    with_crowd.detections.push(det(rect(6, 9, 5, 6, 0, 9), 0.9));
    assert!(one(evaluate_segm(&[with_crowd]).unwrap().ap));
    // The same detection without the crowd region is a false positive ranked first.
    let mut spurious = perfect.clone();
    spurious.detections.push(det(rect(6, 9, 5, 6, 0, 9), 1.5));
    let ap50 = evaluate_segm(&[spurious]).unwrap().ap50.unwrap();
    assert!((ap50 - 0.5).abs() < 1e-12, "{ap50}");
    // No ground truth anywhere: pycocotools' -1.
    let none = CocoImage {
        id: 1,
        ground_truth: vec![],
        detections: vec![det(m.clone(), 1.0)],
    };
    assert_eq!(evaluate_segm(&[none]).unwrap().ap, None);
    // Annotation id 0 never counts as matched (pycocotools stores ids).
    let id0 = CocoImage {
        id: 1,
        ground_truth: vec![gt(0, m.clone(), false)],
        detections: vec![det(m, 1.0)],
    };
    assert_eq!(evaluate_segm(&[id0]).unwrap().ap, Some(0.0));
}

#[test]
fn ap_rejects_bad_input() {
    let a = CocoImage {
        id: 1,
        ..Default::default()
    };
    assert!(evaluate_segm(&[a.clone(), a.clone()]).is_err());
    let nan = CocoImage {
        id: 2,
        ground_truth: vec![],
        detections: vec![det(empty(2, 2), f64::NAN)],
    };
    assert!(evaluate_segm(&[nan]).is_err());
    let mismatch = CocoImage {
        id: 3,
        ground_truth: vec![gt(1, empty(2, 2), false)],
        detections: vec![det(empty(2, 3), 1.0)],
    };
    assert!(matches!(
        evaluate_segm(&[mismatch]),
        Err(EvalError::SizeMismatch { .. })
    ));
}

fn sample(refs: &[&str], cand: &str) -> CaptionSample {
    CaptionSample {
        references: refs.iter().map(|r| r.to_string()).collect(),
        candidate: cand.to_string(),
    }
}

#[test]
fn cider_edge_cases() {
    assert!(matches!(cider_d(&[]), Err(EvalError::Empty(_))));
    assert!(matches!(
        cider_d(&[sample(&[], "a")]),
        Err(EvalError::Invalid(_))
    ));
    // One sample: ln(1) = 0, every weight vanishes.
    assert_eq!(cider_d(&[sample(&["a dog"], "a dog")]).unwrap().score, 0.0);
    let s = cider_d(&[
        sample(&["a dog runs on grass"], "a dog runs on grass"),
        sample(&["a cat sleeps"], ""),
    ])
    .unwrap();
    assert_eq!(s.per_sample[1], 0.0);
    assert!(s.per_sample[0] > 0.0);
    // Length counts bigrams: a one-word and a two-word caption differ by one.
    let a = cider_d(&[sample(&["dog"], "dog dog"), sample(&["cat"], "cat")]).unwrap();
    assert!(a.per_sample[0] < a.per_sample[1]);
}

#[test]
fn tokenization_details() {
    assert_eq!(
        coco_caption_tokens("Don't stop (now)."),
        "do n't stop -lrb- now -rrb-"
    );
    assert_eq!(
        coco_caption_tokens("The U.S. flag, etc."),
        "the u.s. flag etc."
    );
    assert_eq!(coco_caption_tokens("A dog's toy?!"), "a dog 's toy ?!");
    assert_eq!(coco_caption_tokens(""), "");
}

#[test]
fn metric_table_serialises_values_and_reasons() {
    let mut t = MetricTable::new("GCG val");
    t.push("mask AP50", MetricValue::value(0.5));
    t.push(
        "recall",
        MetricValue::unavailable(gcg::recall_unavailable_reason()),
    );
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["rows"][0]["value"]["status"], "value");
    assert_eq!(json["rows"][0]["value"]["value"], 0.5);
    assert_eq!(json["rows"][1]["value"]["status"], "unavailable");
    let back: MetricTable = serde_json::from_value(json).unwrap();
    assert_eq!(back, t);
    let text = t.to_string();
    assert!(text.starts_with("GCG val\n"));
    assert!(text.contains("  mask AP50  0.5000\n"));
    assert!(text.contains("  recall     unavailable: "));
    assert_eq!(
        t.get("mask AP50").and_then(MetricValue::as_value),
        Some(0.5)
    );
}
