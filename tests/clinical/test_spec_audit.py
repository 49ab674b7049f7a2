"""Band edges and worked cases of the clinical spec that the other clinical tests leave open
(an audit of fhirtis against docs/clinical-specification.md, rule by rule). Every expected
number is computed by hand from the spec; the arithmetic is in the comments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from fhirtis.clinical.assessments import group_assessments
from fhirtis.clinical.facts import (
    BodyHeight,
    BodyWeight,
    FhirTime,
    Instrument,
    IvigAdministration,
    Measure,
    PatientFacts,
    Sex,
    TeeEvent,
    TeeKind,
)
from fhirtis.clinical.ivig import compute_exposure
from fhirtis.clinical.policy import EnzymeChange, EnzymeNormalBaseline, Policy, Population
from fhirtis.clinical.population import decide_population
from fhirtis.clinical.thrombosis import associate_events
from fhirtis.clinical.tis import AssessmentValues, compute_tis
from fhirtis.clinical.weight import plausible_heights, plausible_weights
from tests.clinical.helpers import av, mv

D = Decimal
P = Policy()
DAY0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _at(day: int, hour: int) -> datetime:
    return DAY0.replace(hour=hour) + timedelta(days=day)


# -- §1 implausible weights and heights ------------------------------------------------------


def _w(day: int, kg: str) -> BodyWeight:
    return BodyWeight(f"Observation/w{day}-{kg}", _at(day, 9), D(kg))


@pytest.mark.parametrize(
    ("kg", "kept"),
    [("0.5", True), ("0.49", False), ("350", True), ("350.01", False)],
)
def test_weight_plausible_range_is_inclusive(kg: str, kept: bool) -> None:
    # §1: "A weight outside 0.5–350 kg … is implausible": 0.5 and 350 themselves are plausible
    usable, notes = plausible_weights([_w(0, kg)], P)
    assert (len(usable) == 1) is kept
    assert [n.code for n, _ in notes] == ([] if kept else ["weight-implausible"])


@pytest.mark.parametrize(
    ("cm", "kept"),
    [("30", True), ("29.9", False), ("250", True), ("250.1", False)],
)
def test_height_plausible_range_is_inclusive(cm: str, kept: bool) -> None:
    # §1: "a height outside 30–250 cm … is implausible"
    usable, notes = plausible_heights([BodyHeight("Observation/h", DAY0, D(cm))], P)
    assert (len(usable) == 1) is kept
    assert [n.code for n, _ in notes] == ([] if kept else ["height-implausible"])


@pytest.mark.parametrize(
    ("kg", "kept"),
    [
        ("100", True),  # |100 − 80| / 80 = 25 %: not more than 25 %
        ("100.01", False),  # 20.01 / 80 = 25.0125 % > 25 %
        ("60", True),  # |60 − 80| / 80 = 25 % (a loss)
        ("59.99", False),  # 20.01 / 80 = 25.0125 %
    ],
)
def test_weight_jump_edge_within_14_days(kg: str, kept: bool) -> None:
    # §1: "a weight that differs from the previous one within 14 days by more than 25%"
    usable, notes = plausible_weights([_w(0, "80"), _w(14, kg)], P)
    assert [w.kg for w in usable] == ([D(80), D(kg)] if kept else [D(80)])
    assert [n.code for n, _ in notes] == ([] if kept else ["weight-implausible"])


def test_weight_jump_is_not_checked_after_14_days() -> None:
    # 80 → 120 kg is +50 %, but 15 calendar days apart: not "within 14 days", so kept
    usable, notes = plausible_weights([_w(0, "80"), _w(15, "120")], P)
    assert [w.kg for w in usable] == [D(80), D(120)]
    assert notes == []


def test_implausible_weight_is_never_used_for_dose_or_rate() -> None:
    # 70 kg on day −2, then a typo of 700 kg on day −1 (outside 0.5–350): the cycle on day 0
    # uses 70 kg. 140 g / 70 kg = 2 g/kg; 300 mL/h × 100 mg/mL / (60 × 70) = 30000/4200
    # = 7.142857… mg/kg/min
    admin = IvigAdministration(
        source="MedicationAdministration/a",
        start=FhirTime.of(_at(0, 9)),
        dose_g=D(140),
        rate_ml_per_h=D(300),
        concentration_mg_per_ml=D(100),
    )
    exposure = compute_exposure(
        [admin], [_w(-2, "70"), _w(-1, "700")], [], PatientFacts(sex=Sex.MALE), P
    )
    (cycle,) = exposure.cycles
    assert cycle.dosing_weight.kg == D(70)
    assert cycle.g_per_kg == D(2)
    assert cycle.max_rate_mg_kg_min is not None
    assert cycle.max_rate_mg_kg_min.quantize(D("0.01")) == D("7.14")
    assert any(n.code == "weight-implausible" for n in cycle.dosing_weight.notes)


# -- §2.5 split visits -----------------------------------------------------------------------


@pytest.mark.parametrize(("days", "assessments"), [(7, 1), (8, 2)])
def test_split_visit_edge_is_the_assessment_window(days: int, assessments: int) -> None:
    # §2.5: "A pga and an mmt8 on different days within the window of each other are one
    # assessment … dated at the earlier anchor" (window ±7 days, inclusive)
    d0 = date(2024, 1, 10)
    values = [mv("pga", 6, d0), mv("mmt8-150", 100, d0 + timedelta(days=days))]
    grouping = group_assessments(values, P)
    assert len(grouping.assessments) == assessments
    assert grouping.assessments[0].day == d0
    if assessments == 1:
        assert set(grouping.assessments[0].values) == {Measure.PGA, Measure.MMT8}


# -- §5.3 "early" for a date-only onset --------------------------------------------------------


def _infusion(day: int, start_hour: int, end_hour: int) -> IvigAdministration:
    return IvigAdministration(
        source=f"MedicationAdministration/i{day}",
        start=FhirTime.of(_at(day, start_hour)),
        end=FhirTime.of(_at(day, end_hour)),
        dose_g=D(70),
        rate_mg_per_h=60 * D(140),
    )


def _associate(onset: FhirTime, admins: list[IvigAdministration]) -> bool | None:
    exposure = compute_exposure(admins, [_w(-1, "70")], [], PatientFacts(), P)
    ev = TeeEvent(TeeKind.DVT, "Condition/dvt", onset)
    (assoc,), _, _ = associate_events([ev], exposure, P)
    return assoc.early


def test_date_only_onset_is_early_when_every_instant_qualifies_by_some_administration() -> None:
    # §5.3: an onset is early when it is after the start of an administration and no more than
    # 24 h after its end; a date-only onset is early "only if every instant of that day
    # qualifies". Day 1 (UTC), 00:00–24:00:
    #   infusion day 0 09:00–12:00 → instants from day 0 09:00 to day 1 12:00 qualify;
    #   infusion day 1 11:00–13:00 → instants from day 1 11:00 to day 2 13:00 qualify.
    # 00:00–12:00 qualify by the first, 11:00–24:00 by the second: every instant does → True.
    onset = FhirTime(_at(1, 0).date())
    assert _associate(onset, [_infusion(0, 9, 12), _infusion(1, 11, 13)]) is True
    # with the second infusion starting at 13:00 instead, 12:00–13:00 of day 1 qualifies by
    # neither: only part of the day does → unknown
    assert _associate(onset, [_infusion(0, 9, 12), _infusion(1, 13, 14)]) is None


# -- §1 most abnormal enzyme and §2.1 enzyme normal at baseline ----------------------------------


def test_enzyme_equal_to_uln_at_baseline_is_normal() -> None:
    # §2.1: "An enzyme normal at baseline (≤ ULN)": CK 200 with ULN 200 is normal.
    base, follow = av(ck=(200, 200)), av(ck=(100, 200))
    # default enzyme_normal_baseline=score: (200 − 100) / 200 × 100 = 50 % (> 40) → 7.5
    scored = compute_tis(base, follow, Population.ADULT, P).measure(Measure.ENZYME)
    assert (scored.percent_improvement, scored.score) == (50, D("7.5"))
    # no_credit: scores 0
    no_credit = Policy(enzyme_normal_baseline=EnzymeNormalBaseline.NO_CREDIT)
    assert compute_tis(base, follow, Population.ADULT, no_credit).measure(Measure.ENZYME).score == 0
    # above_uln: "only defined when baseline > ULN": 200 is not > 200 → missing, with the reason
    above = Policy(enzyme_change=EnzymeChange.ABOVE_ULN)
    m = compute_tis(base, follow, Population.ADULT, above).measure(Measure.ENZYME)
    assert m.score is None and m.reason is not None
    assert m.reason.code == "enzyme-change-undefined"


def test_enzyme_without_uln_is_left_out_of_the_choice_and_said() -> None:
    # §1: "When several are measured, an enzyme without a ULN cannot be ranked: it is left out
    # of the choice, and the result says so." CK 5000 (no ULN) beside aldolase 16 (ULN 8):
    # aldolase is chosen (16/8 = 2), and the result names CK.
    base = av(aldolase=(16, 8))
    base = AssessmentValues(
        base.values, {**base.enzymes, Instrument.CK: mv("ck", 5000, source="Observation/ck")}
    )
    follow = av(aldolase=(12, 8))  # (16 − 12) / 16 = 25 % → band >15–25 → 5
    r = compute_tis(base, follow, Population.ADULT, P)
    m = r.measure(Measure.ENZYME)
    assert (m.instrument, m.percent_improvement, m.score) == (Instrument.ALDOLASE, 25, D(5))
    assert any(n.code == "enzyme-uln-unknown" and n.source == "Observation/ck" for n in r.notes)


def test_several_enzymes_none_with_uln_leave_the_enzyme_missing() -> None:
    base = AssessmentValues({}, {Instrument.CK: mv("ck", 5000), Instrument.LDH: mv("ldh", 400)})
    follow = AssessmentValues({}, {Instrument.CK: mv("ck", 1000), Instrument.LDH: mv("ldh", 300)})
    r = compute_tis(base, follow, Population.ADULT, P)
    m = r.measure(Measure.ENZYME)
    assert m.score is None and m.reason is not None and m.reason.code == "enzyme-uln-unknown"
    assert Measure.ENZYME in r.missing_measures and r.tis is None


# -- §5.3 an event on the first IVIG day, before the infusion began -------------------------------


def test_onset_hours_before_the_first_infusion_on_its_day_is_history_not_an_event() -> None:
    # §5.3: "An event before any IVIG is a risk factor (history), not an event" — the first
    # infusion starts day 0 at 09:00; an MI at 07:00 that day is before it.
    exposure = compute_exposure([_infusion(0, 9, 12)], [_w(-1, "70")], [], PatientFacts(), P)
    mi = TeeEvent(TeeKind.MI, "Condition/mi", FhirTime.of(_at(0, 7)))
    associated, history, other = associate_events([mi], exposure, P)
    assert (associated, history, other) == ((), (mi,), ())


@pytest.mark.parametrize(
    ("first", "last", "population", "reason"),
    [
        # onset 2020-06-01; born in 2010 → 9 or 10 at onset: surely < 18 → juvenile
        (date(2010, 1, 1), date(2010, 12, 31), Population.JUVENILE, "onset-age"),
        # born in 1990 → 29 or 30: surely ≥ 18 → adult
        (date(1990, 1, 1), date(1990, 12, 31), Population.ADULT, "onset-age"),
        # born in 2002 → 17 or 18: not known → adult criteria by default, said so
        (date(2002, 1, 1), date(2002, 12, 31), Population.ADULT, "adult-default"),
    ],
)
def test_onset_age_from_a_birth_date_recorded_to_the_year(
    first: date, last: date, population: Population, reason: str
) -> None:
    decision = decide_population(
        P, birth_date=first, birth_date_latest=last, dm_onset=date(2020, 6, 1)
    )
    assert (decision.population, decision.reason) == (population, reason)
    if reason == "adult-default":
        assert [n.code for n in decision.notes] == ["onset-age-unknown"]
        assert "17–18" in decision.notes[0].message
