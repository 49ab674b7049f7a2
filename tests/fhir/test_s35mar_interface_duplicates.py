"""One IVIG administration sent twice under two resource ids (clinical spec §4), found by the
s35 MAR audit.

An HL7 v2 (RAS^O17) → FHIR interface that resends a MAR event, or a second feed of the same MAR,
creates a second MedicationAdministration with a new ``id`` but the same business
``identifier`` (R4 MedicationAdministration.identifier: "Identifiers associated with this
Medication Administration that are defined by business processes"; HL7's R4 example
``medadmin0301`` carries one). The Bundle reader already reads a resource listed twice once
("counting it twice would double a dose"), but two ids with one identifier were both counted:
70 g given on day 1 became 140 g, the cycle 3 g/kg instead of 2 g/kg (warned off target,
wrongly), and the rate found twice.

Rule: two counted IVIG administrations with the same identifier (system and value) and the same
start are one administration: counted once, with a warning that names both. The same
identifier with a different start is not merged (a feed that puts an order number in
``identifier`` must not lose the other days of the course).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fhirtis.clinical.ivig import compute_exposure
from tests.fhir.builders import administration, medication, obs, patient, qty
from tests.fhir.reading import extract

IDENT = [{"system": "urn:oid:2.16.840.1.113883.3.7418.2.1", "value": "MAR-998877-1"}]


def _weight() -> dict[str, Any]:
    return obs("w", "29463-7", 70, "kg", "2024-03-01T08:00:00Z", system="http://loinc.org")


def _admin(aid: str, day: int, ident: list[dict[str, str]] | None, grams: int = 70) -> Any:
    extra: dict[str, Any] = {"identifier": ident} if ident is not None else {}
    return administration(
        aid,
        f"2024-03-0{day}T12:00:00Z",
        f"2024-03-0{day}T16:00:00Z",
        dose=qty(grams, "g"),
        rate=qty(175, "mL/h"),
        **extra,
    )


def _exposure(*admins: Any) -> tuple[Any, Any]:
    data = extract(patient(), medication(), _weight(), *admins)
    facts = data.facts()
    return data, compute_exposure(
        facts.administrations, facts.weights, facts.heights, facts.patient
    )


def test_same_identifier_same_start_counted_once() -> None:
    """HL7 R4 MedicationAdministration (identifier, effectivePeriod, dosage.dose in g,
    rateQuantity mL/h), resent by an interface under a new id."""
    data, exposure = _exposure(
        _admin("ma-1", 2, IDENT), _admin("ma-1-resent", 2, IDENT), _admin("ma-2", 3, None)
    )
    assert exposure.cycle_count == 1
    cycle = exposure.cycles[0]
    assert cycle.administration_count == 2
    assert cycle.grams == Decimal(140)
    assert cycle.g_per_kg == Decimal(2)
    assert exposure.cumulative_grams == Decimal(140)
    assert not any(n.code == "dose-off-target" for n in cycle.notes)
    said = [i for i in data.issues if i.resource == "MedicationAdministration/ma-1-resent"]
    assert said and said[0].severity == "warning"
    assert "MedicationAdministration/ma-1" in said[0].diagnostics
    assert "counted once" in said[0].diagnostics
    assert "MedicationAdministration/ma-1-resent" not in data.used


def test_copies_that_differ_are_said_to_differ() -> None:
    """The resent copy carries another dose (a correction sent as a new resource): one
    administration still, the first read counted, and the warning says that the copies differ."""
    data, exposure = _exposure(_admin("ma-1", 2, IDENT), _admin("ma-1-fix", 2, IDENT, grams=60))
    assert exposure.administration_count == 1
    said = [i for i in data.issues if i.resource == "MedicationAdministration/ma-1-fix"]
    assert said and "differ" in said[0].diagnostics


def test_the_copy_updated_later_is_counted() -> None:
    """An in-progress record (300 mL so far) and, under a new id, the completed one (700 mL),
    both with meta.lastUpdated (as a FHIR server sets it): the completed copy, updated later,
    is the one counted, in whichever order the two are read."""
    first = _admin("run", 2, IDENT, grams=30)
    first["status"] = "in-progress"
    first["effectivePeriod"].pop("end")
    first["meta"] = {"versionId": "1", "lastUpdated": "2024-03-02T13:00:00Z"}
    done = _admin("done", 2, IDENT, grams=70)
    done["meta"] = {"versionId": "1", "lastUpdated": "2024-03-02T16:05:00Z"}
    for order in ((first, done), (done, first)):
        data, exposure = _exposure(*order)
        assert exposure.administration_count == 1
        assert exposure.cumulative_grams == Decimal(70)
        assert exposure.cycles[0].in_progress_count == 0
        assert "MedicationAdministration/done" in data.used
        assert "MedicationAdministration/run" not in data.used
        said = [i for i in data.issues if i.code == "duplicate"]
        assert len(said) == 1 and said[0].resource == "MedicationAdministration/run"
        assert "MedicationAdministration/done, updated later, is counted" in said[0].diagnostics


def test_same_identifier_other_day_is_not_merged() -> None:
    """A feed that puts the order's number in identifier: each day of a 2-day course keeps its
    own administration (2 x 70 g = 2 g/kg)."""
    _, exposure = _exposure(_admin("d1", 2, IDENT), _admin("d2", 3, IDENT))
    assert exposure.administration_count == 2
    assert exposure.cumulative_grams == Decimal(140)


def test_no_identifier_is_not_merged() -> None:
    """Two bags hung at the same time without identifiers are two administrations (nothing
    shows they are one)."""
    _, exposure = _exposure(_admin("b1", 2, None, grams=35), _admin("b2", 2, None, grams=35))
    assert exposure.administration_count == 2
    assert exposure.cumulative_grams == Decimal(70)
