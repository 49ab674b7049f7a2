"""A trusted CDS client's JWKS URL that hangs while no keys are held yet (the first calls after
a start, hospital key servers at peak hours): each CDS call waited for the one lock, then made
its own fetch and waited its whole ``JWKS_FETCH_SECONDS`` again. Calls arriving together were
answered one fetch apart (the tenth after ten fetch times; 50 s by default), and the check runs
before the answer's time budget starts, so nothing bounded it. A fetch that failed while a call
waited is that call's answer too: 503 ``jwks-unavailable`` (docs/operations.md: a ``jwks_url``
must answer within 5 s, else the CDS calls get 503)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from fhirtis.api.cds_hooks import trust
from fhirtis.api.cds_hooks.request import CdsError
from fhirtis.api.cds_hooks.trust import CdsClientVerifier
from fhirtis.settings import TrustedCdsClient
from tests.api.test_security import CDS_KEY, EHR_ISS, cds_jwt

URL = "https://ehr.test/.well-known/jwks.json"
AUD = "http://fhirtis.test/cds-services/fhirtis-ivig-order-sign"
CALLS = 8


class KeyServer:
    """A JWKS URL that hangs (``hang``) or answers the CDS client's keys."""

    def __init__(self) -> None:
        self.fetches = 0
        self.hang = True

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.hang:
            await asyncio.sleep(30)  # cancelled by the fetch's own time limit
        keys = {"keys": [CDS_KEY.as_dict(private=False)]}
        return httpx.Response(200, content=json.dumps(keys).encode())


def verifier(server: KeyServer) -> CdsClientVerifier:
    http = httpx.AsyncClient(transport=httpx.MockTransport(server))
    return CdsClientVerifier([TrustedCdsClient(iss=EHR_ISS, jwks_url=URL)], http)


async def _verify(v: CdsClientVerifier) -> CdsError | None:
    try:
        await v.verify(f"Bearer {cds_jwt(aud=AUD)}", AUD)
    except CdsError as exc:
        return exc
    return None


async def test_calls_waiting_on_a_hanging_key_server_share_its_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trust, "JWKS_FETCH_SECONDS", 0.3)
    server = KeyServer()
    v = verifier(server)
    started = time.monotonic()
    outcomes = await asyncio.wait_for(asyncio.gather(*(_verify(v) for _ in range(CALLS))), 20)
    elapsed = time.monotonic() - started
    assert all(o is not None and o.status == 503 for o in outcomes), outcomes
    assert all(o is not None and o.error == "jwks-unavailable" for o in outcomes)
    assert server.fetches == 1  # one fetch for the calls that waited on it, not one each
    assert elapsed < CALLS * 0.3 / 2  # not one fetch time after another (8 x 0.3 s before)


async def test_a_later_call_reads_the_keys_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure is shared only with the calls that waited on it: the next call asks the key
    server again, and gets through once it answers."""
    monkeypatch.setattr(trust, "JWKS_FETCH_SECONDS", 0.2)
    server = KeyServer()
    v = verifier(server)
    first = await _verify(v)
    assert first is not None and first.status == 503
    server.hang = False
    assert await _verify(v) is None
    assert server.fetches == 2


async def test_a_hanging_key_server_keeps_no_other_client_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One EHR's key server hanging while its keys are read does not hold up the calls of
    another trusted client whose keys are already held (the lock was one for all clients)."""
    monkeypatch.setattr(trust, "JWKS_FETCH_SECONDS", 1.5)
    other_iss, other_url = "https://other-ehr.test", "https://other-ehr.test/jwks.json"
    hanging = KeyServer()
    answering = KeyServer()
    answering.hang = False

    async def route(request: httpx.Request) -> httpx.Response:
        return await (answering if str(request.url) == other_url else hanging)(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(route))
    clients = [
        TrustedCdsClient(iss=EHR_ISS, jwks_url=URL),
        TrustedCdsClient(iss=other_iss, jwks_url=other_url),
    ]
    v = CdsClientVerifier(clients, http)
    other = f"Bearer {cds_jwt(aud=AUD, iss=other_iss)}"
    assert (await v.verify(other, AUD)).iss == other_iss  # its keys are held
    stuck = asyncio.create_task(_verify(v))  # the first client's keys: the fetch hangs
    await asyncio.sleep(0.1)
    started = time.monotonic()
    caller = await v.verify(f"Bearer {cds_jwt(aud=AUD, iss=other_iss)}", AUD)
    assert caller.iss == other_iss
    assert time.monotonic() - started < 0.5  # not after the other client's fetch (1.5 s)
    refused = await stuck
    assert refused is not None and refused.status == 503
