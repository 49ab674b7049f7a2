"""Oracle Health's rate unit text "milliliter per hour" without its UCUM code (clinical spec §4,
"units as EHRs write them": common unambiguous spellings are accepted through one alias table).

Shape followed: Oracle Health (Cerner) Millennium R4 MedicationAdministration, repository
``cerner/fhir.cerner.com``, file
``lib/resources/example_json/r4_examples_medication_administration.rb``
(``R4_MEDICATION_ADMINISTRATION_ENTRY``; published at
https://fhir.cerner.com/millennium/r4/clinical/medications/medication-administration/):
``dosage.rateQuantity`` ``{"value": 125.00, "unit": "milliliter per hour", ...}`` beside
``dosage.dose`` ``{"unit": "milliliter (iso1000)", ...}``. The dose's text was already an alias;
the rate's was not, so a system that sends the unit text without the code (R4 Quantity.code and
.system are 0..1) lost every rate: "rate unknown", never checked against the maximum.
The fixture is ``tests/data/vendor/oracle/medication-administrations-searchset.json`` (our data in
that shape) with only the rate's ``system`` and ``code`` removed.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from fhirtis.fhir.units import unit_from_text
from fhirtis.pipeline.offline import evaluate_bundle_file
from fhirtis.settings import Settings

ORACLE = Path(__file__).parents[1] / "data" / "vendor" / "oracle"


@pytest.mark.parametrize(
    ("text", "ucum"),
    [
        ("milliliter per hour", "mL/h"),  # Oracle Health's rateQuantity.unit
        ("Milliliters per hour", "mL/h"),
        ("millilitre per hour", "mL/h"),
        ("milliliter per minute", "mL/min"),
        ("milligram per hour", "mg/h"),
        ("gram per hour", "g/h"),
    ],
)
def test_rate_unit_names_written_out_are_read(text: str, ucum: str) -> None:
    assert unit_from_text(text) == ucum


def test_oracle_rate_with_unit_text_only_is_read(tmp_path: Path) -> None:
    """2 x 700 mL of 70 g / 700 mL at 125 "milliliter per hour": 140 g; 125 x 100 /
    (60 x 75.069537235) = 2.7752 mg/kg/min, as with the code "mL/h" (test_vendor_examples)."""
    bundle = json.loads((ORACLE / "medication-administrations-searchset.json").read_text())
    changed = 0
    for entry in bundle["entry"]:
        rate = entry["resource"].get("dosage", {}).get("rateQuantity")
        if rate is not None:
            assert rate["unit"] == "milliliter per hour"
            del rate["system"], rate["code"]
            changed += 1
    assert changed == 2
    path = tmp_path / "oracle-rate-unit-text.json"
    path.write_text(json.dumps(bundle))
    result = evaluate_bundle_file(path, Settings())
    assert [a.rate_ml_per_h for a in result.data.administrations] == [Decimal(125)] * 2
    (cycle,) = result.evaluation.exposure.cycles
    assert cycle.grams == Decimal(140)
    assert round(cycle.max_rate_mg_kg_min or 0, 4) == Decimal("2.7752")
    assert result.issues == []
