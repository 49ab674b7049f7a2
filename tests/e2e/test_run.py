"""fhirtis against a real FHIR engine: pull, evaluate, write back, re-run, edit a source."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]


def load(base: str, collection: Json) -> None:
    """Load a Bundle's resources into the server as one transaction of PUTs."""
    entries = [
        {
            "resource": e["resource"],
            "request": {
                "method": "PUT",
                "url": f"{e['resource']['resourceType']}/{e['resource']['id']}",
            },
        }
        for e in collection["entry"]
    ]
    r = httpx.post(base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    r.raise_for_status()


def run(base: str, patient: str = "p1", *, write: bool = True) -> PatientRun:
    async def go() -> PatientRun:
        async with FhirClient(FhirClientConfig(base_url=base, page_size=5)) as client:
            return await run_patient(client, patient, Settings(), write=write)

    return asyncio.run(go())


def search(base: str, rtype: str, **params: str) -> list[Json]:
    out: list[Json] = []
    url: str | None = f"{base}/{rtype}"
    query: dict[str, str] | None = {**params, "_count": "100"}
    while url:
        bundle = httpx.get(url, params=query).json()
        out.extend(e["resource"] for e in bundle.get("entry", []))
        url = next(
            (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
        )
        query = None
    return out


def test_write_back_rerun_and_edit(fhir_base: str, fhir_server: FhirTestServer) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.reset_stats()

    first = run(fhir_base)
    assert first.status is RunStatus.WRITTEN, first.error
    # the patient, fhirtis's earlier output, and (after the creates) the duplicate check
    assert first.requests == {"read": 3, "write": 1}
    assert first.plan is not None and first.plan.summary["create"] > 0
    tis = search(fhir_base, "Observation", code="http://fhirtis.org/fhir/CodeSystem/fhirtis|tis")
    assert sorted(o["effectivePeriod"]["end"] for o in tis) == [
        "2024-02-04",
        "2024-03-03",
        "2024-03-31",
    ]
    last = max(tis, key=lambda o: o["effectivePeriod"]["end"])
    assert last["valueQuantity"]["value"] == 62.5
    assert any(r["reference"].startswith("Observation/pga3/_history/") for r in last["derivedFrom"])
    assert len(search(fhir_base, "AdverseEvent")) == 1
    derived_count = first.plan.summary["create"]
    provenances = search(fhir_base, "Provenance")
    assert len(provenances) == 1
    assert len(provenances[0]["target"]) == derived_count
    assert all(not t["reference"].startswith("urn:") for t in provenances[0]["target"])

    # Again: nothing new is written, and the run says so.
    fhir_server.reset_stats()
    second = run(fhir_base)
    assert second.status is RunStatus.UNCHANGED
    # the derived resources, the capabilities, and whether a Provenance names what is stored
    assert second.requests == {"read": 3}
    assert fhir_server.stats()["committed_writes"] == 0
    assert len(search(fhir_base, "Provenance")) == 1

    # Edit one source Observation: exactly the resources derived from it are updated, with a
    # new Provenance naming just them.
    pga3 = httpx.get(f"{fhir_base}/Observation/pga3").json()
    pga3["valueQuantity"]["value"] = 1  # 6 → 1 cm: 50 %, 20 points instead of 17.5
    httpx.put(f"{fhir_base}/Observation/pga3", json=pga3).raise_for_status()
    third = run(fhir_base)
    assert third.status is RunStatus.WRITTEN
    assert third.plan is not None
    updated = {
        (rtype, action.value) for rtype, _, action in third.planned if action.value == "update"
    }
    assert third.plan.summary["update"] == 2  # the week-12 TIS and the deterioration summary
    assert third.plan.summary["create"] == 0
    assert updated == {("Observation", "update")}
    tis_after = search(
        fhir_base, "Observation", code="http://fhirtis.org/fhir/CodeSystem/fhirtis|tis"
    )
    assert len(tis_after) == 3
    assert max(tis_after, key=lambda o: o["effectivePeriod"]["end"])["valueQuantity"]["value"] == 65
    provenances = search(fhir_base, "Provenance")
    assert len(provenances) == 2
    newest = max(
        provenances, key=lambda p: int(p["meta"]["versionId"]) and p["meta"]["lastUpdated"]
    )
    assert len(newest["target"]) == 2
    assert any(e["what"]["reference"] == "Observation/pga3/_history/2" for e in newest["entity"])


def test_dry_run_writes_nothing(fhir_base: str, fhir_server: FhirTestServer) -> None:
    load(fhir_base, responder())
    fhir_server.reset_stats()
    result = run(fhir_base, write=False)
    assert result.status is RunStatus.DRY_RUN
    assert result.plan is not None and result.plan.summary["create"] > 0
    assert fhir_server.stats()["committed_writes"] == 0


def test_unknown_patient(fhir_base: str) -> None:
    result = run(fhir_base, "nobody")
    assert result.status is RunStatus.NOT_FOUND
