"""Residents: households, names, resident ID numbers, phones, addresses, ethnicity, chronic conditions."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from datetime import date, timedelta

from hutong.china import divisions as dv
from hutong.china.ids import resident_id_check_char
from hutong.sim import names
from hutong.sim.config import SimConfig

# 2020 census populations (万人) of the 9 cities; 梅河口 is part of 通化 here, 长白山 of 白山/延边.
_CITY_POP = {"2201": 906.7, "2202": 362.4, "2203": 181.5, "2204": 99.7, "2205": 130.3, "2206": 95.2,
             "2207": 225.3, "2208": 155.1, "2224": 194.2}
_MOBILE = ("130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 176 177 178 "
           "180 181 182 183 184 185 186 187 188 189 191 198 199").split()
_ROADS = ("人民大街 自由大路 解放大路 建设街 新华路 延安大街 同志街 重庆路 南湖大路 亚泰大街 卫星路 临河街 长江路 "
          "黄河路 松花江路 光明街 胜利街 和平路 繁荣路 幸福街 团结路 友谊街 朝阳路 青年路 文化街 工农大路").split()
_ETH = {
    "2224": names.Choice([("01", 62), ("10", 33), ("11", 4), ("03", 1)]),
    "220623": names.Choice([("01", 82), ("10", 15), ("11", 3)]),
    "220721": names.Choice([("01", 80), ("02", 13), ("11", 6), ("03", 1)]),
    "220323": names.Choice([("01", 62), ("11", 36), ("03", 1), ("10", 1)]),
    "": names.Choice([("01", 92), ("11", 5), ("10", 1.4), ("03", 0.8), ("02", 0.8)]),
}
# Household types: (name, weight)
_HH = names.Choice([("single_old", 10), ("single", 10), ("couple_old", 21), ("couple_mid", 18),
                    ("family", 27), ("three_gen", 14)])

CHRONIC = {
    # code: (prevalence 18-44, 45-64, 65+)
    "I10": (0.08, 0.35, 0.55),
    "E11.9": (0.03, 0.12, 0.20),
    "E78.5": (0.05, 0.15, 0.18),
    "I25.1": (0.0, 0.05, 0.15),
    "J44.9": (0.0, 0.03, 0.10),
}


@dataclass(slots=True)
class Person:
    """A resident as the truth knows them (source records derive from this)."""

    idx: int
    id: str
    household: int
    family: str
    given: str
    sex: str
    birth: date
    birth_county: str
    rid: str
    eth: str
    phone: str
    village: str
    line: str
    mother_name: str = ""
    chronic: tuple[str, ...] = ()
    # Household links the registration desks use (the household-rich error model, issue 14): a parent's
    # resident ID for a child, another member's phone, and the birth order of a twin (1, 2; 0 = no twin).
    guardian_rid: str = ""
    relative_phone: str = ""
    twin_order: int = 0
    prefs: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.family + self.given


class _Counties:
    def __init__(self) -> None:
        weights = []
        for city, pop in _CITY_POP.items():
            cnts = dv.children(city)
            sizes = [sum(len(dv.children(t)) for t in dv.children(c)) for c in cnts]
            tot = sum(sizes) or 1
            weights += [(c, pop * s / tot) for c, s in zip(cnts, sizes, strict=True)]
        self.pick = names.Choice(weights)
        self.jilin_real = [c for c in dv.jilin_counties() if not dv.is_statistical_only(c)]
        self.national = dv.national_counties(exclude_province="22")


class PersonFactory:
    """Builds households one after another; resident IDs unique by construction (see ``_rid``)."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.c = _Counties()
        self.end = date(cfg.start_year + cfg.years - 1, 12, 31)
        self.start = date(cfg.start_year, 1, 1)
        self._counters: dict[tuple[str, int, str], int] = {}
        self.n = 0

    def _rid(self, county: str, year: int, sex: str) -> tuple[date, str]:
        # The k-th person of (county, year, sex) gets day-of-year (k*211+h) mod days and sequence pair k//days:
        # unique without remembering issued numbers, and flat in memory.
        key = (county, year, sex)
        k = self._counters.get(key, 0)
        self._counters[key] = k + 1
        h = zlib.crc32(f"{self.cfg.seed}{county}{year}{sex}".encode())
        ndays = (date(year, 12, 31) - date(year, 1, 1)).days + 1
        last = (self.end - date(year, 1, 1)).days + 1 if year == self.end.year else ndays
        ndays = min(ndays, max(1, last))
        day = (k * 211 + h) % ndays
        pair = k // ndays
        seq = ((pair * 37 + (h >> 9)) % 500) * 2 + (1 if sex == "male" else 0)
        born = date(year, 1, 1) + timedelta(days=day)
        first17 = f"{county}{born:%Y%m%d}{seq:03d}"
        return born, first17 + resident_id_check_char(first17)

    def _home(self, rng: random.Random) -> str:
        county = self.c.pick.pick(rng)
        towns = dv.children(county)
        town = rng.choice(towns)
        return rng.choice(dv.children(town) or [town])

    @staticmethod
    def _line(rng: random.Random, village: str) -> str:
        vname = dv.division_name(village) or ""
        if vname.endswith("村委会"):
            return f"{vname[:-2]}{rng.randint(1, 12)}组{rng.randint(1, 180)}号"
        return (f"{rng.choice(_ROADS)}{rng.randint(1, 3999)}号{rng.randint(1, 30)}栋"
                f"{rng.randint(1, 6)}单元{rng.randint(1, 18)}{rng.randint(1, 4):02d}室")

    @staticmethod
    def phone(rng: random.Random) -> str:
        return f"{rng.choice(_MOBILE)}{rng.randrange(10**8):08d}"

    def _birth_county(self, rng: random.Random, home_county: str, year: int) -> str:
        r = rng.random()
        if year >= self.cfg.start_year or r < 0.88:
            if dv.is_statistical_only(home_county):
                # Development zones have no GB/T 2260 code: people there were born in the city's first district.
                return next(c for c in dv.children(home_county[:4]) if not dv.is_statistical_only(c))
            return home_county
        if r < 0.96:
            return rng.choice(self.c.jilin_real)
        return rng.choice(self.c.national)

    def _person(self, rng, hh, home, line, eth, sex, year, family=None, phone=None) -> Person:
        bc = self._birth_county(rng, home[:6], year)
        born, rid = self._rid(bc, year, sex)
        fam = family or names.surname(rng, eth)
        p = Person(self.n, "", hh, fam, names.given_name(rng, sex, year, eth), sex, born, bc, rid, eth,
                   phone or self.phone(rng), home, line)
        self.n += 1
        return p

    def _twin(self, rng: random.Random, first: Person) -> Person:
        """The second of twins: same birth date, birth county, parents, phone and address; own given name and
        a resident ID with the next free sequence number of that day (what the 派出所 issues to twins)."""
        sex = first.sex if rng.random() < 0.6 else ("female" if first.sex == "male" else "male")
        seq = int(first.rid[14:17])
        # odd sequence numbers are men's; +250 pairs keeps clear of the day's other numbers in this scheme
        seq2 = ((seq // 2 + 250) % 500) * 2 + (1 if sex == "male" else 0)
        first17 = f"{first.rid[:14]}{seq2:03d}"
        t = Person(self.n, "", first.household, first.family, names.given_name(rng, sex, first.birth.year, first.eth),
                   sex, first.birth, first.birth_county, first17 + resident_id_check_char(first17), first.eth,
                   first.phone, first.village, first.line, mother_name=first.mother_name,
                   guardian_rid=first.guardian_rid)
        self.n += 1
        first.twin_order, t.twin_order = 1, 2
        return t

    def household(self, hh: int) -> list[Person]:
        """One household (1-6 people) living at one address; members share the address, children the phone."""
        rng = random.Random(self.cfg.seed * 1_000_003 + hh)
        y0 = self.cfg.start_year
        home = self._home(rng)
        line = self._line(rng, home)
        ethc = _ETH.get(home[:4]) if home[:4] == "2224" else _ETH.get(home[:6])
        eth = (ethc or _ETH[""]).pick(rng)
        kind = _HH.pick(rng)
        out: list[Person] = []

        def age_year(lo: int, hi: int) -> int:
            return y0 - rng.randint(lo, hi)

        if kind in ("single_old", "single"):
            sex = "male" if rng.random() < 0.45 else "female"
            out.append(self._person(rng, hh, home, line, eth, sex, age_year(65, 92) if kind == "single_old" else age_year(20, 64)))
            return out
        if kind == "couple_old":
            hy = age_year(60, 88)
        elif kind == "couple_mid":
            hy = age_year(45, 64)
        else:
            hy = age_year(24, 52)
        husband = self._person(rng, hh, home, line, eth, "male", hy)
        wife_eth = eth if rng.random() < 0.9 else "01"
        wife = self._person(rng, hh, home, line, wife_eth, "female", min(y0 - 19, hy + rng.randint(-1, 4)))
        out += [husband, wife]
        if kind in ("family", "three_gen"):
            mother_age = y0 - wife.birth.year
            nkids = 1 if rng.random() < 0.75 else 2
            for _ in range(nkids):
                ky = wife.birth.year + rng.randint(22, 36)
                if ky > y0 - 1:
                    ky = y0 - rng.randint(1, 3)
                if ky <= wife.birth.year + 18:
                    continue
                kid = self._person(rng, hh, home, line, eth, "male" if rng.random() < 0.51 else "female", ky,
                                   family=husband.family if rng.random() < 0.95 else wife.family)
                if y0 - ky < 16:
                    kid.phone = wife.phone if rng.random() < 0.7 else husband.phone
                kid.guardian_rid = wife.rid if kid.phone == wife.phone else husband.rid
                out.append(kid)
                if self.cfg.variation.twins and rng.random() < self.cfg.variation.twins:
                    out.append(self._twin(rng, kid))
            # Babies born during the simulated years (their first records arrive as 王丽之子).
            if 20 <= mother_age <= 40 and rng.random() < 0.18:
                by = rng.randint(y0, y0 + self.cfg.years - 1)
                baby = self._person(rng, hh, home, line, eth, "male" if rng.random() < 0.51 else "female", by,
                                    family=husband.family, phone=wife.phone)
                baby.mother_name = wife.name
                baby.guardian_rid = wife.rid
                out.append(baby)
                if self.cfg.variation.twins and rng.random() < self.cfg.variation.twins:
                    out.append(self._twin(rng, baby))
        if kind == "three_gen":
            gy = husband.birth.year - rng.randint(22, 32)
            if y0 - gy <= 95:
                g = self._person(rng, hh, home, line, eth, "female" if rng.random() < 0.6 else "male", gy,
                                 family=husband.family)
                if g.sex == "female" and rng.random() < 0.7:
                    g.family = names.surname(rng, eth)
                if y0 - gy > 75 and rng.random() < 0.4:
                    g.phone = husband.phone
                out.append(g)
        if self.cfg.variation.relative_phone and len(out) > 1:
            for k, p in enumerate(out):
                others = [q.phone for q in out[:k] + out[k + 1:] if q.phone != p.phone]
                p.relative_phone = rng.choice(others) if others else ""
        for p in out:
            age = y0 - p.birth.year
            band = 0 if age < 45 else 1 if age < 65 else 2
            if age >= 18:
                p.chronic = tuple(c for c, prev in CHRONIC.items() if rng.random() < prev[band])
        return out
