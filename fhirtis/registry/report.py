"""The registry report of a cohort, in the manner of ProDERM (NEJM 2022; Arthritis Res Ther 2024).

Input: the per-patient summary records of :func:`fhirtis.pipeline.records.patient_summary`, as
`fhirtis evaluate --json` prints them (``{"results": [...]}``) or as NDJSON (one record a line,
what `fhirtis cohort --summaries` writes). No FHIR is read here: :func:`load_summaries` reads
the records, :func:`build_report` computes the :class:`Report`, and the writers print it
(:func:`print_report`), save it (:func:`write_csv`, :func:`write_json`) and plot it
(:func:`write_plots`).

How each figure is counted (DOMAIN.md §2.3, §2.4, §3, §4, §5):

* **Response** is taken at each patient's last follow-up assessment (and, when asked, at the
  assessment nearest a named week after baseline, within ``week_window_days``). The category is
  recomputed from the TIS with the patient's own population thresholds (adult 20/40/60, juvenile
  30/45/70, :data:`fhirtis.clinical.tis.THRESHOLDS`).
* A **partial TIS** is never turned into a number. ``partial_policy="interval"`` (default,
  DOMAIN.md §2.4) counts it in a category only when both ends of its interval fall in that same
  category, else as *undetermined*; ``partial_policy="undetermined"`` counts every partial TIS as
  undetermined. Partial TIS are always counted separately as well.
* **Responder** (ProDERM): TIS ≥ the minimal threshold and no confirmed deterioration at or
  before the assessment. With a partial TIS the lower end must reach the threshold to be a
  responder and the upper end must miss it to be a non-responder; otherwise (or when the
  deterioration status is unknown) the status is *undetermined*: it is counted apart and left out
  of the denominator of the responder percentage, whose 95 % CI is Wilson's score interval.
* **IVIG**: among exposed patients (≥ 1 cycle). Medians and quartiles use
  :func:`statistics.median` and :func:`statistics.quantiles` with ``method="inclusive"`` (the
  linear interpolation of R type 7 / numpy's default) over exact decimals. A cumulative dose that
  is partial (``None`` in the record: some grams or g/kg unknown) is left out and counted.
* **TEE**: temporally associated events (``thrombosis.associated_events``). Per 100 infusion
  cycles = events × 100 / cycles. By infusion-rate stratum, each cycle falls in ``≤ limit`` or
  ``> limit`` by its maximum rate (``rate_threshold``, default 4 mg/kg/min; unknown rate: its own
  stratum) and an event counts once in each stratum holding a cycle it is associated with (an
  event associated with cycles of two strata counts in both; how often that happened is reported).

Numbers are exact (:class:`~fractions.Fraction`, :class:`~decimal.Decimal`) until output, where
percentages are rounded half-up to 1 decimal place and rates to 2; the Wilson interval is the
only floating-point figure.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from statistics import NormalDist, median, quantiles
from typing import Any, Literal

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from rich.console import Console
from rich.table import Table

from fhirtis.clinical.policy import Population
from fhirtis.clinical.tis import THRESHOLDS, categories_between
from fhirtis.pipeline.jsonout import dumps

Json = dict[str, Any]
PartialPolicy = Literal["interval", "undetermined"]

CATEGORIES: tuple[str, ...] = ("none", "minimal", "moderate", "major")
UNDETERMINED = "undetermined"
CATEGORY_COLUMNS: tuple[str, ...] = (*CATEGORIES, UNDETERMINED)
DEFAULT_RATE_THRESHOLD = Decimal(4)  # mg/kg/min, DOMAIN.md §5.2
_Z95 = NormalDist().inv_cdf(0.975)


class ReportInputError(ValueError):
    """The summaries cannot be read or are not summary records."""


# ---------------------------------------------------------------------------------------------
# Small exact statistics


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion, as fractions (0–1)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs 0 ≤ successes ≤ n and n > 0, got {successes}/{n}")
    z = _Z95 if confidence == 0.95 else NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def round_half_up(value: Fraction | Decimal | int, places: int) -> Decimal:
    """Exact half-up rounding (away from zero) to ``places`` decimals."""
    f = Fraction(value)
    scaled = abs(f) * 10**places
    whole = math.floor(scaled + Fraction(1, 2))
    out = Decimal(whole).scaleb(-places)
    return -out if f < 0 else out


@dataclass(frozen=True, slots=True)
class Proportion:
    """``count`` of ``total``; the percentage is exact, the Wilson 95 % CI a float pair."""

    count: int
    total: int

    @property
    def fraction(self) -> Fraction | None:
        return Fraction(self.count, self.total) if self.total else None

    @property
    def percent(self) -> Fraction | None:
        return None if self.total == 0 else Fraction(100 * self.count, self.total)

    @property
    def ci95(self) -> tuple[float, float] | None:
        return wilson_interval(self.count, self.total) if self.total else None

    def text(self, places: int = 1, *, ci: bool = False) -> str:
        if self.percent is None:
            return f"{self.count}/0"
        out = f"{self.count}/{self.total} ({round_half_up(self.percent, places)} %"
        if ci and self.ci95 is not None:
            low, high = self.ci95
            out += f"; 95% CI {low * 100:.{places}f}–{high * 100:.{places}f}"
        return out + ")"

    def as_record(self, places: int = 1) -> Json:
        ci = self.ci95
        return {
            "count": self.count,
            "of": self.total,
            "percent": None if self.percent is None else round_half_up(self.percent, places),
            "ci95_percent": _ci_record(None if ci is None else (ci[0] * 100, ci[1] * 100), places),
        }


@dataclass(frozen=True, slots=True)
class Spread:
    """Median and interquartile range (exact; quartiles by ``method="inclusive"``)."""

    n: int
    median: Decimal
    q1: Decimal
    q3: Decimal

    def text(self) -> str:
        return f"{_num(self.median)} ({_num(self.q1)}–{_num(self.q3)}), n={self.n}"

    def as_record(self) -> Json:
        return {"n": self.n, "median": self.median, "q1": self.q1, "q3": self.q3}


def spread(values: Iterable[Decimal | int]) -> Spread | None:
    """Median and IQR of the values; None when there are none."""
    data = sorted(Decimal(v) for v in values)
    if not data:
        return None
    mid = Decimal(median(data))
    if len(data) == 1:
        return Spread(1, mid, mid, mid)
    q1, _, q3 = quantiles(data, n=4, method="inclusive")
    return Spread(len(data), _norm(mid), _norm(Decimal(q1)), _norm(Decimal(q3)))


def _norm(d: Decimal) -> Decimal:
    return d.normalize() + 0 if d == d.to_integral_value() else d.normalize()


def _num(d: Decimal | None) -> str:
    if d is None:
        return "—"
    n = d.normalize()
    return format(n.quantize(Decimal(1)) if n == n.to_integral_value() else n, "f")


# ---------------------------------------------------------------------------------------------
# Reading the records


@dataclass(frozen=True, slots=True)
class _Assessment:
    day: date
    tis: Decimal | None
    lower: Decimal
    upper: Decimal
    partial: bool
    recorded_category: str | None
    confirmed: bool | None
    recorded_responder: bool | None


@dataclass(frozen=True, slots=True)
class _Cycle:
    index: int
    max_rate: Decimal | None


@dataclass(frozen=True, slots=True)
class _Event:
    kind: str
    early: bool
    cycles: tuple[int, ...]


@dataclass(frozen=True, slots=True)
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
    rate_findings: int
    events: tuple[_Event, ...]


def _dec(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ReportInputError(f"{where}: expected a number, got {value!r}")
    try:
        out = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except ArithmeticError:
        raise ReportInputError(f"{where}: not a number: {value!r}") from None
    if not out.is_finite():
        raise ReportInputError(f"{where}: not a finite number: {value!r}")
    return out


def _opt_dec(value: Any, where: str) -> Decimal | None:
    return None if value is None else _dec(value, where)


def _day(value: Any, where: str) -> date:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ReportInputError(f"{where}: not a date: {value!r}") from None


def _opt_bool(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ReportInputError(f"{where}: expected true, false or null, got {value!r}")


def _assessment(a: Json, where: str) -> _Assessment:
    partial = bool(a.get("partial", False))
    tis = _opt_dec(a.get("tis"), f"{where}.tis")
    lower = _opt_dec(a.get("tis_lower"), f"{where}.tis_lower")
    upper = _opt_dec(a.get("tis_upper"), f"{where}.tis_upper")
    if partial:
        if lower is None or upper is None:
            raise ReportInputError(f"{where}: a partial TIS needs tis_lower and tis_upper")
        tis = None  # a partial TIS is never a plain number
    else:
        if tis is None:
            raise ReportInputError(f"{where}: a complete TIS needs tis")
        if (lower is not None and lower != tis) or (upper is not None and upper != tis):
            raise ReportInputError(f"{where}: tis_lower/tis_upper differ from a complete tis")
        lower = upper = tis
    if lower > upper:
        raise ReportInputError(f"{where}: tis_lower > tis_upper")
    return _Assessment(
        day=_day(a["date"], f"{where}.date"),
        tis=tis,
        lower=lower,
        upper=upper,
        partial=partial,
        recorded_category=a.get("category"),
        confirmed=_opt_bool(a.get("confirmed_deterioration"), f"{where}.confirmed_deterioration"),
        recorded_responder=_opt_bool(a.get("responder"), f"{where}.responder"),
    )


def _patient(record: Json, position: int) -> _Patient:
    if not isinstance(record, dict):
        raise ReportInputError(f"record {position}: not a JSON object")
    ref = str(record.get("patient") or f"record {position}")
    try:
        try:
            population = Population(record["population"])
        except ValueError:
            raise ReportInputError(
                f"{ref}: population must be adult or juvenile, got {record['population']!r}"
            ) from None
        assessments = tuple(
            sorted(
                (
                    _assessment(a, f"{ref}: assessments[{i}]")
                    for i, a in enumerate(record.get("assessments") or [])
                ),
                key=lambda a: a.day,
            )
        )
        ivig = record.get("ivig") or {}
        cycles = tuple(
            _Cycle(
                int(c["index"]),
                _opt_dec(c.get("max_rate_mg_kg_min"), f"{ref}: cycle {c['index']} rate"),
            )
            for c in ivig.get("cycles") or []
        )
        thr = record.get("thrombosis") or {}
        events = tuple(
            _Event(str(e["kind"]), bool(e.get("early")), tuple(int(i) for i in e["cycles"]))
            for e in thr.get("associated_events") or []
        )
        cycle_count = int(ivig.get("cycle_count", len(cycles)))
        baseline = record.get("baseline")
        confirmed = record.get("confirmed_deterioration")
        return _Patient(
            ref=ref,
            population=population,
            baseline=None if baseline is None else _day(baseline, f"{ref}: baseline"),
            assessments=assessments,
            confirmed_on=None if confirmed is None else _day(confirmed, f"{ref}: confirmed"),
            cycle_count=cycle_count,
            cumulative_grams=_opt_dec(ivig.get("cumulative_grams"), f"{ref}: cumulative_grams"),
            cumulative_g_per_kg=_opt_dec(
                ivig.get("cumulative_g_per_kg"), f"{ref}: cumulative_g_per_kg"
            ),
            cycles=cycles,
            risk_factors=tuple(str(f) for f in thr.get("risk_factors") or []),
            rate_findings=len(thr.get("rate_findings") or []),
            events=events,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ReportInputError(
            f"{ref}: not a summary record ({type(exc).__name__}: {exc})"
        ) from None


def _ndjson(text: str, p: Path) -> list[Json]:
    records: list[Json] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise ReportInputError(f"{p}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(item, dict):
            raise ReportInputError(f"{p}:{number}: not a JSON object")
        records.append(item)
    return records


def load_summaries(path: str | Path) -> list[Json]:
    """Summary records from the JSON of `fhirtis evaluate --json` (``{"results": [...]}``), a
    JSON list of records, one record, or NDJSON (one record a line). Numbers are read as
    :class:`~decimal.Decimal`, so nothing is rounded on the way in."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportInputError(f"cannot read {p}: {exc.strerror or exc}") from None
    if not text.strip():
        return []
    try:
        whole = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError:
        return _ndjson(text, p)
    if isinstance(whole, dict) and isinstance(whole.get("results"), list):
        return [r for r in whole["results"] if isinstance(r, dict)]
    if isinstance(whole, dict) and "patient" in whole:
        return [whole]
    if isinstance(whole, list) and all(isinstance(r, dict) for r in whole):
        return whole
    raise ReportInputError(
        f"{p}: expected {{'results': [...]}}, a list of summary records, or NDJSON"
    )


# ---------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
            "ci95_per_100_cycles": _ci_record(self.ci95_per_100, 2),
        }


@dataclass(frozen=True, slots=True)
class TeeSummary:
    patients_with_event: Proportion  # of exposed patients
    events: int
    early_events: int
    events_by_kind: Mapping[str, int]
    events_per_patient: Mapping[int, int]  # events → exposed patients with that many
    per_100_cycles: Fraction | None
    strata: tuple[RateStratum, ...]
    events_in_several_strata: int
    risk_factors: Mapping[str, int]  # factor → patients
    patients_with_risk_factor: Proportion  # of all patients
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
            "rate_findings": self.rate_findings,
            "patients_with_rate_findings": self.patients_with_rate_findings.as_record(),
        }


@dataclass(frozen=True, slots=True)
class TrajectoryPoint:
    days: int  # since baseline
    lower: Decimal
    upper: Decimal
    partial: bool

    @property
    def weeks(self) -> Fraction:
        return Fraction(self.days, 7)


@dataclass(frozen=True, slots=True)
class Trajectory:
    patient: str
    population: str
    points: tuple[TrajectoryPoint, ...]


@dataclass(frozen=True, slots=True)
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
    max_rate_mg_kg_min: Decimal | None
    associated_tee: int
    risk_factors: str  # "; "-joined
    rate_findings: int


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


def _ci_record(ci: tuple[float, float] | None, places: int) -> list[Decimal] | None:
    if ci is None:
        return None
    return [round_half_up(Fraction(ci[0]), places), round_half_up(Fraction(ci[1]), places)]


def _spread_record(s: Spread | None) -> Json | None:
    return None if s is None else s.as_record()


def _category(a: _Assessment, population: Population, policy: PartialPolicy) -> str:
    if a.partial and policy == "undetermined":
        return UNDETERMINED
    possible = categories_between(a.lower, a.upper, population)
    return possible[0].value if len(possible) == 1 else UNDETERMINED


def _responder(a: _Assessment, population: Population) -> bool | None:
    """ProDERM responder (DOMAIN.md §3), on the TIS interval; None when data leave it open."""
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
    t = _num(threshold)
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
            key = None if c.max_rate is None else c.max_rate > threshold
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
    by_count = Counter(len(p.events) for p in exposed)
    return TeeSummary(
        patients_with_event=Proportion(sum(bool(p.events) for p in exposed), len(exposed)),
        events=total_events,
        early_events=sum(e.early for p in patients for e in p.events),
        events_by_kind=dict(Counter(e.kind for p in patients for e in p.events).most_common()),
        events_per_patient=dict(sorted(by_count.items())),
        per_100_cycles=Fraction(100 * total_events, total_cycles) if total_cycles else None,
        strata=strata_out,
        events_in_several_strata=several,
        risk_factors=dict(sorted(factors.items(), key=lambda kv: (-kv[1], kv[0]))),
        patients_with_risk_factor=Proportion(
            sum(bool(p.risk_factors) for p in patients), len(patients)
        ),
        rate_findings=sum(p.rate_findings for p in patients),
        patients_with_rate_findings=Proportion(
            sum(p.rate_findings > 0 for p in exposed), len(exposed)
        ),
    )


def _row(p: _Patient, policy: PartialPolicy, at_week: _Assessment | None) -> PatientRow:
    last = p.assessments[-1] if p.assessments else None
    rates = [c.max_rate for c in p.cycles if c.max_rate is not None]
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
        max_rate_mg_kg_min=max(rates) if rates else None,
        associated_tee=len(p.events),
        risk_factors="; ".join(p.risk_factors),
        rate_findings=p.rate_findings,
    )


# ---------------------------------------------------------------------------------------------
# Output: terminal, CSV, JSON


def _pct(p: Proportion, *, ci: bool = False) -> str:
    return p.text(1, ci=ci)


def _rate(f: Fraction | None) -> str:
    return "—" if f is None else format(round_half_up(f, 2), "f")


def _response_table(r: ResponseSummary) -> Table:
    table = Table(title=f"Response at {r.label}", title_justify="left")
    table.add_column("")
    table.add_column("patients", justify="right")
    table.add_row("evaluable", str(r.evaluable))
    for reason, n in r.not_evaluable.items():
        table.add_row(f"not evaluable: {reason}", str(n))
    for c in CATEGORIES:
        table.add_row(f"  {c}", _pct(r.share(c)))
    table.add_row(f"  {UNDETERMINED} (partial TIS)", _pct(r.share(UNDETERMINED)))
    table.add_row(
        "partial TIS (all)",
        f"{r.partial} ({r.partial_categorised} in one category by their interval)",
    )
    table.add_row("responders (ProDERM)", _pct(r.responders, ci=True))
    table.add_row("non-responders", str(r.non_responders))
    table.add_row("responder status undetermined", str(r.responder_undetermined))
    table.add_row("confirmed deterioration by then", str(r.confirmed_deterioration))
    return table


def print_report(console: Console, report: Report) -> None:
    """The report as terminal tables."""
    console.rule("Cohort report")
    console.print(
        f"Patients: {report.patients} (adult {report.adult}, juvenile {report.juvenile}); "
        f"categories by each patient's own thresholds (adult 20/40/60, juvenile 30/45/70); "
        f"partial TIS: {report.options.partial_policy}",
        markup=False,
    )
    console.print(_response_table(report.last))
    if report.week is not None:
        console.print(_response_table(report.week))
    console.print(
        f"Confirmed deterioration (at any time): {_pct(report.confirmed_deterioration)}",
        markup=False,
    )

    ivig = report.ivig
    table = Table(title="IVIG exposure", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("patients exposed", _pct(ivig.exposed))
    table.add_row("cycles, total", str(ivig.total_cycles))
    table.add_row("cycles per patient, median (IQR)", _spread_text(ivig.cycles_per_patient))
    table.add_row("cumulative g, median (IQR)", _spread_text(ivig.cumulative_grams))
    table.add_row("  partial, excluded", str(ivig.cumulative_grams_partial))
    table.add_row("cumulative g/kg, median (IQR)", _spread_text(ivig.cumulative_g_per_kg))
    table.add_row("  partial, excluded", str(ivig.cumulative_g_per_kg_partial))
    console.print(table)

    tee = report.tee
    mean = tee.mean_events_per_exposed_patient
    table = Table(title="Thromboembolic events (temporally associated)", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("patients with ≥1 TEE", _pct(tee.patients_with_event, ci=True))
    table.add_row("events (early, ≤24 h)", f"{tee.events} ({tee.early_events})")
    table.add_row(
        "events per exposed patient",
        "—" if mean is None else format(round_half_up(mean, 3), "f"),
    )
    table.add_row("events per 100 infusion cycles", _rate(tee.per_100_cycles))
    for kind, n in tee.events_by_kind.items():
        table.add_row(f"  {kind}", str(n))
    table.add_row("rate findings (DetectedIssue)", str(tee.rate_findings))
    table.add_row("patients with a rate finding", _pct(tee.patients_with_rate_findings))
    table.add_row("patients with ≥1 risk factor", _pct(tee.patients_with_risk_factor))
    for factor, n in tee.risk_factors.items():
        table.add_row(f"  {factor}", str(n))
    console.print(table)

    table = Table(title="TEE by maximum infusion rate of the cycle", title_justify="left")
    for col in ("stratum", "cycles", "events", "per 100 cycles", "95% CI (Wilson)"):
        table.add_column(col, justify="left" if col == "stratum" else "right")
    for s in tee.strata:
        ci = s.ci95_per_100
        table.add_row(
            s.label,
            str(s.cycles),
            str(s.events),
            _rate(s.per_100_cycles),
            "—" if ci is None else f"{ci[0]:.2f}–{ci[1]:.2f}",
        )
    console.print(table)
    if tee.events_in_several_strata:
        console.print(
            f"{tee.events_in_several_strata} event(s) associated with cycles of two strata "
            "count in each.",
            markup=False,
        )
    if report.warnings:
        console.print(f"{len(report.warnings)} warning(s):", markup=False)
        for w in report.warnings[:20]:
            console.print(f"  {w}", markup=False)


def _spread_text(s: Spread | None) -> str:
    return "—" if s is None else s.text()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return _num(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


CSV_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(PatientRow))


def write_csv(report: Report, path: str | Path) -> Path:
    """One row per patient (columns :data:`CSV_COLUMNS`); empty cell = none / unknown."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in report.rows:
            writer.writerow([_cell(v) for v in astuple(row)])
    return p


def write_json(report: Report, path: str | Path) -> Path:
    """The summary (:meth:`Report.as_record`) as JSON; rounded figures are marked by name."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(dumps(report.as_record()) + "\n", encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib, Agg, no pyplot and no display)

COLOURS: Mapping[str, str] = {
    "none": "#b8b8b8",
    "minimal": "#9ecae1",
    "moderate": "#4292c6",
    "major": "#08306b",
    UNDETERMINED: "#fdd49e",
}
_POP_COLOURS = {"adult": "#2b2b2b", "juvenile": "#d95f02"}
_BIN = 5


def _plot_categories(report: Report, path: Path) -> None:
    fig = Figure(figsize=(12, 5.2), layout="constrained")
    ax, bx = fig.subplots(1, 2, width_ratios=(2.3, 1))
    n_bins = 100 // _BIN
    counts = {c: [0] * n_bins for c in CATEGORIES}
    complete = partial = 0
    for row in report.rows:
        if row.last_tis is None or row.last_category not in counts:
            partial += row.last_partial is True
            continue
        complete += 1
        i = min(int(row.last_tis // _BIN), n_bins - 1)
        counts[row.last_category][i] += 1
    lefts = [i * _BIN for i in range(n_bins)]
    bottom = [0] * n_bins
    for c in CATEGORIES:
        ax.bar(
            lefts,
            counts[c],
            width=_BIN,
            bottom=bottom,
            align="edge",
            color=COLOURS[c],
            edgecolor="white",
            linewidth=0.6,
            label=c,
        )
        bottom = [b + h for b, h in zip(bottom, counts[c], strict=True)]
    top = max(bottom, default=0) or 1
    ax.set_ylim(0, top * 1.2)
    handles: list[Any] = [Patch(color=COLOURS[c], label=c) for c in CATEGORIES]
    for t, name in zip(THRESHOLDS[Population.ADULT], ("minimal", "moderate", "major"), strict=True):
        ax.axvline(float(t), color="black", linestyle="--", linewidth=1.2)
        ax.text(
            float(t) + 0.8,
            top * 1.17,
            f"adult {name}\n≥ {_num(t)}",
            fontsize=8,
            va="top",
            ha="left",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.5},
        )
    handles.append(Line2D([], [], color="black", linestyle="--", label="adult thresholds"))
    if report.juvenile:
        for t in THRESHOLDS[Population.JUVENILE]:
            ax.axvline(float(t), color=_POP_COLOURS["juvenile"], linestyle=":", linewidth=1.2)
        handles.append(
            Line2D(
                [],
                [],
                color=_POP_COLOURS["juvenile"],
                linestyle=":",
                label="juvenile thresholds (30/45/70)",
            )
        )
    ax.set_xlim(0, 100)
    ax.set_xticks(range(0, 101, 10))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Total Improvement Score at last follow-up (bins of 5; left edge included)")
    ax.set_ylabel("patients")
    ax.set_title(
        f"Last-visit TIS, coloured by each patient's category (n={complete} complete; "
        f"{partial} partial TIS not shown as a number)",
        fontsize=10,
    )
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncol=len(handles),
        fontsize=8,
        frameon=False,
    )

    pops = [("adult", report.adult), ("juvenile", report.juvenile)]
    pops = [(name, n) for name, n in pops if n]
    labels = [f"{name}\n(n={n})" for name, n in pops]
    base = [0] * len(pops)
    for c in CATEGORY_COLUMNS:
        heights = [
            sum(1 for r in report.rows if r.population == name and r.last_category == c)
            for name, _ in pops
        ]
        bars = bx.bar(
            labels,
            heights,
            bottom=base,
            color=COLOURS[c],
            edgecolor="white",
            label=c,
            hatch="//" if c == UNDETERMINED else None,
        )
        for rect, h, b in zip(bars, heights, base, strict=True):
            if h >= 0.035 * max(n for _, n in pops):
                bx.text(
                    rect.get_x() + rect.get_width() / 2,
                    b + h / 2,
                    str(h),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if c in {"moderate", "major"} else "black",
                )
        base = [b + h for b, h in zip(base, heights, strict=True)]
    bx.yaxis.set_major_locator(MaxNLocator(integer=True))
    bx.set_ylabel("patients")
    bx.set_title(
        f"Category at last follow-up\n(own thresholds; partial: {report.options.partial_policy})",
        fontsize=10,
    )
    bx.legend(
        handles=[
            Patch(
                facecolor=COLOURS[c],
                edgecolor="white",
                hatch="//" if c == UNDETERMINED else None,
                label=c,
            )
            for c in CATEGORY_COLUMNS
        ],
        fontsize=8,
        loc="upper right",
        framealpha=0.9,
    )
    bx.set_ylim(0, (max(base, default=0) or 1) * 1.3)
    if not pops:
        bx.set_xticks([])
        bx.text(0.5, 0.5, "no patients", transform=bx.transAxes, ha="center", va="center")
    fig.savefig(path, dpi=110)


def _plot_trajectories(report: Report, path: Path) -> None:
    fig = Figure(figsize=(11, 6), layout="constrained")
    ax: Axes = fig.subplots()
    minimal, moderate, major = (float(t) for t in THRESHOLDS[Population.ADULT])
    bands = (
        (0.0, minimal, "none", f"none (<{minimal:g})"),
        (minimal, moderate, "minimal", f"minimal ({minimal:g}–<{moderate:g})"),
        (moderate, major, "moderate", f"moderate ({moderate:g}–<{major:g})"),
        (major, 100.0, "major", f"major (≥{major:g})"),
    )
    max_weeks = max((float(pt.weeks) for t in report.trajectories for pt in t.points), default=1.0)
    for low, high, c, label in bands:
        ax.axhspan(low, high, color=COLOURS[c], alpha=0.22, linewidth=0)
        ax.text(max_weeks * 1.025, (low + high) / 2, label, fontsize=8, va="center", ha="left")
    counts = Counter(t.population for t in report.trajectories)
    for t in report.trajectories:
        colour = _POP_COLOURS.get(t.population, "black")
        xs = [float(pt.weeks) for pt in t.points if not pt.partial]
        ys = [float(pt.lower) for pt in t.points if not pt.partial]
        ax.plot(xs, ys, color=colour, linewidth=0.6, alpha=0.35, marker="o", markersize=1.5)
        for pt in t.points:
            if pt.partial:
                ax.vlines(
                    float(pt.weeks),
                    float(pt.lower),
                    float(pt.upper),
                    color=colour,
                    linewidth=0.8,
                    alpha=0.3,
                )
    handles: list[Any] = [
        Line2D([], [], color=_POP_COLOURS[p], linewidth=1.2, label=f"{p} (n={counts[p]})")
        for p in ("adult", "juvenile")
        if counts[p]
    ]
    handles.append(
        Line2D(
            [],
            [],
            color="grey",
            linewidth=0,
            marker="|",
            markersize=12,
            label="partial TIS: interval [lower, upper]",
        )
    )
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    ax.set_xlim(0, max_weeks * 1.2)
    ax.set_ylim(0, 100)
    ax.set_xlabel("weeks since baseline")
    ax.set_ylabel("Total Improvement Score")
    ax.set_title(
        "TIS trajectories per patient (bands: adult thresholds 20/40/60; juvenile criteria "
        "use 30/45/70)",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)


def _plot_tee(report: Report, path: Path) -> None:
    fig = Figure(figsize=(8, 5.4), layout="constrained")
    ax: Axes = fig.subplots()
    tee = report.tee
    strata = tee.strata
    labels = [s.label for s in strata]
    heights = [float(s.per_100_cycles) if s.per_100_cycles is not None else 0.0 for s in strata]
    colours = ["#4292c6", "#cb181d", "#969696"][: len(strata)]
    bars = ax.bar(labels, heights, color=colours, width=0.55)
    highs = [heights[i] for i in range(len(strata))]
    for i, (rect, s) in enumerate(zip(bars, strata, strict=True)):
        ci = s.ci95_per_100
        if ci is None:
            continue
        x = rect.get_x() + rect.get_width() / 2
        ax.errorbar(
            x,
            heights[i],
            yerr=[[heights[i] - ci[0]], [ci[1] - heights[i]]],
            color="black",
            capsize=6,
            linewidth=1.2,
        )
        highs[i] = ci[1]
    top = max(highs, default=0.0) or 1.0
    for rect, s, h in zip(bars, strata, highs, strict=True):
        ci = s.ci95_per_100
        text = (
            "no cycles"
            if s.per_100_cycles is None
            else f"{s.events} TEE / {s.cycles} cycle{'' if s.cycles == 1 else 's'}\n"
            f"= {_rate(s.per_100_cycles)} per 100"
            + ("" if ci is None else f"\n95% CI {ci[0]:.2f}–{ci[1]:.2f}")
        )
        ax.text(
            rect.get_x() + rect.get_width() / 2,
            h + top * 0.02,
            text,
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_ylim(0, top * 1.3)
    ax.set_ylabel("temporally associated TEE per 100 infusion cycles")
    ax.set_xlabel("maximum infusion rate of the cycle (error bars: Wilson 95% CI)")
    ax.set_title(
        f"TEE by infusion rate: {tee.events} events in {report.ivig.total_cycles} cycles "
        f"({_rate(tee.per_100_cycles)} per 100)",
        fontsize=10,
    )
    if tee.events_in_several_strata:
        ax.text(
            0.99,
            0.98,
            f"{tee.events_in_several_strata} event(s) counted in two strata",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
        )
    fig.savefig(path, dpi=110)


PLOT_FILES: tuple[str, ...] = (
    "tis_by_category.png",
    "tis_trajectories.png",
    "tee_by_infusion_rate.png",
)


def write_plots(report: Report, directory: str | Path) -> list[Path]:
    """Write the three PNGs (:data:`PLOT_FILES`) into ``directory``; returns their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / name for name in PLOT_FILES]
    _plot_categories(report, paths[0])
    _plot_trajectories(report, paths[1])
    _plot_tee(report, paths[2])
    return paths
