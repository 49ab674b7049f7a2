"""Every body fhirtis reads whole goes through one capped reader (``fhirtis.io._capped``): a FHIR
server's answers and the auth flow's SMART configuration and token answers alike.

A token or SMART-configuration answer labelled ``Content-Encoding: gzip`` that is not gzip (a
misconfigured gateway) escaped as a raw ``httpx.DecodingError`` from the auth flow, where the FHIR
client's own reads already said "malformed answer"; the refusal names the request with its query
values redacted, as every other error message does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from fhirtis.io import FhirClient, FhirClientConfig, MalformedResponse
from fhirtis.io._auth import SmartBackendAuth
from fhirtis.io._capped import read_capped
from tests.io._support import BASE, TOKEN_URL, FakeTime, patient

NOT_GZIP = {"Content-Encoding": "gzip", "Content-Type": "application/json"}


async def test_an_undecodable_token_answer_is_a_malformed_answer(
    smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    fhir_requests: list[str] = []

    async def not_gzip() -> AsyncIterator[bytes]:
        yield b'{"access_token": "x"}'

    async def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:  # streamed, as a real transport gives it
            return httpx.Response(200, headers=NOT_GZIP, content=not_gzip())
        fhir_requests.append(str(request.url))
        return httpx.Response(200, json=patient(1))

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        FhirClient(smart_config(token_url=TOKEN_URL), http=http, timing=fake_time.timing()) as f,
    ):
        with pytest.raises(MalformedResponse, match="Content-Encoding could not be decoded"):
            await f.read("Patient", "p1")
    assert fhir_requests == []


def test_the_sync_auth_flow_says_so_too(smart_config: Callable[..., FhirClientConfig]) -> None:
    def not_gzip() -> Iterator[bytes]:
        yield b"{}"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/smart-configuration"):
            return httpx.Response(200, headers=NOT_GZIP, content=not_gzip())
        return httpx.Response(200, json=patient(1))

    auth = SmartBackendAuth.from_config(smart_config())
    with (
        httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as http,
        pytest.raises(MalformedResponse, match="Content-Encoding could not be decoded"),
    ):
        http.get(f"{BASE}/Patient/p1")


def test_a_refusal_names_the_request_without_its_query_values() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 100)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        request = http.build_request("GET", f"{BASE}/Observation?patient=secret-mrn-123")
        response = http.send(request, stream=True)
        with pytest.raises(MalformedResponse) as caught:
            read_capped(response, 10, "max_response_bytes")
    message = str(caught.value)
    assert "secret-mrn-123" not in message and "secret-mrn-123" not in str(caught.value.url)
    assert message.startswith(f"GET {BASE}/Observation?patient=***: the answer is larger than 10")
    assert "(max_response_bytes)" in message
    assert response.is_closed


def test_a_body_within_the_cap_is_kept_whole() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 10)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        response = http.send(http.build_request("GET", f"{BASE}/Patient/p1"), stream=True)
        read_capped(response, 10)
    assert response.content == b"x" * 10
    assert response.is_closed
