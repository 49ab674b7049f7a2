"""A body weight recorded only inside a vital-signs panel is the dosing weight on every path.

The extractor reads weights and heights in a vital-signs panel (LOINC 85353-1, the code the R4
vital signs panel profile fixes, http://hl7.org/fhir/R4/observation-vitalspanel.html): as a
``component`` (as in R4's blood-pressure example) or as a contained ``hasMember``
(tests/data/README.md [R4-VS]). ``fhirtis evaluate`` and ``fhirtis cohort`` (which read every
Observation of the patient) found them; ``fhirtis run``, ``$myositis-evaluate`` and the CDS
service search Observations by ``code``, which matches ``Observation.code`` only (R4
search parameter ``Observation.code``; components are ``component-code``), and the panel's own
code was not among the codes searched. So the same patient had a dosing weight, g/kg and
infusion rates offline but none from the server: g/kg and the maximum rate unknown, and an
infusion above the label's maximum (clinical spec §5.2) not found.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

from fhirtis.fhir.codes import terminology
from fhirtis.fhir.needs import observation_code_groups, observation_codes
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.offline import PatientResult, evaluate_bundle_bytes
from fhirtis.pipeline.server import PatientRun, run_patient
from fhirtis.settings import Settings
from tests.e2e.test_run import load

Json = dict[str, Any]

DATA = Path(__file__).resolve().parents[1] / "data"
VITALS_PANEL = ("http://loinc.org", "85353-1")


def _bundle(name: str, rate_ml_h: int | None = None) -> Json:
    doc: Json = json.loads((DATA / name).read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    if rate_ml_h is not None:
        for entry in doc["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "MedicationAdministration":
                r["dosage"]["rateQuantity"]["value"] = rate_ml_h
    return doc


def _patient(doc: Json) -> str:
    return next(
        e["resource"]["id"] for e in doc["entry"] if e["resource"]["resourceType"] == "Patient"
    )


def _offline(doc: Json) -> PatientResult:
    return evaluate_bundle_bytes(json.dumps(doc).encode(), "bundle.json", Settings())


def _server(base: str, patient: str) -> PatientRun:
    async def go() -> PatientRun:
        async with FhirClient(FhirClientConfig(base_url=base, page_size=50)) as client:
            return await run_patient(client, patient, Settings(), write=False)

    return asyncio.run(go())


def _clinical(result: PatientResult) -> Json:
    """The cycle doses and rate findings of the derived resources, by kind."""
    out: Json = {"cycles": [], "rate_findings": 0}
    for d in result.derived:
        r = d.resource
        if r["resourceType"] == "DetectedIssue":
            out["rate_findings"] += 1
        coding = r.get("code", {}).get("coding", [{}])[0]
        if r["resourceType"] == "Observation" and coding.get("code") == "ivig-cycle-dose":
            out["cycles"].append(r.get("valueQuantity", {}).get("value"))
    return out


def test_the_panel_code_is_searched_and_prefetched() -> None:
    terms = terminology()
    assert VITALS_PANEL in observation_codes(terms)
    # the CDS prefetch reads the panels whole (every page), not as one of the "latest n"
    assert VITALS_PANEL in observation_code_groups(terms)["measures"]


def test_weight_in_panel_component_same_on_server_as_offline(fhir_base: str) -> None:
    # 300 mL/h of a 10% product at 72 kg = 6.94 mg/kg/min, above the label's 4
    doc = _bundle("vitals-panel-components.json", rate_ml_h=300)
    offline = _clinical(_offline(doc))
    assert offline == {"cycles": [2], "rate_findings": 2}
    load(fhir_base, doc)
    run = _server(fhir_base, _patient(doc))
    assert run.result is not None, run.error
    assert _clinical(run.result) == offline


def test_weight_in_contained_panel_member_same_on_server_as_offline(fhir_base: str) -> None:
    doc = _bundle("vitals-panel-hasmember.json")
    offline = _clinical(_offline(doc))
    assert offline["cycles"] == [2]
    load(fhir_base, doc)
    run = _server(fhir_base, _patient(doc))
    assert run.result is not None, run.error
    assert _clinical(run.result) == offline
