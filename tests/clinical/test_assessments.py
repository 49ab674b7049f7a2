"""Assessments, duplicates and baseline (clinical spec §2.5) and the whole course."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from fhirtis.clinical.assessments import choose_baseline, group_assessments, slot_of
from fhirtis.clinical.course import evaluate_course
from fhirtis.clinical.facts import Instrument, Measure, MeasureValue, ResultStatus
from fhirtis.clinical.policy import Policy, Population
from fhirtis.clinical.population import age_in_years, decide_population
from fhirtis.clinical.tis import Category
from tests.clinical.helpers import mv

P = Policy()
D0 = date(2024, 1, 10)


def _visit(day: date, pga: object, mmt: object, **others: object) -> list[MeasureValue]:
    out = [mv("pga", pga, day), mv("mmt8-150", mmt, day)]  # type: ignore[arg-type]
    for key, value in others.items():
        if key == "ck":
            v, uln = value  # type: ignore[misc]
            out.append(mv("ck", v, day, uln=uln))
        else:
            out.append(mv(key, value, day))  # type: ignore[arg-type]
    return out


def test_values_join_the_nearest_assessment_within_window() -> None:
    values = [
        *_visit(D0, 6, 100),
        mv("haq", "1.5", D0 + timedelta(days=3)),
        mv("ptga", 7, D0 - timedelta(days=7)),  # on the window edge: used
        mv("extramuscular", 4, D0 + timedelta(days=8)),  # outside: excluded
    ]
    g = group_assessments(values, P)
    assert len(g.assessments) == 1
    a = g.assessments[0]
    assert a.day == D0
    assert set(a.values) == {Measure.PGA, Measure.MMT8, Measure.HAQ, Measure.PTGA}
    assert [n.code for n in g.notes] == ["outside-assessment-window"]


def test_split_visit_is_one_assessment() -> None:
    values = [mv("pga", 6, D0), mv("mmt8-150", 100, D0 + timedelta(days=2))]
    g = group_assessments(values, P)
    assert len(g.assessments) == 1
    assert set(g.assessments[0].values) == {Measure.PGA, Measure.MMT8}
    # A second PGA within the window is a new visit, not a merge.
    again = [*values, mv("pga", 5, D0 + timedelta(days=4))]
    assert len(group_assessments(again, P).assessments) == 2


def test_nearest_value_wins_and_ties_go_to_earlier() -> None:
    values = [
        *_visit(D0, 6, 100),
        *_visit(D0 + timedelta(days=10), 5, 110),
        mv("haq", 1, D0 + timedelta(days=5), source="Observation/tie"),
        mv("haq", 2, D0 + timedelta(days=1), source="Observation/near"),
    ]
    g = group_assessments(values, P)
    first, second = g.assessments
    assert first.values[Measure.HAQ].source == "Observation/near"
    # "near" is 9 days from the second assessment (outside the window): "tie" serves it.
    assert second.values[Measure.HAQ].source == "Observation/tie"
    assert not any(n.source in {"Observation/tie", "Observation/near"} for n in g.notes)


def test_a_value_serves_every_assessment_it_is_nearest_for() -> None:
    # clinical spec §2.5: labs between a screening and the baseline visit serve both.
    screening, baseline = D0, D0 + timedelta(days=10)
    values = [
        *_visit(screening, 6, 100),
        *_visit(baseline, 5, 110),
        mv("ck", 2400, D0 + timedelta(days=4), uln=200, source="Observation/ck"),
        mv("haq", 1, D0 + timedelta(days=5), source="Observation/haq-mid"),
        mv("haq", 2, baseline + timedelta(days=1), source="Observation/haq-late"),
    ]
    g = group_assessments(values, P)
    first, second = g.assessments
    assert first.enzymes[Instrument.CK].source == "Observation/ck"
    assert second.enzymes[Instrument.CK].source == "Observation/ck"
    # each assessment takes the value nearest to it: ties go to the earlier value
    assert first.values[Measure.HAQ].source == "Observation/haq-mid"
    assert second.values[Measure.HAQ].source == "Observation/haq-late"
    assert [n.code for n in g.notes] == []


def test_a_value_nearest_to_no_assessment_is_noted() -> None:
    values = [
        *_visit(D0, 6, 100),
        mv("haq", 1, D0 + timedelta(days=2), source="Observation/near"),
        mv("haq", 2, D0 + timedelta(days=5), source="Observation/far"),
    ]
    g = group_assessments(values, P)
    assert g.assessments[0].values[Measure.HAQ].source == "Observation/near"
    assert [(n.code, n.source) for n in g.notes] == [("not-nearest", "Observation/far")]


def test_status_preference_and_conflicts() -> None:
    t1 = datetime(2024, 1, 10, 9, tzinfo=UTC)
    t2 = datetime(2024, 1, 10, 15, tzinfo=UTC)
    values = [
        MeasureValue(
            Measure.PGA, Instrument.VAS, Decimal(5), D0, "O/prelim", ResultStatus.PRELIMINARY, t2
        ),
        MeasureValue(
            Measure.PGA, Instrument.VAS, Decimal(6), D0, "O/final-early", ResultStatus.FINAL, t1
        ),
        MeasureValue(
            Measure.PGA, Instrument.VAS, Decimal(7), D0, "O/amended-late", ResultStatus.AMENDED, t2
        ),
        MeasureValue(
            Measure.PGA,
            Instrument.VAS,
            Decimal(1),
            D0,
            "O/error",
            ResultStatus.ENTERED_IN_ERROR,
            t2,
        ),
        MeasureValue(
            Measure.PGA, Instrument.VAS, Decimal(1), D0, "O/cancel", ResultStatus.CANCELLED, t2
        ),
    ]
    g = group_assessments(values, P)
    assert g.assessments[0].values[Measure.PGA].source == "O/amended-late"
    codes = [(n.code, n.source) for n in g.notes]
    assert ("void-status", "O/error") in codes
    assert ("void-status", "O/cancel") in codes
    assert any(c == "conflicting-values" for c, _ in codes)


def test_same_values_do_not_warn() -> None:
    values = [mv("pga", 6, D0, source="a"), mv("pga", 6, D0, source="b")]
    g = group_assessments(values, P)
    assert not any(n.code == "conflicting-values" for n in g.notes)


def test_impossible_value_excluded() -> None:
    g = group_assessments([mv("pga", 12, D0), mv("mmt8-150", 100, D0)], P)
    assert Measure.PGA not in g.assessments[0].values
    assert [n.code for n in g.notes] == ["out-of-range"]


def test_baseline_rules() -> None:
    values = [*_visit(D0, 6, 100), *_visit(D0 + timedelta(days=20), 5, 100)]
    g = group_assessments(values, P)
    first_ivig = D0 + timedelta(days=30)
    c = choose_baseline(g.assessments, P, first_ivig)
    assert c.index == 1  # the last on or before, within 28 days
    assert choose_baseline(g.assessments, P, D0 + timedelta(days=20)).index == 1  # same day
    assert choose_baseline(g.assessments, P, D0 + timedelta(days=49)).index is None  # 29 days
    assert choose_baseline(g.assessments, P, D0 + timedelta(days=48)).index == 1  # 28 days
    assert choose_baseline(g.assessments, P, first_ivig, named=D0).index == 0
    none = choose_baseline(g.assessments, P, None)
    assert none.index is None and none.notes[0].code == "no-baseline"


def test_course_prod_erm_like() -> None:
    start = date(2024, 1, 1)
    values = [
        *_visit(start, 6, 100, ptga=7, haq="1.5", extramuscular=4, ck=(3000, 200)),
        *_visit(
            start + timedelta(weeks=4), 5, 110, ptga=6, haq="1.4", extramuscular=4, ck=(2000, 200)
        ),
        *_visit(
            start + timedelta(weeks=8), 3, 130, ptga=5, haq="1.2", extramuscular=3, ck=(1200, 200)
        ),
    ]
    course = evaluate_course(values, Population.ADULT, P, first_ivig=start + timedelta(days=1))
    assert course.baseline is not None and course.baseline.day == start
    assert len(course.followups) == 2
    last = course.followups[-1]
    assert last.tis.tis == Decimal("62.5")
    assert last.tis.category is Category.MAJOR
    assert last.responder is True
    assert course.confirmed_deterioration_on is None


def test_course_confirmed_deterioration_blocks_responder() -> None:
    start = date(2024, 1, 1)
    values = [
        *_visit(start, 3, 100, ptga=3, haq=1, extramuscular=2, ck=(1000, 200)),
        *_visit(start + timedelta(weeks=4), 5, 80, ptga=3, haq=1, extramuscular=2, ck=(1000, 200)),
        *_visit(start + timedelta(weeks=8), 6, 70, ptga=3, haq=1, extramuscular=2, ck=(1000, 200)),
        *_visit(start + timedelta(weeks=12), 1, 140, ptga=1, haq=0, extramuscular=0, ck=(200, 200)),
    ]
    course = evaluate_course(values, Population.ADULT, P, first_ivig=start)
    assert course.confirmed_deterioration_on == start + timedelta(weeks=8)
    week12 = course.followups[-1]
    assert week12.tis.category is not Category.NONE
    assert week12.confirmed_deterioration is True
    assert week12.responder is False


def test_population_rules() -> None:
    assert age_in_years(date(2000, 6, 15), date(2018, 6, 14)) == 17
    assert age_in_years(date(2000, 6, 15), date(2018, 6, 15)) == 18
    d = decide_population(P, birth_date=date(2000, 6, 15), dm_onset=date(2018, 6, 14))
    assert d.population is Population.JUVENILE and d.reason == "onset-age"
    d = decide_population(P, birth_date=date(2000, 6, 15), dm_onset=date(2018, 6, 15))
    assert d.population is Population.ADULT
    assert decide_population(P, jdm_coded=True).population is Population.JUVENILE
    unknown = decide_population(P)
    assert unknown.population is Population.ADULT and unknown.notes[0].code == "onset-age-unknown"
    over = decide_population(P, jdm_coded=True, override=Population.ADULT)
    assert over.population is Population.ADULT and over.reason == "override"
    assert (
        decide_population(
            Policy(juvenile_onset_age=16), birth_date=date(2000, 1, 1), dm_onset=date(2016, 6, 1)
        ).population
        is Population.ADULT
    )


_KEYS = ("pga", "mmt8-150", "haq", "ptga", "extramuscular", "ck", "aldolase")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(_KEYS), st.integers(0, 60)), max_size=25, unique=True),
    st.integers(0, 10),
)
def test_each_assessment_takes_the_nearest_value_of_each_slot(
    recorded: list[tuple[str, int]], window: int
) -> None:
    """Rule 4 against its plain statement: for each assessment and slot, of the values within
    ±window days the nearest, on a tie the earliest (by day, then source); every other value is
    noted as not the nearest (within some window) or outside every window."""
    values = [
        mv(key, 1, D0 + timedelta(days=day), source=f"Observation/{i:02d}")
        for i, (key, day) in enumerate(recorded)
    ]
    g = group_assessments(values, Policy(assessment_window_days=window))
    others = sorted(
        (v for v in values if v.measure not in (Measure.PGA, Measure.MMT8)),
        key=lambda v: (v.day, v.source),
    )
    used: set[str] = set()
    for a in g.assessments:
        held = {**a.values, **a.enzymes}
        for slot in {slot_of(v) for v in others}:
            near = [v for v in others if slot_of(v) == slot and abs((v.day - a.day).days) <= window]
            best = min(near, key=lambda v: abs((v.day - a.day).days), default=None)
            assert held.get(slot) is best
        used.update(v.source for v in held.values())
    noted = {n.source: n.code for n in g.notes}
    for v in others:
        if v.source in used:
            assert v.source not in noted
        elif any(abs((v.day - a.day).days) <= window for a in g.assessments):
            assert noted[v.source] == "not-nearest"
        else:
            assert noted[v.source] == "outside-assessment-window"
