#!/usr/bin/env python3
"""Runs omg-llava-rs's benchmark and the PyTorch reference on this machine, in this one
call, at the same size, and prints one table: stage, ours, PyTorch, ours/PyTorch.

    python3 benches/compare.py [--size small] [--features flex] [--runs 2] [--warmup 1]
                               [--only encoder,llm] [--threads 0]

* Ours: `cargo run --release -p omg-bench --features FEATURES --bin bench -- …`
  (FEATURES picks the backend: flex by default, the fastest CPU backend).
* PyTorch: `benches/reference/reference.py` in `benches/reference/.venv`, created from
  `benches/reference/requirements.txt` on the first run.

Times are medians of the timed runs; a ratio below 1 means ours is faster. The JSON of
both runs is kept in `target/bench/`. A benchmark: it asserts nothing.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, "benches", "reference")
VENV = os.path.join(REF, ".venv")


def venv_python():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        print(f"creating {VENV} (torch from PyPI, a few GB) …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "-r", os.path.join(REF, "requirements.txt")],
                       check=True)
    return py


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="small", choices=["tiny", "small", "7b"])
    ap.add_argument("--features", default="flex", help="cargo features of omg-bench (the backend)")
    ap.add_argument("--only", default="encoder,llm", help="parts both sides time: encoder, llm")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="PyTorch threads (0: its default)")
    ap.add_argument("--pytorch-allocator", choices=["default", "same"], default="default",
                    help="same: run PyTorch with the glibc setting our binaries make "
                         "(omg_llava::reuse_freed_memory) through GLIBC_TUNABLES")
    ap.add_argument("--table", nargs=2, metavar=("OURS_JSON", "PYTORCH_JSON"),
                    help="only print the table of two JSON files written earlier (e.g. on a GPU)")
    args = ap.parse_args()
    if args.table:
        print_table(*args.table, note="")
        return

    out_dir = os.path.join(ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    ours_json = os.path.join(out_dir, f"ours-{args.size}.json")
    ref_json = os.path.join(out_dir, f"pytorch-{args.size}.json")
    common = ["--size", args.size, "--runs", str(args.runs), "--warmup", str(args.warmup),
              "--prompt-len", str(args.prompt_len), "--new-tokens", str(args.new_tokens),
              "--only", args.only]
    py = venv_python()
    bench = ["--release", "-p", "omg-bench", "--features", args.features, "--bin", "bench"]
    subprocess.run(["cargo", "build", *bench], cwd=ROOT, check=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    subprocess.run(["cargo", "run", "--quiet", *bench, "--", *common, "--json", ours_json],
                   cwd=ROOT, check=True)
    ref_cmd = [py, os.path.join(REF, "reference.py"), *common, "--json", ref_json]
    if args.threads:
        ref_cmd += ["--threads", str(args.threads)]
    env = dict(os.environ)
    if args.pytorch_allocator == "same":
        env["GLIBC_TUNABLES"] = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647"
    subprocess.run(ref_cmd, cwd=ROOT, check=True, env=env)

    print_table(ours_json, ref_json,
                note=f"{cpu_name()}, {os.cpu_count()} CPUs; size {args.size}; {started}; "
                     f"median of {args.runs} runs after {args.warmup} warm-up; PyTorch allocator "
                     f"{args.pytorch_allocator}")


def print_table(ours_json, ref_json, note):
    """The markdown table: stage, ours, PyTorch, ours/PyTorch."""
    with open(ours_json) as f:
        ours = json.load(f)
    with open(ref_json) as f:
        ref = json.load(f)
    print()
    print(f"{note}{'; ' if note else ''}ours on {ours['backend']}, PyTorch {ref['torch']} "
          f"{ref.get('dtype', 'f32')} eager on {ref.get('device', 'cpu')} "
          f"({ref['threads']} CPU threads)")
    print()
    print("| stage | ours (ms) | PyTorch (ms) | ours/PyTorch |")
    print("|---|---|---|---|")
    total_ours = total_ref = 0.0
    for stage, r in ref["stages"].items():
        o = ours["stages"].get(stage)
        if o is None:
            continue
        a, b = o["median_ms"], r["median_ms"]
        print(f"| {stage} | {a:.1f} | {b:.1f} | {a / b:.2f} |")
        if stage in ("backbone", "pixel_decoder", "mask_decoder"):
            total_ours += a
            total_ref += b
    if total_ref:
        print(f"| encoder (sum of the three) | {total_ours:.1f} | {total_ref:.1f} | "
              f"{total_ours / total_ref:.2f} |")
    extra = ours.get("extra", {})
    if "copy_gbps" in extra:
        print()
        print(f"Ours: memory copy {extra['copy_gbps']:.1f} GB/s (read + written); decode at "
              f"{100 * extra['decode_roofline_fraction']:.0f} % of the memory-bandwidth roofline.")


if __name__ == "__main__":
    main()
