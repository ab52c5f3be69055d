"""The line list (个案一览表) in the national reporting system's field layout, for forwarding.

Columns follow the card export of 中国疾病预防控制信息系统 (传染病报告信息管理系统): one row per card, the
fields in the card's order. Personal data is in clear here: the export is for authorised roles only
(permission ``epidemic.linelist``) and every export is audited by the security capability."""

from __future__ import annotations

from sqlalchemy import select

from hutong.china import divisions as dv
from hutong.core.clock import local_time
from hutong.epidemic import vocab
from hutong.epidemic.cards import card_field
from hutong.epidemic.tables import epidemic_card as EC
from hutong.stats.excel import Column

COLUMNS = [
    Column("卡片编号"), Column("卡片状态"), Column("患者姓名"), Column("有效证件号"), Column("性别"),
    Column("出生日期"), Column("联系电话"), Column("病人属于"), Column("现住址国标"), Column("现住详细地址"),
    Column("病例分类"), Column("发病日期"), Column("诊断时间"), Column("死亡日期"), Column("疾病名称"),
    Column("传染病类别"), Column("报告单位"), Column("报告医生"), Column("报告卡录入时间"), Column("报告时限"),
    Column("是否迟报"), Column("重卡关联"), Column("备注"),
]
_SEX = {"male": "男", "female": "女", "unknown": "未知"}


def _belongs(division: str) -> str:
    if not division.startswith(dv.JILIN):
        return "外省"
    return "本县区"


def rows(store, *, since_us: int | None = None, county: str | None = None) -> list[list]:
    """The line list rows (newest report first), optionally from one county (prefix) or since a time."""
    out = []
    with store.read() as tx:
        stmt = select(EC).order_by(EC.c.reported_us.desc(), EC.c.card_id)
        if since_us is not None:
            stmt = stmt.where(EC.c.reported_us >= since_us)
        if county:
            stmt = stmt.where(EC.c.county.like(f"{county}%"))
        for row in tx.conn.execute(stmt):
            s = tx.read("Condition", row.card_id)
            if s is None or s.deleted:
                continue
            res = s.resource
            subj = res.get("subject") or {}
            disease = vocab.DISEASES.get(row.disease)
            div = card_field(res, "addressDivision") or ""
            out.append([
                row.card_id, vocab.REVIEW_STATUSES.get(row.status, row.status), subj.get("display", ""),
                (subj.get("identifier") or {}).get("value", ""), _SEX.get(card_field(res, "sex") or "", ""),
                card_field(res, "birthDate") or "", card_field(res, "phone") or "", _belongs(div), div,
                card_field(res, "addressText") or (dv.full_name(div) if dv.is_known_division(div) else div),
                vocab.CLASSIFICATIONS.get(card_field(res, "classification") or "", ""), res.get("onsetDateTime", ""),
                local_time(row.diagnosed_us), card_field(res, "deathDate") or "",
                disease.name if disease else row.disease, vocab.CLASS_NAMES.get(disease.klass, "") if disease else "",
                row.institution, (res.get("asserter") or {}).get("display", ""), local_time(row.reported_us),
                local_time(row.deadline_us), "是" if row.late else "否", row.duplicate_of or "",
                "; ".join(n.get("text", "") for n in res.get("note") or ()),
            ])
    return out
