"""How much of each answer in the token flow is read, by the request that asked for it
(fhirtis/io/_auth.py ``_Ask``): a SMART configuration or a token answer to
``AUTH_ANSWER_MAX_BYTES``, the CapabilityStatement read for its oauth-uris (SMART App Launch
1.0.0: servers without ``.well-known/smart-configuration``) to ``STATEMENT_MAX_BYTES``. The
limits and their errors are those of test_s25_token_answers.py and test_s28j_discovery_fallback.py;
here the statement's own limit, in both drivers, and the discovery answer's in the async one."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from fhirtis.io import FhirClient, FhirClientConfig, MalformedResponse
from fhirtis.io._auth import AUTH_ANSWER_MAX_BYTES, STATEMENT_MAX_BYTES, SmartBackendAuth
from tests.io._support import BASE, WELL_KNOWN, FakeTime, patient

METADATA = f"{BASE}/metadata"


def _server(huge: str, limit: int, sent: list[str]) -> Callable[[httpx.Request], httpx.Response]:
    """``.well-known`` answers 404 unless it is ``huge``; ``huge`` declares one byte over
    ``limit`` (a ``Content-Length`` is refused before a byte is read)."""

    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        sent.append(url)
        if url == huge:
            return httpx.Response(200, headers={"Content-Length": str(limit + 1)}, content=b"{}")
        if url == WELL_KNOWN:
            return httpx.Response(404)
        return httpx.Response(200, json=patient(1))

    return handler


@pytest.mark.parametrize(
    ("huge", "limit"),
    [(METADATA, STATEMENT_MAX_BYTES), (WELL_KNOWN, AUTH_ANSWER_MAX_BYTES)],
    ids=["statement", "smart-configuration"],
)
async def test_the_async_flow_reads_each_answer_to_its_own_limit(
    smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime, huge: str, limit: int
) -> None:
    sent: list[str] = []
    transport = httpx.MockTransport(_server(huge, limit, sent))
    async with (
        httpx.AsyncClient(transport=transport) as http,
        FhirClient(smart_config(), http=http, timing=fake_time.timing()) as fhir,
    ):
        with pytest.raises(MalformedResponse, match=f"GET {huge}: .* larger than {limit} bytes"):
            await fhir.read("Patient", "p1")
    assert f"{BASE}/Patient/p1" not in sent


def test_the_sync_flow_reads_the_statement_to_its_own_limit(
    smart_config: Callable[..., FhirClientConfig],
) -> None:
    sent: list[str] = []
    auth = SmartBackendAuth.from_config(smart_config())
    transport = httpx.MockTransport(_server(METADATA, STATEMENT_MAX_BYTES, sent))
    with (
        httpx.Client(transport=transport, auth=auth) as http,
        pytest.raises(MalformedResponse, match=f"larger than {STATEMENT_MAX_BYTES} bytes"),
    ):
        http.get(f"{BASE}/Patient/p1")
    assert sent == [WELL_KNOWN, METADATA]
