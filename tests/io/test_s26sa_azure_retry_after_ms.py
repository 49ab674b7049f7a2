"""Azure's FHIR server throttles with ``x-ms-retry-after-ms`` only.

microsoft/fhir-server, src/Microsoft.Health.Fhir.Api/Features/Throttling/ThrottlingMiddleware.cs:
a request over the concurrent-request limit is answered 429 with an OperationOutcome and
``context.Response.Headers[KnownHeaders.RetryAfterMilliseconds]`` ("note we are aligning with
Cosmos DB and not returning the standard header (which is in seconds)"); KnownHeaders
.RetryAfterMilliseconds is ``x-ms-retry-after-ms``. Azure's own SDK retry strategy
(@azure/core-rest-pipeline, retryStrategies/throttlingRetryStrategy.js) reads
``retry-after-ms`` and ``x-ms-retry-after-ms`` (milliseconds) before ``Retry-After``.

A client that reads ``Retry-After`` only falls back to its jittered backoff: it comes back
sooner than the server asked (and is throttled again), or gives up within its attempts while
the server's wait would have fitted the budget.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.io._bulk_protocol import PollSchedule, StatusAnswer, poll_status
from fhirtis.io._retry import RetryPolicy, retry_after_of
from tests.io._support import BASE, FakeTime

NOW = 1_700_000_000.0
THROTTLED = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "throttled", "diagnostics": "Too many requests"}],
}


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-ms-retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "3"}, 3.0),
        # both, as the FHIR server's bundle handler adds them: the precise one wins
        ({"x-ms-retry-after-ms": "1200", "Retry-After": "1"}, 1.2),
        ({"x-ms-retry-after-ms": "soon", "Retry-After": "2"}, 2.0),  # unreadable: next header
        ({"x-ms-retry-after-ms": "-5"}, None),
        ({}, None),
    ],
)
def test_the_wait_a_throttled_answer_asks_for(headers: dict[str, str], seconds: float) -> None:
    assert retry_after_of(httpx.Headers(headers), NOW) == seconds


async def test_an_azure_429_is_retried_after_the_milliseconds_it_asks_for(
    httpx_mock: HTTPXMock,
    fake_time: FakeTime,
    make_config: Callable[..., FhirClientConfig],
) -> None:
    url = f"{BASE}/Patient/p1"
    httpx_mock.add_response(
        url=url, status_code=429, json=THROTTLED, headers={"x-ms-retry-after-ms": "4000"}
    )
    httpx_mock.add_response(url=url, json={"resourceType": "Patient", "id": "p1"})
    config = make_config(retry_backoff_base_seconds=0.5, retry_backoff_max_seconds=1.0)
    async with FhirClient(config, timing=fake_time.timing()) as client:
        patient = await client.read("Patient", "p1")
    assert patient["id"] == "p1"
    assert fake_time.sleeps == [4.0]  # not the 0.25 s of the jittered backoff
    assert len(httpx_mock.get_requests()) == 2


def test_a_throttled_export_status_poll_waits_the_milliseconds_it_asks_for() -> None:
    """The ``$export`` status poll goes through the same throttling middleware."""
    walk = poll_status(
        httpx.URL(f"{BASE}/_operations/export/1"),
        PollSchedule(interval=5, max_interval=20, budget=1000),
        RetryPolicy(3, 0.5, 30, 120),
        lambda: 0.5,
    )
    next(walk)
    throttled = StatusAnswer(429, httpx.Headers({"x-ms-retry-after-ms": "7000"}), b"", 0.0, NOW)
    assert walk.send(throttled).seconds == 7.0  # not the 0.25 s of the jittered backoff
