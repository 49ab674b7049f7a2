"""What a token endpoint or a SMART configuration answers, read with bounds.

- ``expires_in`` of 0 or less (RFC 6749 §5.1 gives the lifetime in seconds; 0 or a negative number
  is no usable lifetime) made fhirtis take every cached token as expired at once: a new token
  request before every FHIR request. It is read as no lifetime given (the default), and a token
  that has really expired meets the one refresh a 401 starts.
- A token or discovery answer is a few hundred bytes; one of many megabytes (a misconfigured
  endpoint, a hostile one) was read whole into memory. It is refused past a megabyte, as a
  malformed answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from fhirtis.io import FhirClient, FhirClientConfig, MalformedResponse
from fhirtis.io._auth import AUTH_ANSWER_MAX_BYTES, SmartBackendAuth
from tests.io._support import BASE, TOKEN_URL, FakeTime, patient, token_response


class Server(httpx.AsyncBaseTransport):
    def __init__(self, token_answer: Callable[[int], httpx.Response]) -> None:
        self.token_answer = token_answer
        self.token_requests = 0
        self.fhir_requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.token_requests += 1
            return self.token_answer(self.token_requests)
        self.fhir_requests += 1
        return httpx.Response(200, json=patient(1))


@pytest.mark.parametrize("expires_in", [0, -5])
async def test_a_non_positive_lifetime_is_no_reason_to_fetch_a_token_per_request(
    smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime, expires_in: int
) -> None:
    server = Server(lambda n: httpx.Response(200, json=token_response(f"at-{n}", expires_in)))
    async with (
        httpx.AsyncClient(transport=server) as http,
        FhirClient(smart_config(token_url=TOKEN_URL), http=http, timing=fake_time.timing()) as f,
    ):
        for _ in range(5):
            await f.read("Patient", "p1")
    assert server.fhir_requests == 5
    assert server.token_requests == 1


@pytest.mark.parametrize("declared", [True, False])
async def test_a_huge_token_answer_is_refused_unread(
    smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime, declared: bool
) -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            sent.append(1)
            yield b" " * (AUTH_ANSWER_MAX_BYTES // 8)

    def huge(_: int) -> httpx.Response:
        headers = {"Content-Length": str(8 * AUTH_ANSWER_MAX_BYTES)} if declared else {}
        return httpx.Response(200, headers=headers, content=chunks())

    server = Server(huge)
    async with (
        httpx.AsyncClient(transport=server) as http,
        FhirClient(smart_config(token_url=TOKEN_URL), http=http, timing=fake_time.timing()) as f,
    ):
        with pytest.raises(MalformedResponse, match="larger than"):
            await f.read("Patient", "p1")
    assert server.fhir_requests == 0
    assert len(sent) <= 9  # stopped at the cap, not read to the end


def test_the_cap_leaves_room_for_real_answers() -> None:
    # a real answer: a JWT access token of a few kB, an id_token, scopes
    assert AUTH_ANSWER_MAX_BYTES >= 64 * 1024


def test_the_sync_driver_refuses_a_huge_discovery_answer_too(
    smart_config: Callable[..., FhirClientConfig],
) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            sent.append(1)
            yield b" " * (AUTH_ANSWER_MAX_BYTES // 8)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/smart-configuration"):
            return httpx.Response(200, content=chunks())
        return httpx.Response(200, json=patient(1))

    auth = SmartBackendAuth.from_config(smart_config())
    with (
        httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as http,
        pytest.raises(MalformedResponse, match="larger than"),
    ):
        http.get(f"{BASE}/Patient/p1")
    assert len(sent) <= 9
