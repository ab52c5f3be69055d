"""Family-doctor contracting (家庭医生签约服务, WS/T 790's collaboration services).

A resident signs with a primary-care team for a year: the contract is a ``CareTeam`` (category
family-doctor team, ``subject`` the resident, ``participant`` the team's PractitionerRoles,
``managingOrganization`` the clinic, ``period`` one year) and, per chronic condition the team
follows (hypertension, diabetes…), a ``CarePlan`` with its follow-up interval. The team lists its
contracted residents with their next follow-up dates; contracts count in the statistics.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, update

from hutong.consult import directory, work
from hutong.consult.tables import consult_contract
from hutong.core.clock import instant, now_us
from hutong.core.errors import FhirError, bad_request

#: Follow-up programmes (国家基本公共卫生服务规范: hypertension and type 2 diabetes at least every 3 months).
PROGRAMMES = {
    "hypertension": ("高血压患者健康管理", 90),
    "diabetes": ("2型糖尿病患者健康管理", 90),
    "elderly": ("老年人健康管理", 365),
    "copd": ("慢阻肺患者健康管理", 180),
}
CATEGORY = {"coding": [{"system": "https://hutong.example/fhir/CodeSystem/care-team-category",
                        "code": "family-doctor", "display": "家庭医生签约团队"}], "text": "家庭医生签约"}



def sign_contract(env, *, patient: str, team: list[str], programmes: list[str], by_org: str | None = None,
                  at_us: int | None = None) -> dict:
    """Sign ``patient`` with the primary-care ``team`` (PractitionerRoles of one clinic, ``by_org`` when
    the clinic itself signs) for a year."""
    at = at_us or now_us()
    if not team:
        raise bad_request("a family-doctor team needs at least one doctor", "team")
    unknown = [p for p in programmes if p not in PROGRAMMES]
    if unknown:
        raise bad_request("unknown programme " + unknown[0] + "; one of " + ", ".join(PROGRAMMES), "programmes")

    def body(tx):
        found = tx.read("Patient", patient.split("/", 1)[1]) if patient.startswith("Patient/") else None
        if found is None or found.deleted:
            raise FhirError(404, "not-found", f"患者不存在 ({patient})")
        doctors = [directory.doctor(tx, r) for r in team]
        orgs = {d.org for d in doctors}
        if len(orgs) != 1:
            raise FhirError(422, "business-rule", "签约团队须属于同一基层机构 (one clinic's team)")
        org = orgs.pop()
        if by_org and org != by_org:
            raise FhirError(403, "forbidden", "只能为本机构的团队签约 (sign for your own clinic's team)")
        if directory.org_level(directory.organization(tx, org)) not in ("township", "village"):
            raise FhirError(422, "business-rule", "家庭医生签约由基层医疗机构提供 (primary care signs contracts)")
        c = consult_contract.c
        if tx.conn.execute(select(c.id).where(c.patient == patient, c.status == "active", c.end_us > at)).first():
            raise FhirError(409, "conflict", "该居民已有有效签约 (already contracted)")
        start = datetime.fromtimestamp(at / 1e6, tz=UTC)
        end = start.replace(year=start.year + 1) if not (start.month == 2 and start.day == 29) else \
            start.replace(year=start.year + 1, day=28)
        team_res = {"resourceType": "CareTeam", "status": "active", "category": [CATEGORY],
                    "name": f"{doctors[0].org_name}家庭医生团队", "subject": {"reference": patient},
                    "period": {"start": instant(at), "end": instant(int(end.timestamp() * 1e6))},
                    "participant": [{"member": {"reference": d.role}} for d in doctors],
                    "managingOrganization": [{"reference": org}]}
        tid = tx.create(team_res).stored.res_id
        plans, next_due = [], None
        for p in programmes:
            title, days = PROGRAMMES[p]
            due = start + timedelta(days=days)
            next_due = min(next_due or due, due)
            plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan", "title": title,
                    "category": [{"text": "家庭医生签约随访"}], "subject": {"reference": patient},
                    "careTeam": [{"reference": f"CareTeam/{tid}"}], "author": {"reference": org},
                    "period": team_res["period"],
                    "activity": [{"detail": {"kind": "Appointment", "status": "scheduled",
                                             "description": f"每 {days} 天随访一次",
                                             "scheduledTiming": {"repeat": {"frequency": 1, "period": days,
                                                                            "periodUnit": "d"}}}}]}
            plans.append("CarePlan/" + tx.create(plan).stored.res_id)
        tx.conn.execute(insert(consult_contract).values(
            id=tid, patient=patient, org=org, status="active", start_us=at, end_us=int(end.timestamp() * 1e6),
            programmes=",".join(programmes), next_follow_up_us=int(next_due.timestamp() * 1e6) if next_due else None))
        work.notify(env, tx, [patient, org], tid, f"家庭医生签约成功：{team_res['name']}，有效期一年", at)
        return {"id": tid, "care_team": f"CareTeam/{tid}", "care_plans": plans, "org": org,
                "end": team_res["period"]["end"]}

    return work.run(env, body)


def contracted_residents(store, org: str, at_us: int | None = None) -> list[dict]:
    """A clinic's residents under an active contract, next follow-up first."""
    at = at_us or now_us()
    c = consult_contract.c
    with store.read() as tx:
        rows = tx.conn.execute(select(consult_contract).where(c.org == org, c.status == "active", c.end_us > at)
                               .order_by(c.next_follow_up_us)).all()
    return [{"id": r.id, "patient": r.patient, "programmes": r.programmes.split(",") if r.programmes else [],
             "until": instant(r.end_us), "next_follow_up": instant(r.next_follow_up_us) if r.next_follow_up_us else None,
             "follow_up_due": bool(r.next_follow_up_us and r.next_follow_up_us <= at)} for r in rows]


def is_contracted_team_member(store, role: str, patient: str, at_us: int | None = None) -> bool:
    """Whether ``role`` belongs to ``patient``'s active family-doctor team (the security capability's
    policy can use this to let the team see its contracted residents' records)."""
    at = at_us or now_us()
    c = consult_contract.c
    with store.read() as tx:
        ids = [r.id for r in tx.conn.execute(select(c.id).where(c.patient == patient, c.status == "active",
                                                                  c.end_us > at))]
        for tid in ids:
            team = tx.read("CareTeam", tid)
            if team is not None and not team.deleted and any(
                    (p.get("member") or {}).get("reference") == role for p in team.resource.get("participant", ())):
                return True
    return False


def end_contract(env, contract: str, *, by_org: str, at_us: int | None = None) -> None:
    """End a contract early (the resident moved, or asked to)."""
    at = at_us or now_us()

    def body(tx):
        c = consult_contract.c
        done = tx.conn.execute(update(consult_contract).where(c.id == contract, c.org == by_org, c.status == "active")
                               .values(status="ended", end_us=at))
        if done.rowcount != 1:
            raise FhirError(404, "not-found", "没有该机构的有效签约 (no active contract of this clinic)")
        team = tx.read_current("CareTeam", contract).resource
        team["status"] = "inactive"
        team["period"]["end"] = instant(at)
        tx.update("CareTeam", contract, team)

    work.run(env, body)


def contract_statistics(store, at_us: int | None = None) -> dict:
    """Active contracts per clinic and per programme."""
    at = at_us or now_us()
    c = consult_contract.c
    with store.read() as tx:
        by_org = dict(tx.conn.execute(select(c.org, func.count()).where(c.status == "active", c.end_us > at)
                                      .group_by(c.org)).all())
        progs: dict[str, int] = {}
        for (p,) in tx.conn.execute(select(c.programmes).where(c.status == "active", c.end_us > at)):
            for key in (p or "").split(","):
                if key:
                    progs[key] = progs.get(key, 0) + 1
    return {"active": sum(by_org.values()), "by_clinic": by_org, "by_programme": progs}
