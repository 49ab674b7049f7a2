"""A central venous catheter recorded as a DeviceUseStatement (R4 / IPS shape: the statement names
the patient in ``subject`` and the Device, which often names no patient) is read on a server
pull: searched by subject or patient with ``_include=DeviceUseStatement:device`` where the
server's CapabilityStatement offers it, else the Devices read by ``_id``; a server without the
type is read without it and says so, as for every other type it lacks.

R4 DeviceUseStatement search parameters: device, identifier, patient, subject
(hl7.org/fhir/R4/deviceusestatement.html#search)."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.fhir.bundle import PatientResources
from fhirtis.io import FhirClient, FhirClientConfig, describe_reads, parse_statement
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.pull import pull_patient, pull_types
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import (
    FakeServer,
    catheter,
    outcome,
    patient,
    resource_entry,
    statement,
    use_statement,
)
from tests.io._support import BASE

Json = dict[str, Any]


async def _pull(server: FakeServer, httpx_mock: HTTPXMock) -> PatientResources:
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        return await pull_patient(client, "p1", Settings(), {})


def _cvc(pulled: PatientResources) -> list[tuple[RiskFactorKind, str]]:
    result = evaluate_patient_resources(pulled, Settings())
    return [(e.kind, e.source) for e in result.data.evidence]


def _dus_requests(server: FakeServer) -> list[str]:
    return [p for p in server.paths() if p.startswith("GET DeviceUseStatement")]


async def test_a_catheter_in_a_device_use_statement_is_read_with_its_device(
    httpx_mock: HTTPXMock,
) -> None:
    server = FakeServer(statement(), [patient(), use_statement()], [catheter()])
    pulled = await _pull(server, httpx_mock)
    assert _dus_requests(server) == [
        "GET DeviceUseStatement?subject=Patient/p1&_include=DeviceUseStatement:device&_count=100"
    ]
    assert _cvc(pulled) == [(RiskFactorKind.CENTRAL_VENOUS_CATHETER, "DeviceUseStatement/dus")]


async def test_without_the_include_the_devices_are_read_by_id(httpx_mock: HTTPXMock) -> None:
    caps = statement({"DeviceUseStatement": resource_entry("DeviceUseStatement", includes=[])})
    server = FakeServer(caps, [patient(), use_statement()], [catheter()])
    pulled = await _pull(server, httpx_mock)
    assert _dus_requests(server) == ["GET DeviceUseStatement?subject=Patient/p1&_count=100"]
    assert "GET Device?_id=line&_count=1" in server.paths()
    assert _cvc(pulled) == [(RiskFactorKind.CENTRAL_VENOUS_CATHETER, "DeviceUseStatement/dus")]
    assert not [i for i in pulled.issues if i.severity in ("warning", "error")], pulled.issues


async def test_a_server_searching_it_by_patient_only_is_searched_by_patient(
    httpx_mock: HTTPXMock,
) -> None:
    caps = statement(
        {
            "DeviceUseStatement": resource_entry(
                "DeviceUseStatement", ("patient",), ["DeviceUseStatement:device"]
            )
        }
    )
    server = FakeServer(caps, [patient(), use_statement()], [catheter()])
    pulled = await _pull(server, httpx_mock)
    assert _dus_requests(server) == [
        "GET DeviceUseStatement?patient=Patient/p1&_include=DeviceUseStatement:device&_count=100"
    ]
    assert _cvc(pulled) == [(RiskFactorKind.CENTRAL_VENOUS_CATHETER, "DeviceUseStatement/dus")]


async def test_a_server_without_the_type_is_read_without_it_and_says_so(
    httpx_mock: HTTPXMock,
) -> None:
    """As for every type a server lacks (Oracle Health has no DeviceUseStatement): no request,
    no failure, a warning that it was not read."""
    caps = statement({"DeviceUseStatement": None})
    server = FakeServer(caps, [patient()])
    pulled = await _pull(server, httpx_mock)
    assert _dus_requests(server) == []
    warnings = [i.diagnostics for i in pulled.issues if i.severity == "warning"]
    assert warnings == [
        "DeviceUseStatement not read: the server does not support DeviceUseStatement"
    ]
    lines = describe_reads(parse_statement(caps), 100)
    assert (
        "  DeviceUseStatement: not read (the server does not support DeviceUseStatement)" in lines
    )


async def test_a_refused_include_is_learned_and_the_device_read_by_id(
    httpx_mock: HTTPXMock,
) -> None:
    """A statement that lists no searchInclude says nothing; the server refuses the
    ``_include`` (400 not-supported): learned, the search sent again without it."""
    caps = statement({"DeviceUseStatement": resource_entry("DeviceUseStatement")})

    def refuse_include(request: Any) -> Any:
        import httpx  # noqa: PLC0415

        if "_include=DeviceUseStatement" in str(request.url):
            return httpx.Response(400, json=outcome("not-supported", "_include"))
        return None

    server = FakeServer(caps, [patient(), use_statement()], [catheter()], [refuse_include])
    pulled = await _pull(server, httpx_mock)
    assert _dus_requests(server)[-1] == "GET DeviceUseStatement?subject=Patient/p1&_count=100"
    assert _cvc(pulled) == [(RiskFactorKind.CENTRAL_VENOUS_CATHETER, "DeviceUseStatement/dus")]


async def test_a_device_that_cannot_be_read_is_said(httpx_mock: HTTPXMock) -> None:
    """The statement's Device is gone (not on the server): the risk factor it may record cannot
    be counted, and the result says so rather than reading as "no catheter"."""
    caps = statement({"DeviceUseStatement": resource_entry("DeviceUseStatement", includes=[])})
    server = FakeServer(caps, [patient(), use_statement("gone")])
    pulled = await _pull(server, httpx_mock)
    found = [i for i in pulled.issues if i.resource == "DeviceUseStatement/dus"]
    assert [(i.severity, i.code, i.expression) for i in found] == [
        ("warning", "not-found", "device")
    ]
    assert "Device/gone" in found[0].diagnostics


async def test_pull_types_reads_device_use_statements_with_their_devices(
    httpx_mock: HTTPXMock,
) -> None:
    """The CDS Hooks fetch and the Bulk cohort's REST fallback read a type as this does."""
    caps = statement({"DeviceUseStatement": resource_entry("DeviceUseStatement", includes=[])})
    server = FakeServer(caps, [patient(), use_statement()], [catheter()])
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        pulled = await pull_types(client, "p1", Settings(), ["DeviceUseStatement"])
    assert sorted(f"{r['resourceType']}/{r['id']}" for r in pulled.resources) == [
        "Device/line",
        "DeviceUseStatement/dus",
    ]
    assert pulled.skipped == {} and pulled.incomplete == []


@pytest.mark.parametrize("include", [True, False])
def test_the_read_plan_describes_the_device_use_statement_search(include: bool) -> None:
    caps = statement(
        {
            "DeviceUseStatement": resource_entry(
                "DeviceUseStatement", includes=["DeviceUseStatement:device"] if include else []
            )
        }
    )
    lines = describe_reads(parse_statement(caps), 100)
    extra = ", _include=DeviceUseStatement:device" if include else ", Devices by Device?_id="
    assert f"  DeviceUseStatement: by subject, _count=100{extra}" in lines
    # the Medications' lines are unchanged
    assert (
        "  MedicationStatement: by subject, _count=100, _include=MedicationStatement:medication"
        in lines
    )


def test_the_prefetch_and_the_export_ask_for_device_use_statements() -> None:
    """CDS Hooks prefetch and the Bulk ``_type`` list come from the same list (needs.py)."""
    from fhirtis.fhir.codes import terminology  # noqa: PLC0415
    from fhirtis.fhir.needs import export_types, prefetch_queries  # noqa: PLC0415

    queries = {key: (query, every) for key, query, every in prefetch_queries(terminology(), "P")}
    assert queries["deviceUseStatements"] == (
        "DeviceUseStatement?patient=P&_include=DeviceUseStatement:device",
        True,
    )
    assert {"Device", "DeviceUseStatement"} <= set(export_types())
