"""Requests in flight, bounded (s38 audit of the long-running service).

Nothing limited how many requests the service held at once: each waits its turn for one of the
4 evaluation threads with its parsed body in memory, so memory grew with the requests in flight
(measured: 300 simultaneous CDS calls of 1 MB each, RSS 1.56 GB, 291 of them answered 504 only
after their deadline), and ``deploy/fhirtis.service`` caps the process at ``MemoryMax=2G``: a
burst of large CDS calls got the whole service killed. Past ``service.max_requests_in_flight``
(32) a request is now answered at once, unread: 503 with ``Retry-After``, an OperationOutcome
(``throttled``), or a CDS Hooks error under ``/cds-services``. The probes and ``/metrics`` are
never refused (an orchestrator must not restart a busy service as a dead one)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from fhirtis.api.app import create_app
from fhirtis.api.limits import InFlightLimit
from fhirtis.settings import ServiceSettings, Settings
from tests.api.app_setup import served


class _Held:
    """An app whose requests wait until released (a slow FHIR server, a queued evaluation);
    ``/boom`` raises. Counts the requests that reached it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.entered += 1
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        if scope["path"] not in {"/livez", "/readyz", "/metrics"}:
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not reached")


@pytest.fixture
async def limited() -> AsyncIterator[tuple[_Held, httpx.AsyncClient]]:
    held = _Held()
    transport = httpx.ASGITransport(app=InFlightLimit(held, limit=2), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://fhirtis.test") as client:
        yield held, client


async def test_past_the_limit_a_request_is_answered_503_at_once_unread(
    limited: tuple[_Held, httpx.AsyncClient],
) -> None:
    held, client = limited
    first = asyncio.create_task(client.get("/Patient/p1/$myositis-evaluate"))
    second = asyncio.create_task(client.post("/cds-services/x", json={"a": 1}))
    await _until(lambda: held.entered == 2)

    refused = await client.post("/Patient/$myositis-evaluate", json={"resourceType": "Bundle"})
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"].startswith("application/fhir+json")
    body = refused.json()
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    assert (issue["severity"], issue["code"]) == ("fatal", "throttled")
    assert "2 requests" in issue["diagnostics"]
    assert "max_requests_in_flight" in issue["diagnostics"]

    cds = await client.post("/cds-services/fhirtis-ivig-order", json={"hook": "order-sign"})
    assert cds.status_code == 503
    assert cds.headers["retry-after"] == "1"
    assert cds.json()["error"] == "busy"
    assert held.entered == 2  # neither refusal reached the service

    # the probes and the metrics are answered, however busy the service is
    for probe in ("/livez", "/readyz", "/metrics"):
        assert (await client.get(probe)).status_code == 200, probe
        assert (await client.head(probe)).status_code == 200, probe

    held.release.set()
    assert [(await t).status_code for t in (first, second)] == [200, 200]
    # the places are free again
    assert (await client.get("/Patient/p1/$myositis-evaluate")).status_code == 200


async def test_a_request_that_fails_frees_its_place(
    limited: tuple[_Held, httpx.AsyncClient],
) -> None:
    held, client = limited
    held.release.set()
    for _ in range(5):
        assert (await client.get("/boom")).status_code == 500
    both = await asyncio.gather(client.get("/a"), client.get("/b"))
    assert [r.status_code for r in both] == [200, 200]


async def test_a_cancelled_request_frees_its_place(
    limited: tuple[_Held, httpx.AsyncClient],
) -> None:
    """A caller that goes away (its task cancelled) frees its place too."""
    held, client = limited
    waiting = [asyncio.create_task(client.get(f"/w{i}")) for i in range(2)]
    await _until(lambda: held.entered == 2)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    held.release.set()
    both = await asyncio.gather(client.get("/a"), client.get("/b"))
    assert [r.status_code for r in both] == [200, 200]


def test_the_setting_its_default_and_its_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().max_requests_in_flight == 32
    monkeypatch.setenv("FHIRTIS_SERVICE__MAX_REQUESTS_IN_FLIGHT", "5")
    assert Settings().service.max_requests_in_flight == 5
    for bad in (0, -1):
        with pytest.raises(ValidationError):
            ServiceSettings(max_requests_in_flight=bad)


async def test_the_service_is_limited_by_its_setting() -> None:
    """The service's own stack: its limit is the setting, outside the body limit (a refused
    request is never read) and inside the security headers and CORS (the refusal carries
    them)."""
    settings = Settings(service=ServiceSettings(max_requests_in_flight=3))
    app = create_app(settings)
    names = [m.cls.__name__ for m in app.user_middleware]  # type: ignore[attr-defined]
    assert names.index("InFlightLimit") < names.index("BodyLimit")
    assert names.index("SecurityHeaders") < names.index("InFlightLimit")
    [limit] = [m for m in app.user_middleware if m.cls is InFlightLimit]
    assert limit.kwargs == {"limit": 3}
    async with served(settings) as client:
        answer = await client.get("/livez")
        assert answer.status_code == 200
