"""Reasons that travel with results: warnings and exclusions.

A result never hides what it could not use. Each :class:`Note` has a stable machine ``code``
(tests, reports and derived resources key on it), a human ``message`` that names no patient data
beyond the clinical quantity in question, and the ``source`` of the fact it is about, if any.
"""

from __future__ import annotations

from enum import StrEnum

from fhirtis.clinical.frozen import record


class Severity(StrEnum):
    WARNING = "warning"  # the value was used, but look at it
    EXCLUDED = "excluded"  # the value was not used
    MISSING = "missing"  # a value the rule needs is not there


# Enum members read in hot code, as module constants: in Python 3.11 reading a member off
# its class goes through EnumType.__getattr__, ten times the cost of reading a global.
_WARNING, _EXCLUDED, _MISSING = Severity.WARNING, Severity.EXCLUDED, Severity.MISSING


@record
class Note:
    severity: Severity
    code: str
    message: str
    source: str | None = None

    def as_record(self) -> dict[str, str]:
        out = {"severity": self.severity.value, "code": self.code, "message": self.message}
        if self.source is not None:
            out["source"] = self.source
        return out


def warning(code: str, message: str, source: str | None = None) -> Note:
    return Note(_WARNING, code, message, source)


def excluded(code: str, message: str, source: str | None = None) -> Note:
    return Note(_EXCLUDED, code, message, source)


def missing(code: str, message: str, source: str | None = None) -> Note:
    return Note(_MISSING, code, message, source)
