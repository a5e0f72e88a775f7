#!/usr/bin/env python3
"""Write the Pillow / transformers references for `omg-encoder/tests/integration/preprocess.rs`.

The Rust port of the OMG-LLaVA image preprocessing (`omg_encoder::preprocess`) must reproduce the
official Python pipeline exactly:

    image = Image.open(path).convert("RGB")
    image = expand2square(image, tuple(int(x * 255) for x in image_processor.image_mean))
    pixel_values = image_processor.preprocess(image, return_tensors="pt")["pixel_values"][0]

with `image_processor = CLIPImageProcessor(size=1024, crop_size=1024, resample=3, ...)`.
This script runs that pipeline with real Pillow and transformers 4.36.2 and stores, in `preprocess/`:

- `synth_*.png`: small synthetic RGB inputs (seeded numpy, so the script is reproducible). The real
  photo input is `omg-demo/assets/chelsea.png` (scikit-image's CC0 sample, see omg-demo/assets/README.md).
- `<name>_sq<T>.png`: `expand2square(...).resize((T, T), Image.BICUBIC)`, the uint8 image that
  `CLIPImageProcessor` normalises (the script checks that transformers' own resize gives the same bytes).
- `<name>_resize_<W>x<H>.png`: `Image.resize((W, H), Image.BICUBIC)` of the non-square input as Pillow <= 12
  computes it (horizontal pass first), for the general (non-square, up/down, one-axis) resampler; when run
  with Pillow >= 13, also `..._pillow13.png` where Pillow 13's pass order gives a different result.
- `mode_*.png` + `mode_*_rgb.png`: inputs in other pixel formats (L, LA, RGBA, P, P+tRNS, 16-bit RGB,
  16-bit grey) and what `Image.open(...).convert("RGB")` gives for them.
- `clip_pixel_values.safetensors`: float32 `[3, T, T]` outputs of `CLIPImageProcessor.preprocess`,
  key `<name>_<T>`.
- `reference.json`: the library versions, the cases and their sizes.

Usage (from anywhere; paths are relative to this file):

    python -m venv /tmp/pyenv && /tmp/pyenv/bin/pip install pillow transformers==4.36.2 safetensors numpy
    /tmp/pyenv/bin/python omg-encoder/tests/data/make_pil_reference.py

The committed outputs were made with Pillow 13.0.0, transformers 4.36.2, numpy 2.x; every uint8 reference
(squares, `_resize_` files, modes) was also checked to be identical under Pillow 10.1.0. Torch is not needed (`return_tensors="np"` gives the same float32 array that "pt" wraps).
"""

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import PIL
import transformers
from PIL import Image
from safetensors.numpy import save_file
from transformers import CLIPImageProcessor

HERE = Path(__file__).resolve().parent
OUT = HERE / "preprocess"
REPO = HERE.parents[2]
PHOTO = REPO / "examples" / "assets" / "chelsea.png"

MEAN = [0.4814, 0.4578, 0.4082]
STD = [0.2686, 0.2613, 0.2757]


def processor(target: int) -> CLIPImageProcessor:
    """The OMG-LLaVA cfg `image_processor`, with 1024 replaced by `target`."""
    return CLIPImageProcessor(
        do_resize=True,
        size=target,
        resample=3,
        do_center_crop=True,
        crop_size=target,
        do_rescale=True,
        do_normalize=True,
        image_mean=MEAN,
        image_std=STD,
        do_convert_rgb=True,
    )


def expand2square(pil_img, background_color):
    """Verbatim copy of xtuner `xtuner/dataset/utils.py::expand2square`."""
    width, height = pil_img.size
    if width == height:
        return pil_img
    elif width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    else:
        result = Image.new(pil_img.mode, (height, height), background_color)
        result.paste(pil_img, ((height - width) // 2, 0))
        return result


def save_png(img: Image.Image, path: Path) -> None:
    img.save(path, optimize=True)


def raw_png(width, height, color_type, bit_depth, rows: np.ndarray) -> bytes:
    """A minimal PNG writer (filter 0), for 16-bit inputs that Pillow cannot write itself."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def synthetic_inputs() -> dict:
    """Small RGB images: smooth gradients + noise + hard 0/255 edges (to exercise clipping)."""
    rng = np.random.default_rng(20240607)
    out = {}

    # Tall, H - W = 64 (even).
    w, h = 37, 101
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / (w - 1), yy * 255 / (h - 1), (xx + yy) % 32 * 8], -1)
    noise = rng.integers(-40, 41, size=(h, w, 3))
    out["synth_tall_37x101"] = np.clip(base + noise, 0, 255).astype(np.uint8)

    # Wide, W - H = 139 (odd), black/white checker blocks + noise: strong overshoot, clipping.
    w, h = 203, 64
    yy, xx = np.mgrid[0:h, 0:w]
    checker = (((xx // 5) + (yy // 7)) % 2 * 255)[..., None].repeat(3, -1)
    noise = rng.integers(0, 256, size=(h, w, 3))
    img = np.where(rng.random((h, w, 1)) < 0.15, noise, checker)
    out["synth_wide_203x64"] = img.astype(np.uint8)

    # Small (upscaling to any target), W - H = 15 (odd).
    w, h = 45, 30
    out["synth_small_45x30"] = rng.integers(0, 256, size=(h, w, 3)).astype(np.uint8)

    # Already square: at target 64 the resize is a no-op (Pillow copies), at 128 it upscales.
    w = h = 64
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / 3.0) * 127 + 128, np.cos(yy / 5.0) * 127 + 128, (xx * yy) % 256], -1)
    out["synth_square_64x64"] = np.clip(base, 0, 255).astype(np.uint8)
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {
        "pillow": PIL.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "pad_color": None,
        "square_cases": [],
        "resize_cases": [],
        "mode_cases": [],
    }
    tensors = {}

    # The official pad colour comes from the processor's mean.
    pad = tuple(int(x * 255) for x in processor(64).image_mean)
    assert pad == (122, 116, 104), pad
    meta["pad_color"] = list(pad)

    inputs = {}
    for name, arr in synthetic_inputs().items():
        path = OUT / f"{name}.png"
        save_png(Image.fromarray(arr, "RGB"), path)
        inputs[name] = (path, path.relative_to(HERE).as_posix())
    inputs["chelsea"] = (PHOTO, "../../../omg-demo/assets/chelsea.png")

    # name -> (targets with a uint8 reference, targets with a float reference)
    plan = {
        "chelsea": ([1024, 128], [128]),
        "synth_tall_37x101": ([128, 64], [128]),
        "synth_wide_203x64": ([128, 64], [64]),
        "synth_small_45x30": ([128, 64], [128]),
        "synth_square_64x64": ([128, 64], [64]),
    }

    for name, (u8_targets, f32_targets) in plan.items():
        path, rel = inputs[name]
        image = Image.open(path).convert("RGB")
        square = expand2square(image, pad)
        for t in u8_targets:
            resized = square.resize((t, t), Image.BICUBIC)
            ref = f"{name}_sq{t}.png"
            save_png(resized, OUT / ref)

            # transformers' own resize (no rescale/normalize) must give the same bytes.
            p = processor(t)
            u8 = p.preprocess(square, do_rescale=False, do_normalize=False, return_tensors="np")[
                "pixel_values"
            ][0]
            assert u8.dtype == np.uint8, u8.dtype
            assert np.array_equal(u8.transpose(1, 2, 0), np.asarray(resized)), (name, t)

            case = {
                "name": name,
                "input": rel,
                "width": image.width,
                "height": image.height,
                "target": t,
                "resized_png": f"preprocess/{ref}",
                "pixel_values_key": None,
            }
            if t in f32_targets:
                key = f"{name}_{t}"
                pv = p.preprocess(square, return_tensors="np")["pixel_values"][0]
                assert pv.dtype == np.float32 and pv.shape == (3, t, t), (pv.dtype, pv.shape)
                # Document how transformers 4.36 computes the floats: x * (1/255) in float64, cast to
                # float32, then (x - f32(mean)) / f32(std) in float32.
                x = np.asarray(resized).astype(np.uint8)
                r = (x * (1 / 255)).astype(np.float32)
                mine = (r - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
                assert np.array_equal(mine.transpose(2, 0, 1), pv), "float recipe changed"
                tensors[key] = np.ascontiguousarray(pv)
                case["pixel_values_key"] = key
            meta["square_cases"].append(case)

    # General resizes (non-square, up/down, only one axis, both axes).
    resize_plan = {
        "synth_tall_37x101": [(50, 20), (80, 300), (37, 50), (60, 101), (1, 1), (200, 7)],
        "synth_wide_203x64": [(17, 90), (203, 31), (90, 64), (64, 64)],
        "chelsea": [(151, 211), (97, 61)],
    }
    pillow_major = int(PIL.__version__.split(".")[0])
    for name, sizes in resize_plan.items():
        path, rel = inputs[name]
        image = Image.open(path).convert("RGB")
        for w, h in sizes:
            # Pillow <= 12 always runs the horizontal pass first; resizing one axis at a time in that
            # order reproduces it with any Pillow (a pass is skipped when its axis keeps its size).
            classic = image.resize((w, image.height), Image.BICUBIC).resize((w, h), Image.BICUBIC)
            native = image.resize((w, h), Image.BICUBIC)
            if pillow_major < 13:
                assert np.array_equal(np.asarray(classic), np.asarray(native)), (name, w, h)
            ref = f"{name}_resize_{w}x{h}.png"
            save_png(classic, OUT / ref)
            case = {"name": name, "input": rel, "width": w, "height": h, "png": f"preprocess/{ref}"}
            if pillow_major >= 13:
                # Pillow 13 runs the vertical pass first when the height shrinks much more.
                ref13 = ref
                if not np.array_equal(np.asarray(classic), np.asarray(native)):
                    ref13 = f"{name}_resize_{w}x{h}_pillow13.png"
                    save_png(native, OUT / ref13)
                case["png_pillow13"] = f"preprocess/{ref13}"
            meta["resize_cases"].append(case)

    # Pixel formats other than 8-bit RGB and what `.convert("RGB")` makes of them.
    rng = np.random.default_rng(7)
    w, h = 23, 17
    rgba = rng.integers(0, 256, size=(h, w, 4)).astype(np.uint8)
    modes = {
        "mode_l": Image.fromarray(rgba[..., 0], "L"),
        "mode_la": Image.fromarray(rgba[..., :2], "LA"),
        "mode_rgba": Image.fromarray(rgba, "RGBA"),
        "mode_p": Image.fromarray(rgba[..., :3], "RGB").quantize(colors=37),
    }
    p_trns = Image.fromarray(rgba[..., :3], "RGB").quantize(colors=19)
    p_trns.info["transparency"] = 3
    modes["mode_p_trns"] = p_trns
    for name, img in modes.items():
        img.save(OUT / f"{name}.png", **({"transparency": 3} if name == "mode_p_trns" else {}))
    # 16-bit RGB (PIL keeps the most significant byte) and 16-bit grey (PIL: mode I;16,
    # convert("RGB") clamps the 16-bit value at 255; the Rust port deliberately takes the high byte).
    rgb16 = rng.integers(0, 65536, size=(h, w, 3)).astype(">u2")
    (OUT / "mode_rgb16.png").write_bytes(raw_png(w, h, 2, 16, rgb16))
    grey16 = rng.integers(0, 65536, size=(h, w)).astype(">u2")
    grey16[0, :8] = [0, 1, 127, 128, 254, 255, 256, 65535]
    (OUT / "mode_grey16.png").write_bytes(raw_png(w, h, 0, 16, grey16))
    for name in list(modes) + ["mode_rgb16", "mode_grey16"]:
        src = Image.open(OUT / f"{name}.png")
        rgb = src.convert("RGB")
        # A fresh image: `convert` keeps a P image's `transparency` as an RGB key colour, which would
        # make Pillow write a tRNS chunk.
        save_png(Image.frombytes("RGB", rgb.size, rgb.tobytes()), OUT / f"{name}_rgb.png")
        meta["mode_cases"].append(
            {"input": f"preprocess/{name}.png", "pil_mode": src.mode, "rgb": f"preprocess/{name}_rgb.png"}
        )

    save_file(tensors, str(OUT / "clip_pixel_values.safetensors"), metadata={
        "pillow": PIL.__version__, "transformers": transformers.__version__
    })
    (OUT / "reference.json").write_text(json.dumps(meta, indent=2) + "\n")
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1e6:.2f} MB, into {OUT}")


if __name__ == "__main__":
    main()
