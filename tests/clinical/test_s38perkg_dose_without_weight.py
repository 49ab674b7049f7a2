"""A cycle whose doses are all recorded per kg (0.4 g/kg a day for 5 days, as weight-based IVIG
orders are charted) and no dosing weight (no weight recorded, or an ideal basis without a
height) said "cycle grams and g/kg unknown" (s38 regression oracle). The cycle's g/kg is the
per-kg doses as recorded (clinical spec §4: its g/kg is the per-kg doses plus the others' grams
÷ kg, and a value already per kg needs no weight, as a rate per kg needs none): 2 g/kg, on
target, with its grams unknown and said so; the cumulative g/kg counts it. A cycle with a dose
in grams or mL beside them still needs the weight; so does an implausible per-kg dose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fhirtis.clinical.facts import BodyWeight, FhirTime, IvigAdministration, PatientFacts, Sex
from fhirtis.clinical.ivig import Exposure, compute_exposure
from fhirtis.clinical.policy import DosingWeightBasis, Policy

D = Decimal
DAY0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _admin(k: int, **dose: Decimal) -> IvigAdministration:
    return IvigAdministration(
        source=f"MedicationAdministration/a{k}",
        start=FhirTime.of(DAY0 + timedelta(days=k)),
        concentration_mg_per_ml=D(100),
        **dose,
    )


def _exposure(admins: list[IvigAdministration], policy: Policy | None = None) -> Exposure:
    return compute_exposure(admins, [], [], PatientFacts(sex=Sex.FEMALE), policy or Policy())


def test_doses_all_per_kg_give_the_cycles_g_per_kg_without_a_weight() -> None:
    exposure = _exposure([_admin(k, dose_g_per_kg=D("0.4")) for k in range(5)])
    (cycle,) = exposure.cycles
    assert cycle.dosing_weight.kg is None
    assert cycle.grams is None  # grams need the weight
    assert cycle.g_per_kg == D("2.0")
    codes = {n.code for n in cycle.notes}
    assert "cycle-grams-unknown" in codes
    assert "cycle-g-per-kg-unknown" not in codes
    assert "dose-off-target" not in codes  # 2 g/kg: on target
    [said] = [n.message for n in cycle.notes if n.code == "cycle-grams-unknown"]
    assert "g/kg unknown" not in said, said
    assert exposure.cumulative_g_per_kg == D("2.0")
    assert exposure.cumulative_grams is None


def test_the_ideal_basis_without_a_height_reads_the_per_kg_doses_too() -> None:
    weights = [BodyWeight("Observation/w", DAY0 - timedelta(days=1), D(70))]
    exposure = compute_exposure(
        [_admin(k, dose_g_per_kg=D("0.5")) for k in range(4)],
        weights,
        [],
        PatientFacts(sex=Sex.FEMALE),
        Policy(dosing_weight=DosingWeightBasis.IDEAL),
    )
    (cycle,) = exposure.cycles
    assert cycle.dosing_weight.kg is None
    assert cycle.g_per_kg == D("2.0")


def test_a_dose_in_grams_beside_them_still_needs_the_weight() -> None:
    admins = [_admin(k, dose_g_per_kg=D("0.4")) for k in range(4)]
    admins.append(_admin(4, dose_g=D(28)))
    (cycle,) = _exposure(admins).cycles
    assert cycle.g_per_kg is None
    assert cycle.grams is None


def test_an_implausible_per_kg_dose_leaves_the_g_per_kg_unknown() -> None:
    admins = [_admin(k, dose_g_per_kg=D("0.4")) for k in range(4)]
    admins.append(_admin(4, dose_g_per_kg=D(-1)))
    (cycle,) = _exposure(admins).cycles
    assert cycle.g_per_kg is None
