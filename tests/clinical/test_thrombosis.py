"""Thromboembolism (clinical spec §5): risk factors, maximum rate, findings, events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirtis.clinical.facts import (
    BodyHeight,
    BodyMassIndex,
    BodyWeight,
    FhirTime,
    Instrument,
    IvigAdministration,
    Measure,
    MeasureValue,
    PatientFacts,
    ResultStatus,
    RiskEvidence,
    RiskFactorKind,
    Sex,
    TeeEvent,
    TeeKind,
)
from fhirtis.clinical.ivig import Exposure, compute_exposure
from fhirtis.clinical.policy import Policy
from fhirtis.clinical.thrombosis import (
    RateFinding,
    RateLimit,
    RiskInputs,
    ThrombosisAssessment,
    applicable_max_rate,
    assess_thrombosis,
    risk_profile,
)

T = FhirTime.of

D = Decimal
DAY0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
PATIENT_SRC = "Patient/p1/_history/1"
YOUNG = PatientFacts(birth_date=date(1980, 6, 15), sex=Sex.FEMALE)
WEIGHT = BodyWeight("Observation/w", DAY0 - timedelta(days=1), D(70))
HEIGHT = BodyHeight("Observation/h", DAY0 - timedelta(days=100), D(170))  # BMI 24.2
PGA_LOW = MeasureValue(Measure.PGA, Instrument.VAS, D("4.5"), date(2024, 2, 28), "Observation/pga")


def at(day: int, hour: int = 9) -> datetime:
    return DAY0 + timedelta(days=day, hours=hour - 9)


def admin(day: int, rate: str = "140", hour: int = 9) -> IvigAdministration:
    """An administration of 35 g at a mass rate in mg/min (70 kg → rate/70 mg/kg/min)."""
    return IvigAdministration(
        source=f"MedicationAdministration/{day}",
        start=T(at(day, hour)),
        dose_g=D(35),
        rate_mg_per_h=60 * D(rate),
    )


def cycle(first_day: int, rate: str = "140", days: int = 4) -> list[IvigAdministration]:
    return [admin(first_day + i, rate) for i in range(days)]


def exposure(admins: list[IvigAdministration], policy: Policy | None = None) -> Exposure:
    return compute_exposure(admins, [WEIGHT], [HEIGHT], YOUNG, policy or Policy())


def assess(
    admins: list[IvigAdministration],
    *,
    as_of: datetime | None = None,
    policy: Policy | None = None,
    **kw: Any,
) -> ThrombosisAssessment:
    args: dict[str, Any] = {
        "patient": YOUNG,
        "patient_source": PATIENT_SRC,
        "evidence": [],
        "weights": [WEIGHT],
        "heights": [HEIGHT],
        "bmis": [],
        "pga": [PGA_LOW],
        "events": [],
    }
    args.update(kw)
    pol = policy or Policy()
    return assess_thrombosis(
        exposure=exposure(admins, pol),
        as_of=as_of or at(200),
        policy=pol,
        **args,
    )


def inputs(**kw: Any) -> RiskInputs:
    base: dict[str, Any] = {
        "patient": YOUNG,
        "patient_source": PATIENT_SRC,
        "weights": (WEIGHT,),
        "heights": (HEIGHT,),
        "pga": (PGA_LOW,),
    }
    base.update(kw)
    return RiskInputs(**base)


def kinds(a: ThrombosisAssessment) -> set[RiskFactorKind]:
    return {f.kind for f in a.risk_factors}


# --- maximum rate and findings ---------------------------------------------------------------


def test_no_risk_factor_exactly_4_is_not_above() -> None:
    a = assess([admin(0, "280")])  # 280 / 70 = 4.0 mg/kg/min
    assert a.risk_factors == ()
    assert a.current.unassessed == ()
    assert a.max_rate_now.limit_mg_kg_min == D(4) and not a.max_rate_now.with_risk
    assert a.rate_findings == ()
    assert a.notes == ()


def test_no_risk_factor_4_01_is_above() -> None:
    a = assess([admin(0, "280.7")])  # 280.7 / 70 = 4.01
    (f,) = a.rate_findings
    assert f.administration_source == "MedicationAdministration/0"
    assert (f.rate_mg_kg_min, f.limit_mg_kg_min, f.cycle_index) == (D("4.01"), D(4), 1)
    assert f.start == T(at(0))
    assert "no thrombosis risk factor" in f.limit.reason
    assert "4.01" in f.reason and "4 mg/kg/min" in f.reason


def test_ml_per_h_rate_at_the_worked_example_is_above() -> None:
    a10 = IvigAdministration(
        source="MA/x",
        start=T(at(0)),
        dose_g=D(140),
        rate_ml_per_h=D(300),
        concentration_mg_per_ml=D(100),
    )
    (f,) = assess([a10]).rate_findings
    assert f.rate_mg_kg_min.quantize(D("0.01")) == D("7.14")


def test_with_a_risk_factor_the_limit_is_3_3() -> None:
    htn = RiskEvidence(
        RiskFactorKind.CARDIOVASCULAR, "Condition/htn", start=date(2020, 1, 1), display="HTN"
    )
    # 231 / 70 = 3.3 exactly: not above; 232 / 70 = 3.314…: above
    a = assess([admin(0, "231"), admin(1, "232")], evidence=[htn])
    assert a.max_rate_now.limit_mg_kg_min == D("3.3") and a.max_rate_now.with_risk
    (f,) = a.rate_findings
    assert f.administration_source == "MedicationAdministration/1"
    assert f.limit_mg_kg_min == D("3.3")
    assert [x.kind for x in f.limit.factors] == [RiskFactorKind.CARDIOVASCULAR]
    assert f.limit.factors[0].evidence == ("Condition/htn",)
    assert "cardiovascular" in f.limit.reason
    assert kinds(a) == {RiskFactorKind.CARDIOVASCULAR}


def test_inactive_evidence_does_not_count() -> None:
    ended = RiskEvidence(
        RiskFactorKind.ESTROGEN, "MedicationStatement/e", date(2020, 1, 1), date(2024, 2, 1)
    )
    future = RiskEvidence(RiskFactorKind.CENTRAL_VENOUS_CATHETER, "Device/cvc", date(2024, 3, 3))
    a = assess([admin(0, "250"), admin(2, "250")], evidence=[ended, future], as_of=at(1))
    assert a.risk_factors == ()
    # the catheter is in from day 2: the day-2 administration (3.57) is above 3.3, day 0 is not
    (f,) = a.rate_findings
    assert f.administration_source == "MedicationAdministration/2"
    assert f.limit.factors[0].evidence == ("Device/cvc",)


def test_evidence_active_on_its_end_date() -> None:
    e = RiskEvidence(RiskFactorKind.IMMOBILISATION, "Condition/imm", None, date(2024, 3, 1))
    profile = risk_profile(at(0, hour=23), inputs(evidence=(e,)))
    assert [f.kind for f in profile.factors] == [RiskFactorKind.IMMOBILISATION]
    assert risk_profile(at(1), inputs(evidence=(e,))).factors == ()


def test_a_resolved_thrombosis_is_still_history() -> None:
    resolved = RiskEvidence(
        RiskFactorKind.THROMBOSIS_HISTORY, "Condition/old-pe", date(2019, 1, 1), date(2019, 6, 1)
    )
    (f,) = risk_profile(at(0), inputs(evidence=(resolved,))).factors
    assert f.kind is RiskFactorKind.THROMBOSIS_HISTORY and f.evidence == ("Condition/old-pe",)


def test_rate_unknown_is_not_checked_but_said() -> None:
    unknown = IvigAdministration(source="MA/u", start=T(at(0)), dose_g=D(70))
    a = assess([unknown])
    assert a.rate_findings == () and a.unchecked_administrations == ("MA/u",)
    assert {n.code for n in a.notes} == {"rate-not-checked"}


def test_unassessed_factors_are_named_in_the_4_limit_reason() -> None:
    a = assess([admin(0)], patient=PatientFacts(), weights=[], heights=[], pga=[])
    assert a.max_rate_now.limit_mg_kg_min == D(4)
    assert {u.kind for u in a.current.unassessed} == {
        RiskFactorKind.ADVANCED_AGE,
        RiskFactorKind.OBESITY,
        RiskFactorKind.INFLAMMATION,
    }
    assert "not assessable" in a.max_rate_now.reason
    assert {"age-unknown", "bmi-unknown", "pga-unknown"} <= {n.code for n in a.notes}


# --- computed risk factors -------------------------------------------------------------------


def test_advanced_age_from_the_birthday_on() -> None:
    old = PatientFacts(birth_date=date(1959, 3, 2), sex=Sex.MALE)  # 65 on 2024-03-02
    before = risk_profile(at(0), inputs(patient=old))
    assert before.factors == ()
    on = risk_profile(at(1), inputs(patient=old))
    (f,) = on.factors
    assert f.kind is RiskFactorKind.ADVANCED_AGE and f.evidence == (PATIENT_SRC,)
    assert "65" in f.detail
    # an administration on the birthday uses 3.3: 240 / 70 = 3.43
    a = assess([admin(0, "240"), admin(1, "240")], patient=old)
    assert [f.administration_source for f in a.rate_findings] == ["MedicationAdministration/1"]


def test_advanced_age_follows_policy() -> None:
    p = PatientFacts(birth_date=date(1964, 1, 1))
    assert risk_profile(at(0), inputs(patient=p), Policy(advanced_age_years=60)).factors != ()


@pytest.mark.parametrize(("value", "obese"), [("30", True), ("29.99", False), ("35.2", True)])
def test_obesity_from_recorded_bmi(value: str, obese: bool) -> None:
    bmi = BodyMassIndex("Observation/bmi", at(-1), D(value))
    profile = risk_profile(at(0), inputs(bmis=(bmi,)))
    assert (RiskFactorKind.OBESITY in {f.kind for f in profile.factors}) is obese
    if obese:
        assert profile.factors[0].evidence == ("Observation/bmi",)


def test_obesity_computed_from_weight_and_height_citing_both() -> None:
    w = BodyWeight("Observation/w95", at(-1), D(95))
    h = BodyHeight("Observation/h175", at(-400), D(175))  # 95 / 1.75² = 31.02
    old_bmi = BodyMassIndex("Observation/bmi-old", at(-300), D(25))
    profile = risk_profile(at(0), inputs(weights=(w,), heights=(h,), bmis=(old_bmi,)))
    (f,) = profile.factors
    assert f.kind is RiskFactorKind.OBESITY
    assert f.evidence == ("Observation/w95", "Observation/h175")
    assert "31.02" in f.detail and "computed" in f.detail


def test_computed_bmi_edge_and_newer_recorded_bmi_wins() -> None:
    w = BodyWeight("Observation/w", at(-10), D("86.7"))
    h = BodyHeight("Observation/h", at(-10), D(170))  # 86.7 / 2.89 = 30 exactly
    assert [f.kind for f in risk_profile(at(0), inputs(weights=(w,), heights=(h,))).factors] == [
        RiskFactorKind.OBESITY
    ]
    newer = BodyMassIndex("Observation/bmi", at(-2), D("29.5"))
    assert risk_profile(at(0), inputs(weights=(w,), heights=(h,), bmis=(newer,))).factors == ()


@pytest.mark.parametrize(("cm", "inflamed"), [("7", True), ("6.9", False), ("9.5", True)])
def test_poorly_controlled_inflammation(cm: str, inflamed: bool) -> None:
    pga = MeasureValue(Measure.PGA, Instrument.VAS, D(cm), date(2024, 2, 29), "Observation/pga7")
    profile = risk_profile(at(0), inputs(pga=(PGA_LOW, pga)))  # PGA_LOW is a day older
    assert (RiskFactorKind.INFLAMMATION in {f.kind for f in profile.factors}) is inflamed
    if inflamed:
        assert profile.factors[0].evidence == ("Observation/pga7",)


def test_inflammation_uses_the_latest_usable_vas_pga_at_or_before_the_time() -> None:
    high = MeasureValue(Measure.PGA, Instrument.VAS, D(8), date(2024, 2, 20), "Observation/hi")
    later_low = MeasureValue(Measure.PGA, Instrument.VAS, D(3), date(2024, 2, 27), "Observation/lo")
    void = MeasureValue(
        Measure.PGA,
        Instrument.VAS,
        D(9),
        date(2024, 2, 29),
        "Observation/void",
        status=ResultStatus.ENTERED_IN_ERROR,
    )
    likert = MeasureValue(Measure.PGA, Instrument.LIKERT, D(4), date(2024, 2, 29), "Observation/l")
    future = MeasureValue(Measure.PGA, Instrument.VAS, D(9), date(2024, 3, 5), "Observation/fut")
    pga = (high, later_low, void, likert, future)
    assert risk_profile(at(0), inputs(pga=pga)).factors == ()
    (f,) = risk_profile(at(4), inputs(pga=pga)).factors
    assert f.kind is RiskFactorKind.INFLAMMATION and f.evidence == ("Observation/fut",)


def test_history_of_thrombosis_before_the_time() -> None:
    old_dvt = TeeEvent(TeeKind.DVT, "Condition/dvt", T(at(-400)))
    (f,) = risk_profile(at(0), inputs(events=(old_dvt,))).factors
    assert f.kind is RiskFactorKind.THROMBOSIS_HISTORY and f.evidence == ("Condition/dvt",)


def test_applicable_max_rate_follows_policy() -> None:
    old_dvt = TeeEvent(TeeKind.PE, "Condition/pe", T(at(-400)))
    policy = Policy(max_rate_with_risk_mg_kg_min=D(2))
    limit = applicable_max_rate(risk_profile(at(0), inputs(events=(old_dvt,)), policy), policy)
    assert limit.limit_mg_kg_min == D(2) and limit.with_risk


# --- events ----------------------------------------------------------------------------------


def test_tee_5_days_after_the_last_administration_is_associated_not_early() -> None:
    pe = TeeEvent(TeeKind.PE, "Condition/pe", T(at(3 + 5, hour=12)))
    a = assess(cycle(0), events=[pe])
    (ev,) = a.associated_events
    assert ev.event is pe and ev.cycle_indexes == (1,)
    assert ev.suspects == tuple(f"MedicationAdministration/{d}" for d in range(4))
    assert not ev.early and ev.early_after == () and not ev.arterial
    assert ev.hours_after_last_start == D(123)  # 5 days + 3 h after day 3 09:00
    assert a.history_events == () and a.unassociated_events == ()


def test_tee_on_day_14_is_associated_15_is_not() -> None:
    d14 = TeeEvent(TeeKind.DVT, "Condition/d14", T(at(3 + 14, hour=23)))
    d15 = TeeEvent(TeeKind.DVT, "Condition/d15", T(at(3 + 15, hour=0)))
    a = assess(cycle(0), events=[d14, d15])
    assert [e.event.source for e in a.associated_events] == ["Condition/d14"]
    assert a.unassociated_events == (d15,)
    assert "tee-not-associated" in {n.code for n in a.notes}
    # with a 15-day window, both
    b = assess(cycle(0), events=[d14, d15], policy=Policy(tee_window_days=15))
    assert len(b.associated_events) == 2


def test_window_counts_from_the_last_administration_end() -> None:
    last = IvigAdministration(
        "MA/last", T(at(3)), end=T(at(4, hour=2)), dose_g=D(35), rate_mg_per_h=60 * D(140)
    )
    ev = TeeEvent(TeeKind.DVT, "Condition/d", T(at(18)))  # 14 days after day 4
    a = assess([*cycle(0, days=3), last], events=[ev])
    assert len(a.associated_events) == 1


def test_onset_3_hours_after_an_administration_is_early() -> None:
    mi = TeeEvent(TeeKind.MI, "Condition/mi", T(at(2, hour=12)))
    a = assess(cycle(0), events=[mi])
    (ev,) = a.associated_events
    assert ev.early and ev.arterial
    # day 1 09:00 is 27 h before: only day 2 (3 h) is within 24 h
    assert ev.early_after == ("MedicationAdministration/2",)
    assert ev.hours_after_last_start == D(3)
    assert "early" in ev.reason


def test_onset_exactly_24_hours_after_is_early_25_is_not() -> None:
    e24 = TeeEvent(TeeKind.TIA, "Condition/24", T(at(4, hour=9)))
    e25 = TeeEvent(TeeKind.TIA, "Condition/25", T(at(4, hour=10)))
    a = assess(cycle(0), events=[e24, e25])
    assert [e.early for e in a.associated_events] == [True, False]


def test_event_before_any_ivig_is_history_only() -> None:
    dvt = TeeEvent(TeeKind.DVT, "Condition/dvt", T(at(-2)))
    a = assess(cycle(0, "240"), events=[dvt])  # 240 / 70 = 3.43
    assert a.history_events == (dvt,)
    assert a.associated_events == () and a.unassociated_events == ()
    assert kinds(a) == {RiskFactorKind.THROMBOSIS_HISTORY}
    assert len(a.rate_findings) == 4
    assert all(f.limit_mg_kg_min == D("3.3") for f in a.rate_findings)


def test_event_with_no_ivig_at_all_is_history() -> None:
    dvt = TeeEvent(TeeKind.DVT, "Condition/dvt", T(at(-2)))
    a = assess([], events=[dvt])
    assert a.history_events == (dvt,) and a.max_rate_now.limit_mg_kg_min == D("3.3")


def test_dvt_during_cycle_2_makes_cycle_3_use_the_3_3_limit() -> None:
    # 245 / 70 = 3.5 mg/kg/min throughout: fine under 4, above 3.3
    admins = cycle(0, "245") + cycle(28, "245") + cycle(56, "245")
    dvt = TeeEvent(TeeKind.DVT, "Condition/dvt", T(at(31, hour=20)))  # after cycle 2's last start
    a = assess(admins, events=[dvt])
    (ev,) = a.associated_events
    assert ev.cycle_indexes == (2,) and ev.early  # 11 h after day 31 09:00
    assert ev.suspects == tuple(f"MedicationAdministration/{d}" for d in range(28, 32))
    assert {f.cycle_index for f in a.rate_findings} == {3}
    assert len(a.rate_findings) == 4
    for f in a.rate_findings:
        assert f.limit_mg_kg_min == D("3.3")
        assert f.limit.factors[0].kind is RiskFactorKind.THROMBOSIS_HISTORY
        assert f.limit.factors[0].evidence == ("Condition/dvt",)
    assert kinds(a) == {RiskFactorKind.THROMBOSIS_HISTORY}


def test_history_counts_from_onset_within_the_same_cycle() -> None:
    admins = cycle(0, "245")
    dvt = TeeEvent(TeeKind.DVT, "Condition/dvt", T(at(1, hour=12)))
    a = assess(admins, events=[dvt])
    assert [f.administration_source for f in a.rate_findings] == [
        "MedicationAdministration/2",
        "MedicationAdministration/3",
    ]


def test_event_associated_with_two_overlapping_windows() -> None:
    admins = cycle(0, days=2) + cycle(10, days=2)
    ev = TeeEvent(TeeKind.DVT, "Condition/d", T(at(12)))
    (assoc,) = assess(admins, events=[ev]).associated_events
    assert assoc.cycle_indexes == (1, 2)
    assert len(assoc.suspects) == 4


def test_current_profile_as_of() -> None:
    bmi = BodyMassIndex("Observation/bmi", at(100), D(32))
    a = assess(cycle(0), bmis=[bmi], as_of=at(99))
    assert a.risk_factors == () and a.max_rate_now.limit_mg_kg_min == D(4)
    b = assess(cycle(0), bmis=[bmi], as_of=at(100))
    assert kinds(b) == {RiskFactorKind.OBESITY} and b.max_rate_now.limit_mg_kg_min == D("3.3")
    assert b.as_of == at(100) and b.current.at == T(at(100))
    assert b.policy == Policy().as_record()


@pytest.mark.parametrize(
    "onset",
    [
        T(at(10, hour=8)),  # the evaluation's time is the onset itself (its latest record)
        T(date(2024, 3, 11)),  # date-only, on the evaluation's day (DAY0 + 10)
    ],
)
def test_a_thrombosis_counts_now_from_its_onset_on(onset: FhirTime) -> None:
    """Spec §5.3: an event is a history risk factor "from its onset on". At the evaluation's
    time (as_of, or a CDS call's now) an onset at that instant, or on that day with no time, has
    happened: the limit now is 3.3 mg/kg/min. It was 4 (history counted only strictly before)."""
    dvt = TeeEvent(TeeKind.DVT, "Condition/dvt", onset)
    a = assess(cycle(0), events=[dvt], as_of=at(10, hour=8))
    assert kinds(a) == {RiskFactorKind.THROMBOSIS_HISTORY}
    assert a.max_rate_now.limit_mg_kg_min == D("3.3")
    later = TeeEvent(TeeKind.DVT, "Condition/dvt", T(at(10, hour=9)))
    assert kinds(assess(cycle(0), events=[later], as_of=at(10, hour=8))) == set()


def test_an_administration_on_the_onset_day_keeps_the_benefit_of_the_doubt() -> None:
    """For an administration the rule stays "surely before its start": a date-only onset on
    its day may be later that day, so it is no finding against 3.3 (spec §5.3 "for later
    cycles"; a finding says the limit was exceeded, which is not known)."""
    dvt = TeeEvent(TeeKind.DVT, "Condition/dvt", T(date(2024, 3, 2)))  # DAY0 + 1
    a = assess(cycle(0, "245"), events=[dvt])
    assert [f.administration_source for f in a.rate_findings] == [
        "MedicationAdministration/2",
        "MedicationAdministration/3",
    ]


@pytest.mark.parametrize("site_max", ["3", "2.5"])
def test_a_risk_factor_never_raises_a_site_lowered_limit(site_max: str) -> None:
    """Spec §5.2: 4 mg/kg/min, "with any thrombosis risk factor, not more than 3.3"; a site may
    lower the limits. With the maximum lowered to 3 (below 3.3), a risk factor leaves it at 3:
    the lower of the two applies. It became 3.3 (raised by the risk factor)."""
    policy = Policy(max_rate_mg_kg_min=D(site_max))
    old_dvt = TeeEvent(TeeKind.PE, "Condition/pe", T(at(-400)))
    limit = applicable_max_rate(risk_profile(at(0), inputs(events=(old_dvt,)), policy), policy)
    assert limit.limit_mg_kg_min == D(site_max) and limit.with_risk
    assert limit.reason.startswith(f"{site_max} mg/kg/min applicable")
    a = assess(cycle(0, "224"), events=[old_dvt], policy=policy)  # 3.2 mg/kg/min
    assert len(a.rate_findings) == 4


def test_policy_mismatch_is_said() -> None:
    a = assess_thrombosis(
        patient=YOUNG,
        patient_source=PATIENT_SRC,
        evidence=[],
        weights=[WEIGHT],
        heights=[HEIGHT],
        bmis=[],
        pga=[PGA_LOW],
        exposure=exposure(cycle(0), Policy(cycle_gap_days=3)),
        events=[],
        as_of=at(10),
        policy=Policy(),
    )
    assert "policy-mismatch" in {n.code for n in a.notes}


# --- properties ------------------------------------------------------------------------------


@given(st.lists(st.integers(100, 400), min_size=1, max_size=12), st.booleans())
def test_findings_are_exactly_the_administrations_above_their_limit(
    rates: list[int], risk: bool
) -> None:
    admins = [admin(i * 3, str(r)) for i, r in enumerate(rates)]
    evidence = [RiskEvidence(RiskFactorKind.MALIGNANCY, "Condition/ca")] if risk else []
    a = assess(admins, evidence=evidence)
    limit = D("3.3") if risk else D(4)
    expected = [x.source for x, r in zip(admins, rates, strict=True) if D(r) / D(70) > limit]
    assert [f.administration_source for f in a.rate_findings] == expected


@given(st.integers(-60, 120), st.integers(0, 23))
def test_every_event_lands_in_exactly_one_list(day: int, hour: int) -> None:
    ev = TeeEvent(TeeKind.DVT, "Condition/e", T(at(day, hour=hour)))
    a = assess(cycle(0) + cycle(28), events=[ev])
    lists = [
        [x.event for x in a.associated_events],
        list(a.history_events),
        list(a.unassociated_events),
    ]
    assert sum(len(x) for x in lists) == 1
    assert (a.history_events == (ev,)) is (ev.onset.instant < at(0))


# -- clinical spec §5.3 (revision 2): early from the end; date-only onsets; calendar dates ----


def _infusion(day: int, start_hour: int, end_day: int, end_hour: int) -> IvigAdministration:
    return IvigAdministration(
        source=f"MedicationAdministration/i{day}",
        start=T(at(day, start_hour)),
        end=T(at(end_day, end_hour)),
        dose_g=D(70),
        rate_mg_per_h=60 * D(140),
    )


def test_early_is_measured_from_the_end_of_the_administration() -> None:
    # 31 h after the start but 23 h after the end: early
    onset = TeeEvent(TeeKind.MI, "Condition/mi", T(at(1, hour=16)))
    (ev,) = assess([_infusion(0, 9, 0, 17)], events=[onset]).associated_events
    assert ev.early is True
    late = TeeEvent(TeeKind.MI, "Condition/mi2", T(at(1, hour=18)))  # 25 h after the end
    (ev2,) = assess([_infusion(0, 9, 0, 17)], events=[late]).associated_events
    assert ev2.early is False


def test_date_only_onset_early_only_when_the_whole_day_qualifies() -> None:
    day1 = TeeEvent(TeeKind.DVT, "Condition/d1", FhirTime(at(1).date()))
    # infusion day 0 09:00 to day 1 00:00: every instant of day 1 is within 24 h of its end
    (whole,) = assess([_infusion(0, 9, 1, 0)], events=[day1]).associated_events
    assert whole.early is True
    # infusion day 0 09:00–17:00: day 1 qualifies only up to 17:00: unknown, and said so
    a = assess([_infusion(0, 9, 0, 17)], events=[day1])
    (part,) = a.associated_events
    assert part.early is None and part.hours_after_last_start is None
    assert any(n.code == "tee-early-unknown" and n.source == "Condition/d1" for n in a.notes)
    # day 5: no instant qualifies
    day5 = TeeEvent(TeeKind.DVT, "Condition/d5", FhirTime(at(5).date()))
    (none,) = assess([_infusion(0, 9, 0, 17)], events=[day5]).associated_events
    assert none.early is False


def test_window_compares_calendar_dates_as_recorded() -> None:
    # an onset recorded on the 14th day after the last administration, late in its own
    # evening (the next day in UTC), is inside the window, both ends inclusive
    minus5 = timezone(timedelta(hours=-5))
    last_day = at(3).date() + timedelta(days=14)
    late_evening = datetime(last_day.year, last_day.month, last_day.day, 22, tzinfo=minus5)
    ev = TeeEvent(TeeKind.DVT, "Condition/late", T(late_evening))
    assert len(assess(cycle(0), events=[ev]).associated_events) == 1
    date_only_first_day = TeeEvent(TeeKind.DVT, "Condition/first", FhirTime(at(0).date()))
    (first,) = assess(cycle(0), events=[date_only_first_day]).associated_events
    assert first.suspects == ("MedicationAdministration/0",)  # may have started before it


@pytest.mark.parametrize(
    ("rate", "shown"),
    [("4.001", "4.001"), ("4.00001", "4.0001"), ("4.2", "4.2"), ("4.004", "4.004")],
)
def test_a_rate_finding_never_shows_the_rate_equal_to_the_maximum(rate: str, shown: str) -> None:
    """A rate just above the maximum (4.001 mg/kg/min beside 4) is shown with the places that
    tell them apart (up to 4, rounded away from the maximum), never as "rate 4 … is above the
    maximum 4"; a rate that 2 places tell apart keeps 2."""
    limit = RateLimit(T(DAY0), D(4), False, (), (), "4 mg/kg/min applicable: no risk factor")
    finding = RateFinding("MedicationAdministration/a1", T(DAY0), 1, D(rate), limit)
    assert finding.reason.startswith(f"rate {shown} mg/kg/min is above the maximum 4 mg/kg/min")


@pytest.mark.parametrize(
    ("first", "last", "factor", "unassessed"),
    [
        # DAY0 is 2024-03-01: born in 1950 → 73 or 74 years old, surely ≥ 65
        (date(1950, 1, 1), date(1950, 12, 31), True, False),
        # born in 1959 → 64 (birthday from 2 March on) or 65 (born 1 Jan–1 Mar): not known
        (date(1959, 1, 1), date(1959, 12, 31), False, True),
        # born in February 1959 → 65 whichever day: surely ≥ 65
        (date(1959, 2, 1), date(1959, 2, 28), True, False),
        # born in 1990 → 33 or 34: surely below 65
        (date(1990, 1, 1), date(1990, 12, 31), False, False),
    ],
)
def test_advanced_age_from_a_birth_date_recorded_to_the_year_or_month(
    first: date, last: date, factor: bool, unassessed: bool
) -> None:
    """A birthDate of "1950" or "1959-02" (valid FHIR dates) bounds the age: advanced age is a
    factor when the youngest the patient can be is ≥ 65, absent when the oldest is below, and
    not assessable (said so) only when the bounds straddle 65."""
    p = PatientFacts(birth_date=first, birth_date_latest=last)
    profile = risk_profile(at(0), inputs(patient=p))
    assert (RiskFactorKind.ADVANCED_AGE in {f.kind for f in profile.factors}) is factor
    assert (RiskFactorKind.ADVANCED_AGE in {u.kind for u in profile.unassessed}) is unassessed
    if unassessed:
        (u,) = (u for u in profile.unassessed if u.kind is RiskFactorKind.ADVANCED_AGE)
        assert "64–65" in u.reason
