#!/usr/bin/env bash
# Runs the whole parity suite on burn's `wgpu` backend.
#
# Without a GPU this uses lavapipe (Mesa's CPU implementation of Vulkan), installed from
# the distribution's packages if missing, so the GPU code path — the same cubecl kernels a
# real GPU runs — is checked on any machine. On a machine with a GPU and its Vulkan driver,
# wgpu picks the GPU instead. Same fixtures and tolerances as the CPU tests.
#
#   scripts/parity-wgpu.sh [FIXTURE_DIR]
#
# FIXTURE_DIR defaults to $OMG_PARITY_DIR, then a `shared/parity` folder beside the
# checkout if there is one, then the repository's copy (fixtures/parity). Then the f16 LLM weights' error budget on the end-to-end fixture. Exits non-zero
# if any comparison fails. `.ci/run` calls it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${1:-${OMG_PARITY_DIR:-}}"
if [ -z "$dir" ]; then
    if [ -f ../shared/parity/README.md ]; then
        dir=../shared/parity
    else
        dir=fixtures/parity
    fi
fi
[ -d "$dir" ] || { echo "no fixture folder at $dir" >&2; exit 2; }

# A Vulkan loader and driver: lavapipe (mesa-vulkan-drivers) unless one is present.
if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null \
        || { $sudo_cmd apt-get update >/dev/null && \
             $sudo_cmd apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null; }
fi
# wgpu warns (harmlessly) without it.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

# burn's default kernel for each op (`wgpu-untuned`): the model code on the GPU code path,
# the same kernels on every run. OMG_WGPU_FEATURES=wgpu checks the build users get, with
# autotuning (on lavapipe it times every candidate kernel: the run takes 6 times as long);
# OMG_WGPU_FEATURES=wgpu,fusion checks burn's kernel fusion (docs/burn-fusion-matmul.md).
# The dev profile: its dependencies are optimised and wgpu's without debug assertions
# (Cargo.toml), and after `cargo test` the ones whose features the backend does not
# change are already built; the time goes into lavapipe's shaders, not into our host code.
cargo build -p omg-parity --no-default-features --features "${OMG_WGPU_FEATURES:-wgpu-untuned}"
parity=target/debug/omg-parity

fixtures=("$dir"/*.safetensors)
[ -d "$dir/tokenizer_tiny" ] && fixtures+=("$dir/tokenizer_tiny")
start=$(date +%s)
"$parity" "${fixtures[@]}"
echo "wgpu parity: $(( $(date +%s) - start )) s for ${#fixtures[@]} fixtures"

# Half precision on the GPU code path: the LLM's linears in f16 against f32 on the
# end-to-end fixture, within the documented budget (docs/precision.md).
if [ -f "$dir/e2e.safetensors" ]; then
    start=$(date +%s)
    "$parity" --llm-weights f16 "$dir/e2e.safetensors"
    echo "wgpu f16 budget: $(( $(date +%s) - start )) s"
fi
