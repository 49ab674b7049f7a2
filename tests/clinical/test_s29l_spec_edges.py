"""Clinical spec §1, §4 and §5 thresholds at the edge and just either side (s29 audit)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from fhirtis.clinical.facts import (
    BodyHeight,
    BodyWeight,
    FhirTime,
    IvigAdministration,
    PatientFacts,
    Sex,
)
from fhirtis.clinical.ivig import Exposure, compute_exposure
from fhirtis.clinical.policy import Policy
from fhirtis.clinical.weight import ideal_body_weight, plausible_heights, plausible_weights

D = Decimal
T = FhirTime.of
DAY0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
PATIENT = PatientFacts(birth_date=date(1980, 6, 15), sex=Sex.FEMALE)
HEIGHT = BodyHeight("Observation/h", DAY0 - timedelta(days=100), D(170))


def at(day: int, hour: int = 9) -> datetime:
    return DAY0 + timedelta(days=day, hours=hour - 9)


def admin(day: int, grams: str = "35") -> IvigAdministration:
    return IvigAdministration(f"MedicationAdministration/{day}", T(at(day)), dose_g=D(grams))


def exposure(admins: list[IvigAdministration], weight_day: int = -1) -> Exposure:
    w = BodyWeight("Observation/w", at(weight_day), D(70))
    return compute_exposure(admins, [w], [HEIGHT], PATIENT, Policy())


def codes(e: Exposure, index: int = 0) -> set[str]:
    return {n.code for n in e.cycles[index].notes}


@pytest.mark.parametrize(
    ("kg", "kept"), [("0.5", True), ("0.49", False), ("350", True), ("350.01", False)]
)
def test_weight_plausible_range_is_inclusive(kg: str, kept: bool) -> None:
    ok, _ = plausible_weights([BodyWeight("Observation/w", DAY0, D(kg))])
    assert bool(ok) is kept


@pytest.mark.parametrize(
    ("cm", "kept"), [("30", True), ("29.9", False), ("250", True), ("250.1", False)]
)
def test_height_plausible_range_is_inclusive(cm: str, kept: bool) -> None:
    ok, _ = plausible_heights([BodyHeight("Observation/h", DAY0, D(cm))])
    assert bool(ok) is kept


@pytest.mark.parametrize(
    ("kg", "days", "kept"),
    [
        ("87.5", 14, True),
        ("87.51", 14, False),
        ("52.5", 14, True),
        ("52.49", 14, False),
        ("87.51", 15, True),
    ],
)
def test_weight_jump_25_percent_within_14_days(kg: str, days: int, kept: bool) -> None:
    first = BodyWeight("Observation/a", DAY0, D(70))
    second = BodyWeight("Observation/b", DAY0 + timedelta(days=days), D(kg))
    ok, _ = plausible_weights([first, second])
    assert (second in ok) is kept


def test_cycle_gap_7_days_same_cycle_8_new() -> None:
    assert exposure([admin(0), admin(7)]).cycle_count == 1
    assert exposure([admin(0), admin(8)]).cycle_count == 2


@pytest.mark.parametrize(
    ("grams", "warned"), [("126", False), ("125.93", True), ("154", False), ("154.07", True)]
)
def test_dose_tolerance_10_percent_edges(grams: str, warned: bool) -> None:
    # 70 kg: 1.8 g/kg = 126 g, 2.2 g/kg = 154 g
    e = exposure([admin(0, grams)])
    assert ("dose-off-target" in codes(e)) is warned


@pytest.mark.parametrize(("second", "warned"), [(21, False), (20, True), (35, False), (36, True)])
def test_cycle_interval_28_plus_minus_7(second: int, warned: bool) -> None:
    e = exposure([admin(0, "140"), admin(second, "140")])
    assert e.cycle_count == 2
    assert ("cycle-interval" in codes(e, 1)) is warned


@pytest.mark.parametrize(("last", "warned"), [(4, False), (5, True)])
def test_cycle_span_5_days(last: int, warned: bool) -> None:
    e = exposure([admin(0, "70"), admin(last, "70")])
    assert ("cycle-span" in codes(e)) is warned


@pytest.mark.parametrize(("weight_day", "stale"), [(-30, False), (-31, True)])
def test_weight_max_age_30_days(weight_day: int, stale: bool) -> None:
    e = exposure([admin(0, "140")], weight_day=weight_day)
    assert e.cycles[0].dosing_weight.stale is stale
    assert e.cycles[0].g_per_kg == D(2)


def test_devine_at_152_4_cm_and_2_3_kg_per_inch() -> None:
    assert ideal_body_weight(D("152.4"), Sex.FEMALE) == D("45.5")
    assert ideal_body_weight(D("152.4"), Sex.MALE) == D(50)
    assert ideal_body_weight(D("177.8"), Sex.MALE) == D("73.0")  # 70 in: 50 + 10 × 2.3
    with pytest.raises(ValueError):
        ideal_body_weight(D("152.39"), Sex.FEMALE)


def test_cumulative_g_per_kg_sums_each_cycle_on_its_own_weight() -> None:
    w1 = BodyWeight("Observation/w1", at(-1), D(70))
    w2 = BodyWeight("Observation/w2", at(27), D(80))
    e = compute_exposure([admin(0, "140"), admin(28, "140")], [w1, w2], [HEIGHT], PATIENT, Policy())
    assert [c.g_per_kg for c in e.cycles] == [D(2), D("1.75")]
    assert e.cumulative_g_per_kg == D("3.75") and e.cumulative_grams == D(280)
