#!/usr/bin/env python3
"""Generate `rle_reference.json`, the COCO RLE reference for `tests/rle.rs`.

How to run (from the repository root):

    python3 -m venv --system-site-packages /tmp/rlevenv
    /tmp/rlevenv/bin/pip install pycocotools
    /tmp/rlevenv/bin/python omg-masks/tests/data/make_rle_reference.py

The committed `rle_reference.json` was produced with pycocotools 2.0.11 and
numpy 2.4.6 (CPython 3.11). The output is deterministic (fixed numpy seed).

Each case stores:
  * `name`, `height`, `width`;
  * `bits`: the mask as a row-major string of '0'/'1', `height * width` chars
    (pixel [y, x] is `bits[y * width + x]`);
  * `rle`: `pycocotools.mask.encode(np.asfortranarray(mask_uint8))` with the
    `counts` bytes decoded to str, i.e. `{"size": [h, w], "counts": "..."}`;
  * `area`: `pycocotools.mask.area(rle)`;
  * `bbox`: `pycocotools.mask.toBbox(rle)` as [x, y, w, h] floats;
  * `runs`: the uncompressed column-major run lengths (starting with a run of
    zeros), computed with plain numpy, independently of pycocotools.
"""

import json
import os
from importlib.metadata import version

import numpy as np
from pycocotools import mask as mask_utils


def runs_fortran(m: np.ndarray) -> list:
    flat = np.asarray(m, dtype=np.uint8).flatten(order="F")
    runs = []
    prev, count = 0, 0
    for v in flat.tolist():
        if v != prev:
            runs.append(count)
            count, prev = 0, v
        count += 1
    runs.append(count)
    return runs


def blobs(rng, h, w, n):
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w), dtype=bool)
    for _ in range(n):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(2, h / 3), rng.uniform(2, w / 3)
        m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return m


def cases():
    rng = np.random.default_rng(20240607)
    out = []

    def add(name, m):
        out.append((name, np.asarray(m, dtype=bool)))

    add("1x1_one", np.ones((1, 1)))
    add("1x1_zero", np.zeros((1, 1)))
    add("1x7", np.array([[0, 1, 1, 0, 1, 0, 1]]))
    add("7x1", np.array([[1], [1], [0], [0], [1], [0], [0]]))
    m = np.zeros((3, 5), dtype=bool)
    m[1, 1:4] = True
    m[0, 4] = True
    add("3x5", m)
    add("17x13_random", rng.random((17, 13)) < 0.4)
    add("64x33_blobs", blobs(rng, 64, 33, 3))
    add("101x97_blobs", blobs(rng, 101, 97, 5))
    add("all_zero_20x30", np.zeros((20, 30)))
    add("all_one_20x30", np.ones((20, 30)))
    yy, xx = np.mgrid[0:20, 0:30]
    add("checkerboard_20x30", (yy + xx) % 2 == 1)
    m = np.zeros((9, 11), dtype=bool)
    m[8, 10] = True
    add("single_pixel_bottom_right_9x11", m)
    m = np.zeros((9, 11), dtype=bool)
    m[0, 10] = True
    add("single_pixel_top_right_9x11", m)
    m = blobs(rng, 23, 19, 2)
    m[0, 0] = True
    add("first_pixel_one_23x19", m)
    m = np.ones((300, 211), dtype=bool)
    m[120:135, 40:47] = False
    m[5, 200] = False
    m[299, 0] = False
    add("long_runs_300x211", m)
    # Runs that shrink after long ones: exercises negative deltas against counts[i-2].
    m = np.zeros((150, 90), dtype=bool)
    m[:, 0:70] = True
    m[10:12, 71] = True
    m[100:149, 80:82] = True
    add("negative_deltas_150x90", m)
    return out


def main():
    records = []
    for name, m in cases():
        h, w = m.shape
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        counts = rle["counts"].decode("ascii")
        bbox = [float(v) for v in mask_utils.toBbox(rle).tolist()]
        records.append(
            {
                "name": name,
                "height": int(h),
                "width": int(w),
                "bits": "".join("1" if v else "0" for v in m.flatten(order="C").tolist()),
                "rle": {"size": [int(s) for s in rle["size"]], "counts": counts},
                "area": int(mask_utils.area(rle)),
                "bbox": bbox,
                "runs": runs_fortran(m),
            }
        )
    doc = {
        "generator": "make_rle_reference.py",
        "pycocotools_version": version("pycocotools"),
        "numpy_version": np.__version__,
        "cases": records,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rle_reference.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(records)} cases to {path}")


if __name__ == "__main__":
    main()
