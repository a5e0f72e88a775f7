#!/usr/bin/env python3
"""A soak of omg-server: mixed valid and invalid requests for a while, the server's
resident memory sampled every 10 s.

    scripts/soak.py [--minutes 30] [--rate 5] [--server target/release/omg-server] [-- SERVER ARGS...]

Starts the server (default: the built-in demo bundle) on a free loopback port and sends
`--rate` requests per second from four threads: chat completions (blocking and
streamed, some abandoned after their first chunk), task endpoints, and invalid ones
(bad JSON, foreign hosts, lists and text past the limits, masks of the wrong size,
half-sent requests). Prints the RSS samples, and exits 1 unless every valid request
succeeded, every invalid one got its 4xx, and the RSS at the end is within 10 % of its
value after the warm-up (the first tenth of the run). Standard library only.
"""

import argparse
import base64
import http.client
import json
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def post(port, path, body, headers=None, stream=False, abandon=False):
    h = {"Content-Type": "application/json", "Host": f"localhost:{port}"}
    h.update(headers or {})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        c.request("POST", path, body=body if isinstance(body, bytes) else json.dumps(body).encode(),
                  headers=h)
        r = c.getresponse()
        if abandon:
            r.readline()
            return r.status
        r.read()
        return r.status
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=5)
    ap.add_argument("--server", default=str(ROOT / "target/release/omg-server"))
    ap.add_argument("--photo", default=str(ROOT / "omg-demo/assets/chelsea.png"))
    ap.add_argument("server_args", nargs="*")
    a = ap.parse_args()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([a.server, "--addr", f"127.0.0.1:{port}", "--no-access-log",
                             "--queue", "32", *a.server_args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.5)
    photo = "data:image/png;base64," + base64.b64encode(Path(a.photo).read_bytes()).decode()
    user = lambda q: {"role": "user", "content": [{"type": "text", "text": q},
                                                  {"type": "image_url", "image_url": {"url": photo}}]}
    valid = [
        lambda: post(port, "/v1/chat/completions", {"messages": [user("What is it?")], "max_tokens": 8}),
        lambda: post(port, "/v1/chat/completions", {"messages": [user("hi")], "max_tokens": 16, "stream": True}),
        lambda: post(port, "/v1/segment", {"image": photo, "prompt": "the cat", "max_tokens": 4, "force_seg": 1}),
        lambda: post(port, "/v1/caption", {"image": photo, "max_tokens": 6}),
        lambda: post(port, "/v1/interactive", {"image": photo, "regions": [{"point": [200, 150]}, {"box": [10, 10, 300, 200]}]}),
    ]
    # (request, the status it must get)
    invalid = [
        (lambda: post(port, "/v1/chat/completions", b"{not json"), 400),
        (lambda: post(port, "/v1/chat/completions", {"messages": [user("x" * 9000)]}), 400),
        (lambda: post(port, "/v1/chat/completions", {"messages": [user("hi")]}, {"Host": "evil.example"}), 403),
        (lambda: post(port, "/v1/chat/completions", {"messages": [user("hi")]}, {"Content-Type": "text/plain"}), 415),
        (lambda: post(port, "/v1/interactive", {"image": photo, "regions": [{"point": [1, 1]}] * 5000}), 400),
        (lambda: post(port, "/v1/interactive", {"image": photo, "regions": [{"mask_rle": {"size": [9000, 9000], "counts": "0"}}]}), 400),
    ]
    stats = {"valid": 0, "valid_failed": 0, "invalid": 0, "invalid_wrong": 0, "abandoned": 0}
    lock = threading.Lock()
    end = time.time() + a.minutes * 60
    stop = threading.Event()

    def worker(seed):
        rng = random.Random(seed)
        while time.time() < end:
            t0 = time.time()
            roll = rng.random()
            try:
                if roll < 0.55:
                    ok = rng.choice(valid)() == 200
                    with lock:
                        stats["valid"] += 1
                        stats["valid_failed"] += not ok
                elif roll < 0.65:
                    post(port, "/v1/chat/completions",
                         {"messages": [user("hi")], "max_tokens": 400, "stream": True}, abandon=True)
                    with lock:
                        stats["abandoned"] += 1
                elif roll < 0.7:
                    sk = socket.create_connection(("127.0.0.1", port))
                    sk.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99\r\n\r\n{")
                    sk.close()
                else:
                    req, want = rng.choice(invalid)
                    got = req()
                    with lock:
                        stats["invalid"] += 1
                        stats["invalid_wrong"] += got != want
            except OSError:
                with lock:
                    stats["valid_failed"] += 1
            time.sleep(max(0.0, 4 / a.rate - (time.time() - t0)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    samples = []
    t_start = time.time()
    while time.time() < end:
        samples.append((time.time() - t_start, rss_kib(proc.pid)))
        print(f"{samples[-1][0]:7.0f} s  RSS {samples[-1][1] / 1024:8.1f} MiB  {stats}", flush=True)
        time.sleep(10)
    for t in threads:
        t.join()
    samples.append((time.time() - t_start, rss_kib(proc.pid)))
    proc.terminate()
    proc.wait()
    warm = [r for t, r in samples if t >= a.minutes * 6][0]
    final = samples[-1][1]
    drift = (final - warm) / warm
    ok = stats["valid_failed"] == 0 and stats["invalid_wrong"] == 0 and abs(drift) <= 0.10
    print(f"\nRSS after warm-up {warm / 1024:.1f} MiB, at the end {final / 1024:.1f} MiB "
          f"({drift * 100:+.1f} %); {stats}; {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
