"""Which values are compared: assessments and the baseline (clinical spec §2.5, all [choice]).

Rules, in order:

1. Values ``entered-in-error`` or ``cancelled`` are excluded; so are impossible values (outside
   their instrument's range).
2. Several values of one measure on one instrument on one day (one enzyme counts as its own
   measure here; two instruments of one measure, an MMT-8 and a CMAS say, are both kept): a
   ``final``/``amended``/``corrected`` one wins over ``preliminary`` (and ``registered``/
   ``unknown``); then the latest ``issued``. If the day's usable values disagree (within the
   winning tier, or a final and a preliminary that differ), the grouping warns.
3. An assessment is anchored on a date with a ``pga`` or ``mmt8`` value. A PGA and an MMT-8
   recorded on different days within ``assessment_window_days`` of each other, with no repeat of
   either, are one visit split over days: they make one assessment, dated at the first. (Without
   this rule one visit would count twice and could "confirm" a deterioration by itself.)
4. Each assessment takes, for every other measure on each instrument (and every enzyme), the
   value nearest its date within ± ``assessment_window_days`` (ties: the earlier value). A value
   may serve several assessments: laboratory values drawn between a screening visit and the
   baseline visit serve the baseline too. An anchor measure the assessment lacks is one of its
   other measures: an assessment anchored on a PGA alone takes the nearest MMT-8 within the
   window (one anchored on an MMT-8 alone, the nearest PGA), though that value anchors another
   assessment too (a baseline visit without an MMT-8 takes the screening visit's). A value
   that serves no assessment is noted (outside every window, or another value was nearer).
5. Baseline: the last assessment on or before the first IVIG administration and no more than
   ``baseline_lookback_days`` before it; or the assessment on the date a caller names (the
   second day of a visit split over two days names that visit too). With
   neither an IVIG start nor a named date there is no baseline, and the result says so.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import field
from datetime import UTC, date, datetime
from enum import StrEnum
from operator import attrgetter

from fhirtis.clinical.facts import (
    ENZYMES,
    Instrument,
    Measure,
    MeasureValue,
    ResultStatus,
)
from fhirtis.clinical.frozen import record
from fhirtis.clinical.measures import check_value, uln_problem
from fhirtis.clinical.notes import Note, excluded, missing, warning
from fhirtis.clinical.policy import Policy
from fhirtis.clinical.tis import AssessmentValues

_BEST_STATUS = frozenset({ResultStatus.FINAL, ResultStatus.AMENDED, ResultStatus.CORRECTED})
_VOID_STATUS = frozenset({ResultStatus.ENTERED_IN_ERROR, ResultStatus.CANCELLED})
_ANCHORS = (Measure.PGA, Measure.MMT8)
_ANCHOR_SET = frozenset(_ANCHORS)

# Enum members read in hot code, as module constants: in Python 3.11 reading a member off
# its class goes through EnumType.__getattr__, ten times the cost of reading a global.
_ENZYME = Measure.ENZYME

# A slot names what one value is of: a measure, or a lab enzyme by name.
Slot = Measure | Instrument

# What one assessment holds one value of: a lab enzyme by name, or a measure on one instrument
# (a juvenile visit may record MMT-8 and CMAS, an extramuscular VAS and DAS: each is kept, and
# each comparison takes an instrument measured at both assessments, clinical spec §1).
_Held = Instrument | tuple[Measure, Instrument]

INSTRUMENT_PREFERENCE: Mapping[Measure, tuple[Instrument, ...]] = {
    Measure.PGA: (Instrument.VAS, Instrument.LIKERT),
    Measure.PTGA: (Instrument.VAS, Instrument.LIKERT),
    Measure.MMT8: (Instrument.MMT8_150, Instrument.MMT8_80, Instrument.CMAS),
    Measure.HAQ: (Instrument.HAQ_DI, Instrument.CHAQ),
    Measure.ENZYME: (Instrument.CHQ_PHS,),
    Measure.EXTRAMUSCULAR: (Instrument.VAS, Instrument.DAS),
}
"""Of several instruments of one measure at one assessment, the one an assessment's ``values``
holds and a comparison prefers (when both assessments have it): the core set instrument before
its alternative (VAS before Likert, MMT-8 before CMAS, the MDAAT VAS before DAS)."""


def slot_of(value: MeasureValue) -> Slot:
    if value.measure is _ENZYME and value.instrument in ENZYMES:
        return value.instrument
    return value.measure


def _held(measure: Measure, instrument: Instrument) -> _Held:
    if measure is Measure.ENZYME and instrument in ENZYMES:
        return instrument
    return (measure, instrument)


def _held_order(held: _Held) -> tuple[str, str]:
    """An order of held slots: by the slot's name (the measure, or the enzyme), then the
    instrument."""
    if isinstance(held, tuple):
        return (str(held[0]), str(held[1]))
    return (str(held), "")


# Every slot and its order, made once: the grouping asks for them for every value of a patient.
_HELD: Mapping[Measure, Mapping[Instrument, _Held]] = {
    m: {i: _held(m, i) for i in Instrument} for m in Measure
}
_HELD_ORDER: Mapping[_Held, tuple[str, str]] = {
    held: _held_order(held) for by_instrument in _HELD.values() for held in by_instrument.values()
}
_HELD_PLACES = sorted(_HELD_ORDER, key=_HELD_ORDER.__getitem__)
_HELD_PLACE: Mapping[Measure, Mapping[Instrument, int]] = {
    m: {i: _HELD_PLACES.index(held) for i, held in by_instrument.items()}
    for m, by_instrument in _HELD.items()
}
"""Each slot's place in the order of :func:`_held_order` (one place per slot; the orders are
distinct): ``day.toordinal() * len(_HELD_PLACES) + place`` orders a patient's values by day,
then slot, as one integer."""


def _preferred(measure: Measure, held: Mapping[Instrument, MeasureValue]) -> MeasureValue:
    order = INSTRUMENT_PREFERENCE[measure]
    return min(
        held.values(),
        key=lambda v: order.index(v.instrument) if v.instrument in order else len(order),
    )


@record
class Assessment:
    """One assessment. ``values`` holds one value per measure (of several instruments, the
    preferred one, :data:`INSTRUMENT_PREFERENCE`); ``others`` the values of the other
    instruments of a measure, where the assessment has more than one (:func:`comparable`)."""

    day: date
    values: Mapping[Measure, MeasureValue] = field(default_factory=dict)
    enzymes: Mapping[Instrument, MeasureValue] = field(default_factory=dict)
    others: Mapping[Measure, tuple[MeasureValue, ...]] = field(default_factory=dict)
    anchor_days: tuple[date, ...] = ()
    """The days of its own PGA and MMT-8 values (two for a visit split over two days), not of
    those it takes from another assessment's day; empty: ``day`` alone."""

    def for_tis(self) -> AssessmentValues:
        return AssessmentValues(self.values, self.enzymes)

    @property
    def sources(self) -> tuple[str, ...]:
        if not self.others:
            sources = [v.source for v in self.values.values()]
            sources += [v.source for v in self.enzymes.values()]
            return tuple(sources)
        return tuple(
            v.source
            for v in (
                *self.values.values(),
                *self.enzymes.values(),
                *(v for vs in self.others.values() for v in vs),
            )
        )


def comparable(
    baseline: Assessment, followup: Assessment, enzyme: Instrument | None = None
) -> tuple[Assessment, Assessment]:
    """The two assessments with, for each measure, values of one instrument measured at both
    where there is one (clinical spec §1: an instrument is never mixed across the two
    assessments compared); the preferred such instrument when there are several. A juvenile
    alternative to the enzyme (CHQ-PhS) measured at one of the two only gives way to the lab
    enzymes when both have them; measured at both, it gives way to the core set's enzyme when
    ``enzyme`` (the lab enzyme chosen at baseline) is measured at both too. Without
    ``others`` on either side, the assessments as they are."""
    chq_at_both = _ENZYME in baseline.values and _ENZYME in followup.values
    lab_at_both = enzyme is not None and enzyme in baseline.enzymes and enzyme in followup.enzymes
    if (
        not baseline.others
        and not followup.others
        and ((_ENZYME in baseline.values) == (_ENZYME in followup.values))
        and not (chq_at_both and lab_at_both)
    ):
        return baseline, followup
    base_values, follow_values = dict(baseline.values), dict(followup.values)
    for measure in base_values.keys() & follow_values.keys():
        b, f = base_values[measure], follow_values[measure]
        if b.instrument is f.instrument:
            continue
        b_all = {v.instrument: v for v in (b, *baseline.others.get(measure, ()))}
        f_all = {v.instrument: v for v in (f, *followup.others.get(measure, ()))}
        shared = [i for i in INSTRUMENT_PREFERENCE[measure] if i in b_all and i in f_all]
        if shared:
            base_values[measure], follow_values[measure] = b_all[shared[0]], f_all[shared[0]]
    # CHQ-PhS on one side only, lab enzymes on both: the lab enzymes are compared; CHQ-PhS on
    # both and the chosen lab enzyme on both: the core set's enzyme is compared
    if (
        (_ENZYME in base_values) != (_ENZYME in follow_values)
        and baseline.enzymes
        and followup.enzymes
    ) or (chq_at_both and lab_at_both):
        base_values.pop(_ENZYME, None)
        follow_values.pop(_ENZYME, None)
    return (
        Assessment(
            baseline.day, base_values, baseline.enzymes, baseline.others, baseline.anchor_days
        ),
        Assessment(
            followup.day, follow_values, followup.enzymes, followup.others, followup.anchor_days
        ),
    )


@record
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
    """Rules 1 and 2: drop void and impossible values; one value per slot and day (in the
    order of day, then slot)."""
    # per slot and day (as one integer, see _HELD_PLACE): its value, or its values when several
    by_day: dict[int, MeasureValue | list[MeasureValue]] = {}
    places = len(_HELD_PLACES)
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
        if value.uln is not None:
            uln_note = uln_problem(value)
            if uln_note is not None:
                notes.append(uln_note)
        key = value.day.toordinal() * places + _HELD_PLACE[value.measure][value.instrument]
        held = by_day.get(key)
        if held is None:
            by_day[key] = value
        elif isinstance(held, list):
            held.append(value)
        else:
            by_day[key] = [held, value]
    chosen: list[MeasureValue] = []
    for key in sorted(by_day):
        candidates = by_day[key]
        if not isinstance(candidates, list):
            chosen.append(candidates)
            continue
        best = max(candidates, key=_rank)
        chosen.append(best)
        slot = slot_of(best)
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
        elif len({(c.instrument, c.value) for c in candidates}) > 1:
            # clinical spec §2.5: "if the candidates disagree" — every usable value of the day,
            # a final and a preliminary that differ included
            notes.append(
                warning(
                    "conflicting-values",
                    f"{len(candidates)} different {slot} values on one day; used the "
                    f"{best.status.value} one",
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


_BY_DAY_AND_SOURCE = attrgetter("day", "source")


def group_assessments(values: Iterable[MeasureValue], policy: Policy) -> Grouping:
    """Group measure values into assessments (rules 1–4 of this module)."""
    notes: list[Note] = []
    daily = _one_per_day(values, notes)
    window = policy.assessment_window_days

    # Rule 3: anchors.
    anchor_days: dict[date, dict[_Held, MeasureValue]] = {}
    others: list[MeasureValue] = []
    for value in daily:
        if value.measure in _ANCHORS:
            anchor_days.setdefault(value.day, {})[_HELD[value.measure][value.instrument]] = value
        else:
            others.append(value)
    groups: list[tuple[date, dict[_Held, MeasureValue]]] = []
    for day in sorted(anchor_days):
        found = anchor_days[day]
        if groups:
            first_day, held = groups[-1]
            if (day - first_day).days <= window and not (
                {v.measure for v in found.values()} & {v.measure for v in held.values()}
            ):  # within the window, and neither anchor measure repeated
                held.update(found)
                continue
        groups.append((day, dict(found)))

    # Rule 4: each assessment takes, per slot, the value nearest to it; a value may serve several.
    # Days as ordinals (their difference is the date difference in days); the values by day, so
    # that those within ±window of an anchor are one slice, found by bisection and visited in
    # the same order as a walk over all of them would.
    ordered = sorted(others, key=_BY_DAY_AND_SOURCE)
    ordinals = [v.day.toordinal() for v in ordered]
    slot_list = [_HELD[v.measure][v.instrument] for v in ordered]
    # the anchor values, likewise: an assessment that lacks one anchor measure takes its nearest
    anchor_values = sorted(
        (v for found in anchor_days.values() for v in found.values()), key=_BY_DAY_AND_SOURCE
    )
    anchor_value_days = [v.day.toordinal() for v in anchor_values]
    slots: list[dict[_Held, MeasureValue]] = []
    used: set[int] = set()
    for anchor, anchored in groups:
        chosen: dict[_Held, MeasureValue] = dict(anchored)
        # the distances of the slots taken so far (an anchor measure's taken from another day
        # included); the anchors' slots (PGA, MMT-8) are never among the others' slots
        distances: dict[_Held, int] = {}
        anchor_at = anchor.toordinal()
        lacking = _ANCHOR_SET.difference(v.measure for v in anchored.values())
        if lacking:
            low = bisect_left(anchor_value_days, anchor_at - window)
            for k in range(low, bisect_right(anchor_value_days, anchor_at + window)):
                value = anchor_values[k]
                if value.measure not in lacking:
                    continue
                distance = abs(anchor_value_days[k] - anchor_at)
                slot = _HELD[value.measure][value.instrument]
                held_distance = distances.get(slot)
                if held_distance is None or distance < held_distance:  # ties: the earlier
                    chosen[slot] = value
                    distances[slot] = distance
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
        used.update(map(id, chosen.values()))
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
    for (day, own), slot_values in zip(groups, slots, strict=True):
        measures: dict[Measure, MeasureValue] = {}
        enzymes: dict[Instrument, MeasureValue] = {}
        several: dict[Measure, dict[Instrument, MeasureValue]] = {}  # measures on 2+ instruments
        for v in slot_values.values():
            if v.measure is _ENZYME and v.instrument in ENZYMES:  # slot_of(v): the enzyme
                enzymes[v.instrument] = v
            elif v.measure in measures:
                seen = measures[v.measure]
                several.setdefault(v.measure, {seen.instrument: seen})[v.instrument] = v
            else:
                measures[v.measure] = v
        alternatives: dict[Measure, tuple[MeasureValue, ...]] = {}
        for m in measures:  # in the order the measures came
            if m in several:
                measures[m] = best = _preferred(m, several[m])
                alternatives[m] = tuple(v for v in several[m].values() if v is not best)
        own_days = tuple(sorted({v.day for v in own.values()}))
        assessments.append(Assessment(day, measures, enzymes, alternatives, own_days))
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


@record
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
        # the second day of a visit split over two days (dated at its first) names that visit
        for i, a in enumerate(assessments):
            if named in a.anchor_days:
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
