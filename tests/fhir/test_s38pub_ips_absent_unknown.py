"""International Patient Summary entries that say a section has nothing: HL7/fhir-ips
``input/examples/bundle-no-info-required-sections.json`` (commit
0297aff2434465efbd9a1e404b4777f7a5099b17, published as IPS 1.x example "Bundle - No Info Required
Sections") gives the Problems section one Condition coded only
``http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips#no-problem-info`` ("No
information about problems"); the same CodeSystem has ``no-known-problems`` and
``no-known-procedures`` (``input/vocabulary/codesystem-absent-unknown-uv-ips.xml`` of that
commit). Fixtures and sources in tests/data/s38-pub.

Before, each such entry gave a warning that the Condition (or Procedure) "could not be
classified for thromboembolic events and thrombosis risk factors ... it is not counted there",
as if an unknown diagnosis had been left out (clinical spec §6: a code that could not be
classified is reported). It is no diagnosis: it is said as information, not as a warning."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from tests.fhir.test_published_examples import check_fixture_folder, evaluate_fixture

DATA = Path(__file__).parents[1] / "data" / "s38-pub"
NO_PROBLEM_INFO = "Condition/da138a5d-633f-493f-9485-e5af1320db5b"


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    sources = "".join(p.read_text() for p in Path(__file__).parent.glob("test_s38pub_*.py"))
    check_fixture_folder(DATA, sources)


def test_the_published_ips_document_gives_no_warning() -> None:
    """``ips-no-info-required-sections.json`` as published: no problem, medication or allergy
    information; the only Condition is ``no-problem-info``. No warning, one information."""
    result = evaluate_fixture(DATA / "ips-no-info-required-sections.json")
    assert [i for i in result.issues if i.severity in ("fatal", "error", "warning")] == []
    (said,) = [i for i in result.issues if i.resource == NO_PROBLEM_INFO]
    assert said.severity == "information"
    assert said.expression == "Bundle.entry[7].resource.code"
    assert "no-problem-info" in said.diagnostics
    assert result.data.events == [] and result.data.evidence == []


def test_an_ivig_course_in_the_ips_document_is_read_as_before() -> None:
    """``ips-no-info-with-ivig.json``: the published document with a 70 kg weight, an IVIG
    product (ATC J06BA02, 10 g / 100 mL) and two 700 mL infusions at 150 mL/h (2025-03-03, -04)
    added, and a Procedure coded ``no-known-procedures``: one cycle of 140 g = 2 g/kg, fastest
    150 x 100 / (60 x 70) = 3.5714 mg/kg/min, under the maximum of 4 (no risk factor); the two
    absent/unknown entries are information, not warnings."""
    result = evaluate_fixture(DATA / "ips-no-info-with-ivig.json")
    (cycle,) = result.evaluation.exposure.cycles
    assert cycle.grams == Decimal(140)
    assert result.evaluation.thrombosis.max_rate_now.limit_mg_kg_min == Decimal(4)
    assert list(result.evaluation.thrombosis.rate_findings) == []
    assert [i for i in result.issues if i.severity in ("fatal", "error", "warning")] == []
    assert sorted((i.resource, i.severity) for i in result.issues) == [
        (NO_PROBLEM_INFO, "information"),
        ("Procedure/no-procedures-s38pub", "information"),
    ]


def test_the_ips_2_snomed_none_known_codes_are_information(tmp_path: Path) -> None:
    """IPS 2.0 codes the same entries in SNOMED CT (HL7/fhir-ips ``input/fsh/valuesets/``
    ``ProblemsUvIps.fsh``: "<< 160245001 |No current problems or disability|",
    ``ProceduresUvIps.fsh``: "<< 787480003 |No known procedures|"): the published document with
    its Condition and the Procedure recoded so is information too, not "could not be
    classified ... the shipped expansions do not list it"."""
    doc = json.loads((DATA / "ips-no-info-with-ivig.json").read_text())
    codes = {"Condition": ("160245001", "No current problems or disability (situation)")}
    codes["Procedure"] = ("787480003", "No known procedures (situation)")
    for entry in doc["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] in codes:
            code, display = codes[resource["resourceType"]]
            resource["code"] = {
                "coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]
            }
    path = tmp_path / "ips-2.json"
    path.write_text(json.dumps(doc))
    result = evaluate_fixture(path)
    assert [i for i in result.issues if i.severity in ("fatal", "error", "warning")] == []
    assert sorted((i.resource, i.severity) for i in result.issues) == [
        (NO_PROBLEM_INFO, "information"),
        ("Procedure/no-procedures-s38pub", "information"),
    ]
    assert all("SNOMED CT" in i.diagnostics for i in result.issues)
