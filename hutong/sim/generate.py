"""The simulation driver: registry first, then household after household, streaming every resource."""

from __future__ import annotations

import bisect
import itertools
import math
import multiprocessing
import os
import random
import shutil
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from hutong.china import divisions as dv
from hutong.sim import clinical_data as C
from hutong.sim import names
from hutong.sim import systems as S
from hutong.sim.config import SimConfig
from hutong.sim.institutions import Org, Registry
from hutong.sim.residents import Person, PersonFactory
from hutong.sim.writer import RESOURCE_ORDER, Writer

_TZ = "+08:00"
_MONTH_CUM = list(itertools.accumulate(C.MONTHS))
_SOURCE_HEADER = ("source_patient_id", "person_id", "organization_id", "first_visit", "variations")
_PERSON_HEADER = ("person_id", "household", "name", "sex", "birth_date", "resident_id", "ethnicity", "phone",
                  "division", "address_line")
_REPEAT_HEADER = ("person_id", "panel", "first_report", "first_organization", "first_date", "repeat_report",
                  "repeat_organization", "repeat_date", "days_apart")
_TRUTH = (("source_patients", _SOURCE_HEADER), ("persons", _PERSON_HEADER), ("repeat_tests", _REPEAT_HEADER))
#: The simulation a forked worker process inherits (set just before the pool forks).
_FORKED: Simulation | None = None


#: Households per chunk (at least).
CHUNK_HOUSEHOLDS = 1000


def chunk_households(cfg: SimConfig) -> int:
    """Households per chunk: ``CHUNK_HOUSEHOLDS``, more for very large runs so that chunk numbers
    stay below 1,000 (they are the leading digits of the record-number blocks)."""
    return max(CHUNK_HOUSEHOLDS, -(-cfg.residents // 900))


def _generate_chunk_in_worker(c: int, households: list, out: Path) -> Path:
    return _FORKED.generate_chunk(c, households, out)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _ts(d: datetime) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}+08:00"


class _Ids:
    """Opaque, deterministic ids: 80 random bits from a generator seeded by the run's seed. Opaque so that ids
    do not leak which source records belong to the same person; deterministic because the generation order is."""

    def __init__(self, seed: int) -> None:
        self._bits = random.Random(f"hutong-sim-ids:{seed}").getrandbits

    def __call__(self) -> str:
        return f"{self._bits(80):020x}"

    def uid(self) -> str:
        """A DICOM UID under 2.25 (a 127-bit random integer, as for UUID-derived UIDs)."""
        return f"2.25.{self._bits(127)}"


class Simulation:
    """One run. Use :func:`simulate` unless you need the pieces."""

    def __init__(self, cfg: SimConfig, out: Path) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.ids = _Ids(cfg.seed)
        self.reg = Registry(cfg)
        self.people = PersonFactory(cfg)
        self.start = datetime(cfg.start_year, 1, 1)
        self.end = datetime(cfg.start_year + cfg.years, 1, 1)
        self.chunk = 0
        self.mrn: dict[str, int] = {}
        self.report_no: dict[str, int] = {}
        self.visit_no: dict[str, int] = {}
        self.org_by_id = {o.id: o for o in self.reg.orgs}
        self._prov = [o for o in self.reg.tertiary_by_platform.get("2201", []) if o.kind == "general"][:6]
        self._out_dx = {}
        for code, (w, s, o, lo, hi) in C.OUTPATIENT.items():
            self._out_dx[code] = (w, s, o, lo, hi)

    # ---- institutions a person uses ------------------------------------------------------------------------
    def _prefs(self, rng: random.Random, p: Person) -> dict[str, list[Org]]:
        reg = self.reg
        village, town, county = p.village, p.village[:9], p.village[:6]
        primary = []
        if village in reg.by_village:
            primary.append(reg.by_village[village])
        primary += reg.by_township.get(town, [])
        if not primary:
            cp = reg.by_county.get(county, {})
            primary = (cp.get("chc", []) + cp.get("thc", []))[:3]
        platform = dv.platform_of(village) or county[:4]
        secondary = reg.by_county.get(county, {}).get("secondary", [])
        if not secondary:
            secondary = [o for c in dv.children(county[:4]) for o in reg.by_county.get(c, {}).get("secondary", [])][:4]
        tertiary = reg.tertiary_by_platform.get(platform) or reg.tertiary_by_platform.get(county[:4]) or self._prov
        if not secondary:
            secondary = tertiary
        if not primary:
            primary = secondary
        # Each person has a favourite in every tier, and sometimes goes elsewhere.
        prefs = {
            "primary": primary, "secondary": secondary, "tertiary": tertiary, "provincial": self._prov,
            "fav": {"primary": rng.choice(primary), "secondary": rng.choice(secondary),
                    "tertiary": rng.choice(tertiary), "provincial": rng.choice(self._prov)},
        }
        return prefs

    def _pick_org(self, rng: random.Random, prefs: dict, tier: str) -> Org:
        if rng.random() < 0.8:
            return prefs["fav"][tier]
        return rng.choice(prefs[tier])

    # ---- run ------------------------------------------------------------------------------------------------
    def run(self, jobs: int | None = None) -> dict:
        """Generate everything. Households are cut into fixed chunks that ``jobs`` processes
        generate independently (each chunk has its own id stream and record-number block) and
        that are then concatenated in order: the output depends on the seed, never on ``jobs``."""
        cfg = self.cfg
        if self.out.exists():
            for t in RESOURCE_ORDER:
                (self.out / f"{t}.ndjson").unlink(missing_ok=True)
            shutil.rmtree(self.out / "institutions", ignore_errors=True)
        w = self.w = Writer(self.out, cfg.per_institution)
        for res in self.reg.resources():
            w.write(res)
        for name, header in _TRUTH:
            w.truth(name, header)
        chunks_dir = self.out / ".chunks"
        shutil.rmtree(chunks_dir, ignore_errors=True)
        chunks_dir.mkdir()
        n_people, hh = 0, 0
        per_chunk = chunk_households(cfg)
        person_ids = _Ids(cfg.seed)  # residents are numbered here, in order; chunks have their own streams

        def chunks():
            nonlocal n_people, hh
            c = 0
            while n_people < cfg.residents:
                households = []
                for _ in range(per_chunk):
                    if n_people >= cfg.residents:
                        break
                    members = []
                    for p in self.people.household(hh):
                        if n_people >= cfg.residents:
                            break
                        n_people += 1
                        p.id = "P" + person_ids()
                        members.append(p)
                    households.append((hh, members))
                    hh += 1
                yield c, households
                c += 1

        jobs = max(1, jobs or os.cpu_count() or 1)
        if jobs == 1:
            for c, households in chunks():
                w.append_chunk(self.generate_chunk(c, households, chunks_dir / f"{c:04d}"))
        else:
            global _FORKED
            _FORKED = self
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
                pending: deque = deque()
                for c, households in chunks():
                    pending.append(pool.submit(_generate_chunk_in_worker, c, households, chunks_dir / f"{c:04d}"))
                    while len(pending) > 2 * jobs:  # bounded memory: finished chunks are merged in order
                        w.append_chunk(pending.popleft().result())
                while pending:
                    w.append_chunk(pending.popleft().result())
            _FORKED = None
        shutil.rmtree(chunks_dir, ignore_errors=True)
        w.close()
        manifest = {
            "generator": "hutong simulate",
            "config": cfg.to_dict(),
            "counts": w.counts,
            "residents": n_people,
            "households": hh,
            "total_resources": sum(w.counts.values()),
            "files": [f"{t}.ndjson" for t in RESOURCE_ORDER],
            "truth": ["truth/source_patients.csv", "truth/persons.csv", "truth/repeat_tests.csv"],
        }
        (self.out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        return manifest

    def generate_chunk(self, c: int, households: list, out: Path) -> Path:
        """Clinical activity of one chunk of households into ``out`` (a chunk folder merged later)."""
        self.chunk = c
        self.ids = _Ids(f"{self.cfg.seed}:chunk:{c}")
        self.mrn, self.report_no, self.visit_no = {}, {}, {}
        w = self.w = Writer(out, self.cfg.per_institution)
        self.t_src, self.t_person, self.t_repeat = (w.truth(name, header) for name, header in _TRUTH)
        for hh, members in households:
            rng = random.Random(self.cfg.seed * 7_000_003 + hh)
            for p in members:
                self._person(rng, p)
        w.close(merge_patients=False)
        return out

    # ---- one person -----------------------------------------------------------------------------------------
    def _person(self, rng: random.Random, p: Person) -> None:
        self.t_person.writerow((p.id, p.household, p.name, p.sex, p.birth.isoformat(), p.rid, p.eth, p.phone,
                                p.village, p.line))
        prefs = self._prefs(rng, p)
        cfg = self.cfg
        born = datetime(p.birth.year, p.birth.month, p.birth.day)
        events: list[tuple[datetime, str, str, str]] = []  # (when, class, dx, tier)
        if born >= self.start:
            # Born in hospital during the simulated years.
            tier = "tertiary" if rng.random() < 0.4 else "secondary"
            events.append((born + timedelta(hours=rng.randint(1, 40)), "IMP", "Z38.0", tier))
        for y in range(cfg.years):
            year = cfg.start_year + y
            age = year - p.birth.year
            if age < 0:
                continue
            band = 0 if age < 5 else 1 if age < 15 else 2 if age < 45 else 3 if age < 65 else 4
            lam_o = (5.0, 2.0, 2.5, 4.5, 8.0)[band] + 2.0 * len(p.chronic)
            lam_e = (0.3, 0.15, 0.12, 0.12, 0.2)[band]
            lam_i = (0.08, 0.03, 0.06, 0.15, 0.35)[band]
            if p.sex == "female" and 22 <= age <= 38:
                lam_i += 0.04
            for cls, lam in (("AMB", lam_o), ("EMER", lam_e), ("IMP", lam_i)):
                for _ in range(_poisson(rng, lam * cfg.visit_scale)):
                    m = bisect.bisect_right(_MONTH_CUM, rng.random() * _MONTH_CUM[-1])
                    d = datetime(year, m + 1, 1) + timedelta(days=rng.randrange(28))
                    if d < born:
                        continue
                    dx = self._diagnosis(rng, p, cls, age, m + 1)
                    events.append((d, cls, dx, ""))
        events.sort()
        src: dict[str, str] = {}
        state = {"base": {}, "first": True}
        for when, cls, dx, tier in events:
            self._encounter(rng, p, prefs, src, state, when, cls, dx, tier)

    def _diagnosis(self, rng: random.Random, p: Person, cls: str, age: int, month: int) -> str:
        if cls == "AMB":
            if p.chronic and rng.random() < 0.55:
                return rng.choice(p.chronic)
            season = 0 if month in (11, 12, 1, 2, 3) else 1 if month in (6, 7, 8) else 2
            pairs = [(c, w[season]) for c, w in C.OUTPATIENT.items() if w[3] <= age <= w[4]]
            return names.Choice(pairs).pick(rng)
        table = C.INPATIENT if cls == "IMP" else C.EMERGENCY
        band = 0 if age < 15 else 1 if age < 65 else 2
        pairs = [(c, w[band]) for c, w in table.items() if w[band] > 0]
        if cls == "IMP" and p.sex == "female" and 20 <= age <= 42:
            pairs.append(("O80", 12.0))
        return names.Choice(pairs).pick(rng)

    # ---- source patient records (how registration desks send them) -----------------------------------------
    def _source_patient(self, rng: random.Random, p: Person, org: Org, when: datetime) -> str:
        v = self.cfg.variation
        pid = self.ids()
        self.mrn[org.id] = mrn = self.mrn.get(org.id, 0) + 1
        applied: list[str] = []
        family, given = p.family, p.given
        text = p.name
        placeholder = False
        rid: str | None = p.rid
        newborn = (when.date() - p.birth).days <= 60 and p.mother_name
        if newborn and rng.random() < v.newborn_placeholder:
            text = p.mother_name + ("之子" if p.sex == "male" else "之女")
            family, given, rid, placeholder = p.family, None, None, True
            applied.append("newborn_placeholder")
            if v.newborn_generic_name and rng.random() < v.newborn_generic_name:
                text = rng.choice(("新生儿", "宝宝", "男婴" if p.sex == "male" else "女婴", p.family + "宝宝", "婴儿"))
                applied.append("newborn_generic_name")
            if p.twin_order and v.twins and rng.random() < 0.5:
                text += "一二"[p.twin_order - 1]  # 王丽之子一 / 新生儿二: the desk numbers twins, or does not
            if v.guardian_id and rng.random() < v.guardian_id:
                rid = p.guardian_rid  # the mother's ID on the baby's record
                applied.append("guardian_id")
        else:
            if rng.random() < v.name_homophone:
                alt = names.homophone_variant(rng, text)
                if alt:
                    text = alt
                    applied.append("name_homophone")
            if rng.random() < v.name_traditional:
                alt = names.traditional_variant(text)
                if alt:
                    text = alt
                    applied.append("name_traditional")
            if text != p.name:
                flen = len(family)
                family, given = text[:flen], text[flen:]
            if rng.random() < v.id_missing:
                rid = None
                applied.append("id_missing")
            else:
                r = rng.random() if p.birth.year < 1985 else 1.0
                if r < v.id_old15:
                    rid = p.rid[:6] + p.rid[8:17]
                    applied.append("id_old15")
                elif (r := rng.random()) < v.id_digit_typo:
                    i = rng.randrange(6, 17)
                    d = int(rid[i])
                    rid = rid[:i] + str((d + rng.randint(1, 9)) % 10) + rid[i + 1:]
                    applied.append("id_digit_typo")
                elif r < v.id_digit_typo + v.id_transposition:
                    cands = [i for i in range(0, 16) if rid[i] != rid[i + 1]]
                    i = rng.choice(cands)
                    rid = rid[:i] + rid[i + 1] + rid[i] + rid[i + 2:]
                    applied.append("id_transposition")
            if (v.guardian_id and p.guardian_rid and (when.date() - p.birth).days < 16 * 365
                    and rng.random() < v.guardian_id):
                rid = p.guardian_rid  # a child registered with a parent's resident ID
                applied.append("guardian_id")
        birth = p.birth.isoformat()
        if p.birth.day <= 12 and p.birth.day != p.birth.month and rng.random() < v.birthdate_swap:
            birth = f"{p.birth.year}-{p.birth.day:02d}-{p.birth.month:02d}"
            applied.append("birthdate_swap")
        birth = self._birth_errors(rng, p, when, birth, applied)
        phone: str | None = p.phone
        r = rng.random()
        if r < v.phone_missing:
            phone = None
            applied.append("phone_missing")
        elif r < v.phone_missing + v.phone_new:
            phone = PersonFactory.phone(rng)
            applied.append("phone_new")
        if phone and p.relative_phone and v.relative_phone and rng.random() < v.relative_phone:
            phone = p.relative_phone
            applied.append("relative_phone")
        addr = self._address(rng, p, applied, org)
        name = {"use": "official", "text": text, "family": family}
        if given:
            name["given"] = [given]
        if placeholder:
            name["extension"] = [{"url": S.EXT_PLACEHOLDER, "valueBoolean": True}]
        ident = [{"use": "usual", "type": {"coding": [{"system": S.V2_0203, "code": "MR"}]},
                  "system": S.MRN_PREFIX + org.id, "value": f"{org.idx + 1:04d}{self.chunk:03d}{mrn:05d}"}]
        if rid:
            ident.append({"use": "official", "type": {"coding": [{"system": S.V2_0203, "code": "NNCHN"}]},
                          "system": S.RESIDENT_ID, "value": rid})
        if addr is None:
            addr = {}
        res = {
            "resourceType": "Patient",
            "id": pid,
            "meta": {"source": f"urn:hutong:org:{org.id}"},
            "extension": [{"url": S.EXT_ETHNICITY, "valueCoding": {"system": S.ETHNICITY, "code": p.eth,
                                                                  "display": names.ETHNICITY_NAMES[p.eth]}}],
            "identifier": ident,
            "active": True,
            "name": [name],
            "gender": p.sex,
            "birthDate": birth,
            "address": [addr] if addr else [],
            "managingOrganization": {"reference": f"Organization/{org.id}"},
        }
        if phone:
            res["telecom"] = [{"system": "phone", "value": phone, "use": "mobile"}]
        self.w.write(res, org.id)
        self.t_src.writerow((pid, p.id, org.id, when.date().isoformat(), ";".join(applied)))
        return pid

    def _birth_errors(self, rng: random.Random, p: Person, when: datetime, birth: str, applied: list[str]) -> str:
        """The household-rich error model's date errors (each rate 0 by default: no random draw then)."""
        v = self.cfg.variation
        b = p.birth
        if v.birth_year_typo and rng.random() < v.birth_year_typo:
            y = str(b.year)
            k = rng.choice((2, 3, 3))
            if k == 2 and y[2] != y[3] and rng.random() < 0.5:
                y2 = y[:2] + y[3] + y[2]  # 1985 → 1958
            else:
                y2 = y[:k] + str((int(y[k]) + rng.choice((1, 9))) % 10) + y[k + 1:]
            if int(y2) <= when.year:
                applied.append("birth_year_typo")
                return y2 + birth[4:]
        if v.birth_from_age and (when.date() - b).days > 3 * 365 and rng.random() < v.birth_from_age:
            age = when.year - b.year - (1 if (when.month, when.day) < (b.month, b.day) else 0)
            y = when.year - age - (1 if rng.random() < 0.5 else 0)  # "45 岁": this year or last year's birthday
            applied.append("birth_from_age")
            return rng.choice((f"{y}-01-01", f"{y}-07-01", str(y)))
        if v.birth_lunar and rng.random() < v.birth_lunar:
            # the lunar birthday (正月初八) written as a solar date: 20–50 days too early
            d = b - timedelta(days=rng.randint(20, 50))
            applied.append("birth_lunar")
            return d.isoformat()
        return birth

    def _hospital_address(self, org: Org) -> dict:
        """The institution's own location (its Organization address), which some desks' systems fill in when
        the patient's address is not given: shared by every such patient of that institution."""
        return {"use": "home", "text": dv.full_name(org.division), "country": "CN"}

    def _address(self, rng: random.Random, p: Person, applied: list[str], org: Org | None = None) -> dict | None:
        v = self.cfg.variation
        if v.address_missing and rng.random() < v.address_missing:
            applied.append("address_missing")
            return None
        if org is not None and v.address_hospital_default and rng.random() < v.address_hospital_default:
            applied.append("address_hospital_default")
            return self._hospital_address(org)
        anc = dv.ancestors(p.village)
        nm = [(dv.division_name(c) or "").replace("村委会", "村").replace("居委会", "") for c in anc]
        if rng.random() < self.cfg.variation.address_rewrite:
            applied.append("address_rewrite")
            # Desk clerks abbreviate: drop province and township, short city name, or county + line only.
            style = rng.randrange(3)
            city = nm[1].removesuffix("市").replace("延边朝鲜族自治州", "延边")
            if style == 0:
                text = f"{city}{nm[2]}{p.line}"
            elif style == 1:
                text = f"{nm[2]}{p.line}"
            else:
                text = f"{p.line}（{nm[2]}）"
            return {"use": "home", "text": text, "country": "CN"}
        return {
            "use": "home",
            "extension": [{"url": S.EXT_DIVISION, "valueCode": p.village}],
            "text": "".join(nm) + p.line,
            "line": [nm[3] + (nm[4] if not p.line.startswith(nm[4]) else ""), p.line],
            "city": nm[1],
            "district": nm[2],
            "state": nm[0],
            "country": "CN",
        }

    # ---- clinical activity ----------------------------------------------------------------------------------
    def _encounter(self, rng, p, prefs, src, state, when: datetime, cls: str, dx: str, tier: str,
                   repeat_of: tuple | None = None, org: Org | None = None) -> None:
        age = when.year - p.birth.year
        if org is None:
            if not tier:
                r = rng.random()
                if cls == "AMB":
                    chronic = dx in p.chronic
                    tier = ("primary" if r < (0.55 if chronic else 0.40) else "secondary" if r < 0.78
                            else "tertiary" if r < 0.94 else "provincial")
                elif cls == "EMER":
                    tier = "secondary" if r < 0.55 else "tertiary" if r < 0.95 else "provincial"
                else:
                    tier = ("primary" if r < 0.08 else "secondary" if r < 0.55 else "tertiary" if r < 0.9
                            else "provincial")
            org = self._pick_org(rng, prefs, tier)
        pat = src.get(org.id)
        if pat is None:
            pat = src[org.id] = self._source_patient(rng, p, org, when)
        info = C.DX[dx]
        dept = info[1]
        if age < 14 and dept not in ("05", "20", "12", "10"):
            dept = "07"
        roles = org.doctors.get(dept) or org.doctors.get("02") or org.all_roles
        doctor = roles[rng.randrange(len(roles))]
        if cls == "AMB":
            start = when.replace(hour=rng.randint(8, 16), minute=rng.randrange(60))
            end = start + timedelta(minutes=rng.randint(8, 40))
        elif cls == "EMER":
            start = when.replace(hour=rng.randrange(24), minute=rng.randrange(60))
            end = start + timedelta(hours=rng.randint(1, 8))
        else:
            start = when.replace(hour=rng.randint(8, 18), minute=rng.randrange(60))
            end = start + timedelta(days=rng.randint(2 if dx in ("Z38.0", "O80") else 3, 5 if dx in ("Z38.0", "O80") else 14))
        src_ref = f"urn:hutong:org:{org.id}"
        meta = {"source": src_ref}
        subj = {"reference": f"Patient/{pat}"}
        eid = self.ids()
        self.visit_no[org.id] = vn = self.visit_no.get(org.id, 0) + 1
        ts_start, ts_end = _ts(start), _ts(end)
        display = {"AMB": "ambulatory", "EMER": "emergency", "IMP": "inpatient encounter"}[cls]
        enc = {
            "resourceType": "Encounter",
            "id": eid,
            "meta": meta,
            "identifier": [{"system": f"urn:hutong:visit:{org.id}", "value": f"{start:%Y%m%d}{self.chunk:03d}{vn:06d}"}],
            "status": "finished",
            "class": {"system": S.V3_ACT, "code": cls, "display": display},
            "serviceType": {"coding": [{"system": S.DEPARTMENT, "code": dept}]},
            "subject": subj,
            "participant": [{"individual": {"reference": f"PractitionerRole/{doctor}"}}],
            "period": {"start": ts_start, "end": ts_end},
            "reasonCode": [{"coding": [{"system": S.ICD10, "code": dx, "display": info[0]}], "text": info[0]}],
            "location": [{"location": {"reference": f"Location/{org.loc_id}"}}],
            "serviceProvider": {"reference": f"Organization/{org.id}"},
        }
        w = self.w
        w.write(enc, org.id)
        enc_ref = {"reference": f"Encounter/{eid}"}
        cid = self.ids()
        chronic = dx in p.chronic or dx in ("I10", "E11.9", "I25.1", "E78.5", "J44.9")
        w.write({
            "resourceType": "Condition",
            "id": cid,
            "meta": meta,
            "clinicalStatus": {"coding": [{"system": S.COND_CLIN, "code": "active" if chronic else "resolved"}]},
            "verificationStatus": {"coding": [{"system": S.COND_VER, "code": "confirmed"}]},
            "category": [{"coding": [{"system": S.COND_CAT, "code": "encounter-diagnosis"}]}],
            "code": {"coding": [{"system": S.ICD10, "code": dx, "display": info[0]}], "text": info[0]},
            "subject": subj,
            "encounter": enc_ref,
            "recordedDate": ts_start,
        }, org.id)
        # Lab panels.
        lab_scale = self.cfg.lab_scale
        if repeat_of:
            panels = [repeat_of[0]]
        elif cls == "IMP":
            panels = [k for k, pr in (("CBC", 1.0), ("LFT", 0.9), ("RFT", 0.9), ("ELEC", 0.8), ("GLU", 0.7),
                                      ("LIP", 0.5), ("UA", 0.6)) if rng.random() < pr * lab_scale]
        elif cls == "EMER":
            panels = [k for k, pr in (("CBC", 0.8), ("ELEC", 0.3), ("GLU", 0.2)) if rng.random() < pr * lab_scale]
        else:
            panels = [k for k, pr in info[2].items() if rng.random() < pr * lab_scale]
        lab_time = start + timedelta(minutes=rng.randint(10, 90))
        for panel in panels:
            rep = self._lab(rng, p, state, panel, org, pat, eid, lab_time, dx)
            if repeat_of:
                first_rep, first_org, first_time = repeat_of[1], repeat_of[2], repeat_of[3]
                self.t_repeat.writerow((p.id, panel, first_rep, first_org, first_time.date().isoformat(), rep,
                                        org.id, lab_time.date().isoformat(), (lab_time.date() - first_time.date()).days))
            elif rng.random() < self.cfg.repeat_test_rate and cls != "IMP" or (cls == "IMP" and rng.random() < self.cfg.repeat_test_rate / 3):
                # The same test again elsewhere within a month: the 互认 case the platform should catch.
                other_tier = rng.choice(("primary", "secondary", "tertiary", "provincial"))
                other = self._pick_org(rng, prefs, other_tier)
                if other.id == org.id:
                    other = rng.choice(prefs["tertiary"] + prefs["secondary"])
                if other.id != org.id and other.tier != "village-clinic":
                    later = (end if cls == "IMP" else start) + timedelta(days=rng.randint(1, 30))
                    if later < self.end:
                        self._encounter(rng, p, prefs, src, state, later.replace(hour=0, minute=0), "AMB", dx, "",
                                        (panel, rep, org.id, lab_time), other)
        # Imaging.
        img = info[3]
        if img and not repeat_of and rng.random() < (img[1] if cls != "IMP" else min(1.0, img[1] + 0.2)):
            self._imaging(rng, org, pat, eid, start + timedelta(minutes=rng.randint(20, 180)), img[0], dx)
        # Prescriptions.
        meds = info[4]
        if meds and not repeat_of and rng.random() < (0.75 if cls == "AMB" else 0.9):
            k = 1 if cls == "AMB" and rng.random() < 0.6 else min(len(meds), 2)
            for med in rng.sample(meds, min(k, len(meds))):
                atc, zh, dose = C.MED[med]
                coding = {"system": S.ATC, "code": atc, "display": zh} if atc else None
                mc = {"coding": [coding], "text": zh} if coding else {"text": zh}
                w.write({
                    "resourceType": "MedicationRequest",
                    "id": self.ids(),
                    "meta": meta,
                    "status": "completed",
                    "intent": "order",
                    "medicationCodeableConcept": mc,
                    "subject": subj,
                    "encounter": enc_ref,
                    "authoredOn": ts_start,
                    "requester": {"reference": f"PractitionerRole/{doctor}"},
                    "reasonReference": [{"reference": f"Condition/{cid}"}],
                    "dosageInstruction": [{"text": dose}],
                }, org.id)

    def _value(self, rng, p: Person, state: dict, key: str, dx: str) -> float:
        loinc, zh, unit, male, female, dec = C.A[key]
        lo, hi = male if p.sex == "male" else female
        if key in C.ONE_SIDED:
            mean, sd = C.ONE_SIDED[key]
        else:
            mean, sd = (lo + hi) / 2, (hi - lo) / 5
        chronic = p.chronic
        if "E11.9" in chronic and key in ("GLU", "HBA1C"):
            mean, sd = (8.6, 2.0) if key == "GLU" else (7.8, 1.1)
        elif "E78.5" in chronic and key in ("TC", "TG", "LDL"):
            mean, sd = {"TC": (6.3, 0.8), "TG": (2.5, 0.8), "LDL": (4.1, 0.6)}[key]
        if dx in C.INFECTION and key in ("WBC", "NEUT%", "NEUT#"):
            mean, sd = {"WBC": (11.8, 3.0), "NEUT%": (79.0, 6.0), "NEUT#": (9.0, 2.5)}[key]
        base = state["base"]
        z = base.get(key)
        if z is None:
            z = base[key] = rng.gauss(0.0, 1.0)
        # The person's own level plus day-to-day noise, so repeats within weeks agree roughly.
        val = mean + sd * (0.85 * z + 0.4 * rng.gauss(0.0, 1.0))
        floor = (lo if lo is not None else mean) * 0.3 if (lo or mean) > 0 else 0.0
        val = max(val, floor, 10 ** -dec)
        return round(val, dec) if dec else float(round(val))

    def _lab(self, rng, p: Person, state: dict, panel: str, org: Org, pat: str, eid: str, when: datetime,
             dx: str) -> str:
        local, zh, ploinc, pdisplay, items = C.PANELS[panel]
        w = self.w
        meta = {"source": f"urn:hutong:org:{org.id}"}
        subj = {"reference": f"Patient/{pat}"}
        enc_ref = {"reference": f"Encounter/{eid}"}
        eff = _ts(when)
        issued = _ts(when + timedelta(hours=rng.randint(1, 6), minutes=rng.randrange(60)))
        perf = [{"reference": f"Organization/{org.id}"}]
        cat = [{"coding": [{"system": S.OBS_CAT, "code": "laboratory", "display": "Laboratory"}]}]
        results = []
        for key in items:
            oid = self.ids()
            results.append({"reference": f"Observation/{oid}"})
            obs = {
                "resourceType": "Observation",
                "id": oid,
                "meta": meta,
                "status": "final",
                "category": cat,
            }
            if key in C.Q:
                loinc, name = C.Q[key]
                pos = ((key == "U-GLU" and "E11.9" in p.chronic and rng.random() < 0.4)
                       or (key in ("U-LEU", "U-NIT") and dx == "N39.0" and rng.random() < 0.8)
                       or (key == "U-BLD" and dx in ("N20.0", "N39.0") and rng.random() < 0.6)
                       or rng.random() < 0.03)
                obs["code"] = {"coding": [{"system": S.LOINC, "code": loinc}], "text": name}
                obs["subject"] = subj
                obs["encounter"] = enc_ref
                obs["effectiveDateTime"] = eff
                obs["issued"] = issued
                obs["performer"] = perf
                obs["valueCodeableConcept"] = (
                    {"coding": [{"system": S.SNOMED, "code": "10828004", "display": "Positive"}], "text": "阳性(+)"}
                    if pos else
                    {"coding": [{"system": S.SNOMED, "code": "260385009", "display": "Negative"}], "text": "阴性(-)"})
                obs["interpretation"] = [{"coding": [{"system": S.V3_INTERP, "code": "A" if pos else "N"}]}]
                obs["referenceRange"] = [{"text": "阴性"}]
            else:
                loinc, name, unit, male, female, dec = C.A[key]
                lo, hi = male if p.sex == "male" else female
                val = self._value(rng, p, state, key, dx)
                flag = "H" if hi is not None and val > hi else "L" if lo is not None and val < lo else "N"
                rr = {}
                if lo is not None:
                    rr["low"] = {"value": lo, "unit": unit, "system": S.UCUM, "code": unit}
                if hi is not None:
                    rr["high"] = {"value": hi, "unit": unit, "system": S.UCUM, "code": unit}
                obs["code"] = {"coding": [{"system": S.LOINC, "code": loinc}], "text": name}
                obs["subject"] = subj
                obs["encounter"] = enc_ref
                obs["effectiveDateTime"] = eff
                obs["issued"] = issued
                obs["performer"] = perf
                obs["valueQuantity"] = {"value": val, "unit": unit, "system": S.UCUM, "code": unit}
                obs["interpretation"] = [{"coding": [{"system": S.V3_INTERP, "code": flag}]}]
                obs["referenceRange"] = [rr]
            w.write(obs, org.id)
        rid = self.ids()
        self.report_no[org.id] = rn = self.report_no.get(org.id, 0) + 1
        coding = [{"system": S.LAB_LOCAL, "code": local, "display": zh}]
        if ploinc:
            coding.insert(0, {"system": S.LOINC, "code": ploinc, "display": pdisplay})
        w.write({
            "resourceType": "DiagnosticReport",
            "id": rid,
            "meta": meta,
            "identifier": [{"system": S.REPORT_PREFIX + org.id, "value": f"L{when:%Y%m%d}{self.chunk:03d}{rn:06d}"}],
            "status": "final",
            "category": [{"coding": [{"system": S.V2_0074, "code": "LAB", "display": "Laboratory"}]}],
            "code": {"coding": coding, "text": zh},
            "subject": subj,
            "encounter": enc_ref,
            "effectiveDateTime": eff,
            "issued": issued,
            "performer": perf,
            "result": results,
        }, org.id)
        return rid

    def _imaging(self, rng, org: Org, pat: str, eid: str, when: datetime, key: str, dx: str) -> None:
        modality, zh, body, body_display = C.IMG[key]
        if org.tier in ("chc", "thc", "village-clinic") and modality in ("CT", "MR"):
            return  # primary care has no CT/MR
        w = self.w
        meta = {"source": f"urn:hutong:org:{org.id}"}
        subj = {"reference": f"Patient/{pat}"}
        enc_ref = {"reference": f"Encounter/{eid}"}
        sid = self.ids()
        uid = self.ids.uid()
        n_inst = {"DX": rng.randint(1, 2), "US": rng.randint(4, 12), "CT": rng.randint(120, 400), "MR": rng.randint(150, 500)}[modality]
        mod = {"system": S.DCM, "code": modality}
        w.write({
            "resourceType": "ImagingStudy",
            "id": sid,
            "meta": meta,
            "identifier": [{"system": S.DICOM_UID, "value": "urn:oid:" + uid}],
            "status": "available",
            "modality": [mod],
            "subject": subj,
            "encounter": enc_ref,
            "started": _ts(when),
            "numberOfSeries": 1,
            "numberOfInstances": n_inst,
            "procedureCode": [{"coding": [{"system": S.IMAGING_LOCAL, "code": key, "display": zh}], "text": zh}],
            "location": {"reference": f"Location/{org.loc_id}"},
            "series": [{"uid": uid + ".1", "number": 1, "modality": mod, "description": zh,
                        "numberOfInstances": n_inst,
                        "bodySite": {"system": S.SNOMED, "code": body, "display": body_display}}],
        }, org.id)
        abnormal = dx not in ("R51", "J06.9", "R10.4", "K29.7", "S06.0") or rng.random() < 0.2
        conclusion = C.IMG_FINDING[key] if abnormal else C.IMG_NORMAL[modality]
        self.report_no[org.id] = rn = self.report_no.get(org.id, 0) + 1
        w.write({
            "resourceType": "DiagnosticReport",
            "id": self.ids(),
            "meta": meta,
            "identifier": [{"system": S.REPORT_PREFIX + org.id, "value": f"R{when:%Y%m%d}{rn:06d}"}],
            "status": "final",
            "category": [{"coding": [{"system": S.V2_0074, "code": "RAD", "display": "Radiology"}]}],
            "code": {"coding": [{"system": S.LOINC, "code": "18748-4", "display": "Diagnostic imaging study"},
                                {"system": S.IMAGING_LOCAL, "code": key, "display": zh}], "text": zh},
            "subject": subj,
            "encounter": enc_ref,
            "effectiveDateTime": _ts(when),
            "issued": _ts(when + timedelta(hours=rng.randint(1, 24))),
            "performer": [{"reference": f"Organization/{org.id}"}],
            "imagingStudy": [{"reference": f"ImagingStudy/{sid}"}],
            "conclusion": conclusion,
        }, org.id)


def simulate(cfg: SimConfig, out_dir: Path, jobs: int | None = None) -> dict:
    """Generate the province described by ``cfg`` into ``out_dir`` with ``jobs`` processes (default: one per
    CPU; the output is the same for any number); returns the manifest (counts, config)."""
    return Simulation(cfg, Path(out_dir)).run(jobs)


DEMO = SimConfig(residents=2000, years=1, seed=7, practitioner_scale=0.25)


def generate_demo(out_dir: Path, seed: int = 7) -> dict:
    """A small demo province (2,000 residents, every institution, 1 year, a quarter of the doctors)."""
    from dataclasses import replace

    return simulate(replace(DEMO, seed=seed), Path(out_dir))


__all__ = ["Simulation", "simulate", "generate_demo", "DEMO"]

