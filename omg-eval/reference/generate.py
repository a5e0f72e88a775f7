#!/usr/bin/env python3
"""Generate `omg-eval/tests/data/official_metrics.json`: synthetic predictions and
ground truth, and the values the official scorers give them, for `tests/official.rs`.

How to run (from the repository root; needs Java on PATH for pycocoevalcap's
tokenizer and METEOR jars):

    python3 -m venv /tmp/eval-venv
    /tmp/eval-venv/bin/pip install -r omg-eval/reference/requirements.txt
    /tmp/eval-venv/bin/python omg-eval/reference/generate.py

The committed JSON was produced with the pinned versions of requirements.txt
(CPython 3.11, OpenJDK 17). The output is deterministic (fixed numpy seed).

Which scorer gives each value:

* mask AP (`gcg.official_ap*`): pycocotools `COCOeval(iouType="segm")` with
  `params.catIds = [1]`, as the official GCG evaluation calls it, once with every
  score 1.0 (as GCG predictions have) and once with random, partly tied scores.
* CIDEr-D, METEOR and the tokenization (`captions`, `tokenizer`): pycocoevalcap's
  `PTBTokenizer`, `Cider` and `Meteor` (its bundled jars), as `COCOEvalCap.evaluate`
  runs them.
* cIoU / gIoU (`referring`) and GCG mIoU / recall (`gcg`): the official scripts need
  the model (and BERT for recall), so their metric code is re-stated below in numpy,
  written from the definitions: the referring loop of the official OMG-LLaVA RefCOCO
  evaluation (float32 sums, as its torch tensors) and GLaMM's GCG `compute_miou` and
  `find_best_matches` (numpy `max`/`argmax`/`delete` semantics, `NaN` IoU of two empty
  masks included), the recall fed a supplied phrase-similarity matrix instead of BERT.

The tokenizer corpus is every caption above, the lines of `tokenizer_probe.txt` (hand
written hard cases) and random lines built from word lists.

Masks are stored as pycocotools compressed RLE (`{"size": [h, w], "counts": str}`).
"""

import json
import os
import tempfile
from importlib.metadata import version

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "official_metrics.json")
RNG = np.random.default_rng(20240628)
SIZES = [(37, 53), (64, 48), (29, 41)]


# ---------------------------------------------------------------- masks


def rle(m):
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode()}


def blob(h, w):
    """A random rectangle or ellipse, sometimes two of them."""
    m = np.zeros((h, w), bool)
    for _ in range(RNG.integers(1, 3)):
        cy, cx = RNG.integers(0, h), RNG.integers(0, w)
        ry, rx = RNG.integers(2, max(3, h // 3)), RNG.integers(2, max(3, w // 3))
        yy, xx = np.mgrid[0:h, 0:w]
        if RNG.random() < 0.5:
            m |= (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
        else:
            m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return m


def perturb(m):
    """A prediction near `m`: shifted, grown or shrunk, with some pixels flipped."""
    h, w = m.shape
    p = np.roll(m, (RNG.integers(-2, 3), RNG.integers(-2, 3)), axis=(0, 1))
    if RNG.random() < 0.5:
        p = p | np.roll(p, 1, axis=0) | np.roll(p, 1, axis=1)
    else:
        p = p & np.roll(p, 1, axis=0)
    flip = RNG.random((h, w)) < 0.01
    return p ^ flip


def empty(h, w):
    return np.zeros((h, w), bool)


# ---------------------------------------------------------------- referring


def referring_set():
    """Images, each with several sentences: one GT (union of instance masks) and the
    model's predicted masks (None: no [SEG] token; the official loop uses the first)."""
    images = []
    kinds = [
        "normal", "normal", "multi_gt", "empty_pred", "missing", "both_empty",
        "empty_gt", "multi_pred", "exact", "normal", "missing", "normal",
        "empty_pred", "multi_gt", "normal", "disjoint",
    ]
    k = 0
    for img in range(6):
        h, w = SIZES[img % len(SIZES)]
        sentences = []
        for _ in range(3 if img % 2 == 0 else 2):
            kind = kinds[k % len(kinds)]
            k += 1
            gt_parts = [blob(h, w)]
            if kind == "multi_gt":
                gt_parts.append(blob(h, w))
            if kind in ("both_empty", "empty_gt"):
                gt_parts = [empty(h, w)]
            gt = np.logical_or.reduce(gt_parts)
            if kind == "missing":
                preds = None
            elif kind in ("empty_pred", "both_empty"):
                preds = [empty(h, w)]
            elif kind == "exact":
                preds = [gt.copy()]
            elif kind == "disjoint":
                preds = [~gt & (RNG.random((h, w)) < 0.2)]
            else:
                preds = [perturb(gt) if gt.any() else blob(h, w)]
            if kind == "multi_pred":
                preds = preds + [blob(h, w), blob(h, w)]
            sentences.append({"kind": kind, "gt": gt_parts, "preds": preds})
        # The official loop fails on an image without any prediction.
        assert any(s["preds"] is not None for s in sentences)
        images.append({"height": h, "width": w, "sentences": sentences})
    return images


def official_referring(images):
    """The official OMG-LLaVA referring loop, foreground class, in float32."""
    f32 = np.float32
    tr_i, tr_u, tr_g, count = 0, 0, 0, 0
    exact_i, exact_u, exact_g, n = 0, 0, 0.0, 0
    for image in images:
        inter, union, acc = 0.0, 0.0, 0.0
        for s in image["sentences"]:
            gt = np.logical_or.reduce(s["gt"])
            n += 1
            if s["preds"] is None:
                continue  # no [SEG]: skipped, but the image still divides by all sentences
            pred = s["preds"][0]
            i = f32(np.logical_and(pred, gt).sum())
            u = f32(np.logical_or(pred, gt).sum())
            inter = inter + i
            union = union + u
            term = f32(i / f32(u + f32(1e-5)))
            if u == 0:
                term = f32(term + f32(1.0))
            acc = acc + term
            exact_i += int(i)
            exact_u += int(u)
            exact_g += 1.0 if u == 0 else float(i) / (float(u) + 1e-5)
        m = len(image["sentences"])
        acc = f32(acc) / f32(m)
        tr_i = tr_i + f32(inter)
        tr_u = tr_u + f32(union)
        tr_g = tr_g + f32(acc) * f32(m)
        count += m
    return {
        "ciou": float(f32(tr_i) / (f32(tr_u) + 1e-10)),
        "giou": float(f32(tr_g) / f32(count)),
        "exact_ciou": exact_i / (exact_u + 1e-10),
        "exact_giou": exact_g / n,
        "intersection": exact_i,
        "union": exact_u,
        "samples": n,
    }


# ---------------------------------------------------------------- GCG


def gcg_set():
    kinds = [
        "normal", "no_preds", "no_gt", "empty_masks", "crowd", "normal",
        "few_phrases", "many_preds", "normal", "empty_pred_only",
    ]
    images = []
    ann_id = 1
    for idx, kind in enumerate(kinds):
        h, w = SIZES[idx % len(SIZES)]
        n_gt = 0 if kind == "no_gt" else int(RNG.integers(1, 4))
        gts = [blob(h, w) for _ in range(n_gt)]
        if kind == "empty_masks":
            gts.append(empty(h, w))
        crowd = [False] * len(gts)
        if kind == "crowd":
            gts.append(blob(h, w))
            crowd.append(True)
        preds = [] if kind == "no_preds" else [perturb(g) for g in gts if g.any()]
        if kind in ("no_gt", "many_preds"):
            preds += [blob(h, w) for _ in range(2)]
        if kind == "empty_masks":
            preds.insert(0, empty(h, w))
        if kind == "empty_pred_only":
            preds.append(empty(h, w))
        if kind == "few_phrases":
            # The best pair involves the ground truth that has no phrase.
            gts.append(blob(h, w))
            crowd.append(False)
            preds.append(gts[-1].copy())
        RNG.shuffle(preds)
        n_gt_phrases = len(gts) - 1 if kind == "few_phrases" else len(gts)
        sims = RNG.random((n_gt_phrases, len(preds))).round(3)
        sims[sims > 0.3] = np.maximum(sims[sims > 0.3], 0.5)  # mostly similar enough
        ids = list(range(ann_id, ann_id + len(gts)))
        ann_id += len(gts)
        images.append({
            "id": 100 + 7 * ((idx * 3) % len(kinds)),  # ids not in input order
            "kind": kind,
            "height": h,
            "width": w,
            "gts": gts,
            "gt_ids": ids,
            "crowd": crowd,
            "preds": preds,
            "scores": [float(RNG.choice([0.9, 0.75, 0.75, 0.5, 0.3])) for _ in preds],
            "sims": sims,
        })
    return images


def iou_glamm(a, b):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(np.logical_and(a, b)) / np.sum(np.logical_or(a, b))


def iou_matrix(rows, cols):
    m = np.zeros((len(rows), len(cols)))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            m[i, j] = iou_glamm(r, c)
    return m


def image_miou(preds, gts):
    """Greedy pairing: take the largest IoU while it is > 0, drop its row and column."""
    m = iou_matrix(preds, gts)
    taken = []
    while m.size > 0 and np.max(m) > 0:
        r, c = np.unravel_index(np.argmax(m, axis=None), m.shape)
        taken.append(m[r, c])
        m = np.delete(np.delete(m, r, axis=0), c, axis=1)
    return float(np.mean(taken)) if taken else 0.0


def image_matches(gts, preds, sims, iou_thr=0.5, sim_thr=0.5):
    """Recall matching; None where the official code raises (index outside `sims`)."""
    ious = iou_matrix(gts, preds)
    sims = sims.copy()
    found = []
    while ious.size > 0:
        g, p = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[g, p] < iou_thr:
            break
        if g >= sims.shape[0] or p >= sims.shape[1]:
            return None
        if sims[g, p] < sim_thr:
            break
        found.append([int(g), int(p)])
        ious[g, :] = 0
        ious[:, p] = 0
        sims[g, :] = 0
        sims[:, p] = 0
    return found


def coco_ap(images, use_scores):
    gt = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "object"}]}
    results = []
    for im in images:
        gt["images"].append({"id": im["id"], "height": im["height"], "width": im["width"]})
        for m, i, c in zip(im["gts"], im["gt_ids"], im["crowd"]):
            r = rle(m)
            gt["annotations"].append({
                "id": i, "image_id": im["id"], "category_id": 1, "segmentation": r,
                "area": int(m.sum()), "bbox": [float(v) for v in mask_utils.toBbox(r)],
                "iscrowd": int(c),
            })
        for m, s in zip(im["preds"], im["scores"]):
            results.append({"image_id": im["id"], "category_id": 1, "segmentation": rle(m),
                            "score": s if use_scores else 1.0})
    with tempfile.TemporaryDirectory() as d:
        gp, rp = os.path.join(d, "gt.json"), os.path.join(d, "res.json")
        json.dump(gt, open(gp, "w"))
        json.dump(results, open(rp, "w"))
        coco_gt = COCO(gp)
        coco_dt = coco_gt.loadRes(rp)
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.params.catIds = [1]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return {"ap": float(s[0]), "ap50": float(s[1]), "ap75": float(s[2]), "ar100": float(s[8])}


def official_gcg(images):
    mious = [image_miou(im["preds"], im["gts"]) for im in images]
    tp, pos, per_image = 0, 0, []
    for im in images:
        pos += im["sims"].shape[0]
        found = image_matches(im["gts"], im["preds"], im["sims"])
        per_image.append(found)
        tp += 0 if found is None else len(found)
    assert any(f is None for f in per_image), "the set should exercise the error path"
    return {
        "miou": float(np.mean(mious)),
        "miou_per_image": mious,
        "recall": tp / pos if pos else 0.0,
        "matches_per_image": per_image,
        "ap_score_one": coco_ap(images, use_scores=False),
        "ap_scored": coco_ap(images, use_scores=True),
    }


# ---------------------------------------------------------------- captions

CAPTIONS = [
    (["A man riding a horse on a beach.", "A person rides a brown horse along the shore."],
     "A man is riding a horse on the beach."),
    (["Two dogs play with a red ball in the park.", "two dogs playing in a park",
      "Dogs chase a ball on green grass."],
     "two dogs are playing with a ball"),
    (["The kitchen has a stove, a sink and a white refrigerator."],
     "A kitchen with a stove, a sink, and a fridge."),
    (["A woman holding an umbrella (red) in the rain.", "Woman with a red umbrella."],
     ""),
    (["It's a cat sleeping on the sofa; it isn't awake.", "A cat sleeps on a couch."],
     "a cat that's sleeping on a couch"),
    (["A zebra, a giraffe and an elephant stand near the water-hole.",
      "Three animals at a watering hole: zebra, giraffe, elephant.",
      "An elephant drinks while a zebra and a giraffe watch.",
      "Wild animals gather by the water."],
     "An ELEPHANT and a Zebra near the water."),
    (["A bowl of soup next to a sandwich on a plate.", "Soup and a sandwich for lunch!"],
     "soup soup soup soup"),
    (["The U.S. flag waves over the 3-story building at 10:30 a.m."],
     "The U.S. flag waves above a building."),
    (["A child in a yellow t-shirt kicks a soccer ball.", "A kid kicks a ball.",
      "A young boy plays soccer."],
     "A child in a yellow t-shirt, kicking a soccer ball \"hard\"."),
    (["A plate with broccoli, carrots and rice.", "Vegetables and rice on a white plate."],
     "rice"),
    (["Mr. Smith's dog doesn't like the rain -- it hides under the table...",
      "A dog hides under a table."],
     "The dog hides under the table because it doesn't like the rain?!"),
    (["An airplane flies above the clouds.", "A jet in a blue sky over white clouds."],
     "A large passenger jet flying through a blue sky above the clouds."),
]

EXTRA_TOKENIZER_LINES = [
    "A man standing next to a red fire hydrant",
    "There are 2 dogs, 3 cats and 4.5 birds.",
    "The image shows a woman (on the left) and a man [on the right] {inside}.",
    "Isn't it the boys' toys and James's car in the 1990's?",
    "A cat... a dog!! a bird?! -- and \"quotes\" and 'single quotes' here.",
    "e.g. a U.S.A. flag, etc. and Dr. Who at 10:30pm for $3.50 (20% off).",
    "Well-known black-and-white photos of 1,000,000 people; 3-4 per row: okay.",
    "A sign that says 'stop' on a pole",
    "  Leading and trailing spaces   ",
    "\u201cCurly\u201d quotes, it\u2019s a dog\u2019s life \u2014 and an ellipsis\u2026",
    "CAPITAL LETTERS AND Mixed Case Words",
    "cannot gonna wanna gotta lemme gimme 'tis 'twas",
    "I'm sure they're here, we've seen it, you'll see, he'd know.",
]


def tokenize_all(lines):
    """pycocoevalcap's tokenization of each line (punctuation removed)."""
    out = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in enumerate(lines)})
    return [out[i][0] for i in range(len(lines))]


def official_captions():
    gts = {i: [{"caption": r} for r in refs] for i, (refs, _) in enumerate(CAPTIONS)}
    res = {i: [{"caption": cand}] for i, (_, cand) in enumerate(CAPTIONS)}
    tok = PTBTokenizer()
    gts_t, res_t = tok.tokenize(gts), tok.tokenize(res)
    cider, cider_each = Cider().compute_score(gts_t, res_t)
    meteor, meteor_each = Meteor().compute_score(gts_t, res_t)
    return {
        "samples": [{"references": refs, "candidate": cand} for refs, cand in CAPTIONS],
        "tokenized": [{"references": gts_t[i], "candidate": res_t[i][0]}
                      for i in range(len(CAPTIONS))],
        "cider": float(cider),
        "cider_per_sample": [float(v) for v in cider_each],
        "meteor": float(meteor),
        "meteor_per_sample": [float(v) for v in meteor_each],
    }


FUZZ_WORDS = [
    "a", "A", "the", "The", "man", "woman's", "dogs'", "cat", "It's", "isn't", "don't",
    "they're", "we'll", "I'd", "I'm", "can't", "won't", "cannot", "gonna", "Mr.", "Dr.",
    "etc.", "e.g.", "U.S.", "3", "4.5", "1,000", "10:30", "50%", "$20", "t-shirt",
    "black-and-white", "and/or", "3D", "19th", "o'clock", "NEW", "York", "x", "I",
    "red", "ball", "near", "water", "on", "of", "with", "two", "#1", "&", "+", "=",
]
FUZZ_AFTER = ["", "", "", "", ",", ".", ";", ":", "!", "?", "...", "?!", "'", "\"", ")"]
FUZZ_BEFORE = ["", "", "", "", "", "(", "\"", "'", "[", "-"]


def fuzz_lines(n=120):
    """Random captions from words, attached punctuation, quotes and brackets."""
    lines = []
    for _ in range(n):
        words = []
        for _ in range(RNG.integers(3, 12)):
            w = str(RNG.choice(FUZZ_WORDS))
            words.append(str(RNG.choice(FUZZ_BEFORE)) + w + str(RNG.choice(FUZZ_AFTER)))
        lines.append(" ".join(words))
    return lines


HELDOUT_WORDS = [
    "people", "People's", "children's", "aren't", "wasn't", "couldn't", "you've",
    "she'd", "Ms.", "St.", "vs.", "i.e.", "a.m.", "Jan.", "No.", "3.14", "2,500",
    "9:45", "5-year-old", "x-ray", "well-lit", "100%", "#2", "@home", "AT&T", "O'Brien",
    "rock'n'roll", "'90s", "B&W", "1/2", "e-mail", "Wi-Fi", "TV", "u.k.", "Co.", "inc.",
    "sitting", "Standing", "under", "an", "umbrella", "tree", "sky", "blue", "ok",
]
HELDOUT_AFTER = ["", "", "", "", ",", ".", ";", ":", "!", "?", "..", "....", "'", "\"", ")",
                 "]", "!!", "-", "--", "/"]
HELDOUT_BEFORE = ["", "", "", "", "", "(", "\"", "'", "``", "-", "--", "$", "<"]


def heldout_lines(n=150, seed=7):
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        words = []
        for _ in range(rng.integers(3, 12)):
            w = str(rng.choice(HELDOUT_WORDS))
            words.append(str(rng.choice(HELDOUT_BEFORE)) + w + str(rng.choice(HELDOUT_AFTER)))
        lines.append(" ".join(words))
    return lines


def probe_lines():
    return [l for l in open(os.path.join(HERE, "tokenizer_probe.txt"), encoding="utf-8").read().split("\n")
            if l]


# ---------------------------------------------------------------- output


def main():
    ref_images = referring_set()
    referring = {
        "images": [{
            "height": im["height"], "width": im["width"],
            "sentences": [{
                "kind": s["kind"],
                "gt": [rle(m) for m in s["gt"]],
                "preds": None if s["preds"] is None else [rle(m) for m in s["preds"]],
            } for s in im["sentences"]],
        } for im in ref_images],
        "official": official_referring(ref_images),
    }

    gcg_images = gcg_set()
    gcg = {
        "images": [{
            "id": im["id"], "kind": im["kind"], "height": im["height"], "width": im["width"],
            "gt": [{"id": i, "iscrowd": c, "rle": rle(m)}
                   for m, i, c in zip(im["gts"], im["gt_ids"], im["crowd"])],
            "preds": [{"score": s, "rle": rle(m)} for m, s in zip(im["preds"], im["scores"])],
            "similarities": im["sims"].tolist(),
        } for im in gcg_images],
        "official": official_gcg(gcg_images),
    }

    captions = official_captions()
    lines = [c for refs, cand in CAPTIONS for c in refs + [cand]]
    lines += EXTRA_TOKENIZER_LINES + probe_lines() + fuzz_lines()
    # Two random corpora of harder inputs (abbreviations, quotes, signs, symbols).
    lines += heldout_lines(seed=7) + heldout_lines(seed=8)
    tokenizer = [{"text": t, "tokens": v} for t, v in zip(lines, tokenize_all(lines))]

    out = {
        "generator": "omg-eval/reference/generate.py",
        "versions": {p: version(p) for p in ("numpy", "pycocotools", "pycocoevalcap")},
        "referring": referring,
        "gcg": gcg,
        "captions": captions,
        "tokenizer": tokenizer,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")
    print(json.dumps({k: out["referring"]["official"][k] for k in ("ciou", "giou")}))
    print(json.dumps({k: v for k, v in out["gcg"]["official"].items() if "per_image" not in k}))
    print(json.dumps({k: captions[k] for k in ("cider", "meteor")}))


if __name__ == "__main__":
    main()
