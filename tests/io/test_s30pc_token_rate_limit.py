"""A SMART backend-services token endpoint that answers 429 Too Many Requests.

Epic rate-limits its OAuth 2.0 token endpoint (fhir.epic.com, "Backend OAuth 2.0": a backend
client should reuse its access token until it expires rather than request one per call, and
is throttled with 429 when it does not) and Oracle Health's authorization server answers 429
with ``Retry-After`` (Oracle Health Millennium Platform, "Authorization Framework",
rate limiting); Medplum's token endpoint shares the server's limiter, whose 429 says when to
come back only in the IETF ``RateLimit`` header (medplum/medplum packages/server/src/ratelimit.ts
``addRateLimitHeader``: ``"requests";r=0;t=42``; no ``Retry-After``).

A FHIR request's own 429 is waited out by :func:`fhirtis.io._retry.retry_after_of` (a
milliseconds header, ``Retry-After`` in seconds or as an HTTP date, a 429's ``RateLimit`` /
``RateLimit-Reset``). The token endpoint's 429 read only ``Retry-After``: with a ``RateLimit``
header alone fhirtis retried on its jittered backoff inside the throttled window, was refused
again each time, and failed after its attempts although the server's wait fitted the budget.
Now both go through the one rule; the attempts stay bounded, and the error that ends them
names neither the token nor the client's credentials.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable

import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig, TooManyRetries
from tests.io._support import BASE, TOKEN_URL, FakeTime, patient, token_response

#: the throttled answer of an OAuth endpoint: an RFC 6749 §5.2-shaped body, as Epic and
#: Oracle Health send (no access token in it)
THROTTLED = {"error": "temporarily_unavailable", "error_description": "Rate limit exceeded"}


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"RateLimit": '"requests";r=0;t=42'}, 42.0),  # Medplum
        ({"RateLimit-Reset": "12", "RateLimit-Remaining": "0"}, 12.0),  # earlier drafts
        ({"Retry-After": "7"}, 7.0),  # Epic, Oracle Health
    ],
)
async def test_a_throttled_token_request_waits_as_the_server_asks(
    httpx_mock: HTTPXMock,
    smart_config: Callable[..., FhirClientConfig],
    fake_time: FakeTime,
    headers: dict[str, str],
    wait: float,
) -> None:
    httpx_mock.add_response(
        method="POST", url=TOKEN_URL, status_code=429, json=THROTTLED, headers=headers
    )
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", json=patient(1))
    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        assert (await fhir.read("Patient", "p1"))["id"] == "p1"
    assert fake_time.sleeps == [wait]  # not the jittered backoff's fraction of a second
    assert len(httpx_mock.get_requests(method="POST", url=TOKEN_URL)) == 2


async def test_a_token_429_with_an_http_date_waits_until_then(
    httpx_mock: HTTPXMock, smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    when = email.utils.formatdate(fake_time.timing().time() + 30, usegmt=True)
    httpx_mock.add_response(
        method="POST", url=TOKEN_URL, status_code=429, headers={"Retry-After": when}
    )
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", json=patient(1))
    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        await fhir.read("Patient", "p1")
    assert len(fake_time.sleeps) == 1
    assert 29.0 <= fake_time.sleeps[0] <= 30.0


async def test_a_token_endpoint_throttling_past_the_attempts_fails_clearly(
    httpx_mock: HTTPXMock,
    smart_config: Callable[..., FhirClientConfig],
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = smart_config(token_url=TOKEN_URL, retry_max_attempts=3)
    httpx_mock.add_response(
        method="POST",
        url=TOKEN_URL,
        status_code=429,
        json=THROTTLED,
        headers={"RateLimit": '"requests";r=0;t=5'},
        is_reusable=True,
    )
    caplog.set_level("DEBUG")
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        with pytest.raises(TooManyRetries) as caught:
            await fhir.read("Patient", "p1")
    assert caught.value.attempts == 3
    assert caught.value.last_status == 429
    assert "token endpoint" in str(caught.value)
    assert fake_time.sleeps == [5.0, 5.0]
    assert len(httpx_mock.get_requests(method="POST", url=TOKEN_URL)) == 3
    assert not httpx_mock.get_requests(url=f"{BASE}/Patient/p1")  # never sent without a token
    sent = httpx_mock.get_requests(method="POST", url=TOKEN_URL)[0].content.decode()
    assertion = sent.split("client_assertion=", 1)[1].split("&", 1)[0]
    for text in (str(caught.value), caplog.text):
        assert assertion not in text
        assert "Rate limit exceeded" not in text  # the server's body is not echoed
