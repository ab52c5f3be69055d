"""Reports as the API, the pages and Excel show them (labels in the page's language, times in
Asia/Shanghai). No personal data: examples name resources by type and id only."""

from __future__ import annotations

from hutong.core.clock import instant, local_time
from hutong.quality import arrivals, levels, rules
from hutong.quality.report import GROUPS, InstitutionReport, mean_score
from hutong.stats.excel import Column, Sheet
from hutong.web.i18n import N_, current_locale
from hutong.web.i18n import gettext as _

GROUP_NAMES = {"connectivity": N_("连通性"), "conformance": N_("一致性"), "completeness": N_("完整性"),
               "timeliness": N_("及时性"), "documents": N_("共享文档")}
INTERFACE_NAMES = {"fhir": N_("FHIR接口"), "hl7v2": N_("HL7 v2接口"), "document": N_("共享文档"), "card": N_("健康卡扫码")}
RULE_GROUP_NAMES = {"conformance": N_("一致性"), "completeness": N_("完整性")}
BUCKET_NAMES = {"le_1h": N_("1小时内"), "le_1d": N_("1小时至1天"), "le_7d": N_("1至7天"), "gt_7d": N_("7天以上")}
#: WS/T 483 / WS/T 500 document type names the province sees most (the rest are shown by code).
DOC_TYPES = {"C0001": "个人基本健康信息登记", "C0003": "门(急)诊病历", "C0004": "急诊留观病历", "C0005": "西药处方",
             "C0006": "中药处方", "C0007": "检查报告", "C0008": "检验报告", "C0032": "入院记录", "C0034": "出院小结",
             "C0053": "出院记录"}


#: WS/T 790 services an institution is seen using, from the resource types it writes (docs/quality.md).
WST790_SERVICES = (
    ("790.6", N_("居民注册服务"), ("Patient",)),
    ("790.7", N_("医疗卫生机构注册服务"), ("Organization", "Location", "HealthcareService")),
    ("790.8", N_("医疗卫生人员注册服务"), ("Practitioner", "PractitionerRole")),
    ("790.9", N_("术语注册服务"), ("CodeSystem", "ValueSet", "ConceptMap")),
    ("790.12", N_("健康档案采集服务"), ("Encounter", "Observation", "Condition", "DiagnosticReport", "MedicationRequest",
                                   "Procedure", "ImagingStudy", "Immunization", "AllergyIntolerance")),
    ("790.14", N_("文档订阅发布服务"), ("DocumentReference", "Binary", "Composition")),
    ("790.15", N_("预约挂号服务"), ("Appointment", "Slot")),
    ("790.16", N_("双向转诊服务"), ("ServiceRequest", "Task")),
    ("790.17", N_("签约服务"), ("CarePlan", "CareTeam")),
    ("790.5", N_("基础通知服务"), ("Subscription",)),
)


def services_used(rep: InstitutionReport) -> list[dict]:
    """Every WS/T 790 service with what the institution wrote through it in the window."""
    out = []
    for part, name, types in WST790_SERVICES:
        n = sum(rep.by_type.get(t, 0) for t in types)
        out.append({"part": f"WS/T {part}", "name": _(name), "writes": n, "used": n > 0})
    return out


def level_name(level: levels.Level | None) -> str:
    """The level's name in the page's language (未达一级 below level 1)."""
    zh, en = (level.zh, level.en) if level else levels.NONE
    return en if current_locale() == "en" else zh


def requirement_text(req: levels.Requirement) -> str:
    return _(req.text, t=req.shown_threshold())


def shown_value(req: levels.Requirement, value: float | None) -> str:
    if value is None:
        return _("未观察到")
    return f"{value * 100:.1f}%" if req.percent else f"{value:g}"


def missing_list(rep: InstitutionReport) -> list[dict]:
    est = rep.estimate
    return [{"indicator": s.requirement.indicator, "text": requirement_text(s.requirement),
             "required": f"{s.requirement.op} {s.requirement.shown_threshold()}",
             "observed": shown_value(s.requirement, s.value), "value": s.value} for s in (est.missing if est else ())]


def rule_rows(rep: InstitutionReport) -> list[dict]:
    out = []
    for r in rules.RULES:
        a, f = rep.rules.get(r.id, (0, 0))
        if not a:
            continue
        out.append({"rule": r.id, "group": r.group, "element": r.element, "title": _(r.zh),
                    "title_en": r.en, "applicable": a, "failed": f, "rate": round(1 - f / a, 4),
                    "examples": rep.examples.get(r.id, [])})
    out.sort(key=lambda x: (-x["failed"], x["rule"]))
    return out


def report_json(rep: InstitutionReport) -> dict:
    """The report as the API answers it (``GET /api/quality/institutions/{id}``)."""
    inst = rep.institution
    est = rep.estimate
    lat = rep.latency
    return {
        "institution": {"id": inst.org_id, "name": inst.name, "city": inst.city, "platform": inst.platform,
                        "grade": inst.grade},
        "window": {"first": rep.days[0], "last": rep.day, "days": len(rep.days)},
        "today": {"day": rep.today, "arrivals": rep.per_day.get(rep.today, 0)},
        "estimatedLevel": {"code": est.level.code, "name": level_name(est.level)} if est and est.level else None,
        "nextLevel": {"code": est.next_level.code, "name": level_name(est.next_level)} if est and est.next_level else None,
        "missingForNextLevel": missing_list(rep),
        "scores": rep.scores, "score": mean_score(rep),
        "indicators": rep.indicators,
        "connectivity": {
            "lastArrival": {k: instant(v) for k, v in sorted(rep.last_by_interface.items())},
            "perDay": {d: rep.per_day.get(d, 0) for d in rep.days},
            "gapDays": rep.gap_days,
            "byType": dict(sorted(rep.by_type.items())), "byInterface": dict(sorted(rep.by_interface.items())),
        },
        "latency": {"measured": lat["n"], "meanHours": round(lat["sum_ms"] / lat["n"] / 3_600_000, 2) if lat["n"] else None,
                    **{b: lat[b] for b in arrivals.LATENCY_BUCKETS}},
        "rules": rule_rows(rep),
        "unresolvedReferences": {"count": rep.unresolved, "examples": rep.unresolved_examples},
        "documents": [{"type": k, "name": DOC_TYPES.get(k, ""), "count": d, "withProblems": p}
                      for k, (d, p) in sorted(rep.documents.items())],
        "cardScans": {"accepted": rep.card_scans[0], "total": rep.card_scans[1]},
        "identity": {"linkedPatients": rep.patients[0], "duplicateRecords": rep.patients[1],
                     "duplicateRate": rep.indicators.get("duplicate_rate"),
                     "cardScans": rep.card_scans[0], "patientsRegistered": int(rep.by_type.get("Patient", 0))},
        "services": services_used(rep),
        "note": _("估计值：根据平台实际收到的数据推算，不是国家卫生健康委统计信息中心的正式测评结果。"),
    }


def overview_row(rank: int, rep: InstitutionReport) -> dict:
    inst = rep.institution
    est = rep.estimate
    return {"rank": rank, "id": inst.org_id, "name": inst.name, "city": inst.city, "platform": inst.platform,
            "level": est.level.code if est and est.level else None, "levelName": level_name(est.level if est else None),
            "score": mean_score(rep), "scores": rep.scores, "gapDays": len(rep.gap_days),
            "volume": int(rep.indicators.get("volume") or 0),
            "lastArrival": instant(rep.last_us) if rep.last_us else None}


def _pct(v):
    return None if v is None else v / 100


def report_sheets(rep: InstitutionReport) -> list[Sheet]:
    """An institution's report as Excel sheets (``hutong.stats.excel``)."""
    inst = rep.institution
    note = _("估计值：根据平台实际收到的数据推算，不是国家卫生健康委统计信息中心的正式测评结果。")
    period = _("评估期 %(a)s 至 %(b)s", a=rep.days[0], b=rep.day)
    summary = [
        [_("机构"), inst.name], [_("机构编号"), inst.org_id], [_("城市"), inst.city], [_("评估期"), f"{rep.days[0]} – {rep.day}"],
        [_("估计等级"), level_name(rep.estimate.level if rep.estimate else None)],
        [_("综合得分"), mean_score(rep)],
        *[[_(GROUP_NAMES[g]), rep.scores.get(g)] for g in GROUPS],
        [_("数据中断天数"), len(rep.gap_days)], [_("无法解析的引用"), rep.unresolved],
        [_("重复建档的患者记录"), rep.patients[1]], [_("健康卡扫码"), rep.card_scans[0]],
    ]
    missing = [[m["text"], m["required"], m["observed"]] for m in missing_list(rep)]
    rule_sheet = [[r["title"], r["element"], _(RULE_GROUP_NAMES[r["group"]]), r["applicable"], r["failed"], r["rate"],
                   "；".join(f'{e["res_type"]}/{e["res_id"]}' + (f' ({e["detail"]})' if e["detail"] else "")
                            for e in r["examples"][:5])]
                  for r in rule_rows(rep)]
    daily = [[d, rep.per_day.get(d, 0), _("是") if d in rep.gap_days else ""] for d in rep.days]
    types = [[t, n] for t, n in sorted(rep.by_type.items(), key=lambda x: -x[1])]
    ifaces = [[_(INTERFACE_NAMES.get(k, k)), local_time(v)] for k, v in sorted(rep.last_by_interface.items())]
    return [
        Sheet(_("%(name)s 互联互通测评（估计）", name=inst.name), [Column(_("项目")), Column(_("值"))], summary,
              notes=[period, note], name=_("概要")),
        Sheet(_("晋级下一等级还缺少"), [Column(_("要求")), Column(_("标准")), Column(_("实际"))], missing, name=_("晋级差距")),
        Sheet(_("数据质量规则"), [Column(_("规则")), Column(_("数据元素")), Column(_("类别")), Column(_("检查数"), "0"),
                                 Column(_("不合格数"), "0"), Column(_("合格率"), "0.0%"), Column(_("示例"))],
              rule_sheet, notes=[period], name=_("数据质量")),
        Sheet(_("每日接收数据量"), [Column(_("日期")), Column(_("数据量"), "0"), Column(_("中断"))], daily, name=_("每日数据量")),
        Sheet(_("按资源类型"), [Column(_("资源类型")), Column(_("数据量"), "0")], types, name=_("资源类型")),
        Sheet(_("各接口最近接收时间"), [Column(_("接口")), Column(_("最近接收"))], ifaces, name=_("接口")),
    ]


def overview_sheet(reps: list[InstitutionReport]) -> Sheet:
    rows = []
    for i, rep in enumerate(reps, start=1):
        row = overview_row(i, rep)
        rows.append([i, row["name"], row["id"], row["city"], row["levelName"], row["score"],
                     *[rep.scores.get(g) for g in GROUPS], row["gapDays"], row["volume"]])
    cols = [Column(_("排名"), "0"), Column(_("机构")), Column(_("机构编号")), Column(_("城市")), Column(_("估计等级")),
            Column(_("综合得分"), "0.0"), *[Column(_(GROUP_NAMES[g]), "0.0") for g in GROUPS],
            Column(_("中断天数"), "0"), Column(_("数据量"), "0")]
    first, last = (reps[0].days[0], reps[0].day) if reps else ("", "")
    return Sheet(_("全省互联互通测评排名（估计）"), cols, rows,
                 notes=[_("评估期 %(a)s 至 %(b)s", a=first, b=last),
                        _("估计值：根据平台实际收到的数据推算，不是国家卫生健康委统计信息中心的正式测评结果。")],
                 name=_("排名"))
