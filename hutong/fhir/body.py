"""Request bodies: the one decoder of JSON and form bodies, with its errors.

Every route (FHIR and capability APIs) decodes through ``decode_body`` or ``decode_json`` so that a
malformed body gets the same clear message everywhere.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson

from hutong.core.errors import FhirError, bad_request

#: JSON nesting deeper than this is refused: it is what orjson can serialise again, and every body
#: that is stored is serialised (FHIR resources need a few dozen levels at most).
MAX_DEPTH = 255


def _charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower-case, without parameters."""
    return (content_type or "").split(";")[0].strip().lower()


def decode_json(raw: bytes, content_type: str | None = None):
    """A JSON body as Python values; 400 with a readable message when it is not JSON, 415 for a
    charset other than UTF-8."""
    charset = _charset(content_type)
    if charset not in (None, "utf-8", "utf8"):
        raise FhirError(415, "not-supported", f"unsupported charset {charset[:40]!r}: send UTF-8 JSON")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError(400, "structure", f"the body is not valid JSON ({_describe(exc, raw)})") from None
    if _too_deep(doc):
        raise FhirError(400, "structure", f"the body is nested deeper than {MAX_DEPTH} levels")
    return doc


def _describe(exc: orjson.JSONDecodeError, raw: bytes) -> str:
    """``unexpected character at line 3, column 7`` rather than orjson's ``11: JSON decode error``."""
    msg = str(exc.msg or "malformed JSON").rstrip(".")
    if not raw.strip():
        return "the body is empty"
    if exc.lineno and exc.colno:
        return f"{msg} at line {exc.lineno}, column {exc.colno}"
    return msg


def _too_deep(doc) -> bool:
    # orjson's serialiser refuses exactly beyond MAX_DEPTH, in C: far cheaper than walking the tree.
    if type(doc) not in (dict, list):
        return False
    try:
        orjson.dumps(doc)
    except orjson.JSONEncodeError as exc:
        return "Recursion" in str(exc)
    return False


def decode_body(raw: bytes | None, content_type: str | None):
    """A FHIR request body: JSON (a resource, a Bundle, a JSON Patch), a form (``_search``), or None
    when empty. Other media types are refused with 415."""
    ctype = media_type(content_type)
    if ctype == "application/x-www-form-urlencoded":
        try:
            return parse_qsl((raw or b"").decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise bad_request("the form body is not valid") from exc
    if raw is None or not raw.strip():
        return None
    if ctype and not ctype.endswith("json"):
        if ctype.endswith("xml"):
            raise FhirError(415, "not-supported", "FHIR XML is not supported yet: send application/fhir+json")
        raise FhirError(415, "not-supported", f"unsupported content type {ctype[:60]!r}: use application/fhir+json")
    return decode_json(raw, content_type)
