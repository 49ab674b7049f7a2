"""The cohort report's figures: the summary records read, every figure computed
(:func:`build_report`); the rules are in the package docstring."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from fhirtis.clinical.frozen import record
from fhirtis.clinical.policy import Population
from fhirtis.clinical.tis import THRESHOLDS, categories_between
from fhirtis.pipeline.records import AssessmentRecord, AssociatedEventRecord, PatientSummary
from fhirtis.registry.report.stats import (
    Proportion,
    Spread,
    ci_record,
    number_text,
    round_half_up,
    spread,
    wilson_interval,
)

Json = dict[str, Any]
PartialPolicy = Literal["interval", "undetermined"]

CATEGORIES: tuple[str, ...] = ("none", "minimal", "moderate", "major")
UNDETERMINED = "undetermined"
CATEGORY_COLUMNS: tuple[str, ...] = (*CATEGORIES, UNDETERMINED)
DEFAULT_RATE_THRESHOLD = Decimal(4)  # mg/kg/min, clinical spec §5.2
THROMBOSIS_HISTORY = "thrombosis-history"
OWN_TEE_HISTORY = "thrombosis-history-from-associated-tee"
"""The report's name for a thrombosis history that only the patient's own temporally associated
TEE shows (clinical spec §5.3: an event is a history risk factor from its onset on): tabulated
apart from a history shown by another record, and not counted as a risk factor of the patient."""


class ReportInputError(ValueError):
    """The summaries cannot be read or are not summary records."""


@record
class _Assessment:
    day: date
    tis: Decimal | None
    lower: Decimal
    upper: Decimal
    partial: bool
    recorded_category: str | None
    confirmed: bool | None
    recorded_responder: bool | None


@record
class _Cycle:
    index: int
    max_rate: Decimal | None
    max_rate_partial: bool  # over the infusions of known rate only (others' rates unknown)


@record
class _Event:
    kind: str
    early: bool | None  # None: unknown (a date-only onset of which only part is early)
    cycles: tuple[int, ...]


@record
class _Patient:
    ref: str
    population: Population
    baseline: date | None
    assessments: tuple[_Assessment, ...]
    confirmed_on: date | None
    cycle_count: int
    cumulative_grams: Decimal | None
    cumulative_g_per_kg: Decimal | None
    cycles: tuple[_Cycle, ...]
    risk_factors: tuple[str, ...]
    unassessed: tuple[str, ...]  # factors the data did not allow to assess (spec §5.1)
    rate_findings: int
    events: tuple[_Event, ...]
    merged_events: int = 0  # event records counted as another of the same kind and onset

    @property
    def prior_factors(self) -> tuple[str, ...]:
        """The risk factors other than a thrombosis history only its own TEE shows."""
        return tuple(f for f in self.risk_factors if f != OWN_TEE_HISTORY)


def _assessment(a: AssessmentRecord) -> _Assessment:
    lower, upper = a.bounds
    return _Assessment(
        day=a.date,
        tis=None if a.partial else a.tis,  # a partial TIS is never a plain number
        lower=lower,
        upper=upper,
        partial=a.partial,
        recorded_category=a.category,
        confirmed=a.confirmed_deterioration,
        recorded_responder=a.responder,
    )


_MAX_RATE_PARTIAL = "cycle-max-rate-partial"
"""A cycle's warning: its maximum rate is over the infusions of known rate only."""


def _rate_stratum(c: _Cycle, threshold: Decimal) -> bool | None:
    """Whether the cycle's maximum rate is above ``threshold``; None when unknown: no rate
    known, or only some rates known and none of them above it (an unknown one may be)."""
    if c.max_rate is None:
        return None
    if c.max_rate > threshold:
        return True
    return None if c.max_rate_partial else False


def _patient(record: Any, position: int) -> _Patient:
    """A summary record (validated by :class:`PatientSummary`) as the report needs it."""
    if not isinstance(record, dict):
        raise ReportInputError(f"record {position}: not a JSON object")
    ref = str(record.get("patient") or f"record {position}")
    try:
        s = PatientSummary.read(record)
    except ValueError as exc:
        raise ReportInputError(f"{ref}: not a summary record: {exc}") from None
    thrombosis = s.thrombosis
    events = _one_event_per_clot(thrombosis.associated_events)
    # a thrombosis history that only the patient's own associated TEEs show (spec §5.3: from
    # its onset on) is the outcome, not a factor present before it: named apart
    own = {r for e in thrombosis.associated_events for r in (e.event, *(e.also or ()))}
    shown_by = set(thrombosis.risk_evidence.get(THROMBOSIS_HISTORY, ()))
    own_only = bool(shown_by) and shown_by <= own
    factors = (
        OWN_TEE_HISTORY if f == THROMBOSIS_HISTORY and own_only else f
        for f in thrombosis.risk_factors
    )
    return _Patient(
        ref=s.patient,
        population=Population(s.population),
        baseline=s.baseline,
        assessments=tuple(sorted((_assessment(a) for a in s.assessments), key=lambda a: a.day)),
        confirmed_on=s.confirmed_deterioration,
        cycle_count=s.ivig.cycle_count,
        cumulative_grams=s.ivig.cumulative_grams,
        cumulative_g_per_kg=s.ivig.cumulative_g_per_kg,
        cycles=tuple(
            _Cycle(c.index, c.max_rate_mg_kg_min, _MAX_RATE_PARTIAL in c.warnings)
            for c in s.ivig.cycles
        ),
        risk_factors=tuple(factors),
        unassessed=tuple(dict.fromkeys(u.factor for u in s.thrombosis.unassessed)),
        rate_findings=len(s.thrombosis.rate_findings),
        events=events,
        merged_events=len(thrombosis.associated_events) - len(events),
    )


_Onset = tuple[str, tuple[int, ...], date, datetime | str | None]
"""An event record's kind, cycles, onset day as recorded and onset instant (:func:`_onset`)."""


def _onset(r: AssociatedEventRecord) -> _Onset:
    """The record's kind, cycles, calendar day as recorded and instant: an aware datetime
    (they compare and hash as instants, whatever their offsets); None for a date alone; the
    text for a time without an offset (no instant: equal only to itself)."""
    when = datetime.fromisoformat(r.onset)
    instant: datetime | str | None = None
    if len(r.onset) > len("2024-01-01"):
        instant = when if when.tzinfo is not None else r.onset
    return r.kind, tuple(r.cycles), when.date(), instant


def _one_clot(a: _Onset, b: _Onset) -> bool:
    """Records of one kind whose onsets are one instant, or one day where one gives no time
    (as :func:`fhirtis.clinical.thrombosis.one_event_per_clot` merges them), that name the
    same cycles (records naming other cycles are kept apart, as they were)."""
    if a[:2] != b[:2]:
        return False
    if a[3] is not None and b[3] is not None:
        return a[3] == b[3]
    return a[2] == b[2]


def _one_event_per_clot(records: Sequence[AssociatedEventRecord]) -> tuple[_Event, ...]:
    """One thromboembolism recorded more than once (a problem-list entry, an encounter
    diagnosis, another system's safety report; one instant written in two UTC offsets) is one
    event: records of one clot (:func:`_one_clot`) count once, with the earliness of the first
    record with a time (it places the event in its day), else of the first."""
    groups: list[list[tuple[_Onset, AssociatedEventRecord]]] = []
    for r in records:
        key = _onset(r)
        group = next((g for g in groups if all(_one_clot(key, k) for k, _ in g)), None)
        if group is None:
            groups.append([(key, r)])
        else:
            group.append((key, r))
    out = []
    for group in groups:
        first = next((r for k, r in group if k[3] is not None), group[0][1])
        out.append(_Event(first.kind, first.early, tuple(first.cycles)))
    return tuple(out)


def _record(item: Any, p: Path, number: int) -> Json:
    if not isinstance(item, dict):
        raise ReportInputError(f"{p}:{number}: not a JSON object")
    return item


def _ndjson(lines: Iterable[tuple[int, str]], p: Path) -> Iterator[Json]:
    """The records of NDJSON lines (numbered from 1), one at a time."""
    for number, line in lines:
        if not line.strip():
            continue
        try:
            item = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise ReportInputError(f"{p}:{number}: not JSON: {exc.msg}") from None
        yield _record(item, p, number)


def _whole(whole: Any, p: Path) -> list[Json]:
    """The records of a file that is one JSON value."""
    if isinstance(whole, dict) and isinstance(whole.get("results"), list):
        return [r for r in whole["results"] if isinstance(r, dict)]
    if isinstance(whole, dict) and "patient" in whole:
        return [whole]
    if isinstance(whole, list) and all(isinstance(r, dict) for r in whole):
        return whole
    raise ReportInputError(
        f"{p}: expected {{'results': [...]}}, a list of summary records, or NDJSON"
    )


def load_summaries(path: str | Path) -> list[Json]:
    """Summary records from the JSON of `fhirtis evaluate --json` (``{"results": [...]}``), a
    JSON list of records, one record, or NDJSON (one record a line). Numbers are read as
    :class:`~decimal.Decimal`, so nothing is rounded on the way in. All in a list:
    :func:`iter_summaries` reads them one at a time."""
    return list(iter_summaries(path))


def iter_summaries(path: str | Path) -> Iterator[Json]:
    """The records :func:`load_summaries` reads, one at a time: NDJSON (what `fhirtis cohort
    --summaries` writes, a line a patient) is read line by line, so that a report of a large
    registry (100,000 patients: 500 MB of summaries) never holds the file's text nor every
    record at once (:func:`build_report` keeps only what it needs of each). A file whose first
    line is not a whole JSON value (indented JSON), or that holds one value, is read whole."""
    p = Path(path)
    try:
        f = p.open(encoding="utf-8")
    except OSError as exc:
        raise ReportInputError(f"cannot read {p}: {exc.strerror or exc}") from None
    with f:
        try:
            lines = enumerate(f, start=1)
            first = next(((n, line) for n, line in lines if line.strip()), None)
            if first is None:
                return
            try:
                item = json.loads(first[1], parse_float=Decimal)
            except json.JSONDecodeError:
                f.seek(0)
                yield from _text(f.read(), p)
                return
            second = next(((n, line) for n, line in lines if line.strip()), None)
            if second is None:  # one JSON value on one line
                yield from _whole(item, p)
                return
            yield _record(item, p, first[0])
            yield from _ndjson(itertools.chain((second,), lines), p)
        except OSError as exc:
            raise ReportInputError(f"cannot read {p}: {exc.strerror or exc}") from None


def _text(text: str, p: Path) -> list[Json] | Iterator[Json]:
    """The records of a file's whole text: one JSON value, else NDJSON."""
    if not text.strip():
        return []
    try:
        whole = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError:
        return _ndjson(enumerate(text.split("\n"), start=1), p)
    return _whole(whole, p)


@record
class ResponseSummary:
    """Response at one chosen assessment per patient (the last one, or the one at a week)."""

    label: str
    evaluable: int  # patients with a chosen assessment
    not_evaluable: Mapping[str, int]  # reason → patients
    categories: Mapping[str, int]  # none, minimal, moderate, major, undetermined
    partial: int  # chosen TIS that are partial …
    partial_categorised: int  # … of which counted in a category (interval within one)
    responders: Proportion  # responders of the patients whose status is determined
    non_responders: int
    responder_undetermined: int
    confirmed_deterioration: int  # confirmed at or before the chosen assessment

    def share(self, category: str) -> Proportion:
        return Proportion(self.categories[category], self.evaluable)

    def as_record(self) -> Json:
        return {
            "label": self.label,
            "evaluable": self.evaluable,
            "not_evaluable": dict(self.not_evaluable),
            "categories": {c: self.share(c).as_record() for c in CATEGORY_COLUMNS},
            "partial_tis": self.partial,
            "partial_tis_categorised_by_interval": self.partial_categorised,
            "responders": self.responders.as_record(),
            "non_responders": self.non_responders,
            "responder_undetermined": self.responder_undetermined,
            "confirmed_deterioration": self.confirmed_deterioration,
        }


@record
class IvigSummary:
    exposed: Proportion  # patients with ≥ 1 cycle, of all patients
    total_cycles: int
    cycles_per_patient: Spread | None
    cumulative_grams: Spread | None
    cumulative_grams_partial: int  # exposed patients left out: cumulative grams partial
    cumulative_g_per_kg: Spread | None
    cumulative_g_per_kg_partial: int

    def as_record(self) -> Json:
        return {
            "patients_exposed": self.exposed.as_record(),
            "total_cycles": self.total_cycles,
            "cycles_per_patient": _spread_record(self.cycles_per_patient),
            "cumulative_grams": _spread_record(self.cumulative_grams),
            "cumulative_grams_partial_excluded": self.cumulative_grams_partial,
            "cumulative_g_per_kg": _spread_record(self.cumulative_g_per_kg),
            "cumulative_g_per_kg_partial_excluded": self.cumulative_g_per_kg_partial,
        }


@record
class RateStratum:
    """Cycles whose maximum infusion rate falls in one stratum, and the TEEs attributed to them."""

    label: str
    cycles: int
    events: int

    @property
    def per_100_cycles(self) -> Fraction | None:
        return Fraction(100 * self.events, self.cycles) if self.cycles else None

    @property
    def ci95_per_100(self) -> tuple[float, float] | None:
        """Wilson 95 % CI of events per 100 cycles, when events ≤ cycles (at most one event
        per cycle, the binomial reading); else None."""
        if not self.cycles or self.events > self.cycles:
            return None
        low, high = wilson_interval(self.events, self.cycles)
        return low * 100, high * 100

    def as_record(self) -> Json:
        per = self.per_100_cycles
        return {
            "stratum": self.label,
            "cycles": self.cycles,
            "events": self.events,
            "per_100_cycles": None if per is None else round_half_up(per, 2),
            "ci95_per_100_cycles": ci_record(self.ci95_per_100, 2),
        }


@record
class TeeSummary:
    patients_with_event: Proportion  # of exposed patients
    events: int
    early_events: int
    early_unknown_events: int  # a date-only onset of which only part is early (spec §5.3)
    events_by_kind: Mapping[str, int]
    events_per_patient: Mapping[int, int]  # events → exposed patients with that many
    per_100_cycles: Fraction | None
    strata: tuple[RateStratum, ...]
    events_in_several_strata: int
    # factor → patients, at the evaluation's time; a thrombosis history only the patient's own
    # associated TEE shows is OWN_TEE_HISTORY, apart from THROMBOSIS_HISTORY
    risk_factors: Mapping[str, int]
    patients_with_risk_factor: Proportion  # of all patients; OWN_TEE_HISTORY is not counted
    risk_factors_unassessed: Mapping[str, int]  # factor → patients it could not be assessed in
    # patients with no factor found and some not assessable: "none found" is not "none"
    patients_none_found_some_unassessed: int
    rate_findings: int  # DetectedIssues: administrations above the applicable maximum
    patients_with_rate_findings: Proportion  # of exposed patients

    @property
    def mean_events_per_exposed_patient(self) -> Fraction | None:
        exposed = self.patients_with_event.total
        return Fraction(self.events, exposed) if exposed else None

    def as_record(self) -> Json:
        mean = self.mean_events_per_exposed_patient
        return {
            "patients_with_associated_tee": self.patients_with_event.as_record(),
            "events": self.events,
            "early_events": self.early_events,
            "early_unknown_events": self.early_unknown_events,
            "events_by_kind": dict(self.events_by_kind),
            "events_per_exposed_patient": (None if mean is None else round_half_up(mean, 3)),
            "patients_by_event_count": {str(k): v for k, v in self.events_per_patient.items()},
            "per_100_cycles": (
                None if self.per_100_cycles is None else round_half_up(self.per_100_cycles, 2)
            ),
            "by_max_infusion_rate": [s.as_record() for s in self.strata],
            "events_in_several_strata": self.events_in_several_strata,
            "risk_factors": dict(self.risk_factors),
            "patients_with_risk_factor": self.patients_with_risk_factor.as_record(),
            "risk_factors_unassessed": dict(self.risk_factors_unassessed),
            "patients_none_found_some_unassessed": self.patients_none_found_some_unassessed,
            "rate_findings": self.rate_findings,
            "patients_with_rate_findings": self.patients_with_rate_findings.as_record(),
        }


@record
class TrajectoryPoint:
    days: int  # since baseline
    lower: Decimal
    upper: Decimal
    partial: bool

    @property
    def weeks(self) -> Fraction:
        return Fraction(self.days, 7)


@record
class Trajectory:
    patient: str
    population: str
    points: tuple[TrajectoryPoint, ...]


@record
class PatientRow:
    """One patient's line of the CSV."""

    patient: str
    population: str
    baseline: date | None
    followups: int
    last_date: date | None
    last_days_since_baseline: int | None
    last_tis: Decimal | None  # None when partial
    last_tis_lower: Decimal | None
    last_tis_upper: Decimal | None
    last_partial: bool | None
    last_category: str | None  # one of CATEGORY_COLUMNS; None without a follow-up
    last_responder: bool | None
    week_date: date | None
    week_tis: Decimal | None
    week_tis_lower: Decimal | None
    week_tis_upper: Decimal | None
    week_category: str | None
    week_responder: bool | None
    confirmed_deterioration: date | None
    ivig_cycles: int
    cumulative_grams: Decimal | None
    cumulative_g_per_kg: Decimal | None
    # the maximum over every infusion; None when some rate is unknown (never a plain number)
    max_rate_mg_kg_min: Decimal | None
    max_rate_lower_mg_kg_min: Decimal | None  # the largest known rate: the maximum is ≥ it
    max_rate_partial: bool | None  # some rates unknown; None when none is known
    associated_tee: int
    risk_factors: str  # "; "-joined
    risk_factors_unassessed: str  # "; "-joined: not assessable (an empty risk_factors is not none)
    rate_findings: int


@record
class ReportOptions:
    partial_policy: PartialPolicy = "interval"
    week: int | None = None
    week_window_days: int = 14
    rate_threshold: Decimal = DEFAULT_RATE_THRESHOLD

    def as_record(self) -> Json:
        return {
            "partial_policy": self.partial_policy,
            "week": self.week,
            "week_window_days": self.week_window_days,
            "rate_threshold_mg_kg_min": self.rate_threshold,
            "responder_rule": "TIS >= minimal threshold and no confirmed deterioration at or "
            "before the assessment; undetermined status excluded from the denominator",
            "ci": "Wilson score interval, 95%",
            "quartiles": "statistics.quantiles(method='inclusive')",
        }


@record
class Report:
    patients: int
    adult: int
    juvenile: int
    last: ResponseSummary
    week: ResponseSummary | None
    confirmed_deterioration: Proportion  # ever confirmed, of patients with a follow-up
    ivig: IvigSummary
    tee: TeeSummary
    rows: tuple[PatientRow, ...]
    trajectories: tuple[Trajectory, ...]
    options: ReportOptions
    warnings: tuple[str, ...]

    def population_count(self, population: Population) -> int:
        return self.adult if population is Population.ADULT else self.juvenile

    def as_record(self) -> Json:
        """The summary (no per-patient rows) as plain data; Decimals stay Decimals."""
        return {
            "patients": self.patients,
            "adult": self.adult,
            "juvenile": self.juvenile,
            "response_last_followup": self.last.as_record(),
            "response_at_week": None if self.week is None else self.week.as_record(),
            "confirmed_deterioration": self.confirmed_deterioration.as_record(),
            "ivig": self.ivig.as_record(),
            "tee": self.tee.as_record(),
            "options": self.options.as_record(),
            "warnings": list(self.warnings),
        }


def _spread_record(s: Spread | None) -> Json | None:
    return None if s is None else s.as_record()


def _category(a: _Assessment, population: Population, policy: PartialPolicy) -> str:
    if a.partial and policy == "undetermined":
        return UNDETERMINED
    possible = categories_between(a.lower, a.upper, population)
    return possible[0].value if len(possible) == 1 else UNDETERMINED


def _responder(a: _Assessment, population: Population) -> bool | None:
    """ProDERM responder (clinical spec §3), on the TIS interval; None when data leave it open."""
    minimal = THRESHOLDS[population][0]
    if a.confirmed is True or a.upper < minimal:
        return False
    if a.lower >= minimal and a.confirmed is False:
        return True
    return None


def _at_week(p: _Patient, week: int, window: int) -> _Assessment | None:
    if p.baseline is None:
        return None
    target = p.baseline + timedelta(days=7 * week)
    candidates = [a for a in p.assessments if abs((a.day - target).days) <= window]
    if not candidates:
        return None
    return min(candidates, key=lambda a: (abs((a.day - target).days), a.day))


def _summarise_response(
    label: str,
    chosen: Sequence[tuple[_Patient, _Assessment | None, str]],
    policy: PartialPolicy,
) -> ResponseSummary:
    categories = dict.fromkeys(CATEGORY_COLUMNS, 0)
    not_evaluable: Counter[str] = Counter()
    partial = categorised = responders = non_responders = undetermined = confirmed = 0
    for p, a, reason in chosen:
        if a is None:
            not_evaluable[reason] += 1
            continue
        category = _category(a, p.population, policy)
        categories[category] += 1
        if a.partial:
            partial += 1
            categorised += category != UNDETERMINED
        status = _responder(a, p.population)
        if status is True:
            responders += 1
        elif status is False:
            non_responders += 1
        else:
            undetermined += 1
        confirmed += a.confirmed is True
    return ResponseSummary(
        label=label,
        evaluable=sum(categories.values()),
        not_evaluable=dict(sorted(not_evaluable.items())),
        categories=categories,
        partial=partial,
        partial_categorised=categorised,
        responders=Proportion(responders, responders + non_responders),
        non_responders=non_responders,
        responder_undetermined=undetermined,
        confirmed_deterioration=confirmed,
    )


def _no_assessment_reason(p: _Patient) -> str:
    return "no baseline" if p.baseline is None else "no follow-up assessment"


def _check_consistency(p: _Patient) -> list[str]:
    """Where the record's own category or responder disagrees with the recomputation."""
    out = []
    for a in p.assessments:
        own = _category(a, p.population, "interval")
        recorded = a.recorded_category
        if recorded is not None and recorded != own:
            out.append(
                f"{p.ref} {a.day}: recorded category {recorded} but the TIS gives {own} "
                f"under {p.population.value} thresholds (the report uses {own})"
            )
        if a.recorded_responder is not None and a.recorded_responder != _responder(a, p.population):
            out.append(f"{p.ref} {a.day}: recorded responder status differs from the rule")
    return out


def build_report(
    summaries: Iterable[Json],
    *,
    week: int | None = None,
    week_window_days: int = 14,
    partial_policy: PartialPolicy = "interval",
    rate_threshold: Decimal | int | str = DEFAULT_RATE_THRESHOLD,
) -> Report:
    """The cohort report of the summary records (see the module docstring for every rule).

    ``week``: also report the response at the assessment nearest ``week`` weeks after baseline
    (within ± ``week_window_days``). Raises :class:`ReportInputError` for records that are not
    summary records, and for a patient listed twice."""
    if partial_policy not in ("interval", "undetermined"):
        raise ValueError(f"partial_policy must be 'interval' or 'undetermined': {partial_policy!r}")
    if week is not None and week < 0:
        raise ValueError("week must be ≥ 0")
    options = ReportOptions(partial_policy, week, week_window_days, Decimal(rate_threshold))
    patients = [_patient(r, i) for i, r in enumerate(summaries, start=1)]
    seen = Counter(p.ref for p in patients)
    duplicates = sorted(ref for ref, n in seen.items() if n > 1)
    if duplicates:
        raise ReportInputError(f"patients listed more than once: {', '.join(duplicates[:5])}")

    warnings: list[str] = []
    for p in patients:
        warnings.extend(_check_consistency(p))
        if p.merged_events:
            warnings.append(
                f"{p.ref}: {p.merged_events} temporally associated event record(s) of the same "
                "kind and onset as another counted as that event (one thromboembolism recorded "
                "more than once)"
            )

    last_choice = [
        (p, p.assessments[-1] if p.assessments else None, _no_assessment_reason(p))
        for p in patients
    ]
    last = _summarise_response("last follow-up", last_choice, partial_policy)
    week_summary = None
    week_choice: dict[str, _Assessment | None] = {}
    if week is not None:
        chosen = []
        for p in patients:
            a = _at_week(p, week, week_window_days)
            week_choice[p.ref] = a
            reason = (
                _no_assessment_reason(p)
                if p.baseline is None or not p.assessments
                else f"no assessment within {week_window_days} days of week {week}"
            )
            chosen.append((p, a, reason))
        week_summary = _summarise_response(
            f"week {week} (±{week_window_days} days)", chosen, partial_policy
        )

    with_followup = [p for p in patients if p.assessments]
    confirmed = Proportion(
        sum(p.confirmed_on is not None for p in with_followup), len(with_followup)
    )

    exposed = [p for p in patients if p.cycle_count > 0]
    ivig = IvigSummary(
        exposed=Proportion(len(exposed), len(patients)),
        total_cycles=sum(p.cycle_count for p in patients),
        cycles_per_patient=spread(p.cycle_count for p in exposed),
        cumulative_grams=spread(
            p.cumulative_grams for p in exposed if p.cumulative_grams is not None
        ),
        cumulative_grams_partial=sum(p.cumulative_grams is None for p in exposed),
        cumulative_g_per_kg=spread(
            p.cumulative_g_per_kg for p in exposed if p.cumulative_g_per_kg is not None
        ),
        cumulative_g_per_kg_partial=sum(p.cumulative_g_per_kg is None for p in exposed),
    )
    tee = _tee_summary(patients, exposed, options.rate_threshold, warnings)

    rows = tuple(
        _row(p, partial_policy, week_choice.get(p.ref) if week is not None else None)
        for p in patients
    )
    trajectories = tuple(
        Trajectory(
            p.ref,
            p.population.value,
            tuple(
                TrajectoryPoint((a.day - p.baseline).days, a.lower, a.upper, a.partial)
                for a in p.assessments
            ),
        )
        for p in patients
        if p.baseline is not None and p.assessments
    )
    return Report(
        patients=len(patients),
        adult=sum(p.population is Population.ADULT for p in patients),
        juvenile=sum(p.population is Population.JUVENILE for p in patients),
        last=last,
        week=week_summary,
        confirmed_deterioration=confirmed,
        ivig=ivig,
        tee=tee,
        rows=rows,
        trajectories=trajectories,
        options=options,
        warnings=tuple(warnings),
    )


def _stratum_label(threshold: Decimal, above: bool | None) -> str:
    t = number_text(threshold)
    if above is None:
        return "rate unknown"
    return f"> {t} mg/kg/min" if above else f"≤ {t} mg/kg/min"


def _tee_summary(
    patients: Sequence[_Patient],
    exposed: Sequence[_Patient],
    threshold: Decimal,
    warnings: list[str],
) -> TeeSummary:
    keys: tuple[bool | None, ...] = (False, True, None)
    cycles: Counter[bool | None] = Counter()
    events: Counter[bool | None] = Counter()
    several = 0
    for p in patients:
        stratum_of: dict[int, bool | None] = {}
        for c in p.cycles:
            key = _rate_stratum(c, threshold)
            stratum_of[c.index] = key
            cycles[key] += 1
        for e in p.events:
            strata = set()
            for i in e.cycles:
                if i in stratum_of:
                    strata.add(stratum_of[i])
                else:
                    warnings.append(f"{p.ref}: TEE associated with unknown cycle {i}")
                    strata.add(None)
            if not strata:
                warnings.append(f"{p.ref}: TEE {e.kind} names no cycle; rate stratum unknown")
                strata.add(None)
            several += len(strata) > 1
            for key in strata:
                events[key] += 1
    strata_out = tuple(
        RateStratum(_stratum_label(threshold, k), cycles[k], events[k])
        for k in keys
        if k is not None or cycles[k] or events[k]
    )
    total_events = sum(len(p.events) for p in patients)
    total_cycles = sum(cycles.values())
    factors: Counter[str] = Counter()
    for p in patients:
        factors.update(set(p.risk_factors))
    unassessed: Counter[str] = Counter()
    for p in patients:
        unassessed.update(set(p.unassessed))
    by_count = Counter(len(p.events) for p in exposed)
    return TeeSummary(
        patients_with_event=Proportion(sum(bool(p.events) for p in exposed), len(exposed)),
        events=total_events,
        early_events=sum(e.early is True for p in patients for e in p.events),
        early_unknown_events=sum(e.early is None for p in patients for e in p.events),
        events_by_kind=dict(Counter(e.kind for p in patients for e in p.events).most_common()),
        events_per_patient=dict(sorted(by_count.items())),
        per_100_cycles=Fraction(100 * total_events, total_cycles) if total_cycles else None,
        strata=strata_out,
        events_in_several_strata=several,
        risk_factors=dict(sorted(factors.items(), key=lambda kv: (-kv[1], kv[0]))),
        patients_with_risk_factor=Proportion(
            sum(bool(p.prior_factors) for p in patients), len(patients)
        ),
        risk_factors_unassessed=dict(sorted(unassessed.items(), key=lambda kv: (-kv[1], kv[0]))),
        patients_none_found_some_unassessed=sum(
            not p.prior_factors and bool(p.unassessed) for p in patients
        ),
        rate_findings=sum(p.rate_findings for p in patients),
        patients_with_rate_findings=Proportion(
            sum(p.rate_findings > 0 for p in exposed), len(exposed)
        ),
    )


def _row(p: _Patient, policy: PartialPolicy, at_week: _Assessment | None) -> PatientRow:
    last = p.assessments[-1] if p.assessments else None
    rates = [c.max_rate for c in p.cycles if c.max_rate is not None]
    known_max = max(rates) if rates else None
    # a cycle with no rate known, or its maximum over some infusions only, leaves the
    # patient's maximum open above the largest known rate (as a partial TIS is an interval)
    partial = any(c.max_rate is None or c.max_rate_partial for c in p.cycles)
    return PatientRow(
        patient=p.ref,
        population=p.population.value,
        baseline=p.baseline,
        followups=len(p.assessments),
        last_date=None if last is None else last.day,
        last_days_since_baseline=(
            None if last is None or p.baseline is None else (last.day - p.baseline).days
        ),
        last_tis=None if last is None else last.tis,
        last_tis_lower=None if last is None else last.lower,
        last_tis_upper=None if last is None else last.upper,
        last_partial=None if last is None else last.partial,
        last_category=None if last is None else _category(last, p.population, policy),
        last_responder=None if last is None else _responder(last, p.population),
        week_date=None if at_week is None else at_week.day,
        week_tis=None if at_week is None else at_week.tis,
        week_tis_lower=None if at_week is None else at_week.lower,
        week_tis_upper=None if at_week is None else at_week.upper,
        week_category=None if at_week is None else _category(at_week, p.population, policy),
        week_responder=None if at_week is None else _responder(at_week, p.population),
        confirmed_deterioration=p.confirmed_on,
        ivig_cycles=p.cycle_count,
        cumulative_grams=p.cumulative_grams,
        cumulative_g_per_kg=p.cumulative_g_per_kg,
        max_rate_mg_kg_min=None if partial else known_max,
        max_rate_lower_mg_kg_min=known_max,
        max_rate_partial=None if known_max is None else partial,
        associated_tee=len(p.events),
        risk_factors="; ".join(p.risk_factors),
        risk_factors_unassessed="; ".join(p.unassessed),
        rate_findings=p.rate_findings,
    )
