"""``service.fhir_wait_seconds`` is "the longest one FHIR request may take, retries included"
(docs/operations.md; README: "so a hanging FHIR server is answered 504 within 30 s"). It only
capped httpx's read timeout and the retry budget, neither of which bounds a request:

- a server (or a gateway in front of it) that sends its answer slowly, a few bytes at a time,
  each read well within the read timeout, kept one request going for as long as it trickled;
- a retry that started just inside the budget (after a gateway's 503/504 that itself came late)
  then waited its whole read timeout again: budget plus read timeout.

Either way the caller waited for the evaluation timeout (60 s), not the 25 s promised. Each
request now has a deadline, ``fhir.request_deadline_seconds``, which the service sets to
``fhir_wait_seconds``. The FHIR servers here are asyncio servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from fhirtis.io import FhirClient, FhirClientConfig, TooManyRetries, WriteOutcomeUnknown
from fhirtis.settings import ServiceSettings, Settings
from tests.api.app_setup import served
from tests.api.test_security import CALLER, OP

Handler = Callable[[str, str, asyncio.StreamWriter], Awaitable[None]]
BUNDLE = json.dumps({"resourceType": "Bundle", "type": "batch-response", "entry": []}).encode()


@asynccontextmanager
async def fhir_server(handler: Handler) -> AsyncIterator[str]:
    """A FHIR server on 127.0.0.1 whose every request (but ``/metadata``: 404, so the defaults
    apply) is answered by ``handler(method, path, writer)``."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = next(
                    (
                        int(v)
                        for k, _, v in (x.partition(":") for x in lines[1:])
                        if k.strip().lower() == "content-length"
                    ),
                    0,
                )
                await reader.readexactly(length)
                if path.split("?")[0].endswith("/metadata"):
                    writer.write(_head(404, len(b"{}")) + b"{}")
                    await writer.drain()
                    continue
                await handler(method, path, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/fhir"
    finally:
        for task in tasks:
            task.cancel()
        server.close()


def _head(status: int, length: int | None) -> bytes:
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/fhir+json\r\n{size}\r\n\r\n"
    ).encode()


async def trickle(method: str, path: str, writer: asyncio.StreamWriter) -> None:
    """An answer that comes a byte every 0.1 s (for 4 s), each read well within any read
    timeout, then a valid (empty) batch-response."""
    writer.write(_head(200, None))
    for _ in range(40):
        writer.write(b"1\r\n \r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
    writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(BUNDLE), BUNDLE))
    await writer.drain()


async def test_an_answer_that_trickles_in_is_504_within_the_fhir_wait() -> None:
    async with fhir_server(trickle) as base:
        settings = Settings(
            fhir=FhirClientConfig(base_url=base), service=ServiceSettings(fhir_wait_seconds=1)
        )
        async with served(settings) as client:
            started = time.monotonic()
            r = await client.post(OP, headers=CALLER)
            elapsed = time.monotonic() - started
    assert r.status_code == 504, r.text
    diagnostics = r.json()["issue"][0]["diagnostics"]
    assert "evaluation_timeout_seconds" not in diagnostics  # the FHIR wait answered, not that
    assert elapsed < 3  # the trickle lasts 4 s


def _late_then_hanging() -> tuple[Handler, list[float]]:
    """A 503 that a gateway gives after 0.7 s, then an answer that never comes."""
    calls: list[float] = []

    async def handler(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            await asyncio.sleep(0.7)
            writer.write(_head(503, 0))
            await writer.drain()
            return
        await asyncio.sleep(30)

    return handler, calls


async def test_a_retry_ends_at_the_request_deadline() -> None:
    handler, calls = _late_then_hanging()
    async with fhir_server(handler) as base:
        config = FhirClientConfig(
            base_url=base,
            read_timeout_seconds=1,
            retry_budget_seconds=1,
            retry_backoff_base_seconds=0.01,
            request_deadline_seconds=1,
        )
        async with FhirClient(config) as fhir:
            started = time.monotonic()
            try:
                await fhir.read("Patient", "p1")
            except TooManyRetries as exc:
                assert exc.timed_out  # 504 for a caller, as for a read timeout
            else:
                raise AssertionError("the read should have failed")
            elapsed = time.monotonic() - started
    assert len(calls) == 2  # retried once, within the deadline
    assert elapsed < 1.4  # not 0.7 s + a whole read timeout (1 s) more


async def test_a_write_cut_off_by_the_deadline_has_an_unknown_outcome() -> None:
    """A write that the deadline stops may have reached the server: never re-sent."""
    calls: list[str] = []

    async def handler(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        calls.append(method)
        await trickle(method, path, writer)

    async with fhir_server(handler) as base:
        config = FhirClientConfig(base_url=base, request_deadline_seconds=0.5)
        async with FhirClient(config) as fhir:
            try:
                await fhir.transaction({"resourceType": "Bundle", "type": "transaction"})
            except WriteOutcomeUnknown:
                pass
            else:
                raise AssertionError("the transaction should have failed")
    assert calls == ["POST"]


async def test_a_token_endpoint_that_trickles_counts_in_the_deadline() -> None:
    """The access token is fetched inside the request it is for (the auth flow): a token
    endpoint answering slowly, then a FHIR server answering slowly, was a read timeout each."""
    paths: list[str] = []

    async def handler(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        paths.append(path)
        await trickle(method, path, writer)

    async with fhir_server(handler) as base:
        config = FhirClientConfig(
            base_url=base,
            auth_mode="client-secret",
            client_id="fhirtis",
            client_secret="s3cret",
            scope="system/*.rs",
            token_url=base.removesuffix("/fhir") + "/token",
            request_deadline_seconds=0.8,
            retry_max_attempts=1,
        )
        async with FhirClient(config) as fhir:
            started = time.monotonic()
            try:
                await fhir.read("Patient", "p1")
            except TooManyRetries as exc:
                assert exc.timed_out
            else:
                raise AssertionError("the read should have failed")
            elapsed = time.monotonic() - started
    assert paths == ["/token"]
    assert elapsed < 2  # the token endpoint trickles for 4 s


async def test_the_service_sets_the_deadline_to_the_fhir_wait() -> None:
    from fhirtis.api.app import create_app  # noqa: PLC0415

    settings = Settings(
        fhir=FhirClientConfig(base_url="https://ehr.example.org/fhir"),
        service=ServiceSettings(fhir_wait_seconds=7),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state.fhirtis
        for server in ("https://ehr.example.org/fhir", "https://other.example.org/fhir"):
            assert state.config_for(server).request_deadline_seconds == 7
    assert FhirClientConfig(base_url="https://x.example.org").request_deadline_seconds is None


async def test_readiness_is_answered_when_the_statement_trickles_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``/readyz`` reads ``/metadata`` within its 5 s (0.5 s here) in all: a statement trickling
    in kept the check going after the prober gave up (Kubernetes: 1 s), each probe one more
    check holding a connection of the pool the evaluations use."""
    from fhirtis.api import ops  # noqa: PLC0415

    monkeypatch.setattr(ops, "READY_CHECK_SECONDS", 0.5, raising=False)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await trickle("GET", "/metadata", writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/fhir"
    try:
        async with served(Settings(fhir=FhirClientConfig(base_url=base))) as client:
            started = time.monotonic()
            r = await client.get("/readyz")
            elapsed = time.monotonic() - started
    finally:
        server.close()
    assert r.status_code == 503, r.text
    assert r.json()["checks"]["fhir_server"].startswith("failed")
    assert elapsed < 2  # the statement trickles for 4 s
