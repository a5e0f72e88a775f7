//! Photo pixels → model frame for a non-square photo, against values computed by hand
//! from the official rules (`../shared/docs/architecture.md` §9.1): pad to the centred
//! square (`expand2square_*`), then scale by `target / side`. Both box corners are
//! shifted (the official `expand2square_bbox` shifts only the first: a documented demo
//! bug we do not copy).

use omg_encoder::preprocess::SquareTransform;
use omg_llava::region::{ModelFramePrompts, mask_to_model};
use omg_llava::{BinaryMask, OmgLlavaError, Region};

/// A 6 × 4 (W × H) photo, model side 12: side 6, pad_y = (6 − 4) / 2 = 1, scale 2.
fn wide() -> SquareTransform {
    SquareTransform::new(6, 4, 12)
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
    let prompts = ModelFramePrompts::new(
        &[
            Region::Point { x: 5.0, y: 3.0 },
            Region::Box([1.0, 0.0, 4.0, 2.0]),
        ],
        t,
    )
    .unwrap();
    assert_eq!(prompts.points, vec![(10.0, 8.0)]);
    assert_eq!(prompts.boxes, vec![(0, [2.0, 2.0, 8.0, 6.0])]);
}

#[test]
fn a_mask_of_a_wide_photo_is_padded_then_resized() {
    // the bottom-right pixel (x 5, y 3) → square row 4, column 5 → model rows 8–9,
    // columns 10–11 (nearest: model i reads square ⌊i / 2⌋)
    let mut data = vec![false; 6 * 4];
    data[3 * 6 + 5] = true;
    let mask = BinaryMask::from_vec(4, 6, data).unwrap();
    let m = mask_to_model(&mask, wide()).unwrap();
    assert_eq!((m.height(), m.width()), (12, 12));
    let inside: Vec<(usize, usize)> = (0..12 * 12)
        .filter(|&i| m.data()[i])
        .map(|i| (i / 12, i % 12))
        .collect();
    assert_eq!(inside, vec![(8, 10), (8, 11), (9, 10), (9, 11)]);
}

#[test]
fn a_mask_of_another_size_is_an_error_not_a_panic() {
    let mask = BinaryMask::from_vec(6, 4, vec![true; 24]).unwrap();
    match mask_to_model(&mask, wide()) {
        Err(OmgLlavaError::RegionMaskSize {
            width: 4,
            height: 6,
            image_width: 6,
            image_height: 4,
        }) => {}
        other => panic!("{:?}", other.map(|m| m.area())),
    }
}
