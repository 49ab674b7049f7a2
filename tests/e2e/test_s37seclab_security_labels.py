"""Security labels against a server: a source labelled restricted (``R``) after a first run
makes the next run update what is derived from it with the label (and its Provenance carries
it); a run after that writes nothing (R4 security-labels.html: labels are carried forward)."""

from __future__ import annotations

import httpx

from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_run import load, run, search
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

R = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}


def _labels(resource: dict[str, object]) -> list[object]:
    meta = resource.get("meta")
    assert isinstance(meta, dict)
    return [
        {"system": c["system"], "code": c["code"]}
        for c in meta.get("security", [])
        if c.get("system") == R["system"]
    ]


def test_a_source_labelled_restricted_labels_the_write_back(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    load(fhir_base, responder())
    assert run(fhir_base).status is RunStatus.WRITTEN
    pga3 = httpx.get(f"{fhir_base}/Observation/pga3").json()
    pga3["meta"] = {**pga3.get("meta", {}), "security": [R]}
    httpx.put(f"{fhir_base}/Observation/pga3", json=pga3).raise_for_status()

    second = run(fhir_base)
    assert second.status is RunStatus.WRITTEN, second.error
    assert second.plan is not None and second.plan.summary["update"] == 2
    tis = search(fhir_base, "Observation", code="http://fhirtis.org/fhir/CodeSystem/fhirtis|tis")
    by_end = {o["effectivePeriod"]["end"]: _labels(o) for o in tis}
    assert by_end == {"2024-02-04": [], "2024-03-03": [], "2024-03-31": [R]}
    provenances = search(fhir_base, "Provenance")
    newest = max(provenances, key=lambda p: p["meta"]["lastUpdated"])
    assert _labels(newest) == [R]

    fhir_server.reset_stats()
    third = run(fhir_base)
    assert third.status is RunStatus.UNCHANGED, third.plan and third.plan.summary
    assert fhir_server.stats()["committed_writes"] == 0
