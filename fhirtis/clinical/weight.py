"""Dosing weight (clinical spec §1, §4): actual, ideal and adjusted body weight, staleness and
plausibility. Pure rules over :mod:`fhirtis.clinical.facts`; no FHIR, no I/O.

* **Dosing weight** of a cycle: the latest body weight measured on or before the cycle's start
  *date* (a weight taken later on the start day counts). It is "stale", and used with a
  ``stale-weight`` warning, when it is more than ``weight_max_age_days`` days older than the cycle
  start date. No weight at all → no dosing weight, and g/kg and rates are unknown, with the reason.
  Weights measured after the cycle start are never used for it. Plausible weights recorded at
  the same time as the latest that disagree with it (two date-only weights on one day) are
  equally latest: the last in source order is used, with a ``weight-conflict`` warning.
* **Basis** (``dosing_weight``): ``actual`` is the weight itself; ``ideal`` is Devine's ideal
  body weight, 50 kg (male) or 45.5 kg (female) + 2.3 kg per inch above 60 inches (1 in =
  2.54 cm exactly); ``adjusted`` = ideal + 0.4 × (actual − ideal). Ideal and adjusted need a
  height (the latest on or before the cycle start date; any age — its date is reported), a sex
  of male or female, and a height of at least 152.4 cm (60 in). When one is lacking, the basis
  is *unavailable*: the dosing weight is ``None`` with the reason; the code never falls back to
  the actual weight. The basis asked for is always reported (:attr:`DosingWeight.basis`).
  The ideal basis needs no actual weight: none, or one older than ``weight_max_age_days``, is
  then neither "missing" nor "stale" (it is still reported as ``actual_kg``).
  An adjusted weight below ideal (actual < ideal) is computed as the formula says, with a warning.
* **A child's old height**: the specification sets no age limit for a height, and none is
  applied. But a growing child's height changes: where the height used (for the ideal or
  adjusted weight here, for a BMI in :mod:`~fhirtis.clinical.thrombosis`) was measured more than
  :data:`JUVENILE_HEIGHT_MAX_AGE_DAYS` days before the weight it is paired with (the ideal
  basis, which uses no weight: before the cycle start), in a patient under
  ``juvenile_onset_age`` on that day (or possibly, a birth date recorded in part), it is used
  with a ``stale-height-juvenile`` warning (:func:`old_juvenile_height`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field
from datetime import date, datetime
from decimal import Decimal, localcontext
from typing import Protocol, TypeVar

from fhirtis.clinical.decimals import DECIMAL_CONTEXT, format_decimal, is_positive_finite
from fhirtis.clinical.facts import BodyHeight, BodyWeight, PatientFacts, Sex
from fhirtis.clinical.frozen import record
from fhirtis.clinical.notes import Note, excluded, missing, warning
from fhirtis.clinical.policy import DEFAULT_POLICY, DosingWeightBasis, Policy
from fhirtis.clinical.population import age_bounds

# Enum members read in hot code, as module constants: in Python 3.11 reading a member off
# its class goes through EnumType.__getattr__, ten times the cost of reading a global.
_ACTUAL, _IDEAL = DosingWeightBasis.ACTUAL, DosingWeightBasis.IDEAL

__all__ = [
    "ADJUSTED_WEIGHT_FACTOR",
    "CM_PER_INCH",
    "DEVINE_BASE_KG",
    "DEVINE_KG_PER_INCH",
    "DEVINE_MIN_HEIGHT_CM",
    "JUVENILE_HEIGHT_MAX_AGE_DAYS",
    "Dated",
    "DosingWeight",
    "PlausibleBody",
    "adjusted_body_weight",
    "dated",
    "dosing_weight",
    "dosing_weight_from",
    "height_age_days",
    "ideal_body_weight",
    "latest_in_order",
    "latest_on_or_before",
    "old_juvenile_height",
    "passed_over",
    "plausible_heights",
    "plausible_weights",
]

CM_PER_INCH = Decimal("2.54")
DEVINE_BASE_KG: Mapping[Sex, Decimal] = {Sex.MALE: Decimal(50), Sex.FEMALE: Decimal("45.5")}
DEVINE_KG_PER_INCH = Decimal("2.3")
DEVINE_BASE_INCHES = Decimal(60)
DEVINE_MIN_HEIGHT_CM = Decimal("152.4")  # 60 in × 2.54 cm/in
ADJUSTED_WEIGHT_FACTOR = Decimal("0.4")
# a height measured more than this many days before the weight it is paired with, in a patient
# under juvenile_onset_age, is used with a warning (an implementation decision: the clinical
# specification sets no age limit for heights; docs/clinical-specification.md)
JUVENILE_HEIGHT_MAX_AGE_DAYS = 365


@record
class DosingWeight:
    """The weight a cycle's g/kg and mg/kg/min are expressed with, and where it came from.

    ``kg`` is ``None`` when the asked-for ``basis`` cannot be computed (``notes`` say why); it is
    never silently replaced by another basis.
    """

    basis: DosingWeightBasis
    kg: Decimal | None
    actual_kg: Decimal | None
    weight_source: str | None
    weight_when: datetime | None
    weight_age_days: int | None
    stale: bool
    ideal_kg: Decimal | None
    height_cm: Decimal | None
    height_source: str | None
    height_when: datetime | None
    sex: Sex
    notes: tuple[Note, ...]

    @property
    def available(self) -> bool:
        return self.kg is not None

    @property
    def sources(self) -> tuple[str, ...]:
        """The facts the dosing weight is computed from, weight then height: the weight on the
        actual and adjusted bases, the height on the ideal and adjusted ones (clinical spec §4:
        the actual basis needs no height, Devine's ideal weight no weight). What the derived
        cycle dose cites as ``derivedFrom``."""
        out: list[str] = []
        if self.basis is not _IDEAL and self.weight_source is not None:
            out.append(self.weight_source)
        if self.basis is not _ACTUAL and self.height_source is not None:
            out.append(self.height_source)
        return tuple(out)


def ideal_body_weight(height_cm: Decimal, sex: Sex) -> Decimal:
    """Devine ideal body weight in kg: 50 (male) or 45.5 (female) + 2.3 per inch above 60 in.

    Raises :class:`ValueError` for a sex other than male/female or a height below 152.4 cm,
    where the formula is not defined.
    """
    base = DEVINE_BASE_KG.get(sex)
    if base is None:
        raise ValueError("Devine ideal body weight needs sex male or female")
    if not height_cm.is_finite() or height_cm < DEVINE_MIN_HEIGHT_CM:
        raise ValueError("Devine ideal body weight needs a height of at least 152.4 cm")
    with localcontext(DECIMAL_CONTEXT):
        inches = height_cm / CM_PER_INCH
        return base + DEVINE_KG_PER_INCH * (inches - DEVINE_BASE_INCHES)


def adjusted_body_weight(actual_kg: Decimal, ideal_kg: Decimal) -> Decimal:
    """Adjusted body weight = ideal + 0.4 × (actual − ideal)."""
    with localcontext(DECIMAL_CONTEXT):
        return ideal_kg + ADJUSTED_WEIGHT_FACTOR * (actual_kg - ideal_kg)


class _Timed(Protocol):
    @property
    def when(self) -> datetime: ...

    @property
    def source(self) -> str: ...


_F = TypeVar("_F", bound=_Timed)

Dated = tuple[date, tuple[date, datetime, str], _F]
"""A fact with its date and its order among facts of its kind (:func:`recorded_order`): made
once per patient, so that choosing the latest on a date reads no datetime again."""


def recorded_order(fact: _Timed) -> tuple[date, datetime, str]:
    """The order of a patient's measurements of one kind: the calendar date as recorded (in the
    record's own offset; a date-only value is its day, kept as midnight UTC), then the time,
    then the source. As every day rule reads that date, a value recorded on a later day is
    later, whatever the offsets: a weight at 20:00-05:00 on the 9th (01:00Z on the 10th) comes
    before one recorded on the 10th, date only."""
    when = fact.when
    return (when.date(), when, fact.source)


def dated(facts: Iterable[_F]) -> list[Dated[_F]]:
    """Each fact with its date and its :func:`recorded_order`, in the order given."""
    return [(f.when.date(), recorded_order(f), f) for f in facts]


def latest_on_or_before(facts: Iterable[Dated[_F]], on: date) -> _F | None:
    """Of the facts dated on or before ``on``, the one latest in :func:`recorded_order`; of
    equal ones the first (as ``max`` picks); None when there is none."""
    best: _F | None = None
    best_order: tuple[date, datetime, str] | None = None
    for day, order, fact in facts:
        if day <= on and (best_order is None or order > best_order):
            best, best_order = fact, order
    return best


def _day_of(item: Dated[_F]) -> date:
    return item[0]


def _order_of(item: Dated[_F]) -> tuple[date, datetime, str]:
    return item[1]


#: Up to this many facts, :func:`latest_in_order` walks back from the newest (a child's few
#: weights: cheaper than a bisection's key calls); beyond, it bisects.
_WALK_AT_MOST = 32


def latest_in_order(facts: Sequence[Dated[_F]], on: date) -> _F | None:
    """:func:`latest_on_or_before` of ``facts`` sorted by :func:`recorded_order` (a stable
    sort: equal ones in the order given), found by bisection: a lookup per administration
    reads no other weight (an ICU record weighs its patient every hour, and a long course has
    thousands of administrations). A short list is walked back from its newest fact instead."""
    end = len(facts)
    if end > _WALK_AT_MOST:
        end = bisect_right(facts, on, key=_day_of)  # the dates lead the order: a prefix
    else:
        while end and facts[end - 1][0] > on:
            end -= 1
    if not end:
        return None
    # of the equal latest ones, the first, as latest_on_or_before (and max) picks
    first, last = end - 1, facts[end - 1][1]
    while first and facts[first - 1][1] == last:
        first -= 1
    return facts[first][2]


def sorted_dated(facts: Iterable[_F]) -> list[Dated[_F]]:
    """:func:`dated`, sorted by :func:`recorded_order` (equal ones in the order given): what
    :func:`latest_in_order` reads."""
    return sorted(dated(facts), key=_order_of)


JUMP_WINDOW_DAYS = 14  # clinical spec §1: a jump against the previous weight within 14 days


def plausible_weights(
    weights: Iterable[BodyWeight], policy: Policy = DEFAULT_POLICY
) -> tuple[list[BodyWeight], list[tuple[Note, BodyWeight]]]:
    """The weights that can be real, and a note for each one excluded (clinical spec §1): not a
    positive finite number, outside ``weight_plausible_kg``, or more than
    ``weight_jump_percent`` off the previous plausible weight measured within 14 days."""
    low, high = policy.weight_plausible_kg
    kept: list[BodyWeight] = []
    notes: list[tuple[Note, BodyWeight]] = []
    for w in sorted(weights, key=recorded_order):
        reason: str | None = None
        if not is_positive_finite(w.kg):
            reason = "body weight is not a positive finite number; not used"
        elif not low <= w.kg <= high:
            reason = (
                f"body weight {format_decimal(w.kg)} kg is implausible (outside "
                f"{format_decimal(low)}-{format_decimal(high)} kg); not used"
            )
        elif kept and (w.when.date() - kept[-1].when.date()).days <= JUMP_WINDOW_DAYS:
            previous = kept[-1].kg
            with localcontext(DECIMAL_CONTEXT):
                change = abs(w.kg - previous) * 100 / previous
            if change > policy.weight_jump_percent:
                reason = (
                    f"body weight {format_decimal(w.kg)} kg is implausible: "
                    f"{format_decimal(change)}% off the previous weight within "
                    f"{JUMP_WINDOW_DAYS} days (more than "
                    f"{format_decimal(policy.weight_jump_percent)}%); not used"
                )
        if reason is None:
            kept.append(w)
        else:
            notes.append((excluded("weight-implausible", reason, w.source), w))
    return kept, notes


def plausible_heights(
    heights: Iterable[BodyHeight], policy: Policy = DEFAULT_POLICY
) -> tuple[list[BodyHeight], list[tuple[Note, BodyHeight]]]:
    """The heights that can be real, and a note for each one excluded (clinical spec §1)."""
    low, high = policy.height_plausible_cm
    kept: list[BodyHeight] = []
    notes: list[tuple[Note, BodyHeight]] = []
    for h in heights:
        if not is_positive_finite(h.cm):
            reason = "body height is not a positive finite number; not used"
        elif not low <= h.cm <= high:
            reason = (
                f"body height {format_decimal(h.cm)} cm is implausible (outside "
                f"{format_decimal(low)}-{format_decimal(high)} cm); not used"
            )
        else:
            kept.append(h)
            continue
        notes.append((excluded("height-implausible", reason, h.source), h))
    return kept, notes


@record
class PlausibleBody:
    """A patient's plausible weights and heights (:func:`sorted_dated`: in recorded order),
    with a note for each one excluded: what every cycle's dosing weight is chosen from, so they
    are sorted and checked once per patient, not once per cycle (:func:`plausible_weights` and
    :func:`plausible_heights` read no date)."""

    weights: list[Dated[BodyWeight]]
    weight_notes: list[tuple[Note, BodyWeight]]
    heights: list[Dated[BodyHeight]]
    height_notes: list[tuple[Note, BodyHeight]]
    # the times at which plausible weights that disagree were recorded, each with their values
    # (:func:`same_time_conflicts`): found once per patient, usually none
    weight_conflicts: dict[datetime, frozenset[Decimal]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, weights: Iterable[BodyWeight], heights: Iterable[BodyHeight], policy: Policy
    ) -> PlausibleBody:
        usable_weights, weight_notes = plausible_weights(weights, policy)
        usable_heights, height_notes = plausible_heights(heights, policy)
        return cls(
            dated(usable_weights),  # plausible_weights keeps them in recorded order
            weight_notes,
            sorted_dated(usable_heights),
            height_notes,
            same_time_conflicts(usable_weights),
        )


def same_time_conflicts(weights: list[BodyWeight]) -> dict[datetime, frozenset[Decimal]]:
    """Of ``weights`` (:func:`plausible_weights`), the times at which weights that disagree
    were recorded, each with the values recorded then (normalised). Grouped by instant, not by
    neighbours in :func:`recorded_order`: one instant written in two offsets may fall on two
    recorded dates."""
    recorded: dict[datetime, set[Decimal]] = {}
    for w in weights:
        recorded.setdefault(w.when, set()).add(w.kg.normalize())
    return {when: frozenset(kgs) for when, kgs in recorded.items() if len(kgs) > 1}


def _same_time_conflict(chosen: BodyWeight, recorded: frozenset[Decimal]) -> Note:
    """The warning that other plausible weights ``recorded`` at the same time as ``chosen``
    (the latest) disagree with it: equally latest, one is used (the last in source order) and
    the result says so, never silently (clinical spec: "never guess silently"; §2.5)."""
    values = ", ".join(f"{format_decimal(kg)} kg" for kg in sorted(recorded) if kg != chosen.kg)
    return warning(
        "weight-conflict",
        f"body weights recorded at the same time disagree ({format_decimal(chosen.kg)} kg used; "
        f"also {values})",
        chosen.source,
    )


def _excluded_day(item: tuple[Note, BodyWeight]) -> date:
    return item[1].when.date()


def _excluded_time(item: tuple[Note, BodyWeight]) -> tuple[date, datetime]:
    when = item[1].when
    return (when.date(), when)


def passed_over(
    excluded: Sequence[tuple[Note, BodyWeight]],
    used: BodyWeight | None,
    on: date,
    since: date | None = None,
) -> list[Note]:
    """Of ``excluded`` (:func:`plausible_weights`' notes, in recorded order), those a dosing
    weight on ``on`` names: of the implausible weights recorded on or before ``on``, those
    recorded after ``since`` (the previous cycle's start date: each is named once, on the first
    cycle after it) and those the weight ``used`` passed over (recorded at its time or later;
    every one when none is used). ``since`` None: every one up to ``on``. Named on every cycle
    of a long record, they were each cycle dose's notes many times over (an ICU record weighs
    every hour: hundreds of notes on each of a hundred cycles)."""
    end = bisect_right(excluded, on, key=_excluded_day)
    start = 0
    if since is not None and used is not None:
        start = min(
            bisect_right(excluded, since, hi=end, key=_excluded_day),
            bisect_left(excluded, recorded_order(used)[:2], hi=end, key=_excluded_time),
        )
    return [note for note, _ in excluded[start:end]]


def height_age_days(height: BodyHeight, on: date) -> int:
    """How many days before ``on`` ``height`` was measured (by its date)."""
    return (on - height.when.date()).days


def old_juvenile_height(
    height: BodyHeight, on: date, paired_with: str, patient: PatientFacts, policy: Policy
) -> Note | None:
    """The warning that ``height``, paired on ``on`` with ``paired_with`` ("the weight", "the
    cycle start"), was measured more than :data:`JUVENILE_HEIGHT_MAX_AGE_DAYS` days before it
    in a patient under ``juvenile_onset_age`` then (a growing child's height); None otherwise,
    or where the birth date is not recorded."""
    days = height_age_days(height, on)
    birth = patient.birth_date
    if days <= JUVENILE_HEIGHT_MAX_AGE_DAYS or birth is None:
        return None
    youngest, oldest = age_bounds(birth, patient.birth_date_latest, on)
    limit = policy.juvenile_onset_age
    if youngest >= limit:
        return None
    under = f"under {limit}" if oldest < limit else f"possibly under {limit}"
    return warning(
        "stale-height-juvenile",
        f"body height measured {days} days before {paired_with} (more than "
        f"{JUVENILE_HEIGHT_MAX_AGE_DAYS}), in a patient {under} then, who may have grown "
        "since; used",
        height.source,
    )


def dosing_weight(
    at: date,
    weights: Iterable[BodyWeight],
    heights: Iterable[BodyHeight],
    patient: PatientFacts,
    policy: Policy = DEFAULT_POLICY,
) -> DosingWeight:
    """The dosing weight for a cycle starting on ``at`` (a date, or the date of a datetime), on
    the policy's basis."""
    return dosing_weight_from(at, PlausibleBody.of(weights, heights, policy), patient, policy)


def _before_start(
    weights: Sequence[Dated[BodyWeight]], on: date, start: datetime | None
) -> BodyWeight | None:
    """The latest of ``weights`` on or before ``on`` that was not recorded after ``start`` (the
    cycle's start instant, None when it has no time): a weight taken later on the start day,
    after the first bag ran, is not one "before the cycle starts" (clinical spec §4). A
    date-only weight may have been taken before the start: it counts for its whole day."""
    weight = latest_in_order(weights, on)
    if start is None or weight is None or not _after(weight, start):
        return weight
    # those recorded after the start are the last of the start day's (recorded order): walked
    # back from there, not scanned (an ICU record weighs its patient every hour)
    end = bisect_right(weights, on, key=_day_of)
    while end and _after(weights[end - 1][2], start):
        end -= 1
    return latest_in_order(weights[:end], on) if end else None


def _after(weight: BodyWeight, start: datetime) -> bool:
    return weight.timed and weight.when > start


def dosing_weight_from(
    at: date,
    body: PlausibleBody,
    patient: PatientFacts,
    policy: Policy = DEFAULT_POLICY,
    since: date | None = None,
    start: datetime | None = None,
) -> DosingWeight:
    """:func:`dosing_weight` from the patient's plausible weights and heights. ``since``: the
    previous cycle's start date, whose dosing weight named the implausible weights recorded up
    to it (:func:`passed_over`). ``start``: the cycle's start instant (None: date only), after
    which no weight recorded with a time is its dosing weight."""
    on = at.date() if isinstance(at, datetime) else at
    notes: list[Note] = []
    basis = policy.dosing_weight
    weight = _before_start(body.weights, on, start)
    if body.weight_notes:
        notes.extend(passed_over(body.weight_notes, weight, on, since))
    if basis is not _ACTUAL and body.height_notes:
        notes.extend(n for n, h in body.height_notes if h.when.date() <= on)

    actual: Decimal | None = None
    age_days: int | None = None
    stale = False
    # the ideal body weight needs no actual weight: none, or an old one, is then not a problem
    uses_actual = basis is not _IDEAL
    if weight is None:
        if uses_actual:
            notes.append(
                missing(
                    "weight-missing",
                    "no body weight on or before the cycle start; dosing weight unknown",
                )
            )
    else:
        actual = weight.kg
        age_days = (on - weight.when.date()).days
        if uses_actual and body.weight_conflicts:
            recorded = body.weight_conflicts.get(weight.when)
            if recorded is not None:
                notes.append(_same_time_conflict(weight, recorded))
        if age_days > policy.weight_max_age_days and uses_actual:
            stale = True
            notes.append(
                warning(
                    "stale-weight",
                    f"latest body weight is {age_days} days before the cycle start (more than "
                    f"{policy.weight_max_age_days}); used",
                    weight.source,
                )
            )

    height = latest_in_order(body.heights, on)
    ideal: Decimal | None = None
    kg: Decimal | None = None
    if basis is _ACTUAL:
        kg = actual
    else:
        reason: str | None = None
        if patient.sex not in DEVINE_BASE_KG:
            reason = "sex is not recorded as male or female"
        elif height is None:
            reason = "no body height on or before the cycle start"
        elif height.cm < DEVINE_MIN_HEIGHT_CM:
            reason = "height is below 152.4 cm (60 in), where the Devine formula is not defined"
        if reason is not None:
            notes.append(
                missing(
                    "dosing-weight-basis-unavailable",
                    f"{basis.value} body weight unavailable: {reason}; no fallback to actual "
                    "weight",
                    height.source if height is not None else None,
                )
            )
        else:
            assert height is not None
            ideal = ideal_body_weight(height.cm, patient.sex)
            # a growing child's old height, beside the weight it is paired with (the ideal
            # weight uses none: beside the cycle start), where a dosing weight is computed
            old: Note | None = None
            if basis is _IDEAL:
                old = old_juvenile_height(height, on, "the cycle start", patient, policy)
            elif weight is not None:
                old = old_juvenile_height(height, weight.when.date(), "the weight", patient, policy)
            if old is not None:
                notes.append(old)
            if basis is _IDEAL:
                kg = ideal
            elif actual is not None:
                kg = adjusted_body_weight(actual, ideal)
                if actual < ideal:
                    notes.append(
                        warning(
                            "actual-below-ideal",
                            "actual body weight is below ideal; adjusted weight computed by the "
                            "formula (below ideal)",
                            weight.source if weight else None,
                        )
                    )
    return DosingWeight(
        basis=basis,
        kg=kg,
        actual_kg=actual,
        weight_source=weight.source if weight is not None else None,
        weight_when=weight.when if weight is not None else None,
        weight_age_days=age_days,
        stale=stale,
        ideal_kg=ideal,
        height_cm=height.cm if height is not None else None,
        height_source=height.source if height is not None else None,
        height_when=height.when if height is not None else None,
        sex=patient.sex,
        notes=tuple(notes),
    )
