//! Polygon drawing as OpenCV's `cv2.polylines(img, [pts], True, value, 1)` and
//! `cv2.fillPoly(img, [pts], value)` do it on a one-channel 8-bit image with integer
//! vertices (8-connected lines, no sub-pixel shift): the ReasonSeg ground truth is drawn
//! this way. A re-implementation of OpenCV's algorithms (Bresenham lines with
//! Cohen-Sutherland clipping, and the scan-line fill of the polygon's edge list, whose
//! boundary lines are drawn too), checked pixel for pixel against `cv2` 4.8 in
//! `tests/data_readers.rs`.

use ndarray::Array2;

const XY_SHIFT: i64 = 16;
const XY_ONE: i64 = 1 << XY_SHIFT;

/// `cv2.clipLine` on an image of `width x height`: clips the segment in place and
/// says whether anything of it is inside.
fn clip_line(width: i64, height: i64, p1: &mut (i64, i64), p2: &mut (i64, i64)) -> bool {
    let (right, bottom) = (width - 1, height - 1);
    if width <= 0 || height <= 0 {
        return false;
    }
    let code = |x: i64, y: i64| {
        i32::from(x < 0)
            + i32::from(x > right) * 2
            + i32::from(y < 0) * 4
            + i32::from(y > bottom) * 8
    };
    let (mut x1, mut y1, mut x2, mut y2) = (p1.0, p1.1, p2.0, p2.1);
    let mut c1 = code(x1, y1);
    let mut c2 = code(x2, y2);
    if (c1 & c2) == 0 && (c1 | c2) != 0 {
        if c1 & 12 != 0 {
            let a = if c1 < 8 { 0 } else { bottom };
            x1 += ((a - y1) as f64 * (x2 - x1) as f64 / (y2 - y1) as f64) as i64;
            y1 = a;
            c1 = i32::from(x1 < 0) + i32::from(x1 > right) * 2;
        }
        if c2 & 12 != 0 {
            let a = if c2 < 8 { 0 } else { bottom };
            x2 += ((a - y2) as f64 * (x2 - x1) as f64 / (y2 - y1) as f64) as i64;
            y2 = a;
            c2 = i32::from(x2 < 0) + i32::from(x2 > right) * 2;
        }
        if (c1 & c2) == 0 && (c1 | c2) != 0 {
            if c1 != 0 {
                let a = if c1 == 1 { 0 } else { right };
                y1 += ((a - x1) as f64 * (y2 - y1) as f64 / (x2 - x1) as f64) as i64;
                x1 = a;
                c1 = 0;
            }
            if c2 != 0 {
                let a = if c2 == 1 { 0 } else { right };
                y2 += ((a - x2) as f64 * (y2 - y1) as f64 / (x2 - x1) as f64) as i64;
                x2 = a;
                c2 = 0;
            }
        }
    }
    *p1 = (x1, y1);
    *p2 = (x2, y2);
    (c1 | c2) == 0
}

/// An 8-connected line from `p1` to `p2` (both ends included), drawn left to right as
/// OpenCV's `LineIterator` walks it.
fn line(img: &mut Array2<u8>, mut p1: (i64, i64), mut p2: (i64, i64), value: u8) {
    let (h, w) = (img.nrows() as i64, img.ncols() as i64);
    let outside = |p: (i64, i64)| p.0 < 0 || p.0 >= w || p.1 < 0 || p.1 >= h;
    if (outside(p1) || outside(p2)) && !clip_line(w, h, &mut p1, &mut p2) {
        return;
    }
    if p2.0 < p1.0 {
        std::mem::swap(&mut p1, &mut p2);
    }
    let mut dx = p2.0 - p1.0;
    let mut dy = p2.1 - p1.1;
    let (mut step_x, mut step_y) = (1i64, 1i64);
    if dy < 0 {
        dy = -dy;
        step_y = -1;
    }
    let vertical = dy > dx;
    if vertical {
        std::mem::swap(&mut dx, &mut dy);
        std::mem::swap(&mut step_x, &mut step_y);
    }
    // Along the major axis every step, along the minor one when the error is negative.
    let mut err = dx - 2 * dy;
    let (mut x, mut y) = p1;
    for _ in 0..=dx {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            img[[y as usize, x as usize]] = value;
        }
        let minor = err < 0;
        err += -2 * dy + if minor { 2 * dx } else { 0 };
        if vertical {
            y += step_x;
            if minor {
                x += step_y;
            }
        } else {
            x += step_x;
            if minor {
                y += step_y;
            }
        }
    }
}

/// `cv2.polylines(img, [pts], isClosed=True, color=value, thickness=1)`: the closed
/// outline of `pts` (`(x, y)` pixels, any of them may lie outside) in `img` (indexed
/// `[y, x]`).
pub fn polylines_closed(img: &mut Array2<u8>, pts: &[(i64, i64)], value: u8) {
    let Some(&last) = pts.last() else {
        return;
    };
    let mut p0 = last;
    for &p in pts {
        line(img, p0, p, value);
        p0 = p;
    }
}

#[derive(Debug, Clone, Copy)]
struct Edge {
    y0: i64,
    y1: i64,
    x: i64,
    dx: i64,
}

/// `cv2.fillPoly(img, [pts], color=value)`: the polygon's outline (8-connected lines)
/// and the scan-line fill of its edges, for `(x, y)` pixel vertices (any of them may
/// lie outside `img`, which is indexed `[y, x]`).
pub fn fill_poly(img: &mut Array2<u8>, pts: &[(i64, i64)], value: u8) {
    let (h, w) = (img.nrows() as i64, img.ncols() as i64);
    let Some(&last) = pts.last() else {
        return;
    };
    let mut edges: Vec<Edge> = Vec::with_capacity(pts.len());
    let mut p0 = (last.0 << XY_SHIFT, last.1);
    for &p in pts {
        let p1 = (p.0 << XY_SHIFT, p.1);
        let t0 = ((p0.0 + (XY_ONE >> 1)) >> XY_SHIFT, p0.1);
        let t1 = ((p1.0 + (XY_ONE >> 1)) >> XY_SHIFT, p1.1);
        line(img, t0, t1, value);
        // The edge's end points, at pixel centres unless the line was clipped.
        let (mut c0, mut c1) = (p0, p1);
        let (mut q0, mut q1) = (t0, t1);
        let outside = |q: (i64, i64)| q.0 < 0 || q.0 >= w || q.1 < 0 || q.1 >= h;
        if outside(t0) || outside(t1) {
            clip_line(w, h, &mut q0, &mut q1);
            if q0.1 != q1.1 {
                c0 = (q0.0 << XY_SHIFT, q0.1);
                c1 = (q1.0 << XY_SHIFT, q1.1);
            }
        } else {
            c0.0 += XY_ONE >> 1;
            c1.0 += XY_ONE >> 1;
        }
        if p0.1 != p1.1 {
            let dx = (c1.0 - c0.0) / (c1.1 - c0.1);
            let e = if p0.1 < p1.1 {
                Edge {
                    y0: p0.1,
                    y1: p1.1,
                    x: c0.0 + (p0.1 - c0.1) * dx,
                    dx,
                }
            } else {
                Edge {
                    y0: p1.1,
                    y1: p0.1,
                    x: c1.0 + (p1.1 - c1.1) * dx,
                    dx,
                }
            };
            edges.push(e);
        }
        p0 = p1;
    }
    fill_edges(img, edges, value);
}

/// OpenCV's `FillEdgeCollection`: scan lines over the sorted edge list, filling
/// between pairs of active edges (the pixels from the floor of the left to the floor
/// of the right edge's fixed-point x, both included), an edge leaving the list at its
/// lower end.
fn fill_edges(img: &mut Array2<u8>, mut edges: Vec<Edge>, value: u8) {
    let (h, w) = (img.nrows() as i64, img.ncols() as i64);
    if edges.len() < 2 {
        return;
    }
    let (mut y_min, mut y_max) = (i64::MAX, i64::MIN);
    let (mut x_min, mut x_max) = (i64::MAX, i64::MIN);
    for e in &edges {
        let x1 = e.x + (e.y1 - e.y0) * e.dx;
        y_min = y_min.min(e.y0);
        y_max = y_max.max(e.y1);
        x_min = x_min.min(e.x).min(x1);
        x_max = x_max.max(e.x).max(x1);
    }
    if y_max < 0 || y_min >= h || x_max < 0 || x_min >= (w << XY_SHIFT) {
        return;
    }
    edges.sort_by_key(|e| (e.y0, e.x, e.dx));
    let y_max = y_max.min(h);
    // The active list, kept sorted by x as OpenCV's linked list is.
    let mut active: Vec<Edge> = Vec::new();
    let mut next = 0usize;
    let mut y = edges[0].y0;
    while y < y_max {
        active.retain(|e| e.y1 != y);
        // Merge the edges starting on this line into the active list: a new edge goes
        // before the first active edge whose x is not smaller than its own.
        while next < edges.len() && edges[next].y0 == y {
            let e = edges[next];
            let pos = active
                .iter()
                .position(|a| a.x >= e.x)
                .unwrap_or(active.len());
            active.insert(pos, e);
            next += 1;
        }
        let clip = y < 0;
        for pair in active.chunks_mut(2) {
            if let [l, r] = pair {
                if !clip {
                    let (a, b) = if l.x > r.x { (&*r, &*l) } else { (&*l, &*r) };
                    let x1 = a.x >> XY_SHIFT;
                    let x2 = b.x >> XY_SHIFT;
                    if x1 < w && x2 >= 0 {
                        let (x1, x2) = (x1.max(0), x2.min(w - 1));
                        for x in x1..=x2 {
                            img[[y as usize, x as usize]] = value;
                        }
                    }
                }
                l.x += l.dx;
                r.x += r.dx;
            }
        }
        // OpenCV re-sorts the active list by x (a stable bubble sort).
        active.sort_by_key(|e| e.x);
        y += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_8_connected_and_inclusive() {
        let mut img = Array2::<u8>::zeros((5, 6));
        line(&mut img, (0, 0), (5, 2), 1);
        let count = img.iter().filter(|&&v| v == 1).count();
        assert_eq!(count, 6);
        assert_eq!(img[[0, 0]], 1);
        assert_eq!(img[[2, 5]], 1);
    }

    #[test]
    fn filled_square_includes_its_outline() {
        let mut img = Array2::<u8>::zeros((6, 6));
        fill_poly(&mut img, &[(1, 1), (4, 1), (4, 4), (1, 4)], 7);
        assert_eq!(img.iter().filter(|&&v| v == 7).count(), 16);
    }
}
