"""Which values are compared: assessments and the baseline (clinical spec §2.5, all [choice]).

Rules, in order:

1. Values ``entered-in-error`` or ``cancelled`` are excluded; so are impossible values (outside
   their instrument's range).
2. Several values of one measure on one day (one enzyme counts as its own measure here): a
   ``final``/``amended``/``corrected`` one wins over ``preliminary`` (and ``registered``/
   ``unknown``); then the latest ``issued``. If the values of the winning tier disagree, the
   grouping warns.
3. An assessment is anchored on a date with a ``pga`` or ``mmt8`` value. A PGA and an MMT-8
   recorded on different days within ``assessment_window_days`` of each other, with no repeat of
   either, are one visit split over days: they make one assessment, dated at the first. (Without
   this rule one visit would count twice and could "confirm" a deterioration by itself.)
4. Each assessment takes, for every other measure (and every enzyme), the value nearest its date
   within ± ``assessment_window_days`` (ties: the earlier value). A value may serve several
   assessments: laboratory values drawn between a screening visit and the baseline visit serve
   the baseline too. A value that serves no assessment is noted (outside every window, or
   another value was nearer).
5. Baseline: the last assessment on or before the first IVIG administration and no more than
   ``baseline_lookback_days`` before it; or the assessment on the date a caller names. With
   neither an IVIG start nor a named date there is no baseline, and the result says so.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

from fhirtis.clinical.facts import (
    ENZYMES,
    Instrument,
    Measure,
    MeasureValue,
    ResultStatus,
)
from fhirtis.clinical.frozen import fast_frozen_init
from fhirtis.clinical.measures import check_value
from fhirtis.clinical.notes import Note, excluded, missing, warning
from fhirtis.clinical.policy import Policy
from fhirtis.clinical.tis import AssessmentValues

_BEST_STATUS = frozenset({ResultStatus.FINAL, ResultStatus.AMENDED, ResultStatus.CORRECTED})
_VOID_STATUS = frozenset({ResultStatus.ENTERED_IN_ERROR, ResultStatus.CANCELLED})
_ANCHORS = (Measure.PGA, Measure.MMT8)

# A slot is what one assessment holds one value of: a measure, or a lab enzyme by name.
Slot = Measure | Instrument


def slot_of(value: MeasureValue) -> Slot:
    if value.measure is Measure.ENZYME and value.instrument in ENZYMES:
        return value.instrument
    return value.measure


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Assessment:
    day: date
    values: Mapping[Measure, MeasureValue] = field(default_factory=dict)
    enzymes: Mapping[Instrument, MeasureValue] = field(default_factory=dict)

    def for_tis(self) -> AssessmentValues:
        return AssessmentValues(self.values, self.enzymes)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(v.source for v in (*self.values.values(), *self.enzymes.values()))


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Grouping:
    assessments: tuple[Assessment, ...]
    notes: tuple[Note, ...]


def _rank(value: MeasureValue) -> tuple[int, datetime, str]:
    tier = 1 if value.status in _BEST_STATUS else 0
    issued = value.issued or datetime.min
    if issued.tzinfo is not None:
        issued = issued.astimezone(UTC).replace(tzinfo=None)
    return (tier, issued, value.source)


def _one_per_day(values: Iterable[MeasureValue], notes: list[Note]) -> list[MeasureValue]:
    """Rules 1 and 2: drop void and impossible values; one value per slot and day."""
    by_day: dict[tuple[Slot, date], list[MeasureValue]] = {}
    for value in values:
        if value.status in _VOID_STATUS:
            notes.append(
                excluded("void-status", f"status {value.status.value} is never used", value.source)
            )
            continue
        problem = check_value(value)
        if problem is not None:
            notes.append(problem)
            continue
        by_day.setdefault((slot_of(value), value.day), []).append(value)
    chosen: list[MeasureValue] = []
    for (slot, _day), candidates in sorted(
        by_day.items(), key=lambda kv: (kv[0][1], str(kv[0][0]))
    ):
        if len(candidates) == 1:
            chosen.append(candidates[0])
            continue
        best = max(candidates, key=_rank)
        chosen.append(best)
        tier = [
            c for c in candidates if (c.status in _BEST_STATUS) == (best.status in _BEST_STATUS)
        ]
        if len({(c.instrument, c.value) for c in tier}) > 1:
            notes.append(
                warning(
                    "conflicting-values",
                    f"{len(tier)} different {slot} values on one day; used the latest issued",
                    best.source,
                )
            )
        for c in candidates:
            if c is not best:
                notes.append(
                    excluded(
                        "superseded",
                        f"another {slot} value of the same day was preferred",
                        c.source,
                    )
                )
    return chosen


def group_assessments(values: Iterable[MeasureValue], policy: Policy) -> Grouping:
    """Group measure values into assessments (rules 1–4 of this module)."""
    notes: list[Note] = []
    daily = _one_per_day(values, notes)
    window = policy.assessment_window_days

    # Rule 3: anchors.
    anchor_days: dict[date, dict[Measure, MeasureValue]] = {}
    others: list[MeasureValue] = []
    for value in daily:
        if value.measure in _ANCHORS:
            anchor_days.setdefault(value.day, {})[value.measure] = value
        else:
            others.append(value)
    groups: list[tuple[date, dict[Measure, MeasureValue]]] = []
    for day in sorted(anchor_days):
        found = anchor_days[day]
        if groups:
            first_day, held = groups[-1]
            if (day - first_day).days <= window and not (found.keys() & held.keys()):
                held.update(found)
                continue
        groups.append((day, dict(found)))

    # Rule 4: each assessment takes, per slot, the value nearest to it; a value may serve several.
    # Days as ordinals (their difference is the date difference in days); the values by day, so
    # that those within ±window of an anchor are one slice, found by bisection and visited in
    # the same order as a walk over all of them would.
    ordered = sorted(others, key=lambda v: (v.day, v.source))
    ordinals = [v.day.toordinal() for v in ordered]
    slot_list = [slot_of(v) for v in ordered]
    slots: list[dict[Slot, MeasureValue]] = []
    used: set[int] = set()
    for anchor, anchored in groups:
        chosen: dict[Slot, MeasureValue] = {m: v for m, v in anchored.items()}  # keys: Slot
        distances: dict[Slot, int] = {m: abs((v.day - anchor).days) for m, v in chosen.items()}
        anchor_at = anchor.toordinal()
        first = bisect_left(ordinals, anchor_at - window)
        for k in range(first, bisect_right(ordinals, anchor_at + window)):
            distance = abs(ordinals[k] - anchor_at)
            slot = slot_list[k]
            held_distance = distances.get(slot)
            # strictly nearer wins: on a tie the earlier value (seen first) stays
            if held_distance is None or distance < held_distance:
                chosen[slot] = ordered[k]
                distances[slot] = distance
        slots.append(chosen)
        used.update(id(v) for v in chosen.values())
    anchor_ordinals = [anchor.toordinal() for anchor, _ in groups]
    for value, value_at in zip(ordered, ordinals, strict=True):
        if id(value) in used:
            continue
        if any(abs(value_at - a) <= window for a in anchor_ordinals):
            notes.append(_not_nearest(value))
        else:
            notes.append(
                excluded(
                    "outside-assessment-window",
                    f"{slot_of(value)} value not within ±{window} days of a PGA or MMT-8",
                    value.source,
                )
            )

    assessments = []
    for (day, _), slot_values in zip(groups, slots, strict=True):
        measures: dict[Measure, MeasureValue] = {}
        enzymes: dict[Instrument, MeasureValue] = {}
        for v in slot_values.values():
            if v.measure is Measure.ENZYME and v.instrument in ENZYMES:  # slot_of(v): the enzyme
                enzymes[v.instrument] = v
            else:
                measures[v.measure] = v
        assessments.append(Assessment(day, measures, enzymes))
    return Grouping(tuple(assessments), tuple(notes))


def _not_nearest(value: MeasureValue) -> Note:
    return excluded(
        "not-nearest",
        f"a {slot_of(value)} value nearer the assessment date was used",
        value.source,
    )


class BaselineRule(StrEnum):
    NAMED = "named-date"
    BEFORE_FIRST_IVIG = "before-first-ivig"


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class BaselineChoice:
    index: int | None
    rule: BaselineRule | None
    notes: tuple[Note, ...]


def choose_baseline(
    assessments: tuple[Assessment, ...],
    policy: Policy,
    first_ivig: date | None,
    named: date | None = None,
) -> BaselineChoice:
    """Rule 5 of this module."""
    if named is not None:
        for i, a in enumerate(assessments):
            if a.day == named:
                return BaselineChoice(i, BaselineRule.NAMED, ())
        return BaselineChoice(
            None,
            None,
            (
                missing(
                    "no-baseline",
                    f"no assessment (PGA or MMT-8) on the named baseline date {named}",
                ),
            ),
        )
    if first_ivig is None:
        return BaselineChoice(
            None,
            None,
            (missing("no-baseline", "no IVIG administration and no baseline date given"),),
        )
    lookback = policy.baseline_lookback_days
    chosen: int | None = None
    for i, a in enumerate(assessments):
        if 0 <= (first_ivig - a.day).days <= lookback:
            chosen = i
    if chosen is None:
        return BaselineChoice(
            None,
            None,
            (
                missing(
                    "no-baseline",
                    f"no assessment on or within {lookback} days before the first IVIG "
                    "administration",
                ),
            ),
        )
    return BaselineChoice(chosen, BaselineRule.BEFORE_FIRST_IVIG, ())
