#!/usr/bin/env python3
"""Write the tiny PyTorch checkpoints used by `omg-checkpoint/tests/pth_reader.rs`.

What it writes (into `omg-checkpoint/tests/data/`, a few KB in all):

* `plain.pth` -- a flat state dict saved with `torch.save` (default pickle
  protocol 2): f32, f16, bf16, f64, i64, i32, i16, i8, u8 and bool tensors, a
  non-contiguous transpose view (`.t()`, saved as a view), a strided column
  view, several slices sharing one storage (with storage offsets), a stride-0
  `expand` view, an empty tensor, a 0-d scalar and an `nn.Parameter`.
* `mmengine_like.pth` -- an mmengine-style checkpoint
  `{"meta": {...}, "state_dict": OrderedDict(...), "message_hub": <obj>,
  "optimizer": {...}}` whose `meta`, `message_hub` and `optimizer` hold objects
  the Rust reader cannot know: numpy arrays and scalars, instances of classes
  from a module that only exists while this script runs (`fake_mmengine.*`), a
  dict subclass, an `argparse.Namespace`, a tuple, a set, bytes, a torch dtype
  and even tensors (which must NOT be reported: only `state_dict` counts).
* `nested.pth` -- saved with pickle protocol 5: nested dicts of tensors
  (flattened to `a.b.c` names, integer keys included), non-tensor leaves, one
  tensor shared between two keys, plus a complex64 and a float8 tensor (dtypes
  the reader lists as unsupported).
* `expected.safetensors` -- every readable tensor of the three files above as a
  contiguous copy, named `<file stem>/<tensor name>` (e.g. `plain/f32`), so the
  Rust test compares names, shapes, dtypes and bytes exactly.

Run it from the repository root (CPU only; needs `pip install torch==2.5.1
safetensors numpy`):

    python3 omg-checkpoint/tests/data/make_pth_fixtures.py

The outputs are deterministic up to zip timestamps and are committed; rerun only
when the fixtures need to change.
"""

import argparse
import collections
import os
import sys
import types

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__))
)


# --- classes from a module the Rust reader cannot know -----------------------
fake = types.ModuleType("fake_mmengine")
fake_logging = types.ModuleType("fake_mmengine.logging")
fake.logging = fake_logging
sys.modules["fake_mmengine"] = fake
sys.modules["fake_mmengine.logging"] = fake_logging


class MessageHub:
    """Pickled with the default protocol-2 path: NEWOBJ + BUILD of `__dict__`."""

    def __init__(self):
        self.instance_name = "hub"
        self.log_scalars = {"loss": np.array([0.5, 0.25], dtype=np.float32)}
        self.runtime_info = {"epoch": 3, "iter": 100}
        self.scratch = torch.zeros(2)  # a tensor outside `state_dict`


class ConfigDict(dict):
    """A dict subclass: NEWOBJ followed by SETITEMS and BUILD."""


class Reduced:
    """A class with a custom `__reduce__` calling a function of the fake module."""

    def __init__(self, x):
        self.x = x

    def __reduce__(self):
        return (make_reduced, (self.x, "extra"))


def make_reduced(x, _extra):
    return Reduced(x)


for _obj in (MessageHub, ConfigDict, Reduced, make_reduced):
    _obj.__module__ = "fake_mmengine.logging"
    setattr(fake_logging, _obj.__name__, _obj)


def plain_state_dict():
    g = torch.Generator().manual_seed(0)
    sd = {}
    sd["f32"] = torch.randn(3, 4, generator=g)
    sd["f16"] = torch.randn(2, 3, generator=g).half()
    sd["bf16"] = torch.randn(5, generator=g).bfloat16()
    sd["f64"] = torch.randn(2, 2, generator=g, dtype=torch.float64)
    sd["i64"] = torch.arange(-3, 3, dtype=torch.int64).reshape(2, 3) * 1_000_000_007
    sd["i32"] = torch.tensor([-(2**31), -1, 0, 2**31 - 1], dtype=torch.int32)
    sd["i16"] = torch.tensor([[-32768, 7], [8, 32767]], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 1, 200, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([[True, False, False], [False, True, True]])
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4
    sd["transposed"] = base.t()  # shape (4, 3), stride (1, 4): a view
    sd["column"] = base[:, 1]  # shape (3,), stride (4,), offset 1: same storage
    big = torch.arange(10, dtype=torch.float32) - 4.5
    sd["shared_a"] = big[1:3]
    sd["shared_b"] = big[4:]
    sd["shared_c"] = big[::3]  # stride 3
    sd["expanded"] = torch.tensor([1.0, -2.0]).expand(3, 2)  # stride (0, 1)
    sd["empty"] = torch.zeros(0, 3)
    sd["scalar"] = torch.tensor(3.5)
    sd["param"] = torch.nn.Parameter(torch.linspace(-1, 1, 6).reshape(2, 3))
    assert not sd["transposed"].is_contiguous()
    assert sd["shared_a"].untyped_storage().data_ptr() == sd["shared_b"].untyped_storage().data_ptr()
    return sd


def mmengine_like():
    g = torch.Generator().manual_seed(1)
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(2, 3, generator=g))
        lin.bias.copy_(torch.randn(2, generator=g))
    sd = collections.OrderedDict()
    for k, v in lin.state_dict().items():  # OrderedDict with `_metadata`
        sd[f"backbone.fc.{k}"] = v
    sd["backbone.norm.weight"] = torch.randn(4, generator=g).half()
    sd["head.embed"] = torch.randn(4, 3, generator=g).bfloat16().t()
    sd["head.steps"] = torch.tensor(7)
    sd._metadata = lin.state_dict()._metadata
    cfg = ConfigDict(lr=0.1, betas=(0.9, 0.999))
    cfg.extra_attr = "x"
    meta = {
        "epoch": 3,
        "iter": 100,
        "seed": 42,
        "np_array": np.arange(5.0),
        "np_scalar": np.float32(1.5),
        "np_int": np.int64(9),
        "cfg": cfg,
        "reduced": Reduced(5),
        "namespace": argparse.Namespace(lr=0.1, name="run"),
        "tuple": (1, "a", 2.5, None, True),
        "string": "hello \u00e9\u4e16",
        "bytes": b"\x00\x01\xff",
        "set": {1, 2, 3},
        "frozenset": frozenset({"a"}),
        "dtype": torch.float16,
        "big_int": 2**80,
        "float": -0.125,
        "meta_tensor": torch.ones(2),
    }
    return {
        "meta": meta,
        "state_dict": sd,
        "message_hub": MessageHub(),
        "optimizer": {
            "state": {0: {"exp_avg": torch.ones(2, 3)}},
            "param_groups": [{"lr": 0.1, "params": [0, 1]}],
        },
    }


def nested():
    g = torch.Generator().manual_seed(2)
    shared = torch.randn(2, 2, generator=g)
    obj = {
        "model": {
            "encoder": {"w": torch.randn(3, generator=g), "b": torch.zeros(1)},
            "decoder": collections.OrderedDict(w=shared),
            "layers": {0: {"w": torch.arange(4, dtype=torch.int32)}, 1: {"w": shared}},
        },
        "step": 5,
        "name": "run",
        "blob": bytearray(b"xy"),
        "list_of_tensors": [torch.ones(1)],  # lists are not descended into
        "complex": torch.ones(2, dtype=torch.complex64),
        "float8": torch.zeros(3, dtype=torch.float8_e4m3fn),
    }
    expected = {
        "model.encoder.w": obj["model"]["encoder"]["w"],
        "model.encoder.b": obj["model"]["encoder"]["b"],
        "model.decoder.w": shared,
        "model.layers.0.w": obj["model"]["layers"][0]["w"],
        "model.layers.1.w": shared,
    }
    return obj, expected


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}

    sd = plain_state_dict()
    torch.save(sd, os.path.join(OUT, "plain.pth"))
    for k, v in sd.items():
        expected[f"plain/{k}"] = v

    ck = mmengine_like()
    torch.save(ck, os.path.join(OUT, "mmengine_like.pth"))
    for k, v in ck["state_dict"].items():
        expected[f"mmengine_like/{k}"] = v

    obj, exp = nested()
    torch.save(obj, os.path.join(OUT, "nested.pth"), pickle_protocol=5)
    for k, v in exp.items():
        expected[f"nested/{k}"] = v

    expected = {k: v.detach().contiguous().clone() for k, v in expected.items()}
    save_file(expected, os.path.join(OUT, "expected.safetensors"))

    # Round-trip check with torch itself.
    for name in ("plain.pth", "mmengine_like.pth", "nested.pth"):
        torch.load(os.path.join(OUT, name), weights_only=False)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, into {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
