//! Object-level prompts in the original image's pixels, and their conversion to the
//! model frame exactly as the official tools do (pad to the centred square, scale to
//! the model size; masks zero-padded and nearest-resized).

use omg_encoder::preprocess::SquareTransform;
use omg_encoder::{PromptBatch, RegionMask};
use omg_masks::BinaryMask;

use crate::error::OmgLlavaError;

/// A region of the photo named by the user, in the photo's pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum Region {
    /// A point `(x, y)` (a `<mark>` in the prompt).
    Point {
        /// Column.
        x: f32,
        /// Row.
        y: f32,
    },
    /// A rectangle `[x1, y1, x2, y2]`, `x1 < x2`, `y1 < y2` (a box prompt: a
    /// `<region>` in the prompt). It must overlap the photo; a part outside it is cut
    /// off at the photo's edges.
    Rect([f32; 4]),
    /// A mask of the photo's size (a `<region>` in the prompt).
    Mask(BinaryMask),
}

/// The kind of placeholder a region uses in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholder {
    /// `<region>` (boxes and masks).
    Region,
    /// `<mark>` (points).
    Mark,
}

impl Region {
    /// A point `(x, y)`.
    pub fn point(x: f32, y: f32) -> Self {
        Region::Point { x, y }
    }

    /// A rectangle with corners `(x1, y1)`, `(x2, y2)`.
    pub fn rect(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Region::Rect([x1, y1, x2, y2])
    }

    /// The placeholder the official tools use for this kind of prompt.
    pub(crate) fn placeholder(&self) -> Placeholder {
        match self {
            Region::Point { .. } => Placeholder::Mark,
            _ => Placeholder::Region,
        }
    }

    /// Checks the region against a photo of `width × height`: a point inside it, a
    /// finite rectangle that overlaps it, a non-empty mask of its size.
    ///
    /// # Errors
    ///
    /// [`OmgLlavaError::PointOutside`], [`OmgLlavaError::DegenerateBox`],
    /// [`OmgLlavaError::BoxOutside`], [`OmgLlavaError::RegionMaskSize`] or
    /// [`OmgLlavaError::EmptyRegionMask`].
    pub fn validate(&self, width: u32, height: u32) -> Result<(), OmgLlavaError> {
        let (w, h) = (width as f32, height as f32);
        match self {
            Region::Point { x, y } => {
                if !(x.is_finite() && y.is_finite() && *x >= 0.0 && *y >= 0.0 && *x < w && *y < h) {
                    return Err(OmgLlavaError::PointOutside {
                        x: *x,
                        y: *y,
                        width,
                        height,
                    });
                }
            }
            Region::Rect(b) => {
                let finite = b.iter().all(|v| v.is_finite());
                if !finite || b[0] >= b[2] || b[1] >= b[3] {
                    return Err(OmgLlavaError::DegenerateBox { bbox: *b });
                }
                if b[2] <= 0.0 || b[3] <= 0.0 || b[0] >= w || b[1] >= h {
                    return Err(OmgLlavaError::BoxOutside {
                        bbox: *b,
                        width,
                        height,
                    });
                }
            }
            Region::Mask(m) => {
                if m.width() != width as usize || m.height() != height as usize {
                    return Err(OmgLlavaError::RegionMaskSize {
                        width: m.width(),
                        height: m.height(),
                        image_width: width,
                        image_height: height,
                    });
                }
                if m.area() == 0 {
                    return Err(OmgLlavaError::EmptyRegionMask);
                }
            }
        }
        Ok(())
    }
}

/// A mask in original pixels → the model frame: zero-padded to the centred square
/// (`expand2square_mask`) and nearest-resized to `target` (as torch `nearest`). The
/// mask must have the size of the image `t` was made for.
pub(crate) fn mask_to_model(
    mask: &BinaryMask,
    t: SquareTransform,
) -> Result<RegionMask, OmgLlavaError> {
    if mask.width() != t.orig_width as usize || mask.height() != t.orig_height as usize {
        return Err(OmgLlavaError::RegionMaskSize {
            width: mask.width(),
            height: mask.height(),
            image_width: t.orig_width,
            image_height: t.orig_height,
        });
    }
    let side = t.side as usize;
    let (px, py) = (t.pad_x as usize, t.pad_y as usize);
    let mut square = vec![false; side * side];
    for ((y, x), &inside) in mask.array().indexed_iter() {
        square[(y + py) * side + x + px] = inside;
    }
    let padded = RegionMask::new(side, side, square)?;
    let target = t.target as usize;
    Ok(RegionMask::new(
        target,
        target,
        padded.resize_nearest(target, target),
    )?)
}

/// Regions converted to the model frame and grouped by kind, each kind in its
/// order of appearance (the order `<mark>` and `<region>` consume them). Boxes and
/// masks are separate prompt batches because they steer attention differently; each
/// keeps its index among the `<region>` placeholders.
pub(crate) struct ModelFramePrompts {
    /// Point prompts (`<mark>` order).
    pub points: Vec<(f32, f32)>,
    /// Box prompts with their `<region>` index.
    pub boxes: Vec<(usize, [f32; 4])>,
    /// Mask prompts with their `<region>` index.
    pub masks: Vec<(usize, RegionMask)>,
}

impl ModelFramePrompts {
    /// Converts `regions` for an image with transform `t` (a mask of another size than
    /// the image is an error).
    pub fn new(regions: &[Region], t: SquareTransform) -> Result<Self, OmgLlavaError> {
        let mut out = Self {
            points: Vec::new(),
            boxes: Vec::new(),
            masks: Vec::new(),
        };
        let mut region_index = 0;
        for r in regions {
            match r {
                Region::Point { x, y } => {
                    let (mx, my) = t.to_model(f64::from(*x), f64::from(*y));
                    out.points.push((mx as f32, my as f32));
                }
                Region::Rect(b) => {
                    // the part of the box inside the photo (a box reaching past an
                    // edge, or to a huge coordinate, is cut at it)
                    let (w, h) = (f64::from(t.orig_width), f64::from(t.orig_height));
                    let [x1, y1, x2, y2] = b.map(f64::from);
                    let inside = [x1.max(0.0), y1.max(0.0), x2.min(w), y2.min(h)];
                    let m = t.box_to_model(inside);
                    out.boxes.push((region_index, m.map(|v| v as f32)));
                    region_index += 1;
                }
                Region::Mask(m) => {
                    out.masks.push((region_index, mask_to_model(m, t)?));
                    region_index += 1;
                }
            }
        }
        Ok(out)
    }

    /// The point batch, if any.
    pub fn point_batch(&self, size: usize) -> Option<PromptBatch> {
        (!self.points.is_empty()).then(|| PromptBatch::Points {
            points: self.points.clone(),
            width: size,
            height: size,
        })
    }

    /// The box batch, if any.
    pub fn box_batch(&self, size: usize) -> Option<PromptBatch> {
        (!self.boxes.is_empty()).then(|| PromptBatch::Boxes {
            boxes: self.boxes.iter().map(|(_, b)| *b).collect(),
            width: size,
            height: size,
        })
    }

    /// The mask batch, if any.
    pub fn mask_batch(&self) -> Option<PromptBatch> {
        (!self.masks.is_empty())
            .then(|| PromptBatch::Regions(self.masks.iter().map(|(_, m)| m.clone()).collect()))
    }
}

#[cfg(test)]
mod tests {
    //! Regions in the model frame against the official `expand2square_points`,
    //! `expand2square_mask` and torch `nearest` computed by
    //! `fixtures/photo_frame/make_reference.py`, on wide and tall photos with odd and
    //! even padding.

    use serde_json::Value;

    use super::*;

    fn cases() -> Vec<Value> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/photo_frame/reference.json"
        );
        let reference: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .expect("the photo-frame reference");
        reference["cases"].as_array().unwrap().clone()
    }

    fn num(v: &Value) -> u32 {
        v.as_u64().unwrap() as u32
    }

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn bits(v: &Value) -> Vec<bool> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter())
            .map(|x| x.as_u64() == Some(1))
            .collect()
    }

    fn close(ours: &[f32], want: &[f64], what: &str) {
        assert_eq!(ours.len(), want.len(), "{what}");
        for (a, b) in ours.iter().zip(want) {
            assert!(
                (f64::from(*a) - b).abs() < 1e-4,
                "{what}: {ours:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn regions_in_the_model_frame_equal_the_official_mapping() {
        for case in cases() {
            let (w, h) = (num(&case["width"]), num(&case["height"]));
            let t = SquareTransform::new(w, h, num(&case["target"]));
            let what = format!("{w}x{h}");
            let points: Vec<Region> = case["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let p = floats(p);
                    Region::point(p[0] as f32, p[1] as f32)
                })
                .collect();
            let boxes: Vec<Region> = case["boxes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let b = floats(b);
                    Region::rect(b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32)
                })
                .collect();
            let region =
                BinaryMask::from_vec(h as usize, w as usize, bits(&case["region"])).unwrap();
            let mut all = points.clone();
            all.extend(boxes.iter().cloned());
            all.push(Region::Mask(region));
            for r in &all {
                r.validate(w, h).unwrap();
            }
            let model = ModelFramePrompts::new(&all, t).unwrap();

            let want_points = case["points_model"].as_array().unwrap();
            assert_eq!(model.points.len(), want_points.len(), "{what}");
            for (p, want) in model.points.iter().zip(want_points) {
                close(&[p.0, p.1], &floats(want), &format!("point of {what}"));
            }
            let want_boxes = case["boxes_model"].as_array().unwrap();
            assert_eq!(model.boxes.len(), want_boxes.len(), "{what}");
            for (i, ((index, b), want)) in model.boxes.iter().zip(want_boxes).enumerate() {
                assert_eq!(*index, i, "{what}");
                close(b, &floats(want), &format!("box {i} of {what}"));
            }
            let [(index, mask)] = &model.masks[..] else {
                panic!("one mask of {what}");
            };
            assert_eq!(*index, boxes.len(), "{what}");
            let target = num(&case["target"]) as usize;
            assert_eq!((mask.height(), mask.width()), (target, target), "{what}");
            let want = bits(&case["region_model"]);
            let wrong = mask
                .data()
                .iter()
                .zip(&want)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(wrong, 0, "pixels that differ in the region mask of {what}");
        }
    }

    #[test]
    fn validation_takes_the_photo_and_refuses_what_lies_outside_it() {
        let (w, h) = (8, 5);
        let ok = |r: Region| r.validate(w, h).is_ok();
        // points: [0, w) × [0, h), finite
        assert!(ok(Region::point(0.0, 0.0)));
        assert!(ok(Region::point(7.99, 4.99)));
        for (x, y) in [
            (8.0, 1.0),
            (1.0, 5.0),
            (-0.01, 1.0),
            (1.0, -0.01),
            (f32::NAN, 1.0),
        ] {
            assert!(
                matches!(
                    Region::point(x, y).validate(w, h),
                    Err(OmgLlavaError::PointOutside { .. })
                ),
                "{x},{y}"
            );
        }
        // boxes: x1 < x2, y1 < y2, finite, overlapping the photo (edges may lie outside)
        assert!(ok(Region::rect(0.0, 0.0, 8.0, 5.0)));
        assert!(ok(Region::rect(-3.0, -3.0, 0.5, 0.5)));
        assert!(ok(Region::rect(7.5, 4.5, 30.0, 30.0)));
        for b in [
            [1.0, 1.0, 1.0, 3.0],
            [1.0, 3.0, 2.0, 3.0],
            [2.0, 1.0, 1.0, 3.0],
            [0.0, 0.0, f32::INFINITY, 1.0],
        ] {
            assert!(
                matches!(
                    Region::Rect(b).validate(w, h),
                    Err(OmgLlavaError::DegenerateBox { .. })
                ),
                "{b:?}"
            );
        }
        for b in [
            [-2.0, 1.0, 0.0, 3.0],
            [1.0, -2.0, 3.0, 0.0],
            [8.0, 1.0, 9.0, 3.0],
            [1.0, 5.0, 3.0, 6.0],
        ] {
            assert!(
                matches!(
                    Region::Rect(b).validate(w, h),
                    Err(OmgLlavaError::BoxOutside { .. })
                ),
                "{b:?}"
            );
        }
        // masks: the photo's size, not empty
        let mask = |mh, mw, on: bool| {
            let mut data = vec![false; mh * mw];
            if on {
                data[0] = true;
            }
            Region::Mask(BinaryMask::from_vec(mh, mw, data).unwrap())
        };
        assert!(ok(mask(5, 8, true)));
        assert!(matches!(
            mask(5, 8, false).validate(w, h),
            Err(OmgLlavaError::EmptyRegionMask)
        ));
        for (mh, mw) in [(8, 5), (5, 7), (6, 8)] {
            assert!(matches!(
                mask(mh, mw, true).validate(w, h),
                Err(OmgLlavaError::RegionMaskSize { .. })
            ));
        }
    }

    #[test]
    fn boxes_are_cut_at_the_photo_and_kinds_keep_their_region_index() {
        let t = SquareTransform::new(8, 4, 16);
        let regions = [
            Region::rect(-3.0, -1.0, 20.0, 2.0),
            Region::point(1.0, 1.0),
            Region::Mask(BinaryMask::from_vec(4, 8, vec![true; 32]).unwrap()),
            Region::rect(2.0, 1.0, 4.0, 3.0),
        ];
        let m = ModelFramePrompts::new(&regions, t).unwrap();
        // side 8, pad_y 2, scale 2: the first box is cut to [0, 0, 8, 2] first
        assert_eq!(
            m.boxes,
            vec![(0, [0.0, 4.0, 16.0, 8.0]), (2, [4.0, 6.0, 8.0, 10.0])]
        );
        assert_eq!(m.points, vec![(2.0, 6.0)]);
        assert_eq!(m.masks.len(), 1);
        assert_eq!(m.masks[0].0, 1);
        // each batch exists only with prompts of its kind
        assert!(
            m.point_batch(16).is_some() && m.box_batch(16).is_some() && m.mask_batch().is_some()
        );
        let only_points = ModelFramePrompts::new(&regions[1..2], t).unwrap();
        assert!(only_points.box_batch(16).is_none() && only_points.mask_batch().is_none());
        assert!(matches!(
            only_points.point_batch(16),
            Some(PromptBatch::Points {
                width: 16,
                height: 16,
                ..
            })
        ));
        // a mask of another size is an error, not a panic
        let other = [Region::Mask(
            BinaryMask::from_vec(3, 8, vec![true; 24]).unwrap(),
        )];
        assert!(matches!(
            ModelFramePrompts::new(&other, t),
            Err(OmgLlavaError::RegionMaskSize { .. })
        ));
    }
}
