"""OperationOutcome errors: every failure a client can cause is a ``FhirError``.

Domain code raises ``FhirError``; the HTTP layer turns it into an OperationOutcome with the
status given here. Nothing else should reach a client as an error body.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Issue:
    """One ``OperationOutcome.issue``."""

    severity: str  # fatal | error | warning | information
    code: str  # http://hl7.org/fhir/issue-type code, e.g. invalid, structure, not-found
    diagnostics: str
    expression: list[str] = field(default_factory=list)
    #: Optional finer code (e.g. a card refusal reason) carried in ``details.coding``.
    details_code: str | None = None
    details_system: str = "urn:hutong:issue"

    def to_fhir(self) -> dict:
        out = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.details_code:
            out["details"] = {
                "coding": [{"system": self.details_system, "code": self.details_code}],
                "text": self.diagnostics,
            }
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class FhirError(Exception):
    """An error with an HTTP status and the OperationOutcome issues that explain it."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        expression: list[str] | str | None = None,
        *,
        issues: list[Issue] | None = None,
        details_code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(diagnostics)
        self.status = status
        if isinstance(expression, str):
            expression = [expression]
        self.issues = issues or [
            Issue("error", code, diagnostics, list(expression or []), details_code=details_code)
        ]
        self.headers = headers or {}

    @property
    def code(self) -> str:
        return self.issues[0].code

    @property
    def diagnostics(self) -> str:
        return self.issues[0].diagnostics

    def outcome(self) -> dict:
        return operation_outcome(self.issues)


def operation_outcome(issues: list[Issue] | Issue) -> dict:
    """An OperationOutcome resource for ``issues``."""
    if isinstance(issues, Issue):
        issues = [issues]
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def info_outcome(message: str, code: str = "informational") -> dict:
    return operation_outcome(Issue("information", code, message))


def bad_request(diagnostics: str, expression=None, code: str = "invalid") -> FhirError:
    return FhirError(400, code, diagnostics, expression)


def not_found(diagnostics: str) -> FhirError:
    return FhirError(404, "not-found", diagnostics)


def gone(diagnostics: str) -> FhirError:
    return FhirError(410, "deleted", diagnostics)


def conflict(diagnostics: str, code: str = "conflict") -> FhirError:
    return FhirError(409, code, diagnostics)


def precondition_failed(diagnostics: str) -> FhirError:
    return FhirError(412, "conflict", diagnostics)


def unprocessable(diagnostics: str, expression=None, issues: list[Issue] | None = None) -> FhirError:
    return FhirError(422, "processing", diagnostics, expression, issues=issues)
