"""China's CDA R2 shared documents (WS/T 483 health-record documents, WS/T 500 EMR documents).

``parse_cda(data)`` parses safely (lxml with no DTD, no entity expansion, no network; a document that
declares a DOCTYPE is refused), reads the header the platform indexes — document type code, title, id,
effective time, patient identifiers (the resident ID under root 2.16.156.10011.1.3), patient name,
gender and birth time, author and custodian institutions, service period — checks what can be checked
(the CDA R2 typeId, required header elements, the document-type code system, time formats, the resident
ID's check digit) and renders the structured body's sections as safe HTML for the pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from lxml import etree
from markupsafe import Markup, escape

from hutong.china.ids import is_valid_resident_id
from hutong.core.errors import FhirError

NS = {"h": "urn:hl7-org:v3"}
CDA_TYPE_ID = "2.16.840.1.113883.1.3"
#: 卫生信息共享文档编码体系 (WS/T 483 and WS/T 500 document type codes such as C0001 … C0053).
DOC_TYPE_SYSTEM = "2.16.156.10011.2.4"
RESIDENT_ID_ROOT = "2.16.156.10011.1.3"
CDA_MEDIA_TYPES = ("application/hl7-v3+xml", "application/cda+xml", "text/xml", "application/xml")
_TS = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d+)?)?)?)?)?)?([+-]\d{4})?$")
MAX_BYTES = 20 * 1024 * 1024


@dataclass
class CdaHeader:
    type_code: str = ""
    type_system: str = ""
    type_name: str = ""
    title: str = ""
    doc_id: str = ""
    effective: datetime | None = None
    patient_ids: list[str] = field(default_factory=list)  # "root|extension"
    resident_id: str = ""
    patient_name: str = ""
    gender: str = ""
    birth: str = ""
    author_org_id: str = ""
    author_org_name: str = ""
    author_name: str = ""
    custodian_name: str = ""
    service_start: datetime | None = None
    service_end: datetime | None = None
    problems: list[str] = field(default_factory=list)
    body: Markup = Markup("")


def _parser() -> etree.XMLParser:
    # No DTD loading or validation, no entity substitution, no network, no huge trees.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


def parse_ts(value: str | None) -> datetime | None:
    """An HL7 v3 TS (``YYYYMMDDHHMMSS[.s][+ZZZZ]``) as an aware datetime (no offset: Asia/Shanghai)."""
    if not value or not _TS.match(value):
        return None
    m = re.match(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$", value)
    y, mo, d, hh, mi, ss, tz = m.groups()
    offset = timedelta(hours=8)
    if tz:
        sign = 1 if tz[0] == "+" else -1
        offset = sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5]))
    try:
        return datetime(int(y), int(mo or 1), int(d or 1), int(hh or 0), int(mi or 0), int(ss or 0),
                        tzinfo=timezone(offset))
    except ValueError:
        return None


def _text(node) -> str:
    return " ".join("".join(node.itertext()).split()) if node is not None else ""


def parse_cda(data: bytes) -> CdaHeader:
    """Parse, index and check a CDA document (raises 422 when it is not well-formed CDA)."""
    if len(data) > MAX_BYTES:
        raise FhirError(413, "too-costly", "CDA document larger than 20 MB")
    if b"<!DOCTYPE" in data[:4096].upper():
        raise FhirError(422, "security", "CDA documents may not declare a DOCTYPE (DTDs and entities are refused)")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise FhirError(422, "structure", f"the document is not well-formed XML: {str(exc)[:200]}") from None
    if root.getroottree().docinfo.doctype:
        raise FhirError(422, "security", "CDA documents may not declare a DOCTYPE")
    if etree.QName(root).localname != "ClinicalDocument" or etree.QName(root).namespace != NS["h"]:
        raise FhirError(422, "structure", "not a CDA document (root must be urn:hl7-org:v3 ClinicalDocument)")
    h = CdaHeader()
    f = root.find

    def req(path: str, what: str):
        node = f(path, NS)
        if node is None:
            h.problems.append(f"缺少 {what} (missing {path.replace('h:', '')})")
        return node

    type_id = req("h:typeId", "typeId")
    if type_id is not None and type_id.get("root") != CDA_TYPE_ID:
        h.problems.append(f"typeId/@root 应为 {CDA_TYPE_ID}")
    if not root.findall("h:templateId", NS):
        h.problems.append("缺少 templateId (missing templateId)")
    ident = req("h:id", "文档标识 id")
    if ident is not None:
        h.doc_id = "|".join(x for x in (ident.get("root"), ident.get("extension")) if x)
    code = req("h:code", "文档类型代码 code")
    if code is not None:
        h.type_code, h.type_system, h.type_name = code.get("code") or "", code.get("codeSystem") or "", \
            code.get("displayName") or ""
        if h.type_system != DOC_TYPE_SYSTEM:
            h.problems.append(f"文档类型代码应来自 {DOC_TYPE_SYSTEM}（卫生信息共享文档编码体系），实为 {h.type_system or '空'}")
        if not re.fullmatch(r"C\d{4}", h.type_code):
            h.problems.append(f"文档类型代码格式应为 C0000，实为 {h.type_code or '空'}")
    h.title = _text(f("h:title", NS))
    eff = req("h:effectiveTime", "文档时间 effectiveTime")
    if eff is not None:
        h.effective = parse_ts(eff.get("value"))
        if h.effective is None:
            h.problems.append(f"effectiveTime 格式无效：{eff.get('value')!r}")
    req("h:confidentialityCode", "保密级别 confidentialityCode")
    role = req("h:recordTarget/h:patientRole", "患者 recordTarget/patientRole")
    if role is not None:
        for pid in role.findall("h:id", NS):
            r, ext = pid.get("root") or "", pid.get("extension") or ""
            h.patient_ids.append(f"{r}|{ext}")
            if r == RESIDENT_ID_ROOT:
                h.resident_id = ext
                if not is_valid_resident_id(ext):
                    h.problems.append("患者身份证号校验失败 (resident ID check digit or date invalid)")
        pat = role.find("h:patient", NS)
        h.patient_name = _text(pat.find("h:name", NS)) if pat is not None else ""
        if pat is not None:
            g = pat.find("h:administrativeGenderCode", NS)
            h.gender = (g.get("code") or "") if g is not None else ""
            b = pat.find("h:birthTime", NS)
            h.birth = (b.get("value") or "") if b is not None else ""
            if h.birth and parse_ts(h.birth) is None:
                h.problems.append(f"出生时间格式无效：{h.birth!r}")
    author = req("h:author/h:assignedAuthor", "作者 author")
    if author is not None:
        h.author_name = _text(author.find("h:assignedPerson/h:name", NS))
        org = author.find("h:representedOrganization", NS)
        if org is not None:
            oid = org.find("h:id", NS)
            h.author_org_id = (oid.get("extension") or oid.get("root") or "") if oid is not None else ""
            h.author_org_name = _text(org.find("h:name", NS))
    cust = req("h:custodian/h:assignedCustodian/h:representedCustodianOrganization", "保管机构 custodian")
    if cust is not None:
        h.custodian_name = _text(cust.find("h:name", NS))
    period = f("h:documentationOf/h:serviceEvent/h:effectiveTime", NS)
    if period is not None:
        low, high = period.find("h:low", NS), period.find("h:high", NS)
        h.service_start = parse_ts(low.get("value")) if low is not None else None
        h.service_end = parse_ts(high.get("value")) if high is not None else None
    h.body = render_body(root)
    return h


# ---------------------------------------------------------------------------------------------- body
_BLOCK = {"paragraph": "p", "list": "ul", "item": "li", "table": "table", "thead": "thead", "tbody": "tbody",
          "tr": "tr", "td": "td", "th": "th", "caption": "caption"}


def _narrative(node) -> Markup:
    """CDA narrative block (``section/text``) as HTML: only whitelisted elements, every text escaped."""
    parts = [escape(node.text or "")]
    for child in node:
        if not isinstance(child.tag, str):
            parts.append(escape(child.tail or ""))
            continue
        name = etree.QName(child).localname
        inner = _narrative(child)
        if name == "br":
            parts.append(Markup("<br>"))
        elif name in _BLOCK:
            tag = _BLOCK[name]
            if name == "list" and child.get("listType") == "ordered":
                tag = "ol"
            cls = ' class="table table-compact"' if tag == "table" else ""
            parts.append(Markup(f"<{tag}{cls}>") + inner + Markup(f"</{tag}>"))
        else:  # content, sub, sup, footnote, linkHtml … : their text only
            parts.append(inner)
        parts.append(escape(child.tail or ""))
    return Markup("").join(parts)


def _section(sec, depth: int) -> Markup:
    title = _text(sec.find("h:title", NS))
    code = sec.find("h:code", NS)
    label = title or ((code.get("displayName") or code.get("code") or "") if code is not None else "")
    text = sec.find("h:text", NS)
    body = _narrative(text) if text is not None else Markup("")
    if text is None or not _text(text):
        # WS/T 500 sections often carry data in entries only: show each entry's observation values.
        rows = []
        for obs in sec.iter("{urn:hl7-org:v3}observation"):
            c = obs.find("h:code", NS)
            v = obs.find("h:value", NS)
            name = (c.get("displayName") or c.get("code") or "") if c is not None else ""
            val = ""
            if v is not None:
                val = " ".join(x for x in (v.get("value"), v.get("unit"), v.get("displayName"), _text(v)) if x)
            if name or val:
                rows.append(Markup("<tr><th scope=\"row\">{}</th><td>{}</td></tr>").format(name, val))
        if rows:
            body = Markup('<table class="table table-compact"><tbody>{}</tbody></table>').format(Markup("").join(rows))
    subs = Markup("").join(_section(s, depth + 1) for s in sec.findall("h:component/h:section", NS))
    level = min(2 + depth, 6)
    return Markup('<section><h{0}>{1}</h{0}>{2}{3}</section>').format(level, label, body, subs)


def render_body(root) -> Markup:
    """The document body as HTML: structured sections, or a non-XML body's text."""
    sections = root.findall("h:component/h:structuredBody/h:component/h:section", NS)
    if sections:
        return Markup("").join(_section(s, 0) for s in sections)
    text = root.find("h:component/h:nonXMLBody/h:text", NS)
    if text is not None and (text.get("mediaType") or "text/plain").startswith("text/"):
        return Markup("<pre>{}</pre>").format(text.text or "")
    return Markup("")
