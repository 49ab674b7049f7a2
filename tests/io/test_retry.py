"""Retries: backoff with full jitter, Retry-After, budgets, and what may be re-sent."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import (
    FhirClient,
    FhirClientConfig,
    FhirResponse,
    TooManyRetries,
    WriteOutcomeUnknown,
)
from fhirtis.io._retry import RetryPolicy, is_idempotent, parse_retry_after
from tests.io._support import BASE, FakeTime, patient, searchset

ConfigFactory = Callable[..., FhirClientConfig]
PATIENT_URL = f"{BASE}/Patient/p1"
TRANSACTION: dict[str, Any] = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "resource": {"resourceType": "Observation", "status": "final"},
            "request": {"method": "POST", "url": "Observation"},
        }
    ],
}
TRANSACTION_RESPONSE = {"resourceType": "Bundle", "type": "transaction-response", "entry": []}


@pytest.fixture
def fhir(make_config: ConfigFactory, fake_time: FakeTime) -> FhirClient:
    return FhirClient(make_config(), timing=fake_time.timing())


async def test_429_with_retry_after_seconds_then_success(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=PATIENT_URL, status_code=429, headers={"Retry-After": "7"})
    httpx_mock.add_response(url=PATIENT_URL, json=patient(1))
    async with fhir:
        assert (await fhir.read("Patient", "p1"))["id"] == "p1"
    assert fake_time.sleeps == [7.0]
    assert len(httpx_mock.get_requests()) == 2


async def test_429_with_retry_after_http_date_then_success(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    when = email.utils.formatdate(fake_time.wall + 12, usegmt=True)
    httpx_mock.add_response(url=PATIENT_URL, status_code=429, headers={"Retry-After": when})
    httpx_mock.add_response(url=PATIENT_URL, json=patient(1))
    async with fhir:
        await fhir.read("Patient", "p1")
    assert fake_time.sleeps == [12.0]
    assert len(httpx_mock.get_requests()) == 2


async def test_503_then_success_uses_jittered_backoff(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=PATIENT_URL, status_code=503)
    httpx_mock.add_response(url=PATIENT_URL, json=patient(1))
    fake_time.rand = 0.4
    async with fhir:
        await fhir.read("Patient", "p1")
    assert fake_time.sleeps == [pytest.approx(0.4 * 0.5)]  # full jitter: rand * base * 2**0


async def test_backoff_grows_exponentially_up_to_the_cap(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    config = make_config(
        retry_max_attempts=6, retry_backoff_base_seconds=1.0, retry_backoff_max_seconds=5.0
    )
    for status in (502, 503, 504, 503, 502):
        httpx_mock.add_response(url=PATIENT_URL, status_code=status)
    httpx_mock.add_response(url=PATIENT_URL, json=patient(1))
    fake_time.rand = 1.0
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        await fhir.read("Patient", "p1")
    assert fake_time.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_exhausted_retries_raise_too_many_retries(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    for _ in range(5):
        httpx_mock.add_response(url=PATIENT_URL, status_code=503)
    async with fhir:
        with pytest.raises(TooManyRetries) as caught:
            await fhir.read("Patient", "p1")
    assert caught.value.attempts == 5
    assert caught.value.last_status == 503
    assert "HTTP 503" in str(caught.value)
    assert len(httpx_mock.get_requests()) == 5  # max_attempts defaults to 5
    assert len(fake_time.sleeps) == 4


async def test_retry_after_beyond_the_budget_gives_up_without_sleeping(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=PATIENT_URL, status_code=503, headers={"Retry-After": "600"})
    config = make_config(retry_budget_seconds=60)
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        with pytest.raises(TooManyRetries) as caught:
            await fhir.read("Patient", "p1")
    assert caught.value.attempts == 1
    assert fake_time.sleeps == []


async def test_budget_caps_total_time(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    for _ in range(3):
        httpx_mock.add_response(url=PATIENT_URL, status_code=429, headers={"Retry-After": "20"})
    config = make_config(retry_budget_seconds=45, retry_max_attempts=10)
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        with pytest.raises(TooManyRetries):
            await fhir.read("Patient", "p1")
    assert fake_time.sleeps == [20.0, 20.0]  # a third wait would end at 60 s > 45 s
    assert len(httpx_mock.get_requests()) == 3


async def test_timeout_on_get_is_retried(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("read timed out"), url=PATIENT_URL)
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=PATIENT_URL)
    httpx_mock.add_response(url=PATIENT_URL, json=patient(1))
    async with fhir:
        assert (await fhir.read("Patient", "p1"))["id"] == "p1"
    assert len(httpx_mock.get_requests()) == 3
    assert len(fake_time.sleeps) == 2


async def test_timeouts_exhausted_raise_too_many_retries_chained(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    for _ in range(2):
        httpx_mock.add_exception(httpx.ReadTimeout("read timed out"), url=PATIENT_URL)
    config = make_config(retry_max_attempts=2)
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        with pytest.raises(TooManyRetries) as caught:
            await fhir.read("Patient", "p1")
    assert caught.value.last_status is None
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


async def test_every_request_carries_the_configured_timeouts(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=PATIENT_URL, json=patient(1))
    config = make_config(connect_timeout_seconds=3.0, read_timeout_seconds=42.0)
    async with httpx.AsyncClient() as shared:  # a caller's client without our timeouts
        fhir = FhirClient(config, http=shared, timing=fake_time.timing())
        await fhir.read("Patient", "p1")
    request = httpx_mock.get_request()
    assert request is not None
    assert request.extensions["timeout"] == {
        "connect": 3.0,
        "read": 42.0,
        "write": 42.0,
        "pool": 3.0,
    }


# -- non-idempotent requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.ReadError("connection reset"),
    ],
)
async def test_transaction_timeout_raises_write_outcome_unknown_and_is_sent_once(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime, failure: Exception
) -> None:
    httpx_mock.add_exception(failure, method="POST", url=BASE)
    async with fhir:
        with pytest.raises(WriteOutcomeUnknown) as caught:
            await fhir.transaction(TRANSACTION)
    assert len(httpx_mock.get_requests()) == 1
    assert fake_time.sleeps == []
    assert caught.value.method == "POST"
    assert "not re-sent" in str(caught.value)


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("connect"), httpx.PoolTimeout("")],
)
async def test_transaction_failing_before_sending_is_retried(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime, failure: Exception
) -> None:
    httpx_mock.add_exception(failure, method="POST", url=BASE)
    httpx_mock.add_response(method="POST", url=BASE, json=TRANSACTION_RESPONSE)
    async with fhir:
        result = await fhir.transaction(TRANSACTION)
    assert result["type"] == "transaction-response"
    assert len(httpx_mock.get_requests()) == 2
    assert len(fake_time.sleeps) == 1


@pytest.mark.parametrize("status", [429, 503])
async def test_transaction_not_processed_status_is_retried(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime, status: int
) -> None:
    httpx_mock.add_response(method="POST", url=BASE, status_code=status)
    httpx_mock.add_response(method="POST", url=BASE, json=TRANSACTION_RESPONSE)
    async with fhir:
        await fhir.transaction(TRANSACTION)
    assert len(httpx_mock.get_requests()) == 2


@pytest.mark.parametrize("status", [502, 504])
async def test_transaction_gateway_error_is_not_resent(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime, status: int
) -> None:
    httpx_mock.add_response(method="POST", url=BASE, status_code=status)
    async with fhir:
        with pytest.raises(WriteOutcomeUnknown):
            await fhir.transaction(TRANSACTION)
    assert len(httpx_mock.get_requests()) == 1


async def test_transaction_body_is_sent_as_fhir_json(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(method="POST", url=BASE, json=TRANSACTION_RESPONSE)
    async with fhir:
        await fhir.transaction(TRANSACTION)
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["Content-Type"] == "application/fhir+json"
    assert request.headers["Accept"] == "application/fhir+json"
    assert httpx.Response(200, content=request.content).json() == TRANSACTION


async def test_plain_create_timeout_is_not_resent(httpx_mock: HTTPXMock, fhir: FhirClient) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("t"), method="POST", url=f"{BASE}/Observation")
    async with fhir:
        with pytest.raises(WriteOutcomeUnknown):
            await fhir.request("POST", "Observation", json={"resourceType": "Observation"})
    assert len(httpx_mock.get_requests()) == 1


async def _conditional_create(fhir: FhirClient) -> FhirResponse:
    return await fhir.request(
        "POST",
        "Observation",
        json={"resourceType": "Observation"},
        headers={"If-None-Exist": "identifier=urn:x|1"},
    )


async def test_conditional_create_timeout_is_retried(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    url = f"{BASE}/Observation"
    httpx_mock.add_exception(httpx.ReadTimeout("t"), method="POST", url=url)
    httpx_mock.add_response(method="POST", url=url, status_code=201, headers={"ETag": 'W/"1"'})
    async with fhir:
        response = await _conditional_create(fhir)
    assert response.status == 201
    assert response.etag == 'W/"1"'
    assert len(httpx_mock.get_requests()) == 2


@pytest.mark.parametrize(
    ("first", "resent"),
    [
        (httpx.ReadTimeout("t"), True),  # sent, answer lost: the first try may have created it
        (httpx.ConnectError("refused"), False),  # never reached the server
        (502, True),  # a gateway: the server may have processed it
        (503, False),  # not processed
    ],
)
async def test_an_answer_after_a_try_that_may_have_reached_the_server_says_so(
    httpx_mock: HTTPXMock, fhir: FhirClient, first: Exception | int, resent: bool
) -> None:
    url = f"{BASE}/Observation"
    if isinstance(first, int):
        httpx_mock.add_response(method="POST", url=url, status_code=first)
    else:
        httpx_mock.add_exception(first, method="POST", url=url)
    httpx_mock.add_response(method="POST", url=url, status_code=200)  # "exists"
    async with fhir:
        response = await _conditional_create(fhir)
    assert response.status == 200
    assert response.resent is resent
    assert len(httpx_mock.get_requests()) == 2


async def test_an_answer_to_the_first_try_is_not_resent(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(method="POST", url=f"{BASE}/Observation", status_code=201)
    async with fhir:
        response = await _conditional_create(fhir)
    assert response.status == 201 and response.resent is False


async def test_if_match_update_timeout_is_retried(httpx_mock: HTTPXMock, fhir: FhirClient) -> None:
    url = f"{BASE}/Observation/o1"
    httpx_mock.add_exception(httpx.ReadTimeout("t"), method="PUT", url=url)
    httpx_mock.add_response(method="PUT", url=url, json={"resourceType": "Observation"})
    async with fhir:
        await fhir.request(
            "PUT",
            "Observation/o1",
            json={"resourceType": "Observation", "id": "o1"},
            headers={"If-Match": 'W/"3"'},
        )
    assert len(httpx_mock.get_requests()) == 2


async def test_post_search_timeout_is_retried(httpx_mock: HTTPXMock, fhir: FhirClient) -> None:
    url = f"{BASE}/Observation/_search"
    httpx_mock.add_exception(httpx.ReadTimeout("t"), method="POST", url=url)
    httpx_mock.add_response(method="POST", url=url, json=searchset([]))
    async with fhir:
        assert [e async for e in fhir.search("Observation", use_post=True)] == []
    assert len(httpx_mock.get_requests()) == 2


async def test_read_only_batch_is_retried_but_a_writing_batch_is_not(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    reads = [{"request": {"method": "GET", "url": "Patient/p1"}}]
    writes = [*reads, {"request": {"method": "DELETE", "url": "Flag/f1"}}]
    response = {"resourceType": "Bundle", "type": "batch-response", "entry": []}
    httpx_mock.add_exception(httpx.ReadTimeout("t"), method="POST", url=BASE)
    httpx_mock.add_response(method="POST", url=BASE, json=response)
    httpx_mock.add_exception(httpx.ReadTimeout("t"), method="POST", url=BASE)
    async with fhir:
        assert await fhir.batch(reads) == response
        with pytest.raises(WriteOutcomeUnknown):
            await fhir.batch(writes)
    sent = httpx_mock.get_requests()
    assert len(sent) == 3
    assert httpx.Response(200, content=sent[0].content).json() == {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": reads,
    }


async def test_explicit_idempotent_flag_overrides_the_rules(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    url = f"{BASE}/Patient/p1/$everything"
    httpx_mock.add_exception(httpx.ReadTimeout("t"), method="POST", url=url)
    httpx_mock.add_response(method="POST", url=url, json=searchset([]))
    async with fhir:
        response = await fhir.request("POST", "Patient/p1/$everything", idempotent=True)
    assert response.body is not None
    assert len(httpx_mock.get_requests()) == 2


# -- the pure rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("-3", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(value, now) == expected


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "expected"),
    [
        ("GET", "Patient/1", {}, None, True),
        ("HEAD", "Patient/1", {}, None, True),
        ("DELETE", "Flag/1", {}, None, True),
        ("PUT", "Patient/1", {}, None, False),
        ("PUT", "Patient/1", {"If-Match": 'W/"2"'}, None, True),
        ("PATCH", "Patient/1", {}, None, False),
        ("POST", "Observation", {}, None, False),
        ("POST", "Observation", {"If-None-Exist": "identifier=a|b"}, None, True),
        ("POST", "Observation/_search", {}, None, True),
        ("POST", "", {}, {"resourceType": "Bundle", "type": "transaction", "entry": []}, False),
        (
            "POST",
            "",
            {},
            {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET"}}]},
            True,
        ),
        (
            "POST",
            "",
            {},
            {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "PUT"}}]},
            False,
        ),
        ("POST", "", {}, {"resourceType": "Bundle", "type": "batch", "entry": [{}]}, False),
    ],
)
def test_is_idempotent(
    method: str, path: str, headers: dict[str, str], body: Any, expected: bool
) -> None:
    assert is_idempotent(method, httpx.URL(f"{BASE}/{path}"), headers, body) is expected


def test_policy_full_jitter_and_limits() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_base=2.0, backoff_max=3.0, budget=100.0)
    assert policy.next_delay(1, 0.0, None, lambda: 0.0) == 0.0
    assert policy.next_delay(1, 0.0, None, lambda: 0.99) == pytest.approx(1.98)
    assert policy.next_delay(2, 0.0, None, lambda: 1.0) == 3.0  # capped at backoff_max
    assert policy.next_delay(3, 0.0, None, lambda: 1.0) is None  # attempts used up
    assert policy.next_delay(1, 99.0, 2.0, lambda: 1.0) is None  # over the budget
    assert policy.next_delay(1, 0.0, 9.0, lambda: 0.0) == 9.0  # Retry-After wins over jitter
