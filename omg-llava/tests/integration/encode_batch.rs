//! `Pipeline::encode_batch`: several photos of different sizes in one encoder pass give
//! the handles that encoding each alone gives: the same number of visual tokens, and
//! (up to the order of floating-point sums) the same answers, masks and scores.

use std::path::Path;

use burn::backend::Flex;
use image::{DynamicImage, ImageBuffer, Rgb};
use omg_llava::{
    Conversation, GenerateOptions, ImageLimits, LoadOptions, OmgLlavaError, PanopticSegment,
    Pipeline, Region,
};

type B = Flex;

fn pipeline() -> Pipeline<B> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny");
    Pipeline::<B>::from_dir(dir, &LoadOptions::default(), Default::default(), |_| {}).unwrap()
}

fn photos() -> Vec<DynamicImage> {
    let chelsea =
        image::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/chelsea.png"))
            .unwrap();
    let tall = DynamicImage::ImageRgb8(ImageBuffer::from_fn(90, 160, |x, y| {
        Rgb([
            (x * 3 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    }));
    let gray = DynamicImage::ImageLuma8(chelsea.to_luma8());
    vec![chelsea, tall, gray]
}

#[test]
fn a_batch_encodes_as_each_image_alone() {
    let p = pipeline();
    let photos = photos();
    let batch = p.encode_batch(&photos).unwrap();
    assert_eq!(batch.len(), photos.len());
    let options = GenerateOptions::default()
        .with_max_new_tokens(5)
        .with_forced_seg(1);
    for (photo, b) in photos.iter().zip(&batch) {
        let one = p.encode(photo).unwrap();
        assert_eq!((b.width(), b.height()), (photo.width(), photo.height()));
        // the same valid object queries (the visual tokens are pixel tokens, the
        // separator and one token per valid query)
        assert_eq!(b.visual_token_count(), one.visual_token_count());

        // Queries on the batch's handle answer as on the single one. The visual tokens
        // are private; the [SEG] mask's score (a continuous function of every visual
        // token through the LLM) stands for them.
        let ask = |h| {
            p.chat(
                h,
                &mut Conversation::new(),
                "Please segment the cat.",
                &options,
            )
            .unwrap()
        };
        let (a, e) = (ask(b), ask(&one));
        assert_eq!(a.token_ids, e.token_ids);
        assert_eq!(a.masks.len(), 1);
        let iou = a.masks[0].mask().iou(e.masks[0].mask()).unwrap();
        assert!(iou >= 0.999, "IoU {iou}");
        let d = (a.masks[0].score() - e.masks[0].score()).abs();
        assert!(d <= 1e-4, "[SEG] mask scores differ by {d}");
        let point = Region::point(photo.width() as f32 / 2.0, photo.height() as f32 / 3.0);
        let (m, n) = (
            p.segment_region(b, &point).unwrap(),
            p.segment_region(&one, &point).unwrap(),
        );
        assert!(same_mask(m.mask(), n.mask()));
        assert!((m.score() - n.score()).abs() <= 1e-4);
        let (pa, pb) = (p.panoptic(b).unwrap(), p.panoptic(&one).unwrap());
        let labels = |x: &[PanopticSegment]| x.iter().map(|s| s.label.clone()).collect::<Vec<_>>();
        assert_eq!(labels(&pa), labels(&pb));
        for (x, y) in pa.iter().zip(&pb) {
            assert!((x.mask.score() - y.mask.score()).abs() <= 1e-4);
            assert!(same_mask(x.mask.mask(), y.mask.mask()));
        }
    }
}

#[test]
fn an_empty_batch_is_empty_and_limits_hold_for_every_image() {
    let p = pipeline();
    assert!(p.encode_batch(&[]).unwrap().is_empty());
    let tight = pipeline().with_image_limits(ImageLimits::new(400, 400 * 400));
    match tight.encode_batch(&photos()) {
        Err(OmgLlavaError::ImageTooLarge {
            width: 451,
            height: 300,
            ..
        }) => {}
        other => panic!("{:?}", other.map(|v| v.len())),
    }
}

/// Whether two masks of the same size (a size mismatch fails the test) are equal or
/// overlap with an IoU of at least 0.999 (two empty masks are equal; their IoU is 0).
fn same_mask(a: &omg_llava::BinaryMask, b: &omg_llava::BinaryMask) -> bool {
    a == b || a.iou(b).unwrap() >= 0.999
}
