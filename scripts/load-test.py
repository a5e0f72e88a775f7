#!/usr/bin/env python3
"""Concurrent chat clients against omg-server, one-at-a-time against batched, in one run.

    scripts/load-test.py [--server target/release/omg-server] [--clients 1,2,4,8]
                         [--requests 2] [--max-tokens 48] [-- SERVER ARGS...]

Starts the server twice on free loopback ports, one after the other on an otherwise idle
machine: with `--max-batch 1` (one request at a time) and with `--max-batch 8`; both get
the SERVER ARGS (default: `--random small --llm-weights int8`, the official vision side
with a 0.5 B LLM of random weights). For each number of concurrent clients, every
client sends `--requests` streamed greedy chat requests about the same photo (encoded
once, before the timing) one after another, each its own question; the script prints
total completion tokens per second, the latency and time-to-first-token percentiles,
and checks that every answer of the batched server equals the one-at-a-time server's. The time to first token is the time to the first chunk,
which the server sends once the prefill has chosen the first token.
Exits 1 if an answer differs or a request fails. Standard library only.
"""

import argparse
import base64
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "What is in the picture?", "Describe the image.", "What colour is the animal?",
    "Where is the cat looking?", "What is behind the cat?", "Is it day or night?",
    "How many animals are there?", "What would you call this photo?",
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def chat(port, question, photo_url, max_tokens):
    """One streamed request: (answer text, completion tokens, seconds, seconds to the
    first token). The first chunk comes when the prompt's prefill has chosen the first
    token; text can come later (random weights choose bytes that are not yet UTF-8)."""
    body = json.dumps({
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": question},
            {"type": "image_url", "image_url": {"url": photo_url}}]}],
        "max_tokens": max_tokens, "stream": True,
        "stream_options": {"include_usage": True},
    })
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    c.request("POST", "/v1/chat/completions", body=body,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"{r.status}: {r.read()[:300]!r}")
    text, tokens, first = "", None, None
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        if first is None:
            first = time.perf_counter() - t0
        chunk = json.loads(line[6:])
        if "error" in chunk:
            raise RuntimeError(chunk["error"])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        for choice in chunk.get("choices", []):
            piece = choice.get("delta", {}).get("content")
            if piece:
                text += piece
    c.close()
    return text, tokens, time.perf_counter() - t0, first


def percentile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q / 100 * (len(v) - 1))))]


def sweep(port, photo_url, clients_list, requests, max_tokens):
    """Per number of clients: (tokens/s, latencies, ttfts, answers by (client, k))."""
    out = {}
    for clients in clients_list:
        answers, lat, ttft, tokens = {}, [], [], [0]
        lock = threading.Lock()
        errors = []

        def client(i):
            for k in range(requests):
                q = QUESTIONS[(i + k) % len(QUESTIONS)]
                try:
                    text, n, dt, first = chat(port, q, photo_url, max_tokens)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(str(e))
                    return
                with lock:
                    answers[(i, k)] = text
                    lat.append(dt)
                    ttft.append(first if first is not None else dt)
                    tokens[0] += n or 0

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        if errors:
            raise RuntimeError(f"{clients} clients: {errors[0]}")
        out[clients] = (tokens[0] / wall, lat, ttft, answers)
    return out


def run_server(binary, max_batch, extra):
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--addr", f"127.0.0.1:{port}", "--max-batch", str(max_batch),
         "--queue", "64", "--no-access-log", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(3600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode())
        time.sleep(0.5)
    raise RuntimeError("the server did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=str(ROOT / "target/release/omg-server"))
    ap.add_argument("--clients", default="1,2,4,8")
    ap.add_argument("--requests", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--photo", default=str(ROOT / "omg-demo/assets/chelsea.png"))
    ap.add_argument("server_args", nargs="*")
    a = ap.parse_args()
    extra = a.server_args or ["--random", "small", "--llm-weights", "int8"]
    clients = [int(c) for c in a.clients.split(",")]
    photo_url = "data:image/png;base64," + base64.b64encode(Path(a.photo).read_bytes()).decode()
    results = {}
    for max_batch in (1, 8):
        proc, port = run_server(a.server, max_batch, extra)
        try:
            chat(port, QUESTIONS[0], photo_url, 1)  # encodes the photo, warms up
            results[max_batch] = sweep(port, photo_url, clients, a.requests, a.max_tokens)
        finally:
            proc.terminate()
            proc.wait()
    print(f"server: {' '.join(extra)}; {a.requests} streamed requests per client, "
          f"max_tokens {a.max_tokens}, greedy\n")
    print("| clients | server | tokens/s | ratio | latency p50 / p95 / p99 (s) | TTFT p50 / p95 / p99 (s) |")
    print("|---|---|---|---|---|---|")
    same = True
    for c in clients:
        base = results[1][c][0]
        for mb in (1, 8):
            tps, lat, ttft, answers = results[mb][c]
            name = "one at a time" if mb == 1 else "batched (--max-batch 8)"
            p = lambda v: " / ".join(f"{percentile(v, q):.2f}" for q in (50, 95, 99))
            print(f"| {c} | {name} | {tps:.1f} | {tps / base:.2f} | {p(lat)} | {p(ttft)} |")
        if results[8][c][3] != results[1][c][3]:
            same = False
            diff = [k for k in results[1][c][3] if results[1][c][3][k] != results[8][c][3].get(k)]
            print(f"  answers differ at {c} clients: {diff[:4]}")
    print(f"\nbatched answers equal the one-at-a-time answers: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
