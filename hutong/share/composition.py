"""FHIR documents (a ``Bundle`` of type ``document`` whose first entry is a ``Composition``) rendered for the
pages, like CDA bodies are: title, facts and each section's narrative as safe HTML.

The narrative (``section.text.div``, XHTML) is parsed with the same safe lxml parser as CDA (no DTD, no
entities, no network) and rebuilt from a whitelist of elements — no attribute, script, style, link or
image survives; text is escaped. A section without narrative shows its entries (resolved inside the
Bundle) as rows: what the entry is and its value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree
from markupsafe import Markup, escape

from hutong.share.cda import _parser
from hutong.share.record import concept_text, value_text

#: XHTML elements kept (with no attributes); headings inside a narrative become bold paragraphs.
_KEEP = {"p", "ul", "ol", "li", "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "b", "strong",
         "i", "em", "pre", "code", "dl", "dt", "dd", "sub", "sup", "div", "blockquote"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
MAX_SECTIONS = 200


@dataclass
class FhirDocument:
    title: str = ""
    type: str = ""
    date: str = ""
    status: str = ""
    authors: list[str] = field(default_factory=list)
    custodian: str = ""
    subject: str = ""  # Patient id
    body: Markup = field(default_factory=lambda: Markup(""))
    problems: list[str] = field(default_factory=list)


def narrative_html(div: str) -> Markup:
    """A FHIR narrative ``div`` (XHTML) as safe HTML, or its escaped text when it is not well-formed."""
    try:
        root = etree.fromstring(div.encode("utf-8"), parser=_parser())
    except (etree.XMLSyntaxError, ValueError):
        return Markup("<p>{}</p>").format(div)
    return _rebuild(root, top=True)


def _rebuild(node, top: bool = False) -> Markup:
    parts = [escape(node.text or "")]
    for child in node:
        if isinstance(child.tag, str):
            name = etree.QName(child).localname
            inner = _rebuild(child)
            if name == "br":
                parts.append(Markup("<br>"))
            elif name in _HEADINGS:
                parts.append(Markup("<p><strong>") + inner + Markup("</strong></p>"))
            elif name == "table":
                parts.append(Markup('<div class="table-wrap"><table class="table table-compact">') + inner
                             + Markup("</table></div>"))
            elif name in _KEEP:
                parts.append(Markup(f"<{name}>") + inner + Markup(f"</{name}>"))
            elif name not in ("script", "style"):  # a, span, img, … : their text only
                parts.append(inner)
        parts.append(escape(child.tail or ""))
    return Markup("").join(parts)


def _entries(bundle: dict) -> dict[str, dict]:
    out = {}
    for e in bundle.get("entry") or []:
        res = (e or {}).get("resource") or {}
        if not isinstance(res, dict):
            continue
        if e.get("fullUrl"):
            out[e["fullUrl"]] = res
        if res.get("resourceType") and res.get("id"):
            out[f"{res['resourceType']}/{res['id']}"] = res
    return out


def _ref_text(ref: dict | None, entries: dict[str, dict]) -> str:
    if not isinstance(ref, dict):
        return ""
    target = entries.get(ref.get("reference") or "")
    if target:
        for n in target.get("name") or []:
            if isinstance(n, dict):
                return n.get("text") or (n.get("family") or "") + "".join(n.get("given") or [])
            if isinstance(n, str):
                return n
    return ref.get("display") or ref.get("reference") or ""


def _entry_row(res: dict) -> Markup:
    what = concept_text(res.get("code")) or concept_text(res.get("medicationCodeableConcept")) or \
        res.get("resourceType", "")
    value = value_text(res) if res.get("resourceType") == "Observation" else \
        concept_text(res.get("clinicalStatus")) or res.get("status", "")
    return Markup('<tr><th scope="row">{}</th><td>{}</td></tr>').format(what, value)


def _section(sec: dict, entries: dict[str, dict], depth: int, budget: list[int]) -> Markup:
    budget[0] -= 1
    if budget[0] < 0:
        return Markup("")
    label = sec.get("title") or concept_text(sec.get("code"))
    div = ((sec.get("text") or {}).get("div")) or ""
    body = narrative_html(div) if div else Markup("")
    if not div:
        rows = [_entry_row(entries[r["reference"]]) for r in sec.get("entry") or []
                if isinstance(r, dict) and r.get("reference") in entries]
        if rows:
            body = Markup('<div class="table-wrap"><table class="table table-compact"><tbody>{}</tbody></table>'
                          '</div>').format(Markup("").join(rows))
    subs = Markup("").join(_section(s, entries, depth + 1, budget) for s in sec.get("section") or []
                           if isinstance(s, dict))
    level = min(2 + depth, 6)
    return Markup('<section><h{0}>{1}</h{0}>{2}{3}</section>').format(level, label, body, subs)


def parse_fhir_document(resource: dict) -> FhirDocument | None:
    """The renderable parts of a FHIR document Bundle (or of a bare Composition); None for anything else."""
    if not isinstance(resource, dict):
        return None
    if resource.get("resourceType") == "Bundle":
        first = ((resource.get("entry") or [{}])[0] or {}).get("resource") or {}
        if first.get("resourceType") != "Composition":
            return None
        comp, entries = first, _entries(resource)
        problems = [] if resource.get("type") == "document" else ["Bundle.type 应为 document (Bundle.type should be document)"]
    elif resource.get("resourceType") == "Composition":
        comp, entries, problems = resource, {}, []
    else:
        return None
    doc = FhirDocument(title=str(comp.get("title") or ""), type=concept_text(comp.get("type")),
                       date=str(comp.get("date") or ""), status=str(comp.get("status") or ""),
                       authors=[t for t in (_ref_text(a, entries) for a in comp.get("author") or []) if t],
                       custodian=_ref_text(comp.get("custodian"), entries), problems=problems)
    subject = ((comp.get("subject") or {}).get("reference") or "")
    doc.subject = subject.split("/", 1)[1] if subject.startswith("Patient/") else ""
    for key in ("title", "status", "date"):
        if not comp.get(key):
            doc.problems.append(f"Composition.{key} 缺失 (missing)")
    budget = [MAX_SECTIONS]
    doc.body = Markup("").join(_section(s, entries, 0, budget) for s in comp.get("section") or [] if isinstance(s, dict))
    return doc


__all__ = ["parse_fhir_document", "narrative_html", "FhirDocument"]
