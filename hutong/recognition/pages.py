"""The recognition console page (``/console/recognition``): the catalog with its windows and
qualifications, what recognition saves by institution and by month, overrides by reason, and the
HL7 v2 messages refused for review. Thin: the figures come from ``savings``, the catalog from
``catalog``, the refused messages from their table."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from hutong.api.caller import permit
from hutong.core.caller import Caller
from hutong.recognition import savings
from hutong.recognition import vocab as V
from hutong.recognition.catalog import Item, current_catalog
from hutong.recognition.institutions import current_directory
from hutong.recognition.tables import recognition_hl7_rejected
from hutong.web.charts import bar_chart, chart, pie_chart
from hutong.web.i18n import gettext as _
from hutong.web.i18n import use_locale
from hutong.web.render import add_templates, allowed, render, request_locale

add_templates("recognition", Path(__file__).resolve().parent / "templates")
router = APIRouter(tags=["recognition 检查检验结果互认"])
#: Institution levels and price tiers as the catalog names them (zh-CN, English).
_LEVELS = {"3A": ("三级甲等", "tertiary A"), "3B": ("三级乙等", "tertiary B"), "2A": ("二级甲等", "secondary A"),
           "2B": ("二级乙等", "secondary B"), "2U": ("二级", "secondary"), "1A": ("一级甲等", "primary A"),
           "1B": ("一级乙等", "primary B"), "1U": ("一级", "primary"), "U": ("未定级", "unrated"),
           "tertiary": ("三级医院", "tertiary"), "secondary": ("二级医院", "secondary"),
           "primary": ("基层医疗机构", "primary care"), "*": ("其他", "other")}


def _label(pair: tuple[str, str], en: bool) -> str:
    return pair[1] if en else pair[0]


def _day(us: int | None) -> str:
    from hutong.core.clock import local_time

    return local_time(us, "%Y-%m-%d") if us else ""


def _item_row(item: Item, directory, en: bool) -> dict:
    rules = "；".join(f"{c.split('|', 1)[-1]}: {d}" for c, d in item.rules)
    quals = []
    for q in item.qualifications:
        if q.level:
            who = _label(_LEVELS.get(q.level, (q.level, q.level)), en)
        else:
            inst = directory.get(q.institution)
            who = inst.name if inst else q.institution
        period = f"{_day(q.start_us)}–{_day(q.end_us)}" if (q.start_us or q.end_us) else ""
        quals.append(f"{who} {period}".strip())
    prices = "；".join(f"{_label(_LEVELS.get(k, (k, k)), en)} ¥{v:g}" for k, v in item.prices.items())
    return {"title": f"{item.title_en}" if en else f"{item.title}（{item.title_en}）",
            "category": _label(V.CATEGORIES[item.category], en), "codes": "，".join(c.split("|", 1)[-1] for c in item.codes),
            "days": item.validity_days, "rules": rules, "scope": _label(V.SCOPES.get(item.scope, (item.scope, item.scope)), en),
            "qualified": "；".join(quals), "prices": prices}


@router.get("/console/recognition", response_class=HTMLResponse, summary="Console: result mutual recognition")
def console_page(request: Request, caller: Caller = Depends(permit("recognition.stats.read")),
                 since: str | None = Query(None, max_length=40), until: str | None = Query(None, max_length=40)):
    from hutong.recognition.routes import _period  # the API's own date parsing

    lo, hi = _period(since, until)
    locale = request_locale(request)
    en = locale == "en"
    review = allowed(request, caller, "recognition.hl7v2.review")
    with use_locale(locale), request.app.state.node.store.read() as tx:
        directory = current_directory(tx)
        catalog = current_catalog(tx)
        orders = savings.recognisable_orders(tx, lo, hi)
        rejected = []
        if review:
            t = recognition_hl7_rejected.c
            rejected = tx.conn.execute(select(t.id, t.ts_us, t.via, t.control_id, t.sender, t.code, t.error)
                                       .order_by(t.ts_us.desc()).limit(50)).all()
        report = savings.report(tx, by="institution", since_us=lo, until_us=hi) if orders else None

        def name(org: str) -> str:
            inst = directory.get(org)
            return inst.name if inst else org

        by_inst = savings.summarise(orders, "institution")
        by_month = sorted(savings.summarise(orders, "month"), key=lambda r: r["key"])
        inst_rows = [{"name": name(r["key"]), "recognisable": r["recognisable"], "recognised": r["recognised"],
                      "overridden": r["overridden"], "pending": r["pending"], "rate": f"{100 * r['rate']:.1f}%",
                      "saved": f"{r['saved']:,.2f}"} for r in by_inst]
        month_rows = [{"month": r["key"], "recognisable": r["recognisable"], "recognised": r["recognised"],
                       "rate": f"{100 * r['rate']:.1f}%", "saved": f"{r['saved']:,.2f}"} for r in by_month]
        overrides = savings.overrides_by_reason(orders)
        reason_label = {k: _label(v, en) for k, v in V.OVERRIDE_REASONS.items()}
        charts = []
        if by_inst:
            top = by_inst[:12]
            charts.append(chart(bar_chart([name(r["key"]) for r in top],
                                          {_("可互认"): [r["recognisable"] for r in top],
                                           _("已互认"): [r["recognised"] for r in top]}, horizontal=True),
                                label=_("各机构可互认与已互认医嘱数"), height=320))
            charts.append(chart(bar_chart([r["key"] for r in by_month], {_("节省费用（元）"): [r["saved"] for r in by_month]}),
                                label=_("每月节省费用（元）"), height=280))
        if overrides:
            charts.append(chart(pie_chart({reason_label.get(r["reason"], _("未说明")): r["count"] for r in overrides}),
                                label=_("不予互认理由"), height=300))
        items = [_item_row(i, directory, en) for i in catalog.items]
        rejected_rows = [{"at": _time(r.ts_us), "via": r.via.upper(), "sender": r.sender or "", "control": r.control_id or "",
                          "code": r.code, "error": r.error[:300]} for r in rejected]
        never = [{"practitioner": r["practitioner"], "institution": name(r["institution"] or ""),
                  "recognisable": r["recognisable"], "overridden": r["overridden"]}
                 for r in (report["neverAccepting"] if report else [])]
        totals = report["totals"] if report else {"recognisable": 0, "recognised": 0, "overridden": 0, "pending": 0,
                                                  "saved": 0.0, "rate": 0.0}
        return render(request, "recognition/console.html", {
            "totals": totals, "charts": charts, "items": items, "inst_rows": inst_rows, "month_rows": month_rows,
            "overrides": [{"reason": reason_label.get(r["reason"], _("未说明")), "count": r["count"]} for r in overrides],
            "never": never, "review": review, "rejected": rejected_rows, "since": since or "", "until": until or "",
        }, audience="console", title=_("检查检验结果互认"))


def _time(us: int) -> str:
    from hutong.core.clock import local_time

    return local_time(us)
