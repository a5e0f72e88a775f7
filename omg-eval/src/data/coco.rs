//! COCO segmentations (polygons, compressed and uncompressed RLE) turned into masks
//! exactly as pycocotools does it.
//!
//! A polygon is rasterised as pycocotools' `rleFrPoly` (what `mask.frPyObjects` calls):
//! the vertices are scaled by 5 and rounded, the edges walked pixel by pixel on that
//! finer grid, and a column's boundary crossings kept only where the fine grid meets a
//! pixel centre column; the crossings, sorted in column-major order, are the runs of
//! the RLE. This module is a re-implementation of that algorithm, checked pixel for
//! pixel against pycocotools on random polygons (`tests/data_readers.rs`).
//!
//! pycocotools quirks kept here:
//! * `frPyObjects(list, h, w)` looks only at the *first* part: if it has exactly 4
//!   numbers, every part is an `[x, y, w, h]` box (rasterised as the 4-corner polygon
//!   `rleFrBbox` builds); with more than 4 numbers every part is a polygon.
//! * A decoded list of parts is a `height x width x parts` stack; the official loaders
//!   add the parts up ([`Segmentation::coverage`]), `COCO.annToRLE` merges them by
//!   union ([`Segmentation::union_mask`]).
//!
//! Unlike pycocotools, a polygon with an odd number of coordinates is an error (it
//! silently drops the last number), as are non-finite or absurdly large coordinates.

use ndarray::Array2;
use omg_masks::{BinaryMask, CocoRle};
use serde::Deserialize;
use serde_json::Value;

/// An `images` record of a COCO `instances.json`-style file.
#[derive(Debug, Deserialize)]
pub(crate) struct CocoImage {
    /// The image id.
    pub(crate) id: i64,
    /// The photo's file name.
    pub(crate) file_name: String,
    /// Height in pixels.
    pub(crate) height: u32,
    /// Width in pixels.
    pub(crate) width: u32,
}

/// The scale of pycocotools' polygon rasterisation grid.
const SCALE: f64 = 5.0;
/// Coordinates beyond this (in pixels) are rejected: the rasteriser walks every point
/// of the 5x finer grid along an edge.
const MAX_COORD: f64 = 1.0e6;

/// One annotation's `segmentation`, as the COCO format allows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Segmentation {
    /// Polygons `[[x0, y0, x1, y1, ...], ...]` in pixel coordinates.
    Polygons(Vec<Vec<f64>>),
    /// `[[x, y, w, h], ...]`: what pycocotools makes of a list whose first part has
    /// exactly 4 numbers.
    Boxes(Vec<[f64; 4]>),
    /// RLE parts (a single RLE dict is a list of one); uncompressed RLE
    /// (`counts` a list of run lengths) is stored compressed.
    Rle(Vec<CocoRle>),
}

impl Segmentation {
    /// Parses a `segmentation` value: a list of polygons, a list of RLE dicts, or one RLE
    /// dict (`{"size": [h, w], "counts": "..." | [runs]}`). The error says what is wrong.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        match v {
            Value::Object(_) => Ok(Segmentation::Rle(vec![rle_from_json(v)?])),
            Value::Array(parts) if parts.is_empty() => Ok(Segmentation::Polygons(Vec::new())),
            Value::Array(parts) if parts[0].is_object() => Ok(Segmentation::Rle(
                parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| rle_from_json(p).map_err(|e| format!("part {i}: {e}")))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Array(parts) => {
                let polys = parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| numbers(p).map_err(|e| format!("polygon {i}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                let first = polys[0].len();
                if first == 4 {
                    let boxes = polys
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            <[f64; 4]>::try_from(p.as_slice()).map_err(|_| {
                                format!(
                                    "part {i} has {} numbers, but the first part's 4 make every part an [x, y, w, h] box",
                                    p.len()
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?;
                    return Ok(Segmentation::Boxes(boxes));
                }
                if first < 4 {
                    return Err(format!(
                        "polygon 0 has {first} coordinates; pycocotools needs more than 4"
                    ));
                }
                for (i, p) in polys.iter().enumerate() {
                    if p.is_empty() || p.len() % 2 != 0 {
                        return Err(format!(
                            "polygon {i} has {} coordinates (an odd or zero count; x, y pairs expected)",
                            p.len()
                        ));
                    }
                }
                Ok(Segmentation::Polygons(polys))
            }
            other => Err(format!(
                "segmentation is neither a list nor an RLE dict: {}",
                short(other)
            )),
        }
    }

    /// Number of parts (polygons, boxes or RLEs).
    pub fn parts(&self) -> usize {
        match self {
            Segmentation::Polygons(p) => p.len(),
            Segmentation::Boxes(b) => b.len(),
            Segmentation::Rle(r) => r.len(),
        }
    }

    /// Each part as a mask of `height x width` pixels (`mask.decode(frPyObjects(...))`
    /// split along its last axis). An RLE part must have that size.
    pub fn part_masks(&self, height: u32, width: u32) -> Result<Vec<BinaryMask>, String> {
        let to_mask = |runs: Vec<u32>| runs_to_mask(height, width, &runs);
        match self {
            Segmentation::Polygons(polys) => polys
                .iter()
                .map(|p| to_mask(polygon_runs(p, height, width)?))
                .collect(),
            Segmentation::Boxes(boxes) => boxes
                .iter()
                .map(|&[x, y, w, h]| {
                    let poly = [x, y, x, y + h, x + w, y + h, x + w, y];
                    to_mask(polygon_runs(&poly, height, width)?)
                })
                .collect(),
            Segmentation::Rle(rles) => rles
                .iter()
                .map(|r| {
                    if r.size != [height, width] {
                        return Err(format!(
                            "RLE size {}x{} differs from the image size {height}x{width}",
                            r.size[0], r.size[1]
                        ));
                    }
                    let runs = r.runs().map_err(|e| e.to_string())?;
                    to_mask(runs)
                })
                .collect(),
        }
    }

    /// The union of the parts: pycocotools' `merge` of `frPyObjects` (what
    /// `COCO.annToRLE` / `annToMask` give). No part gives an empty mask.
    pub fn union_mask(&self, height: u32, width: u32) -> Result<BinaryMask, String> {
        let mut out = Array2::from_elem((height as usize, width as usize), false);
        for m in self.part_masks(height, width)? {
            ndarray::Zip::from(&mut out)
                .and(m.array())
                .for_each(|a, &b| *a |= b);
        }
        BinaryMask::from_array(out).map_err(|e| e.to_string())
    }

    /// How many parts cover each pixel, as the official referring loaders compute it:
    /// `np.sum(mask.decode(rle), axis=2).astype(np.uint8)` (so the count wraps at 256).
    pub fn coverage(&self, height: u32, width: u32) -> Result<Array2<u8>, String> {
        let mut out = Array2::<u8>::zeros((height as usize, width as usize));
        for m in self.part_masks(height, width)? {
            ndarray::Zip::from(&mut out)
                .and(m.array())
                .for_each(|a, &b| *a = a.wrapping_add(u8::from(b)));
        }
        Ok(out)
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..s.floor_char_boundary(60)])
    } else {
        s
    }
}

fn numbers(v: &Value) -> Result<Vec<f64>, String> {
    let Value::Array(items) = v else {
        return Err(format!("expected a list of numbers, got {}", short(v)));
    };
    items
        .iter()
        .map(|x| {
            let f = x
                .as_f64()
                .ok_or_else(|| format!("expected a number, got {}", short(x)))?;
            if !f.is_finite() || f.abs() > MAX_COORD {
                return Err(format!(
                    "coordinate {f} is not finite or beyond ±{MAX_COORD}"
                ));
            }
            Ok(f)
        })
        .collect()
}

fn rle_from_json(v: &Value) -> Result<CocoRle, String> {
    let size = v
        .get("size")
        .and_then(Value::as_array)
        .filter(|s| s.len() == 2)
        .and_then(|s| {
            Some([
                u32::try_from(s[0].as_u64()?).ok()?,
                u32::try_from(s[1].as_u64()?).ok()?,
            ])
        })
        .ok_or("RLE without a [height, width] size")?;
    match v.get("counts") {
        Some(Value::String(c)) => Ok(CocoRle {
            size,
            counts: c.clone(),
        }),
        Some(Value::Array(runs)) => {
            let runs = runs
                .iter()
                .map(|r| r.as_u64().and_then(|r| u32::try_from(r).ok()))
                .collect::<Option<Vec<u32>>>()
                .ok_or("uncompressed RLE counts must be non-negative 32-bit integers")?;
            Ok(CocoRle::from_runs(size[0], size[1], &runs))
        }
        _ => Err("RLE without counts (a string or a list of run lengths)".to_string()),
    }
}

/// Column-major runs (first run counts zeros) to a mask; the runs must cover
/// `height * width` pixels exactly.
fn runs_to_mask(height: u32, width: u32, runs: &[u32]) -> Result<BinaryMask, String> {
    let (h, w) = (height as usize, width as usize);
    let total: u64 = runs.iter().map(|&r| u64::from(r)).sum();
    if total != (h as u64) * (w as u64) {
        return Err(format!(
            "runs cover {total} pixels, the {height}x{width} image has {}",
            h * w
        ));
    }
    let mut mask = Array2::from_elem((h, w), false);
    let mut p = 0usize;
    for (i, &r) in runs.iter().enumerate() {
        let r = r as usize;
        if i % 2 == 1 {
            for q in p..p + r {
                mask[[q % h, q / h]] = true;
            }
        }
        p += r;
    }
    BinaryMask::from_array(mask).map_err(|e| e.to_string())
}

/// pycocotools' `rleFrPoly`: the column-major runs of polygon `xy` (`[x0, y0, ...]`,
/// an even count) in a `height x width` image.
pub(crate) fn polygon_runs(xy: &[f64], height: u32, width: u32) -> Result<Vec<u32>, String> {
    let k = xy.len() / 2;
    if k == 0 {
        return Err("empty polygon".to_string());
    }
    let (h, w) = (i64::from(height), i64::from(width));
    // C casts `(int)(v + .5)` truncate toward zero.
    let x: Vec<i64> = (0..=k)
        .map(|j| (SCALE * xy[(j % k) * 2] + 0.5) as i32 as i64)
        .collect();
    let y: Vec<i64> = (0..=k)
        .map(|j| (SCALE * xy[(j % k) * 2 + 1] + 0.5) as i32 as i64)
        .collect();
    let mut u: Vec<i64> = Vec::new();
    let mut v: Vec<i64> = Vec::new();
    for j in 0..k {
        let (mut xs, mut xe, mut ys, mut ye) = (x[j], x[j + 1], y[j], y[j + 1]);
        let dx = (xe - xs).abs();
        let dy = (ys - ye).abs();
        let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if flip {
            std::mem::swap(&mut xs, &mut xe);
            std::mem::swap(&mut ys, &mut ye);
        }
        if dx >= dy {
            // dx == dy == 0 gives 0/0 = NaN in C; its point is never used below.
            let s = if dx == 0 {
                0.0
            } else {
                (ye - ys) as f64 / dx as f64
            };
            for d in 0..=dx {
                let t = if flip { dx - d } else { d };
                u.push(t + xs);
                v.push((ys as f64 + s * t as f64 + 0.5) as i32 as i64);
            }
        } else {
            let s = (xe - xs) as f64 / dy as f64;
            for d in 0..=dy {
                let t = if flip { dy - d } else { d };
                v.push(t + ys);
                u.push((xs as f64 + s * t as f64 + 0.5) as i32 as i64);
            }
        }
    }
    // Boundary points where the fine grid crosses a pixel column, downsampled.
    let mut a: Vec<u64> = Vec::new();
    for j in 1..u.len() {
        if u[j] == u[j - 1] {
            continue;
        }
        let xd = if u[j] < u[j - 1] { u[j] } else { u[j] - 1 } as f64;
        let xd = (xd + 0.5) / SCALE - 0.5;
        if xd.floor() != xd || xd < 0.0 || xd > (w - 1) as f64 {
            continue;
        }
        let yd = v[j].min(v[j - 1]) as f64;
        let mut yd = (yd + 0.5) / SCALE - 0.5;
        if yd < 0.0 {
            yd = 0.0;
        } else if yd > h as f64 {
            yd = h as f64;
        }
        let yd = yd.ceil();
        a.push((xd as i64 * h + yd as i64) as u64);
    }
    a.push((h * w) as u64);
    a.sort_unstable();
    let mut prev = 0u64;
    for e in a.iter_mut() {
        let t = *e;
        *e -= prev;
        prev = t;
    }
    let mut b: Vec<u32> = Vec::with_capacity(a.len());
    let mut j = 0;
    b.push(a[j] as u32);
    j += 1;
    while j < a.len() {
        if a[j] > 0 {
            b.push(a[j] as u32);
            j += 1;
        } else {
            j += 1;
            if j < a.len() {
                if let Some(last) = b.last_mut() {
                    *last += a[j] as u32;
                }
                j += 1;
            }
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn square_polygon() {
        // The 4x4 square from (1, 1) to (5, 5) covers pixels 1..=4 in pycocotools
        // (pixel centres inside, plus the boundary rounding).
        let s =
            Segmentation::from_json(&json!([[1.0, 1.0, 5.0, 1.0, 5.0, 5.0, 1.0, 5.0]])).unwrap();
        let m = s.union_mask(8, 7).unwrap();
        assert_eq!(m.area(), 16);
        assert!(m.array()[[1, 1]] && m.array()[[4, 4]] && !m.array()[[5, 5]]);
    }

    #[test]
    fn parse_errors() {
        assert!(
            Segmentation::from_json(&json!([[1, 2, 3, 4, 5, 6, 7]]))
                .unwrap_err()
                .contains("odd")
        );
        assert!(
            Segmentation::from_json(&json!([[1, 2]]))
                .unwrap_err()
                .contains("more than 4")
        );
        assert!(
            Segmentation::from_json(&json!([[1, 2, 3, 4], [1, 2, 3, 4, 5, 6]]))
                .unwrap_err()
                .contains("box")
        );
        assert!(
            Segmentation::from_json(&json!({"size": [2, 2]}))
                .unwrap_err()
                .contains("counts")
        );
        assert!(Segmentation::from_json(&json!("x")).is_err());
    }

    #[test]
    fn boxes_and_rle() {
        let s = Segmentation::from_json(&json!([[0, 0, 2, 3]])).unwrap();
        assert_eq!(s, Segmentation::Boxes(vec![[0.0, 0.0, 2.0, 3.0]]));
        let r = Segmentation::from_json(&json!({"size": [2, 3], "counts": [1, 2, 3]})).unwrap();
        let m = r.union_mask(2, 3).unwrap();
        assert_eq!(m.area(), 2);
        assert!(m.array()[[1, 0]] && m.array()[[0, 1]]);
        assert!(r.union_mask(3, 2).unwrap_err().contains("differs"));
    }

    #[test]
    fn coverage_counts_overlaps() {
        let sq = [0.0, 0.0, 4.0, 0.0, 4.0, 4.0, 0.0, 4.0];
        let s = Segmentation::Polygons(vec![sq.to_vec(), sq.to_vec()]);
        let c = s.coverage(6, 6).unwrap();
        assert_eq!(c[[1, 1]], 2);
        assert_eq!(
            s.union_mask(6, 6).unwrap().area(),
            c.iter().filter(|&&v| v > 0).count() as u64
        );
    }
}
