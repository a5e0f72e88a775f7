#!/usr/bin/env python3
"""Write the tiny synthetic benchmark datasets of `omg-eval/tiny/` (a few generated
photos per benchmark, annotations in the official layouts and file names) and the
expected values the reader tests compare with (`omg-eval/tests/data/`).

How to run (from the repository root):

    python3 -m venv /tmp/data-venv
    /tmp/data-venv/bin/pip install -r omg-eval/reference/requirements-data.txt
    /tmp/data-venv/bin/python omg-eval/reference/make_tiny_datasets.py

The output is deterministic for the pinned versions (fixed seeds; JPEG bytes depend on
the Pillow version).

What is written, in the layouts the official evaluations read (see the docs of
`omg_eval::data`):

* `tiny/refcoco/`, `tiny/refcoco+/`, `tiny/refcocog/`: `refs(unc).p` (`refs(umd).p`
  for RefCOCOg), `instances.json`, photos `train2014/COCO_train2014_%012d.jpg`. The
  refs pickle is written the way Python 2's `cPickle` (protocol 2) wrote the refer
  toolkit's files: dict keys and ASCII fields as Python 2 `str` (SHORT_BINSTRING),
  sentences as `unicode` (BINUNICODE), memo puts after every string and container.
  Python 3's `pickle.load` reads it back (checked below).
* `tiny/reasonseg/{val,test}/<name>.jpg` + `<name>.json` (LabelMe-style `text`,
  `is_sentence`, `shapes`), one JSON in Windows-1252 (LISA falls back to it).
* `tiny/gcg/gcg_val_test/{val,test}_gcg_coco_{caption,mask}_gt.json` and the photos of
  both splits in `tiny/gcg/val_test/`.
* `tiny/region_caption/finetune_refcocog_val_with_mask.json`,
  `finetune_refcocog_val_captions.json`, photos in `train2014/`.

Expected values (`tests/data/tiny_expected.json`) come from the official tools:
mask areas from pycocotools (`frPyObjects` + `merge` for the union, `decode` summed
for the official referring ground truth), ReasonSeg target and ignore areas from the
ground-truth drawing LISA's evaluation describes (re-stated below with `cv2`), the
pickle's content as Python 3 reads it.

`tests/data/raster_cases.json`: random polygons (concave, tiny, crossing the borders,
non-square images) with pycocotools' `frPyObjects` RLE, and integer polygons with
`cv2.fillPoly` / `cv2.polylines` results (as RLE), for the rasteriser tests.
`tests/data/pickles/`: one small refs list pickled with protocols 0, 2 (Python 3), 4
and 5, and the JSON of its content.
"""

import io
import json
import os
import pickle
import shutil
import struct

import cv2
import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mu

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.normpath(os.path.join(HERE, ".."))
TINY = os.path.join(CRATE, "tiny")
DATA = os.path.join(CRATE, "tests", "data")


# ---------------------------------------------------------------- helpers


def rle_str(m):
    r = mu.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode()}


def photo(path, w, h, seed, shapes=()):
    """A small synthetic photo: a gradient with a few coloured shapes (JPEG)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                     np.full_like(x, int(rng.integers(40, 200)))], -1).astype(np.uint8)
    img = Image.fromarray(base)
    d = ImageDraw.Draw(img)
    for poly in shapes:
        pts = [(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)]
        d.polygon(pts, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, format="JPEG", quality=60, optimize=True)


def write_json(path, obj, encoding=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = json.dumps(obj, indent=1, ensure_ascii=encoding is None)
    with open(path, "wb") as f:
        f.write(text.encode(encoding or "utf-8"))


def union_area(seg, h, w):
    if isinstance(seg, list):
        return int(mu.area(mu.merge(mu.frPyObjects(seg, h, w))))
    return int(mu.area(seg))


def official_area(seg, h, w):
    """Pixels equal to 1 in the official loaders' `np.sum(decode(frPyObjects), 2)`."""
    if len(seg) == 0:
        return 0
    m = np.sum(mu.decode(mu.frPyObjects(seg, h, w)), axis=2).astype(np.uint8)
    return int((m == 1).sum())


# ---------------------------------------------------------------- Python 2 pickle


class U(str):
    """A Python 2 `unicode` value (pickled as BINUNICODE); plain `str` is Python 2
    `str` (SHORT_BINSTRING / BINSTRING)."""


class Py2Pickler(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        b = obj.encode("ascii")
        if len(b) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(b)]) + b)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(b)) + b)
        self.memoize(obj)

    def save_py2_unicode(self, obj):
        b = obj.encode("utf-8")
        self.write(pickle.BINUNICODE + struct.pack("<I", len(b)) + b)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[U] = save_py2_unicode


def py2_pickle(obj):
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue()


def plain(obj):
    """`obj` with the U markers turned into plain strings (what Python 3 reads)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, str):
        return str(obj)
    return obj


# ---------------------------------------------------------------- RefCOCO family

COCO_NAME = "COCO_train2014_%012d.jpg"

# (image id, width, height): non-square and square photos.
REF_IMAGES = [(9, 64, 48), (25, 40, 56), (30, 48, 48)]

# Annotations: id -> (image id, category, polygons). Annotation 1002 has two
# overlapping polygons (the official sum gives 2 where they overlap); 1004 touches the
# image borders; 1005 is tiny.
REF_ANNS = {
    1001: (9, 1, [[4.2, 5.0, 30.7, 4.1, 28.3, 30.9, 6.0, 27.5]]),
    1002: (9, 2, [[34.0, 10.0, 60.5, 12.0, 58.0, 40.0, 36.0, 38.0],
                  [50.0, 20.0, 63.0, 22.0, 62.0, 46.0, 48.0, 44.0]]),
    1003: (25, 1, [[5.0, 5.0, 35.0, 6.0, 20.0, 25.0, 33.0, 50.0, 6.0, 52.0, 12.0, 26.0]]),
    1004: (25, 3, [[-1.0, 30.0, 40.0, 28.0, 41.0, 56.5, 0.0, 57.0]]),
    1005: (30, 2, [[20.2, 20.1, 21.7, 20.4, 21.1, 22.0]]),
    1006: (30, 1, [[8.0, 30.0, 44.0, 31.0, 40.0, 46.0, 10.0, 45.5]]),
}

SENTENCES = {
    1001: ["left red shape", "the thing on the left"],
    1002: ["two green blocks on the right", "right blobs"],
    1003: ["zigzag shape on top", "the caf\u00e9 sign"],
    1004: ["bottom bar"],
    1005: ["tiny dot"],
    1006: ["wide box at the bottom", "lower rectangle", "bottom one"],
}

# Refs per dataset: (ref id, ann id, split).
REFS = {
    "refcoco": ("unc", [(0, 1001, "train"), (1, 1002, "val"), (2, 1003, "testA"),
                        (3, 1004, "testB"), (4, 1005, "val"), (5, 1006, "testA")]),
    "refcoco+": ("unc", [(10, 1002, "train"), (11, 1001, "val"), (12, 1006, "testB"),
                         (13, 1003, "testA"), (14, 1004, "testB")]),
    "refcocog": ("umd", [(20, 1003, "train"), (21, 1001, "val"), (22, 1002, "test"),
                         (23, 1006, "val"), (24, 1005, "test")]),
}
SPLITS = {"refcoco": ["val", "testA", "testB"], "refcoco+": ["val", "testA", "testB"],
          "refcocog": ["val", "test"]}


def make_refs(name, expected):
    split_by, refs = REFS[name]
    root = os.path.join(TINY, name)
    shutil.rmtree(root, ignore_errors=True)
    used_images = sorted({REF_ANNS[a][0] for _, a, _ in refs})
    sizes = {i: (w, h) for i, w, h in REF_IMAGES}
    for k, img_id in enumerate(used_images):
        w, h = sizes[img_id]
        shapes = [p for a, (i, _, polys) in REF_ANNS.items() if i == img_id for p in polys]
        photo(os.path.join(root, "train2014", COCO_NAME % img_id), w, h, 100 + img_id, shapes)
    images = [{"license": 1, "file_name": COCO_NAME % i, "coco_url": "", "height": sizes[i][1],
               "width": sizes[i][0], "date_captured": "2013-11-14 16:28:13", "flickr_url": "",
               "id": i} for i in used_images]
    anns = []
    for a, (img_id, cat, polys) in sorted(REF_ANNS.items()):
        if img_id not in used_images:
            continue
        w, h = sizes[img_id]
        rle = mu.merge(mu.frPyObjects(polys, h, w))
        anns.append({"segmentation": polys, "area": float(mu.area(rle)), "iscrowd": 0,
                     "image_id": img_id, "bbox": [float(v) for v in mu.toBbox(rle)],
                     "category_id": cat, "id": a})
    # An unreferenced crowd annotation with an RLE segmentation, as COCO has them.
    w, h = sizes[used_images[0]]
    crowd = np.zeros((h, w), np.uint8)
    crowd[1:4, 1:9] = 1
    anns.append({"segmentation": rle_str(crowd), "area": 24.0, "iscrowd": 1,
                 "image_id": used_images[0], "bbox": [1.0, 1.0, 8.0, 3.0], "category_id": 1,
                 "id": 1999})
    cats = [{"supercategory": "shape", "id": 1, "name": "red"},
            {"supercategory": "shape", "id": 2, "name": "green"},
            {"supercategory": "shape", "id": 3, "name": "bar"}]
    write_json(os.path.join(root, "instances.json"),
               {"images": images, "annotations": anns, "categories": cats})

    ref_list = []
    sent_id = 100 * len(name)
    for ref_id, ann_id, split in refs:
        img_id, cat, polys = REF_ANNS[ann_id]
        sents = []
        for s in SENTENCES[ann_id]:
            sents.append({"tokens": [U(t) for t in s.split()], "raw": U(s.upper() + "."),
                          "sent_id": sent_id, "sent": U(s)})
            sent_id += 1
        ref_list.append({"sent_ids": [x["sent_id"] for x in sents],
                         "file_name": "COCO_train2014_%012d_%d.jpg" % (img_id, ann_id),
                         "ann_id": ann_id, "ref_id": ref_id, "image_id": img_id,
                         "split": split, "sentences": sents, "category_id": cat})
    data = py2_pickle(ref_list)
    with open(os.path.join(root, "refs(%s).p" % split_by), "wb") as f:
        f.write(data)
    assert pickle.loads(data) == plain(ref_list), "Python 3 reads the pickle back"
    assert data[:2] == b"\x80\x02" and b"U\x05split" in data

    exp = {}
    for split in SPLITS[name]:
        samples = []
        for ref_id, ann_id, rsplit in refs:
            sel = (split[-1] in rsplit) if split in ("testA", "testB") else (
                "test" in rsplit if split == "test" else rsplit == split)
            if not sel:
                continue
            img_id, _, polys = REF_ANNS[ann_id]
            w, h = sizes[img_id]
            for k, s in enumerate(SENTENCES[ann_id]):
                samples.append({"id": "%d_%d" % (ref_id, k), "image": COCO_NAME % img_id,
                                "width": w, "height": h, "sentence": s, "ann_id": ann_id,
                                "union_area": union_area(polys, h, w),
                                "official_area": official_area(polys, h, w)})
        exp[split] = samples
    expected[name] = exp


# ---------------------------------------------------------------- ReasonSeg


def lisa_ground_truth(shapes, h, w):
    """The ReasonSeg ground truth as LISA's evaluation describes it: `flag` shapes
    skipped, shapes drawn largest first (area of each drawn alone), value 255 for
    labels containing `ignore`, 1 otherwise, each with cv2.polylines + cv2.fillPoly on
    int32 points."""
    kept = [s for s in shapes if s["label"].lower() != "flag"]
    areas = []
    for s in kept:
        t = np.zeros((h, w), np.uint8)
        pts = np.array([s["points"]], dtype=np.int32)
        cv2.polylines(t, pts, True, 1, 1)
        cv2.fillPoly(t, pts, 1)
        areas.append(int(t.sum()))
    order = list(np.argsort(areas)[::-1])
    m = np.zeros((h, w), np.uint8)
    for i in order:
        s = kept[i]
        v = 255 if "ignore" in s["label"].lower() else 1
        pts = np.array([s["points"]], dtype=np.int32)
        cv2.polylines(m, pts, True, v, 1)
        cv2.fillPoly(m, pts, v)
    return m


def shape(label, pts):
    return {"label": label, "labels": [label], "shape_type": "polygon", "image_name": "",
            "points": pts, "group_id": None, "group_ids": [None], "flags": {}}


REASON = {
    "val": [
        ("1000001", 64, 48, ["the object you would sit on", "a seat"], True,
         [shape("target", [[5.5, 6.2], [40.8, 5.0], [38.0, 30.7], [7.1, 33.9]]),
          shape("ignore", [[20.0, 15.0], [30.0, 15.0], [30.0, 25.0], [20.0, 25.0]]),
          shape("flag", [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])], None),
        ("1000002", 40, 56, ["the round red thing"], False,
         [shape("target", [[4.0, 4.0], [30.0, 8.0], [22.0, 40.0]]),
          shape("target", [[10.0, 44.0], [35.0, 46.0], [30.0, 55.9]])], None),
    ],
    "test": [
        ("1000003", 56, 56, ["what keeps the caf\u00e9 \u201cwarm\u201d?"], True,
         [shape("Ignore_region", [[2.0, 2.0], [50.0, 3.0], [48.0, 50.0], [3.0, 52.0]]),
          shape("target", [[10.3, 12.9], [30.2, 11.1], [29.9, 33.3], [12.0, 31.0]])], "cp1252"),
        ("1000004", 48, 36, ["the thing left of the bar"], False,
         [shape("target", [[-2.0, 3.0], [20.0, 1.0], [24.0, 40.0], [3.0, 30.0]])], None),
    ],
}


def make_reasonseg(expected):
    root = os.path.join(TINY, "reasonseg")
    shutil.rmtree(root, ignore_errors=True)
    exp = {}
    for split, items in REASON.items():
        samples = []
        for k, (name, w, h, texts, is_sentence, shapes, enc) in enumerate(items):
            for s in shapes:
                s["image_name"] = name + ".jpg"
            photo(os.path.join(root, split, name + ".jpg"), w, h, 300 + k,
                  [sum(s["points"], []) for s in shapes])
            write_json(os.path.join(root, split, name + ".json"),
                       {"text": texts, "is_sentence": is_sentence, "shapes": shapes}, enc)
            m = lisa_ground_truth(shapes, h, w)
            samples.append({"id": name, "width": w, "height": h, "query": texts[0],
                            "is_sentence": is_sentence, "target_area": int((m == 1).sum()),
                            "ignore_area": int((m == 255).sum()),
                            "target_rle": rle_str(m == 1), "ignore_rle": rle_str(m == 255)})
        exp[split] = samples
    expected["reasonseg"] = exp


# ---------------------------------------------------------------- GCG

GCG = {
    "val": [
        ("sa_1000001", 64, 48, "A red box next to a green triangle.", ["A red box", "a green triangle"],
         [[4, 4, 30, 4, 30, 30, 4, 30], [36, 40, 60, 40, 48, 8]]),
        ("sa_1000002", 48, 64, "A blue bar over the grass.", ["A blue bar", "the grass"],
         [[2, 2, 46, 2, 46, 12, 2, 12], [0, 40, 48, 40, 48, 64, 0, 64]]),
    ],
    "test": [
        ("sa_1000003", 56, 40, "Two dots and a line.", ["Two dots", "a line"],
         [[5, 5, 9, 5, 9, 9, 5, 9], [10, 30, 50, 30, 50, 33, 10, 33]]),
        ("sa_1000004", 40, 40, "An empty field with a small hut.", ["a small hut"],
         [[15, 15, 25, 15, 25, 24, 20, 12, 15, 24]]),
    ],
}


def make_gcg(expected):
    root = os.path.join(TINY, "gcg")
    shutil.rmtree(root, ignore_errors=True)
    exp = {}
    ann_id = 1
    for split, items in GCG.items():
        images, caps, masks, samples = [], [], [], []
        for k, (name, w, h, caption, phrases, polys) in enumerate(items):
            photo(os.path.join(root, "val_test", name + ".jpg"), w, h, 500 + k, polys)
            img = {"id": name, "file_name": name + ".jpg", "height": h, "width": w}
            images.append(img)
            caps.append({"id": len(caps) + 1, "image_id": name, "caption": caption,
                         "labels": phrases})
            areas = []
            for p in polys:
                m = mu.decode(mu.merge(mu.frPyObjects([p], h, w)))
                r = rle_str(m)
                masks.append({"id": ann_id, "image_id": name, "category_id": 1,
                              "segmentation": r, "area": int(m.sum()),
                              "bbox": [float(v) for v in mu.toBbox(mu.encode(np.asfortranarray(m)))],
                              "iscrowd": 0})
                areas.append(int(mu.area({"size": r["size"], "counts": r["counts"].encode()})))
                ann_id += 1
            samples.append({"id": name, "width": w, "height": h, "caption": caption,
                            "phrases": phrases, "mask_areas": areas,
                            "ann_ids": list(range(ann_id - len(polys), ann_id))})
        write_json(os.path.join(root, "gcg_val_test", split + "_gcg_coco_caption_gt.json"),
                   {"images": images, "annotations": caps})
        write_json(os.path.join(root, "gcg_val_test", split + "_gcg_coco_mask_gt.json"),
                   {"images": images, "annotations": masks,
                    "categories": [{"id": 1, "name": "object"}]})
        exp[split] = samples
    expected["gcg"] = exp


# ---------------------------------------------------------------- region captions

REGIONS = [
    # (region id, coco image id, w, h, caption, polygons)
    (0, 9, 64, 48, "a red shape on the left", [[4.2, 5.0, 30.7, 4.1, 28.3, 30.9, 6.0, 27.5]]),
    (1, 9, 64, 48, "two green blocks", [[34.0, 10.0, 60.5, 12.0, 58.0, 40.0, 36.0, 38.0],
                                        [50.0, 20.0, 63.0, 22.0, 62.0, 46.0, 48.0, 44.0]]),
    (2, 25, 40, 56, "a bar at the bottom", [[-1.0, 30.0, 40.0, 28.0, 41.0, 56.5, 0.0, 57.0]]),
]


def make_region_caption(expected):
    root = os.path.join(TINY, "region_caption")
    shutil.rmtree(root, ignore_errors=True)
    done = set()
    for rid, img_id, w, h, _, polys in REGIONS:
        if img_id not in done:
            shapes = [p for r in REGIONS if r[1] == img_id for p in r[5]]
            photo(os.path.join(root, "train2014", COCO_NAME % img_id), w, h, 700 + img_id, shapes)
            done.add(img_id)
    images, with_mask, captions, samples = [], [], [], []
    for rid, img_id, w, h, caption, polys in REGIONS:
        images.append({"file_name": COCO_NAME % img_id, "height": h, "width": w, "id": rid,
                       "original_id": img_id})
        rle = mu.merge(mu.frPyObjects(polys, h, w))
        bbox = [float(v) for v in mu.toBbox(rle)]
        ann = {"area": float(mu.area(rle)), "iscrowd": 0, "image_id": rid, "bbox": bbox,
               "category_id": 1, "id": rid, "caption": caption}
        captions.append(dict(ann))
        with_mask.append(dict(ann, segmentation=polys))
        samples.append({"id": rid, "image": COCO_NAME % img_id, "width": w, "height": h,
                        "caption": caption, "bbox": bbox,
                        "mask_area": union_area(polys, h, w)})
    cats = [{"id": 1, "name": "object"}]
    write_json(os.path.join(root, "finetune_refcocog_val_with_mask.json"),
               {"images": images, "annotations": with_mask, "categories": cats})
    write_json(os.path.join(root, "finetune_refcocog_val_captions.json"),
               {"images": images, "annotations": captions, "categories": cats})
    expected["region_caption"] = samples


# ---------------------------------------------------------------- rasteriser cases


def raster_cases():
    rng = np.random.default_rng(20240630)
    coco = []
    for i in range(240):
        h, w = int(rng.integers(1, 60)), int(rng.integers(1, 60))
        k = int(rng.integers(3, 12))
        kind = i % 4
        if kind == 0:  # inside, often concave
            pts = np.stack([rng.uniform(0, w, k), rng.uniform(0, h, k)], 1)
        elif kind == 1:  # crossing and touching the borders
            pts = np.stack([rng.uniform(-5, w + 5, k), rng.uniform(-5, h + 5, k)], 1)
            pts[0] = [0.0, rng.uniform(0, h)]
            pts[1] = [w, rng.uniform(0, h)]
        elif kind == 2:  # tiny
            c = rng.uniform(0, [w, h])
            pts = c + rng.uniform(-0.7, 0.7, (k, 2))
        else:  # on the integer / half-integer grid
            pts = np.stack([rng.integers(0, w + 1, k), rng.integers(0, h + 1, k)], 1) / rng.choice([1, 2])
        poly = [round(float(v), 3) for v in pts.ravel()]
        r = mu.frPyObjects([poly], h, w)[0]
        coco.append({"h": h, "w": w, "poly": poly, "counts": r["counts"].decode(),
                     "area": int(mu.area(r))})
    cv = []
    for i in range(160):
        h, w = int(rng.integers(3, 50)), int(rng.integers(3, 50))
        k = int(rng.integers(1, 9))
        out = i % 4 == 0
        lo = -10 if out else 0
        pts = np.stack([rng.integers(lo, (w + 10) if out else w, k),
                        rng.integers(lo, (h + 10) if out else h, k)], 1).astype(np.int32)
        fill = np.zeros((h, w), np.uint8)
        cv2.fillPoly(fill, np.array([pts]), 1)
        lines = np.zeros((h, w), np.uint8)
        cv2.polylines(lines, np.array([pts]), True, 1, 1)
        cv.append({"h": h, "w": w, "pts": pts.tolist(), "fill": rle_str(fill)["counts"],
                   "lines": rle_str(lines)["counts"]})
    with open(os.path.join(DATA, "raster_cases.json"), "w") as f:
        json.dump({"pycocotools": coco, "cv2": cv}, f, separators=(",", ":"))


def pickles():
    d = os.path.join(DATA, "pickles")
    os.makedirs(d, exist_ok=True)
    obj = [{"ref_id": 7, "ann_id": 2**40, "split": "testB", "neg": -129, "big": 2**31,
            "f": 0.25, "ok": True, "none": None, "t": (1, "a"), "s": "caf\u00e9 \u201cq\u201d",
            "sentences": [{"sent": "x"}, {"sent": "y"}]}]
    for proto in (0, 2, 4, 5):
        with open(os.path.join(d, "refs_p%d.p" % proto), "wb") as f:
            pickle.dump(obj, f, protocol=proto)
    with open(os.path.join(d, "refs.json"), "w") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)


def main():
    os.makedirs(DATA, exist_ok=True)
    expected = {}
    for name in REFS:
        make_refs(name, expected)
    make_reasonseg(expected)
    make_gcg(expected)
    make_region_caption(expected)
    with open(os.path.join(DATA, "tiny_expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
    raster_cases()
    pickles()
    total = 0
    for dirpath, _, files in os.walk(TINY):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    print("tiny datasets: %d bytes" % total)


if __name__ == "__main__":
    main()
