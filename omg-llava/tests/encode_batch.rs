//! `Pipeline::encode_batch`: several photos of different sizes in one encoder pass give
//! the handles that encoding each alone gives: the same visual tokens (up to the order
//! of floating-point sums), queries, answers and masks.

use std::path::Path;

use burn::backend::Flex;
use image::{DynamicImage, ImageBuffer, Rgb};
use omg_llava::{Conversation, GenerateOptions, ImageLimits, OmgLlavaError, Pipeline, Region};

type B = Flex;

#[path = "../../fixtures/test_support.rs"]
mod common;

fn pipeline() -> Pipeline<B> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/assets/tiny");
    Pipeline::<B>::from_dir(dir, Default::default(), |_| {}).unwrap()
}

fn photos() -> Vec<DynamicImage> {
    let chelsea =
        image::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/assets/chelsea.png"))
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
    let seg = p.model().special.seg.unwrap();
    let options = GenerateOptions::default()
        .with_max_new_tokens(5)
        .with_forced_tokens(vec![(1, seg)]);
    for (photo, b) in photos.iter().zip(&batch) {
        let one = p.encode(photo).unwrap();
        assert_eq!((b.width(), b.height()), (photo.width(), photo.height()));
        assert_eq!(b.valid_queries, one.valid_queries);
        let (x, y) = (
            b.visual_tokens.clone().into_data().to_vec::<f32>().unwrap(),
            one.visual_tokens
                .clone()
                .into_data()
                .to_vec::<f32>()
                .unwrap(),
        );
        let d = common::max_diff(&x, &y);
        assert!(d <= 1e-4, "visual tokens differ by {d}");

        // Queries on the batch's handle answer as on the single one.
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
        let iou = a.masks[0].mask.iou(&e.masks[0].mask).unwrap();
        assert!(iou >= 0.999, "IoU {iou}");
        let point = Region::Point {
            x: photo.width() as f32 / 2.0,
            y: photo.height() as f32 / 3.0,
        };
        let (m, n) = (
            p.interactive(b, &point).unwrap(),
            p.interactive(&one, &point).unwrap(),
        );
        assert!(m.mask.iou(&n.mask).unwrap_or(1.0) >= 0.999);
        let (pa, pb) = (p.panoptic(b).unwrap(), p.panoptic(&one).unwrap());
        let labels = |x: &omg_llava::PanopticOutput| {
            x.segments
                .iter()
                .map(|s| s.label.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(&pa), labels(&pb));
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
