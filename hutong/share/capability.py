"""The shared record as a capability of the node."""

from hutong.capability import Capability, Consumer, NavEntry
from hutong.search import linked
from hutong.share import cli, mhd, pages, tables
from hutong.share.identity import linked_record_ids

# Searches and $everything resolve a patient through the patient index (hutong/search/linked.py).
linked.register_resolver(linked_record_ids)

CAPABILITY = Capability(
    name="share",
    summary="健康档案调阅 shared record: a person's records from every institution; IHE MHD documents",
    fhir=mhd.FHIR_INTERACTIONS,
    routers=[pages.router],
    consumers=[Consumer(mhd.CONSUMER, mhd.consume, frozenset({"DocumentReference"}))],
    cli=cli.register,
    tables=tables.TABLES,
    nav=[
        NavEntry("doctor", "/workstation/search", "患者查找", "share.record", order=5),
        NavEntry("resident", "/portal/record", "就诊记录", "web.portal", order=10),
        NavEntry("resident", "/portal/results", "检查结果", "web.portal", order=20),
        NavEntry("resident", "/portal/documents", "文档", "web.portal", order=30),
        NavEntry("resident", "/portal/card", "健康卡", "web.portal", order=40),
    ],
    permissions={
        "share.record": "read a person's shared record across institutions (pages)",
    },
)
