"""Institutions (Organization, Location, HealthcareService) and practitioners (Practitioner, PractitionerRole)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from hutong.china import divisions as dv
from hutong.china.ids import USCC_CHARS, gb11714_check_char, uscc_check_char
from hutong.sim import names
from hutong.sim import systems as S
from hutong.sim.config import SimConfig

LEVELS = {
    "3A": "三级甲等", "3B": "三级乙等", "2A": "二级甲等", "2B": "二级乙等", "2U": "二级未定等",
    "1A": "一级甲等", "1B": "一级乙等", "1U": "一级未定等", "U": "未定级",
}
KINDS = {
    "general": "综合医院", "tcm": "中医医院", "integrated": "中西医结合医院", "maternal-child": "妇幼保健院",
    "specialty": "专科医院", "chc": "社区卫生服务中心", "thc": "乡镇卫生院", "village-clinic": "村卫生室",
}

# Departments: code after 医疗机构诊疗科目名录 numbering.
DEPTS = {
    "02": "全科医疗科", "01": "预防保健科", "03": "内科", "03.01": "呼吸内科", "03.02": "消化内科",
    "03.03": "神经内科", "03.04": "心血管内科", "03.06": "肾病学专业", "03.07": "内分泌科", "04": "外科",
    "04.01": "普通外科", "04.02": "神经外科", "04.03": "骨科", "04.04": "泌尿外科", "04.05": "胸外科",
    "05": "妇产科", "07": "儿科", "10": "眼科", "11": "耳鼻咽喉科", "12": "口腔科", "13": "皮肤科",
    "16": "感染科", "19": "肿瘤科", "20": "急诊医学科", "21": "康复医学科", "30": "医学检验科",
    "32": "医学影像科", "50": "中医科",
}
_TERTIARY_DEPTS = ("03.01", "03.02", "03.03", "03.04", "03.06", "03.07", "04.01", "04.02", "04.03", "04.04",
                   "04.05", "05", "07", "10", "11", "12", "13", "16", "19", "20", "21", "30", "32", "50")
_SECONDARY_DEPTS = ("03", "03.04", "03.01", "04", "04.03", "05", "07", "10", "11", "12", "20", "30", "32", "50")
_PRIMARY_DEPTS = ("02", "50", "01", "30")
_TCM_FIRST = ("50", "03", "04", "05", "07", "21", "20", "30", "32")

# Titles: (code, display, share) by institution tier.
TITLES = {
    "chief": "主任医师", "associate-chief": "副主任医师", "attending": "主治医师", "resident": "住院医师",
    "physician": "医师", "village-doctor": "乡村医生",
}
_TITLE_MIX = {
    "hospital": names.Choice([("chief", 10), ("associate-chief", 20), ("attending", 35), ("resident", 30), ("physician", 5)]),
    "primary": names.Choice([("associate-chief", 3), ("attending", 30), ("physician", 50), ("resident", 17)]),
    "village": names.Choice([("village-doctor", 85), ("physician", 15)]),
}

_DOCTORS = {"tertiary": 150, "secondary": 50, "chc": 12, "thc": 8, "village-clinic": 1}

# Tertiary hospitals per platform (sums to 59) and their names (synthetic; may coincide with real ones).
_TERTIARY_COUNT = {"2201": 24, "2202": 9, "2224": 6, "2203": 3, "2205": 3, "2207": 3, "2208": 3,
                   "2204": 2, "2206": 2, "220581": 2, "2290": 2}
_CC_TERTIARY = (
    ("吉林省人民医院", "general"), ("吉林医科大学第一医院", "general"), ("吉林医科大学第二医院", "general"),
    ("吉林医科大学第三医院", "general"), ("吉林省肿瘤医院", "specialty"), ("吉林省妇幼保健院", "maternal-child"),
    ("吉林省中医院", "tcm"), ("长春中医药大学附属医院", "tcm"), ("长春市中心医院", "general"),
    ("吉林省第二人民医院", "general"), ("吉林省儿童医院", "specialty"), ("长春市人民医院", "general"),
    ("吉林省中西医结合医院", "integrated"), ("长春市儿童医院", "specialty"), ("长春市妇产医院", "maternal-child"),
    ("吉林省心血管病医院", "specialty"), ("长春市传染病医院", "specialty"), ("吉林省口腔医院", "specialty"),
    ("吉林省眼科医院", "specialty"), ("吉林省精神卫生中心", "specialty"), ("吉林省康复医院", "specialty"),
    ("长春中医药大学附属第三临床医院", "tcm"), ("吉林医科大学口腔医院", "specialty"), ("长春市第二医院", "general"),
)
_CITY_TERTIARY = (
    ("{c}中心医院", "general"), ("{c}人民医院", "general"), ("{c}中医院", "tcm"), ("{c}妇幼保健院", "maternal-child"),
    ("{c}传染病医院", "specialty"), ("{c}第二人民医院", "general"), ("{c}肿瘤医院", "specialty"),
    ("{c}儿童医院", "specialty"), ("{c}第三人民医院", "general"),
)
_PLATFORM_SHORT = {"2201": "长春市", "2202": "吉林市", "2203": "四平市", "2204": "辽源市", "2205": "通化市",
                   "2206": "白山市", "2207": "松原市", "2208": "白城市", "2224": "延边州", "220581": "梅河口市",
                   "2290": "长白山"}
_DESIGNATED = {"2224": ("延边大学附属医院", "general"), "2202": ("北华大学附属医院", "general")}

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
ALLDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass
class Org:
    """One institution as the simulator keeps it in memory."""

    idx: int
    id: str
    name: str
    tier: str  # tertiary | secondary | chc | thc | village-clinic
    kind: str
    level: str
    division: str  # county (6) or township (9) or village (12) code
    platform: str
    lat: float
    lon: float
    parent: str | None = None  # Organization id (part-of)
    uscc: str = ""
    depts: tuple[str, ...] = ()
    fever_clinic: bool = False
    internet: bool = False
    loc_id: str = ""
    services: dict[str, str] = field(default_factory=dict)  # dept code / service code -> HealthcareService id
    doctors: dict[str, list[str]] = field(default_factory=dict)  # dept -> PractitionerRole ids
    doctor_pra: dict[str, str] = field(default_factory=dict)  # PractitionerRole id -> Practitioner id
    all_roles: list[str] = field(default_factory=list)


def _county_seat_name(county: str) -> str:
    return dv.division_name(county) or county


def _strip_village(name: str) -> str:
    for suf in ("村委会", "村民委员会", "居委会", "社区居委会"):
        if name.endswith(suf):
            return name[: -len(suf)] + ("村" if "村" in suf else "")
    return name


def _uscc(rng: random.Random, division: str, public: bool) -> str:
    # 12 = 机构编制 + 事业单位 (public hospitals); 52 = 民政 + 民办非企业单位 (private village clinics).
    head = "12" if public else "52"
    body8 = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY" if i == 0 else "0123456789") for i in range(8))
    org_code = body8 + gb11714_check_char(body8)
    first17 = head + division[:6] + org_code
    assert all(c in USCC_CHARS for c in first17)
    return first17 + uscc_check_char(first17)


class Registry:
    """All institutions and practitioners of the simulated province, kept in memory (small: ~1% of output)."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(f"{cfg.seed}:institutions")
        self.orgs: list[Org] = []
        self.by_county: dict[str, dict[str, list[Org]]] = {}
        self.by_township: dict[str, list[Org]] = {}
        self.by_village: dict[str, Org] = {}
        self.tertiary_by_platform: dict[str, list[Org]] = {}
        self._build()

    # ---- construction -------------------------------------------------------------------------------------
    def _add(self, name: str, tier: str, kind: str, level: str, division: str, parent: Org | None,
             spread: float) -> Org:
        rng = self.rng
        idx = len(self.orgs)
        pos = dv.position(division[:9]) or dv.position(division[:6]) or (43.88, 125.32)
        lat = round(pos[0] + rng.uniform(-spread, spread), 5)
        lon = round(pos[1] + rng.uniform(-spread, spread) * 1.3, 5)
        platform = dv.platform_of(division) or "2201"
        org = Org(idx, f"org-{idx + 1:05d}", name, tier, kind, level, division, platform, lat, lon,
                  parent.id if parent else None)
        org.uscc = _uscc(rng, division, public=tier != "village-clinic" or rng.random() < 0.6)
        org.loc_id = f"loc-{idx + 1:05d}"
        self.orgs.append(org)
        self.by_county.setdefault(division[:6], {}).setdefault(tier, []).append(org)
        return org

    def _build(self) -> None:
        cfg, rng = self.cfg, self.rng
        platforms = {p.code: p for p in dv.jilin_platforms()}
        # Tertiary: provincial hospitals in 长春, city hospitals elsewhere.
        remaining = cfg.tertiary
        plan = dict(_TERTIARY_COUNT)
        total_default = sum(plan.values())
        if cfg.tertiary != total_default:  # scale proportionally, at least one per platform
            plan = {k: max(1, round(v * cfg.tertiary / total_default)) for k, v in plan.items()}
        for pcode, n in plan.items():
            if remaining <= 0:
                break
            p = platforms[pcode]
            short = _PLATFORM_SHORT[pcode]
            if pcode == "2201":
                pool = list(_CC_TERTIARY)
            else:
                pool = ([_DESIGNATED[pcode]] if pcode in _DESIGNATED else []) + [
                    (t.format(c=short), k) for t, k in _CITY_TERTIARY]
            seat = p.townships[0] if p.townships else (p.counties[0] if pcode != "220581" else pcode)
            for i in range(min(n, remaining, len(pool))):
                nm, kind = pool[i]
                level = "3A" if i < max(1, round(n * 0.7)) else "3B"
                org = self._add(nm, "tertiary", kind, level, seat, None, 0.04)
                org.platform = pcode
                self.tertiary_by_platform.setdefault(pcode, []).append(org)
                remaining -= 1
        # Secondary: county 人民医院 first, then 中医院, 妇幼保健院, 第二人民医院 until the quota is met.
        counties = [c for c in dv.jilin_counties() if not dv.is_statistical_only(c) and c != dv.MEIHEKOU]
        rounds = (("{n}人民医院", "general"), ("{n}中医院", "tcm"), ("{n}妇幼保健院", "maternal-child"),
                  ("{n}第二人民医院", "general"), ("{n}中西医结合医院", "integrated"))
        n_sec = 0
        for template, kind in rounds:
            for county in counties:
                if n_sec >= cfg.secondary:
                    break
                cname = _county_seat_name(county)
                if template == "{n}人民医院" and cname.endswith("区"):
                    nm = cname + "医院"
                else:
                    nm = template.format(n=cname)
                level = "2A" if rng.random() < 0.6 else ("2B" if rng.random() < 0.75 else "2U")
                self._add(nm, "secondary", kind, level, county, None, 0.03)
                n_sec += 1
        # Primary: 社区卫生服务中心 in a sample of 街道, 卫生院 in every 乡/镇, 村卫生室 in some villages.
        streets, towns = [], []
        for county in dv.jilin_counties():
            for t in dv.children(county):
                nm = dv.division_name(t) or ""
                if t in dv.CHANGBAISHAN_TOWNSHIPS:
                    continue
                if nm.endswith("街道"):
                    streets.append(t)
                elif nm.endswith("镇") or nm.endswith("乡"):
                    towns.append(t)
        chc_streets = sorted(rng.sample(streets, min(cfg.community_centres, len(streets))))
        for t in chc_streets:
            nm = (dv.division_name(t) or "") + "社区卫生服务中心"
            par = self._county_hospital(t[:6], t)
            org = self._add(nm, "chc", "chc", "1A" if rng.random() < 0.3 else "1U", t, par, 0.02)
            self.by_township.setdefault(t, []).append(org)
        for t in towns:
            tname = dv.division_name(t) or ""
            central = rng.random() < 0.25
            nm = tname + ("中心卫生院" if central else "卫生院")
            par = self._county_hospital(t[:6], t)
            org = self._add(nm, "thc", "thc", "1A" if central else "1U", t, par, 0.12)
            self.by_township.setdefault(t, []).append(org)
            for v in dv.children(t):
                vname = dv.division_name(v) or ""
                if vname.endswith("村委会") and rng.random() < cfg.village_clinic_fraction:
                    vo = self._add(_strip_village(vname) + "卫生室", "village-clinic", "village-clinic", "U", v,
                                   org, 0.0)
                    # a village clinic sits a few km from its township centre
                    vo.lat = round(org.lat + rng.uniform(-0.06, 0.06), 5)
                    vo.lon = round(org.lon + rng.uniform(-0.08, 0.08), 5)
                    self.by_village[v] = vo
        # Departments and services.
        hospitals = [o for o in self.orgs if o.tier in ("tertiary", "secondary")]
        for o in self.orgs:
            if o.tier == "tertiary":
                o.depts = _TCM_FIRST if o.kind == "tcm" else _TERTIARY_DEPTS
                if o.kind in ("maternal-child",):
                    o.depts = ("05", "07", "01", "20", "30", "32")
                o.fever_clinic = True
            elif o.tier == "secondary":
                o.depts = _TCM_FIRST if o.kind == "tcm" else _SECONDARY_DEPTS
                if o.kind == "maternal-child":
                    o.depts = ("05", "07", "01", "30", "32")
                o.fever_clinic = o.kind == "general"
            elif o.tier in ("chc", "thc"):
                o.depts = _PRIMARY_DEPTS
                o.fever_clinic = o.tier == "thc" and rng.random() < 0.3  # 发热哨点
            else:
                o.depts = ("02",)
        online_hosp = ([o for o in hospitals if o.tier == "tertiary"] + [o for o in hospitals if o.tier == "secondary"])
        for o in online_hosp[: self.cfg.online_hospitals]:
            o.internet = True

    def _county_hospital(self, county: str, township: str) -> Org | None:
        sec = self.by_county.get(county, {}).get("secondary")
        if sec:
            return sec[0]
        plat = dv.platform_of(township) or county[:4]
        ter = self.tertiary_by_platform.get(plat) or self.tertiary_by_platform.get(county[:4])
        return ter[0] if ter else None

    # ---- FHIR output --------------------------------------------------------------------------------------
    def resources(self) -> Iterator[dict]:
        """Organization, Location, HealthcareService, Practitioner, PractitionerRole in dependency order."""
        for o in self.orgs:
            yield self._organization(o)
        for o in self.orgs:
            yield self._location(o)
        n = 0
        for o in self.orgs:
            for code in o.depts:
                n += 1
                sid = f"hcs-{n:06d}"
                o.services[code] = sid
                yield self._service(o, sid, "department", code, DEPTS[code])
            if o.fever_clinic:
                n += 1
                sid = f"hcs-{n:06d}"
                o.services["fever-clinic"] = sid
                yield self._service(o, sid, "fever-clinic", None, "发热门诊")
            if o.internet:
                n += 1
                sid = f"hcs-{n:06d}"
                o.services["internet-hospital"] = sid
                yield self._service(o, sid, "internet-hospital", None, o.name + "互联网医院")
        yield from self._practitioners()

    def _organization(self, o: Org) -> dict:
        res = {
            "resourceType": "Organization",
            "id": o.id,
            "meta": {"source": f"urn:hutong:platform:{o.platform}"},
            "extension": [
                {"url": S.EXT_DIVISION, "valueCode": o.division},
                {"url": S.EXT_PLATFORM, "valueCoding": {"system": S.PLATFORM, "code": o.platform,
                                                         "display": _PLATFORM_SHORT.get(o.platform, o.platform)}},
            ],
            "identifier": [{"use": "official", "system": S.USCC, "value": o.uscc}],
            "active": True,
            "type": [
                {"coding": [{"system": S.ORG_TYPE, "code": "prov", "display": "Healthcare Provider"}]},
                {"coding": [{"system": S.INSTITUTION_KIND, "code": o.kind if o.tier not in ("chc", "thc", "village-clinic") else o.tier, "display": KINDS[o.kind]}]},
                {"coding": [{"system": S.INSTITUTION_LEVEL, "code": o.level, "display": LEVELS[o.level]}]},
            ],
            "name": o.name,
            "address": [self._address(o)],
        }
        if o.parent:
            res["partOf"] = {"reference": f"Organization/{o.parent}"}
        return res

    def _address(self, o: Org) -> dict:
        anc = dv.ancestors(o.division)
        city = dv.division_name(anc[1]) if len(anc) > 1 else None
        county = dv.division_name(anc[2]) if len(anc) > 2 else None
        addr = {"use": "work", "text": dv.full_name(o.division), "state": "吉林省", "country": "CN"}
        if city:
            addr["city"] = city
        if county:
            addr["district"] = county
        return addr

    def _location(self, o: Org) -> dict:
        if o.tier in ("tertiary", "secondary"):
            hours = [
                {"daysOfWeek": WEEKDAYS, "openingTime": "08:00:00", "closingTime": "17:00:00"},
                {"daysOfWeek": ["sat", "sun"], "openingTime": "08:00:00", "closingTime": "12:00:00"},
            ]
        elif o.tier == "village-clinic":
            hours = [{"daysOfWeek": ALLDAYS, "openingTime": "07:30:00", "closingTime": "18:00:00"}]
        else:
            hours = [{"daysOfWeek": WEEKDAYS + ["sat"], "openingTime": "08:00:00", "closingTime": "16:30:00"}]
        return {
            "resourceType": "Location",
            "id": o.loc_id,
            "status": "active",
            "name": o.name,
            "mode": "instance",
            "type": [{"coding": [{"system": S.V3_ROLE, "code": "HOSP" if o.tier in ("tertiary", "secondary") else "PC",
                                   "display": "Hospital" if o.tier in ("tertiary", "secondary") else "primary care clinic"}]}],
            "address": self._address(o),
            "position": {"longitude": o.lon, "latitude": o.lat},
            "managingOrganization": {"reference": f"Organization/{o.id}"},
            "hoursOfOperation": hours,
        }

    def _service(self, o: Org, sid: str, kind: str, dept: str | None, name: str) -> dict:
        res = {
            "resourceType": "HealthcareService",
            "id": sid,
            "active": True,
            "providedBy": {"reference": f"Organization/{o.id}"},
            "category": [{"text": "医疗服务"}],
            "type": [{"coding": [{"system": S.SERVICE, "code": kind,
                                   "display": {"department": "科室", "fever-clinic": "发热门诊",
                                               "internet-hospital": "互联网医院"}[kind]}]}],
            "location": [{"reference": f"Location/{o.loc_id}"}],
            "name": name,
        }
        if dept:
            res["specialty"] = [{"coding": [{"system": S.DEPARTMENT, "code": dept, "display": name}]}]
        if kind == "fever-clinic":
            res["availableTime"] = [{"daysOfWeek": ALLDAYS, "allDay": True}]
        elif kind == "internet-hospital":
            res["availableTime"] = [{"daysOfWeek": ALLDAYS, "availableStartTime": "08:00:00", "availableEndTime": "22:00:00"}]
            res["telecom"] = [{"system": "url", "value": f"https://{o.id}.hospital.example/ihosp"}]
        elif dept == "20":
            res["availableTime"] = [{"daysOfWeek": ALLDAYS, "allDay": True}]
        else:
            res["availableTime"] = [{"daysOfWeek": WEEKDAYS, "availableStartTime": "08:00:00", "availableEndTime": "17:00:00"}]
        return res

    def _practitioners(self) -> Iterator[dict]:
        cfg = self.cfg
        rng = random.Random(f"{cfg.seed}:practitioners")
        # Online doctors: weight 3 per tertiary, 1 per secondary internet hospital; largest remainder.
        online_orgs = [o for o in self.orgs if o.internet]
        total_online = round(cfg.online_doctors * cfg.practitioner_scale)
        weights = [3 if o.tier == "tertiary" else 1 for o in online_orgs]
        quota: dict[str, int] = {}
        if online_orgs:
            wsum = sum(weights)
            raw = [total_online * w / wsum for w in weights]
            base = [int(x) for x in raw]
            left = total_online - sum(base)
            order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - base[i]), i))
            for i in order[:left]:
                base[i] += 1
            quota = {o.id: b for o, b in zip(online_orgs, base, strict=True)}
        n = 0
        for o in self.orgs:
            k = _DOCTORS[o.tier]
            count = max(1, round(k * cfg.practitioner_scale * rng.uniform(0.8, 1.2))) if k > 1 else 1
            count = max(count, quota.get(o.id, 0))
            q = quota.get(o.id, 0)
            mix = _TITLE_MIX["hospital" if o.tier in ("tertiary", "secondary") else
                             "village" if o.tier == "village-clinic" else "primary"]
            clinical = [d for d in o.depts if d not in ("30", "32", "01")] or list(o.depts)
            for i in range(count):
                n += 1
                pid, rid = f"pra-{n:06d}", f"prr-{n:06d}"
                sex = "male" if rng.random() < 0.45 else "female"
                byear = rng.randint(1962, 1996)
                title = mix.pick(rng)
                if o.tier in ("tertiary", "secondary") and title == "chief" and byear > 1985:
                    title = "attending"
                dept = o.depts[i % len(o.depts)] if i < len(o.depts) else rng.choice(clinical)
                nm_family = names.surname(rng)
                nm_given = names.given_name(rng, sex, byear)
                online = i < q and title != "resident"
                if i < q and title == "resident":
                    title, online = "attending", True
                yield {
                    "resourceType": "Practitioner",
                    "id": pid,
                    "identifier": [{"system": S.LICENSE, "value": f"{rng.randrange(10**14, 10**15)}"}],
                    "active": True,
                    "name": [{"use": "official", "text": nm_family + nm_given, "family": nm_family, "given": [nm_given]}],
                    "gender": sex,
                    "birthDate": f"{byear}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    "qualification": [{"code": {"coding": [{"system": S.TITLE, "code": title, "display": TITLES[title]}],
                                                "text": TITLES[title]}}],
                }
                codes = [{"coding": [{"system": S.TITLE, "code": title, "display": TITLES[title]}]}]
                services = [{"reference": f"HealthcareService/{o.services[dept]}"}]
                if online:
                    codes.append({"coding": [{"system": S.ROLE, "code": "online-consultation", "display": "医生在线"}]})
                    services.append({"reference": f"HealthcareService/{o.services['internet-hospital']}"})
                role = {
                    "resourceType": "PractitionerRole",
                    "id": rid,
                    "active": True,
                    "practitioner": {"reference": f"Practitioner/{pid}", "display": nm_family + nm_given},
                    "organization": {"reference": f"Organization/{o.id}", "display": o.name},
                    "code": codes,
                    "specialty": [{"coding": [{"system": S.DEPARTMENT, "code": dept, "display": DEPTS[dept]}]}],
                    "location": [{"reference": f"Location/{o.loc_id}"}],
                    "healthcareService": services,
                }
                if online:
                    role["availableTime"] = [{"daysOfWeek": ALLDAYS, "availableStartTime": "19:00:00", "availableEndTime": "21:00:00"}]
                yield role
                o.doctors.setdefault(dept, []).append(rid)
                o.doctor_pra[rid] = pid
                o.all_roles.append(rid)
