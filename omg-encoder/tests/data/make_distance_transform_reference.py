#!/usr/bin/env python3
"""Reference values for `omg_encoder::distance_transform` (tests/distance_transform.rs).

Runs kornia 0.7.1 `kornia.contrib.distance_transform` and OMG-LLaVA's `get_center_coords`
(omg_llava/model/omg_seg/mask2former_vid_semanticsam.py, reproduced verbatim below) on a set of
masks and writes `distance_transform_reference.json` next to this script.

Setup (torch 2.5.1 CPU installed system-wide):

    python3 -m venv --system-site-packages /tmp/kvenv
    /tmp/kvenv/bin/pip install kornia==0.7.1
    /tmp/kvenv/bin/python omg-encoder/tests/data/make_distance_transform_reference.py

JSON layout:
  {"meta": {...},
   "cases":    [{"name", "height", "width", "mask": ["0101..", ...] (one string per row),
                 "center": [x, y] from get_center_coords,
                 "dt": flat row-major cropped mask_dt (float32), only when height, width <= 40}],
   "raw_cases": [{"name", "height", "width", "image": rows of "0"/"1" (1 = non-zero),
                  "dt": kornia.contrib.distance_transform(image) of the image itself}]}
`dt` values are written as the shortest decimal that round-trips the float32.
"""

import json
import os

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from kornia.contrib import distance_transform

assert kornia.__version__ == "0.7.1", kornia.__version__
torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "distance_transform_reference.json")
DT_LIMIT = 40


def get_center_coords(masks):
    """Official OMG-LLaVA code (mask2former_vid_semanticsam.py), returns also the cropped dt."""
    point_coords = []
    dts = []
    for mask in masks:
        mask = mask[None, None]
        mask = mask.to(torch.bool)
        n, _, h, w = mask.shape
        mask_dt = distance_transform(
            (~F.pad(mask, pad=(1, 1, 1, 1), mode="constant", value=0)).float()
        )[:, :, 1:-1, 1:-1]
        selected_point = torch.tensor(
            [mask_dt.argmax() / w, mask_dt.argmax() % w]
        ).long().flip(0)
        point_coords.append(selected_point)
        dts.append(mask_dt[0, 0])
    return torch.stack(point_coords), dts


def blob(h, w, seed, thresh=0.55, smooth=4):
    """Random smooth blob(s): box-blurred uniform noise, thresholded."""
    rng = np.random.default_rng(seed)
    a = rng.random((h, w))
    for _ in range(smooth):
        p = np.pad(a, 1, mode="edge")
        a = sum(p[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9.0
    return a > np.quantile(a, thresh)


def rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def ring(h, w, cy, cx, r0, r1):
    yy, xx = np.mgrid[0:h, 0:w]
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    return (d2 >= r0 * r0) & (d2 <= r1 * r1)


def l_shape():
    m = np.zeros((25, 25), bool)
    m[3:22, 4:10] = True
    m[16:22, 4:21] = True
    return m


def one_pixel():
    m = np.zeros((9, 11), bool)
    m[4, 6] = True
    return m


def border_touching():
    m = blob(16, 20, seed=7, thresh=0.3)
    m[0, :] = True
    m[:, -1] = True
    m[-1, 2:9] = True
    return m


def strip():
    m = np.zeros((1, 37), bool)
    m[0, 3:31] = True
    return m


def ties():
    # Two identical squares plus a thin bar: the maximum is reached (exactly) in both squares
    # and at several pixels of each; the first one in row-major order must win.
    m = np.zeros((20, 30), bool)
    m[2:9, 3:10] = True
    m[2:9, 17:24] = True
    m[12:18, 1:28] = True
    return m


def column():
    m = np.zeros((40, 1), bool)
    m[5:33, 0] = True
    return m


def rows(m):
    return ["".join("1" if v else "0" for v in r) for r in np.asarray(m)]


def f32s(t):
    return [float(np.format_float_positional(np.float32(v), unique=True)) for v in t.reshape(-1).tolist()]


CASES = [
    ("blob_seed1_24x32", blob(24, 32, seed=1)),
    ("blob_seed2_37x23", blob(37, 23, seed=2, thresh=0.4)),
    ("blob_seed3_40x40", blob(40, 40, seed=3, thresh=0.5, smooth=2)),
    ("blob_seed4_40x40_sparse", blob(40, 40, seed=4, thresh=0.7, smooth=1)),
    ("rectangle_20x30", rect(20, 30, 4, 15, 6, 25)),
    ("rectangle_even_12x12", rect(12, 12, 2, 10, 4, 8)),
    ("l_shape_25x25", l_shape()),
    ("ring_31x31", ring(31, 31, 15, 14, 5, 12)),
    ("one_pixel_9x11", one_pixel()),
    ("border_touching_16x20", border_touching()),
    ("full_13x17", np.ones((13, 17), bool)),
    ("strip_1x37", strip()),
    ("column_40x1", column()),
    ("ties_20x30", ties()),
    ("empty_6x7", np.zeros((6, 7), bool)),
    # Small noisy masks: many pixels next to straight boundaries in thin parts, where the
    # arg-max depends on the last bit of torch.log (see TORCH_CPU_LN in distance_transform.rs).
    *[(f"noise_seed{s}_12x14", np.random.default_rng(100 + s).random((12, 14)) < 0.7) for s in range(30)],
    ("blob_seed5_200x150", blob(200, 150, seed=5, thresh=0.5, smooth=12)),
    ("blob_seed6_150x200_multi", blob(150, 200, seed=6, thresh=0.6, smooth=6)),
]


def raw_cases():
    out = []
    img = np.zeros((5, 5), bool)
    img[1, 2] = True  # kornia's docstring example
    out.append(("kornia_doc_5x5", img))
    rng = np.random.default_rng(11)
    out.append(("sparse_33x27", rng.random((33, 27)) < 0.02))
    img = np.zeros((17, 29), bool)
    img[0, 0] = True
    img[16, 20] = True
    out.append(("corners_17x29", img))
    out.append(("no_boundary_4x6", np.zeros((4, 6), bool)))
    return out


def main():
    cases = []
    for name, m in CASES:
        t = torch.from_numpy(m.astype(np.float32))
        centers, dts = get_center_coords(t[None])
        x, y = (int(v) for v in centers[0])
        dt = dts[0]
        h, w = m.shape
        entry = {"name": name, "height": h, "width": w, "mask": rows(m), "center": [x, y]}
        if h <= DT_LIMIT and w <= DT_LIMIT:
            entry["dt"] = f32s(dt)
        n_max = int((dt == dt.max()).sum())
        entry["n_max"] = n_max
        if name.startswith("ties"):
            assert n_max >= 2, f"{name}: no tie ({n_max})"
        print(f"{name}: {h}x{w} center=({x},{y}) max={float(dt.max()):.6f} n_max={n_max}")
        cases.append(entry)
    raws = []
    for name, img in raw_cases():
        t = torch.from_numpy(img.astype(np.float32))[None, None]
        dt = distance_transform(t)[0, 0]
        h, w = img.shape
        raws.append({"name": name, "height": h, "width": w, "image": rows(img), "dt": f32s(dt)})
        print(f"raw {name}: {h}x{w} max={float(dt.max()):.6f}")
    doc = {
        "meta": {
            "generator": "omg-encoder/tests/data/make_distance_transform_reference.py",
            "kornia": kornia.__version__,
            "torch": torch.__version__,
            "call": "get_center_coords (omg_llava/model/omg_seg/mask2former_vid_semanticsam.py) with "
            "kornia.contrib.distance_transform(kernel_size=3, h=0.35); raw_cases: distance_transform(image)",
            "center": "(x, y) of the first arg-max (row-major) of the cropped mask_dt",
        },
        "cases": cases,
        "raw_cases": raws,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
