#!/usr/bin/env python3
"""Write `panoptic_reference.json` for `omg-encoder/tests/integration/panoptic.rs`.

The Rust port of OMG-Seg's "segment everything" output (`omg_encoder::panoptic`) must reproduce the
panoptic fusion that the official OMG-LLaVA config builds:

    panoptic_fusion_head=dict(type=MaskFormerFusionHead, num_things_classes=80, num_stuff_classes=53)
    test_cfg=dict(panoptic_on=True, semantic_on=False, instance_on=True, max_per_image=100,
                  iou_thr=0.8, filter_low_score=True)        # object_mask_thr: default 0.8

(`omg_llava/omg_llava/configs/finetune/omg_llava_7b_finetune_8gpus.py` of github.com/lxtGH/OMG-Seg).
mmdet is not installed here, so `panoptic_postprocess` below is a line-by-line transcription of
`MaskFormerFusionHead.panoptic_postprocess` from **mmdet 3.1.0**
(`mmdet/models/seg_heads/panoptic_fusion_heads/maskformer_fusion_head.py`, the file in the
`mmdet-3.1.0-py3-none-any.whl` wheel), and `official_model_frame` transcribes the resize path of
`Mask2FormerVideoSemSamHead.predict` (`omg_llava/omg_llava/model/omg_seg/mask2former_vid_semanticsam.py`:
bilinear upsample of the IoU-stripped last-stage logits to `batch_input_shape`, align_corners=False)
followed by `MaskFormerFusionHead.predict` (crop `[:img_h, :img_w]`, bilinear resize to `ori_shape`; with
OMG-LLaVA's `OMGSegVisualEncoder.prepare_input` all three shapes are the model input size, so both are
identities). The "original frame" cases use the port's own mapping (not an official path): upsample the
logits to the padded square `S x S`, crop the centred padding `[pad : pad + orig]`.

Each case stores the inputs (float32 values as JSON numbers, exact when read back as f32), the frame,
the config, the expected map in mmdet's encoding (`class + instance_id * INSTANCE_OFFSET` for things,
`class` for stuff, `num_classes` for "no segment"), the segments (one per distinct map value, with the
score(s) and queries that painted it) and a trace of every kept query's decision.

The script checks that every case is far from a numerical tie (scores vs. the threshold, sigmoid vs.
0.5, the top-2 probabilities per pixel; exact ties at 0, where every kept mask underflows, are allowed
on purpose: both sides must then pick the first kept query), so float32 rounding differences between
torch and burn cannot flip a decision.

Usage (CPU only, torch 2.5.1):

    python3 omg-encoder/tests/data/make_panoptic_reference.py
"""

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

# mmdet/evaluation/functional/panoptic_utils.py (mmdet 3.1.0)
INSTANCE_OFFSET = 1000

OUT = Path(__file__).resolve().parent / "panoptic_reference.json"


class FusionHead:
    """The parts of mmdet 3.1.0 `MaskFormerFusionHead` used for panoptic output (+ a trace)."""

    def __init__(self, num_things_classes, num_stuff_classes, test_cfg):
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.num_classes = num_things_classes + num_stuff_classes
        self.test_cfg = test_cfg

    def panoptic_postprocess(self, mask_cls, mask_pred, trace=None):
        # ---- transcribed from mmdet 3.1.0 maskformer_fusion_head.py; lines marked "(trace)" are
        # ---- additions that only record decisions and do not change the result.
        object_mask_thr = self.test_cfg.get('object_mask_thr', 0.8)
        iou_thr = self.test_cfg.get('iou_thr', 0.8)
        filter_low_score = self.test_cfg.get('filter_low_score', False)

        scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
        mask_pred = mask_pred.sigmoid()

        keep = labels.ne(self.num_classes) & (scores > object_mask_thr)
        cur_scores = scores[keep]
        cur_classes = labels[keep]
        cur_masks = mask_pred[keep]
        kept_queries = torch.nonzero(keep)[:, 0].tolist()  # (trace)

        cur_prob_masks = cur_scores.view(-1, 1, 1) * cur_masks

        h, w = cur_masks.shape[-2:]
        panoptic_seg = torch.full((h, w),
                                  self.num_classes,
                                  dtype=torch.int32,
                                  device=cur_masks.device)
        if cur_masks.shape[0] == 0:
            # We didn't detect any mask :(
            pass
        else:
            cur_mask_ids = cur_prob_masks.argmax(0)
            instance_id = 1
            for k in range(cur_classes.shape[0]):
                pred_class = int(cur_classes[k].item())
                isthing = pred_class < self.num_things_classes
                mask = cur_mask_ids == k
                mask_area = mask.sum().item()
                original_area = (cur_masks[k] >= 0.5).sum().item()

                if filter_low_score:
                    mask = mask & (cur_masks[k] >= 0.5)

                entry = dict(query=kept_queries[k], class_id=pred_class,  # (trace)
                             score=float(cur_scores[k]), mask_area=mask_area,  # (trace)
                             original_area=original_area, painted=False,  # (trace)
                             value=None)  # (trace)
                if trace is not None:  # (trace)
                    trace.append(entry)  # (trace)
                if mask_area > 0 and original_area > 0:
                    if mask_area / original_area < iou_thr:
                        continue

                    entry['painted'] = True  # (trace)
                    if not isthing:
                        # different stuff regions of same class will be
                        # merged here, and stuff share the instance_id 0.
                        panoptic_seg[mask] = pred_class
                        entry['value'] = pred_class  # (trace)
                    else:
                        panoptic_seg[mask] = (
                            pred_class + instance_id * INSTANCE_OFFSET)
                        entry['value'] = pred_class + instance_id * INSTANCE_OFFSET  # (trace)
                        instance_id += 1

        return panoptic_seg[None]  # mmdet wraps this in PixelData(sem_seg=...)


def official_model_frame(mask_pred, out_h, out_w):
    """`Mask2FormerVideoSemSamHead.predict` + `MaskFormerFusionHead.predict` resize path with
    img_shape = ori_shape = batch_input_shape = (out_h, out_w) (OMGSegVisualEncoder.prepare_input)."""
    # head.predict: upsample every query to batch_input_shape.
    mask_pred = F.interpolate(mask_pred[None], size=(out_h, out_w), mode='bilinear',
                              align_corners=False)[0]
    # fusion_head.predict: remove padding, then rescale to ori_shape (both no-ops here).
    mask_pred = mask_pred[:, :out_h, :out_w]
    mask_pred = F.interpolate(mask_pred[:, None], size=(out_h, out_w), mode='bilinear',
                              align_corners=False)[:, 0]
    return mask_pred


def original_frame(mask_pred, orig_w, orig_h):
    """The port's original-frame mapping: upsample to the padded square, crop the centred padding."""
    side = max(orig_w, orig_h)
    pad_x = (side - orig_w) // 2
    pad_y = (side - orig_h) // 2
    up = F.interpolate(mask_pred[None], size=(side, side), mode='bilinear', align_corners=False)[0]
    return up[:, pad_y:pad_y + orig_h, pad_x:pad_x + orig_w]


# ----------------------------------------------------------------------------------------------
# Inputs: hand-placed blobs / rectangles plus seeded noise.


def grid(h, w):
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing='ij')
    return yy, xx


def blob(h, w, cy, cx, r, gain=2.0):
    yy, xx = grid(h, w)
    return gain * (r - ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt())


def rect(h, w, r0, r1, c0, c1, gain=2.0):
    """Positive inside rows r0..=r1, cols c0..=c1 (signed distance to the nearest edge)."""
    yy, xx = grid(h, w)
    d = torch.minimum(torch.minimum(yy - r0 + 0.5, r1 - yy + 0.5),
                      torch.minimum(xx - c0 + 0.5, c1 - xx + 0.5))
    return gain * d


def const(h, w, v):
    return torch.full((h, w), float(v), dtype=torch.float64)


def build(spec, num_classes, h, w, gen):
    """spec: list of (class_id or 'bg', class_logit, mask logits [h, w] float64)."""
    q = len(spec)
    cls = torch.randn((q, num_classes + 1), generator=gen, dtype=torch.float64) * 0.3
    cls[:, num_classes] = 0.0  # the background logit of OMG-Seg's sphere classifier is 0
    masks = torch.zeros((q, h, w), dtype=torch.float64)
    for i, (c, logit, m) in enumerate(spec):
        if c == 'bg':
            cls[i, :num_classes] += -2.0
        else:
            cls[i, c] = logit + 0.1 * torch.randn((), generator=gen, dtype=torch.float64)
        masks[i] = m + 0.3 * torch.randn((h, w), generator=gen, dtype=torch.float64)
    # Multiples of 1/256: exact in float32 and short in JSON.
    return ((cls * 256).round() / 256).to(torch.float32), ((masks * 256).round() / 256).to(torch.float32)


def spec_main(h, w):
    """Q=12 over 3 things (0..2) + 2 stuff (3, 4): instances of one class, a big low-score thing hidden
    behind others (overlap test), two stuff queries of class 3 (merged), a duplicate stuff query that
    wins nothing, a background query, a low-score query, a kept query with an empty mask."""
    return [
        (0, 5.0, blob(h, w, 4, 4, 3)),             # q0 thing 0
        (0, 4.5, blob(h, w, 4, 11.5, 3)),          # q1 thing 0, second instance
        (1, 5.5, blob(h, w, 11, 4, 3)),            # q2 thing 1
        (2, 3.4, blob(h, w, 8, 8, 5.5)),           # q3 thing 2, score ~0.85, mostly covered
        (3, 5.0, rect(h, w, 14, 15, 0, 7)),        # q4 stuff 3 (bottom left)
        (3, 4.6, rect(h, w, 14, 15, 9, 15)),       # q5 stuff 3 (bottom right) -> merged with q4
        (4, 4.0, rect(h, w, 0, 12, 15, 15)),       # q6 stuff 4 (right column)
        ('bg', 0.0, blob(h, w, 8, 8, 7)),          # q7 background class
        (1, 1.2, blob(h, w, 12, 12, 3)),           # q8 low score
        (2, 5.0, const(h, w, -6.0)),               # q9 kept, empty mask
        (4, 3.8, rect(h, w, 0, 12, 15, 15)),       # q10 duplicate of q6 with a lower score
        (0, 4.8, blob(h, w, 11.5, 11.5, 2.5)),     # q11 thing 0, third instance
    ]


def spec_ties(h, w, cover_all=False):
    """Q=8; the lower-left quarter is < -150 for every query: sigmoid underflows to exactly 0, all
    probabilities tie at 0 and argmax picks the first kept query (whose mask area then counts those
    pixels, while filter_low_score keeps them out of the map). With `cover_all`, the last (stuff)
    query covers the whole image with a higher score than the first kept (thing) query, which then
    wins only the tied pixels: it passes the overlap test, takes instance id 1 and paints nothing; a
    9th, confident thing query then gets instance id 2."""
    far = rect(h, w, 8, 15, 0, 7, gain=1.0) > 0
    out = [
        (1, 4.0, blob(h, w, 3, 3, 3)),
        (0, 5.0, blob(h, w, 3, 11, 3)),
        (3, 4.5, rect(h, w, 0, 7, 6, 9)),
        (2, 4.2, blob(h, w, 11, 11, 3.5)),
        (4, 0.5, blob(h, w, 11, 11, 5)),
        ('bg', 0.0, blob(h, w, 7, 7, 6)),
        (2, 3.6, blob(h, w, 11, 11, 4.5)),
        (3, 4.4, rect(h, w, 0, 15, 0 if cover_all else 12, 15)),
    ]
    if cover_all:
        out.append((0, 7.0, blob(h, w, 11, 12, 2.5, gain=20.0)))
    res = []
    for c, logit, m in out:
        m = m.clone()
        m[far] = -200.0
        res.append((c, logit, m))
    return res


def spec_nofilter(h, w):
    """Q=10 for a non-default config (lower thresholds, no low-score filtering)."""
    return [
        (0, 2.5, blob(h, w, 5, 5, 4, gain=0.7)),
        (1, 2.2, blob(h, w, 5, 11, 4, gain=0.7)),
        (2, 3.0, blob(h, w, 11, 6, 4, gain=0.7)),
        (3, 1.6, rect(h, w, 0, 2, 0, 15, gain=0.8)),
        (4, 2.8, rect(h, w, 13, 15, 0, 15, gain=0.8)),
        (4, 2.0, rect(h, w, 6, 9, 12, 15, gain=0.8)),
        (0, 0.3, blob(h, w, 8, 8, 6)),
        ('bg', 0.0, blob(h, w, 8, 8, 3)),
        (1, 2.6, blob(h, w, 11, 11, 3, gain=0.7)),
        (2, 1.9, blob(h, w, 8, 8, 7, gain=0.5)),
    ]


CASES = [
    dict(name="model_main", spec=spec_main, things=3, stuff=2, mask=(16, 16),
         frame=dict(kind="model", height=64, width=64), cfg={}),
    dict(name="model_ties", spec=spec_ties, things=3, stuff=2, mask=(16, 16),
         frame=dict(kind="model", height=48, width=48), cfg={}),
    dict(name="model_empty_thing", spec=lambda h, w: spec_ties(h, w, cover_all=True), things=3,
         stuff=2, mask=(16, 16), frame=dict(kind="model", height=48, width=48), cfg={}),
    dict(name="model_nofilter_nonsquare", spec=spec_nofilter, things=3, stuff=2, mask=(16, 16),
         frame=dict(kind="model", height=64, width=40),
         cfg=dict(object_mask_thr=0.5, iou_thr=0.6, filter_low_score=False)),
    dict(name="original_tall_23x40", spec=spec_main, things=3, stuff=2, mask=(16, 16),
         frame=dict(kind="original", width=23, height=40, target=64), cfg={}),
    dict(name="original_wide_50x31", spec=spec_main, things=3, stuff=2, mask=(16, 16),
         frame=dict(kind="original", width=50, height=31, target=64), cfg={}),
]

DEFAULT_CFG = dict(object_mask_thr=0.8, iou_thr=0.8, filter_low_score=True)


def near_tie_problems(cls, masks, cfg, num_classes):
    """Ways in which float32 rounding differences could change the result (empty = safe)."""
    problems = []
    probs = F.softmax(cls.double(), dim=-1)
    top2 = probs.topk(2, dim=-1).values
    if (top2[:, 0] - top2[:, 1]).min() < 1e-4:
        problems.append("class argmax near a tie")
    scores, labels = F.softmax(cls, dim=-1).max(-1)
    if ((scores.double() - cfg['object_mask_thr']).abs() < 1e-4).any():
        problems.append("score near object_mask_thr")
    keep = labels.ne(num_classes) & (scores > cfg['object_mask_thr'])
    if keep.sum() == 0:
        problems.append("nothing kept")
        return problems
    m = masks[keep].double()
    sig = m.sigmoid()
    if ((sig - 0.5).abs() < 1e-5).any():
        problems.append("sigmoid near 0.5")
    prob = scores[keep].double().view(-1, 1, 1) * sig
    if prob.shape[0] >= 2:
        t = prob.topk(2, dim=0).values
        p32 = (scores[keep].view(-1, 1, 1) * masks[keep].sigmoid()).topk(2, dim=0).values
        exact_zero_tie = (p32[0] == 0) & (p32[1] == 0)
        close = (t[0] - t[1]) <= 1e-4 * t[0]
        if (close & ~exact_zero_tie).any():
            problems.append("prob argmax near a tie")
    return problems


def run_case(case, seed):
    gen = torch.Generator().manual_seed(seed)
    things, stuff = case['things'], case['stuff']
    num_classes = things + stuff
    h, w = case['mask']
    cls, masks = build(case['spec'](h, w), num_classes, h, w, gen)
    cfg = dict(DEFAULT_CFG, **case['cfg'])
    frame = case['frame']
    if frame['kind'] == 'model':
        up = official_model_frame(masks, frame['height'], frame['width'])
    else:
        up = original_frame(masks, frame['width'], frame['height'])
    problems = near_tie_problems(cls, up, cfg, num_classes)
    head = FusionHead(things, stuff, dict(cfg, panoptic_on=True, semantic_on=False,
                                          instance_on=True, max_per_image=100))
    trace = []
    pan = head.panoptic_postprocess(cls, up, trace)[0]
    return cls, masks, cfg, pan, trace, problems


def main():
    torch.set_num_threads(1)
    out_cases = []
    for case in CASES:
        for seed in range(1000, 1100):
            cls, masks, cfg, pan, trace, problems = run_case(case, seed)
            if not problems:
                break
        else:
            raise SystemExit(f"{case['name']}: no tie-free seed: {problems}")
        num_classes = case['things'] + case['stuff']
        values, counts = torch.unique(pan, return_counts=True)
        segments = []
        for v, n in zip(values.tolist(), counts.tolist()):
            if v == num_classes:
                continue
            painters = [t for t in trace if t['painted'] and t['value'] == v]
            segments.append(dict(value=v, class_id=v % INSTANCE_OFFSET,
                                 instance_id=v // INSTANCE_OFFSET, area=n,
                                 queries=[t['query'] for t in painters],
                                 score=max(t['score'] for t in painters)))
        painted = [t for t in trace if t['painted']]
        print(f"{case['name']}: seed {seed}, kept {len(trace)}, painted {len(painted)}, "
              f"skipped {[t['query'] for t in trace if not t['painted']]}, "
              f"segments {[(s['value'], s['area']) for s in segments]}")
        out_cases.append(dict(
            name=case['name'], seed=seed,
            num_things=case['things'], num_stuff=case['stuff'],
            config=cfg, frame=case['frame'],
            num_queries=cls.shape[0], mask_height=case['mask'][0], mask_width=case['mask'][1],
            cls_logits=cls.flatten().tolist(),
            mask_logits=masks.flatten().tolist(),
            map_height=pan.shape[0], map_width=pan.shape[1],
            expected_map=pan.flatten().tolist(),
            segments=segments, trace=trace))
    OUT.write_text(json.dumps(dict(
        generator="make_panoptic_reference.py",
        torch=torch.__version__,
        source="mmdet 3.1.0 MaskFormerFusionHead.panoptic_postprocess (transcribed)",
        instance_offset=INSTANCE_OFFSET,
        cases=out_cases)) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == '__main__':
    main()
