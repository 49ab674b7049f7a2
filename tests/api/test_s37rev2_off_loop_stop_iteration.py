"""A step run off the event loop that raises StopIteration fails, as it did on the loop.

A ``concurrent.futures`` Future holds any exception, but an asyncio Future refuses
StopIteration (``TypeError: StopIteration interacts badly with generators``): the exception
copied from the thread's Future to the loop's was lost in a callback (logged), and the caller
waited for ever: ``fhirtis run`` hung, and the operation answered 504 at its timeout. On the
event loop (before :func:`fhirtis.pipeline.off_loop.off_the_loop`), a StopIteration from the
evaluation (a ``next()`` over facts that were expected to hold an item) became PEP 479's
RuntimeError at once: a failure, answered 500.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

import fhirtis.pipeline.server as server_module
from fhirtis.api.app import create_app
from fhirtis.io import FhirClientConfig
from fhirtis.pipeline.off_loop import off_the_loop
from fhirtis.settings import ServiceSettings, Settings
from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer


def _empty_next() -> int:
    return next(iter([]))


async def test_a_step_raising_stop_iteration_fails_at_once() -> None:
    with pytest.raises(RuntimeError, match="StopIteration"):
        await asyncio.wait_for(off_the_loop(_empty_next), 5)


async def test_other_exceptions_are_passed_on_as_they_are() -> None:
    def fails() -> None:
        raise ValueError("as raised")

    with pytest.raises(ValueError, match="as raised"):
        await asyncio.wait_for(off_the_loop(fails), 5)


async def test_the_operation_answers_500_not_its_timeout(
    monkeypatch: pytest.MonkeyPatch, fhir_base: str, fhir_server: FhirTestServer
) -> None:
    load(fhir_base, responder())

    def broken(*args: Any, **kwargs: Any) -> Any:
        return _empty_next()

    monkeypatch.setattr(server_module, "evaluate_patient_resources", broken)
    settings = Settings(
        fhir=FhirClientConfig(base_url=fhir_base, retry_max_attempts=1),
        service=ServiceSettings(evaluation_timeout_seconds=20),
    )
    app = create_app(settings)
    # the app's 500 as a client receives it (the ASGI transport re-raises the error by default)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://fhirtis.test") as client,
    ):
        started = asyncio.get_running_loop().time()
        answer = await client.post(
            "/Patient/p1/$myositis-evaluate",
            headers={"Authorization": "Bearer caller-token"},
            json={"resourceType": "Parameters", "parameter": []},
        )
        took = asyncio.get_running_loop().time() - started
    assert answer.status_code == 500, answer.text
    assert took < 10
