"""Every FHIR interaction audited: the route table's handlers wrapped so that each answer (or
refusal) about a person becomes an AuditEvent (``hutong/security/audit.py``)."""

from __future__ import annotations

from dataclasses import replace

from hutong.core.errors import FhirError
from hutong.security.masking import mask_body, masks

#: Interactions that never touch a person's data.
_SKIP = frozenset({"capabilities"})


def audited(item, node):
    """``item`` (an Interaction) whose handler records an audit entry for each call."""
    if item.name in _SKIP or item.permission == "public":
        return item
    handler = item.handler
    trail: list = []  # the node's audit trail, looked up on first use (the service starts after the table)

    def audit_of():
        if not trail:
            from hutong.security.service import security_of

            trail.append(security_of(node).audit)
        return trail[0]

    def run(call):
        try:
            result = handler(call)
        except FhirError as exc:
            if call.caller.auth != "internal":
                audit_of().record_call(call, None, exc)
            raise
        if call.caller.auth != "internal":
            audit_of().record_call(call, result)
            if result.body is not None and result.file is None and masks(call.caller):
                masked = mask_body(result.body)
                if masked is not None:
                    result.body = masked
        return result

    run.__name__ = getattr(handler, "__name__", "handler")
    run.__doc__ = handler.__doc__
    return replace(item, handler=run)
