"""A small keep-alive HTTP/1.1 load generator on asyncio streams, run in its own process.

Python HTTP client libraries spend more CPU per request than the server under test, which
would measure the client; this one only writes a request line and reads Content-Length bytes.
Bounded by request count and time; loopback only.

    python benchmarks/loadgen.py --url-file urls.txt --connections 16 --requests 20000 --seconds 30
Prints one JSON line: requests, seconds, rps, p50/p95/p99/max latency (ms), status counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from urllib.parse import urlsplit


async def _worker(host, port, paths, counter, deadline, latencies, statuses, extra_headers, method, bodies):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            i = counter[0]
            if i >= counter[1] or time.perf_counter() > deadline:
                return
            counter[0] += 1
            path = paths[i % len(paths)]
            body = bodies[i % len(bodies)] if bodies else b""
            head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra_headers}"
            if body:
                head += f"Content-Length: {len(body)}\r\n"
            req = (head + "\r\n").encode() + body
            t0 = time.perf_counter()
            writer.write(req)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:].strip())
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            statuses[status_line.split(b" ", 2)[1].decode() if status_line else "closed"] += 1
    finally:
        writer.close()


async def run(urls, connections, total, seconds, headers="", method="GET", bodies=None):
    parts = urlsplit(urls[0])
    host, port = parts.hostname, parts.port or 80
    paths = [urlsplit(u).path + (("?" + urlsplit(u).query) if urlsplit(u).query else "") for u in urls]
    counter = [0, total]
    latencies: list[float] = []
    statuses: Counter = Counter()
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*[
        _worker(host, port, paths, counter, deadline, latencies, statuses, headers, method, bodies)
        for _ in range(connections)
    ])
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2) if latencies else None

    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1) if elapsed else 0,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "statuses": dict(statuses),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url-file", required=True)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--method", default="GET")
    ap.add_argument("--body-file", default=None, help="one request body per line (POST)")
    args = ap.parse_args()
    with open(args.url_file) as fh:
        urls = [line.strip() for line in fh if line.strip()]
    bodies = None
    if args.body_file:
        with open(args.body_file, "rb") as fh:
            bodies = [line.rstrip(b"\n") for line in fh if line.strip()]
    headers = "".join(h + "\r\n" for h in args.header)
    result = asyncio.run(run(urls, args.connections, args.requests, args.seconds, headers, args.method, bodies))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
