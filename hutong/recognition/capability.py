"""Result mutual recognition (检查检验结果互认) as a capability of the node."""

from hutong.capability import Capability, Consumer, NavEntry
from hutong.recognition import cli, hl7v2, index, pages, routes, tables
from hutong.reportread.report import register_hl7v2_mapper

# report interpretation reads a lab's HL7 v2 ORU the way recognition maps the ones it stores
register_hl7v2_mapper(hl7v2.to_bundle)

CAPABILITY = Capability(
    name="recognition",
    summary="检查检验结果互认 result mutual recognition: catalog, result index, CDS Hooks order prompts, "
            "HL7 v2 ORU in, savings",
    routers=[routes.router, pages.router],
    nav=[NavEntry("console", "/console/recognition", "检查检验结果互认", permission="recognition.stats.read", order=45)],
    consumers=[Consumer(index.CONSUMER, index.consume, index.TYPES)],
    cli=cli.register,
    startup=routes.startup,
    shutdown=routes.shutdown,
    permissions={
        "recognition.hook": "call the recognition CDS services at order time (a hospital system)",
        "recognition.feedback": "report what the doctor did with a recognition card",
        "recognition.results": "ask which recognisable results a patient has for an order",
        "recognition.hl7v2": "send HL7 v2 lab results (ORU^R01, OUL^R22)",
        "recognition.hl7v2.review": "review HL7 v2 messages that were refused",
        "recognition.stats.read": "read what recognition saves (rates, avoided tests, money, overrides)",
    },
    tables=tables.TABLES,
)
