#!/usr/bin/env bash
# The GPU benchmark: our bench on the cuda backend and the PyTorch reference on the same
# card, in one run on the GPU machine. That machine needs no Rust toolchain: the binaries
# are built beforehand on one that has it, and copied over in .carry/.
#
#   scripts/gpu-bench.sh build   # with a Rust toolchain: bench and llm_bench for cuda,
#                                #   stripped and xz'd, into .carry/
#   scripts/gpu-bench.sh run     # on the GPU machine, in a checkout holding .carry/;
#                                #   results are written to $OUT (default target/bench)
#
# SIZE (default 7b) picks the bench size. Ours runs the LLM's linears in bf16
# (`--llm-weights bf16`, docs/precision.md) and the vision side in f32, as the official
# code does; PyTorch runs the LLM in bf16 and the encoder under bf16 autocast, plus an
# f32 pass. `llm_bench` then times the 7B decode in bf16 against the card's
# copy-bandwidth roofline.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${SIZE:-7b}

case "${1:-}" in
build)
    cargo build --release -p omg-bench --no-default-features --features cuda \
        --bin bench --bin llm_bench
    mkdir -p .carry
    for bin in bench llm_bench; do
        cp "target/release/$bin" ".carry/$bin-cuda"
        strip ".carry/$bin-cuda"
        xz -f -T2 ".carry/$bin-cuda"
    done
    ls -l .carry/
    ;;
run)
    out=${OUT:-target/bench}
    mkdir -p "$out"
    for bin in bench llm_bench; do
        xz -dkf ".carry/$bin-cuda.xz"
        chmod +x ".carry/$bin-cuda"
    done
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt" || true
    # ours: warm-up run first (kernel compilation and autotuning), then the timed runs
    timeout 300 .carry/bench-cuda --size "$SIZE" --llm-weights bf16 --only encoder,llm,pipeline \
        --warmup 1 --runs 3 --json "$out/ours-$SIZE-cuda.json" 2>&1 | tee "$out/ours.log" \
        || echo "ours: rc $?"
    timeout 150 .carry/llm_bench-cuda --preset 7b --llm-weights bf16 --prompt-len 600 \
        --new-tokens 32 2>&1 | tee "$out/llm_bench-7b-bf16.log" || echo "llm_bench: rc $?"
    for dtype in bf16 f32; do
        timeout 120 python3 benches/reference/reference.py --size "$SIZE" --device cuda \
            --dtype "$dtype" --warmup 1 --runs 3 --json "$out/pytorch-$SIZE-cuda-$dtype.json" \
            2>&1 | tee "$out/pytorch-$dtype.log" || echo "pytorch $dtype: rc $?"
    done
    for dtype in bf16 f32; do
        if [ -f "$out/ours-$SIZE-cuda.json" ] && [ -f "$out/pytorch-$SIZE-cuda-$dtype.json" ]; then
            python3 benches/compare.py --table "$out/ours-$SIZE-cuda.json" \
                "$out/pytorch-$SIZE-cuda-$dtype.json" | tee "$out/table-$dtype.md"
        fi
    done
    ;;
*)
    echo "usage: scripts/gpu-bench.sh build|run" >&2
    exit 2
    ;;
esac
