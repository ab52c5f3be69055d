"""Administrative divisions (NBS 2023 statistical codes; GB/T 2260 for levels 1-3) and Jilin city platforms.

Codes are strings: 2 digits (province), 4 (地级 city), 6 (县级 county), 9 (乡级 township/street),
12 (村/居委会 village/community). Jilin is complete to level 5; the rest of China to level 3.
Data is loaded lazily from the gzip CSV files in ``hutong/china/data`` (see SOURCE.md there).
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_DATA = Path(__file__).resolve().parent / "data"

JILIN = "22"


@dataclass(frozen=True)
class Platform:
    """A city-level platform (市级平台) of the province: 9 cities plus 梅河口 and 长白山."""

    code: str
    name: str
    #: Approximate centre (latitude, longitude).
    lat: float
    lon: float
    #: County codes (6 digits) whose institutions belong to this platform.
    counties: tuple[str, ...]
    #: Township codes (9 digits) taken over from their county (长白山's special townships).
    townships: tuple[str, ...] = ()


class _Tables:
    def __init__(self) -> None:
        self.name: dict[str, str] = {}
        self.parent: dict[str, str] = {}
        self.children: dict[str, list[str]] = {}
        for fname in ("cn_divisions.csv.gz", "jilin_divisions.csv.gz"):
            with gzip.open(_DATA / fname, "rb") as fh:
                for row in csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")):
                    code = row["code"]
                    if code in self.name:
                        continue
                    self.name[code] = row["name"]
                    par = row["parent"]
                    if par:
                        self.parent[code] = par
                        self.children.setdefault(par, []).append(code)
        for kids in self.children.values():
            kids.sort()


@lru_cache(maxsize=1)
def _t() -> _Tables:
    return _Tables()


def is_known_division(code: str) -> bool:
    """True if ``code`` is a known division code (any level present in the shipped data)."""
    return code in _t().name


def division_name(code: str) -> str | None:
    """The official short name of a division (``南关区``), or None if unknown."""
    return _t().name.get(code)


def parent(code: str) -> str | None:
    """The parent division code (``220102`` → ``2201``), or None for a province or unknown code."""
    return _t().parent.get(code)


def children(code: str) -> list[str]:
    """Sorted child division codes (empty for villages, unknown codes, and non-Jilin counties)."""
    return list(_t().children.get(code, ()))


def level(code: str) -> int:
    """1 province, 2 city, 3 county, 4 township, 5 village (from the code length)."""
    return {2: 1, 4: 2, 6: 3, 9: 4, 12: 5}[len(code)]


def ancestors(code: str) -> list[str]:
    """Codes from the province down to ``code`` inclusive."""
    out = [code]
    p = parent(code)
    while p:
        out.append(p)
        p = parent(p)
    return out[::-1]


def full_name(code: str, sep: str = "") -> str:
    """``吉林省长春市南关区南岭街道`` — province down to ``code``; ``市辖区`` placeholders are skipped."""
    parts = [division_name(c) or "" for c in ancestors(code)]
    return sep.join(p for p in parts if p and p not in ("市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"))


def is_statistical_only(code: str) -> bool:
    """True for NBS statistical units (经济开发区, 高新区 …, county codes ``xxxx7x``) with no GB/T 2260 code."""
    return len(code) >= 6 and code[4] == "7"


def jilin_cities() -> list[str]:
    """The 9 地级 codes of Jilin (长春 … 延边州)."""
    return children(JILIN)


def jilin_counties() -> list[str]:
    """All 69 county-level codes of Jilin, statistical units included."""
    return [c for city in jilin_cities() for c in children(city)]


def national_counties(exclude_province: str | None = None) -> list[str]:
    """County-level codes of China with a GB/T 2260 code (statistical units and ``市辖区`` rows excluded)."""
    t = _t()
    return sorted(
        c
        for c, n in t.name.items()
        if len(c) == 6 and not is_statistical_only(c) and n != "市辖区"
        and (exclude_province is None or not c.startswith(exclude_province))
    )


def position(code: str) -> tuple[float, float] | None:
    """Approximate (lat, lon) of a Jilin county seat or city centre; districts use their city centre."""
    if code in _COUNTY_POS:
        return _COUNTY_POS[code]
    if len(code) >= 4 and code[:4] in _CITY_POS:
        return _CITY_POS[code[:4]]
    return None


# City centres (latitude N, longitude E), rounded public facts.
_CITY_POS: dict[str, tuple[float, float]] = {
    "2201": (43.88, 125.32),  # 长春
    "2202": (43.84, 126.55),  # 吉林
    "2203": (43.17, 124.35),  # 四平
    "2204": (42.89, 125.14),  # 辽源
    "2205": (41.73, 125.94),  # 通化
    "2206": (41.94, 126.42),  # 白山
    "2207": (45.14, 124.83),  # 松原
    "2208": (45.62, 122.84),  # 白城
    "2224": (42.89, 129.51),  # 延吉 (延边州府)
}

# County seats outside city centres.
_COUNTY_POS: dict[str, tuple[float, float]] = {
    "220112": (43.52, 125.66), "220113": (44.15, 125.84), "220122": (44.43, 125.18),
    "220182": (44.83, 126.53), "220183": (44.54, 125.70), "220184": (43.50, 124.82),
    "220221": (43.67, 126.50), "220281": (43.72, 127.34), "220282": (42.97, 126.75),
    "220283": (44.41, 126.96), "220284": (42.95, 126.06), "220322": (43.31, 124.34),
    "220323": (43.35, 125.31), "220382": (43.52, 123.50), "220421": (42.68, 125.53),
    "220422": (42.93, 125.01), "220521": (41.68, 125.76), "220523": (42.68, 126.05),
    "220524": (42.28, 125.74), "220581": (42.53, 125.71), "220582": (41.13, 126.19),
    "220605": (42.06, 126.59), "220621": (42.33, 127.28), "220622": (42.39, 126.81),
    "220623": (41.42, 128.20), "220681": (41.81, 126.92), "220721": (45.12, 124.82),
    "220722": (44.28, 123.97), "220723": (45.00, 124.03), "220781": (44.99, 126.05),
    "220821": (45.85, 123.20), "220822": (44.81, 123.09), "220881": (45.34, 122.79),
    "220882": (45.51, 124.29), "222402": (42.97, 129.84), "222403": (43.37, 128.23),
    "222404": (42.86, 130.37), "222405": (42.77, 129.43), "222406": (42.55, 129.01),
    "222424": (43.31, 129.77), "222426": (43.11, 128.90),
    # 长白山's special townships (池北/池西/池南) sit near 二道白河 / 松江河 / 漫江.
    "222426120": (42.41, 128.12), "220621120": (42.20, 127.50), "220621121": (41.99, 127.60),
}

#: 长白山保护开发区管理委员会: no GB/T 2260 code exists, so Hutong uses platform code ``2290`` (documented).
CHANGBAISHAN_TOWNSHIPS = ("222426120", "220621120", "220621121")
MEIHEKOU = "220581"


@lru_cache(maxsize=1)
def jilin_platforms() -> tuple[Platform, ...]:
    """The 11 city platforms: 9 cities (code = 4-digit city code), 梅河口 (``220581``, a county-level city
    under 通化 run as a province-managed pilot city) and 长白山 (``2290``, the management area that takes
    over the special townships 池北区/池西区/池南区 from 安图县 and 抚松县)."""
    out = []
    for city in jilin_cities():
        counties = tuple(c for c in children(city) if c != MEIHEKOU)
        lat, lon = _CITY_POS[city]
        out.append(Platform(city, division_name(city) or city, lat, lon, counties))
    out.append(Platform(MEIHEKOU, "梅河口市", *_COUNTY_POS[MEIHEKOU], (MEIHEKOU,)))
    out.append(Platform("2290", "长白山保护开发区", 42.41, 128.12, (), CHANGBAISHAN_TOWNSHIPS))
    return tuple(out)


def platform_of(code: str) -> str | None:
    """The platform code a Jilin division (county, township or village) belongs to."""
    if not code.startswith(JILIN) or len(code) < 6:
        return None
    if len(code) >= 9 and code[:9] in CHANGBAISHAN_TOWNSHIPS:
        return "2290"
    if code[:6] == MEIHEKOU:
        return MEIHEKOU
    return code[:4]
