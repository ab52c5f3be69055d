"""Load generator for CDS Hooks calls, run in its own process: keep-alive HTTP/1.1 POSTs, each with
its own ``Authorization: Bearer <JWT>`` (a CDS client signs one token per request, used once), so
``benchmarks/loadgen.py`` (one header set for every request) cannot drive it.

    python benchmarks/recognition/cdsload.py --url URL --requests-file calls.tsv --connections 8
``calls.tsv``: one request per line, ``<JWT>\\t<JSON body>``. Prints one JSON line: requests,
seconds, rps, p50/p95/p99/max latency (ms), status counts. Bounded by the file and ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from urllib.parse import urlsplit


async def _worker(host, port, path, calls, counter, deadline, latencies, statuses):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while counter[0] < len(calls) and time.perf_counter() < deadline:
            token, body = calls[counter[0]]
            counter[0] += 1
            head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n")
            t0 = time.perf_counter()
            writer.write(head.encode() + body)
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


async def run(url: str, calls: list[tuple[str, bytes]], connections: int, seconds: float) -> dict:
    parts = urlsplit(url)
    latencies: list[float] = []
    statuses: Counter = Counter()
    counter = [0]
    start = time.perf_counter()
    await asyncio.gather(*[_worker(parts.hostname, parts.port or 80, parts.path, calls, counter, start + seconds,
                                   latencies, statuses) for _ in range(connections)])
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2) if latencies else None

    return {"requests": len(latencies), "connections": connections, "seconds": round(elapsed, 3),
            "rps": round(len(latencies) / elapsed, 1) if elapsed else 0, "p50_ms": pct(0.50), "p95_ms": pct(0.95),
            "p99_ms": pct(0.99), "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
            "statuses": dict(statuses)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--requests-file", required=True)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=120)
    args = ap.parse_args()
    calls = []
    with open(args.requests_file, "rb") as fh:
        for line in fh:
            if line.strip():
                token, body = line.rstrip(b"\n").split(b"\t", 1)
                calls.append((token.decode(), body))
    print(json.dumps(asyncio.run(run(args.url, calls, args.connections, args.seconds))))


if __name__ == "__main__":
    main()
