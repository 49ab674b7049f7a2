"""OperationOutcome-style issues: every problem with input data, with its location.

Messages name resource types, ids, element paths and units — never names, identifiers or
clinical values of a patient.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from fhirtis.clinical.frozen import record

Severity = Literal["fatal", "error", "warning", "information"]


@record
class Issue:
    severity: Severity
    code: str  # FHIR IssueType: invalid, structure, required, value, code-invalid, not-supported …
    diagnostics: str
    expression: str | None = None
    resource: str | None = None  # "Type/id" of the resource the issue is about, if one

    def as_fhir(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            out["expression"] = [self.expression]
        return out


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    items = [i.as_fhir() for i in issues]
    if not items:
        items = [{"severity": "information", "code": "informational", "diagnostics": "no issues"}]
    return {"resourceType": "OperationOutcome", "issue": items}


class InputError(Exception):
    """Input that cannot be evaluated at all (not FHIR JSON, no patient, two patients …)."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(i.diagnostics for i in issues))


def issue_texts(issue: Any) -> list[str]:
    """An OperationOutcome issue's free text, ``diagnostics`` and ``details.text`` (those
    present): to be read (what a server's answer means), never logged or shown, since servers
    echo data there."""
    if not isinstance(issue, dict):
        return []
    details = issue.get("details")
    texts = (issue.get("diagnostics"), details.get("text") if isinstance(details, dict) else None)
    return [text for text in texts if isinstance(text, str)]
