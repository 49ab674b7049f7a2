"""IVIG exposure (clinical spec §4) with hand-worked numbers."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirtis.clinical.facts import (
    BodyHeight,
    BodyWeight,
    FhirTime,
    IvigAdministration,
    PatientFacts,
    Sex,
)
from fhirtis.clinical.ivig import (
    DECIMAL_CONTEXT,
    Exposure,
    compute_exposure,
    grams_given,
    group_cycles,
    ideal_body_weight,
    infusion_rate_mg_kg_min,
)
from fhirtis.clinical.notes import Severity
from fhirtis.clinical.policy import DosingWeightBasis, Policy

T = FhirTime.of

D = Decimal
DAY0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
MALE = PatientFacts(sex=Sex.MALE)
FEMALE = PatientFacts(sex=Sex.FEMALE)
TEN_PERCENT = D(100)  # mg/mL
FIVE_PERCENT = D(50)


def at(day: int, hour: int = 9) -> datetime:
    return DAY0 + timedelta(days=day, hours=hour - 9)


def admin(day: int, *, n: str | None = None, **kw: Any) -> IvigAdministration:
    return IvigAdministration(source=n or f"MedicationAdministration/{day}", start=T(at(day)), **kw)


def weight(kg: str, day: int = -1) -> BodyWeight:
    return BodyWeight(source=f"Observation/w{day}", when=at(day), kg=D(kg))


def height(cm: str, day: int = -100) -> BodyHeight:
    return BodyHeight(source=f"Observation/h{day}", when=at(day), cm=D(cm))


def exposure(
    admins: list[IvigAdministration],
    weights: list[BodyWeight] | None = None,
    heights: list[BodyHeight] | None = None,
    patient: PatientFacts = MALE,
    policy: Policy | None = None,
) -> Exposure:
    return compute_exposure(
        admins,
        [weight("70")] if weights is None else weights,
        heights or [],
        patient,
        policy or Policy(),
    )


def codes(notes: object) -> set[str]:
    return {n.code for n in notes}  # type: ignore[attr-defined]


def close(value: Decimal | None, exact: Fraction) -> bool:
    assert value is not None
    return abs(Fraction(value) - exact) < Fraction(1, 10**20)


# --- rates -----------------------------------------------------------------------------------


def test_worked_example_ten_percent_70_kg_300_ml_per_h() -> None:
    a = admin(0, rate_ml_per_h=D(300), concentration_mg_per_ml=TEN_PERCENT, dose_g=D(140))
    rate, notes = infusion_rate_mg_kg_min(a, D(70))
    assert notes == ()
    # 300 × 100 / (60 × 70) = 30000 / 4200 = 50/7
    with localcontext(DECIMAL_CONTEXT):
        assert rate == D(50) / D(7)
    assert close(rate, Fraction(50, 7))
    assert rate is not None and rate.quantize(D("0.01")) == D("7.14")
    # and through the whole exposure
    e = exposure([a])
    assert e.cycles[0].max_rate_mg_kg_min == rate
    assert e.administrations[0].rate_mg_kg_min == rate


def test_rate_independent_of_callers_decimal_context() -> None:
    a = admin(0, rate_ml_per_h=D(300), concentration_mg_per_ml=TEN_PERCENT, dose_g=D(140))
    with localcontext() as ctx:
        ctx.prec = 4
        rate = exposure([a]).administrations[0].rate_mg_kg_min
    assert close(rate, Fraction(50, 7))


@pytest.mark.parametrize(
    ("ml_per_h", "conc", "kg", "expected"),
    [
        ("168", TEN_PERCENT, "70", D(4)),  # 168 × 100 / 4200 = 4
        ("144", FIVE_PERCENT, "60", D(2)),  # 144 × 50 / 3600 = 2
        ("240", FIVE_PERCENT, "50", D(4)),  # 240 × 50 / 3000 = 4
        ("120", TEN_PERCENT, "80", D("2.5")),  # 12000 / 4800 = 2.5
    ],
)
def test_volume_rate(ml_per_h: str, conc: Decimal, kg: str, expected: Decimal) -> None:
    a = admin(0, rate_ml_per_h=D(ml_per_h), concentration_mg_per_ml=conc)
    assert infusion_rate_mg_kg_min(a, D(kg)) == (expected, ())


def test_mass_rate() -> None:
    a = admin(0, rate_mg_per_h=60 * D(280))
    assert infusion_rate_mg_kg_min(a, D(70)) == (D(4), ())
    rate, _ = infusion_rate_mg_kg_min(admin(0, rate_mg_per_h=60 * D("280.7")), D(70))
    assert rate == D("4.01")


def test_mass_and_volume_rate_disagree_uses_mass() -> None:
    a = admin(
        0, rate_mg_per_h=60 * D(280), rate_ml_per_h=D(300), concentration_mg_per_ml=TEN_PERCENT
    )
    rate, notes = infusion_rate_mg_kg_min(a, D(70))
    assert rate == D(4)
    assert codes(notes) == {"rate-disagrees"}


def test_volume_rate_without_concentration_is_unknown() -> None:
    rate, notes = infusion_rate_mg_kg_min(admin(0, rate_ml_per_h=D(300)), D(70))
    assert rate is None
    assert codes(notes) == {"rate-concentration-unknown"}


def test_no_rate_and_no_weight() -> None:
    rate, notes = infusion_rate_mg_kg_min(admin(0), D(70))
    assert rate is None and codes(notes) == {"rate-unknown"}
    rate, notes = infusion_rate_mg_kg_min(admin(0, rate_mg_per_h=60 * D(280)), None)
    assert rate is None and codes(notes) == {"rate-weight-unknown"}


# --- grams -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "grams"),
    [
        ({"dose_g": D(35)}, D(35)),
        ({"dose_ml": D(700), "concentration_mg_per_ml": TEN_PERCENT}, D(70)),  # 700 × 100 / 1000
        ({"dose_ml": D(500), "concentration_mg_per_ml": FIVE_PERCENT}, D(25)),  # 500 × 50 / 1000
        ({"dose_ml": D("350.5"), "concentration_mg_per_ml": TEN_PERCENT}, D("35.05")),
    ],
)
def test_grams_given(kw: dict[str, Any], grams: Decimal) -> None:
    assert grams_given(admin(0, **kw)) == (grams, ())


def test_dose_mass_wins_over_disagreeing_volume() -> None:
    g, notes = grams_given(admin(0, dose_g=D(35), dose_ml=D(300), concentration_mg_per_ml=D(100)))
    assert g == D(35)
    assert codes(notes) == {"dose-disagrees"}


def test_unknown_concentration_leaves_grams_unknown_never_assumed() -> None:
    a = admin(0, dose_ml=D(700))
    g, notes = grams_given(a)
    assert g is None
    assert codes(notes) == {"concentration-unknown"}
    assert notes[0].severity is Severity.MISSING and notes[0].source == a.source

    e = exposure([admin(0, dose_g=D(70)), admin(1, dose_ml=D(700))])
    cycle = e.cycles[0]
    assert cycle.grams is None and cycle.g_per_kg is None
    assert cycle.grams_known == D(70)
    assert "cycle-grams-unknown" in codes(cycle.notes)
    assert e.cumulative_grams is None and e.grams_partial
    assert e.cumulative_grams_known == D(70)
    assert e.cumulative_g_per_kg is None and e.g_per_kg_partial
    assert {"cumulative-grams-partial", "cumulative-g-per-kg-partial"} <= codes(e.notes)
    assert "concentration-unknown" in codes(e.all_notes())


def test_no_dose_and_implausible_dose() -> None:
    assert codes(grams_given(admin(0))[1]) == {"dose-unknown"}
    g, notes = grams_given(admin(0, dose_g=D(-1)))
    assert g is None and codes(notes) == {"dose-implausible", "dose-unknown"}


# --- cycles ----------------------------------------------------------------------------------


def test_exactly_seven_days_apart_is_same_cycle() -> None:
    cycles = group_cycles([admin(7), admin(0)])
    assert [[a.start for a in c] for c in cycles] == [[T(at(0)), T(at(7))]]


def test_eight_days_apart_is_a_new_cycle() -> None:
    cycles = group_cycles([admin(0), admin(8)])
    assert len(cycles) == 2


def test_gap_is_measured_from_the_previous_administration_not_the_cycle_start() -> None:
    cycles = group_cycles([admin(0), admin(5), admin(12)])
    assert len(cycles) == 1  # 12 − 5 = 7


def test_gap_uses_calendar_days() -> None:
    late = IvigAdministration(source="late", start=T(at(7, hour=23)))
    assert len(group_cycles([admin(0), late])) == 1


def test_gap_follows_policy() -> None:
    assert len(group_cycles([admin(0), admin(8)], Policy(cycle_gap_days=10))) == 1


def test_cycle_fields_and_in_progress_marked() -> None:
    admins = [
        admin(d, dose_g=D(28), rate_mg_per_h=60 * D(r))
        for d, r in [(0, "140"), (1, "210"), (2, "280"), (3, "280")]
    ]
    admins.append(admin(4, dose_g=D(28), rate_mg_per_h=60 * D(210), in_progress=True))
    e = exposure(admins)
    (c,) = e.cycles
    assert (c.index, c.start, c.last_start, c.end) == (1, T(at(0)), T(at(4)), T(at(4)))
    assert (c.administration_count, c.in_progress_count) == (5, 1)
    assert c.grams == D(140) and c.g_per_kg == D(2)
    assert c.dosing_weight.kg == D(70) and c.dosing_weight.basis is DosingWeightBasis.ACTUAL
    assert c.dosing_weight.weight_source == "Observation/w-1"
    assert c.max_rate_mg_kg_min == D(4) and c.rate_unknown_count == 0
    assert c.span_days == 5 and c.days_since_previous is None
    assert c.notes == ()
    assert "in-progress" in codes(e.administrations[-1].notes)
    assert e.policy == Policy().as_record()


def test_cycle_end_is_the_latest_administration_end() -> None:
    a = IvigAdministration(source="a", start=T(at(0)), end=T(at(0, hour=14)), dose_g=D(70))
    b = IvigAdministration(source="b", start=T(at(1)), end=T(at(1, hour=13)), dose_g=D(70))
    assert exposure([b, a]).cycles[0].end == T(at(1, hour=13))


def test_max_rate_partial_when_some_rates_unknown() -> None:
    e = exposure([admin(0, dose_g=D(70), rate_mg_per_h=60 * D(140)), admin(1, dose_g=D(70))])
    c = e.cycles[0]
    assert c.max_rate_mg_kg_min == D(2) and c.rate_unknown_count == 1
    assert "cycle-max-rate-partial" in codes(c.notes)


# --- dosing weight ---------------------------------------------------------------------------


def devine(base: Fraction, cm: int) -> Fraction:
    return base + Fraction(23, 10) * (Fraction(cm) / Fraction(254, 100) - 60)


def test_devine_male_180_cm() -> None:
    ideal = ideal_body_weight(D(180), Sex.MALE)
    # 50 + 2.3 × (180 / 2.54 − 60) = 50 + 2.3 × 10.866… = 74.992…
    assert close(ideal, devine(Fraction(50), 180))
    assert ideal.quantize(D("0.01")) == D("74.99")


def test_devine_female_165_cm_and_edge() -> None:
    ideal = ideal_body_weight(D(165), Sex.FEMALE)
    assert close(ideal, devine(Fraction(91, 2), 165))
    assert ideal.quantize(D("0.01")) == D("56.91")
    assert ideal_body_weight(D("152.4"), Sex.MALE) == D(50)
    assert ideal_body_weight(D("152.4"), Sex.FEMALE) == D("45.5")
    with pytest.raises(ValueError):
        ideal_body_weight(D("152.3"), Sex.MALE)
    with pytest.raises(ValueError):
        ideal_body_weight(D(170), Sex.UNKNOWN)


def test_ideal_basis_uses_devine_for_dose_and_rate() -> None:
    a = admin(0, dose_g=D(150), rate_mg_per_h=60 * D(300))
    e = exposure([a], [weight("90")], [height("180")], MALE, Policy(dosing_weight="ideal"))
    c = e.cycles[0]
    exact_ideal = devine(Fraction(50), 180)
    assert c.dosing_weight.basis is DosingWeightBasis.IDEAL
    assert close(c.dosing_weight.kg, exact_ideal)
    assert c.dosing_weight.actual_kg == D(90)
    assert c.dosing_weight.height_source == "Observation/h-100"
    assert c.dosing_weight.sources == ("Observation/h-100",)  # the weight plays no part
    assert close(c.g_per_kg, 150 / exact_ideal)
    assert close(c.max_rate_mg_kg_min, 300 / exact_ideal)


def test_adjusted_basis() -> None:
    e = exposure(
        [admin(0, dose_g=D(150))],
        [weight("90")],
        [height("180")],
        MALE,
        Policy(dosing_weight="adjusted"),
    )
    ideal = devine(Fraction(50), 180)
    adjusted = ideal + Fraction(2, 5) * (90 - ideal)  # 74.992… + 0.4 × 15.007… = 80.995…
    dw = e.cycles[0].dosing_weight
    assert dw.basis is DosingWeightBasis.ADJUSTED
    assert close(dw.kg, adjusted)
    assert dw.kg is not None and dw.kg.quantize(D("0.01")) == D("81.00")
    assert close(dw.ideal_kg, ideal)


def test_adjusted_below_ideal_is_warned_not_changed() -> None:
    e = exposure(
        [admin(0, dose_g=D(100))],
        [weight("50")],
        [height("152.4")],
        MALE,
        Policy(dosing_weight="adjusted"),
    )
    dw = e.cycles[0].dosing_weight
    assert dw.kg == D(50)  # 50 + 0.4 × (50 − 50)
    e = exposure(
        [admin(0, dose_g=D(100))],
        [weight("45")],
        [height("152.4")],
        MALE,
        Policy(dosing_weight="adjusted"),
    )
    dw = e.cycles[0].dosing_weight
    assert dw.kg == D(48)  # 50 + 0.4 × (45 − 50)
    assert "actual-below-ideal" in codes(dw.notes)


@pytest.mark.parametrize("basis", ["ideal", "adjusted"])
def test_height_below_152_4_cm_makes_basis_unavailable_no_fallback(basis: str) -> None:
    e = exposure(
        [admin(0, dose_g=D(140), rate_mg_per_h=60 * D(280))],
        [weight("70")],
        [height("152.3")],
        FEMALE,
        Policy(dosing_weight=basis),
    )
    c = e.cycles[0]
    assert c.dosing_weight.basis.value == basis
    assert c.dosing_weight.kg is None and not c.dosing_weight.available
    assert c.dosing_weight.actual_kg == D(70)  # known, but never silently used
    assert c.g_per_kg is None and c.max_rate_mg_kg_min is None
    (note,) = [n for n in c.dosing_weight.notes if n.code == "dosing-weight-basis-unavailable"]
    assert "152.4" in note.message and note.severity is Severity.MISSING
    assert c.grams == D(140)
    assert e.cumulative_g_per_kg is None


@pytest.mark.parametrize("sex", [Sex.UNKNOWN, Sex.OTHER])
def test_missing_sex_makes_ideal_unavailable(sex: Sex) -> None:
    e = exposure(
        [admin(0, dose_g=D(140))],
        [weight("70")],
        [height("170")],
        PatientFacts(sex=sex),
        Policy(dosing_weight="ideal"),
    )
    dw = e.cycles[0].dosing_weight
    assert dw.kg is None
    assert any("sex" in n.message for n in dw.notes)


def test_missing_height_makes_ideal_unavailable() -> None:
    e = exposure([admin(0, dose_g=D(140))], [weight("70")], [], MALE, Policy(dosing_weight="ideal"))
    assert e.cycles[0].dosing_weight.kg is None
    assert "dosing-weight-basis-unavailable" in codes(e.cycles[0].dosing_weight.notes)


def test_height_after_cycle_start_not_used_old_height_is() -> None:
    e = exposure(
        [admin(0, dose_g=D(140))],
        [weight("70")],
        [height("180", day=-3000), height("150", day=2)],
        MALE,
        Policy(dosing_weight="ideal"),
    )
    dw = e.cycles[0].dosing_weight
    assert dw.height_cm == D(180) and dw.height_when == at(-3000)
    assert dw.kg is not None


def test_stale_weight_at_and_past_the_edge() -> None:
    fresh = exposure([admin(0, dose_g=D(140))], [weight("70", day=-30)])
    assert fresh.cycles[0].dosing_weight.stale is False
    assert fresh.cycles[0].dosing_weight.weight_age_days == 30
    stale = exposure([admin(0, dose_g=D(140))], [weight("70", day=-31)])
    dw = stale.cycles[0].dosing_weight
    assert dw.stale is True and dw.kg == D(70)
    assert "stale-weight" in codes(dw.notes)
    assert stale.cycles[0].g_per_kg == D(2)


def test_latest_weight_on_or_before_cycle_start_is_used() -> None:
    weights = [weight("80", day=-10), weight("70", day=-2), weight("60", day=1)]
    assert exposure([admin(0, dose_g=D(140))], weights).cycles[0].dosing_weight.kg == D(70)
    same_day_later = BodyWeight(source="w-same", when=at(0, hour=15), kg=D(56))
    dw = exposure([admin(0, dose_g=D(140))], [*weights, same_day_later]).cycles[0].dosing_weight
    assert dw.kg == D(56) and dw.weight_source == "w-same"


def test_no_weight() -> None:
    e = exposure([admin(0, dose_g=D(140), rate_mg_per_h=60 * D(280))], [])
    c = e.cycles[0]
    assert c.dosing_weight.kg is None and "weight-missing" in codes(c.dosing_weight.notes)
    assert c.g_per_kg is None and c.grams == D(140)
    assert e.cumulative_grams == D(140) and e.cumulative_g_per_kg is None
    assert "rate-weight-unknown" in codes(e.administrations[0].notes)


def test_each_cycle_has_its_own_weight() -> None:
    e = exposure(
        [admin(0, dose_g=D(140)), admin(28, dose_g=D(140))],
        [weight("70", day=-1), weight("80", day=27)],
    )
    assert [c.dosing_weight.kg for c in e.cycles] == [D(70), D(80)]
    assert [c.g_per_kg for c in e.cycles] == [D(2), D("1.75")]
    assert e.cumulative_g_per_kg == D("3.75")


# --- cycle warnings --------------------------------------------------------------------------


def test_span_of_five_calendar_days_is_fine_six_is_warned() -> None:
    five = exposure([admin(d, dose_g=D(28)) for d in range(5)])  # days 0..4
    assert five.cycles[0].span_days == 5 and "cycle-span" not in codes(five.cycles[0].notes)
    six = exposure([admin(d, dose_g=D("23.33")) for d in (0, 5)])  # days 0 and 5
    assert six.cycles[0].span_days == 6 and "cycle-span" in codes(six.cycles[0].notes)


@pytest.mark.parametrize(
    ("grams", "warned"),
    [
        ("154", False),  # 2.2 g/kg: exactly 10% over
        ("154.07", True),  # 2.201 g/kg
        ("126", False),  # 1.8 g/kg: exactly 10% under
        ("125.93", True),  # 1.799 g/kg
        ("140", False),
    ],
)
def test_dose_off_target_edges(grams: str, warned: bool) -> None:
    c = exposure([admin(0, dose_g=D(grams))]).cycles[0]
    assert ("dose-off-target" in codes(c.notes)) is warned


def test_dose_target_follows_policy() -> None:
    c = exposure([admin(0, dose_g=D(70))], policy=Policy(target_dose_g_per_kg=D(1))).cycles[0]
    assert c.g_per_kg == D(1) and "dose-off-target" not in codes(c.notes)


@pytest.mark.parametrize(
    ("days", "warned"), [(21, False), (20, True), (28, False), (35, False), (36, True)]
)
def test_cycle_interval_edges(days: int, warned: bool) -> None:
    e = exposure([admin(0, dose_g=D(140)), admin(days, dose_g=D(140))])
    assert e.cycle_count == 2
    assert e.cycles[1].days_since_previous == days
    assert ("cycle-interval" in codes(e.cycles[1].notes)) is warned
    assert "cycle-interval" not in codes(e.cycles[0].notes)


# --- cumulative ------------------------------------------------------------------------------


def test_cumulative_dose() -> None:
    admins = [admin(d, dose_g=D(70)) for d in (0, 1, 28, 29)]
    admins += [admin(56, dose_ml=D(700), concentration_mg_per_ml=TEN_PERCENT)]
    admins += [admin(57, dose_ml=D(1400), concentration_mg_per_ml=FIVE_PERCENT)]
    e = exposure(admins)
    assert e.cycle_count == 3 and e.administration_count == 6
    assert [c.grams for c in e.cycles] == [D(140)] * 3
    assert e.cumulative_grams == D(420) == e.cumulative_grams_known
    assert e.cumulative_g_per_kg == D(6) == e.cumulative_g_per_kg_known
    assert not e.grams_partial and not e.g_per_kg_partial
    assert e.notes == ()


def test_no_administrations() -> None:
    e = exposure([])
    assert e.cycles == () and e.cycle_count == 0
    assert e.cumulative_grams == D(0) and e.cumulative_g_per_kg == D(0)


# --- properties ------------------------------------------------------------------------------

_admins = st.lists(
    st.builds(
        lambda day, hour, grams, i: IvigAdministration(
            source=f"MA/{i}",
            start=T(DAY0 + timedelta(days=day, hours=hour)),
            dose_g=None if grams is None else D(grams),
        ),
        st.integers(0, 200),
        st.integers(0, 23),
        st.one_of(st.none(), st.integers(1, 200)),
        st.integers(0, 10**6),
    ),
    max_size=30,
    unique_by=lambda a: a.source,
)


@given(_admins, st.integers(1, 30))
def test_cycles_partition_administrations(admins: list[IvigAdministration], gap: int) -> None:
    policy = Policy(cycle_gap_days=gap)
    e = exposure(admins, policy=policy)
    flat = [a.administration for a in e.administrations]
    assert flat == sorted(admins, key=lambda a: (a.start.sort_key(), a.source))
    assert [c.index for c in e.cycles] == list(range(1, e.cycle_count + 1))
    for c in e.cycles:
        starts = [a.start.day for a in c.administrations]
        assert all((b - a).days <= gap for a, b in itertools.pairwise(starts))
        assert c.administration_count == len(c.administrations)
    for prev, nxt in itertools.pairwise(e.cycles):
        assert (nxt.start.day - prev.last_start.day).days > gap


@given(_admins)
def test_cumulative_grams_is_the_sum_of_known_grams(admins: list[IvigAdministration]) -> None:
    e = exposure(admins)
    known = [a.dose_g for a in admins if a.dose_g is not None]
    assert e.cumulative_grams_known == sum(known, D(0))
    assert (e.cumulative_grams is None) == (len(known) < len(admins))
    assert e.cumulative_grams_known == sum((c.grams_known for c in e.cycles), D(0))
    gpk = [c.g_per_kg for c in e.cycles if c.g_per_kg is not None]
    assert e.cumulative_g_per_kg_known == sum(gpk, D(0))


def test_a_dose_just_off_target_never_reads_as_within_the_tolerance() -> None:
    """125.9999 g at 70 kg is 1.79999857 g/kg, 10.00007 % under 2: warned. Shown to 2 places it
    read "1.8 g/kg is 10% off the target 2 g/kg (tolerance 10%)", a warning that contradicts
    itself; the dose and the percent are shown with the places that tell them from the edge."""
    c = exposure([admin(0, dose_g=D("125.9999"))]).cycles[0]
    (note,) = [n for n in c.notes if n.code == "dose-off-target"]
    assert "1.7999 g/kg is 10.0001% off the target 2 g/kg (tolerance 10%)" in note.message
