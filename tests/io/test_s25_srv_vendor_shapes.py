"""Server answers real servers give to the searches of a patient pull.

- A search of a type the server does not have answered 404 (R4 http.html, search: "404 Not
  Found - resource type not supported"; HAPI's plain server throws ResourceNotFoundException
  "Unknown resource type ..." with issue code ``processing``, not ``not-supported``): where
  the server's types are unknown (no CapabilityStatement, or one listing no resources) the
  type is learned as absent and the patient read without it, as any type the server lacks.
  It is never "patient not found".
- A search by ``subject`` refused 400 with another issue code than ``not-supported`` (HAPI:
  InvalidRequestException HAPI-1223 'Unknown search parameter "subject" for resource type
  ...', issue code ``processing``), the same search by ``patient`` taken: the ``patient``
  search is used and ``subject`` learned as refused; a 400 the ``patient`` search gets too is
  the server's error, as before.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.fhir.bundle import PatientResources
from fhirtis.io import FhirClient, FhirClientConfig, FhirServerError, NotFound
from fhirtis.io._capabilities import CACHE
from fhirtis.pipeline.pull import pull_patient
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import (
    FakeServer,
    active_dvt,
    catheter,
    outcome,
    patient,
    resource_entry,
    statement,
    use_statement,
)
from tests.io._support import BASE

Json = dict[str, Any]
DVT = active_dvt()


def _unknown_type(rtype: str) -> Any:
    """HAPI's plain server for a type it has no provider of."""

    def answer(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith(f"/{rtype}"):
            return httpx.Response(
                404, json=outcome("processing", f"Unknown resource type '{rtype}'")
            )
        return None

    return answer


def _no_subject(rtype: str) -> Any:
    """HAPI's answer to a search parameter it does not know (HAPI-1223)."""

    def answer(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith(f"/{rtype}") and "subject" in request.url.params:
            return httpx.Response(
                400,
                json=outcome(
                    "processing",
                    f'Unknown search parameter "subject" for resource type "{rtype}"',
                ),
            )
        return None

    return answer


async def _pull(server: FakeServer, httpx_mock: HTTPXMock) -> PatientResources:
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        return await pull_patient(client, "p1", Settings(), {})


def _warnings(pulled: PatientResources) -> list[str]:
    return [i.diagnostics for i in pulled.issues if i.severity == "warning"]


# -- a type the server does not have: 404 ---------------------------------------------------


@pytest.mark.parametrize("batch", [False, True])
async def test_a_type_answered_404_on_a_server_without_a_statement_is_read_without(
    httpx_mock: HTTPXMock, batch: bool
) -> None:
    server = FakeServer(
        None,
        [patient(), DVT],
        before=[_unknown_type("DeviceUseStatement")],
        batch=batch,
    )
    pulled = await _pull(server, httpx_mock)
    assert "Condition/dvt" in pulled.resolve
    assert _warnings(pulled) == [
        "DeviceUseStatement not read: the server does not support DeviceUseStatement"
    ]


async def test_a_patient_that_is_not_there_is_not_found_and_teaches_nothing(
    httpx_mock: HTTPXMock,
) -> None:
    """A server that also answers the searches of an unknown patient 404: the patient is not
    found, and no type is learned as absent from it."""

    def all_404(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/metadata"):
            return None
        return httpx.Response(404, json=outcome("not-found", "unknown patient"))

    server = FakeServer(None, [], before=[all_404])
    with pytest.raises(NotFound):
        await _pull(server, httpx_mock)
    caps = CACHE.get(str(FhirClientConfig(base_url=BASE).base_url))
    assert caps is None or all(caps.has_type(t) for t in ("Condition", "Observation"))


async def test_a_type_the_statement_lists_answered_404_is_no_missing_patient(
    httpx_mock: HTTPXMock,
) -> None:
    """The statement says the type is there: a 404 to its search is the server's error, not
    "patient not found" (the patient was read)."""
    server = FakeServer(statement(), [patient()], before=[_unknown_type("Procedure")])
    with pytest.raises(FhirServerError) as raised:
        await _pull(server, httpx_mock)
    assert not isinstance(raised.value, NotFound)
    assert raised.value.status == 404


# -- subject refused, patient taken ---------------------------------------------------------


@pytest.mark.parametrize(
    ("caps", "batch"),
    [
        (None, False),  # no statement
        (None, True),  # no statement, searches in a batch
        (statement(), False),  # a statement that declares subject: wrong
        (statement({"Condition": resource_entry("Condition", params=())}), False),
    ],
)
async def test_a_search_by_subject_refused_400_is_sent_by_patient(
    httpx_mock: HTTPXMock, caps: Json | None, batch: bool
) -> None:
    if caps is not None and caps["rest"][0]["resource"]:
        for r in caps["rest"][0]["resource"]:
            if r["type"] == "Condition" and not r["searchParam"]:
                del r["searchParam"]  # the statement lists no parameters: unknown
    server = FakeServer(caps, [patient(), DVT], before=[_no_subject("Condition")], batch=batch)
    pulled = await _pull(server, httpx_mock)
    assert "Condition/dvt" in pulled.resolve
    assert "GET Condition?patient=Patient/p1&_count=100" in server.paths()
    assert not _warnings(pulled)
    # learned for the server: the next patient is searched by patient straight away
    before = len(server.requests)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        await pull_patient(client, "p1", Settings(), {})
    later = [p for p in server.paths()[before:] if "Condition?" in p]
    assert all("subject=" not in p for p in later), later


async def test_a_400_the_patient_search_gets_too_is_the_servers_error(
    httpx_mock: HTTPXMock,
) -> None:
    def refuse_all(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/Condition"):
            return httpx.Response(400, json=outcome("processing", "no"))
        return None

    server = FakeServer(statement(), [patient(), DVT], before=[refuse_all])
    with pytest.raises(FhirServerError) as raised:
        await _pull(server, httpx_mock)
    assert raised.value.status == 400
    caps = CACHE.get(str(FhirClientConfig(base_url=BASE).base_url))
    assert caps is not None
    assert caps.search_param("Condition", ("subject", "patient")) == "subject"


async def test_device_use_statement_by_patient_when_subject_is_refused(
    httpx_mock: HTTPXMock,
) -> None:
    server = FakeServer(
        statement(),
        [patient(), use_statement()],
        [catheter()],
        before=[_no_subject("DeviceUseStatement")],
    )
    pulled = await _pull(server, httpx_mock)
    assert "Device/line" in pulled.resolve
    assert (
        "GET DeviceUseStatement?patient=Patient/p1&_include=DeviceUseStatement:device&_count=100"
        in server.paths()
    )


# -- an _include refused 400 with another issue code ------------------------------------------


def _no_include(rtype: str) -> Any:
    """A server answering an ``_include`` it does not take 400 ``processing`` (HAPI's
    InvalidRequestException for an ``_include`` value it does not know)."""

    def answer(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith(f"/{rtype}") and "_include" in request.url.params:
            return httpx.Response(
                400, json=outcome("processing", "Invalid _include parameter value")
            )
        return None

    return answer


@pytest.mark.parametrize("batch", [False, True])
async def test_an_include_refused_400_is_left_out_and_the_devices_read_by_id(
    httpx_mock: HTTPXMock, batch: bool
) -> None:
    caps = statement(
        {"DeviceUseStatement": resource_entry("DeviceUseStatement", includes=None)}, batch=batch
    )
    server = FakeServer(
        caps,
        [patient(), use_statement()],
        [catheter()],
        before=[_no_include("DeviceUseStatement")],
        batch=batch,
    )
    pulled = await _pull(server, httpx_mock)
    assert "DeviceUseStatement/dus" in pulled.resolve
    assert "Device/line" in pulled.resolve
    assert "GET Device?_id=line&_count=1" in server.paths()
    assert not _warnings(pulled)


async def test_subject_and_include_both_refused_400_are_both_left_out(
    httpx_mock: HTTPXMock,
) -> None:
    caps = statement({"DeviceUseStatement": resource_entry("DeviceUseStatement", includes=None)})
    server = FakeServer(
        caps,
        [patient(), use_statement()],
        [catheter()],
        before=[_no_include("DeviceUseStatement"), _no_subject("DeviceUseStatement")],
    )
    pulled = await _pull(server, httpx_mock)
    assert "Device/line" in pulled.resolve
    assert "GET DeviceUseStatement?patient=Patient/p1&_count=100" in server.paths()
    learned = CACHE.get(str(FhirClientConfig(base_url=BASE).base_url))
    assert learned is not None
    assert not learned.supports_include("DeviceUseStatement", "DeviceUseStatement:device")
    assert learned.search_param("DeviceUseStatement", ("subject", "patient")) == "patient"
