//! Photo pixels → model frame for a non-square photo, against values computed by hand
//! from the official rules (the official code's `expand2square` and its box and point
//! variants): pad to the centred square (`expand2square_*`), then scale by
//! `target / side`. Both box corners are
//! shifted (the official `expand2square_bbox` shifts only the first: a documented demo
//! bug we do not copy).
//!
//! The Pipeline's conversion of regions is private, so it is checked through what it
//! does: a photo and its centred square (padded with the official fill colour)
//! preprocess to the same model input, so a region of the photo must give exactly the
//! mask and score that the region moved by the padding gives on the square, cropped
//! back to the photo.

use std::path::Path;

use image::{DynamicImage, ImageBuffer, Rgb};
use omg_encoder::preprocess::{SquareTransform, expand_to_square};
use omg_llava::{
    BinaryMask, ImageHandle, LoadOptions, MaskOutput, OmgLlavaError, Pipeline, Region,
};

type B = burn::backend::Flex;

/// A 6 × 4 (W × H) photo, model side 12: side 6, pad_y = (6 − 4) / 2 = 1, scale 2.
fn wide() -> SquareTransform {
    SquareTransform::new(6, 4, 12)
}

fn pipeline() -> Pipeline<B> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../omg-demo/assets/tiny");
    Pipeline::<B>::from_dir(dir, &LoadOptions::default(), Default::default(), |_| {}).unwrap()
}

/// A `width × height` photo with some structure.
fn photo(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([
            (x * 7 % 256) as u8,
            (y * 11 % 256) as u8,
            ((x * y) % 256) as u8,
        ])
    }))
}

/// A photo, its centred square (official fill) and the paste offset.
struct Pair {
    photo: ImageHandle<B>,
    square: ImageHandle<B>,
    pad: (u32, u32),
}

fn pair(p: &Pipeline<B>, width: u32, height: u32) -> Pair {
    let img = photo(width, height);
    let (square, pad) = expand_to_square(&img.to_rgb8());
    let t = SquareTransform::new(width, height, 128);
    assert_eq!(pad, (t.pad_x, t.pad_y));
    Pair {
        photo: p.encode(&img).unwrap(),
        square: p.encode(&DynamicImage::ImageRgb8(square)).unwrap(),
        pad,
    }
}

/// The rows and columns of `m` (a mask of the square) where the photo was pasted.
fn crop(m: &BinaryMask, pad: (u32, u32), width: u32, height: u32) -> BinaryMask {
    let (x0, y0) = (pad.0 as usize, pad.1 as usize);
    let a = m.array();
    let mut data = Vec::new();
    for y in y0..y0 + height as usize {
        for x in x0..x0 + width as usize {
            data.push(a[[y, x]]);
        }
    }
    BinaryMask::from_vec(height as usize, width as usize, data).unwrap()
}

/// The mask a region of the photo gives equals the one the moved region gives on the
/// square, cropped; and its score is the same, bit for bit.
fn assert_same(on_photo: &MaskOutput, on_square: &MaskOutput, pair: &Pair, what: &str) {
    let (w, h) = (pair.photo.width(), pair.photo.height());
    assert_eq!(
        (on_photo.mask().width(), on_photo.mask().height()),
        (w as usize, h as usize)
    );
    assert_eq!(
        *on_photo.mask(),
        crop(on_square.mask(), pair.pad, w, h),
        "{what}"
    );
    assert_eq!(
        on_photo.score().to_bits(),
        on_square.score().to_bits(),
        "{what}"
    );
}

#[test]
fn points_and_both_box_corners_of_a_wide_photo() {
    let t = wide();
    assert_eq!((t.side, t.pad_x, t.pad_y), (6, 0, 1));
    // (x, y) → (2x, 2(y + 1))
    assert_eq!(t.to_model(5.0, 3.0), (10.0, 8.0));
    assert_eq!(t.box_to_model([1.0, 0.0, 4.0, 2.0]), [2.0, 2.0, 8.0, 6.0]);
    // a tall photo: 3 × 8, side 8, pad_x = (8 − 3) / 2 = 2, scale 16 / 8 = 2
    let tall = SquareTransform::new(3, 8, 16);
    assert_eq!((tall.pad_x, tall.pad_y), (2, 0));
    assert_eq!(
        tall.box_to_model([0.0, 1.0, 3.0, 8.0]),
        [4.0, 2.0, 10.0, 16.0]
    );

    // The Pipeline's regions go through the same mapping: on a wide and a tall photo, a
    // point and a box give what the moved point and box give on the square.
    let p = pipeline();
    for (width, height) in [(64, 40), (40, 64)] {
        let pair = pair(&p, width, height);
        let (dx, dy) = (pair.pad.0 as f32, pair.pad.1 as f32);
        assert!(dx + dy == 12.0, "{:?}", pair.pad);
        let region = |h: &ImageHandle<B>, r: Region| p.segment_region(h, &r).unwrap();

        let (x, y) = (30.0, 20.0);
        let on_photo = region(&pair.photo, Region::point(x, y));
        assert_same(
            &on_photo,
            &region(&pair.square, Region::point(x + dx, y + dy)),
            &pair,
            "point",
        );
        // the point not moved lands elsewhere: the comparison sees the shift
        assert_ne!(
            on_photo.score(),
            region(&pair.square, Region::point(x, y)).score()
        );

        let b = [6.0, 4.0, 34.0, 30.0];
        let on_photo = region(&pair.photo, Region::rect(b[0], b[1], b[2], b[3]));
        assert_same(
            &on_photo,
            &region(
                &pair.square,
                Region::rect(b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy),
            ),
            &pair,
            "box",
        );
        // the demo's bug (only the first corner moved) is not what the Pipeline does
        assert_ne!(
            on_photo.score(),
            region(&pair.square, Region::rect(b[0] + dx, b[1] + dy, b[2], b[3])).score()
        );
    }
}

#[test]
fn a_mask_of_a_wide_photo_is_padded_then_resized() {
    // A mask region of the photo gives what the zero-padded mask gives on the square
    // (both are then nearest-resized to the model side alike).
    let p = pipeline();
    let (width, height) = (64, 40);
    let pair = pair(&p, width, height);
    let (dx, dy) = (pair.pad.0 as usize, pair.pad.1 as usize);
    assert_eq!((dx, dy), (0, 12));
    let inside = |x: usize, y: usize| (20..50).contains(&x) && (5..39).contains(&y);
    let mut data = Vec::new();
    for y in 0..height as usize {
        for x in 0..width as usize {
            data.push(inside(x, y));
        }
    }
    let on_photo = BinaryMask::from_vec(height as usize, width as usize, data).unwrap();
    let mut data = Vec::new();
    for y in 0..64 {
        for x in 0..64 {
            data.push(y >= dy && y < dy + height as usize && inside(x - dx, y - dy));
        }
    }
    let on_square = BinaryMask::from_vec(64, 64, data).unwrap();
    assert_eq!(on_square.area(), on_photo.area());
    let a = p
        .segment_region(&pair.photo, &Region::Mask(on_photo.clone()))
        .unwrap();
    let b = p
        .segment_region(&pair.square, &Region::Mask(on_square))
        .unwrap();
    assert_same(&a, &b, &pair, "mask");
    // the mask not moved (its top rows on the padding) gives another answer
    let mut data = on_photo.array().iter().copied().collect::<Vec<_>>();
    data.extend(std::iter::repeat_n(false, 64 * 24));
    let unmoved = BinaryMask::from_vec(64, 64, data).unwrap();
    assert_ne!(
        a.score(),
        p.segment_region(&pair.square, &Region::Mask(unmoved))
            .unwrap()
            .score()
    );
}

#[test]
fn a_mask_of_another_size_is_an_error_not_a_panic() {
    let p = pipeline();
    let handle = p.encode(&photo(6, 4)).unwrap();
    let mask = BinaryMask::from_vec(6, 4, vec![true; 24]).unwrap();
    let expected = |r: Result<(), OmgLlavaError>| match r {
        Err(OmgLlavaError::RegionMaskSize {
            width: 4,
            height: 6,
            image_width: 6,
            image_height: 4,
        }) => {}
        other => panic!("{other:?}"),
    };
    expected(
        p.segment_region(&handle, &Region::Mask(mask.clone()))
            .map(|_| ()),
    );
    expected(
        p.ask_regions(
            &handle,
            &[Region::Mask(mask)],
            "What is <region>?",
            &Default::default(),
        )
        .map(|_| ()),
    );
}
