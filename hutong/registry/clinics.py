"""Fever clinics (发热门诊): the clinic index, the nearest clinics open now, and clinic status.

A fever clinic is a ``HealthcareService`` whose ``type`` has code ``fever-clinic`` (system
``vocab.SERVICE``), whose first ``location`` is a ``Location`` with a WGS-84 ``position``. Its
hours are ``availableTime``/``notAvailable``; its status (open, paused, full, closed, with the time
it was set) is the ``clinic-status`` extension; features (children's clinic, 24 h, designated
hospital) the ``clinic-feature`` extension (24 h is also read from the hours). ``registry_clinic``
holds one row per clinic so a nearest-clinic query is one range scan on (lat, lon)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import and_, delete, select

from hutong.core.caller import Caller
from hutong.core.clock import SHANGHAI, instant, now_us
from hutong.core.errors import FhirError
from hutong.registry import geo, hours, vocab
from hutong.registry.tables import registry_clinic as RC

CONSUMER = "registry-clinics"
HIDDEN_STATUSES = frozenset({"paused", "closed"})  # such a clinic disappears from navigation at once
_RADII_KM = (5.0, 20.0, 60.0, 200.0)


def is_fever_clinic(service: dict) -> bool:
    """True for a HealthcareService typed as a fever clinic."""
    for cc in service.get("type") or ():
        for c in cc.get("coding") or ():
            if c.get("system") == vocab.SERVICE and c.get("code") == "fever-clinic":
                return True
    return False


def _ref_id(ref: dict | None, rtype: str) -> str:
    r = (ref or {}).get("reference") or ""
    return r.split("/", 1)[1] if r.startswith(rtype + "/") and "/" not in r[len(rtype) + 1:] else ""


def clinic_status(service: dict) -> tuple[str, int | None]:
    """(status, set time µs) from the service's ``clinic-status`` extension (open when it has none)."""
    status, set_us = "open", None
    for ext in service.get("extension") or ():
        if ext.get("url") != vocab.EXT_CLINIC_STATUS:
            continue
        for sub in ext.get("extension") or ():
            if sub.get("url") == "status" and sub.get("valueCode") in vocab.CLINIC_STATUSES:
                status = sub["valueCode"]
            elif sub.get("url") == "set" and sub.get("valueDateTime"):
                dt = hours._parse_instant(sub["valueDateTime"])
                set_us = int(dt.timestamp() * 1_000_000) if dt else None
    if service.get("active") is False:
        status = "closed"
    return status, set_us


def features_of(service: dict) -> set[str]:
    """The clinic's features: ``children``, ``24h``, ``designated``."""
    out = {e.get("valueCode") for e in service.get("extension") or ()
           if e.get("url") == vocab.EXT_CLINIC_FEATURE and e.get("valueCode") in vocab.CLINIC_FEATURES}
    if hours.is_all_hours(service.get("availableTime")):
        out.add("24h")
    return out


def _demo_defaults(*resources: dict | None) -> list[str]:
    out: list[str] = []
    for res in resources:
        for e in (res or {}).get("extension") or ():
            if e.get("url") == vocab.EXT_DEMO_DEFAULT and e.get("valueString"):
                out.append(e["valueString"])
    return sorted(set(out))


def clinic_row(tx, service: dict, tenant: str) -> dict:
    """The index row of a fever-clinic service (position, names, hours, status)."""
    loc_id = next((_ref_id(r, "Location") for r in service.get("location") or () if _ref_id(r, "Location")), "")
    org_id = _ref_id(service.get("providedBy"), "Organization")
    loc = tx.read("Location", loc_id) if loc_id else None
    loc = loc.resource if loc is not None and not loc.deleted else None
    org = tx.read("Organization", org_id) if org_id else None
    org = org.resource if org is not None and not org.deleted else None
    pos = (loc or {}).get("position") or {}
    lat, lon = pos.get("latitude"), pos.get("longitude")
    division = ""
    for res in (org, loc):
        for e in (res or {}).get("extension") or ():
            if e.get("url") == vocab.EXT_DIVISION and e.get("valueCode"):
                division = division or e["valueCode"]
    city = division[:4] if division.startswith("22") else (geo.city_at(lat, lon) or "" if lat is not None else "")
    phone = next((t.get("value", "") for t in (service.get("telecom") or []) + ((loc or {}).get("telecom") or [])
                  if t.get("system") == "phone"), "")
    address = ((loc or {}).get("address") or {}).get("text") or ""
    status, set_us = clinic_status(service)
    active = service.get("active", True) is not False and (loc is None or loc.get("status", "active") == "active")
    return {
        "service_id": service["id"], "tenant": tenant, "org_id": org_id, "location_id": loc_id,
        "name": (service.get("name") or "发热门诊")[:255], "org_name": ((org or {}).get("name") or "")[:255],
        "lat": float(lat) if lat is not None else None, "lon": float(lon) if lon is not None else None,
        "division": division[:12], "city": city, "features": "," + ",".join(sorted(features_of(service))) + ",",
        "active": bool(active), "status": status, "status_set_us": set_us,
        "hours": orjson.dumps({"availableTime": service.get("availableTime") or [],
                               "notAvailable": service.get("notAvailable") or []}).decode(),
        "phone": phone[:64], "address": address[:255],
        "demo_defaults": ",".join(_demo_defaults(service, loc))[:128], "updated_us": now_us(),
    }


def refresh_clinic(tx, service_id: str) -> None:
    """Re-derive one clinic's row from the current HealthcareService (removed when it is gone or not a clinic)."""
    tx.conn.execute(delete(RC).where(RC.c.service_id == service_id))
    stored = tx.read("HealthcareService", service_id)
    if stored is None or stored.deleted:
        return
    service = stored.resource
    if is_fever_clinic(service):
        tx.conn.execute(RC.insert().values(**clinic_row(tx, service, stored.tenant)))


def consume(tx, events) -> None:
    """Change-log consumer: keep ``registry_clinic`` in step with services, their locations and organizations."""
    ids: set[str] = set()
    for ev in events:
        if ev.res_type == "HealthcareService":
            ids.add(ev.res_id)
        elif ev.res_type == "Location":
            ids.update(r[0] for r in tx.conn.execute(select(RC.c.service_id).where(RC.c.location_id == ev.res_id)))
            if ev.op != "delete":
                ids.update(tx.search_ids("HealthcareService", [("location", f"Location/{ev.res_id}")]))
        elif ev.res_type == "Organization":
            ids.update(r[0] for r in tx.conn.execute(select(RC.c.service_id).where(RC.c.org_id == ev.res_id)))
    for sid in sorted(ids):
        refresh_clinic(tx, sid)


# ---- navigation ---------------------------------------------------------------------------------------
@dataclass
class ClinicHit:
    """One clinic in a navigation answer."""

    service_id: str
    name: str
    org_id: str
    org_name: str
    location_id: str
    lat: float
    lon: float
    distance_km: float
    status: str
    status_set: str | None
    hours: str
    open_now: bool
    phone: str
    address: str
    city: str
    division: str
    features: list[str]
    demo_defaults: list[str]

    def to_json(self) -> dict:
        """Plain JSON (the API's answer)."""
        d = dict(self.__dict__)
        d["distance_km"] = round(self.distance_km, 3)
        d["status_text"] = vocab.CLINIC_STATUSES.get(self.status, self.status)
        return d


def _hit(row, dist: float, open_now: bool) -> ClinicHit:
    h = orjson.loads(row.hours)
    return ClinicHit(
        row.service_id, row.name, row.org_id, row.org_name, row.location_id, row.lat, row.lon, dist, row.status,
        instant(row.status_set_us) if row.status_set_us else None, hours.describe(h["availableTime"]), open_now,
        row.phone, row.address, row.city, row.division, [f for f in row.features.split(",") if f],
        [f for f in row.demo_defaults.split(",") if f])


def _cols():
    return [RC.c.service_id, RC.c.name, RC.c.org_id, RC.c.org_name, RC.c.location_id, RC.c.lat, RC.c.lon,
            RC.c.status, RC.c.status_set_us, RC.c.hours, RC.c.phone, RC.c.address, RC.c.city, RC.c.division,
            RC.c.features, RC.c.demo_defaults]


def nearest_clinics(conn, lat: float, lon: float, *, k: int = 10, at: datetime | None = None,
                    features: Iterable[str] = (), open_only: bool = True, max_km: float | None = None,
                    city: str | None = None) -> list[ClinicHit]:
    """The ``k`` nearest fever clinics to (lat, lon) (WGS-84) by great-circle distance that are active, not
    paused or closed and (``open_only``) open at ``at`` (default now), having every feature asked for.

    Widens a bounding box (5, 20, 60, 200 km, then everything) until ``k`` clinics lie within its inscribed
    circle, so the answer equals a brute-force scan over all clinics."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise FhirError(400, "invalid", "position out of range (latitude −90…90, longitude −180…180)")
    at = at or datetime.now(SHANGHAI)
    want = [f for f in features if f]
    for f in want:
        if f not in vocab.CLINIC_FEATURES:
            raise FhirError(400, "invalid", f"unknown clinic feature {f!r} (children, 24h, designated)")
    base = [RC.c.active.is_(True), RC.c.status.not_in(sorted(HIDDEN_STATUSES)), RC.c.lat.is_not(None)]
    base += [RC.c.features.like(f"%,{f},%") for f in want]
    if city:
        base.append(RC.c.city == city[:4])
    radii = [r for r in _RADII_KM if max_km is None or r < max_km] + [max_km if max_km is not None else math.inf]
    seen: dict[str, ClinicHit] = {}
    for radius in radii:
        where = list(base)
        if math.isfinite(radius):
            dlat = radius / 111.19
            coslat = max(math.cos(math.radians(min(89.9, abs(lat) + dlat))), 1e-6)
            dlon = min(180.0, radius / (111.19 * coslat))
            where += [RC.c.lat.between(lat - dlat, lat + dlat), RC.c.lon.between(lon - dlon, lon + dlon)]
        hits: list[ClinicHit] = []
        for row in conn.execute(select(*_cols()).where(and_(*where))):
            dist = geo.haversine_km(lat, lon, row.lat, row.lon)
            if dist > radius:
                continue
            hit = seen.get(row.service_id)
            if hit is None:
                h = orjson.loads(row.hours)
                open_now = hours.open_at(h["availableTime"], at, h["notAvailable"])
                hit = _hit(row, dist, open_now)
                seen[row.service_id] = hit
            if hit.open_now or not open_only:
                hits.append(hit)
        if len(hits) >= k or not math.isfinite(radius) or radius == max_km:
            hits.sort(key=lambda h: (h.distance_km, h.service_id))
            return hits[:k]
    return []


def all_clinics(conn, *, city: str | None = None) -> list[dict]:
    """Every clinic row (for the map and the console), including paused and closed ones."""
    stmt = select(*_cols(), RC.c.active).order_by(RC.c.city, RC.c.name, RC.c.service_id)
    if city:
        stmt = stmt.where(RC.c.city == city[:4])
    out = []
    for row in conn.execute(stmt):
        d = _hit(row, 0.0, False).to_json()
        d.pop("distance_km")
        d["active"] = bool(row.active)
        out.append(d)
    return out


# ---- status ---------------------------------------------------------------------------------------------
def _may_manage(caller: Caller | None, service: dict) -> bool:
    if caller is None or not caller.institution or "operator" in caller.roles:
        return True  # operators (the policy decided they hold the permission) and in-process callers
    return _ref_id(service.get("providedBy"), "Organization") == caller.institution.removeprefix("Organization/")


def set_clinic_status(store, service_id: str, status: str, *, caller: Caller | None = None,
                      note: str = "") -> dict:
    """Set a fever clinic's status (open, paused, full, closed) now; the clinic index changes in the same
    transaction, so navigation stops listing a paused or closed clinic at once. An institution may set
    only its own clinics. Returns the clinic's row as JSON."""
    if status not in vocab.CLINIC_STATUSES:
        raise FhirError(400, "invalid", f"status must be one of {', '.join(vocab.CLINIC_STATUSES)}", "status")
    if len(note) > 200:
        raise FhirError(400, "invalid", "note: at most 200 characters", "note")
    with store.write(caller.tenant if caller is not None else None) as tx:
        stored = tx.read("HealthcareService", service_id, for_update=True)
        if stored is None or stored.deleted or not is_fever_clinic(stored.resource):
            raise FhirError(404, "not-found", f"发热门诊不存在 (no fever clinic {service_id!r})")
        service = stored.resource
        if not _may_manage(caller, service):
            raise FhirError(403, "forbidden", "只能设置本机构的发热门诊 (an institution sets only its own clinics)")
        ts = now_us()
        sub = [{"url": "status", "valueCode": status}, {"url": "set", "valueDateTime": instant(ts)}]
        if note:
            sub.append({"url": "note", "valueString": note})
        service["extension"] = [e for e in service.get("extension") or () if e.get("url") != vocab.EXT_CLINIC_STATUS]
        service["extension"].append({"url": vocab.EXT_CLINIC_STATUS, "extension": sub})
        service.pop("meta", None)
        tx.update("HealthcareService", service_id, service, if_match=stored.version_id)
        refresh_clinic(tx, service_id)
        row = tx.conn.execute(select(*_cols(), RC.c.active).where(RC.c.service_id == service_id)).first()
    return {"service_id": service_id, "status": status, "status_text": vocab.CLINIC_STATUSES[status],
            "status_set": instant(ts), "listed": bool(row is not None and row.active and status not in HIDDEN_STATUSES)}
