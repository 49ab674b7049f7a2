"""Thromboembolism (clinical spec §5): risk factors, the applicable maximum rate, rate findings and
events temporally associated with IVIG.

Pure rules over :mod:`fhirtis.clinical.facts` and an :class:`~fhirtis.clinical.ivig.Exposure`;
no FHIR, no I/O. Arithmetic is :class:`~decimal.Decimal` in
:data:`~fhirtis.clinical.ivig.DECIMAL_CONTEXT`.

Definitions and choices (what the code does; the policy used travels with every result):

* **Risk factors at a time ``t``** (an administration's start, or the assessment's ``as_of``);
  one :class:`RiskFactor` per kind, citing every fact that shows it:

  - coded evidence (:class:`~fhirtis.clinical.facts.RiskEvidence`) active at ``t``:
    ``start`` is None or ≤ the date of ``t``, and ``end`` is None or ≥ the date of ``t`` (both
    inclusive). Evidence of a *history* of thrombosis has no end: once started it counts, even
    after the recorded event resolved;
  - **advanced age**: age in completed years on the date of ``t`` ≥ ``advanced_age_years``
    (from the birth date; cites the patient's source). Someone born on 29 February turns a year
    older on 1 March in common years. No birth date: not assessable, with a note;
  - **obesity**: an active coded obesity (coded evidence, ValueSet ``risk-obesity``), or a
    BMI ≥ ``obesity_bmi``. The BMI is the latest recorded one on or before the date
    of ``t``, unless a body weight is more recent than it and a height is known, in which case it
    is computed as kg / m² from the latest weight and height (citing both; a child's height
    measured long before the weight is used with a ``stale-height-juvenile`` warning, also
    named in the factor's detail: :func:`~fhirtis.clinical.weight.old_juvenile_height`). A BMI
    below 30 does not cancel an active diagnosis. Not assessable only when there is neither;
  - **poorly controlled inflammation**: the physician global activity on the VAS (cm) at the
    latest assessment on or before the date of ``t`` is ≥ ``inflammation_pga_cm``: the latest
    VAS PGA, unless a later assessment (an MMT-8 or CMAS, or a Likert PGA) lies more than
    ``assessment_window_days`` after it (then not assessable). On a day with several values,
    final/amended/corrected beats preliminary, then the latest issued; ``entered-in-error`` and
    ``cancelled`` values, and values outside 0–10 cm, are never used. Likert PGA values are
    not on this scale and not used;
  - **history of thrombosis**: a thromboembolic event with onset strictly before ``t`` — an
    event before any IVIG is history; an event during treatment is history from its onset on,
    i.e. for every later administration (including later ones of the same cycle) and cycle.
    At the evaluation's own time (``as_of``: the latest record, or a CDS call's now) an event
    counts from its onset on, the onset included: one at that instant, or on that day with no
    time, has happened (an administration keeps "surely before its start": whether a date-only
    onset on its day came first is not known, and a rate finding would claim it did). So does
    one recorded without a day (to the month, by an age, by an onset period's end: evidence
    ``bounded`` by the last day it may have begun) whose first possible day is on or before the
    evaluation's date; at an administration it counts from that last day.

* **Applicable maximum rate** at ``t``: ``max_rate_with_risk_mg_kg_min`` when any risk factor is
  present, else ``max_rate_mg_kg_min``; the lower of the two when a site has set the maximum
  below the with-risk one (a risk factor never raises the limit). The reason names the factors,
  and the factors that could not be assessed (so a 4 mg/kg/min limit says what it rests on).
* **Rate finding**: an administration whose rate (mg/kg/min, from the exposure) is strictly
  greater than the maximum applicable at its start. An administration with an unknown rate cannot
  be checked: a note says so. One within the maximum at its start but above the lowest maximum,
  on the day of a thrombosis whose order with its start the dates recorded leave open (a
  date-only time), is not a finding either way: a note (``rate-limit-uncertain``) says so.
* **Temporal association**: a TEE is associated with a cycle when its onset is on or after the
  calendar day of the cycle's first administration start and on or before the calendar day
  ``tee_window_days`` days after the cycle's last administration (its end, or its start when no
  end is recorded) — both ends inclusive; an onset not after the first start (hours before it,
  or at that instant) is not (no administration of the cycle started before it). At the start
  edge the times decide where both are instants, whatever offsets they were recorded in (their
  calendar dates alone could misorder them); the calendar date decides where they cannot order
  the two (a date-only time on the other's day: in the window). It is associated with every
  cycle whose window holds it; the suspects are the administrations of those cycles that started
  before the onset. Dates are compared as the calendar dates the records give (their own time
  zones).
* **Early**: the onset is after the start of one of those administrations and no more
  than ``tee_early_hours`` after its end (its start when no end is recorded). A date-only onset
  stands for its whole day (never midnight): early is ``True`` only when every instant of that
  day qualifies for some administration, ``False`` only when no instant does for any, and
  otherwise ``None`` (unknown, said so in a note). A date-only administration time likewise
  stands for its whole day.
* An event with onset before the first IVIG administration (or with no IVIG at all) is
  **history** only. An event after IVIG began but outside every window is neither associated nor
  pre-treatment history; it is listed as unassociated (with a note) and, like any event, is a
  history risk factor from its onset on.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, localcontext

from fhirtis.clinical.decimals import format_beside
from fhirtis.clinical.facts import (
    ARTERIAL_TEE,
    BodyHeight,
    BodyMassIndex,
    BodyWeight,
    FhirTime,
    Instrument,
    Measure,
    MeasureValue,
    PatientFacts,
    ResultStatus,
    RiskEvidence,
    RiskFactorKind,
    TeeEvent,
)
from fhirtis.clinical.frozen import record
from fhirtis.clinical.ivig import (
    DECIMAL_CONTEXT,
    AdministrationExposure,
    Cycle,
    Exposure,
    format_decimal,
    is_positive_finite,
)
from fhirtis.clinical.measures import check_value
from fhirtis.clinical.notes import Note, missing, warning
from fhirtis.clinical.policy import DEFAULT_POLICY, PerPolicy, Policy
from fhirtis.clinical.population import age_bounds, age_text
from fhirtis.clinical.weight import (
    Dated,
    PlausibleBody,
    height_age_days,
    latest_in_order,
    old_juvenile_height,
    recorded_order,
    sorted_dated,
)

__all__ = [
    "AssociatedEvent",
    "RateFinding",
    "RateLimit",
    "RiskFactor",
    "RiskInputs",
    "RiskProfile",
    "ThrombosisAssessment",
    "UnassessedRiskFactor",
    "applicable_max_rate",
    "assess_thrombosis",
    "associate_events",
    "risk_profile",
]

_UNUSABLE_STATUS = frozenset({ResultStatus.ENTERED_IN_ERROR, ResultStatus.CANCELLED})
_PREFERRED_STATUS = frozenset({ResultStatus.FINAL, ResultStatus.AMENDED, ResultStatus.CORRECTED})
_KIND_ORDER = {kind: i for i, kind in enumerate(RiskFactorKind)}

# Enum members read in hot code, as module constants: in Python 3.11 reading a member off
# its class goes through EnumType.__getattr__, ten times the cost of reading a global.
_PGA, _VAS, _MMT8 = Measure.PGA, Instrument.VAS, Measure.MMT8
_ADVANCED_AGE, _OBESITY = RiskFactorKind.ADVANCED_AGE, RiskFactorKind.OBESITY
_INFLAMMATION, _HISTORY = RiskFactorKind.INFLAMMATION, RiskFactorKind.THROMBOSIS_HISTORY
_CM_PER_M = Decimal(100)
_SECONDS_PER_HOUR = Decimal(3600)


def _hours(delta: timedelta) -> Decimal:
    """A timedelta in hours, exactly (no float)."""
    with localcontext(DECIMAL_CONTEXT):
        seconds = Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / (
            Decimal(1_000_000)
        )
        return seconds / _SECONDS_PER_HOUR


# --------------------------------------------------------------------------------------------
# results


@record
class RiskFactor:
    """A thrombosis risk factor present at some time, with the facts that show it."""

    kind: RiskFactorKind
    evidence: tuple[str, ...]  # sources of the facts
    detail: str  # why, in words (e.g. "age 67 years (≥ 65)")


@record
class UnassessedRiskFactor:
    """A computed risk factor that could not be assessed for lack of data."""

    kind: RiskFactorKind
    reason: str


@record
class RiskProfile:
    """The risk factors present at ``at``."""

    at: FhirTime
    factors: tuple[RiskFactor, ...]
    unassessed: tuple[UnassessedRiskFactor, ...]
    notes: tuple[Note, ...]

    @property
    def any(self) -> bool:
        return bool(self.factors)

    @property
    def kinds(self) -> tuple[RiskFactorKind, ...]:
        return tuple(f.kind for f in self.factors)


@record
class RateLimit:
    """The maximum infusion rate applicable at ``at``, and why."""

    at: FhirTime
    limit_mg_kg_min: Decimal
    with_risk: bool
    factors: tuple[RiskFactor, ...]
    unassessed: tuple[UnassessedRiskFactor, ...]
    reason: str


@record
class RateFinding:
    """An administration infused faster than the maximum applicable at its start."""

    administration_source: str
    start: FhirTime
    cycle_index: int
    rate_mg_kg_min: Decimal
    limit: RateLimit
    # the infusion (bag) the administration is a rate step of (R4 ``partOf``), or None: a
    # titrated bag's steps are findings of their own, of one infusion
    step_of: str | None = None

    @property
    def limit_mg_kg_min(self) -> Decimal:
        return self.limit.limit_mg_kg_min

    @property
    def reason(self) -> str:
        return (
            f"rate {format_beside(self.rate_mg_kg_min, self.limit_mg_kg_min)} mg/kg/min is "
            "above the maximum "
            f"{self.limit.reason}"
        )


@record
class AssociatedEvent:
    """A TEE temporally associated with one or more IVIG cycles."""

    event: TeeEvent
    cycle_indexes: tuple[int, ...]
    suspects: tuple[str, ...]  # administrations of those cycles started before the onset
    early: bool | None  # None: unknown (a date-only time, only part of the day qualifies)
    early_after: tuple[str, ...]  # administrations the whole onset is early after
    hours_after_last_start: Decimal | None  # onset − the latest suspect start (None: date-only)
    arterial: bool
    reason: str

    @property
    def onset(self) -> FhirTime:
        return self.event.onset


@record
class ThrombosisAssessment:
    """Everything §5 says about one patient as of ``as_of``."""

    as_of: datetime
    current: RiskProfile  # risk factors at as_of (the tee-risk Flag)
    max_rate_now: RateLimit
    rate_findings: tuple[RateFinding, ...]
    associated_events: tuple[AssociatedEvent, ...]
    history_events: tuple[TeeEvent, ...]  # before any IVIG
    unassociated_events: tuple[TeeEvent, ...]  # after IVIG began, outside every window
    unchecked_administrations: tuple[str, ...]  # rate unknown: could not be checked
    policy: Mapping[str, str]
    notes: tuple[Note, ...]

    @property
    def risk_factors(self) -> tuple[RiskFactor, ...]:
        return self.current.factors


@record
class RiskInputs:
    """The patient's facts that risk factors are computed from."""

    patient: PatientFacts
    patient_source: str
    evidence: tuple[RiskEvidence, ...] = ()
    weights: tuple[BodyWeight, ...] = ()
    heights: tuple[BodyHeight, ...] = ()
    bmis: tuple[BodyMassIndex, ...] = ()
    pga: tuple[MeasureValue, ...] = ()
    events: tuple[TeeEvent, ...] = ()
    mmt8: tuple[MeasureValue, ...] = ()  # MMT-8 (or CMAS) values: they anchor assessments too
    # factors the records that would show them were read only in part (each with why): not
    # assessable where not found
    unread: tuple[UnassessedRiskFactor, ...] = ()


# --------------------------------------------------------------------------------------------
# risk factors

# What a risk profile says of a factor it cannot assess: the same for every profile (frozen,
# so one instance serves them all).
_OBESITY_UNASSESSED = UnassessedRiskFactor(
    RiskFactorKind.OBESITY, "no BMI, nor weight and height, on or before this date"
)
_BMI_UNKNOWN = missing("bmi-unknown", "no BMI, nor body weight and height; obesity not assessable")
_INFLAMMATION_UNASSESSED = UnassessedRiskFactor(
    RiskFactorKind.INFLAMMATION, "no physician global activity (VAS) on or before this date"
)
_PGA_UNKNOWN = missing(
    "pga-unknown",
    "no physician global activity (VAS cm); poorly controlled inflammation not assessable",
)


@record
class _PolicyTexts:
    """The policy's limits as :func:`format_decimal` shows them in details and reasons."""

    obesity_bmi: str
    inflammation_pga_cm: str
    max_rate: str
    max_rate_with_risk: str


def _make_texts(policy: Policy) -> _PolicyTexts:
    return _PolicyTexts(
        format_decimal(policy.obesity_bmi),
        format_decimal(policy.inflammation_pga_cm),
        format_decimal(policy.max_rate_mg_kg_min),
        format_decimal(policy.max_rate_with_risk_mg_kg_min),
    )


_texts_of = PerPolicy(_make_texts)
""":class:`_PolicyTexts` of a policy, made once per policy object."""


def _active(e: RiskEvidence, on: date, at: datetime | None, now: bool = False) -> bool:
    """Whether ``e`` counts at a time *t* on the date ``on`` (its instant ``at``, if any): its
    start on or before that date, or, where both have a time, at or before *t* whatever the
    offsets they are recorded in (an onset at 01:00Z on the 11th is before an infusion at
    21:00-05:00 on the 10th, though its date is later). ``now``: *t* is the evaluation's time,
    when a start known only as "on or before" a day (:attr:`RiskEvidence.bounded`) counts if it
    may have come by then, as an event's onset does there (module docstring)."""
    if (
        e.start is not None
        and e.start > on
        and (at is None or e.began is None or e.began > at)
        and not (now and e.bounded and (e.earliest is None or e.earliest <= on))
    ):
        return False
    # a history of thrombosis does not end when the thrombosis resolves
    return e.kind is _HISTORY or e.end is None or e.end >= on


def _usable(v: MeasureValue) -> bool:
    """Whether a value may be read at all: never a void status or an impossible value."""
    return v.status not in _UNUSABLE_STATUS and v.value.is_finite() and check_value(v) is None


def _anchor_days(pga: Iterable[MeasureValue], mmt8: Iterable[MeasureValue]) -> list[date]:
    """The days of the assessments (clinical spec §2.5: anchored on a PGA, on any scale, or an
    MMT-8), ascending, each once: the usable values' days (:func:`_usable`)."""
    days = {
        v.day
        for values, measure in ((pga, _PGA), (mmt8, _MMT8))
        for v in values
        if v.measure is measure and _usable(v)
    }
    return sorted(days)


def _usable_pga(values: Iterable[MeasureValue]) -> list[MeasureValue]:
    """The VAS PGA values that can judge inflammation (:func:`_usable`), on any day, in their
    order."""
    return [v for v in values if v.measure is _PGA and v.instrument is _VAS and _usable(v)]


_PgaRank = tuple[date, bool, bool, datetime | None, str]


def _pga_rank(v: MeasureValue) -> _PgaRank:
    """The order of preference of VAS PGA values: the latest day, then final/amended/corrected,
    then issued (the latest), then source."""
    issued = v.issued
    if issued is not None and issued.tzinfo is not None:
        issued = issued.astimezone(UTC).replace(tzinfo=None)
    return (v.day, v.status in _PREFERRED_STATUS, issued is not None, issued, v.source)


def _latest_pga(prepared: _Prepared, on: date) -> tuple[MeasureValue | None, bool]:
    """The latest of the usable VAS PGA values (:func:`_usable_pga`) on or before ``on``, and
    whether same-day candidates disagree: the first of the best ranked, as ``max`` would pick.

    The rank (:func:`_pga_rank`) begins with the day, so the best value on or before ``on`` is
    the best of the latest day on or before ``on``: that day is found by bisection, and its best
    value is chosen once per assessment (ranks are compared only between values of one day)."""
    found = bisect_right(prepared.pga_days, on)
    if not found:
        return None, False
    day = prepared.pga_days[found - 1]
    chosen = prepared.pga_best.get(day)
    if chosen is None:
        candidates = prepared.pga_by_day[day]
        if len(candidates) == 1:
            chosen = (candidates[0], False)
        else:
            best, best_rank = candidates[0], _pga_rank(candidates[0])
            for v in candidates[1:]:
                rank = _pga_rank(v)
                if rank > best_rank:
                    best, best_rank = v, rank
            chosen = (best, len({v.value for v in candidates}) > 1)
        prepared.pga_best[day] = chosen
    return chosen


@record
class _Prepared:
    """What of :class:`RiskInputs` does not depend on the time judged: made once per
    assessment, not once per administration (with each fact's date and sort key)."""

    evidence: list[RiskEvidence]  # by source
    events: list[TeeEvent]  # by onset, then source
    # in recorded order (:func:`~fhirtis.clinical.weight.latest_in_order`)
    bmis: list[Dated[BodyMassIndex]]  # positive finite
    weights: list[Dated[BodyWeight]]  # plausible
    heights: list[Dated[BodyHeight]]  # plausible
    pga_days: list[date]  # the days of the usable VAS PGA values, ascending, each once
    pga_by_day: dict[date, list[MeasureValue]]  # usable VAS PGA values by day, in their order
    pga_best: dict[date, tuple[MeasureValue, bool]]  # :func:`_latest_pga` per day, when needed
    anchor_days: list[date]  # the assessments' days (:func:`_anchor_days`)

    @classmethod
    def of(cls, inputs: RiskInputs, policy: Policy, body: PlausibleBody | None = None) -> _Prepared:
        """``body``: the plausible weights and heights of ``inputs`` under ``policy``, when the
        caller has them already (made here otherwise)."""
        evidence = sorted(inputs.evidence, key=lambda e: e.source)
        events = sorted(inputs.events, key=lambda e: (e.onset.sort_key(), e.source))
        bmis = sorted_dated(b for b in inputs.bmis if is_positive_finite(b.kg_per_m2))
        if body is None:
            body = PlausibleBody.of(inputs.weights, inputs.heights, policy)
        pga_by_day: dict[date, list[MeasureValue]] = {}
        for v in _usable_pga(inputs.pga):
            pga_by_day.setdefault(v.day, []).append(v)
        return cls(
            evidence,
            events,
            bmis,
            body.weights,
            body.heights,
            sorted(pga_by_day),
            pga_by_day,
            {},
            _anchor_days(inputs.pga, inputs.mmt8),
        )


def risk_profile(
    at: datetime | FhirTime, inputs: RiskInputs, policy: Policy = DEFAULT_POLICY
) -> RiskProfile:
    """The thrombosis risk factors present at ``at``."""
    return _risk_profile(at, inputs, _Prepared.of(inputs, policy), policy)


def _risk_profile(
    at: datetime | FhirTime,
    inputs: RiskInputs,
    prepared: _Prepared,
    policy: Policy,
    *,
    now: bool = False,
) -> RiskProfile:
    """``now``: ``at`` is the evaluation's time (its as_of), when a thrombosis counts from its
    onset on, an onset that may be at ``at`` included; else ``at`` is an administration's
    start, before which the onset must surely lie (module docstring)."""
    if isinstance(at, datetime):
        at = FhirTime.of(at)
    on = at.day
    # each factor's sources, each once, in the order found (a dict as an ordered set: a
    # problem list that codes hypertension at every visit cites hundreds of Conditions, and a
    # list's membership test made each profile quadratic in them)
    evidence: dict[RiskFactorKind, dict[str, None]] = {}
    # and its details, each once: N Conditions named alike ("Essential hypertension" at every
    # encounter) said it N times in every finding's reason
    details: dict[RiskFactorKind, dict[str, None]] = {}
    unassessed: list[UnassessedRiskFactor] = []
    notes: list[Note] = []

    texts = _texts_of(policy)

    # (no arithmetic here needs DECIMAL_CONTEXT but the BMI's, which _bmi computes in it)
    for e in prepared.evidence:
        if _active(e, on, at.instant, now):
            _add_factor(
                evidence, details, e.kind, (e.source,), e.display or f"recorded {e.kind.value}"
            )

    # advanced age
    birth = inputs.patient.birth_date
    if birth is None:
        reason = "no birth date"
        unassessed.append(UnassessedRiskFactor(_ADVANCED_AGE, reason))
        notes.append(
            missing(
                "age-unknown",
                "no birth date; advanced age not assessable",
                inputs.patient_source,
            )
        )
    else:
        youngest, oldest = age_bounds(birth, inputs.patient.birth_date_latest, on)
        if inputs.patient.death_undated and oldest >= policy.advanced_age_years:
            # died at some unknown time: the age then is anywhere from birth up to this
            reason = "recorded deceased with no date of death: age at death unknown"
            unassessed.append(UnassessedRiskFactor(_ADVANCED_AGE, reason))
            notes.append(
                missing(
                    "age-unknown",
                    f"{reason}; advanced age (≥ {policy.advanced_age_years}) not assessable",
                    inputs.patient_source,
                )
            )
        elif youngest >= policy.advanced_age_years:
            _add_factor(
                evidence,
                details,
                _ADVANCED_AGE,
                (inputs.patient_source,),
                f"age {age_text(youngest, oldest)} years (≥ {policy.advanced_age_years})",
            )
        elif oldest >= policy.advanced_age_years:
            reason = f"birth date not recorded in full: age {age_text(youngest, oldest)} years"
            unassessed.append(UnassessedRiskFactor(_ADVANCED_AGE, reason))
            notes.append(
                missing(
                    "age-uncertain",
                    f"{reason}; advanced age (≥ {policy.advanced_age_years}) not assessable",
                    inputs.patient_source,
                )
            )

    # obesity: a coded obesity active at t (ValueSet risk-obesity, added above) is the
    # factor whatever the BMI says; a BMI ≥ the limit is cited beside it. Obesity is not
    # assessable only when there is neither a BMI nor an active coded obesity.
    bmi_value, bmi_sources, bmi_how, old_height = _bmi(prepared, on, inputs.patient, policy)
    if old_height is not None:
        notes.append(old_height)
    if bmi_value is None:
        if _OBESITY not in evidence:
            unassessed.append(_OBESITY_UNASSESSED)
            notes.append(_BMI_UNKNOWN)
    elif bmi_value >= policy.obesity_bmi:
        _add_factor(
            evidence,
            details,
            _OBESITY,
            bmi_sources,
            f"BMI {format_decimal(bmi_value)} kg/m² {bmi_how} (≥ {texts.obesity_bmi})",
        )

    # poorly controlled inflammation: the PGA of the latest assessment (clinical spec §5.1)
    pga, disagree = _latest_pga(prepared, on)
    latest_at = bisect_right(prepared.anchor_days, on)
    latest = prepared.anchor_days[latest_at - 1] if latest_at else None
    if pga is None:
        unassessed.append(_INFLAMMATION_UNASSESSED)
        notes.append(_PGA_UNKNOWN)
    elif latest is not None and (latest - pga.day).days > policy.assessment_window_days:
        # a later assessment (an MMT-8) with no VAS PGA within its window: the latest PGA is
        # an earlier assessment's, and cannot tell how controlled the inflammation is now
        said = (
            f"no physician global activity (VAS) at the latest assessment ({latest.isoformat()}; "
            f"none within {policy.assessment_window_days} days of it)"
        )
        unassessed.append(UnassessedRiskFactor(_INFLAMMATION, said))
        notes.append(
            missing("pga-unknown", f"{said}; poorly controlled inflammation not assessable")
        )
    else:
        if disagree:
            notes.append(
                warning(
                    "pga-same-day-disagree",
                    "several physician global "
                    "activity values on the latest day disagree; the preferred "
                    "one is used",
                    pga.source,
                )
            )
        if pga.value >= policy.inflammation_pga_cm:
            _add_factor(
                evidence,
                details,
                _INFLAMMATION,
                (pga.source,),
                f"PGA {format_decimal(pga.value)} cm on {pga.day.isoformat()} "
                f"(≥ {texts.inflammation_pga_cm})",
            )

    # history of thrombosis
    for ev in prepared.events:
        if not surely_before(at, ev.onset) if now else surely_before(ev.onset, at):
            _add_factor(
                evidence,
                details,
                _HISTORY,
                (ev.source,),
                f"{ev.display or ev.kind.value} with onset {ev.onset.day.isoformat()}",
            )

    # a factor whose records were read only in part cannot be ruled out by their absence
    for u in inputs.unread:
        if u.kind not in evidence and all(x.kind is not u.kind for x in unassessed):
            unassessed.append(u)

    kinds = sorted(evidence, key=_KIND_ORDER.__getitem__) if len(evidence) > 1 else evidence
    factors = tuple(
        [RiskFactor(kind, tuple(evidence[kind]), "; ".join(details[kind])) for kind in kinds]
    )
    return RiskProfile(at=at, factors=factors, unassessed=tuple(unassessed), notes=tuple(notes))


def _add_factor(
    evidence: dict[RiskFactorKind, dict[str, None]],
    details: dict[RiskFactorKind, dict[str, None]],
    kind: RiskFactorKind,
    sources: Iterable[str],
    detail: str,
) -> None:
    """A factor of ``kind`` shown by ``sources`` and ``detail`` (each source and each detail
    once, in the order first given)."""
    cited = evidence.setdefault(kind, {})
    for source in sources:
        cited.setdefault(source)
    details.setdefault(kind, {}).setdefault(detail)


def _bmi(
    prepared: _Prepared, on: date, patient: PatientFacts, policy: Policy
) -> tuple[Decimal | None, tuple[str, ...], str, Note | None]:
    """The BMI to judge obesity on ``on``: value, sources, how it was obtained, and the
    warning that the height it was computed from is a child's, measured long before the
    weight (:func:`~fhirtis.clinical.weight.old_juvenile_height`)."""
    bmi = latest_in_order(prepared.bmis, on)
    weight = latest_in_order(prepared.weights, on)
    height = latest_in_order(prepared.heights, on)
    # a weight recorded after the BMI (on a later recorded date, else later in time; at the
    # same time the recorded BMI stands) computes it
    if (
        weight is not None
        and height is not None
        and (bmi is None or recorded_order(weight)[:2] > recorded_order(bmi)[:2])
    ):
        with localcontext(DECIMAL_CONTEXT):
            metres = height.cm / _CM_PER_M
            value = weight.kg / (metres * metres)
        how = "computed from weight and height"
        weighed = weight.when.date()
        old = old_juvenile_height(height, weighed, "the weight", patient, policy)
        if old is not None:
            days = height_age_days(height, weighed)
            how += f" (height measured {days} days before the weight, in a juvenile patient)"
        return value, (weight.source, height.source), how, old
    if bmi is not None:
        return bmi.kg_per_m2, (bmi.source,), "recorded", None
    return None, (), "", None


def _unassessed_text(unassessed: tuple[UnassessedRiskFactor, ...]) -> str:
    return "; ".join(f"{u.kind.value} ({u.reason})" for u in unassessed)


def applicable_max_rate(profile: RiskProfile, policy: Policy = DEFAULT_POLICY) -> RateLimit:
    """The maximum infusion rate (mg/kg/min) at the profile's time, with its reason."""
    texts = _texts_of(policy)
    if profile.factors:
        named = ", ".join(f"{f.kind.value} ({f.detail})" for f in profile.factors)
        if policy.max_rate_with_risk_mg_kg_min <= policy.max_rate_mg_kg_min:
            limit = policy.max_rate_with_risk_mg_kg_min
            reason = (
                f"{texts.max_rate_with_risk} mg/kg/min applicable with thrombosis risk "
                f"factor(s): {named}"
            )
        else:  # a site lowered the maximum below the with-risk one: a risk never raises it
            limit = policy.max_rate_mg_kg_min
            reason = (
                f"{texts.max_rate} mg/kg/min applicable (the maximum, lower than the "
                f"{texts.max_rate_with_risk} with a risk factor) with thrombosis risk "
                f"factor(s): {named}"
            )
    else:
        limit = policy.max_rate_mg_kg_min
        reason = f"{texts.max_rate} mg/kg/min applicable: no thrombosis risk factor found"
        if profile.unassessed:
            reason += f"; not assessable: {_unassessed_text(profile.unassessed)}"
    return RateLimit(
        at=profile.at,
        limit_mg_kg_min=limit,
        with_risk=bool(profile.factors),
        factors=profile.factors,
        unassessed=profile.unassessed,
        reason=reason,
    )


# --------------------------------------------------------------------------------------------
# events


def _zone(*times: FhirTime | None) -> tzinfo | None:
    """The time zone to read a date-only time in: that of the first time with an instant."""
    return next((t.zone for t in times if t is not None and t.zone is not None), None)


def surely_before(a: FhirTime, b: FhirTime) -> bool:
    """Whether every instant ``a`` may stand for is before every instant of ``b``."""
    zone = _zone(a, b)
    return a.span(zone)[1] < b.span(zone)[0]


def _order_unknown(onset: FhirTime, start: FhirTime) -> bool:
    """Whether the dates recorded leave open if ``onset`` came before ``start`` (a date-only
    time on the other's day); two instants are always in a known order (equal: not before)."""
    return (
        (onset.date_only or start.date_only)
        and not surely_before(onset, start)
        and not surely_before(start, onset)
    )


def _in_window(onset: FhirTime, cycle: Cycle, policy: Policy) -> bool:
    """Calendar dates as the records give them, both ends inclusive (clinical spec §5.3); an
    onset not after the cycle's start (hours before it, or at that very instant) is not in it:
    it is not after "the start of a cycle", and none of the cycle's administrations "started
    before the onset" to be its suspect (as an onset before the first infusion on its day is
    history). The start edge is decided by the times where they order the two (an onset and a
    start recorded in different offsets, whose calendar dates alone would misorder them), by the
    calendar date where they cannot (a date-only time on the other's day: in the window)."""
    # the end's date, or the last start's when that is later (an end recorded in another
    # offset may fall on an earlier calendar date than its start)
    last_day = max(cycle.end.day, cycle.last_start.day) + timedelta(days=policy.tee_window_days)
    if onset.day > last_day:
        return False
    return any(_may_start_before(a.start, onset) for a in cycle.administrations)


def _may_start_before(start: FhirTime, onset: FhirTime) -> bool:
    """Whether an administration starting at ``start`` may have started before ``onset`` (the
    suspects of an event, clinical spec §5.3): its first possible instant is before the
    onset's last."""
    zone = _zone(onset, start)
    return start.span(zone)[0] < onset.span(zone)[1]


def _end_or_start(start: FhirTime, end: FhirTime | None) -> FhirTime:
    """What "early" is measured from: the end of an administration, or its start when no end
    is recorded or the end recorded is surely before the start (FHIR's Period invariant
    broken; the cycle's end, :attr:`~fhirtis.clinical.ivig.Cycle.end`, ignores it too)."""
    if end is None or surely_before(end, start):
        return start
    return end


def early_after(
    onset: FhirTime, start: FhirTime, end: FhirTime | None, policy: Policy
) -> bool | None:
    """Whether an onset is early after one administration: after its start (clinical spec
    §5.3, the relation that makes the administration a suspect: it "started before the onset")
    and no more than ``tee_early_hours`` after its end (its start when no end is recorded).
    ``None`` when only part of what the onset may stand for qualifies."""
    last = _end_or_start(start, end)
    zone = _zone(onset, last, start)
    onset_first, onset_last = onset.span(zone)
    start_first, start_last = start.span(zone)
    limit_first, limit_last = (t + timedelta(hours=policy.tee_early_hours) for t in last.span(zone))
    if onset_first > start_last and onset_last <= limit_first:
        return True
    if onset_last <= start_first or onset_first > limit_last:
        return False
    return None


def _early_throughout(
    onset: FhirTime, admins: Iterable[AdministrationExposure], policy: Policy
) -> bool:
    """Whether every instant ``onset`` may stand for is early after *some* administration:
    the union of the spans surely early after each (after its start's last instant, to
    ``tee_early_hours`` after its end's first) covers the onset's whole span (clinical spec
    §5.3: a date-only onset is early "only if every instant of that day qualifies", and an
    instant qualifies when it is early after any administration)."""
    times = [(a.start, _end_or_start(a.start, a.administration.end)) for a in admins]
    zone = _zone(onset, *(t for pair in times for t in pair))
    first, last = onset.span(zone)
    hours = timedelta(hours=policy.tee_early_hours)
    spans = sorted((start.span(zone)[1], end.span(zone)[0] + hours) for start, end in times)
    reach = first  # every instant before ``reach`` is known to qualify
    for low, high in spans:
        if low >= reach:  # the span begins after ``low``: ``low`` itself does not qualify
            break
        reach = max(reach, high + timedelta(microseconds=1))
    return reach > last


def _early_limit(admin: AdministrationExposure, zone: tzinfo | None, policy: Policy) -> str:
    last = _end_or_start(admin.start, admin.administration.end)
    limit = last.span(_zone(last) or zone)[1] + timedelta(hours=policy.tee_early_hours)
    return limit.isoformat(timespec="minutes") if last.instant else limit.date().isoformat()


def _one_clot(a: TeeEvent, b: TeeEvent) -> bool:
    """Whether ``a`` and ``b`` record one thromboembolism: records of one kind whose onsets
    are one instant (whatever offsets they are recorded in), or fall on one calendar day (each
    in the time zone its record gives) where one of them gives no time. Two different times,
    even on one day, are two events as recorded (a crescendo of TIAs; one early, one not)."""
    if a.kind is not b.kind:
        return False
    if a.onset.instant is not None and b.onset.instant is not None:
        return a.onset.instant == b.onset.instant
    return a.onset.day == b.onset.day


def _is_condition(e: TeeEvent) -> bool:
    return e.source.startswith("Condition/")


def _onset_rank(e: TeeEvent) -> tuple[bool, tuple[date, datetime], bool, str]:
    """The record whose onset one event carries: a time over a date alone (it places the event
    in its day: early, suspects), then the earliest, then a Condition over a safety report of
    one onset, then by reference."""
    return (e.onset.date_only, e.onset.sort_key(), not _is_condition(e), e.source)


def one_event_per_clot(events: Iterable[TeeEvent]) -> tuple[TeeEvent, ...]:
    """The events, each thromboembolism once: Conditions of one TEE kind whose onsets are one
    instant, or one day where a record gives no time (:func:`_one_clot`), are one event (EHRs
    record one DVT as a problem-list entry and as the encounter diagnosis of the visit that
    found it), and an existing AdverseEvent (another system's safety report) of one with such
    a Condition's event joins it under the same rule (clinical spec §5.3: a TEE is "a Condition
    (or an existing AdverseEvent)"). The event carries the onset, text and coding of the record
    with the most precise, then earliest, onset (:func:`_onset_rank`), and names the others in
    :attr:`TeeEvent.also`; its derived AdverseEvent is still the Conditions' (identifier,
    ``resultingCondition``: fhir.derive). Records of another kind, day or time, and existing
    AdverseEvents that join no Condition (counted with the Condition they cite, or on their
    own), stay as they are."""
    ordered = sorted(events, key=lambda e: (e.onset.sort_key(), e.source))
    groups: list[list[TeeEvent]] = []
    group_of: dict[int, list[TeeEvent]] = {}  # id of a Condition's record → its event's records
    for e in ordered:
        if not _is_condition(e):
            continue
        # one of every record there (a date alone between two times joins the first)
        group = next((g for g in groups if all(_one_clot(e, o) for o in g)), None)
        if group is None:
            group = []
            groups.append(group)
        group.append(e)
        group_of[id(e)] = group
    # each event in order: a Condition's where its first Condition is, any other record there
    out: list[TeeEvent | list[TeeEvent]] = []
    placed: set[int] = set()
    for e in ordered:
        group = group_of.get(id(e))
        if group is None:
            # another system's AdverseEvent: one of a Condition's event where it is one clot
            # with every record there (the first such event), else an event of its own
            joins = next((g for g in groups if all(_one_clot(e, o) for o in g)), None)
            if joins is None:
                out.append(e)
            else:
                joins.append(e)
        elif id(group) not in placed:
            placed.add(id(group))
            out.append(group)
    merged: list[TeeEvent] = []
    for item in out:
        if isinstance(item, TeeEvent):
            merged.append(item)
            continue
        first = min(item, key=_onset_rank)
        others = tuple(sorted(e.source for e in item if e is not first))
        merged.append(replace(first, also=others) if others else first)
    return tuple(merged)


def associate_events(
    events: Iterable[TeeEvent], exposure: Exposure, policy: Policy = DEFAULT_POLICY
) -> tuple[tuple[AssociatedEvent, ...], tuple[TeeEvent, ...], tuple[TeeEvent, ...]]:
    """Events → (temporally associated, history before any IVIG, after IVIG but unassociated)."""
    ordered = sorted(events, key=lambda e: (e.onset.sort_key(), e.source))
    if not ordered:
        return (), (), ()
    starts = [a.start for a in exposure.administrations]
    first_ivig = min(starts, key=FhirTime.sort_key) if starts else None
    associated: list[AssociatedEvent] = []
    history: list[TeeEvent] = []
    other: list[TeeEvent] = []
    for ev in ordered:
        # before any IVIG: no administration may have started before the onset (its time
        # orders them where both have one, whatever the offsets recorded; a date-only onset on
        # the first infusion's day may come after it: not history)
        if first_ivig is None or not (
            _may_start_before(first_ivig, ev.onset)
            or any(_may_start_before(start, ev.onset) for start in starts)
        ):
            history.append(ev)
            continue
        cycles = [c for c in exposure.cycles if _in_window(ev.onset, c, policy)]
        if not cycles:
            other.append(ev)
            continue
        admins = [a for c in cycles for a in c.administrations]
        early_by = {
            a.source: early_after(ev.onset, a.start, a.administration.end, policy) for a in admins
        }
        surely_early = tuple(src for src, e in early_by.items() if e is True)
        early: bool | None = (
            True
            if surely_early
            else (False if all(e is False for e in early_by.values()) else None)
        )
        if early is None and _early_throughout(ev.onset, admins, policy):
            early = True  # every instant of the onset qualifies, each by some administration
        zone = _zone(ev.onset)
        suspects = tuple(a.source for a in admins if _may_start_before(a.start, ev.onset))
        started = [a.start for a in admins if surely_before(a.start, ev.onset)]
        last_before = max(started, key=FhirTime.sort_key) if started else None
        hours: Decimal | None = None
        if last_before is not None and last_before.instant and ev.onset.instant:
            hours = _hours(ev.onset.instant - last_before.instant)
        latest = cycles[-1]
        days_after_end = (ev.onset.day - latest.end.day).days
        where = (
            f"{days_after_end} day(s) after cycle {latest.index}'s last administration"
            if days_after_end > 0
            else f"during cycle {latest.index}"
        )
        reason = (
            f"onset {where}; window: cycle start to {policy.tee_window_days} days after "
            f"its last administration, calendar dates, inclusive"
        )
        if early is True:
            reason += f"; early: within {policy.tee_early_hours} h of the end of an administration"
        elif early is None:
            partly = [a for a in admins if early_by[a.source] is None]
            bounds = ", ".join(
                f"up to {_early_limit(a, zone, policy)}, {policy.tee_early_hours} h after the end "
                f"of {a.source.split('/')[1] if '/' in a.source else a.source}"
                for a in partly
            )
            reason += (
                f"; early onset unknown: date-only onset {ev.onset.day.isoformat()}; only part "
                f"of that day ({bounds}) is early"
            )
        associated.append(
            AssociatedEvent(
                event=ev,
                cycle_indexes=tuple(c.index for c in cycles),
                suspects=suspects,
                early=early,
                early_after=surely_early,
                hours_after_last_start=hours,
                arterial=ev.kind in ARTERIAL_TEE,
                reason=reason,
            )
        )
    return tuple(associated), tuple(history), tuple(other)


# --------------------------------------------------------------------------------------------
# the whole assessment


def assess_thrombosis(
    *,
    patient: PatientFacts,
    patient_source: str,
    evidence: Iterable[RiskEvidence],
    weights: Iterable[BodyWeight],
    heights: Iterable[BodyHeight],
    bmis: Iterable[BodyMassIndex],
    pga: Iterable[MeasureValue],
    exposure: Exposure,
    events: Iterable[TeeEvent],
    as_of: datetime,
    policy: Policy = DEFAULT_POLICY,
    body: PlausibleBody | None = None,
    mmt8: Iterable[MeasureValue] = (),
    unread: Iterable[UnassessedRiskFactor] = (),
) -> ThrombosisAssessment:
    """Risk factors now, the maximum rate now, rate findings, and events, for one patient.
    ``body``: the plausible ``weights`` and ``heights`` under ``policy``
    (:meth:`~fhirtis.clinical.weight.PlausibleBody.of`), when the caller has made them.
    ``mmt8``: the MMT-8 (or CMAS) values, which date assessments as PGA values do: inflammation
    is judged on the PGA at the latest assessment. ``unread``: the factors whose records were
    read only in part (a search the server answered in part), each with why: not assessable
    where no factor of that kind is found."""
    inputs = RiskInputs(
        patient=patient,
        patient_source=patient_source,
        evidence=tuple(evidence),
        weights=tuple(weights),
        heights=tuple(heights),
        bmis=tuple(bmis),
        pga=tuple(pga),
        events=tuple(events),
        mmt8=tuple(mmt8),
        unread=tuple(unread),
    )
    notes: list[Note] = []
    record = policy.as_record()
    if dict(exposure.policy) != record:
        notes.append(
            warning(
                "policy-mismatch",
                "the IVIG exposure was computed with a different policy than this assessment",
            )
        )

    prepared = _Prepared.of(inputs, policy, body)
    current = _risk_profile(as_of, inputs, prepared, policy, now=True)
    notes.extend(current.notes)
    max_rate_now = applicable_max_rate(current, policy)

    findings: list[RateFinding] = []
    lowest_limit = min(policy.max_rate_mg_kg_min, policy.max_rate_with_risk_mg_kg_min)
    unchecked: list[str] = []
    for cycle in exposure.cycles:  # = exposure.administrations, without the tuple of them all
        for admin in cycle.administrations:
            rate = admin.rate_mg_kg_min
            if rate is None:
                unchecked.append(admin.source)
                notes.append(
                    missing(
                        "rate-not-checked",
                        "infusion rate in mg/kg/min unknown; not checked against the maximum rate",
                        admin.source,
                    )
                )
                continue
            if rate <= lowest_limit:
                continue  # within every limit that could apply: its risk profile cannot matter
            profile = _risk_profile(admin.start, inputs, prepared, policy)
            limit = applicable_max_rate(profile, policy)
            if rate > limit.limit_mg_kg_min:
                findings.append(
                    RateFinding(
                        administration_source=admin.source,
                        start=admin.start,
                        cycle_index=admin.cycle_index,
                        rate_mg_kg_min=rate,
                        limit=limit,
                        step_of=admin.step_of,
                    )
                )
                continue
            # within the limit without a thrombosis whose onset may, or may not, have come
            # before this start (a date-only time on its day): with it, the limit would be the
            # lowest, which this rate is above. Not a finding, but not silently within either.
            unsure = next(
                (ev for ev in prepared.events if _order_unknown(ev.onset, admin.start)), None
            )
            if unsure is not None:
                notes.append(
                    warning(
                        "rate-limit-uncertain",
                        f"a thromboembolic event with onset {unsure.onset.isoformat()} may have "
                        f"begun before this administration's start ({admin.start.isoformat()}): "
                        "the dates recorded do not tell; if it did, the maximum was "
                        f"{format_decimal(lowest_limit)} mg/kg/min, below this rate of "
                        f"{format_beside(rate, lowest_limit)} mg/kg/min",
                        admin.source,
                    )
                )

    # one thromboembolism recorded as several Conditions (and another system's AdverseEvent of
    # it) is one event (clinical spec §5.3): one AdverseEvent naming each Condition; its records
    # stay risk evidence (and history) each
    associated, history, other = associate_events(
        one_event_per_clot(inputs.events), exposure, policy
    )
    notes.extend(
        warning(
            "tee-not-associated",
            "thromboembolic event after IVIG began but outside every "
            "cycle's window; not temporally associated (a history risk factor from its onset)",
            ev.source,
        )
        for ev in other
    )
    notes.extend(
        warning(
            "tee-early-unknown",
            a.reason[a.reason.index("early onset unknown") :],
            a.event.source,
        )
        for a in associated
        if a.early is None
    )
    return ThrombosisAssessment(
        as_of=as_of,
        current=current,
        max_rate_now=max_rate_now,
        rate_findings=tuple(findings),
        associated_events=associated,
        history_events=history,
        unassociated_events=other,
        unchecked_administrations=tuple(unchecked),
        policy=record,
        notes=tuple(notes),
    )
