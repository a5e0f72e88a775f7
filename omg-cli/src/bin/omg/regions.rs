//! The region flags of `omg region` and `omg interactive`: points, boxes and mask
//! pictures, kept in command-line order (which sets the `<region>` / `<mark>` order).

use std::path::{Path, PathBuf};

use clap::{ArgMatches, Args};
use image::DynamicImage;
use omg_llava::{BinaryMask, Region};

use crate::Res;

#[derive(Args)]
#[group(required = true, multiple = true)]
pub struct RegionArgs {
    /// A point in the photo's pixels (repeatable).
    #[arg(long = "point", value_name = "X,Y", value_parser = parse_point)]
    points: Vec<Region>,
    /// A box in the photo's pixels, corners x1 < x2, y1 < y2 (repeatable).
    #[arg(long = "box", value_name = "X1,Y1,X2,Y2", value_parser = parse_box)]
    boxes: Vec<Region>,
    /// A PNG of the photo's size whose non-zero pixels are the region (repeatable).
    #[arg(long = "mask", value_name = "PNG")]
    masks: Vec<PathBuf>,
}

fn parse_numbers<const N: usize>(s: &str, what: &str) -> Result<[f32; N], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != N {
        return Err(format!("expected {what}, got {s:?}"));
    }
    let mut out = [0f32; N];
    for (o, p) in out.iter_mut().zip(&parts) {
        *o = p
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{p:?} is not a number (expected {what})"))?;
    }
    Ok(out)
}

fn parse_point(s: &str) -> Result<Region, String> {
    let [x, y] = parse_numbers(s, "X,Y")?;
    Ok(Region::point(x, y))
}

fn parse_box(s: &str) -> Result<Region, String> {
    let b = parse_numbers(s, "X1,Y1,X2,Y2")?;
    if b[0] >= b[2] || b[1] >= b[3] {
        return Err(format!("a box needs x1 < x2 and y1 < y2, got {s:?}"));
    }
    Ok(Region::Rect(b))
}

/// A region of the command line, with a short description for labels.
pub struct NamedRegion {
    pub region: Region,
    pub name: String,
}

/// The regions in command-line order, each checked against the photo (mask pictures
/// read and checked before the model loads).
pub fn regions_in_order(
    args: &RegionArgs,
    matches: Option<&ArgMatches>,
    photo: &DynamicImage,
) -> Res<Vec<NamedRegion>> {
    enum Spec<'a> {
        Given(&'a Region),
        MaskFile(&'a PathBuf),
    }
    let position = |id: &str, k: usize| {
        matches
            .and_then(|m| m.indices_of(id))
            .and_then(|mut i| i.nth(k))
            .unwrap_or(usize::MAX)
    };
    let mut specs: Vec<(usize, Spec)> = Vec::new();
    for (k, r) in args.points.iter().enumerate() {
        specs.push((position("points", k), Spec::Given(r)));
    }
    for (k, r) in args.boxes.iter().enumerate() {
        specs.push((position("boxes", k), Spec::Given(r)));
    }
    for (k, p) in args.masks.iter().enumerate() {
        specs.push((position("masks", k), Spec::MaskFile(p)));
    }
    specs.sort_by_key(|(i, _)| *i);
    let named = specs
        .into_iter()
        .map(|(_, spec)| match spec {
            Spec::Given(r) => Ok(NamedRegion {
                name: match r {
                    Region::Point { x, y } => format!("point ({x}, {y})"),
                    Region::Rect(b) => format!("box [{}, {}, {}, {}]", b[0], b[1], b[2], b[3]),
                    _ => "region".into(),
                },
                region: r.clone(),
            }),
            Spec::MaskFile(p) => {
                let mask = read_mask(p)?;
                Ok(NamedRegion {
                    name: format!("mask {} ({} pixels)", p.display(), mask.area()),
                    region: Region::Mask(mask),
                })
            }
        })
        .collect::<Res<Vec<NamedRegion>>>()?;
    for r in &named {
        r.region
            .validate(photo.width(), photo.height())
            .map_err(|e| format!("{}: {e}", r.name))?;
    }
    Ok(named)
}

/// A region mask from a picture: non-zero (and not transparent) pixels are inside.
fn read_mask(path: &Path) -> Res<BinaryMask> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read mask {}: {e}", path.display()))?;
    Ok(
        BinaryMask::from_image_bytes(&bytes, omg_masks::DEFAULT_DECODE_PIXELS)
            .map_err(|e| format!("cannot read mask {}: {e}", path.display()))?,
    )
}
