#!/usr/bin/env python3
"""Sends the full-size version of every abuse class to a running omg-server and reports,
for each, the status and code it got, the time to the answer, and how much the server's
peak memory grew meanwhile; /health is polled throughout and its slowest answer reported.

    scripts/abuse.py --url http://127.0.0.1:8080 --pid $(pgrep -n omg-server) [--photo P]

With --pid (a server on this machine, run by the same user) the peak is measured by
resetting the process's high-water mark (/proc/PID/clear_refs) before each request and
reading VmHWM after it. Exits 1 if a class is not refused as expected (4xx within 1 s,
peak growth under 64 MiB, /health within 100 ms), 0 otherwise. Standard library only.
"""

import argparse
import base64
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid):
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class Health(threading.Thread):
    """Polls /health every 50 ms and keeps the slowest answer."""

    def __init__(self, host, port):
        super().__init__(daemon=True)
        self.host, self.port = host, port
        self.slowest = 0.0
        self.failures = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                c = http.client.HTTPConnection(self.host, self.port, timeout=5)
                c.request("GET", "/health")
                ok = c.getresponse().status == 200
                c.close()
            except OSError:
                ok = False
            self.slowest = max(self.slowest, time.perf_counter() - t0)
            self.failures += not ok
            time.sleep(0.05)


def send(host, port, path, body, headers=None):
    """POSTs `body` (bytes); returns (status, code, seconds)."""
    h = {"Content-Type": "application/json", "Host": f"localhost:{port}"}
    h.update(headers or {})
    t0 = time.perf_counter()
    c = http.client.HTTPConnection(host, port, timeout=120)
    try:
        c.request("POST", path, body=body, headers=h)
        r = c.getresponse()
        text = r.read()
        status = r.status
    except OSError as e:
        return None, f"connection error: {e}", time.perf_counter() - t0
    finally:
        c.close()
    dt = time.perf_counter() - t0
    try:
        code = json.loads(text)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "-"
    return status, code, dt


def cases(photo_url):
    user = lambda text: {"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": photo_url}}]}
    chat = lambda msgs, **kw: json.dumps({"messages": msgs, "max_tokens": 4, **kw}).encode()
    huge_rle = {"mask_rle": {"size": [16384, 16384], "counts": "0000000"}}
    turns = [user("q")]
    for _ in range(100_000):
        turns += [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]
    json_h = {}
    return [
        ("chat, 4 mask_rle regions declaring 16384x16384", "/v1/chat/completions",
         chat([user("<region> " * 4)], regions=[huge_rle] * 4), json_h),
        ("chat, <region> x 131072 with one region", "/v1/chat/completions",
         chat([user("<region>" * 131072)], regions=[{"point": [1, 1]}]), json_h),
        ("chat, 100 000 history turns", "/v1/chat/completions", chat(turns), json_h),
        ("/v1/segment with an 8 MB prompt", "/v1/segment",
         json.dumps({"image": photo_url, "prompt": "a" * (8 << 20)}).encode(), json_h),
        ("text/plain POST from a foreign page", "/v1/chat/completions",
         chat([user("hi")]), {"Content-Type": "text/plain", "Origin": "http://evil.example",
                              "Host": "evil.example"}),
        ("force_seg 2^64-1", "/v1/segment",
         json.dumps({"image": photo_url, "prompt": "x", "force_seg": 18446744073709551615}).encode(),
         json_h),
        ("10 000 regions", "/v1/interactive",
         json.dumps({"image": photo_url, "regions": [{"point": [1, 1]}] * 10000}).encode(), json_h),
        ("1 M unknown fields", "/v1/segment",
         ("{" + ",".join(f'"f{i}":[{{}}]' for i in range(1_000_000)) + "}").encode(), json_h),
    ]


def half_sent(host, port, n, timeout_s):
    """Opens `n` connections that send half a request; returns the seconds until the
    server has closed them all (or None past `timeout_s`)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port))
        s.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: localhost\r\nContent-")
        socks.append(s)
    t0 = time.perf_counter()
    open_ = set(range(n))
    for s in socks:
        s.setblocking(False)
    while open_ and time.perf_counter() - t0 < timeout_s:
        for i in list(open_):
            try:
                if socks[i].recv(4096) == b"":
                    open_.discard(i)
            except BlockingIOError:
                pass
            except OSError:
                open_.discard(i)
        time.sleep(0.1)
    for s in socks:
        s.close()
    return None if open_ else time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--pid", type=int, help="the server's process id (for its memory)")
    ap.add_argument("--photo", default=str(ROOT / "omg-demo/assets/chelsea.png"))
    ap.add_argument("--connections", type=int, default=300)
    ap.add_argument("--header-timeout", type=float, default=30.0,
                    help="the longest time half-sent requests may be held (s)")
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    host, port = u.hostname, u.port or 80
    photo = base64.b64encode(Path(a.photo).read_bytes()).decode()
    photo_url = f"data:image/png;base64,{photo}"
    # the bodies are built first, so that building them does not hold up the poller
    requests = cases(photo_url)
    health = Health(host, port)
    health.start()
    failed = False
    print(f"| request | status | code | time (s) | peak growth (MiB) |\n|---|---|---|---|---|")
    for name, path, body, headers in requests:
        if a.pid:
            base = kib(a.pid, "VmRSS")
            reset_peak(a.pid)
        status, code, dt = send(host, port, path, body, headers)
        growth = (kib(a.pid, "VmHWM") - base) / 1024 if a.pid else float("nan")
        ok = status is not None and 400 <= status < 500 and dt < 1.0 and not growth >= 64
        failed |= not ok
        print(f"| {name} | {status} | `{code}` | {dt:.3f} | {growth:.1f} |{'' if ok else ' **FAILED**'}")
    t = half_sent(host, port, a.connections, a.header_timeout + 5)
    ok = t is not None and t <= a.header_timeout + 1
    failed |= not ok
    shown = "still open" if t is None else f"closed after {t:.1f} s"
    print(f"| {a.connections} half-sent requests | - | - | {shown} | - |{'' if ok else ' **FAILED**'}")
    health.stop.set()
    health.join()
    hok = health.slowest < 0.1 and health.failures == 0
    failed |= not hok
    print(f"\n/health: slowest {health.slowest * 1e3:.1f} ms, {health.failures} failures"
          f"{'' if hok else ' **FAILED**'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
