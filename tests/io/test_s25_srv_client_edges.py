"""What the client raises for answers a gateway mangles: only :class:`FhirClientError`s leave
``fhirtis.io`` (its errors module: "Base class of every error raised by ``fhirtis.io``"), so
that a run reports the patient as failed instead of stopping."""

from __future__ import annotations

import gzip

import httpx
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig, MalformedResponse
from tests.io._support import BASE

PATIENT = b'{"resourceType":"Patient","id":"p1"}'


def _answer(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, stream=httpx.ByteStream(body), headers={"Content-Encoding": "gzip"}
    )


async def test_a_gzip_answer_is_read(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_callback(lambda _: _answer(gzip.compress(PATIENT)), url=f"{BASE}/Patient/p1")
    async with FhirClient(FhirClientConfig(base_url=BASE)) as fhir:
        assert await fhir.read("Patient", "p1") == {"resourceType": "Patient", "id": "p1"}


async def test_an_answer_labelled_gzip_that_is_not_is_a_malformed_response(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_callback(lambda _: _answer(PATIENT), url=f"{BASE}/Patient/p1")
    async with FhirClient(FhirClientConfig(base_url=BASE)) as fhir:
        try:
            await fhir.read("Patient", "p1")
        except MalformedResponse as exc:
            assert "Content-Encoding" in str(exc)
            assert exc.url == f"{BASE}/Patient/p1"
        else:  # pragma: no cover - the assertion below says what went wrong
            raise AssertionError("no error")


async def test_a_truncated_gzip_search_page_is_a_malformed_response(
    httpx_mock: HTTPXMock,
) -> None:
    body = gzip.compress(b'{"resourceType":"Bundle","type":"searchset","entry":[]}')[:-12]
    httpx_mock.add_callback(lambda _: _answer(body), url=f"{BASE}/Condition?_count=100")
    async with FhirClient(FhirClientConfig(base_url=BASE)) as fhir:
        try:
            [p async for p in fhir.search_bundle_pages("Condition")]
        except MalformedResponse:
            pass
        else:  # pragma: no cover
            raise AssertionError("no error")


async def test_a_gateway_error_page_labelled_gzip_that_is_not_is_retried_then_said(
    httpx_mock: HTTPXMock,
) -> None:
    """A 503 whose body cannot be decoded is still a 503: retried, then TooManyRetries (a
    FhirClientError), never httpx's DecodingError."""
    from fhirtis.io import Timing, TooManyRetries  # noqa: PLC0415

    async def no_sleep(_: float) -> None:
        return None

    httpx_mock.add_callback(
        lambda _: _answer(b"<html>busy</html>", 503), url=f"{BASE}/Patient/p1", is_reusable=True
    )
    config = FhirClientConfig(base_url=BASE, retry_max_attempts=2)
    async with FhirClient(config, timing=Timing(sleep=no_sleep)) as fhir:
        try:
            await fhir.read("Patient", "p1")
        except TooManyRetries as exc:
            assert exc.last_status == 503 and exc.attempts == 2
        else:  # pragma: no cover
            raise AssertionError("no error")
