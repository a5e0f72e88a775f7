#!/usr/bin/env python3
"""Writes a full-size OMG-LLaVA-7B bundle with random weights, in the official file
layouts, for measuring loading at the real size (`load_bench`):

    python3 benches/write_full_bundle.py --out DIR [--seed 0]

* `DIR/internlm2-chat-7b/`: the HF InternLM2-chat-7B directory: `config.json`, eight
  bf16 safetensors shards with `model.safetensors.index.json`, and the demo bundle's
  tokenizer files (the real tokenizer is not needed to measure loading; its ids fit
  the vocabulary).
* `DIR/omg_llava_7b_finetune_8gpus.pth`: the released checkpoint's layout: a flat
  `torch.save` dict of f32 tensors: the resized embedding table and head, a rank-512
  LoRA pair on every linear of the LLM and the head (PEFT names), the projectors.
* `DIR/omg_seg_convl.pth`: `{"meta": …, "state_dict": …}` with the ConvNeXt-L
  backbone (`backbone.*`) and the OMG-Seg head (`panoptic_head.*`), f32.
* `DIR/convnext_large_d_320_CocoPanopticOVDataset.pth`: one `(133, 17, 768)` tensor
  of unit-norm class embeddings.

The names and shapes come from `cargo run --release -p omg-bench --bin bundle_manifest`
(the loaders' own official names). About 25 GB on disk; the files are written with
torch and safetensors (`benches/reference/.venv`, made from
`benches/reference/requirements.txt` on the first run).
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, "benches", "reference")
VENV_PY = os.path.join(REF, ".venv", "bin", "python")
TINY_LLM = os.path.join(ROOT, "omg-demo", "assets", "tiny", "internlm2")
TOKENIZER_FILES = ["tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json"]
SHARDS = 8

# The fields of internlm2-chat-7b's config.json that the manifest's config lacks.
HF_CONFIG_FIELDS = {
    "architectures": ["InternLM2ForCausalLM"],
    "auto_map": {
        "AutoConfig": "configuration_internlm2.InternLM2Config",
        "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
        "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
    },
    "attn_implementation": "eager",
    "initializer_range": 0.02,
    "model_type": "internlm2",
    "torch_dtype": "bfloat16",
    "transformers_version": "4.41.0",
    "use_cache": True,
}


def in_venv():
    """Re-runs this script with the reference venv's Python (torch, safetensors)."""
    if os.path.realpath(sys.prefix) == os.path.realpath(os.path.join(REF, ".venv")):
        return
    if not os.path.exists(VENV_PY):
        print(f"creating {os.path.dirname(os.path.dirname(VENV_PY))} (torch from PyPI, a few GB) …",
              flush=True)
        subprocess.run([sys.executable, "-m", "venv", os.path.join(REF, ".venv")], check=True)
        subprocess.run([VENV_PY, "-m", "pip", "install", "-q", "-r",
                        os.path.join(REF, "requirements.txt")], check=True)
    sys.exit(subprocess.run([VENV_PY, os.path.abspath(__file__), *sys.argv[1:]]).returncode)


def manifest():
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "omg-bench", "--bin", "bundle_manifest"],
        cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the bundle directory to write")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    in_venv()

    import torch
    from safetensors.torch import save_file

    m = manifest()
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    def random(name, shape, dtype=torch.float32):
        """A tensor of `shape`: norms' weights 1, everything else N(0, 0.02²)."""
        leaf = name.rsplit(".", 2)
        if len(shape) == 1 and ("norm" in name or leaf[-2] in ("gn", "ln", "norm")) \
                and name.endswith("weight"):
            return torch.ones(shape, dtype=dtype)
        return (torch.randn(shape) * 0.02).to(dtype)

    # InternLM2-chat-7b: bf16 shards of about equal size, in the official key order.
    llm_dir = os.path.join(args.out, "internlm2-chat-7b")
    os.makedirs(llm_dir, exist_ok=True)
    config = dict(m["internlm2"]["config"], **HF_CONFIG_FIELDS)
    with open(os.path.join(llm_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(TINY_LLM, name), os.path.join(llm_dir, name))
    tensors = m["internlm2"]["tensors"]
    total = sum(math.prod(s) * 2 for _, s in tensors)
    per_shard = total / SHARDS
    weight_map, shard, size, index = {}, {}, 0, 1

    def flush(shard, index):
        file = f"model-{index:05d}-of-{SHARDS:05d}.safetensors"
        save_file(shard, os.path.join(llm_dir, file), metadata={"format": "pt"})
        for key in shard:
            weight_map[key] = file
        print(f"  {file}: {len(shard)} tensors", flush=True)

    for i, (name, shape) in enumerate(tensors):
        shard[name] = random(name, shape, torch.bfloat16)
        size += math.prod(shape) * 2
        last = i + 1 == len(tensors)
        if last or (size >= per_shard * index and index < SHARDS):
            flush(shard, index)
            shard = {}
            index += 1
    with open(os.path.join(llm_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)

    # The released OMG-LLaVA checkpoint: a flat dict of f32 tensors.
    release = {name: random(name, shape) for name, shape in m["omg_llava"]}
    torch.save(release, os.path.join(args.out, "omg_llava_7b_finetune_8gpus.pth"))
    del release
    print("  omg_llava_7b_finetune_8gpus.pth", flush=True)

    seg = {name: random(name, shape) for name, shape in m["omg_seg"]}
    torch.save({"meta": {"note": "random weights of the official shapes"}, "state_dict": seg},
               os.path.join(args.out, "omg_seg_convl.pth"))
    del seg
    print("  omg_seg_convl.pth", flush=True)

    classes = torch.randn(m["class_embedding"])
    classes = classes / classes.norm(dim=-1, keepdim=True)
    torch.save(classes, os.path.join(args.out, "convnext_large_d_320_CocoPanopticOVDataset.pth"))

    total = 0
    for dirpath, _, files in os.walk(args.out):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    print(f"wrote {args.out}: {total / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
