#!/usr/bin/env python3
"""PyTorch reference timings for the `bench` program of `omg-bench`
(`benches/src/bin/bench.rs`): the same stages at the same sizes.

Written for this project from the official model's architecture (no official code copied):

* ConvNeXt-L trunk (timm layout: stem 4×4 + LayerNorm2d, stages [3, 3, 27, 3] ×
  [192, 384, 768, 1536], blocks dwconv 7×7 → LN → Linear 4C → GELU → Linear → γ, residual);
* the MSDeformAttn pixel decoder (1×1 input convs + GroupNorm, 2-D sine positions + level
  embedding, 6 deformable encoder layers over 32² + 64² + 128² tokens with mmcv's
  pure-PyTorch sampling path (`F.grid_sample`, zeros padding, align_corners=False), FFN
  256→1024→256, post-norm; the stride-4 FPN step and the mask-feature conv);
* the masked-attention mask decoder (300 queries, 9 layers cross → self → FFN 2048,
  post-norm; after every stage the mask head, the open-vocabulary class head over
  133 classes × 17 prototypes and the next level's attention mask);
* an InternLM2-shaped decoder (RMSNorm, fused GQA `wqkv`, rotate-half RoPE θ = 1e6,
  SwiGLU, untied head) with a KV cache: prefill of a prompt, then greedy decoding.

Random weights (any values do for timing), f32, eager mode, batch 1. Prints one line per
stage and, with `--json`, writes the figures in the format `benches/compare.py` reads.

    python3 benches/reference/reference.py --size small --json ref.json
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------- sizes

SIZES = {
    # image side, ConvNeXt depths and dims, decoder numbers, LLM (hidden, layers, heads, kv, ffn, vocab)
    "tiny": dict(image=128, depths=[1, 1, 2, 1], dims=[16, 32, 64, 128], feat=64, pd_layers=2,
                 pd_ffn=128, queries=16, dec_layers=4, dec_ffn=128, classes=5, protos=2, clip=32,
                 llm=(64, 2, 4, 2, 176, 516)),
    "small": dict(image=1024, depths=[3, 3, 27, 3], dims=[192, 384, 768, 1536], feat=256,
                  pd_layers=6, pd_ffn=1024, queries=300, dec_layers=9, dec_ffn=2048, classes=133,
                  protos=17, clip=768, llm=(1024, 24, 8, 2, 3584, 92544)),
    "7b": dict(image=1024, depths=[3, 3, 27, 3], dims=[192, 384, 768, 1536], feat=256,
               pd_layers=6, pd_ffn=1024, queries=300, dec_layers=9, dec_ffn=2048, classes=133,
               protos=17, clip=768, llm=(4096, 32, 32, 8, 14336, 92544)),
}

# ----------------------------------------------------------------------------- ConvNeXt


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels at each pixel of an NCHW map."""

    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.fc1 = nn.Linear(c, 4 * c)
        self.fc2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), 1e-6))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self, depths, dims):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=1e-6))
        self.stages = nn.ModuleList()
        for i, (d, c) in enumerate(zip(depths, dims)):
            down = nn.Identity() if i == 0 else nn.Sequential(
                LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], c, 2, stride=2))
            self.stages.append(nn.Sequential(down, *[ConvNeXtBlock(c) for _ in range(d)]))

    def forward(self, x):
        x = self.stem(x)
        out = []
        for s in self.stages:
            x = s(x)
            out.append(x)
        return out

# ----------------------------------------------------------------------------- positions


def pe_interleaved(v, feats):
    """`pe(v)[k] = sin(v/dim_t[k])` for even k, `cos` for odd k; v: (...,) → (..., feats)."""
    k = torch.arange(feats, dtype=torch.float32)
    dim_t = 10000 ** (2 * torch.div(k, 2, rounding_mode="floor") / feats)
    x = v[..., None] / dim_t
    return torch.stack((x[..., 0::2].sin(), x[..., 1::2].cos()), dim=-1).flatten(-2)


def sine_2d(h, w, feats):
    """(2·feats, h, w): y part first, positions (i+1)/(h+ε)·2π."""
    eps, scale = 1e-6, 2 * math.pi
    y = (torch.arange(h, dtype=torch.float32) + 1) / (h + eps) * scale
    x = (torch.arange(w, dtype=torch.float32) + 1) / (w + eps) * scale
    py = pe_interleaved(y, feats)[:, None, :].expand(h, w, feats)
    px = pe_interleaved(x, feats)[None, :, :].expand(h, w, feats)
    return torch.cat((py, px), dim=-1).permute(2, 0, 1)


def sine_3d_single_frame(h, w, feats):
    """The 2-D sine plus the constant z part of one frame."""
    z = pe_interleaved(torch.tensor([1 / (1 + 1e-6) * 2 * math.pi]), 2 * feats)[0]
    return sine_2d(h, w, feats) + z[:, None, None]

# ----------------------------------------------------------------------------- pixel decoder


def ms_deform_attn(value, shapes, locations, weights):
    """mmcv's pure-PyTorch multi-scale deformable attention.

    value (B, ΣHW, heads, dh); locations (B, Nq, heads, L, P, 2) in [0, 1];
    weights (B, Nq, heads, L, P) → (B, Nq, heads·dh).
    """
    b, _, heads, dh = value.shape
    _, nq, _, levels, points, _ = locations.shape
    values = value.split([h * w for h, w in shapes], dim=1)
    grids = 2 * locations - 1
    samples = []
    for lvl, (h, w) in enumerate(shapes):
        v = values[lvl].flatten(2).transpose(1, 2).reshape(b * heads, dh, h, w)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        samples.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    attn = weights.transpose(1, 2).reshape(b * heads, 1, nq, levels * points)
    out = (torch.stack(samples, dim=-2).flatten(-2) * attn).sum(-1)
    return out.view(b, heads * dh, nq).transpose(1, 2)


class DeformEncoderLayer(nn.Module):
    def __init__(self, c, ffn, heads=8, levels=3, points=4):
        super().__init__()
        self.heads, self.levels, self.points = heads, levels, points
        self.sampling_offsets = nn.Linear(c, heads * levels * points * 2)
        self.attention_weights = nn.Linear(c, heads * levels * points)
        self.value_proj = nn.Linear(c, c)
        self.output_proj = nn.Linear(c, c)
        self.norm1 = nn.LayerNorm(c)
        self.ffn1 = nn.Linear(c, ffn)
        self.ffn2 = nn.Linear(ffn, c)
        self.norm2 = nn.LayerNorm(c)

    def forward(self, x, pos, ref, shapes):
        b, n, c = x.shape
        h, lv, p = self.heads, self.levels, self.points
        q = x + pos
        value = self.value_proj(x).view(b, n, h, c // h)
        off = self.sampling_offsets(q).view(b, n, h, lv, p, 2)
        w = self.attention_weights(q).view(b, n, h, lv * p).softmax(-1).view(b, n, h, lv, p)
        norm = torch.tensor([[wd, ht] for ht, wd in shapes], dtype=torch.float32)
        loc = ref[:, :, None, None, None, :] + off / norm[None, None, None, :, None, :]
        x = self.norm1(x + self.output_proj(ms_deform_attn(value, shapes, loc, w)))
        return self.norm2(x + self.ffn2(F.relu(self.ffn1(x))))


class PixelDecoder(nn.Module):
    def __init__(self, in_dims, c, layers, ffn):
        super().__init__()
        # Encoder levels 0, 1, 2 read backbone levels 3, 2, 1 (coarse to fine).
        self.input_convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_dims[3 - i], c, 1), nn.GroupNorm(32, c)) for i in range(3))
        self.level_encoding = nn.Embedding(3, c)
        self.layers = nn.ModuleList(DeformEncoderLayer(c, ffn) for _ in range(layers))
        self.lateral = nn.Sequential(nn.Conv2d(in_dims[0], c, 1, bias=False), nn.GroupNorm(32, c))
        self.output = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.GroupNorm(32, c),
                                    nn.ReLU())
        self.mask_feature = nn.Conv2d(c, c, 1)
        self.c = c

    def forward(self, feats):
        c = self.c
        maps, pos, refs, shapes = [], [], [], []
        for lvl in range(3):
            m = self.input_convs[lvl](feats[3 - lvl])
            b, _, h, w = m.shape
            shapes.append((h, w))
            maps.append(m.flatten(2).transpose(1, 2))
            pos.append((sine_2d(h, w, c // 2) + self.level_encoding.weight[lvl][:, None, None])
                       .flatten(1).transpose(0, 1)[None])
            ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w,
                                    indexing="ij")
            refs.append(torch.stack((xs, ys), -1).reshape(1, h * w, 2))
        x, p, r = torch.cat(maps, 1), torch.cat(pos, 1), torch.cat(refs, 1)
        for layer in self.layers:
            x = layer(x, p, r, shapes)
        memory = [t.transpose(1, 2).reshape(x.shape[0], c, h, w)
                  for t, (h, w) in zip(x.split([h * w for h, w in shapes], 1), shapes)]
        y = self.lateral(feats[0])
        y = y + F.interpolate(memory[2], size=y.shape[-2:], mode="bilinear", align_corners=False)
        return self.mask_feature(self.output(y)), memory

# ----------------------------------------------------------------------------- mask decoder


def mlp3(c_in, c_hidden, c_out):
    return nn.Sequential(nn.Linear(c_in, c_hidden), nn.ReLU(), nn.Linear(c_hidden, c_hidden),
                         nn.ReLU(), nn.Linear(c_hidden, c_out))


class DecoderLayer(nn.Module):
    """Cross-attention first, then self-attention and the FFN, each followed by a LayerNorm."""

    def __init__(self, c, heads, ffn):
        super().__init__()
        self.cross = nn.MultiheadAttention(c, heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(c, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(c, ffn), nn.ReLU(), nn.Linear(ffn, c))
        self.norms = nn.ModuleList(nn.LayerNorm(c) for _ in range(3))
        self.heads = heads

    def forward(self, q, qp, k, kp, mask):
        m = mask.repeat_interleave(self.heads, dim=0)
        q = self.norms[0](q + self.cross(q + qp, k + kp, k, attn_mask=m, need_weights=False)[0])
        s = q + qp
        q = self.norms[1](q + self.self_attn(s, s, q, need_weights=False)[0])
        return self.norms[2](q + self.ffn(q))


class MaskDecoder(nn.Module):
    def __init__(self, c, queries, layers, heads, ffn, classes, protos, clip):
        super().__init__()
        self.query_feat = nn.Embedding(queries, c)
        self.query_embed = nn.Embedding(queries, c)
        self.level_embed = nn.Embedding(3, c)
        self.layers = nn.ModuleList(DecoderLayer(c, heads, ffn) for _ in range(layers))
        self.post_norm = nn.LayerNorm(c)
        self.mask_embed = mlp3(c, c, c)
        self.iou_embed = mlp3(c, c, 1)
        self.cls_proj = mlp3(c, c, clip)
        self.pool_norm = nn.LayerNorm(c)
        self.pool_proj = nn.Linear(c, c)
        t = F.normalize(torch.randn(classes, protos, clip), dim=-1)
        self.register_buffer("class_embed", torch.cat((t, torch.zeros(1, protos, clip))))
        self.c = c

    def head(self, q, mask_feat, next_size):
        d = self.post_norm(q)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(d), mask_feat)
        binary = (masks > 0).flatten(2).float()
        pooled = binary @ mask_feat.flatten(2).transpose(1, 2) / (binary.sum(-1, keepdim=True) + 1e-8)
        e = F.normalize(self.cls_proj(self.pool_proj(self.pool_norm(pooled)) + d), dim=-1)
        cls = 100.0 * torch.einsum("bqd,kpd->bqkp", e, self.class_embed).amax(-1)
        self.iou_embed(d)
        a = F.interpolate(masks, size=next_size, mode="bilinear", align_corners=False)
        attn = (a.sigmoid() < 0.5).flatten(2)
        return cls, masks, attn

    def forward(self, mask_feat, memory):
        b = mask_feat.shape[0]
        keys, key_pos, sizes = [], [], []
        for lvl, m in enumerate(memory):
            _, _, h, w = m.shape
            sizes.append((h, w))
            keys.append(m.flatten(2).transpose(1, 2) + self.level_embed.weight[lvl])
            key_pos.append(sine_3d_single_frame(h, w, self.c // 2).flatten(1).transpose(0, 1)[None]
                           .expand(b, -1, -1))
        q = self.query_feat.weight[None].expand(b, -1, -1)
        qp = self.query_embed.weight[None].expand(b, -1, -1)
        cls, masks, attn = self.head(q, mask_feat, sizes[0])
        for i, layer in enumerate(self.layers):
            lvl = i % 3
            attn = attn & ~attn.all(-1, keepdim=True)
            q = layer(q, qp, keys[lvl], key_pos[lvl], attn)
            cls, masks, attn = self.head(q, mask_feat, sizes[(i + 1) % 3])
        return cls, masks, q

# ----------------------------------------------------------------------------- InternLM2


class RMSNorm(nn.Module):
    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.eps = eps

    def forward(self, x):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(v + self.eps)).to(x.dtype)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Attention(nn.Module):
    def __init__(self, c, heads, kv):
        super().__init__()
        self.h, self.kv, self.d = heads, kv, c // heads
        self.wqkv = nn.Linear(c, (heads + 2 * kv) * self.d, bias=False)
        self.wo = nn.Linear(heads * self.d, c, bias=False)

    def forward(self, x, cos, sin, cache, pos):
        b, t, _ = x.shape
        g = self.h // self.kv
        qkv = self.wqkv(x).view(b, t, self.kv, g + 2, self.d)
        q = qkv[:, :, :, :g].reshape(b, t, self.h, self.d).transpose(1, 2)
        k = qkv[:, :, :, g].transpose(1, 2)
        v = qkv[:, :, :, g + 1].transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        cache_k, cache_v = cache
        cache_k[:, :, pos:pos + t] = k
        cache_v[:, :, pos:pos + t] = v
        k = cache_k[:, :, :pos + t].repeat_interleave(g, dim=1)
        v = cache_v[:, :, :pos + t].repeat_interleave(g, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d)
        if t > 1:
            causal = torch.ones(t, pos + t, dtype=torch.bool).tril(pos)
            scores = scores.masked_fill(~causal, float("-inf"))
        out = scores.float().softmax(-1).to(v.dtype) @ v
        return self.wo(out.transpose(1, 2).reshape(b, t, -1))


class InternLM2(nn.Module):
    def __init__(self, hidden, layers, heads, kv, ffn, vocab, theta=1e6):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList()
        for _ in range(layers):
            layer = nn.Module()
            layer.attention_norm = RMSNorm(hidden)
            layer.attention = Attention(hidden, heads, kv)
            layer.ffn_norm = RMSNorm(hidden)
            layer.w1 = nn.Linear(hidden, ffn, bias=False)
            layer.w3 = nn.Linear(hidden, ffn, bias=False)
            layer.w2 = nn.Linear(ffn, hidden, bias=False)
            self.layers.append(layer)
        self.norm = RMSNorm(hidden)
        self.output = nn.Linear(hidden, vocab, bias=False)
        d = hidden // heads
        self.inv_freq = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
        self.kv, self.d = kv, d

    def new_cache(self, capacity):
        dt = self.output.weight.dtype
        return [(torch.zeros(1, self.kv, capacity, self.d, dtype=dt),
                 torch.zeros(1, self.kv, capacity, self.d, dtype=dt))
                for _ in self.layers]

    def forward(self, ids, cache, pos):
        x = self.tok_embeddings(ids)
        t = ids.shape[1]
        freqs = torch.outer(torch.arange(pos, pos + t, dtype=torch.float32), self.inv_freq)
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        for layer, c in zip(self.layers, cache):
            x = x + layer.attention(layer.attention_norm(x), cos, sin, c, pos)
            h = layer.ffn_norm(x)
            x = x + layer.w2(F.silu(layer.w1(h)) * layer.w3(h))
        return self.output(self.norm(x[:, -1:]))

# ----------------------------------------------------------------------------- timing


def sync(args):
    """Waits for the device (GPU timings are of finished work)."""
    if args.device == "cuda":
        torch.cuda.synchronize()


def timed(args, fn):
    """Runs fn warmup + runs times; returns (milliseconds of the timed runs, last result)."""
    ms, out = [], None
    for i in range(args.warmup + max(args.runs, 1)):
        sync(args)
        t = time.perf_counter()
        out = fn()
        sync(args)
        if i >= args.warmup:
            ms.append((time.perf_counter() - t) * 1e3)
    return ms, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--only", default="encoder,llm", help="comma-separated: encoder, llm")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"],
                    help="bf16: the LLM's weights in bf16, the encoder under bf16 autocast")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_default_device(args.device)
    bf16 = args.dtype == "bf16"
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    s = SIZES[args.size]
    parts = set(args.only.split(","))
    stages = {}

    def report(name, ms, note):
        v = sorted(ms)
        print(f"{name:24} {v[len(v) // 2]:10.1f} ms  (min {v[0]:.1f}, max {v[-1]:.1f}; {note})",
              flush=True)
        stages[name] = dict(median_ms=v[len(v) // 2], min_ms=v[0], max_ms=v[-1], runs=ms, note=note)

    print(f"PyTorch {torch.__version__} reference: size {args.size}, {torch.get_num_threads()} threads, "
          f"{args.dtype} eager on {args.device}, {args.warmup} warm-up + {args.runs} timed runs per stage", flush=True)
    with torch.inference_mode():
        if "encoder" in parts:
            with torch.autocast(args.device, dtype=torch.bfloat16, enabled=bf16):
                side = s["image"]
                backbone = ConvNeXt(s["depths"], s["dims"]).eval()
                pixel_decoder = PixelDecoder(s["dims"], s["feat"], s["pd_layers"], s["pd_ffn"]).eval()
                decoder = MaskDecoder(s["feat"], s["queries"], s["dec_layers"], 8, s["dec_ffn"],
                                      s["classes"], s["protos"], s["clip"]).eval()
                image = torch.full((1, 3, side, side), 0.1)
                ms, feats = timed(args, lambda: backbone(image))
                report("backbone", ms, "ConvNeXt")
                ms, (mask_feat, memory) = timed(args, lambda: pixel_decoder(feats))
                report("pixel_decoder", ms, "MSDeformAttn")
                ms, _ = timed(args, lambda: decoder(mask_feat, memory))
                report("mask_decoder", ms, f"{s['queries']} queries, {s['dec_layers']} layers, class head")
        if "llm" in parts:
            hidden, layers, heads, kv, ffn, vocab = s["llm"]
            model = InternLM2(hidden, layers, heads, kv, ffn, vocab).eval()
            if bf16:
                model = model.to(torch.bfloat16)
            params = sum(p.numel() for p in model.parameters())
            prompt = torch.tensor([[i * 7919 % vocab for i in range(args.prompt_len)]])
            prefill, decode = [], []
            for i in range(args.warmup + max(args.runs, 1)):
                cache = model.new_cache(args.prompt_len + args.new_tokens + 1)
                sync(args)
                t = time.perf_counter()
                logits = model(prompt, cache, 0)
                sync(args)
                t_prefill = time.perf_counter() - t
                token = logits.argmax(-1)
                sync(args)
                t = time.perf_counter()
                for k in range(args.new_tokens):
                    logits = model(token, cache, args.prompt_len + k)
                    token = logits.argmax(-1)
                sync(args)
                t_decode = (time.perf_counter() - t) / args.new_tokens
                if i >= args.warmup:
                    prefill.append(t_prefill * 1e3)
                    decode.append(t_decode * 1e3)
            p = sorted(prefill)[len(prefill) // 2]
            d = sorted(decode)[len(decode) // 2]
            report("llm_prefill", prefill,
                   f"{args.prompt_len} tokens: {args.prompt_len / p * 1e3:.1f} tokens/s")
            report("llm_decode_per_token", decode, f"{args.new_tokens} tokens: {1e3 / d:.2f} tokens/s")
            print(f"LLM {params / 1e9:.3f} B parameters", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of the process: {rss:.0f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(implementation="pytorch", torch=torch.__version__, device=args.device,
                           dtype=args.dtype,
                           threads=torch.get_num_threads(), size=args.size,
                           prompt_len=args.prompt_len, new_tokens=args.new_tokens, stages=stages,
                           extra=dict(peak_rss_mib=rss)), f)


if __name__ == "__main__":
    main()
