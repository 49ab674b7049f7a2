"""Estrogen use (a thrombosis risk factor, clinical spec §5.1) recorded by a MedicationStatement
whose dates are known to the month or year only, as the International Patient Summary publishes
it: HL7/fhir-ips ``input/examples/IPS-bundle-01.xml`` (commit
0297aff2434465efbd9a1e404b4777f7a5099b17) has an ``active`` MedicationStatement with
``effectivePeriod.start value="2016-01"`` (a valid R4 dateTime,
http://hl7.org/fhir/R4/datatypes.html#dateTime). Fixture and sources in tests/data/s27h-pub.

Before, such a statement was excluded with an error: the estrogen use was not counted and the
maximum rate stayed 4 mg/kg/min where 3.3 applies. As for a risk-factor Condition's onset or a
Procedure performed to the month (clinical spec, implementation decisions), a start known only
to the year or month counts from its first possible day, an end from its last (the safe side for
the maximum rate), with a warning."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from fhirtis.clinical.facts import RiskFactorKind
from tests.fhir.builders import LOINC, administration, medication, obs, patient, qty
from tests.fhir.test_published_examples import evaluate_fixture
from tests.fhir.test_s25_pub_onset import _evaluate

DATA = Path(__file__).parents[1] / "data" / "s27h-pub"
ESTRADIOL = {
    "coding": [{"system": "http://www.whocc.no/atc", "code": "G03CA03", "display": "estradiol"}]
}


def test_an_ips_estradiol_statement_from_a_month_is_estrogen_use() -> None:
    """``ips-bundle-estradiol-month-start.json``: estradiol (ATC G03CA03) taken since "2016-01"
    (IPS-bundle-01's MedicationStatement shape: ``identifier``, ``medicationReference`` and
    ``subject`` as ``urn:uuid:``, oral route EDQM 20053000); IVIG 10 g/100 mL, 700 mL at
    150 mL/h on 2025-03-03 and -04, 70 kg: 150 x 100 / (60 x 70) = 3.5714 mg/kg/min. Estrogen
    use from 2016-01-01: maximum 3.3, both administrations rate findings; one warning names the
    effectivePeriod.start. Before: excluded with an error, maximum 4, no finding."""
    result = evaluate_fixture(DATA / "ips-bundle-estradiol-month-start.json")
    source = "MedicationStatement/2e8b6d14-c0f3-4a97-9b52-d6a1e7f3c085"
    assert [(e.kind, e.source, e.start, e.end) for e in result.data.evidence] == [
        (RiskFactorKind.ESTROGEN, source, date(2016, 1, 1), None)
    ]
    thrombosis = result.evaluation.thrombosis
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert len(thrombosis.rate_findings) == 2
    (warning,) = result.issues
    assert (warning.severity, warning.expression, warning.resource) == (
        "warning",
        "Bundle.entry[5].resource.effectivePeriod.start",
        source,
    )
    assert "2016-01-01" in warning.diagnostics


def _estrogen(**timing: Any) -> Any:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "medicationCodeableConcept": ESTRADIOL,
        "subject": {"reference": "Patient/p1"},
        **timing,
    }
    return _evaluate(
        patient(birth="1968-04-02"),
        medication(),
        obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC),
        administration("a1", "2025-03-03T09:00:00Z", dose=qty(70, "g"), rate=qty(150, "mL/h")),
        statement,
    )


def test_estrogen_use_ended_in_the_month_of_the_infusion_is_counted_to_its_end() -> None:
    """Completed, taken 2015-03-01 to "2025-03": it may have been taken until 2025-03-31, so
    the 2025-03-03 infusion is checked against 3.3 (a rate finding)."""
    result = _estrogen(
        status="completed", effectivePeriod={"start": "2015-03-01", "end": "2025-03"}
    )
    assert [i for i in result.issues if i.severity == "error"] == []
    assert [(e.kind, e.start, e.end) for e in result.data.evidence] == [
        (RiskFactorKind.ESTROGEN, date(2015, 3, 1), date(2025, 3, 31))
    ]
    assert [f.limit_mg_kg_min for f in result.evaluation.thrombosis.rate_findings] == [
        Decimal("3.3")
    ]


def test_a_completed_estrogen_use_dated_to_a_year_counts_through_that_year() -> None:
    """Completed, ``effectiveDateTime`` "2024": taken at some time in 2024, ended since; counted
    2024-01-01 to 2024-12-31, so not at the 2025 infusion (maximum 4, no finding)."""
    result = _estrogen(status="completed", effectiveDateTime="2024")
    assert [i for i in result.issues if i.severity == "error"] == []
    assert [(e.kind, e.start, e.end) for e in result.data.evidence] == [
        (RiskFactorKind.ESTROGEN, date(2024, 1, 1), date(2024, 12, 31))
    ]
    assert result.evaluation.thrombosis.rate_findings == ()
