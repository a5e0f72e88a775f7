#!/usr/bin/env python3
"""Runs our LLM benchmark (`llm_bench`) and llama.cpp's `llama-bench` on this machine, in
this one call, at the same shapes and weight precisions, and prints one table: prefill and
decode tokens/s of both, and the time ratio ours/llama.cpp.

    python3 benches/llamacpp.py [--sizes small,7b] [--precisions f32,int8,int4]
                                [--prompt-lens 64,512] [--new-tokens 16] [--threads 2]
                                [--rounds 1] [--only ours,llamacpp] [--decode-depth]
                                [--idle-wait 120] [--no-build]
                                [--llamacpp-dir ~/.cache/omg-llava/llamacpp] [--dry-run]
    python3 benches/llamacpp.py --build-llamacpp     # (re)build llama-bench, then stop

* Ours: `target/release/llm_bench --preset SIZE --llm-weights PRECISION --prompt-len L
  --new-tokens N --warmup --runs R` (built first with `cargo build --release -p omg-bench
  --bin llm_bench` unless `--no-build`): like llama-bench, one untimed generation, then
  the mean tokens/s of R timed ones (R = `--reps`).
* llama.cpp: `llama-bench -m MODEL.gguf -t THREADS -r 2 -p L -n N -o csv` (column `avg_ts`).
  On first use the work directory (`--llamacpp-dir`, outside the repository) gets a venv
  with cmake, ninja, gguf and numpy (`benches/reference/llamacpp-requirements.txt`), the
  `llama-cpp-python` 0.3.36 source distribution from PyPI, which carries llama.cpp, and a
  `llama-bench` built from it (5 to 8 minutes on 2 cores) with `-DGGML_NATIVE=ON`; on a
  CPU with AMX, with every extension of the CPU named instead but AMX, whose products in
  ggml crash (SIGSEGV) on these models at this commit (see `isa_flags`).
* Models: GGUF files with random weights, architecture `llama` with separate q/k/v, the
  shapes of our preset (hidden, layers, heads, kv heads, FFN, vocabulary, RoPE θ, RMS ε).
  They are written once, tensor by tensor, into `models/` of the work directory and kept,
  one per shape and precision. Disk: small 2.1 GB (F32), 0.55 GB (Q8_0), 0.34 GB (Q4_0);
  7b 31 GB (F32), 8.2 GB (Q8_0), 4.5 GB (Q4_0). Writing one holds about its largest
  tensor in memory (7b: the 1.5 GB f32 embedding, 0.4 GB in Q8_0) and takes about 10 s
  for small and a few minutes for 7b.

Precisions: f32 → F32; int8 → Q8_0; int4 → Q4_0 with the head in Q8_0 (ours keeps its head
at int8 under int4). The token embedding takes the precision of the linears, as llama.cpp's
own quantizer does; it is only gathered from, so it costs no time. f32 is skipped for 7b
unless `--precisions` names it explicitly (ours and the file need 31 GB each).

What each multiplies: Q8_0/Q4_0 keep one f16 scale per 32 weights and quantize the
activations to 8 bits in blocks of 32; ours keeps one f32 scale per 64 weights and
quantizes the activations in blocks of 64, to 16 bits under int8 weights (the error of
int8 weights alone) and to 8 bits under int4. Both multiply in integers. llama.cpp picks
flash attention and an f16 KV cache by itself; ours keeps an f32 KV cache. Its decode test
starts from an empty context, while ours decodes after the L-token prompt;
`--decode-depth` makes llama.cpp decode after L tokens too (`-d L`, a second llama-bench
call), the like-for-like comparison.

A time ratio below 1 means ours is faster. With 2 threads, any other busy process on the
machine slows either side many times over. Before each timed run the script waits (up to
`--idle-wait` seconds) for idle CPUs; a run during which other processes kept over 0.1 core
busy is left out of the median when an undisturbed one exists, and a figure with none is
marked `*`. Each run's figures are printed as it ends, with the CPU time the hypervisor
gave other guests meanwhile (`steal`, from /proc/stat: a neighbour the idle check cannot
see); with `--rounds` over 1, a second table lists every round's figures under the
medians, with each round's time ratio (its two runs ran one after the other, on the
machine in the same state) and the median of those ratios. The figures are also written
to `target/bench/llamacpp-TIMESTAMP.json`.
A benchmark: it asserts nothing.
"""

import argparse
import csv
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import cpu_name  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(ROOT, "benches", "reference", "llamacpp-requirements.txt")
LLAMA_CPP_PYTHON = "0.3.36"
CMAKE_FLAGS = ["-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
               "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF"]

# ggml's x86 ISA options and the /proc/cpuinfo flag each one needs.
GGML_ISA = [("GGML_SSE42", "sse4_2"), ("GGML_AVX", "avx"), ("GGML_AVX2", "avx2"),
            ("GGML_BMI2", "bmi2"), ("GGML_FMA", "fma"), ("GGML_F16C", "f16c"),
            ("GGML_AVX_VNNI", "avx_vnni"), ("GGML_AVX512", "avx512bw"),
            ("GGML_AVX512_VBMI", "avx512vbmi"), ("GGML_AVX512_VNNI", "avx512_vnni"),
            ("GGML_AVX512_BF16", "avx512_bf16")]


def isa_flags(cpu_flags):
    """`-DGGML_NATIVE=ON`, except on a CPU with AMX: there ggml's AMX matrix products
    (`ggml_backend_amx_mul_mat`, which `-march=native` switches on) crash with SIGSEGV on
    our Q8_0 and Q4_0 models at this commit, so the build names every other extension of
    the CPU itself (what `-march=native` gives, less AMX)."""
    if "amx_int8" not in cpu_flags:
        return ["-DGGML_NATIVE=ON"]
    return ["-DGGML_NATIVE=OFF"] + [f"-D{opt}={'ON' if flag in cpu_flags else 'OFF'}"
                                    for opt, flag in GGML_ISA]


def cpu_flags():
    """The CPU's feature flags (empty where /proc/cpuinfo has none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()

# Our presets (benches/src/bin/llm_bench.rs): `tiny` = InternLM2Config::scaled(64, 2, 512),
# `small` = scaled(1024, 24, 92544), `7b` = internlm2_chat_7b(). `scaled` keeps the 7B
# model's ratios: heads = hidden / 128, kv heads = heads / 4, FFN = 3.5 × hidden.
SIZES = {
    "tiny": dict(hidden=64, layers=2, heads=1, kv_heads=1, ffn=224, vocab=512),
    "small": dict(hidden=1024, layers=24, heads=8, kv_heads=2, ffn=3584, vocab=92544),
    "7b": dict(hidden=4096, layers=32, heads=32, kv_heads=8, ffn=14336, vocab=92544),
}
COMMON = dict(rope_theta=1_000_000.0, rms_eps=1e-5, context=32768, bos=1, eos=2)
# our --llm-weights → (GGUF type of the linears and the embedding, of the head, general.file_type)
PRECISIONS = {"f32": ("F32", "F32", 0), "int8": ("Q8_0", "Q8_0", 7), "int4": ("Q4_0", "Q8_0", 2)}
# bytes per weight of each GGUF type (Q8_0: 32 int8 + an f16 scale; Q4_0: 32 nibbles + f16)
TYPE_BYTES = {"F32": 4.0, "Q8_0": 34 / 32, "Q4_0": 18 / 32}


# ----------------------------------------------------------------------------- llama.cpp


def work_paths(work):
    return dict(venv=os.path.join(work, "venv"), src=os.path.join(work, "src"),
                build=os.path.join(work, "build"), models=os.path.join(work, "models"),
                bench=os.path.join(work, "build", "bin", "llama-bench"))


def work_python(work):
    """The work directory's venv (cmake, ninja, gguf, numpy), created on first use."""
    venv = work_paths(work)["venv"]
    py = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, "installed-requirements.txt")
    with open(REQUIREMENTS) as f:
        wanted = f.read()
    if not os.path.exists(py):
        print(f"creating {venv} (cmake, ninja, gguf, numpy from PyPI) …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    if not os.path.exists(stamp) or open(stamp).read() != wanted:
        subprocess.run([py, "-m", "pip", "install", "-q", "-r", REQUIREMENTS], check=True)
        with open(stamp, "w") as f:
            f.write(wanted)
    return py


def build_llamacpp(work):
    """Fetches the llama-cpp-python sdist (it vendors llama.cpp) and builds `llama-bench`."""
    p = work_paths(work)
    py = work_python(work)
    os.makedirs(p["src"], exist_ok=True)
    name = f"llama_cpp_python-{LLAMA_CPP_PYTHON}"
    tree = os.path.join(p["src"], name, "vendor", "llama.cpp")
    if not os.path.isdir(tree):
        sdist = os.path.join(p["src"], f"{name}.tar.gz")
        if not os.path.exists(sdist):
            # --no-binary for this one package only: `:all:` would compile cmake itself too
            subprocess.run([py, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                            "llama-cpp-python", f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
                            "-d", p["src"]], check=True)
        with tarfile.open(sdist) as tar:
            try:
                tar.extractall(p["src"], filter="tar")
            except TypeError:  # Python without extraction filters
                tar.extractall(p["src"])
    bindir = os.path.dirname(py)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    cmake = os.path.join(bindir, "cmake")
    t = time.time()
    print(f"building llama-bench in {p['build']} (5 to 8 minutes on 2 cores) …", flush=True)
    flags = CMAKE_FLAGS + isa_flags(cpu_flags())
    print("  " + " ".join(flags), flush=True)
    subprocess.run([cmake, "-S", tree, "-B", p["build"], *flags], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run([cmake, "--build", p["build"], "--target", "llama-bench", "-j2"], check=True,
                   env=env)
    with open(flags_stamp(work), "w") as f:
        f.write(" ".join(flags))
    print(f"llama-bench built in {time.time() - t:.0f} s: {p['bench']}", flush=True)


def flags_stamp(work):
    """Where a build records the CMake flags it was made with."""
    return os.path.join(work_paths(work)["build"], "omg-llava-cmake-flags.txt")


def needs_build(work):
    """Whether `llama-bench` is missing or was built with other flags than this CPU's."""
    try:
        with open(flags_stamp(work)) as f:
            built_with = f.read()
    except OSError:
        return True
    wanted = " ".join(CMAKE_FLAGS + isa_flags(cpu_flags()))
    return not os.path.exists(work_paths(work)["bench"]) or built_with != wanted


# ----------------------------------------------------------------------------- GGUF models


def gguf_tensors(s, linear, head):
    """(name, shape as numpy orders it, GGUF type) of every tensor, in file order."""
    h, kv_dim = s["hidden"], s["hidden"] // s["heads"] * s["kv_heads"]
    out = [("token_embd.weight", (s["vocab"], h), linear)]
    for i in range(s["layers"]):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", (h,), "F32"),
                (b + "attn_q.weight", (h, h), linear),
                (b + "attn_k.weight", (kv_dim, h), linear),
                (b + "attn_v.weight", (kv_dim, h), linear),
                (b + "attn_output.weight", (h, h), linear),
                (b + "ffn_norm.weight", (h,), "F32"),
                (b + "ffn_gate.weight", (s["ffn"], h), linear),
                (b + "ffn_up.weight", (s["ffn"], h), linear),
                (b + "ffn_down.weight", (h, s["ffn"]), linear)]
    out += [("output_norm.weight", (h,), "F32"), ("output.weight", (s["vocab"], h), head)]
    return out


def gguf_bytes(s, precision):
    linear, head, _ = PRECISIONS[precision]
    total = 0
    for _, shape, kind in gguf_tensors(s, linear, head):
        n = shape[0] * (shape[1] if len(shape) > 1 else 1)
        total += n * TYPE_BYTES[kind]
    return int(total)


def model_path(work, size, s, precision):
    linear = PRECISIONS[precision][0]
    key = "h{hidden}-l{layers}-a{heads}-kv{kv_heads}-f{ffn}-v{vocab}".format(**s)
    return os.path.join(work_paths(work)["models"], f"internlm2-{size}-{key}-{linear}.gguf")


def ensure_model(work, size, s, precision):
    """The GGUF file of this shape and precision, written (in a subprocess of the work venv,
    which has gguf and numpy) when missing."""
    path = model_path(work, size, s, precision)
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    need = gguf_bytes(s, precision)
    free = shutil.disk_usage(os.path.dirname(path)).free
    if need * 1.05 > free:
        sys.exit(f"{path} needs {need / 1e9:.1f} GB of disk, {free / 1e9:.1f} GB are free")
    print(f"writing {os.path.basename(path)} ({need / 1e9:.2f} GB, random weights) …", flush=True)
    t = time.time()
    spec = json.dumps(dict(shape=s, precision=precision, name=f"internlm2-{size}-random"))
    subprocess.run([work_python(work), os.path.abspath(__file__), "--write-gguf", spec, path],
                   check=True)
    print(f"  written in {time.time() - t:.0f} s", flush=True)
    return path


def write_gguf(spec, path, chunk=1 << 22):
    """Writes one random-weight GGUF file tensor by tensor; a tensor is made and quantized
    `chunk` elements at a time, so memory stays near the largest tensor's stored size.
    Runs in the work venv (numpy, gguf)."""
    import numpy as np
    import gguf

    spec = json.loads(spec)
    s, precision = spec["shape"], spec["precision"]
    linear, head, file_type = PRECISIONS[precision]
    tensors = gguf_tensors(s, linear, head)
    qtype = {k: getattr(gguf.GGMLQuantizationType, k) for k in TYPE_BYTES}
    rng = np.random.default_rng(2406)

    tmp = path + ".part"
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name(spec["name"])
    w.add_context_length(COMMON["context"])
    w.add_embedding_length(s["hidden"])
    w.add_block_count(s["layers"])
    w.add_feed_forward_length(s["ffn"])
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv_heads"])
    w.add_rope_dimension_count(s["hidden"] // s["heads"])
    w.add_rope_freq_base(COMMON["rope_theta"])
    w.add_layer_norm_rms_eps(COMMON["rms_eps"])
    w.add_vocab_size(s["vocab"])
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    # a SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then fillers
    vocab = s["vocab"]
    specials = ["<unk>", "<s>", "</s>"]
    assert vocab >= len(specials) + 256, "the vocabulary must hold the 256 byte tokens"
    tokens = specials + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"tok{i}" for i in range(len(tokens), vocab)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * (vocab - 259)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(vocab)])
    w.add_token_types(types)
    w.add_bos_token_id(COMMON["bos"])
    w.add_eos_token_id(COMMON["eos"])
    w.add_unk_token_id(0)

    def byte_shape(shape, kind):
        return gguf.quants.quant_shape_to_byte_shape(shape, qtype[kind])

    for name, shape, kind in tensors:
        # a uint8 tensor of the quantized bytes: the writer derives the element shape from it
        rows_bytes = byte_shape(shape, kind)
        w.add_tensor_info(name, rows_bytes, np.dtype(np.uint8),
                          int(np.prod(rows_bytes)), raw_dtype=qtype[kind])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, shape, kind in tensors:
        if len(shape) == 1:  # the RMSNorm weights
            w.write_tensor_data(np.ones(shape, dtype=np.float32).view(np.uint8))
            continue
        rows, cols = shape
        out = np.empty(byte_shape(shape, kind), dtype=np.uint8)
        step = max(1, chunk // cols)
        for r in range(0, rows, step):
            x = rng.standard_normal((min(step, rows - r), cols), dtype=np.float32)
            x *= 0.02
            if kind == "F32":
                out[r:r + len(x)] = x.view(np.uint8)
            else:
                out[r:r + len(x)] = gguf.quants.quantize(x, qtype[kind])
            del x
        w.write_tensor_data(out)
        del out
    w.close()
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- runs


def run(cmd, **kw):
    """Runs `cmd` and returns its stdout; on failure prints what it said and stops."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout


def run_ours(preset, precision, prompt_len, new_tokens, reps):
    exe = os.path.join(ROOT, "target", "release", "llm_bench")
    cmd = [exe, "--preset", preset, "--llm-weights", precision, "--prompt-len", str(prompt_len),
           "--new-tokens", str(new_tokens), "--warmup", "--runs", str(reps)]
    out = run(cmd, cwd=ROOT)
    pre = re.search(r"^prefill: .* = ([0-9.]+) tokens/s", out, re.M)
    dec = re.search(r"^decode: .* = ([0-9.]+) tokens/s", out, re.M)
    if not (pre and dec):
        sys.exit(f"unexpected output of {' '.join(cmd)}:\n{out}")
    return dict(prefill_ts=float(pre.group(1)), decode_ts=float(dec.group(1)), output=out)


def run_llamacpp(bench, model, prompt_len, new_tokens, threads, reps, decode_depth=False):
    base = [bench, "-m", model, "-t", str(threads), "-r", str(reps), "-o", "csv"]
    if decode_depth:
        calls = [base + ["-p", str(prompt_len), "-n", "0"],
                 base + ["-p", "0", "-n", str(new_tokens), "-d", str(prompt_len)]]
    else:
        calls = [base + ["-p", str(prompt_len), "-n", str(new_tokens)]]
    rows = []
    for cmd in calls:
        out = run(cmd)
        rows += csv.DictReader(io.StringIO(out))
    res = {}
    for row in rows:
        if int(row["n_prompt"]) > 0 and int(row["n_gen"]) == 0:
            res["prefill_ts"] = float(row["avg_ts"])
        elif int(row["n_gen"]) > 0 and int(row["n_prompt"]) == 0:
            res["decode_ts"] = float(row["avg_ts"])
        for key in ("build_commit", "cpu_info", "type_k", "flash_attn", "model_type",
                    "n_depth"):
            if key in row:
                res.setdefault("info", {})[key] = row[key]
    if "prefill_ts" not in res or "decode_ts" not in res:
        sys.exit(f"unexpected output of {' '.join(calls[-1])}:\n{out}")
    return res


def dry_run(work, bench, cases, sides, args):
    if "llamacpp" in sides:
        if not os.path.exists(bench):
            print(f"would build {bench}")
        for size, prec in dict.fromkeys((size, prec) for size, prec, _ in cases):
            path = model_path(work, size, SIZES[size], prec)
            state = "present" if os.path.exists(path) else "to write"
            linear, head, _ = PRECISIONS[prec]
            print(f"{path}: {state}, {gguf_bytes(SIZES[size], prec) / 1e9:.2f} GB, "
                  f"linears {linear}, head {head}, shape {SIZES[size]}")
    for size, prec, L in cases:
        if "ours" in sides:
            print(f"target/release/llm_bench --preset {size} --llm-weights {prec} --prompt-len {L} "
                  f"--new-tokens {args.new_tokens} --warmup --runs {args.reps}")
        if "llamacpp" in sides:
            m = os.path.basename(model_path(work, size, SIZES[size], prec))
            tests = ([f"-p {L} -n 0", f"-p 0 -n {args.new_tokens} -d {L}"] if args.decode_depth
                     else [f"-p {L} -n {args.new_tokens}"])
            for t in tests:
                print(f"llama-bench -m {m} -t {args.threads} -r {args.reps} {t} -o csv")


def cpu_seconds():
    """(CPU seconds all processes spent busy, our finished children's CPU seconds, CPU
    seconds the hypervisor gave to other guests: the `steal` column)."""
    import resource
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(v[:7]) - v[3] - v[4]) / tick  # less idle and iowait
        steal = v[7] / tick if len(v) > 7 else 0.0
    except (OSError, ValueError, IndexError):
        busy, steal = 0.0, 0.0
    return busy, children.ru_utime + children.ru_stime, steal


def cpu_busy(interval=1.0):
    """Fraction of all CPUs busy over `interval` seconds; 0 if unknown."""
    b0, _, _ = cpu_seconds()
    time.sleep(interval)
    b1, _, _ = cpu_seconds()
    return (b1 - b0) / interval / (os.cpu_count() or 1)


def others_during(run):
    """Calls `run()` (which runs one child process to its end); returns its result, how
    many cores other processes kept busy meanwhile, and how many the hypervisor took
    for other guests (steal)."""
    t, (b0, c0, s0) = time.time(), cpu_seconds()
    res = run()
    t, (b1, c1, s1) = time.time() - t, cpu_seconds()
    t = max(t, 1e-3)
    return res, max(0.0, (b1 - b0) - (c1 - c0)) / t, max(0.0, s1 - s0) / t


def wait_idle(max_wait, threshold=0.1):
    """Waits until under `threshold` of the CPUs are busy, at most `max_wait` seconds;
    returns whether they were idle."""
    start = time.time()
    warned = False
    while True:
        busy = cpu_busy()
        if busy < threshold:
            return True
        if time.time() - start >= max_wait:
            print(f"  the CPUs are {100 * busy:.0f} % busy: timing anyway (marked *)", flush=True)
            return False
        if not warned:
            print(f"  the CPUs are {100 * busy:.0f} % busy: waiting up to {max_wait:.0f} s …",
                  flush=True)
            warned = True
        time.sleep(2)


def parse_list(text, allowed, what):
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad:
        sys.exit(f"unknown {what}: {', '.join(bad)} (allowed: {', '.join(allowed)})")
    return items


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--write-gguf":
        write_gguf(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--sizes", default="small", help="presets, comma-separated: tiny, small, 7b")
    ap.add_argument("--precisions", default=None,
                    help="comma-separated: f32, int8, int4 (default all three; 7b without f32)")
    ap.add_argument("--prompt-lens", default="64,512", help="prompt lengths, comma-separated")
    ap.add_argument("--new-tokens", type=int, default=16, help="decoded tokens")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads (ours: its backend's default)")
    ap.add_argument("--reps", type=int, default=2, help="llama-bench repetitions (-r)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="times each pair is run, alternating ours and llama.cpp; the median "
                         "of the undisturbed runs is kept")
    ap.add_argument("--only", default="ours,llamacpp", help="sides to run: ours, llamacpp")
    ap.add_argument("--idle-wait", type=float, default=120,
                    help="seconds to wait for idle CPUs before each timed run")
    ap.add_argument("--decode-depth", action="store_true",
                    help="llama.cpp decodes after a context of the prompt's length, as ours does")
    ap.add_argument("--no-build", action="store_true", help="do not build llm_bench first")
    ap.add_argument("--llamacpp-dir", default=os.path.expanduser("~/.cache/omg-llava/llamacpp"),
                    help="work directory: venv, llama.cpp source and build, GGUF files")
    ap.add_argument("--build-llamacpp", action="store_true",
                    help="(re)build llama-bench in the work directory and stop")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the GGUF files and commands of the run, do nothing")
    args = ap.parse_args()

    work = os.path.abspath(args.llamacpp_dir)
    if work == ROOT or work.startswith(ROOT + os.sep):
        sys.exit("--llamacpp-dir must lie outside the repository")
    if args.build_llamacpp:
        build_llamacpp(work)
        return

    sizes = parse_list(args.sizes, SIZES, "size")
    sides = parse_list(args.only, ["ours", "llamacpp"], "side")
    prompt_lens = [int(x) for x in args.prompt_lens.split(",") if x.strip()]
    if any(L < 1 for L in prompt_lens) or args.new_tokens < 2:
        sys.exit("prompt lengths must be positive and --new-tokens at least 2")
    explicit = args.precisions is not None
    precisions = parse_list(args.precisions or "f32,int8,int4", PRECISIONS, "precision")
    cases = [(size, prec, L) for size in sizes for prec in precisions
             if explicit or not (size == "7b" and prec == "f32") for L in prompt_lens]
    if not cases:
        sys.exit("nothing to run")

    bench = work_paths(work)["bench"]
    if args.dry_run:
        dry_run(work, bench, cases, sides, args)
        return
    if "llamacpp" in sides:
        if needs_build(work):
            build_llamacpp(work)
        # every file first, so that writing them never overlaps a timed run
        models = {(size, prec): ensure_model(work, size, SIZES[size], prec)
                  for size, prec, _ in cases}
    if "ours" in sides and not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "omg-bench", "--bin", "llm_bench"],
                       cwd=ROOT, check=True)

    started = time.strftime("%Y-%m-%d %H:%M")
    results = []
    for size, prec, L in cases:
        runs = {side: [] for side in sides}
        for _ in range(max(1, args.rounds)):
            for side in sides:
                idle = wait_idle(args.idle_wait)
                if side == "ours":
                    res, others, steal = others_during(
                        lambda: run_ours(size, prec, L, args.new_tokens, args.reps))
                else:
                    res, others, steal = others_during(lambda: run_llamacpp(
                        bench, models[(size, prec)], L, args.new_tokens, args.threads, args.reps,
                        args.decode_depth))
                if others > 0.1:
                    print(f"  other processes kept {others:.2f} cores busy during this {side} "
                          f"run (marked *)", flush=True)
                print(f"  {size} {prec} p{L} {side}: prefill {res['prefill_ts']:.1f} t/s, "
                      f"decode {res['decode_ts']:.2f} t/s; steal {steal:.2f} cores", flush=True)
                runs[side].append(dict(res, idle=idle and others <= 0.1,
                                       other_cores=round(others, 3), steal_cores=round(steal, 3)))
        row = dict(size=size, precision=prec, gguf_type=PRECISIONS[prec][0], prompt_len=L,
                   new_tokens=args.new_tokens)
        for side, rs in runs.items():
            kept = [r for r in rs if r["idle"]] or rs  # the undisturbed runs, if any
            row[side] = dict(prefill_ts=statistics.median(r["prefill_ts"] for r in kept),
                             decode_ts=statistics.median(r["decode_ts"] for r in kept),
                             idle=kept[0]["idle"],
                             runs=[{k: v for k, v in r.items() if k != "output"} for r in rs])
        if "ours" in sides:
            row["ours"]["output"] = runs["ours"][-1]["output"]
        results.append(row)
        print(f"{size} {prec} p{L}: " + "; ".join(
            f"{side} prefill {row[side]['prefill_ts']:.1f} t/s, decode {row[side]['decode_ts']:.2f} t/s"
            for side in sides), flush=True)

    note = (f"{cpu_name()}, {os.cpu_count()} CPUs; {started}; decode of {args.new_tokens} tokens; "
            f"both after a warm-up, mean of {args.reps} runs; "
            f"llama.cpp {args.threads} threads, decode from "
            f"{'the prompt' if args.decode_depth else 'an empty context'}; median of "
            f"{max(1, args.rounds)} alternating round(s)")
    out_dir = os.path.join(ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    out_json = os.path.join(out_dir, f"llamacpp-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(out_json, "w") as f:
        json.dump(dict(note=note, llama_cpp_python=LLAMA_CPP_PYTHON, results=results), f, indent=1)
    print_table(results, sides, note)
    if max(1, args.rounds) > 1:
        print_runs(results, sides)
    print(f"\nJSON: {os.path.relpath(out_json, ROOT)}")


def print_table(results, sides, note):
    """The markdown table: prefill and decode tokens/s of both, and ours time / theirs."""
    def cell(row, side, key, fmt):
        if side not in row:
            return "–"
        return format(row[side][key], fmt) + ("" if row[side]["idle"] else "*")

    def ratio(row, key):
        if "ours" in row and "llamacpp" in row:
            return f"{row['llamacpp'][key] / row['ours'][key]:.2f}"  # time ratio = inverse t/s
        return "–"

    print()
    print(note)
    print()
    print("| size | precision | prompt | prefill t/s ours | llama.cpp | ours/llama.cpp time "
          "| decode t/s ours | llama.cpp | ours/llama.cpp time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['size']} | {r['precision']} ({r['gguf_type']}) | {r['prompt_len']} "
              f"| {cell(r, 'ours', 'prefill_ts', '.1f')} | {cell(r, 'llamacpp', 'prefill_ts', '.1f')} "
              f"| {ratio(r, 'prefill_ts')} "
              f"| {cell(r, 'ours', 'decode_ts', '.2f')} | {cell(r, 'llamacpp', 'decode_ts', '.2f')} "
              f"| {ratio(r, 'decode_ts')} |")


def print_runs(results, sides):
    """Every round's figures of each cell (tokens/s; * where other processes were busy),
    in the order they ran: the spread behind the medians above; with both sides, each
    round's time ratio (ours, then llama.cpp right after it) and their median."""
    def runs(row, side, key):
        if side not in row:
            return "–"
        return " / ".join(format(r[key], ".1f" if key == "prefill_ts" else ".2f")
                          + ("" if r["idle"] else "*") for r in row[side]["runs"])

    def ratios(row, key):
        if "ours" not in row or "llamacpp" not in row:
            return "–"
        each = [theirs[key] / ours[key]  # time ratio = inverse t/s
                for ours, theirs in zip(row["ours"]["runs"], row["llamacpp"]["runs"])]
        return " / ".join(f"{q:.2f}" for q in each) + f" (median {statistics.median(each):.2f})"

    print()
    print("Every round (tokens/s; ours/llama.cpp time of each round, the two run one after "
          "the other):")
    print()
    print("| size | precision | prompt | prefill ours | llama.cpp | time ratio | decode ours "
          "| llama.cpp | time ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['size']} | {r['precision']} | {r['prompt_len']} "
              f"| {runs(r, 'ours', 'prefill_ts')} | {runs(r, 'llamacpp', 'prefill_ts')} "
              f"| {ratios(r, 'prefill_ts')} "
              f"| {runs(r, 'ours', 'decode_ts')} | {runs(r, 'llamacpp', 'decode_ts')} "
              f"| {ratios(r, 'decode_ts')} |")


if __name__ == "__main__":
    main()
