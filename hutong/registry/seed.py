"""The demo's fever clinics: the real 2020 Jilin list (112 facilities) imported into the registry.

The list (``data/fever_clinics_jilin_2020.csv``, MIT, see ``data/SOURCE.md``) gives each facility's
city and name and whether it was a designated hospital, nothing else. Each becomes a fever-clinic
``HealthcareService`` of its institution: an Organization of the same name when the registry has one,
otherwise a new Organization with a Location. Positions are placed inside the real city (near the
county seat the name points to, when it names one), hours are 24 h and the phone is the 12320 health
hotline; all three are marked with the ``demo-default`` extension until an operator sets the true
values. Ids are fixed (``fc-…``), so importing twice changes nothing."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from hutong.china import divisions as dv
from hutong.registry import geo, vocab

_DATA = Path(__file__).resolve().parent / "data" / "fever_clinics_jilin_2020.csv"
ALLDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True)
class ListedClinic:
    """One row of the 2020 list."""

    n: int
    city: str  # 4-digit city code
    name: str
    designated: bool
    source: str
    date: str


def listed_clinics() -> list[ListedClinic]:
    """The 112 Jilin fever clinics of the 2020 list, in file order."""
    with _DATA.open(encoding="utf-8", newline="") as fh:
        return [ListedClinic(i + 1, r["city_code"][:4], r["name"], r["is_designated"] == "1", r["source"], r["date"])
                for i, r in enumerate(csv.DictReader(fh))]


def county_of(name: str, city: str) -> str:
    """The county (6 digits) a facility's name points to (``农安县人民医院`` → 农安县), else the city (4 digits)."""
    best = ""
    for county in dv.children(city):
        cname = dv.division_name(county) or ""
        short = cname[:-1] if len(cname) > 2 and cname[-1] in "县区市" else cname
        if cname and (cname in name or (len(short) >= 2 and name.startswith(short))) and len(cname) > len(
                dv.division_name(best) or ""):
            best = county
    return best or city


def _demo(field: str) -> dict:
    return {"url": vocab.EXT_DEMO_DEFAULT, "valueString": field}


def clinic_resources(clinic: ListedClinic, existing_org: dict | None, rng: random.Random) -> list[dict]:
    """The resources one listed clinic adds (Organization and Location only when no institution has its name)."""
    county = county_of(clinic.name, clinic.city)
    seat = dv.position(county) or dv.position(clinic.city)
    lat, lon = geo.point_in_city(clinic.city, rng, near=seat, spread_km=6.0)
    out: list[dict] = []
    tag = f"{clinic.n:03d}"
    if existing_org is None:
        org_id, loc_id = f"fc-org-{tag}", f"fc-loc-{tag}"
        city_name = dv.division_name(clinic.city) or ""
        out.append({
            "resourceType": "Organization", "id": org_id, "active": True, "name": clinic.name,
            "extension": [{"url": vocab.EXT_DIVISION, "valueCode": county},
                          {"url": vocab.EXT_PLATFORM, "valueCoding": {"system": vocab.PLATFORM,
                                                                      "code": dv.platform_of(county) or clinic.city}}],
            "type": [{"coding": [{"system": vocab.ORG_TYPE, "code": "prov", "display": "Healthcare Provider"}]}],
            "address": [{"use": "work", "text": dv.full_name(county), "state": "吉林省", "city": city_name,
                         "country": "CN"}],
        })
        out.append({
            "resourceType": "Location", "id": loc_id, "status": "active", "mode": "instance",
            "name": clinic.name, "extension": [_demo("position")],
            "address": {"use": "work", "text": dv.full_name(county), "state": "吉林省", "city": city_name,
                        "country": "CN"},
            "position": {"longitude": lon, "latitude": lat},
            "managingOrganization": {"reference": f"Organization/{org_id}"},
        })
    else:
        org_id, loc_id = existing_org["id"], existing_org["_location"]
    ext = [_demo("hours"), _demo("phone"),
           {"url": vocab.EXT_CLINIC_STATUS, "extension": [{"url": "status", "valueCode": "open"}]}]
    if clinic.designated:
        ext.append({"url": vocab.EXT_CLINIC_FEATURE, "valueCode": "designated"})
    if "儿童" in clinic.name:
        ext.append({"url": vocab.EXT_CLINIC_FEATURE, "valueCode": "children"})
    out.append({
        "resourceType": "HealthcareService", "id": f"fc-hcs-{tag}", "active": True, "extension": ext,
        "providedBy": {"reference": f"Organization/{org_id}", "display": clinic.name},
        "category": [{"text": "医疗服务"}],
        "type": [{"coding": [{"system": vocab.SERVICE, "code": "fever-clinic", "display": "发热门诊"}]}],
        "location": [{"reference": f"Location/{loc_id}"}],
        "name": clinic.name + "发热门诊",
        "comment": f"{clinic.source} {clinic.date} 公布的发热门诊" + ("（定点医疗机构）" if clinic.designated else ""),
        "telecom": [{"system": "phone", "value": "12320", "use": "work"}],
        "availableTime": [{"daysOfWeek": ALLDAYS, "allDay": True}],
    })
    return out


def import_fever_clinics(store, seed: int = 2020) -> int:
    """Import the 2020 list into the store (idempotent); returns how many resources were written."""
    rng = random.Random(seed)
    written = 0
    with store.write() as tx:
        for clinic in listed_clinics():
            existing = None
            ids = tx.search_ids("Organization", [("name:exact", clinic.name)], limit=1)
            if ids and not ids[0].startswith("fc-org-"):
                locs = tx.search_ids("Location", [("organization", f"Organization/{ids[0]}")], limit=1)
                if locs:
                    existing = {"id": ids[0], "_location": locs[0]}
            for res in clinic_resources(clinic, existing, rng):
                if tx.read(res["resourceType"], res["id"]) is None:
                    tx.update(res["resourceType"], res["id"], res)
                    written += 1
    return written
