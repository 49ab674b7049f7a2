"""Doses recorded per kg on the ideal or adjusted basis (clinical spec §4), found by an
independent oracle (session s34): a cycle's g/kg is exactly the sum of its per-kg doses.

The ideal (Devine) weight of most heights is not a terminating decimal (cm ÷ 2.54), so
g/kg computed as (dose per kg × kg) ÷ kg came out 2.200000000000000000000000001 for a dose
of exactly 2.2 g/kg: the cycle was warned "more than 10% off the target" (spec §4: warn only
when it is *more* than 10% off) and its Observation showed 2.2001 g/kg.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fhirtis.clinical.decimals import beside_any
from fhirtis.clinical.facts import (
    BodyHeight,
    BodyWeight,
    FhirTime,
    IvigAdministration,
    PatientFacts,
    Sex,
)
from fhirtis.clinical.ivig import compute_exposure, dose_tolerance_edges
from fhirtis.clinical.policy import DosingWeightBasis, Policy

D = Decimal
DAY0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
MALE = PatientFacts(sex=Sex.MALE)


def _exposure(
    per_kg: list[str], basis: DosingWeightBasis, height_cm: str, weight_kg: str, g: str = ""
) -> tuple[Decimal | None, Decimal | None, set[str]]:
    admins = [
        IvigAdministration(
            source=f"MedicationAdministration/{k}",
            start=FhirTime.of(DAY0 + timedelta(days=k)),
            dose_g_per_kg=D(dose),
            concentration_mg_per_ml=D(100),
        )
        for k, dose in enumerate(per_kg)
    ]
    if g:
        admins.append(
            IvigAdministration(
                source="MedicationAdministration/g",
                start=FhirTime.of(DAY0 + timedelta(days=len(per_kg))),
                dose_g=D(g),
            )
        )
    exposure = compute_exposure(
        admins,
        [BodyWeight("Observation/w", DAY0 - timedelta(days=1), D(weight_kg))],
        [BodyHeight("Observation/h", DAY0 - timedelta(days=100), D(height_cm))],
        MALE,
        Policy(dosing_weight=basis),
    )
    (cycle,) = exposure.cycles
    return cycle.g_per_kg, exposure.cumulative_g_per_kg, {n.code for n in cycle.notes}


@pytest.mark.parametrize(
    ("per_kg", "basis", "height_cm", "weight_kg"),
    [
        (["2.2"], DosingWeightBasis.ADJUSTED, "158", "88.1"),
        (["1.1", "1.1"], DosingWeightBasis.ADJUSTED, "158", "55"),
        (["0.44"] * 5, DosingWeightBasis.ADJUSTED, "158", "101.7"),
        (["0.36"] * 5, DosingWeightBasis.ADJUSTED, "158", "88.1"),
        (["2"], DosingWeightBasis.IDEAL, "181.1", "70.3"),
        (["0.5"] * 4, DosingWeightBasis.IDEAL, "181.1", "88.1"),
    ],
)
def test_per_kg_doses_sum_exactly(
    per_kg: list[str], basis: DosingWeightBasis, height_cm: str, weight_kg: str
) -> None:
    expected = sum((D(d) for d in per_kg), D(0))
    g_per_kg, cumulative, codes = _exposure(per_kg, basis, height_cm, weight_kg)
    assert g_per_kg == expected
    assert str(g_per_kg) == str(expected)  # no 2.200000000000000000000000001
    assert cumulative == expected
    # 1.8 and 2.2 g/kg are exactly 10% off 2 g/kg: within the tolerance, no warning
    assert "dose-off-target" not in codes


def test_edge_dose_written_as_recorded() -> None:
    """What the ivig-cycle-dose Observation shows: 2.2, never 2.2001 (shown away from an edge
    it does not equal)."""
    g_per_kg, _, _ = _exposure(["2.2"], DosingWeightBasis.ADJUSTED, "158", "88.1")
    assert g_per_kg is not None
    shown = beside_any(g_per_kg, dose_tolerance_edges(Policy()))
    assert shown == D("2.2")


def test_mixed_per_kg_and_grams_on_actual_basis_unchanged() -> None:
    """A cycle of per-kg doses and doses in grams: the grams are divided by the dosing weight,
    the per-kg doses added as recorded (on the actual basis, exact as before)."""
    g_per_kg, cumulative, _ = _exposure(
        ["0.5", "0.5", "0.5"], DosingWeightBasis.ACTUAL, "170", "80", g="40"
    )
    assert g_per_kg == D("2")
    assert cumulative == D("2")
