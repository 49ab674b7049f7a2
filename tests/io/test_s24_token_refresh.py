"""A token revoked or expired early while requests are in flight (SMART Backend Services).

The server answers every request holding the old token 401 at once (several requests were in
flight when it stopped accepting it). SMART Backend Services (hl7.org/fhir/smart-app-launch,
backend-services.html, "Obtain access token") expects a client to reuse its token until it
expires and to obtain a new one then; every 401 asking the token endpoint for a new token
of its own would send one token request per request in flight. One refresh must serve them
all, and each request must be sent again once, with the new token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from fhirtis.io import FhirClient, FhirClientConfig
from tests.io._support import BASE, TOKEN_URL, FakeTime, patient, token_response

N = 6


class RevokingServer(httpx.AsyncBaseTransport):
    """A token endpoint issuing at-1, at-2, …, and a FHIR server that no longer accepts at-1
    (revoked while the requests were in flight) but any later token; every answer waits a
    moment, as a real network does, so requests in flight interleave."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.fhir: list[str] = []  # the Authorization header of each FHIR request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)
        if str(request.url) == TOKEN_URL:
            token = f"at-{len(self.issued) + 1}"
            self.issued.append(token)
            await asyncio.sleep(0.01)  # the token endpoint takes a moment
            return httpx.Response(200, json=token_response(token, 3600))
        header = request.headers.get("Authorization", "")
        self.fhir.append(header)
        await asyncio.sleep(0.01)
        if header in ("", "Bearer at-1"):
            return httpx.Response(401)
        pid = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json=patient(int(pid.removeprefix("p"))))


async def test_requests_in_flight_share_one_refresh_after_a_401(
    smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    server = RevokingServer()
    config = smart_config(token_url=TOKEN_URL, concurrency=N)
    async with (
        httpx.AsyncClient(transport=server) as http,
        FhirClient(config, http=http, timing=fake_time.timing()) as fhir,
    ):
        results = await asyncio.gather(*(fhir.read("Patient", f"p{i}") for i in range(N)))
    assert [r["id"] for r in results] == [f"p{i}" for i in range(N)]
    assert server.issued == ["at-1", "at-2"], server.issued
    assert len(server.fhir) == 2 * N  # each sent twice: with at-1 (401), then with at-2
    assert server.fhir.count("Bearer at-2") == N
    assert str(config.base_url) == BASE
