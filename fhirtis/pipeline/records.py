"""A patient's evaluation as a plain record: what `fhirtis evaluate --json` prints, what a cohort
run stores and writes (`fhirtis cohort --summaries`), what the report reads and what the
examples' expected results are checked against.

One versioned schema, :class:`PatientSummary` (pydantic): the writers build it from an
evaluation (:func:`summarise`), the readers validate records with it
(:meth:`PatientSummary.read`). Numbers are :class:`~decimal.Decimal` (JSON numbers on output,
see ``jsonout``), days are dates, times keep the text they were written with. A key that is
absent when it has no value (``missing``, ``expression``, ``resource``, ``source``, ``file``,
``output``) stays absent, so the JSON is exactly what it was before the schema existed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from fhirtis.clinical.course import FollowUp
from fhirtis.clinical.decimals import beside, beside_any
from fhirtis.clinical.ivig import dose_tolerance_edges
from fhirtis.clinical.notes import Note
from fhirtis.clinical.patient import PatientEvaluation
from fhirtis.clinical.policy import Policy, Population
from fhirtis.clinical.tis import percent_text
from fhirtis.fhir.outcome import Issue

Record = dict[str, Any]

SCHEMA_VERSION = 1
"""The version of :class:`PatientSummary`. Records without ``schema_version`` are version 1
(``fhirtis evaluate --json`` leaves it out so that its output is unchanged); a record of a newer
version is refused by :meth:`PatientSummary.read`."""


def _iso_time(value: str) -> str:
    datetime.fromisoformat(value)  # raises ValueError: not an ISO 8601 date or time
    return value


Day = Annotated[date, PlainSerializer(date.isoformat, return_type=str)]
Time = Annotated[str, AfterValidator(_iso_time)]
"""A date-time (or date) as written: the text is kept, so that it reads back unchanged."""


def _is_none(value: object) -> bool:
    return value is None


def _omitted_when_none() -> Any:
    """A field left out of the record when it has no value (None), instead of written as null.
    Checked field by field by pydantic's serializer (``exclude_if``): a wrap serializer around
    every record would call back into Python once per record."""
    return Field(default=None, exclude_if=_is_none)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=True)


class MeasureRecord(_Record):
    percent_improvement: Decimal | None
    score: Decimal | None
    missing: str | None = _omitted_when_none()


class AssessmentRecord(_Record):
    date: Day
    tis: Decimal | None
    tis_lower: Decimal | None
    tis_upper: Decimal | None
    partial: bool
    category: str | None
    possible_categories: list[str]
    missing_measures: list[str]
    measures: dict[str, MeasureRecord]
    deterioration: bool | None
    confirmed_deterioration: bool | None
    responder: bool | None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.partial:
            if self.tis_lower is None or self.tis_upper is None:
                raise ValueError("a partial TIS needs tis_lower and tis_upper")
        elif self.tis is None:
            raise ValueError("a complete TIS needs tis")
        elif self.tis_lower not in (None, self.tis) or self.tis_upper not in (None, self.tis):
            raise ValueError("tis_lower/tis_upper differ from a complete tis")
        lower, upper = self.bounds
        if lower > upper:
            raise ValueError("tis_lower > tis_upper")
        return self

    @property
    def bounds(self) -> tuple[Decimal, Decimal]:
        """The TIS interval: both ends equal for a complete TIS."""
        if self.partial:
            assert self.tis_lower is not None and self.tis_upper is not None
            return self.tis_lower, self.tis_upper
        assert self.tis is not None
        return self.tis, self.tis


class CycleRecord(_Record):
    index: int
    start: Time
    end: Time
    administrations: int
    in_progress: int
    grams: Decimal | None
    g_per_kg: Decimal | None
    dosing_weight_kg: Decimal | None
    dosing_weight_basis: str
    max_rate_mg_kg_min: Decimal | None
    warnings: list[str]


class IvigRecord(_Record):
    cycle_count: int
    cumulative_grams: Decimal | None
    cumulative_g_per_kg: Decimal | None
    cycles: list[CycleRecord]


class RateFindingRecord(_Record):
    administration: str
    rate: Decimal
    limit: Decimal
    cycle: int | None = None


class AssociatedEventRecord(_Record):
    event: str
    kind: str
    onset: Time
    early: bool | None  # None: unknown (a date-only onset of which only part is early, spec §5.3)
    cycles: list[int]
    suspects: list[str]
    # the event's other records (Conditions of its kind and onset day: one clot on the problem
    # list and as an encounter diagnosis; another system's AdverseEvent of it), when it has any
    also: list[str] | None = _omitted_when_none()


class UnassessedRecord(_Record):
    """A risk factor the data did not allow to assess (clinical spec §5.1), and why."""

    factor: str
    reason: str


class ThrombosisRecord(_Record):
    risk_factors: list[str]
    risk_evidence: dict[str, list[str]]
    max_rate_now: Decimal | None
    rate_findings: list[RateFindingRecord]
    associated_events: list[AssociatedEventRecord]
    history_events: list[str]
    # the factors not assessable at as_of (the tee-risk Flag's tee-risk-unassessed); absent
    # from records written before it was recorded
    unassessed: list[UnassessedRecord] = []


class IssueRecord(_Record):
    severity: str
    code: str
    diagnostics: str
    expression: str | None = _omitted_when_none()
    resource: str | None = _omitted_when_none()


class NoteRecord(_Record):
    severity: str
    code: str
    message: str
    source: str | None = _omitted_when_none()


class PatientSummary(_Record):
    """One patient's evaluation: the summary record (version :data:`SCHEMA_VERSION`)."""

    patient: str
    as_of: Time
    population: Population
    population_reason: str
    baseline: Day | None
    assessments: list[AssessmentRecord]
    confirmed_deterioration: Day | None
    ivig: IvigRecord
    thrombosis: ThrombosisRecord
    issues: list[IssueRecord]
    notes: list[NoteRecord]
    policy: dict[str, str]
    file: str | None = _omitted_when_none()  # `fhirtis evaluate`: the Bundle file read
    output: str | None = _omitted_when_none()  # `fhirtis evaluate --out`: the Bundle written
    # None: version 1 (what `fhirtis evaluate --json` prints)
    schema_version: int | None = _omitted_when_none()

    def record(self) -> Record:
        """The record as plain data (Decimals stay Decimals; ``jsonout.dumps`` writes it)."""
        return self.model_dump()

    @classmethod
    def read(cls, data: Any) -> PatientSummary:
        """Validate one record; raises ValueError with the place and the reason."""
        try:
            summary = cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            raise ValueError(f"{where}: {first['msg']}") from None
        version = summary.schema_version or 1
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"summary schema version {version} is newer than this fhirtis reads "
                f"({SCHEMA_VERSION}): upgrade fhirtis"
            )
        return summary


@lru_cache(maxsize=64)
def _policy_record(policy: Policy) -> dict[str, str]:
    return policy.as_record()


def _q(value: Decimal | None, places: int = 4) -> Decimal | None:
    if value is None:
        return None
    return value.quantize(Decimal(1).scaleb(-places)).normalize() + 0


def cycle_g_per_kg_shown(g_per_kg: Decimal | None, policy: Policy) -> Decimal | None:
    """A cycle's g/kg to 4 places, as the record shows it beside its dose warning: half-even,
    but never on an edge of the target's tolerance that it is not on (125.9999 g at 70 kg is
    1.79999857… g/kg, off target by more than 10 %: shown 1.7999, as the warning says, never
    1.8, which is within it)."""
    if g_per_kg is None:
        return None
    return _q(beside_any(g_per_kg, dose_tolerance_edges(policy)))


def _issue(issue: Issue) -> IssueRecord:
    return IssueRecord(
        severity=issue.severity,
        code=issue.code,
        diagnostics=issue.diagnostics,
        expression=issue.expression or None,
        resource=issue.resource or None,
    )


def _notes(notes: tuple[Note, ...]) -> list[NoteRecord]:
    return [NoteRecord(**n.as_record()) for n in notes]


# a measure missing from a comparison is said by the assessment's missing_measures
_SAID_BY_MISSING_MEASURES = frozenset({"missing", "missing-baseline", "missing-followup"})


def _followup_notes(followups: Iterable[FollowUp]) -> tuple[Note, ...]:
    """The notes of the follow-ups' TIS and deterioration results (an enzyme left out for want
    of a ULN, an assumed CHQ-PhS range, a 2 cm rule that cannot apply …), each once, in order:
    a result that rests on them says so."""
    out: dict[tuple[str, str, str, str | None], Note] = {}
    for f in followups:
        for n in (*f.tis.notes, *f.deterioration.notes):
            if n.code not in _SAID_BY_MISSING_MEASURES:
                out.setdefault((n.severity.value, n.code, n.message, n.source), n)
    return tuple(out.values())


def summarise(
    patient_ref: str, evaluation: PatientEvaluation, issues: list[Issue]
) -> PatientSummary:
    """The summary record of one patient's evaluation."""
    course = evaluation.course
    assessments = []
    for f in course.followups:
        t = f.tis
        assessments.append(
            AssessmentRecord(
                date=f.assessment.day,
                tis=t.tis,
                tis_lower=t.lower,
                tis_upper=t.upper,
                partial=t.partial,
                category=t.category.value if t.category else None,
                possible_categories=[c.value for c in t.possible_categories],
                missing_measures=[m.value for m in t.missing_measures],
                measures={
                    m.measure.value: MeasureRecord(
                        percent_improvement=percent_text(m.percent_improvement),
                        score=m.score,
                        missing=m.reason.code if m.reason else None,
                    )
                    for m in t.measures
                },
                deterioration=f.deterioration.deteriorated,
                confirmed_deterioration=f.confirmed_deterioration,
                responder=f.responder,
            )
        )
    exposure = evaluation.exposure
    cycles = [
        CycleRecord(
            index=c.index,
            start=c.start.isoformat(),
            end=c.end.isoformat(),
            administrations=c.administration_count,
            in_progress=c.in_progress_count,
            grams=_q(c.grams),
            g_per_kg=cycle_g_per_kg_shown(c.g_per_kg, evaluation.policy),
            dosing_weight_kg=_q(c.dosing_weight.kg),
            dosing_weight_basis=c.dosing_weight.basis.value,
            max_rate_mg_kg_min=(
                None
                if c.max_rate_mg_kg_min is None
                else _q(beside_any(c.max_rate_mg_kg_min, evaluation.policy.rate_limits))
            ),
            warnings=[n.code for n in c.notes],
        )
        for c in exposure.cycles
    ]
    thr = evaluation.thrombosis
    baseline = course.baseline
    return PatientSummary(
        patient=patient_ref,
        as_of=evaluation.as_of.isoformat(),
        population=evaluation.population.population,
        population_reason=evaluation.population.reason,
        baseline=baseline.day if baseline else None,
        assessments=assessments,
        confirmed_deterioration=course.confirmed_deterioration_on,
        ivig=IvigRecord(
            cycle_count=exposure.cycle_count,
            cumulative_grams=_q(exposure.cumulative_grams),
            cumulative_g_per_kg=_q(exposure.cumulative_g_per_kg),
            cycles=cycles,
        ),
        thrombosis=ThrombosisRecord(
            risk_factors=[f.kind.value for f in thr.risk_factors],
            risk_evidence={f.kind.value: list(f.evidence) for f in thr.risk_factors},
            unassessed=[
                UnassessedRecord(factor=u.kind.value, reason=u.reason)
                for u in thr.current.unassessed
            ],
            max_rate_now=_q(thr.max_rate_now.limit_mg_kg_min),
            rate_findings=[
                RateFindingRecord(
                    administration=f.administration_source,
                    rate=_q(beside(f.rate_mg_kg_min, f.limit_mg_kg_min)),
                    limit=_q(f.limit_mg_kg_min),
                    cycle=f.cycle_index,
                )
                for f in thr.rate_findings
            ],
            associated_events=[
                AssociatedEventRecord(
                    event=a.event.source,
                    kind=a.event.kind.value,
                    onset=a.onset.isoformat(),
                    early=a.early,
                    cycles=list(a.cycle_indexes),
                    suspects=list(a.suspects),
                    also=list(a.event.also) or None,
                )
                for a in thr.associated_events
            ],
            history_events=[s for e in thr.history_events for s in e.sources],
        ),
        issues=[_issue(i) for i in issues],
        notes=_notes(evaluation.population.notes)
        + _notes(course.notes)
        + _notes(_followup_notes(course.followups))
        + _notes(exposure.all_notes())
        + _notes(thr.notes),
        policy=_policy_record(evaluation.policy),
    )


def patient_summary(patient_ref: str, evaluation: PatientEvaluation, issues: list[Issue]) -> Record:
    """The summary record as plain data (:meth:`PatientSummary.record` of :func:`summarise`)."""
    return summarise(patient_ref, evaluation, issues).record()
