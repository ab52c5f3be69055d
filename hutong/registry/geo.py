"""Positions: great-circle distance, China's map-service coordinate systems, the province's cities.

The registry stores every position as **WGS-84** (``Location.position``, as FHIR defines it). Chinese
map services (高德/腾讯 GCJ-02, 百度 BD-09) publish shifted coordinates: convert them on input with
``gcj02_to_wgs84`` / ``bd09_to_wgs84`` (the API takes ``datum=gcj02|bd09`` and does it). The conversion
is the published GCJ-02 offset formula inverted by fixed-point iteration (error well below a metre
inside China); outside China GCJ-02 equals WGS-84.

City boundaries come from the web layer's map (``hutong/web/static/geo/jilin_cities.json``, Apache-2.0,
see its SOURCE.md): used to place imported clinics inside their city and to name a point's city."""

from __future__ import annotations

import json
import math
import random
from functools import lru_cache
from pathlib import Path

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
_GEO = Path(__file__).resolve().parents[1] / "web" / "static" / "geo" / "jilin_cities.json"

#: Division code (4 digits) of each city feature's name in the map.
CITY_CODES = {"长春市": "2201", "吉林市": "2202", "四平市": "2203", "辽源市": "2204", "通化市": "2205",
              "白山市": "2206", "松原市": "2207", "白城市": "2208", "延边朝鲜族自治州": "2224"}


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two WGS-84 points (haversine on the mean sphere)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


# ---- GCJ-02 / BD-09 ---------------------------------------------------------------------------------
_A = 6378245.0
_EE = 0.00669342162296594323


def _outside_china(lat: float, lon: float) -> bool:
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _offset(lat: float, lon: float) -> tuple[float, float]:
    x, y = lon - 105.0, lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
            + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
            + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
            + (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
            + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
            + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
            + (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0)
    rad = math.radians(lat)
    magic = 1 - _EE * math.sin(rad) ** 2
    sq = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sq) * math.pi)
    dlon = (dlon * 180.0) / (_A / sq * math.cos(rad) * math.pi)
    return dlat, dlon


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """WGS-84 → GCJ-02 (what a Chinese map service shows for a true position)."""
    if _outside_china(lat, lon):
        return lat, lon
    dlat, dlon = _offset(lat, lon)
    return lat + dlat, lon + dlon


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 → WGS-84, by iterating the forward formula until it reproduces the input (< 1e-9°)."""
    if _outside_china(lat, lon):
        return lat, lon
    wlat, wlon = lat, lon
    for _ in range(30):
        glat, glon = wgs84_to_gcj02(wlat, wlon)
        dlat, dlon = glat - lat, glon - lon
        if abs(dlat) < 1e-9 and abs(dlon) < 1e-9:
            break
        wlat, wlon = wlat - dlat, wlon - dlon
    return wlat, wlon


_XPI = math.pi * 3000.0 / 180.0


def bd09_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """BD-09 (百度) → GCJ-02."""
    x, y = lon - 0.0065, lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _XPI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _XPI)
    return z * math.sin(theta), z * math.cos(theta)


def bd09_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """BD-09 → WGS-84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lat, lon))


def to_wgs84(lat: float, lon: float, datum: str = "wgs84") -> tuple[float, float]:
    """A position given in ``datum`` (``wgs84``, ``gcj02``, ``bd09``) as WGS-84."""
    if datum == "wgs84":
        return lat, lon
    if datum == "gcj02":
        return gcj02_to_wgs84(lat, lon)
    if datum == "bd09":
        return bd09_to_wgs84(lat, lon)
    raise ValueError(f"unknown datum {datum!r} (wgs84, gcj02, bd09)")


# ---- the province's cities ----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def city_polygons() -> dict[str, list[list[list[tuple[float, float]]]]]:
    """City code → polygons (each a list of rings of (lon, lat))."""
    data = json.loads(_GEO.read_text(encoding="utf-8"))
    out: dict[str, list] = {}
    for f in data["features"]:
        code = CITY_CODES.get(f["properties"]["name"])
        if code is None:
            continue
        g = f["geometry"]
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        out[code] = [[[(p[0], p[1]) for p in ring] for ring in poly] for poly in polys]
    return out


def _in_ring(lon: float, lat: float, ring) -> bool:
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def in_city(lat: float, lon: float, city: str) -> bool:
    """True when the point lies inside the city (4-digit code; 梅河口 and 长白山 lie inside 通化 and 白山)."""
    for poly in city_polygons().get(city[:4], ()):
        if _in_ring(lon, lat, poly[0]) and not any(_in_ring(lon, lat, hole) for hole in poly[1:]):
            return True
    return False


def city_at(lat: float, lon: float) -> str | None:
    """The 4-digit code of the city containing the point, or None outside the province."""
    for code in city_polygons():
        if in_city(lat, lon, code):
            return code
    return None


def point_in_city(city: str, rng: random.Random, near: tuple[float, float] | None = None,
                  spread_km: float = 8.0) -> tuple[float, float]:
    """A random point inside the city: near ``near`` (within about ``spread_km``) when that stays inside,
    else anywhere in the city's bounding box (rejection sampling)."""
    polys = city_polygons()[city[:4]]
    if near is not None:
        for _ in range(50):
            dlat = rng.uniform(-spread_km, spread_km) / 111.2
            dlon = rng.uniform(-spread_km, spread_km) / (111.2 * math.cos(math.radians(near[0])))
            lat, lon = near[0] + dlat, near[1] + dlon
            if in_city(lat, lon, city):
                return round(lat, 6), round(lon, 6)
    pts = [p for poly in polys for p in poly[0]]
    lo_lon, hi_lon = min(p[0] for p in pts), max(p[0] for p in pts)
    lo_lat, hi_lat = min(p[1] for p in pts), max(p[1] for p in pts)
    while True:
        lat, lon = rng.uniform(lo_lat, hi_lat), rng.uniform(lo_lon, hi_lon)
        if in_city(lat, lon, city):
            return round(lat, 6), round(lon, 6)
