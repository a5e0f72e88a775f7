"""Writes the tiny OMG-LLaVA LLM bundle used by the README's main command and tests.

What it writes (into `examples/assets/tiny/`, about 1 MB):

* `internlm2/` — a HF InternLM2 model directory as `internlm/internlm2-chat-7b` ships one:
  `config.json`, `model.safetensors` (the `hf.*` base weights of the
  `checkpoint_format` parity fixture, official key names, float32), and the tiny
  sentencepiece tokenizer (`tokenizer.model`, `tokenizer.json`, `tokenizer_config.json`,
  `special_tokens_map.json`) of the `tokenizer_tiny` fixture.
* `omg_llava_tiny.pth` — the released OMG-LLaVA `.pth` layout (the `pth.*` tensors of the
  same fixture: PEFT LoRA `lora_A`/`lora_B` on wqkv, wo, w1, w2, w3 and `output`, the
  resized `tok_embeddings` / `output.base_layer`, and the projectors), saved with
  `torch.save` as a flat state dict, exactly like `omg_llava_7b_finetune_8gpus.pth`.
* `adapter_config.json` — the LoRA settings (r = 4, lora_alpha = 2: scale 0.5 like the
  official r = 512, alpha = 256).

All weights are random (fixed seeds, made by the official PyTorch code); the bundle
proves the loading path, not language ability.

Run once from the repository root, with the parity fixtures in ../shared/parity:

    pip install torch==2.5.1 safetensors numpy
    python3 examples/assets/make_tiny_bundle.py [PARITY_DIR]
"""

import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
PARITY = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "parity")
OUT = os.path.join(HERE, "tiny")


def main():
    fixture = load_file(os.path.join(PARITY, "checkpoint_format.safetensors"))
    sidecar = json.load(open(os.path.join(PARITY, "checkpoint_format.json")))
    llm_cfg = json.load(open(os.path.join(PARITY, "llm.json")))["config"]
    hparams = json.load(open(os.path.join(PARITY, "e2e.json")))["tiny_hparams"]

    llm_dir = os.path.join(OUT, "internlm2")
    os.makedirs(llm_dir, exist_ok=True)

    hf = {k[len("hf."):]: v.contiguous() for k, v in fixture.items() if k.startswith("hf.")}
    save_file(hf, os.path.join(llm_dir, "model.safetensors"), metadata={"format": "pt"})

    config = dict(llm_cfg)
    config.update(
        hidden_size=hparams["llm_hidden"],
        num_hidden_layers=hparams["llm_layers"],
        num_attention_heads=hparams["llm_heads"],
        num_key_value_heads=hparams["llm_kv_heads"],
        intermediate_size=hparams["llm_ffn"],
        vocab_size=hf["model.tok_embeddings.weight"].shape[0],
    )
    config.pop("attn_implementation", None)
    with open(os.path.join(llm_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)

    tok_src = os.path.join(PARITY, "tokenizer_tiny")
    for name in ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        shutil.copyfile(os.path.join(tok_src, name), os.path.join(llm_dir, name))

    release = {k[len("pth."):]: v.clone() for k, v in fixture.items() if k.startswith("pth.")}
    torch.save(release, os.path.join(OUT, "omg_llava_tiny.pth"))

    lora = sidecar["lora_config"]
    with open(os.path.join(OUT, "adapter_config.json"), "w") as f:
        json.dump({"r": lora["r"], "lora_alpha": lora["lora_alpha"], "peft_type": "LORA"}, f, indent=2)

    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {os.path.normpath(OUT)} ({total} bytes)")


if __name__ == "__main__":
    main()
