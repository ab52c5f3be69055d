"""The infectious disease report card (传染病报告卡): validation, submission, duplicates, deadlines, review.

A card is stored as a FHIR ``Condition`` tagged ``report-card``: ``code`` the disease, ``onsetDateTime``
the onset, ``recordedDate`` the report time, ``subject`` the patient by resident ID (identifier only),
``asserter`` the reporting doctor, and one complex extension (``vocab.EXT_CARD``) with the rest (class,
case classification, diagnosis date, current address division, reporting institution, review status,
duplicate link, deadline and lateness). The county CDC reviews a card (approve, correct, reject) before
it counts as a case; corrections are new versions of the Condition, so the history shows each change.

Validation collects every problem and answers 422 with one OperationOutcome issue per field; nothing is
stored. A second card for the same person (resident ID, else name + birth date + sex) and disease with
an onset within ``EPISODE_DAYS`` of an earlier live card is stored as a duplicate linked to the first and
not counted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, select, update

from hutong.china import divisions as dv
from hutong.china.ids import is_valid_resident_id, normalize_resident_id
from hutong.core.caller import Caller
from hutong.core.clock import SHANGHAI, instant, now_us
from hutong.core.errors import FhirError, Issue
from hutong.epidemic import vocab
from hutong.epidemic.tables import epidemic_card as EC

EPISODE_DAYS = 30
HOUR_US = 3_600_000_000


@dataclass
class CardInput:
    """What a reporting doctor fills in (the API's body, already typed)."""

    disease: str
    classification: str
    patient_name: str
    sex: str
    birth_date: str
    onset_date: str
    diagnosis_time: str
    address_division: str
    institution: str
    doctor: str
    resident_id: str = ""
    phone: str = ""
    address_text: str = ""
    death_date: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    note: str = ""


def _day(value: str, name: str, issues: list[Issue]) -> date | None:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        issues.append(Issue("error", "invalid", f"{name}: 日期格式应为 YYYY-MM-DD (date expected)", [name]))
        return None


def _moment(value: str, name: str, issues: list[Issue]) -> datetime | None:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        issues.append(Issue("error", "invalid", f"{name}: 时间格式应为 YYYY-MM-DDTHH:MM (date-time expected)", [name]))
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=SHANGHAI)


def _us(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000)


@dataclass
class Checked:
    """A card that passed validation, with derived values."""

    card: CardInput
    disease: vocab.Disease
    onset: date
    diagnosed: datetime
    birth: date
    out_of_province: bool
    person_key: str


def validate(card: CardInput, store=None, *, now: datetime | None = None) -> Checked:
    """Check a card; raises a 422 ``FhirError`` listing every problem (field by field)."""
    issues: list[Issue] = []
    now = now or datetime.now(SHANGHAI)

    def err(field_: str, text: str) -> None:
        issues.append(Issue("error", "invariant" if field_ else "invalid", text, [field_]))

    disease = vocab.DISEASES.get(card.disease)
    if disease is None:
        err("disease", f"未知的法定传染病代码 {card.disease!r} (unknown notifiable disease)")
    if card.classification not in vocab.CLASSIFICATIONS:
        err("classification", "病例分类应为疑似病例、临床诊断病例、确诊病例或病原携带者")
    elif disease is not None:
        if card.classification == "carrier" and not disease.carrier:
            err("classification", f"{disease.name}不报告病原携带者 (no carriers for this disease)")
        if card.classification == "clinical" and not disease.clinical:
            err("classification", f"{disease.name}无临床诊断病例 (no clinical diagnosis for this disease)")
    if not card.patient_name.strip():
        err("patient_name", "患者姓名必填 (patient name is required)")
    if card.sex not in ("male", "female", "unknown"):
        err("sex", "性别应为 male、female 或 unknown")
    if card.resident_id and not is_valid_resident_id(card.resident_id):
        err("resident_id", "身份证号码校验失败 (invalid resident ID number)")
    birth = _day(card.birth_date, "birth_date", issues)
    onset = _day(card.onset_date, "onset_date", issues)
    diagnosed = _moment(card.diagnosis_time, "diagnosis_time", issues)
    today = now.astimezone(SHANGHAI).date()
    if birth and birth > today:
        err("birth_date", "出生日期不能晚于今天 (birth date in the future)")
    if onset and onset > today:
        err("onset_date", "发病日期不能晚于今天 (onset in the future)")
    if birth and onset and onset < birth:
        err("onset_date", "发病日期不能早于出生日期 (onset before birth)")
    if diagnosed and diagnosed > now + timedelta(minutes=5):
        err("diagnosis_time", "诊断时间不能晚于现在 (diagnosis in the future)")
    if onset and diagnosed and diagnosed.astimezone(SHANGHAI).date() < onset:
        err("diagnosis_time", "诊断日期不能早于发病日期 (diagnosis before onset)")
    if card.death_date:
        death = _day(card.death_date, "death_date", issues)
        if death and diagnosed and death < (onset or diagnosed.date()):
            err("death_date", "死亡日期不能早于发病日期 (death before onset)")
        if death and death > today:
            err("death_date", "死亡日期不能晚于今天 (death in the future)")
    div = card.address_division
    out_of_province = False
    if not (div.isdigit() and len(div) in (6, 9, 12) and dv.is_known_division(div)):
        err("address_division", "现住址应为有效的县级及以下行政区划代码 (a known GB/T 2260 county or lower code)")
    elif not div.startswith(dv.JILIN):
        out_of_province = True  # accepted, flagged: the case is forwarded to the province of residence
    if disease is not None:
        for name in disease.required:
            value = card.extra.get(name, "")
            if not value:
                err(f"extra.{name}", f"{disease.name}需填写 {name} (required for this disease)")
            elif value not in vocab.EXTRA_FIELDS[name]:
                err(f"extra.{name}", f"{name} 应为 {'、'.join(vocab.EXTRA_FIELDS[name])}")
    for name in card.extra:
        if name not in vocab.EXTRA_FIELDS:
            err(f"extra.{name}", f"未知的附卡字段 {name!r} (unknown extra field)")
    if not card.doctor.strip():
        err("doctor", "报告医生必填 (reporting doctor is required)")
    if store is not None and card.institution:
        from hutong.registry import service as registry

        if registry.find_institution(store, id=card.institution) is None:
            err("institution", f"报告单位不在机构注册库中 (institution {card.institution!r} is not registered)")
    elif not card.institution:
        err("institution", "报告单位必填 (reporting institution is required)")
    if issues:
        raise FhirError(422, "invariant", f"报告卡有 {len(issues)} 处错误，未保存 (the card has {len(issues)} "
                        "problems; nothing was stored)", issues=issues)
    return Checked(card, disease, onset, diagnosed, birth, out_of_province, person_key(card))


def person_key(card: CardInput) -> str:
    """A hash identifying the person (resident ID when given, else name + birth date + sex)."""
    if card.resident_id:
        basis = "id:" + normalize_resident_id(card.resident_id)
    else:
        basis = f"nbs:{card.patient_name.strip()}|{card.birth_date}|{card.sex}"
    return hashlib.sha256(basis.encode()).hexdigest()


def _condition(c: Checked, reported_us: int, deadline_us: int, status: str, duplicate_of: str | None) -> dict:
    card, d = c.card, c.disease
    sub = [
        {"url": "class", "valueCode": d.klass},
        {"url": "classification", "valueCode": card.classification},
        {"url": "diagnosisTime", "valueDateTime": instant(_us(c.diagnosed))},
        {"url": "addressDivision", "valueCode": card.address_division},
        {"url": "institution", "valueReference": {"reference": f"Organization/{card.institution}"}},
        {"url": "reviewStatus", "valueCode": status},
        {"url": "deadline", "valueDateTime": instant(deadline_us)},
        {"url": "late", "valueBoolean": reported_us > deadline_us},
        {"url": "sex", "valueCode": card.sex},
        {"url": "birthDate", "valueDate": card.birth_date},
    ]
    if c.out_of_province:
        sub.append({"url": "outOfProvince", "valueBoolean": True})
    if card.address_text:
        sub.append({"url": "addressText", "valueString": card.address_text[:200]})
    if card.phone:
        sub.append({"url": "phone", "valueString": card.phone[:32]})
    if card.death_date:
        sub.append({"url": "deathDate", "valueDate": card.death_date})
    for k, v in sorted(card.extra.items()):
        sub.append({"url": f"extra-{k}", "valueString": v})
    if duplicate_of:
        sub.append({"url": "duplicateOf", "valueReference": {"reference": f"Condition/{duplicate_of}"}})
    subject: dict = {"display": card.patient_name.strip()[:64]}
    if card.resident_id:
        subject["identifier"] = {"system": vocab.RESIDENT_ID, "value": normalize_resident_id(card.resident_id)}
    res = {
        "resourceType": "Condition",
        "meta": {"tag": [vocab.CARD_TAG]},
        "extension": [{"url": vocab.EXT_CARD, "extension": sub}],
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                           "code": "provisional" if card.classification == "suspected" else "confirmed"}]},
        "category": [{"coding": [vocab.CATEGORY]}],
        "code": {"coding": [{"system": vocab.DISEASE, "code": d.code, "display": d.name},
                            {"system": vocab.ICD10, "code": d.icd10}], "text": d.name},
        "subject": subject,
        "onsetDateTime": c.onset.isoformat(),
        "recordedDate": instant(reported_us),
        "asserter": {"display": card.doctor.strip()[:64]},
    }
    if card.note:
        res["note"] = [{"text": card.note[:500]}]
    return res


def submit(store, card: CardInput, *, caller: Caller | None = None, now: datetime | None = None) -> dict:
    """Validate and store a card; returns its id, status, deadline, lateness and any duplicate link."""
    if caller is not None and caller.institution and "operator" not in caller.roles and (
            caller.institution.removeprefix("Organization/") != card.institution):
        raise FhirError(403, "forbidden", "只能以本机构名义报告 (report for your own institution)", "institution")
    checked = validate(card, store, now=now)
    reported = _us(now) if now else now_us()
    deadline = _us(checked.diagnosed) + vocab.deadline_hours(checked.disease, card.extra) * HOUR_US
    onset_us = _us(datetime.combine(checked.onset, datetime.min.time(), SHANGHAI))
    window = EPISODE_DAYS * 24 * HOUR_US
    with store.write(caller.tenant if caller else None) as tx:
        first = tx.conn.execute(select(EC.c.card_id).where(
            EC.c.person_key == checked.person_key, EC.c.disease == card.disease,
            EC.c.status.in_(("pending", "reviewed")), EC.c.onset_us.between(onset_us - window, onset_us + window),
        ).order_by(EC.c.reported_us, EC.c.card_id).limit(1)).scalar()
        status = "duplicate" if first else "pending"
        result = tx.create(_condition(checked, reported, deadline, status, first))
        cid = result.stored.res_id
        tx.conn.execute(EC.insert().values(
            card_id=cid, tenant=result.stored.tenant, disease=card.disease, person_key=checked.person_key,
            onset_us=onset_us, diagnosed_us=_us(checked.diagnosed), reported_us=reported, deadline_us=deadline,
            late=reported > deadline, county=card.address_division[:6], institution=card.institution,
            status=status, duplicate_of=first, updated_us=reported))
    return {"id": cid, "status": status, "status_text": vocab.REVIEW_STATUSES[status], "duplicate_of": first,
            "deadline": instant(deadline), "late": reported > deadline,
            "out_of_province": checked.out_of_province}


def card_field(res: dict, name: str):
    """One value of the card extension (``valueX`` whatever its type), or None."""
    for ext in res.get("extension") or ():
        if ext.get("url") == vocab.EXT_CARD:
            for sub in ext.get("extension") or ():
                if sub.get("url") == name:
                    return next((v for k, v in sub.items() if k.startswith("value")), None)
    return None


def _set_field(res: dict, name: str, key: str, value) -> None:
    for ext in res.get("extension") or ():
        if ext.get("url") == vocab.EXT_CARD:
            subs = [s for s in ext.get("extension") or () if s.get("url") != name]
            if value is not None:
                subs.append({"url": name, key: value})
            ext["extension"] = subs


def review(store, card_id: str, action: str, *, caller: Caller | None = None, classification: str | None = None,
           disease: str | None = None, reason: str = "") -> dict:
    """The county CDC's review: ``approve`` (审核), ``correct`` (订正: new classification and/or disease,
    then reviewed) or ``reject`` (退卡, with a reason). Only a pending or reviewed card can be reviewed."""
    if action not in ("approve", "correct", "reject"):
        raise FhirError(400, "invalid", "action must be approve, correct or reject", "action")
    if action == "reject" and not reason.strip():
        raise FhirError(422, "invariant", "退卡须说明原因 (a rejection needs a reason)", "reason")
    if action == "correct" and not (classification or disease):
        raise FhirError(422, "invariant", "订正须给出新的病例分类或病名 (a correction changes something)", "classification")
    if classification is not None and classification not in vocab.CLASSIFICATIONS:
        raise FhirError(422, "invariant", "unknown classification", "classification")
    if disease is not None and disease not in vocab.DISEASES:
        raise FhirError(422, "invariant", "unknown disease", "disease")
    with store.write(caller.tenant if caller else None) as tx:
        row = tx.conn.execute(select(EC).where(EC.c.card_id == card_id)).first()
        stored = tx.read("Condition", card_id, for_update=True)
        if row is None or stored is None or stored.deleted:
            raise FhirError(404, "not-found", f"报告卡不存在 (no report card {card_id!r})")
        if row.status not in ("pending", "reviewed"):
            raise FhirError(409, "conflict", f"报告卡状态为{vocab.REVIEW_STATUSES[row.status]}，不能审核")
        res = stored.resource
        res.pop("meta", None)
        res["meta"] = {"tag": [vocab.CARD_TAG]}
        new_status = "rejected" if action == "reject" else "reviewed"
        values: dict = {"status": new_status, "updated_us": now_us()}
        if classification:
            d = vocab.DISEASES[disease or row.disease]
            if classification == "carrier" and not d.carrier:
                raise FhirError(422, "invariant", f"{d.name}不报告病原携带者", "classification")
            _set_field(res, "classification", "valueCode", classification)
            res["verificationStatus"]["coding"][0]["code"] = "provisional" if classification == "suspected" else "confirmed"
        if disease:
            d = vocab.DISEASES[disease]
            res["code"] = {"coding": [{"system": vocab.DISEASE, "code": d.code, "display": d.name},
                                      {"system": vocab.ICD10, "code": d.icd10}], "text": d.name}
            _set_field(res, "class", "valueCode", d.klass)
            values["disease"] = disease
        _set_field(res, "reviewStatus", "valueCode", new_status)
        if reason:
            _set_field(res, "reviewNote", "valueString", reason.strip()[:200])
        _set_field(res, "reviewedBy", "valueString", (caller.client_id if caller else "system")[:64])
        _set_field(res, "reviewedAt", "valueDateTime", instant(values["updated_us"]))
        tx.update("Condition", card_id, res, if_match=stored.version_id)
        tx.conn.execute(update(EC).where(and_(EC.c.card_id == card_id)).values(**values))
    return {"id": card_id, "status": new_status, "status_text": vocab.REVIEW_STATUSES[new_status]}


def late_reports(conn, county: str | None = None) -> int:
    """How many live cards were reported after their deadline (optionally in one county prefix)."""
    stmt = select(func.count()).select_from(EC).where(EC.c.late.is_(True), EC.c.status.in_(("pending", "reviewed")))
    if county:
        stmt = stmt.where(EC.c.county.like(f"{county}%"))
    return int(conn.execute(stmt).scalar_one())
