"""A write that its deadline (``request_deadline_seconds``) stops before it is sent is not sent.

The deadline covers the whole attempt: its turn under ``max_requests_per_second``, a free slot
of ``concurrency``, the access token, then the exchange. A write stopped while still waiting
for its slot or its token was reported :class:`WriteOutcomeUnknown` ("may have reached the
server ... re-read and plan again"), though the FHIR server never saw it: it is a timeout of a
request not sent (:class:`TooManyRetries`, ``timed_out``), as a pool timeout is. A write
stopped after it was sent still has an unknown outcome (test_s36slow_fhir_wait_deadline)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig, TooManyRetries, WriteOutcomeUnknown

BASE = "http://fhir.test/fhir"
TRANSACTION = {"resourceType": "Bundle", "type": "transaction", "entry": []}


async def _transaction_fails_unsent(fhir: FhirClient) -> None:
    started = time.monotonic()
    with pytest.raises(TooManyRetries) as failed:
        await fhir.transaction(TRANSACTION)
    assert failed.value.timed_out  # 504 for a caller, as before
    assert time.monotonic() - started < 2


async def test_a_write_waiting_for_a_slot_at_its_deadline_was_not_sent(
    httpx_mock: HTTPXMock,
) -> None:
    config = FhirClientConfig(
        base_url=BASE, concurrency=1, request_deadline_seconds=0.2, retry_max_attempts=1
    )
    fhir = FhirClient(config)
    async with fhir, fhir._in_flight:  # the one slot, held by a request in flight
        await _transaction_fails_unsent(fhir)
    assert httpx_mock.get_requests() == []


@pytest.mark.httpx_mock(assert_all_responses_were_requested=False)
async def test_a_write_waiting_for_its_token_at_its_deadline_was_not_sent(
    httpx_mock: HTTPXMock,
) -> None:
    async def token_endpoint(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # never answers; the deadline ends the wait
        raise AssertionError("unreachable")

    httpx_mock.add_callback(token_endpoint, url="http://fhir.test/token", is_reusable=True)
    httpx_mock.add_response(url=f"{BASE}/metadata", status_code=404, json={}, is_optional=True)
    config = FhirClientConfig(
        base_url=BASE,
        auth_mode="client-secret",
        client_id="fhirtis",
        client_secret="s3cret",
        scope="system/*.rs system/*.cu",
        token_url="http://fhir.test/token",
        request_deadline_seconds=0.2,
        retry_max_attempts=1,
    )
    async with FhirClient(config) as fhir:
        await _transaction_fails_unsent(fhir)
    assert [str(r.url) for r in httpx_mock.get_requests()] == ["http://fhir.test/token"]


async def test_a_write_sent_and_cut_off_by_its_deadline_is_still_unknown(
    httpx_mock: HTTPXMock,
) -> None:
    async def hanging(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    httpx_mock.add_callback(hanging, url=BASE, method="POST")
    config = FhirClientConfig(base_url=BASE, request_deadline_seconds=0.2)
    async with FhirClient(config) as fhir:
        with pytest.raises(WriteOutcomeUnknown):
            await fhir.transaction(TRANSACTION)
    assert [r.method for r in httpx_mock.get_requests()] == ["POST"]
