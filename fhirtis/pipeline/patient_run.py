"""What a run of one patient on a FHIR server reports (:class:`PatientRun`): its status, the
plan, what the server confirmed it wrote, what it could not write or withdraw, and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from fhirtis.fhir.plan import Action, WritePlan
from fhirtis.pipeline.offline import PatientResult


@dataclass(frozen=True)
class NotWritten:
    """A derived resource the server cannot store (``reason``: "the server does not support
    Flag"); or (``verb`` "withdrawn") earlier output no longer derived that the server does not
    let fhirtis withdraw; or (``verb`` "checked for output to withdraw") a type whose earlier
    output the server does not let fhirtis find."""

    resource_type: str
    identifier: str
    reason: str
    verb: str = "written"

    def message(self) -> str:
        what = f"{self.resource_type} {self.identifier}".strip()
        return f"{what}: not {self.verb}: {self.reason}"


_PAST = {Action.CREATE: "created", Action.UPDATE: "updated", Action.WITHDRAW: "withdrawn"}


@dataclass(frozen=True)
class Written:
    """A write of this run that the server confirmed: what it did (``action``: create, update
    or withdraw) to the derived resource ``identifier``, stored as ``reference`` (``Type/id``)."""

    resource_type: str
    identifier: str
    action: Action
    reference: str

    @property
    def verb(self) -> str:
        """ "created", "updated" or "withdrawn"."""
        return _PAST.get(self.action, self.action.value)


class RunStatus(StrEnum):
    DRY_RUN = "dry-run"  # planned, nothing sent
    WRITTEN = "written"
    UNCHANGED = "unchanged"  # nothing to write: the server already holds these results
    NOT_FOUND = "not-found"
    FAILED = "failed"  # the patient is incomplete: see error


@dataclass
class PatientRun:
    patient_id: str
    status: RunStatus
    result: PatientResult | None = None
    plan: WritePlan | None = None
    error: str | None = None
    requests: dict[str, int] = field(default_factory=dict)
    error_status: int | None = None  # the HTTP status that best describes the failure
    error_code: str | None = None  # FHIR issue code: not-supported (permanent refusal), …
    not_written: list[NotWritten] = field(default_factory=list)
    # derived resources stored more than once after a search-then-create race, on a server that
    # refuses delete ("Observation <identifier>: 2 copies …"); the next run updates the lowest id
    duplicates: list[str] = field(default_factory=list)
    # what the server confirmed this run wrote (every attempt, re-plans included), in order
    written: list[Written] = field(default_factory=list)

    @property
    def planned(self) -> list[tuple[str, str, Action]]:
        if self.plan is None:
            return []
        return [(w.derived.resource_type, w.derived.identifier, w.action) for w in self.plan.writes]

    @property
    def unconfirmed(self) -> list[tuple[str, str, Action]]:
        """The last plan's writes (not "unchanged") that the server did not confirm and that
        are not reported ``not_written``: of a writing run, what may not have been written."""
        done = {(w.resource_type, w.identifier) for w in self.written}
        skipped = {(n.resource_type, n.identifier) for n in self.not_written}
        return [
            (rtype, ident, action)
            for rtype, ident, action in self.planned
            if action is not Action.UNCHANGED
            and (rtype, ident) not in done
            and (rtype, ident) not in skipped
        ]
