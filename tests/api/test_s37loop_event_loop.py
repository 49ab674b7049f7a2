"""The evaluation runs off the event loop: probes, other callers and deadlines are served while
it runs.

``fhirtis serve`` is one process with one asyncio event loop. The evaluation (reading the FHIR
JSON into facts, the clinical computation, deriving the output) ran on that loop: a CDS call with
a prefetch of 20,000 hourly weights held it for about a second (measured: /livez answered only
after the call), and while it ran nothing else was served: not ``/livez`` or ``/readyz`` (the
orchestrator's probes), not another caller, and no deadline fired (``cds.deadline_seconds``,
``service.evaluation_timeout_seconds``): a timer's callback runs only when the loop gets a turn.

These tests hold the evaluation in its step (a gate it waits on) instead of making it long, so
nothing depends on timing: they assert the order of events. While the evaluation ran on the loop,
the gate could not be opened from the loop, so the evaluation went on only once its wait timed
out, and everything else came after it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

import fhirtis.pipeline.server as server_module
from fhirtis.api.cds_hooks import service as cds_service
from fhirtis.io import FhirClientConfig
from fhirtis.settings import ServiceSettings, Settings
from tests.api.app_setup import served
from tests.api.test_cds_hooks import (
    ALLOWED,
    SIGN,
    call,
    cards_of,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.e2e.test_run import load
from tests.fhir.builders import qty
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

GATE_SECONDS = 5.0  # how long a held evaluation waits for its gate before it goes on anyway


class Gate:
    """A stand-in for an evaluation step: it says it started, waits until the test opens the
    gate (at most :data:`GATE_SECONDS`), runs the real step and says it ended."""

    def __init__(self, real: Callable[..., Any], events: list[str]) -> None:
        self.real, self.events = real, events
        self.started = threading.Event()
        self.open = threading.Event()
        self.ended = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.events.append("evaluation started")
        self.started.set()
        self.open.wait(GATE_SECONDS)
        try:
            return self.real(*args, **kwargs)
        finally:
            self.events.append("evaluation ended")
            self.ended.set()

    async def wait_started(self) -> None:
        for _ in range(int(GATE_SECONDS * 100) * 2):
            if self.started.is_set():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the evaluation never started")


def _cds_settings(deadline: float = 10.0) -> Settings:
    return Settings(fhir=FhirClientConfig(base_url=ALLOWED), cds={"deadline_seconds": deadline})


def _hook_call() -> dict[str, Any]:
    return call([ivig_order(rate=qty(300, "mL/h"))], full_prefetch(patient_70kg()))


async def test_livez_is_answered_while_a_cds_call_evaluates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with served(_cds_settings()) as client:
        expected = await client.post(SIGN, json=_hook_call())  # the answer without the gate
        events: list[str] = []
        gate = Gate(cds_service.evaluate, events)
        monkeypatch.setattr(cds_service, "evaluate", gate)
        hook = asyncio.create_task(client.post(SIGN, json=_hook_call()))
        await gate.wait_started()
        live = await client.get("/livez")
        events.append(f"livez {live.status_code}")
        gate.open.set()
        answer = await hook
    assert events == ["evaluation started", "livez 200", "evaluation ended"]
    assert answer.status_code == 200, answer.text
    assert _no_uuid(cards_of(answer)) == _no_uuid(cards_of(expected))  # the same answer


def _no_uuid(value: Any) -> Any:
    """The cards without their uuids (new per answer), at any depth (suggestions have one)."""
    if isinstance(value, dict):
        return {k: _no_uuid(v) for k, v in value.items() if k != "uuid"}
    if isinstance(value, list):
        return [_no_uuid(v) for v in value]
    return value


async def test_the_cds_deadline_answers_while_the_evaluation_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    gate = Gate(cds_service.evaluate, events)
    monkeypatch.setattr(cds_service, "evaluate", gate)
    async with served(_cds_settings(deadline=2.0)) as client:
        answer = await client.post(SIGN, json=_hook_call())
        events.append(f"answered {answer.status_code}")
        gate.open.set()
        assert await asyncio.to_thread(gate.ended.wait, GATE_SECONDS * 2)
    assert events == ["evaluation started", "answered 504", "evaluation ended"]
    assert answer.json()["error"] == "timeout"
    assert "cds.deadline_seconds" in answer.json()["message"]


async def test_an_evaluation_past_the_operation_timeout_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, fhir_base: str, fhir_server: FhirTestServer
) -> None:
    """``write=true``: the operation's timeout answers 504 while the evaluation still runs; the
    evaluation's result, when it comes, is dropped: nothing is written from it."""
    load(fhir_base, responder())
    events: list[str] = []
    gate = Gate(server_module.evaluate_patient_resources, events)
    monkeypatch.setattr(server_module, "evaluate_patient_resources", gate)
    settings = Settings(
        fhir=FhirClientConfig(base_url=fhir_base, retry_max_attempts=1),
        service=ServiceSettings(evaluation_timeout_seconds=3),
    )
    fhir_server.reset_stats()
    params = {"resourceType": "Parameters", "parameter": [{"name": "write", "valueBoolean": True}]}
    async with served(settings) as client:
        operation = asyncio.create_task(
            client.post(
                "/Patient/p1/$myositis-evaluate",
                headers={"Authorization": "Bearer caller-token"},
                json=params,
            )
        )
        await gate.wait_started()
        live = await client.get("/livez")
        events.append(f"livez {live.status_code}")
        answer = await operation
        events.append(f"answered {answer.status_code}")
        gate.open.set()
        assert await asyncio.to_thread(gate.ended.wait, GATE_SECONDS * 2)
        await asyncio.sleep(0.5)  # anything that would still follow the evaluation runs now
    assert events == ["evaluation started", "livez 200", "answered 504", "evaluation ended"]
    assert "evaluation_timeout_seconds" in answer.text
    assert fhir_server.stats()["committed_writes"] == 0
