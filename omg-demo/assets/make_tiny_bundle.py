"""Writes the tiny OMG-LLaVA demo bundle that the `omg-demo` crate builds into programs
(the README's first command, the examples, the tests).

Usage (from the repository root):

    pip install torch==2.5.1 safetensors numpy
    python3 omg-demo/assets/make_tiny_bundle.py fixtures/parity

PARITY_DIR, the argument, is the folder of the parity fixtures: the repository's copy is
`fixtures/parity`. Without the argument the script reads a `shared/parity` folder beside
the checkout.

From what: the `e2e` parity fixture (`PARITY_DIR/e2e.safetensors` + `e2e.json`): every
weight of ONE tiny top-level `OMG_LLaVA` module (official PyTorch code, random float32
weights from a fixed seed) under its official `state_dict` name, plus the class-embedding
buffer `buf.visual_encoder.panoptic_head.cls_embed` (D, K+1, P) with the all-zero
background class last; and the tiny sentencepiece tokenizer `PARITY_DIR/tokenizer_tiny/`.
So vision, LLM and projectors all come from the same model.

What it writes: it first deletes everything in `omg-demo/assets/tiny/`, then writes the
official file layouts (about 4 MB in all, float32 throughout):

* `internlm2/` — a HF InternLM2 model directory as `internlm/internlm2-chat-7b` ships one:
  `config.json` (InternLM2 config, vocab_size 512 = the base tokenizer), `model.safetensors`
  (the `llm.*` weights without the `llm.` prefix; `tok_embeddings` / `output` cut to the
  first 512 rows, like the base model before OMG-LLaVA resized it) and the tokenizer files
  (`tokenizer.model`, `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`).
* `omg_llava_tiny.pth` — the released OMG-LLaVA `.pth` layout without LoRA
  (`released_pth_keys_note` of e2e.json): a flat dict saved with `torch.save` holding the
  resized 516-row `llm.model.tok_embeddings.weight` / `llm.output.weight` and every
  `projector.model.*` / `projector_text2vision.model.*` tensor.
* `omg_seg_tiny.pth` — an mmengine-style OMG-Seg checkpoint like `omg_seg_convl.pth`:
  `{"meta": {...}, "state_dict": {...}}` with the `visual_encoder.*` tensors, prefix removed
  (`backbone.*`, `panoptic_head.*`).
* `class_embed_tiny.pth` — like `convnext_large_d_320_CocoPanopticOVDataset.pth`: one
  (K, P, D) tensor, the buffer permuted (1, 2, 0) without the background class.
* `omg_llava_config.json` — the architecture numbers of the tiny model for the Rust builder.
* `README.md` — the file list with official counterparts, sizes and SHA-256.

All weights are random: the bundle proves the loading paths, not any ability. The output
is deterministic (same input → byte-identical files).
"""

import hashlib
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
PARITY = os.path.abspath(
    sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "parity")
)
OUT = os.path.join(HERE, "tiny")

BASE_VOCAB = 512  # tokenizer_tiny's sentencepiece vocabulary (the "base LLM" vocabulary)
TOKENIZER_FILES = ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
# Made-up names for the 3 "thing" then 2 "stuff" classes of the tiny model.
CLASS_NAMES = ["dog", "cat", "person", "grass", "sky"]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fresh(t):
    """A float32, contiguous tensor with its own storage (torch.save writes whole storages)."""
    assert t.dtype == torch.float32, t.dtype
    return t.detach().clone().contiguous()


def dump_compact(obj, indent=0):
    """JSON with objects indented and short lists (of numbers / strings) on one line."""
    pad = "  " * (indent + 1)
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k)}: {dump_compact(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(obj, list):
        return "[" + ", ".join(json.dumps(v) for v in obj) + "]"
    return json.dumps(obj)


def main():
    st_path = os.path.join(PARITY, "e2e.safetensors")
    sidecar = json.load(open(os.path.join(PARITY, "e2e.json")))
    digest = sha256(st_path)
    assert digest == sidecar["sha256"], f"{st_path}: sha256 {digest} != sidecar {sidecar['sha256']}"
    fixture = load_file(st_path)
    hp = sidecar["tiny_hparams"]
    # Official state_dict order (the sidecar lists the keys in module order).
    keys = list(sidecar["state_dict_keys"])
    assert set(keys) <= set(fixture), sorted(set(keys) - set(fixture))
    w = {k: fixture[k] for k in keys}

    def shape(k):
        return list(w[k].shape)

    # ---- consistency of the numbers we write with the weight shapes ----
    feat, h, vocab = hp["feat"], hp["llm_hidden"], hp["llm_vocab"]
    head_dim = h // hp["llm_heads"]
    assert shape("llm.model.tok_embeddings.weight") == [vocab, h]
    assert shape("llm.output.weight") == [vocab, h]
    assert shape("llm.model.layers.0.attention.wqkv.weight") == [(hp["llm_heads"] + 2 * hp["llm_kv_heads"]) * head_dim, h]
    assert shape("llm.model.layers.0.feed_forward.w1.weight") == [hp["llm_ffn"], h]
    assert not any(k.startswith(f"llm.model.layers.{hp['llm_layers']}.") for k in keys)
    assert vocab > BASE_VOCAB
    r = hp["pixel_shuffle_ratio"]
    shuffled = hp["backbone_dims"][-1] * r * r
    query_dim = 2 * feat  # [query_feat | query_pos]
    assert shape("projector.model.query_proj.weight") == [shuffled, query_dim]
    assert shape("projector.model.model.0.weight") == [h, shuffled]
    assert shape("projector.model.model_feat.0.weight") == [h, shuffled + hp["backbone_dims"][-1]]
    assert shape("projector_text2vision.model.0.weight") == [query_dim, h]
    assert shape("projector_text2vision.model.2.weight") == [query_dim, query_dim]
    assert shape("visual_encoder.panoptic_head.query_feat.weight") == [hp["num_queries"], feat]
    assert hp["num_things"] + hp["num_stuff"] == hp["num_classes"] == len(CLASS_NAMES)

    # ---- start from an empty directory ----
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    llm_dir = os.path.join(OUT, "internlm2")
    os.makedirs(llm_dir)

    # ---- 1. internlm2/: HF base model (base vocabulary) + tokenizer ----
    base = {}
    for k in keys:
        if not k.startswith("llm."):
            continue
        t = w[k]
        if k in ("llm.model.tok_embeddings.weight", "llm.output.weight"):
            t = t[:BASE_VOCAB]
        base[k[len("llm."):]] = fresh(t)
    save_file(base, os.path.join(llm_dir, "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["InternLM2ForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_internlm2.InternLM2Config",
            "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
            "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
        },
        "bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": h,
        "initializer_range": 0.02,
        "intermediate_size": hp["llm_ffn"],
        "max_position_embeddings": 32768,
        "model_type": "internlm2",
        "num_attention_heads": hp["llm_heads"],
        "num_hidden_layers": hp["llm_layers"],
        "num_key_value_heads": hp["llm_kv_heads"],
        "pad_token_id": 2,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.37.1",
        "use_cache": True,
        "vocab_size": BASE_VOCAB,
    }
    with open(os.path.join(llm_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    for name in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(PARITY, "tokenizer_tiny", name), os.path.join(llm_dir, name))

    # ---- 2. omg_llava_tiny.pth: released OMG-LLaVA layout, no LoRA ----
    release_keys = ["llm.model.tok_embeddings.weight", "llm.output.weight"] + [
        k for k in keys if k.startswith(("projector.model.", "projector_text2vision.model."))
    ]
    note_keys = sidecar["released_pth_keys_note"]
    assert all(k in note_keys for k in release_keys), "key not named in released_pth_keys_note"
    release = {k: fresh(w[k]) for k in release_keys}
    torch.save(release, os.path.join(OUT, "omg_llava_tiny.pth"))

    # ---- 3. omg_seg_tiny.pth: mmengine-style OMG-Seg checkpoint ----
    seg = {k[len("visual_encoder."):]: fresh(w[k]) for k in keys if k.startswith("visual_encoder.")}
    assert all(k.startswith(("backbone.", "panoptic_head.")) for k in seg)
    # Every fixture weight lands in one of the three checkpoints.
    missing = [k for k in keys if not (k in release or k[len("llm."):] in base or k[len("visual_encoder."):] in seg)]
    assert not missing, missing
    torch.save(
        {
            "meta": {
                "note": "tiny random-weight OMG-Seg visual encoder (OMGSegVisualEncoder: ConvNeXt backbone + "
                "panoptic head) from the e2e parity fixture, laid out like omg_seg_convl.pth; not a trained model",
                "source": "shared/parity/e2e.safetensors sha256 " + digest,
            },
            "state_dict": seg,
        },
        os.path.join(OUT, "omg_seg_tiny.pth"),
    )

    # ---- 4. class_embed_tiny.pth: (K, P, D) open-vocabulary class embeddings ----
    buf = fixture["buf.visual_encoder.panoptic_head.cls_embed"]
    d, k1, p = buf.shape
    assert (d, k1, p) == (hp["clip_embed_dim"], hp["num_classes"] + 1, hp["num_prototypes"]), buf.shape
    full = buf.permute(1, 2, 0)  # (K+1, P, D)
    assert torch.count_nonzero(full[-1]) == 0, "background class must be all zero and last"
    cls = fresh(full[:-1])
    norm = cls.norm(p=2, dim=-1)
    assert torch.allclose(norm, torch.ones_like(norm)), norm  # the check the official head does
    torch.save(cls, os.path.join(OUT, "class_embed_tiny.pth"))

    # ---- 5. omg_llava_config.json ----
    arch = {
        "image_size": hp["image"][-1],
        "backbone": {"depths": hp["backbone_depths"], "dims": hp["backbone_dims"]},
        "pixel_decoder": {
            "in_channels": hp["backbone_dims"],
            "feat_channels": feat,
            "num_layers": hp["pixdec_layers"],
            "num_heads": hp["heads"],
            "num_levels": hp["msda_levels"],
            "num_points": hp["msda_points"],
            "ffn_channels": hp["pixdec_ffn"],
        },
        "mask_decoder": {
            "feat_channels": feat,
            "num_queries": hp["num_queries"],
            "num_layers": hp["dec_layers"],
            "num_heads": hp["heads"],
            "ffn_channels": hp["dec_ffn"],
            "num_levels": hp["msda_levels"],
            "clip_dim": hp["clip_embed_dim"],
        },
        "projector": {
            "query_channels": feat,
            "feat_channels": shuffled,
            "llm_hidden_size": h,
            "depth": hp["projector_depth"],
            "bias": True,
        },
        "text2vision": {"llm_hidden_size": h, "query_dim": query_dim, "depth": hp["projector_depth"], "bias": True},
        "panoptic": {"num_things": hp["num_things"], "num_stuff": hp["num_stuff"]},
        "class_names": CLASS_NAMES,
        "note": "tiny random-weight OMG-LLaVA made from the e2e parity fixture; not a trained model. "
        "class_names are made-up names for the 3 thing + 2 stuff classes of the tiny class embedding",
    }
    assert hp["image"][-1] == hp["image"][-2]
    with open(os.path.join(OUT, "omg_llava_config.json"), "w") as f:
        f.write(dump_compact(arch) + "\n")

    # ---- 6. README.md ----
    write_readme(digest)

    for dirpath, _, files in sorted(os.walk(OUT)):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            print(f"{os.path.getsize(path):>9}  {os.path.relpath(path, HERE)}")
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {os.path.relpath(OUT, os.getcwd())} ({total} bytes)")


COUNTERPARTS = [
    ("internlm2/config.json", "`config.json` of `internlm/internlm2-chat-7b` (vocab_size 512 here, 92544 there)"),
    ("internlm2/model.safetensors", "the base LLM weights of `internlm/internlm2-chat-7b` (sharded safetensors there)"),
    ("internlm2/tokenizer.model", "`tokenizer.model` of `internlm/internlm2-chat-7b`"),
    ("internlm2/tokenizer.json", "fast-tokenizer file (made by the official `InternLM2Converter`)"),
    ("internlm2/tokenizer_config.json", "`tokenizer_config.json` of `internlm/internlm2-chat-7b`"),
    ("internlm2/special_tokens_map.json", "`special_tokens_map.json` of `internlm/internlm2-chat-7b`"),
    ("omg_llava_tiny.pth", "released OMG-LLaVA checkpoint `omg_llava_7b_finetune_8gpus.pth` (layout without LoRA)"),
    ("omg_seg_tiny.pth", "OMG-Seg checkpoint `omg_seg_convl.pth`"),
    ("class_embed_tiny.pth", "class embeddings `convnext_large_d_320_CocoPanopticOVDataset.pth`"),
    ("omg_llava_config.json", "the numbers of the OMG-LLaVA config `configs/finetune/omg_llava_7b_finetune_8gpus.py` (missing fields = 7B defaults)"),
]


def write_readme(digest):
    rows = []
    for rel, official in COUNTERPARTS:
        path = os.path.join(OUT, rel)
        rows.append(f"| `{rel}` | {official} | {os.path.getsize(path):,} | `{sha256(path)[:16]}…` |")
    total = sum(os.path.getsize(os.path.join(OUT, rel)) for rel, _ in COUNTERPARTS)
    text = f"""# Tiny OMG-LLaVA demo bundle

A complete, coherent OMG-LLaVA checkpoint set — LLM, visual encoder, projectors and class
embeddings of ONE tiny model — in the official file layouts. **Random weights, not a trained
model**: it exercises the loaders and the pipeline, its text and masks are meaningless.

Made by `omg-demo/assets/make_tiny_bundle.py` from the `e2e` parity fixture
(`fixtures/parity/e2e.safetensors`, sha256 `{digest}`: every weight of the tiny top-level
`OMG_LLaVA` module, official PyTorch code, under its official `state_dict` name) and the
`tokenizer_tiny` fixture. All tensors are float32 and equal the fixture's exactly.

| file | official counterpart | bytes | sha256 |
|---|---|---:|---|
{chr(10).join(rows)}

Total {total:,} bytes (README excluded).

## Contents

- `internlm2/` — HF InternLM2 directory of the *base* LLM: 2 layers, hidden 64, 4 heads,
  2 KV heads, FFN 176, θ = 1e6, base vocabulary 512 (`tok_embeddings` / `output` are the
  first 512 rows of the fixture's tables).
- `omg_llava_tiny.pth` — flat state dict (`torch.save`) as the official
  `OMG_LLaVA.state_dict()` override saves it, without LoRA: `llm.model.tok_embeddings.weight`
  and `llm.output.weight` resized to 516 rows (512 + `[SEG]`, `<p>`, `</p>`, `<region>`;
  `<mark>` = 516 lies outside the table), which replace the base tables when loaded, and all
  `projector.model.*` / `projector_text2vision.model.*` tensors.
- `omg_seg_tiny.pth` — `{{"meta": {{...}}, "state_dict": {{...}}}}` with the visual encoder's
  `backbone.*` (ConvNeXt depths [1,1,2,1], dims [16,32,64,128]) and `panoptic_head.*`
  (pixel decoder + Mask2Former decoder, width 64, 16 queries) tensors.
- `class_embed_tiny.pth` — one tensor (K = 5 classes, P = 2 prototypes, D = 32), unit-norm
  rows; the head appends the zero background class itself.
- `omg_llava_config.json` — the tiny architecture numbers for the Rust builder; the class
  names (`dog`, `cat`, `person` = things, `grass`, `sky` = stuff) are made up.

## Regenerate

From the repository root, with the repository's copy of the parity fixtures:

```sh
pip install torch==2.5.1 safetensors numpy
python3 omg-demo/assets/make_tiny_bundle.py fixtures/parity
```

The script deletes this folder's contents first; its output is byte-identical on every run.
"""
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
