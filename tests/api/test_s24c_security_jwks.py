"""Reading a trusted CDS client's JWKS (``cds.trusted_clients[].jwks_url``) is bounded in time
and size. The keys are read under one lock that every CDS call waits on (so that concurrent calls
share one fetch): a key server that answers slowly, byte by byte (each read within httpx's read
timeout), or endlessly kept every CDS call of every client waiting, without end, since the check
runs before the answer's time budget starts; a key server answering gigabytes was read whole
into memory. OWASP API4:2023 "Unrestricted Resource Consumption" (timeouts and maximum sizes for
what is fetched from third parties)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from fhirtis.api.cds_hooks import trust
from fhirtis.api.cds_hooks.request import CdsError
from fhirtis.api.cds_hooks.trust import CdsClientVerifier
from fhirtis.settings import TrustedCdsClient
from tests.api.test_security import CDS_KEY, EHR_ISS, cds_jwt

URL = "https://ehr.test/.well-known/jwks.json"
AUD = "http://fhirtis.test/cds-services/fhirtis-ivig-order-sign"


def verifier(body: AsyncIterator[bytes] | bytes) -> CdsClientVerifier:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return CdsClientVerifier([TrustedCdsClient(iss=EHR_ISS, jwks_url=URL)], http)


async def test_a_key_server_that_never_finishes_is_503_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trust, "JWKS_FETCH_SECONDS", 0.5)

    async def drip() -> AsyncIterator[bytes]:
        yield b'{"keys": ['
        while True:  # a byte at a time, each well within any read timeout
            await asyncio.sleep(0.05)
            yield b" "

    started = time.monotonic()
    with pytest.raises(CdsError) as refused:
        await asyncio.wait_for(verifier(drip()).verify(f"Bearer {cds_jwt(aud=AUD)}", AUD), 10)
    assert refused.value.status == 503 and refused.value.error == "jwks-unavailable"
    assert time.monotonic() - started < 3


async def test_a_huge_key_set_is_not_read_whole() -> None:
    size = trust.MAX_JWKS_BYTES * 4
    sent = 0

    async def huge() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"keys": [], "padding": "'
        while sent < size:
            sent += 65_536
            yield b"x" * 65_536
        yield b'"}'

    with pytest.raises(CdsError) as refused:
        await verifier(huge()).verify(f"Bearer {cds_jwt(aud=AUD)}", AUD)
    assert refused.value.status == 503
    assert sent <= trust.MAX_JWKS_BYTES + 2 * 65_536  # stopped reading soon after the cap


async def test_a_key_set_within_the_limits_is_used() -> None:
    keys = json.dumps({"keys": [CDS_KEY.as_dict(private=False)]}).encode()
    caller = await verifier(keys).verify(f"Bearer {cds_jwt(aud=AUD)}", AUD)
    assert caller.iss == EHR_ISS
