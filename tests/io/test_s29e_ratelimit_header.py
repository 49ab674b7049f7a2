"""A 429 that says when to come back only in a ``RateLimit`` header (Medplum).

Medplum's server answers a request over its request limit or its FHIR interaction quota with
429 and an OperationOutcome ``throttled``, and no ``Retry-After``: the wait is in the
``RateLimit`` header, one item per limit with the units remaining (``r``) and the seconds
until it resets (``t``): ``"requests";r=0;t=42`` (medplum/medplum,
packages/server/src/ratelimit.ts ``addRateLimitHeader``; packages/server/src/fhirquota.ts,
tested as ``'"fhirInteractions";r=0;t=60'``). Its documentation (packages/docs/docs/rate-limits)
says: "Once a 429 Too Many Requests error is produced, applications should not retry until
after at least the indicated number of seconds have passed and the limit has been reset." The
header is the IETF HTTPAPI draft's (draft-ietf-httpapi-ratelimit-headers: ``RateLimit:
"policy";r=…;t=…``; earlier drafts ``RateLimit-Reset: <seconds>``).

fhirtis read only ``Retry-After`` and Azure's milliseconds headers, so it fell back to its
jittered backoff (0.25 s, 0.5 s, … with the defaults): every retry came back inside the same
window, was throttled again (and counted against the quota), and the read failed after its
attempts while the server's wait fitted the retry budget.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.io._bulk_protocol import (
    Manifest,
    PollSchedule,
    PollWait,
    StatusAnswer,
    poll_status,
)
from fhirtis.io._retry import RetryPolicy, retry_after_of
from tests.io._support import BASE, FakeTime

NOW = 1_700_000_000.0
#: medplum/medplum @medplum/core ``tooManyRequests``
THROTTLED = {
    "resourceType": "OperationOutcome",
    "id": "too-many-requests",
    "issue": [{"severity": "error", "code": "throttled", "details": {"text": "Too Many Requests"}}],
}


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"RateLimit": '"requests";r=0;t=42'}, 42.0),
        ({"RateLimit": '"fhirInteractions";r=0;t=60'}, 60.0),
        # both limits in one field: the exhausted one's reset counts, not the other's
        ({"RateLimit": '"requests";r=59999;t=60, "fhirInteractions";r=0;t=7'}, 7.0),
        # a request too costly for what remains (no item at 0): every limit's reset
        ({"RateLimit": '"fhirInteractions";r=1;t=30'}, 30.0),
        # earlier drafts of the header (express-rate-limit "draft-6")
        ({"RateLimit-Reset": "12", "RateLimit-Remaining": "0"}, 12.0),
        # Retry-After, where given, comes first
        ({"Retry-After": "3", "RateLimit": '"requests";r=0;t=42'}, 3.0),
        ({"RateLimit": '"requests";r=0;t=soon'}, None),
        ({"RateLimit": "garbage"}, None),
    ],
)
def test_the_wait_a_ratelimit_header_asks_for(headers: dict[str, str], seconds: float) -> None:
    assert retry_after_of(httpx.Headers(headers), NOW, 429) == seconds


def test_a_ratelimit_header_on_an_answer_that_is_not_throttled_asks_for_no_wait() -> None:
    # Medplum sends the header on every answer; only a 429 says the limit was reached
    headers = httpx.Headers({"RateLimit": '"requests";r=59990;t=43'})
    assert retry_after_of(headers, NOW, 202) is None
    assert retry_after_of(headers, NOW, 503) is None
    assert retry_after_of(headers, NOW) is None


async def test_a_medplum_429_is_retried_after_the_reset_it_names(
    httpx_mock: HTTPXMock,
    fake_time: FakeTime,
    make_config: Callable[..., FhirClientConfig],
) -> None:
    url = f"{BASE}/Patient/p1"
    httpx_mock.add_response(
        url=url,
        status_code=429,
        json=THROTTLED,
        headers={"RateLimit": '"fhirInteractions";r=0;t=20'},
    )
    httpx_mock.add_response(url=url, json={"resourceType": "Patient", "id": "p1"})
    async with FhirClient(make_config(), timing=fake_time.timing()) as client:
        patient = await client.read("Patient", "p1")
    assert patient["id"] == "p1"
    assert fake_time.sleeps == [20.0]  # not the 0.25 s of the jittered backoff
    assert len(httpx_mock.get_requests()) == 2


def _poll() -> Generator[PollWait, StatusAnswer, Manifest]:
    walk = poll_status(
        httpx.URL(f"{BASE}/bulkdata/status/1"),
        PollSchedule(interval=5, max_interval=20, budget=1000),
        RetryPolicy(3, 0.5, 30, 120),
        lambda: 0.5,
    )
    next(walk)
    return walk


def test_a_throttled_export_status_poll_waits_for_the_reset() -> None:
    walk = _poll()
    headers = httpx.Headers({"RateLimit": '"fhirInteractions";r=0;t=25'})
    assert walk.send(StatusAnswer(429, headers, b"", 0.0, NOW)).seconds == 25.0


def test_an_export_in_progress_is_polled_as_usual_beside_a_ratelimit_header() -> None:
    walk = _poll()
    headers = httpx.Headers({"RateLimit": '"requests";r=59990;t=43'})
    assert walk.send(StatusAnswer(202, headers, b"", 0.0, NOW)).seconds == 5.0
