"""Resources listed by a ``urn:uuid`` fullUrl with no ``id``, as HL7 publishes an R4 document:
``document-example-dischargesummary.json`` (http://hl7.org/fhir/R4/document-example-dischargesummary.json.html;
stored copy: repository fhir-ru/fhir-ru.github.io, commit
73deef6284d1692879ccfbac8390a4e965e6d215) lists its Observation, MedicationRequest,
MedicationStatement and AllergyIntolerance as ``"fullUrl": "urn:uuid:…"`` with no ``id`` (the
Composition's sections reference them by that fullUrl), and R4 ``bundle-transaction.json`` POSTs
resources so. R4 bundle.html: a fullUrl identifies the resource in the Bundle; an ``id`` is not
required there. Fixture and sources in tests/data/s38-pub.

Before, each such resource that fhirtis reads was excluded with an error ("resource has no
valid id"): in ``r4-document-no-ids-ivig.json`` the weight and both IVIG administrations were
dropped, so no exposure was reported and the two infusions above the 3.3 mg/kg/min limit of a
70-year-old (clinical spec §5.1 advanced age, §5.2) gave no finding. Now such a resource is
named by its uuid (``Type/<uuid>``), with one information issue saying so (a Patient is not:
fhirtis names the patient by its own id, tests/fhir/test_bundle.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.fhir.test_published_examples import check_fixture_folder, evaluate_fixture

DATA = Path(__file__).parents[1] / "data" / "s38-pub"
FIXTURE = DATA / "r4-document-no-ids-ivig.json"
IVIG = [
    "MedicationAdministration/7a2e5c91-3f08-4d6b-a1c4-8e9b0d2f6a37",
    "MedicationAdministration/e8f4b1d6-2c97-4a53-9e0b-6d3a7c1f5b92",
]


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    sources = "".join(p.read_text() for p in Path(__file__).parent.glob("test_s38pub_*.py"))
    check_fixture_folder(DATA, sources)


def test_id_less_resources_of_an_r4_document_are_read() -> None:
    """``r4-document-no-ids-ivig.json``: the HL7 R4 discharge-summary document with a 70 kg
    weight, an IVIG product (ATC J06BA02, 10 g / 100 mL) and two 700 mL infusions at 150 mL/h
    (2025-03-03, -04) added in its style (urn:uuid fullUrl, no id, absolute subject). The
    patient, born 1955-01-06, is 70: advanced age, maximum 3.3 mg/kg/min; 150 x 100 / (60 x 70)
    = 3.5714 > 3.3 at both infusions. One cycle of 140 g = 2 g/kg; no error."""
    result = evaluate_fixture(FIXTURE)
    assert [i for i in result.issues if i.severity in ("fatal", "error")] == []
    assert [a.source for a in result.data.administrations] == IVIG
    (cycle,) = result.evaluation.exposure.cycles
    assert cycle.grams == Decimal(140)
    thrombosis = result.evaluation.thrombosis
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert [f.administration_source for f in thrombosis.rate_findings] == IVIG
    (said,) = [i for i in result.issues if i.expression == "Bundle.entry"]
    assert said.severity == "information"
    assert said.diagnostics.startswith("8 resource(s) without an id are named by the uuid")
