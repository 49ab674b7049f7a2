"""One FHIR server that hangs must not stop the service's calls to the others.

The service reached every allow-listed FHIR server through one httpx connection pool
(100 connections). A server that accepts connections and never answers held a connection per
waiting caller until ``service.fhir_wait_seconds``; with 100 callers waiting on it, a call to
any other server waited for a free connection (then failed ``PoolTimeout``, a 504), though
that server was answering at once. Each allow-listed server now has its own pool. The FHIR
servers here are asyncio servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

from fhirtis.api.access import Caller
from fhirtis.api.app import ServiceState
from fhirtis.io import FhirClientConfig
from fhirtis.settings import ServiceSettings, Settings
from tests.api.test_s36slow_fhir_wait_deadline import _head, fhir_server

PATIENT = json.dumps({"resourceType": "Patient", "id": "p1"}).encode()
HANGING_CALLERS = 100  # httpx's default pool size


async def test_a_hanging_server_does_not_block_another_servers_calls() -> None:
    connected = asyncio.Event()
    waiting: list[str] = []

    async def hang(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        waiting.append(path)
        if len(waiting) == HANGING_CALLERS:
            connected.set()
        await asyncio.sleep(30)

    async def answer(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, len(PATIENT)) + PATIENT)
        await writer.drain()

    async with fhir_server(hang) as hanging, fhir_server(answer) as answering:
        settings = Settings(
            fhir=FhirClientConfig(base_url=hanging, retry_max_attempts=1),
            service=ServiceSettings(allowed_fhir_servers=[hanging, answering], fhir_wait_seconds=4),
        )
        state = ServiceState(settings)
        caller = Caller("caller-token")
        try:
            stuck = [
                asyncio.create_task(
                    state.client_for(state.server_for(hanging), caller)[0].read("Patient", "p1")
                )
                for _ in range(HANGING_CALLERS)
            ]
            await asyncio.wait_for(connected.wait(), 10)
            other, _ = state.client_for(state.server_for(answering), caller)
            patient = await other.read("Patient", "p1")
            # answered while every call to the hanging server still waits on it
            still_waiting = sum(not task.done() for task in stuck)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        finally:
            await state.aclose()
    assert patient["id"] == "p1"
    assert still_waiting == HANGING_CALLERS


async def test_each_allowed_server_has_its_own_pool_and_all_are_closed() -> None:
    settings = Settings(
        service=ServiceSettings(
            allowed_fhir_servers=["https://a.example.org/fhir", "https://b.example.org/r4"]
        )
    )
    state = ServiceState(settings)
    a = state.http_for("https://a.example.org/fhir")
    b = state.http_for("https://b.example.org/r4")
    assert a is not b
    assert state.http_for("https://a.example.org/fhir") is a  # one per server, kept
    await state.aclose()
    assert a.is_closed and b.is_closed and state.http.is_closed
