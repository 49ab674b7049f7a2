"""A titrated IVIG bag recorded as the bag's administration plus rate steps that are ``partOf``
it (clinical spec §4 grams, cycle g/kg; §5.2 the highest rate), found by the s35 MAR audit.

HL7 R4 MedicationAdministration.partOf: "A larger event of which this particular event is a
component or step" (Reference(MedicationAdministration | Procedure)). A MAR that charts a
titration (the label's "increase the rate gradually") as steps of the bag's administration sends
the steps with the new rate and no dose of their own: the bag's dose is recorded once, on the
administration they are part of. Each step was read as an administration whose grams are
unknown, so the cycle's grams and g/kg, and the cumulative dose, were "unknown" (and the
off-target check skipped) although every gram given is recorded: 70 g = 1 g/kg at 70 kg.

Rule: a step that records no dose and is part of another counted IVIG administration adds no
grams (its dose is the one it is part of), said in a note; its rate still counts (the highest step
is the cycle's maximum rate). A step that records a dose of its own is counted as recorded.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fhirtis.clinical.ivig import compute_exposure
from tests.fhir.builders import administration, medication, obs, patient, qty
from tests.fhir.reading import extract

PARENT = "MedicationAdministration/bag"


def _weight() -> dict[str, Any]:
    return obs("w", "29463-7", 70, "kg", "2024-03-01T08:00:00Z", system="http://loinc.org")


def _bag() -> dict[str, Any]:
    return administration(
        "bag",
        "2024-03-02T12:00:00Z",
        "2024-03-02T16:00:00Z",
        dose=qty(700, "mL"),  # Octagam 10%: 70 g
        rate=qty(42, "mL/h"),  # 1 mg/kg/min at 70 kg
        request={"reference": "MedicationRequest/order"},
    )


def _step(aid: str, start: str, ml_per_h: int, part_of: str = PARENT, **extra: Any) -> Any:
    return administration(
        aid,
        start,
        rate=qty(ml_per_h, "mL/h"),
        partOf=[{"reference": part_of}],
        request={"reference": "MedicationRequest/order"},
        **extra,
    )


def _exposure(*resources: Any) -> Any:
    data = extract(patient(), medication(), _weight(), *resources)
    facts = data.facts()
    return compute_exposure(facts.administrations, facts.weights, facts.heights, facts.patient)


def test_rate_steps_part_of_the_bag_keep_its_dose() -> None:
    """HL7 R4 partOf shape: bag 700 mL of a 10% product, then steps of 84, 126 and 168 mL/h
    (2, 3, 4 mg/kg/min), each partOf the bag, with a rate and no dose."""
    exposure = _exposure(
        _bag(),
        _step("s2", "2024-03-02T12:30:00Z", 84),
        _step("s3", "2024-03-02T13:00:00Z", 126),
        _step("s4", "2024-03-02T13:30:00Z", 168),
    )
    cycle = exposure.cycles[0]
    assert cycle.grams == Decimal(70)
    assert cycle.g_per_kg == Decimal(1)
    assert exposure.cumulative_grams == Decimal(70)
    assert exposure.cumulative_g_per_kg == Decimal(1)
    assert cycle.max_rate_mg_kg_min == Decimal(4)  # the highest step
    assert any(n.code == "dose-off-target" for n in cycle.notes)  # 1 g/kg is off 2 g/kg
    steps = [a for a in cycle.administrations if a.source != PARENT]
    assert [a.grams for a in steps] == [Decimal(0)] * 3
    for a in steps:
        assert any(n.code == "dose-in-parent" and PARENT in n.message for n in a.notes)
        assert not any(n.code == "dose-unknown" for n in a.notes)


def test_a_step_with_its_own_dose_counts_it() -> None:
    """A step that records the volume given during it (100 mL = 10 g) adds it."""
    exposure = _exposure(_bag(), _step("s2", "2024-03-02T12:30:00Z", 84, dose=qty(100, "mL")))
    assert exposure.cycles[0].grams == Decimal(80)


def test_part_of_something_not_counted_is_still_unknown() -> None:
    """partOf an administration that is not in the record (or not counted): nothing shows where
    its dose is, so its grams stay unknown, as before."""
    exposure = _exposure(
        _bag(), _step("s2", "2024-03-02T12:30:00Z", 84, part_of="MedicationAdministration/other")
    )
    assert exposure.cycles[0].grams is None
