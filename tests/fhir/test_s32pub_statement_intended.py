"""A MedicationStatement with status ``intended`` records no use yet: R4
http://hl7.org/fhir/R4/valueset-medication-statement-status.html, "intended: The medication
may be taken at some time in the future" (status is a modifier of MedicationStatement). The
German Medical Informatics Initiative publishes such statements with a start in the past
(repository medizininformatik-initiative/kerndatensatzmodul-medikation, commit
861080af82b72f57c690978ae18f6d12fc43ba0f,
``fsh-generated/resources/MedicationStatement-mii-exa-medikation-medication-statement-concor.json``:
``status`` intended, ``medicationCodeableConcept`` ATC under ``http://fhir.de/CodeSystem/bfarm/atc``
with ``version``, ``effectivePeriod.start`` only, ``dosage`` per time of day). Fixture and
sources: tests/data/s32-pub.

Clinical spec §5.1: estrogen *use* is a thrombosis risk factor (limit 3.3 mg/kg/min, §5.2).
fhirtis already reads a DeviceUseStatement ``intended`` as showing nothing (CHANGELOG); an
``intended`` estrogen statement was read as use from its start: the limit fell to 3.3 and each
administration at 3.571 mg/kg/min became a rate finding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.settings import Settings
from tests.fhir.test_published_examples import evaluate_fixture

FIXTURE = Path(__file__).parents[1] / "data" / "s32-pub" / "mii-estradiol-intended.json"
STATEMENT = "MedicationStatement/s32-int-estradiol"


def _with_status(status: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(FIXTURE.read_text())
    for entry in doc["entry"]:
        if entry["resource"]["resourceType"] == "MedicationStatement":
            entry["resource"]["status"] = status
    return doc


def test_an_intended_estradiol_is_no_estrogen_use() -> None:
    """``mii-estradiol-intended.json``: 70 kg; 2 x 700 mL of a 10% IVIG on 2025-06-13/14 at
    150 mL/h = 150 x 100 / (60 x 70) = 3.571 mg/kg/min; estradiol (ATC G03CA03) intended from
    2025-06-02. No risk factor: limit 4, no rate finding."""
    result = evaluate_fixture(FIXTURE)
    assert [e for e in result.data.evidence if e.kind is RiskFactorKind.ESTROGEN] == []
    t = result.evaluation.thrombosis
    assert t.risk_factors == ()
    assert t.max_rate_now.limit_mg_kg_min == 4
    assert t.rate_findings == ()
    assert [i for i in result.issues if i.severity in {"error", "fatal"}] == []


@pytest.mark.parametrize("status", ["active", "completed", "stopped", "on-hold", "unknown"])
def test_a_statement_of_use_is_estrogen_use(status: str) -> None:
    """The control: the same statement in a status that records use (or may: ``unknown``,
    ``on-hold``) is estrogen use, as before: limit 3.3 on both days (an ended statement without
    an end counts on its start day only, 06-02, before the IVIG)."""
    doc = _with_status(status)
    result = evaluate_bundle_bytes(json.dumps(doc).encode(), "control", Settings())
    sources = [e.source for e in result.data.evidence if e.kind is RiskFactorKind.ESTROGEN]
    assert sources == [STATEMENT]
    findings = result.evaluation.thrombosis.rate_findings
    assert len(findings) == (0 if status in {"completed", "stopped"} else 2)
