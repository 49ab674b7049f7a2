"""One deadline per CDS Hooks call (``cds.deadline_seconds``), for every read of the FHIR server
and the evaluation's start.

A call that reads what prefetch lacked may read in up to five stages (the searches; the
Medications, Devices and Substances read by id after them). Each stage had a budget of its own
(10 s), and only the evaluation timeout (60 s) bounded the call: a FHIR server answering each
stage in just under 10 s kept the call going for 20-45 s, long after the EHR had stopped waiting
(CDS Hooks 2.0: services "SHOULD respond quickly (on the order of 500 ms.)"), and the reads went
on after the caller had gone. The FHIR server here is pytest-httpx answering after a delay; the
deadlines are fractions of a second."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from pytest_httpx import HTTPXMock

from fhirtis.api.cds_hooks import service as cds_service
from fhirtis.io import FhirClientConfig
from fhirtis.settings import Settings
from tests.api.app_setup import served
from tests.api.test_cds_hooks import (
    ALLOWED,
    SIGN,
    call,
    card_with,
    cards_of,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.fhir.builders import medication, qty

Json = dict[str, Any]
DELAY = 0.4  # each answer of the FHIR server; every stage alone is well within the deadline


@asynccontextmanager
async def cds(deadline: float) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        fhir=FhirClientConfig(base_url=ALLOWED, retry_max_attempts=1, read_timeout_seconds=5),
        cds={"deadline_seconds": deadline},
    )
    async with served(settings) as client:
        yield client


class SlowServer:
    """A FHIR server answering every request after :data:`DELAY`: the order's Medication (read
    in a batch, as what prefetch lacked) naming its ingredient's Substance, which is read by
    id after it (a second stage); it has no such Substance (404)."""

    def __init__(self) -> None:
        self.started: list[httpx.Request] = []
        self.answered: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            return httpx.Response(404, json={})
        self.started.append(request)
        await asyncio.sleep(DELAY)
        self.answered.append(f"{request.method} {request.url.path}")
        if request.method == "POST":
            med = medication("ivig", text="Privigen 10%")
            med["ingredient"].append({"itemReference": {"reference": "Substance/s1"}})
            return httpx.Response(
                200,
                json={
                    "resourceType": "Bundle",
                    "type": "batch-response",
                    "entry": [{"resource": med, "response": {"status": "200 OK"}}],
                },
            )
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-found"}],
        }
        return httpx.Response(404, json=outcome)


def _body() -> Json:
    """A complete prefetch; the order names a Medication on the FHIR server (read there)."""
    order = ivig_order(
        rate=qty(300, "mL/h"), med={"medicationReference": {"reference": "Medication/ivig"}}
    )
    return call([order], full_prefetch(patient_70kg()), server=ALLOWED, token="tok-dl")


async def test_the_deadline_spans_every_stage_and_stops_the_reads(httpx_mock: HTTPXMock) -> None:
    server = SlowServer()
    httpx_mock.add_callback(server, is_reusable=True)
    async with cds(deadline=0.7) as client:
        began = time.perf_counter()
        r = await client.post(SIGN, json=_body())
        took = time.perf_counter() - began
        await asyncio.sleep(DELAY * 1.5)  # anything still reading would end now
    assert r.status_code == 504, r.text
    assert r.json()["error"] == "fhir-server-timeout"
    assert "deadline" in r.json()["message"] and "0.7 s" in r.json()["message"]
    assert "resourceType" not in r.json() and "tok-dl" not in r.text
    # the second stage was reached (each stage is within the deadline; together they are not)
    assert [f"{q.method} {q.url.path}" for q in server.started] == [
        "POST /fhir",
        "GET /fhir/Substance",  # Substance?_id=s1
    ]
    assert server.answered == ["POST /fhir"], "the read in flight at the deadline is cancelled"
    assert took < 3  # coarse: 0.7 s, not the two stages' 0.8 s plus the rest


async def test_within_the_deadline_every_stage_is_read(httpx_mock: HTTPXMock) -> None:
    server = SlowServer()
    httpx_mock.add_callback(server, is_reusable=True)
    async with cds(deadline=10) as client:
        r = await client.post(SIGN, json=_body())
    cards = cards_of(r)
    assert "Max IVIG rate" in card_with(cards, "Max IVIG rate")["summary"]
    assert server.answered[:2] == ["POST /fhir", "GET /fhir/Substance"]
    assert server.answered == [f"{q.method} {q.url.path}" for q in server.started]
    # a CDS call only reads: a batch of reads, reads by id
    for request in server.started:
        if request.method == "POST":
            sent = json.loads(request.content)
            assert sent["type"] == "batch"
            assert {e["request"]["method"] for e in sent["entry"]} == {"GET"}
        else:
            assert request.method == "GET"


async def test_no_evaluation_starts_after_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that holds the event loop past the deadline (no await to cancel) is followed by
    no evaluation: the call is answered 504 ``timeout``, not the FHIR server's."""
    evaluated: list[object] = []
    original = cds_service.evaluate

    async def slow_terminology(*_: object) -> None:
        time.sleep(0.4)  # holds the loop: the deadline's cancellation cannot reach the call

    def recording(*args: Any, **kwargs: Any) -> Any:
        evaluated.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr("fhirtis.api.cds_hooks.service.ask_terminology", slow_terminology)
    monkeypatch.setattr(cds_service, "evaluate", recording)
    body = call([ivig_order(rate=qty(300, "mL/h"))], full_prefetch(patient_70kg()))
    async with cds(deadline=0.2) as client:
        r = await client.post(SIGN, json=body)
    assert r.status_code == 504, r.text
    assert r.json()["error"] == "timeout"
    assert "cds.deadline_seconds" in r.json()["message"]
    assert evaluated == []

    async with cds(deadline=5) as client:  # the same call within its deadline
        assert cards_of(await client.post(SIGN, json=body))
    assert len(evaluated) == 1


def test_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().cds.deadline_seconds == 10
    monkeypatch.setenv("FHIRTIS_CDS__DEADLINE_SECONDS", "4.5")
    assert Settings().cds.deadline_seconds == 4.5
    with pytest.raises(ValidationError):
        Settings(cds={"deadline_seconds": 0})
