"""What recognition saves: recognition rate, tests avoided and money saved, overrides by reason,
doctors who never accept (plain Python over ``recognition_offer``).

One draft order and item counts once however many hooks offered it (``order-select`` then
``order-sign``): *recognisable* is every such order, *recognised* those whose card was accepted
(the test not repeated: its price at the ordering institution's level is saved), *overridden* those
the doctor kept with a reason, *pending* those without feedback.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select

from hutong.core.clock import local_time
from hutong.recognition import vocab as V
from hutong.recognition.tables import recognition_offer
from hutong.stats.excel import Column, Sheet, workbook

GROUPS = ("institution", "item", "department", "month", "category", "practitioner")


@dataclass
class Order:
    """One recognisable order (an order and item), with what became of it."""

    institution: str | None
    department: str | None
    practitioner: str
    item: str
    category: str
    month: str
    price: float
    outcome: str  # accepted | overridden | pending
    reason: str | None


def recognisable_orders(tx, since_us: int | None = None, until_us: int | None = None) -> list[Order]:
    """Every recognisable order in the period (by the time it was offered)."""
    t = recognition_offer.c
    stmt = select(t.institution, t.department, t.practitioner, t.draft_order, t.item, t.category, t.ts_us,
                  t.price, t.outcome, t.reason, t.outcome_us).order_by(t.ts_us)
    if since_us is not None:
        stmt = stmt.where(t.ts_us >= since_us)
    if until_us is not None:
        stmt = stmt.where(t.ts_us < until_us)
    orders: dict[tuple, Order] = {}
    for r in tx.conn.execute(stmt):
        key = (r.institution, r.draft_order, r.item)
        o = orders.get(key)
        if o is None:
            o = orders[key] = Order(r.institution, r.department, r.practitioner, r.item, r.category,
                                    local_time(r.ts_us, "%Y-%m"), r.price or 0.0, "pending", None)
        # the decisive answer: an acceptance wins over an override, either over no answer
        if r.outcome == "accepted" or (r.outcome == "overridden" and o.outcome == "pending"):
            o.outcome, o.reason = r.outcome, r.reason
    return list(orders.values())


def summarise(orders: list[Order], by: str) -> list[dict]:
    """Counts, rate and money per ``by`` (one of ``GROUPS``), largest first."""
    if by not in GROUPS:
        raise ValueError(by)
    acc: dict[str, dict] = defaultdict(lambda: {"recognisable": 0, "recognised": 0, "overridden": 0, "pending": 0,
                                                "saved": 0.0})
    for o in orders:
        row = acc[getattr(o, by) or "—"]
        row["recognisable"] += 1
        if o.outcome == "accepted":
            row["recognised"] += 1
            row["saved"] += o.price
        elif o.outcome == "overridden":
            row["overridden"] += 1
        else:
            row["pending"] += 1
    out = []
    for key, row in acc.items():
        out.append({"key": key, **row, "saved": round(row["saved"], 2),
                    "rate": round(row["recognised"] / row["recognisable"], 4) if row["recognisable"] else 0.0})
    out.sort(key=lambda r: (-r["recognisable"], r["key"]))
    return out


def overrides_by_reason(orders: list[Order]) -> list[dict]:
    """How often each override reason of the 2022 measures was given."""
    counts: dict[str, int] = defaultdict(int)
    for o in orders:
        if o.outcome == "overridden":
            counts[o.reason or "unspecified"] += 1
    return [{"reason": k, "label": V.OVERRIDE_REASONS.get(k, ("未说明", "unspecified"))[0], "count": n}
            for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def never_accepting(orders: list[Order], min_offers: int = 3) -> list[dict]:
    """Doctors offered at least ``min_offers`` recognisable results who accepted none."""
    by_doc: dict[str, list[Order]] = defaultdict(list)
    for o in orders:
        by_doc[o.practitioner].append(o)
    out = [{"practitioner": doc, "institution": os_[0].institution, "recognisable": len(os_),
            "overridden": sum(1 for o in os_ if o.outcome == "overridden")}
           for doc, os_ in by_doc.items() if len(os_) >= min_offers and not any(o.outcome == "accepted" for o in os_)]
    return sorted(out, key=lambda r: (-r["recognisable"], r["practitioner"]))


def report(tx, *, by: str = "institution", since_us: int | None = None, until_us: int | None = None,
           min_offers: int = 3) -> dict:
    """The savings report: totals, one grouping, overrides by reason, doctors who never accept."""
    orders = recognisable_orders(tx, since_us, until_us)
    total = summarise(orders, "category")
    totals = {k: sum(r[k] for r in total) for k in ("recognisable", "recognised", "overridden", "pending")}
    totals["saved"] = round(sum(r["saved"] for r in total), 2)
    totals["rate"] = round(totals["recognised"] / totals["recognisable"], 4) if totals["recognisable"] else 0.0
    return {"by": by, "totals": totals, "rows": summarise(orders, by), "overrides": overrides_by_reason(orders),
            "neverAccepting": never_accepting(orders, min_offers)}


_HEAD = {"institution": "机构 institution", "item": "项目 item", "department": "科室 department",
         "month": "月份 month", "category": "类别 category", "practitioner": "医生 doctor"}


def excel(tx, *, since_us: int | None = None, until_us: int | None = None) -> bytes:
    """The savings report as a workbook: one sheet per grouping, overrides, doctors who never accept."""
    orders = recognisable_orders(tx, since_us, until_us)
    cols = [Column("可互认 recognisable", "0"), Column("已互认 recognised", "0"), Column("不予互认 overridden", "0"),
            Column("未反馈 pending", "0"), Column("互认率 rate", "0.0%"), Column("节省费用（元） saved (CNY)", "#,##0.00")]
    sheets = []
    for by in ("institution", "item", "department", "month"):
        rows = [[r["key"], r["recognisable"], r["recognised"], r["overridden"], r["pending"], r["rate"], r["saved"]]
                for r in summarise(orders, by)]
        sheets.append(Sheet(f"检查检验结果互认：按{_HEAD[by].split()[0]} (by {by})", [Column(_HEAD[by])] + cols, rows,
                            notes=["互认率 = 已互认 ÷ 可互认；节省费用按开单机构等级的项目价格计。",
                                   "一次医嘱的同一项目只计一次（order-select 与 order-sign 合并）。"],
                            name=f"by {by}"))
    sheets.append(Sheet("不予互认理由 (overrides by reason)", [Column("理由 reason"), Column("次数 count", "0")],
                        [[r["label"], r["count"]] for r in overrides_by_reason(orders)], name="overrides"))
    sheets.append(Sheet("从未采纳互认的医生 (doctors who never accept)",
                        [Column("医生 doctor"), Column("机构 institution"), Column("可互认 recognisable", "0"),
                         Column("不予互认 overridden", "0")],
                        [[r["practitioner"], r["institution"], r["recognisable"], r["overridden"]]
                         for r in never_accepting(orders)], name="never accepting"))
    return workbook(sheets)
