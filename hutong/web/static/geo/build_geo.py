"""Rebuild ``jilin_cities.json`` from ``../shared/data/geo/jilin_cities.geojson`` (run once by a developer).

Keeps each feature's ``name`` and ``cp`` (label point), simplifies each ring with Ramer-Douglas-Peucker
(tolerance 0.004 degrees, about 400 m: finer than a province-wide map can show) and rounds coordinates to
3 decimals.
The product reads only the output file; this script is not run at run time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TOLERANCE = 0.004


def _rdp(points: list, tol: float) -> list:
    """Ramer-Douglas-Peucker simplification (iterative, keeps the end points)."""
    if len(points) < 3:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        (x1, y1), (x2, y2) = points[a], points[b]
        dx, dy = x2 - x1, y2 - y1
        norm = (dx * dx + dy * dy) ** 0.5
        best, idx = 0.0, -1
        for i in range(a + 1, b):
            x0, y0 = points[i]
            d = abs(dy * x0 - dx * y0 + x2 * y1 - y2 * x1) / norm if norm else ((x0 - x1) ** 2 + (y0 - y1) ** 2) ** 0.5
            if d > best:
                best, idx = d, i
        if best > tol and idx > 0:
            keep[idx] = True
            stack += [(a, idx), (idx, b)]
    return [p for p, k in zip(points, keep, strict=True) if k]


def _ring(ring: list) -> list:
    out: list = []
    pts = [(float(p[0]), float(p[1])) for p in ring]
    if len(pts) > 8:
        pts = _rdp(pts[:-1], TOLERANCE) + [pts[-1]]
    for lon, lat in pts:
        pt = [round(lon, 3), round(lat, 3)]
        if not out or out[-1] != pt:
            out.append(pt)
    if out and out[0] != out[-1]:
        out.append(out[0])
    return out


def compact(doc: dict) -> dict:
    features = []
    for f in doc["features"]:
        geom = f["geometry"]
        if geom["type"] == "Polygon":
            coords = [_ring(r) for r in geom["coordinates"]]
        else:
            coords = [[_ring(r) for r in poly] for poly in geom["coordinates"]]
        props = {"name": f["properties"]["name"]}
        if f["properties"].get("cp"):
            props["cp"] = [round(x, 3) for x in f["properties"]["cp"]]
        features.append({"type": "Feature", "properties": props, "geometry": {"type": geom["type"], "coordinates": coords}})
    return {"type": "FeatureCollection", "features": features}


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/geo/jilin_cities.geojson")
    out = Path(__file__).with_name("jilin_cities.json")
    out.write_text(json.dumps(compact(json.loads(src.read_text(encoding="utf-8"))), ensure_ascii=False,
                          separators=(",", ":")), encoding="utf-8")
    print(out, out.stat().st_size)
