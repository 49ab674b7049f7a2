"""The transaction (and batch) fhirtis sends: every PUT entry (an update, a withdrawal marked
``entered-in-error``) has ``fullUrl`` ``[base]/Type/id``, the write server's absolute URL of
the resource (FHIR R4 Bundle.entry.fullUrl: "SHALL have a value except ... on a POST"; "if the
fullUrl is not a urn:uuid, the URL shall be version-independent URL consistent with the
Resource.id"; bdl-7: fullUrls unique), and the references between the entries still resolve:
the POSTed Provenance names the creates by their ``urn:uuid`` fullUrl (the server rewrites them
to ``Type/id``) and the updates by ``Type/id``; every target it stores is a resource on the
server. Run against the Medplum-based test server (transaction on ``full``, a batch where the
transaction is refused)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from fhirtis.io import FhirClient, FhirClientConfig, Refused
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings
from tests.e2e.test_run import load, search
from tests.e2e.test_write_withdraw import DERIVED_SYSTEM, STALE
from tests.fhir.patients import responder
from tests.fhir.test_conformance import _errors, _run_validator
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
# R4 instant (datatypes.html#instant): seconds and a time zone are required
INSTANT = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)


class _Recording(httpx.AsyncBaseTransport):
    """Forwards to the server; keeps every transaction or batch Bundle sent."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.bundles: list[Json] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if request.method == "POST" and body:
            doc = json.loads(body)
            writes = doc.get("resourceType") == "Bundle" and any(
                e.get("request", {}).get("method") != "GET" for e in doc.get("entry", [])
            )
            if writes and doc.get("type") in ("transaction", "batch"):
                self.bundles.append(doc)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _run(base: str, transport: _Recording, learn: tuple[Refused, ...]) -> PatientRun:
    async def go() -> PatientRun:
        async with (
            httpx.AsyncClient(transport=transport) as http,
            FhirClient(FhirClientConfig(base_url=base), http=http) as client,
        ):
            if learn:
                await client.capabilities()
                for refused in learn:
                    client.learn(refused)
            return await run_patient(client, "p1", Settings(), write=True)

    return asyncio.run(go())


def _check_sent(bundle: Json, base: str) -> int:
    """Every non-POST entry with a resource has fullUrl [base]/Type/id; fullUrls unique.
    Returns how many PUT entries there were."""
    puts = 0
    urls = [e["fullUrl"] for e in bundle["entry"] if "fullUrl" in e]
    assert len(urls) == len(set(urls)), "bdl-7"
    for e in bundle["entry"]:
        request = e["request"]
        if request["method"] != "PUT":
            continue
        puts += 1
        resource = e["resource"]
        assert request["url"] == f"{resource['resourceType']}/{resource['id']}"
        assert e.get("fullUrl") == f"{base}/{request['url']}"
    return puts


def _observation(rid: str, value: str) -> Json:
    return {
        "resourceType": "Observation",
        "id": rid,
        "identifier": [{"system": DERIVED_SYSTEM, "value": value}],
        "status": "final",
        "code": {
            "coding": [{"system": "http://fhirtis.org/fhir/CodeSystem/fhirtis", "code": "tis"}]
        },
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 1},
    }


@pytest.mark.parametrize("learn", [(), (Refused("transaction"),)], ids=["transaction", "batch"])
def test_put_entries_carry_their_absolute_url_and_references_resolve(
    fhir_server: FhirTestServer, fhir_base: str, learn: tuple[Refused, ...]
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    # fhirtis's earlier output it no longer derives: withdrawn by a PUT in the same write as
    # the creates, both named by the one Provenance
    httpx.put(
        f"{fhir_base}/Observation/stale", json=_observation("stale", STALE)
    ).raise_for_status()

    recording = _Recording()
    first = _run(fhir_base, recording, learn)
    assert first.status is RunStatus.WRITTEN, first.error
    assert recording.bundles, "nothing was sent as one Bundle"
    assert sum(_check_sent(b, fhir_base) for b in recording.bundles) == 1  # the withdrawal

    # a stored derived Observation changed by someone else: the next run updates it back (PUT
    # with If-Match)
    ours = [
        r
        for r in search(fhir_base, "Observation", identifier=f"{DERIVED_SYSTEM}|")
        if r["id"] != "stale"
    ]
    tampered = next(r for r in ours if "valueQuantity" in r)
    tampered["valueQuantity"] = {**tampered["valueQuantity"], "value": 12345}
    tampered.pop("meta", None)
    httpx.put(f"{fhir_base}/Observation/{tampered['id']}", json=tampered).raise_for_status()
    recording.bundles.clear()
    second = _run(fhir_base, recording, learn)
    assert second.status is RunStatus.WRITTEN, second.error
    assert sum(_check_sent(b, fhir_base) for b in recording.bundles) == 1
    stored = httpx.get(f"{fhir_base}/Observation/{tampered['id']}").json()
    assert stored["valueQuantity"]["value"] != 12345

    provenances = search(fhir_base, "Provenance")
    assert len(provenances) == 2
    targets = [t["reference"] for p in provenances for t in p["target"]]
    assert "Observation/stale" in targets
    assert f"Observation/{tampered['id']}" in targets
    for target in targets:
        assert not target.startswith("urn:"), target
        assert httpx.get(f"{fhir_base}/{target}").status_code == 200, target


@pytest.mark.parametrize(
    ("profile", "learn"),
    [("full", ()), ("full", (Refused("transaction"),)), ("no-transaction", ())],
    ids=["transaction", "batch", "singles"],
)
def test_the_written_provenance_is_recorded_when_it_is_written(
    fhir_server: FhirTestServer, fhir_base: str, profile: str, learn: tuple[Refused, ...]
) -> None:
    """R4 Provenance.recorded: "The instant of time at which the activity was recorded"
    (provenance-definitions.html#Provenance.recorded). The activity is this write; the data's
    latest clinical time (the evaluation's "as of", 2024 for this patient) is not when it was
    recorded."""
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    fhir_server.set_profile(profile)
    before = datetime.now(UTC).replace(microsecond=0)
    run = _run(fhir_base, _Recording(), learn)
    after = datetime.now(UTC)
    assert run.status is RunStatus.WRITTEN, run.error
    assert run.result is not None and run.result.evaluation.as_of < before
    fhir_server.set_profile("full")
    (provenance,) = search(fhir_base, "Provenance")
    recorded = provenance["recorded"]
    assert INSTANT.fullmatch(recorded), recorded
    assert before <= datetime.fromisoformat(recorded.replace("Z", "+00:00")) <= after


@pytest.mark.parametrize("learn", [(), (Refused("transaction"),)], ids=["transaction", "batch"])
def test_the_write_bundles_and_the_provenance_conform_to_r4_and_the_profiles(
    fhir_server: FhirTestServer, fhir_base: str, learn: tuple[Refused, ...]
) -> None:
    """What test_conformance checks of the offline plan (creates only), checked of what a run
    sends: a Bundle with updates and a withdrawal (PUT), and the Provenance as stored (its
    targets and ``recorded`` set by the writer)."""
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    stale = _observation("stale", STALE)
    httpx.put(f"{fhir_base}/Observation/stale", json=stale).raise_for_status()
    recording = _Recording()
    first = _run(fhir_base, recording, learn)
    assert first.status is RunStatus.WRITTEN, first.error
    sent = list(recording.bundles)
    assert any(e["request"]["method"] == "PUT" for b in sent for e in b["entry"])
    provenances = search(fhir_base, "Provenance")
    results = _run_validator([], [*sent, *provenances])
    errors = _errors(results)
    assert not errors, "\n".join(errors)
