#!/usr/bin/env python3
"""Generate `omg-bert/tests/data/`: a tiny random BERT in the Hugging Face layout
(`tiny-bert/`: config.json, model.safetensors, tokenizer.json, vocab.txt,
tokenizer_config.json) and `official.json`, the values the
official GCG evaluation's phrase functions give with it, for `tests/official.rs`.

How to run (from the repository root):

    python3 -m venv /tmp/bert-venv
    /tmp/bert-venv/bin/pip install -r omg-bert/reference/requirements.txt
    /tmp/bert-venv/bin/python omg-bert/reference/generate.py

The committed files were produced with the pinned versions of requirements.txt
(CPython 3.11, CPU). The output is deterministic (fixed torch and numpy seeds).

What the official evaluation does (GLaMM's GCG evaluation, which OMG-LLaVA's
evaluation uses), restated here with the tiny model in place of `bert-base-uncased`:

* a phrase's embedding: `AutoTokenizer(text, return_tensors="pt", max_length=512,
  truncation=True)`, the `AutoModel`'s `last_hidden_state[0]` averaged over every
  token (`[CLS]` and `[SEP]` included);
* the similarity of two phrases: sklearn's `cosine_similarity` of the two embeddings;
* the recall: the greedy matching of ground-truth masks against predicted masks on the
  IoU matrix, accepting a pair while its IoU and its phrase similarity are both
  `>= 0.5` (`find_best_matches`), matches over ground-truth phrases.

The model and tokenizer are loaded back with `AutoModel.from_pretrained` and
`AutoTokenizer.from_pretrained` from the written folder, as the evaluation loads
`bert-base-uncased`; the tokenizer is the WordPiece pipeline of `bert-base-uncased`'s
tokenizer.json (lower case, accents kept unless lower-casing strips them, Chinese
characters split) over a small vocabulary. Every parameter is drawn at random
(word embeddings N(0, 1), other embeddings N(0, 0.02), matrices N(0, 0.1), biases
N(0, 0.01), layer-norm scales 1 + N(0, 0.2)) so that the similarities spread on both
sides of the 0.5 threshold.
"""

import json
import os
from importlib.metadata import version

import numpy as np
import torch
from sklearn.metrics.pairwise import cosine_similarity
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
MODEL_DIR = os.path.join(DATA, "tiny-bert")
OUT = os.path.join(DATA, "official.json")
RNG = np.random.default_rng(20240628)
torch.manual_seed(20240628)

WORDS = (
    "a an the of in on at with and to is are two three man woman person people dog cat "
    "car tree sky grass road building shirt hat table chair cup water red blue green "
    "white black small large old young standing sitting playing holding wearing near "
    "next left right front back top bottom field street window door bench bird horse "
    "cafe boy girl ball kite ."
).split()
PIECES = "##s ##ing ##ed ##er ##scraper ##ly ##y ##e sky , ' - ( ) ! ? 猫".split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

PHRASES = [
    "a man",
    "the man",
    "A Man in a red shirt",
    "the red shirt",
    "a dog",
    "dogs",
    "two dogs playing",
    "a sky-scraper",
    "the Café",
    "cafe",
    "猫 and a cat",
    "an unknownword",
    "",
    "   ",
    "a small bird sitting on the bench",
    "the green grass",
    "trees",
    "a woman holding a cup of water",
    "people standing near the building",
    "the blue sky",
    "a white horse in the field",
    "(left) the chair!",
    "kites",
    "a boy's ball",
    # longer than 512 tokens: truncated to 510 words and [CLS] ... [SEP]
    " ".join(["dog", "cat", "tree"] * 200),
]


def write_model():
    os.makedirs(MODEL_DIR, exist_ok=True)
    vocab = SPECIAL + sorted(set(WORDS)) + PIECES
    vocab_file = os.path.join(MODEL_DIR, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    # the pipeline of bert-base-uncased's tokenizer.json
    wp = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100))
    wp.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    wp.decoder = decoders.WordPiece(prefix="##")
    tok = BertTokenizerFast(tokenizer_object=wp, do_lower_case=True, model_max_length=512,
                            unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
    tok.save_pretrained(MODEL_DIR)
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=512,
        type_vocab_size=2,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
    )
    model = BertModel(config, add_pooling_layer=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.01 * torch.randn_like(p))
            elif "word_embeddings" in name:
                p.copy_(torch.randn_like(p))
            elif "embeddings" in name:
                p.copy_(0.02 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    model.save_pretrained(MODEL_DIR, safe_serialization=True)


# ------------------------------------------------- the official phrase functions

def official_functions():
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    model = AutoModel.from_pretrained(MODEL_DIR)

    def get_bert_embedding(text):
        inputs = tokenizer(text, return_tensors="pt", max_length=512, truncation=True)
        outputs = model(**inputs)
        return torch.mean(outputs.last_hidden_state[0], dim=0).detach().numpy()

    def text_similarity_bert(a, b):
        return cosine_similarity([get_bert_embedding(a)], [get_bert_embedding(b)])[0, 0]

    return tokenizer, get_bert_embedding, text_similarity_bert


def iou(a, b):
    return np.sum(np.logical_and(a, b)) / np.sum(np.logical_or(a, b))


def best_matches(gt_masks, gt_labels, pred_masks, pred_labels, sim):
    ious = np.zeros((len(gt_masks), len(pred_masks)))
    for i, g in enumerate(gt_masks):
        for j, p in enumerate(pred_masks):
            ious[i, j] = iou(g, p)
    sims = np.zeros((len(gt_labels), len(pred_labels)))
    for i, g in enumerate(gt_labels):
        for j, p in enumerate(pred_labels):
            sims[i, j] = sim(g, p)
    matches = []
    while ious.size > 0:
        k = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[k] < 0.5 or sims[k] < 0.5:
            break
        matches.append((int(k[0]), int(k[1])))
        ious[k[0], :] = 0
        ious[:, k[1]] = 0
        sims[k[0], :] = 0
        sims[:, k[1]] = 0
    return matches


# ------------------------------------------------------------ recall images

def blob(h, w):
    m = np.zeros((h, w), bool)
    cy, cx = RNG.integers(0, h), RNG.integers(0, w)
    ry, rx = RNG.integers(2, max(3, h // 3)), RNG.integers(2, max(3, w // 3))
    yy, xx = np.mgrid[0:h, 0:w]
    m |= (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
    return m


def near(m):
    p = np.roll(m, (RNG.integers(-1, 2), RNG.integers(-1, 2)), axis=(0, 1))
    return p ^ (RNG.random(m.shape) < 0.02)


def recall_images():
    """Images whose predicted masks overlap their ground truth, with phrases that are
    sometimes alike and sometimes not; one with an empty predicted mask, one with fewer
    predicted phrases than masks, one without predictions, one without ground truth."""
    images = []
    phrase_pool = [p for p in PHRASES if len(p) < 100]
    for n, (h, w) in enumerate([(23, 31), (30, 20), (17, 26), (28, 28), (19, 33), (25, 22)]):
        k = int(RNG.integers(1, 5))
        gt = [blob(h, w) for _ in range(k)]
        pred = [near(m) for m in gt if RNG.random() < 0.8] + [blob(h, w) for _ in range(int(RNG.integers(0, 2)))]
        order = RNG.permutation(len(pred))
        pred = [pred[i] for i in order]
        gt_phrases = [str(RNG.choice(phrase_pool)) for _ in gt]
        pred_phrases = []
        for i in order:
            if i < len(gt) and RNG.random() < 0.6:
                pred_phrases.append(gt_phrases[i] if RNG.random() < 0.5 else str(RNG.choice(phrase_pool)))
            else:
                pred_phrases.append(str(RNG.choice(phrase_pool)))
        if n == 4:
            pred_phrases = pred_phrases[:-1]  # fewer phrases than masks
        if n == 2:
            pred.append(np.zeros((h, w), bool))  # an empty predicted mask
            pred_phrases.append(str(RNG.choice(phrase_pool)))
        images.append((gt, gt_phrases, pred, pred_phrases))
    h, w = 21, 27
    # no prediction at all
    images.append(([blob(h, w), blob(h, w)], ["a dog", "the green grass"], [], []))
    # no ground truth (an image without phrases), two predictions
    images.append(([], [], [blob(h, w), blob(h, w)], ["a man", "trees"]))
    return images


def mask_json(m):
    return {"height": m.shape[0], "width": m.shape[1], "bits": "".join("1" if v else "0" for v in m.flatten())}


def main():
    write_model()
    tokenizer, embed, sim = official_functions()

    phrases = []
    for p in PHRASES:
        ids = tokenizer(p, max_length=512, truncation=True)["input_ids"]
        phrases.append({"text": p, "input_ids": ids, "embedding": [float(x) for x in embed(p)]})
    sims = [[float(sim(a, b)) for b in PHRASES] for a in PHRASES]

    recall = []
    tp = ap = 0
    for gt, gtp, pred, predp in recall_images():
        try:
            matches = best_matches(gt, gtp, pred, predp, sim)
            ok = True
        except IndexError:
            matches, ok = [], False
        ap += len(gtp)
        tp += len(matches)
        recall.append(
            {
                "gt_masks": [mask_json(m) for m in gt],
                "gt_phrases": gtp,
                "pred_masks": [mask_json(m) for m in pred],
                "pred_phrases": predp,
                "matches": matches,
                "matched_in_range": ok,
            }
        )

    out = {
        "generator": "omg-bert/reference/generate.py",
        "versions": {k: version(k) for k in ["torch", "transformers", "tokenizers", "scikit-learn", "numpy"]},
        "phrases": phrases,
        "similarities": sims,
        "recall_images": recall,
        "true_positives": tp,
        "actual_positives": ap,
        "recall": tp / ap if ap > 0 else 0,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)
        f.write("\n")
    flat = np.array(sims)[~np.eye(len(PHRASES), dtype=bool)]
    print(f"similarities: min {flat.min():.3f} max {flat.max():.3f}, below 0.5: {np.mean(flat < 0.5):.2f}, "
          f"closest to 0.5: {np.min(np.abs(flat - 0.5)):.2e}; recall {tp}/{ap}")


if __name__ == "__main__":
    main()
