"""A batch of searches answered 200 whose later entries were throttled (429), against the real
engine.

Azure Health Data Services / Azure API for FHIR (microsoft/fhir-server): "If an action in a
bundle does result in a 429, all subsequent actions will be skipped and will have the same 429
response", with ``Retry-After`` on the bundle response (microsoft/fhir-server PR #1658, "Change
429 handling for bundles"). The searches so answered were never run: a run must read them again
(each as a GET, which waits and retries as any 429 does), and give the same result as without
throttling; it must not fail the patient.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from fhirtis.io import Refused
from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_faults import Forwarding, run_with
from tests.e2e.test_run import load
from tests.e2e.test_vendor_shapes import _provenance_targets, _stored
from tests.e2e.test_write_withdraw import run_once
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
THROTTLED = {
    "status": "429",
    "outcome": {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "throttled",
                "diagnostics": "The request rate exceeded the provisioned throughput.",
            }
        ],
    },
}


class ThrottlesBatches(Forwarding):
    """The first ``times`` batches of searches: every entry from the third on answered 429
    (skipped), ``Retry-After: 1`` on the batch response."""

    def __init__(self, times: int = 1) -> None:
        super().__init__()
        self.times = times
        self.throttled = 0
        self.gets: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.gets.append(request.url.path)
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        is_batch = request.method == "POST" and b'"batch"' in request.content
        if not is_batch or self.throttled >= self.times or response.status_code != 200:
            return httpx.Response(response.status_code, headers=response.headers, content=body)
        answer = orjson.loads(body)
        entries = answer.get("entry") or []
        if (
            all(
                (e.get("request") or {}).get("method") == "GET"
                for e in orjson.loads(request.content).get("entry") or []
            )
            and len(entries) > 2
        ):
            self.throttled += 1
            answer["entry"] = entries[:2] + [{"response": THROTTLED} for _ in entries[2:]]
        headers = {"Content-Type": "application/fhir+json", "Retry-After": "1"}
        return httpx.Response(200, headers=headers, content=orjson.dumps(answer))


def test_throttled_entries_of_a_read_batch_are_read_again(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    plain = run_with(fhir_base, Forwarding(), write=False)
    assert plain.status is RunStatus.DRY_RUN, plain.error
    transport = ThrottlesBatches()
    throttled = run_with(fhir_base, transport, write=False)
    assert transport.throttled == 1
    assert throttled.status is RunStatus.DRY_RUN, throttled.error
    assert plain.result is not None and throttled.result is not None
    assert throttled.result.evaluation == plain.result.evaluation
    assert [d.resource for d in throttled.result.derived] == [
        d.resource for d in plain.result.derived
    ]
    assert throttled.result.issues == plain.result.issues


class ThrottlesFirstWriteBatch(Forwarding):
    """The first batch that writes: its entries from the third on are not run (answered 429
    in place, as Azure does), the others forwarded and answered by the server."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_batch = request.method == "POST" and b'"batch"' in request.content
        body = orjson.loads(request.content) if is_batch else {}
        entries = body.get("entry") or []
        writes = any((e.get("request") or {}).get("method") != "GET" for e in entries)
        if not writes or self.skipped or len(entries) < 3:
            return await self.inner.handle_async_request(request)
        self.skipped = len(entries) - 2
        forward = httpx.Request(
            "POST",
            request.url,
            headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"},
            content=orjson.dumps({**body, "entry": entries[:2]}),
        )
        response = await self.inner.handle_async_request(forward)
        answer = orjson.loads(await response.aread())
        answer["entry"] = (answer.get("entry") or []) + [
            {"response": THROTTLED} for _ in entries[2:]
        ]
        headers = {"Content-Type": "application/fhir+json", "Retry-After": "1"}
        return httpx.Response(200, headers=headers, content=orjson.dumps(answer))


def test_throttled_entries_of_a_write_batch_are_written_and_named(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    batch = (Refused("transaction"),)  # one batch of writes, then the Provenance
    load(fhir_base, responder(dvt_after_cycle=2))
    plain = run_once(fhir_base, transport=Forwarding(), learn=batch)
    assert plain.status is RunStatus.WRITTEN, plain.error
    expected = _stored(fhir_base)
    fhir_server.reset()

    load(fhir_base, responder(dvt_after_cycle=2))
    transport = ThrottlesFirstWriteBatch()
    run = run_once(fhir_base, transport=transport, learn=batch)
    assert transport.skipped > 0
    assert run.status is RunStatus.WRITTEN, run.error
    assert _stored(fhir_base) == expected  # every derived resource, once
    # the one Provenance names each of them
    stored = {w.reference for w in run.written}
    assert len(stored) == sum(len(v) for v in expected.values())
    assert set(_provenance_targets(fhir_base)) == stored
    fhir_server.reset_stats()
    again = run_once(fhir_base, transport=Forwarding(), learn=batch)
    assert again.status is RunStatus.UNCHANGED, again.error
    assert fhir_server.stats()["committed_writes"] == 0
