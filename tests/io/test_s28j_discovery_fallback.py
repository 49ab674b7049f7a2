"""The token endpoint from the CapabilityStatement when `.well-known/smart-configuration` is
missing (SMART Backend Services).

SMART App Launch 1.0.0 (hl7.org/fhir/smart-app-launch/1.0.0/conformance/index.html) has servers
declare their OAuth endpoints in the CapabilityStatement's `rest.security` extension
`http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris` (sub-extension `token`),
and servers of that generation serve no `.well-known/smart-configuration`: the Microsoft FHIR
server (Azure API for FHIR) answered it 404 until microsoft/fhir-server#2887 (issue #2138); the
HAPI-based Mobile Access Gateway declares its token endpoint only there, as a `valueString`
(i4mi/MobileAccessGateway#136); Pathling the same (aehrc/pathling#12). The SMART reference Bulk
Data client looks in both (docs.smarthealthit.org/bulk-data-client, `Utils.detectTokenUrl`).
fhirtis read only `.well-known` and failed such a server with a 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig, MalformedResponse
from tests.io._support import BASE, TOKEN_URL, WELL_KNOWN, FakeTime, patient, token_response

METADATA = f"{BASE}/metadata"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def _capability_statement(token: dict[str, Any] | None) -> dict[str, Any]:
    """The shape of SMART App Launch 1.0.0's CapabilityStatement-smart-app-launch-example."""
    uris: list[dict[str, Any]] = [
        {"url": "authorize", "valueUri": "https://auth.example.org/oauth2/authorize"}
    ]
    if token is not None:
        uris.insert(0, {"url": "token", **token})
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [{"url": OAUTH_URIS, "extension": uris}],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                },
            }
        ],
    }


@pytest.mark.parametrize("value", [{"valueUri": TOKEN_URL}, {"valueString": TOKEN_URL}])
async def test_the_token_endpoint_is_read_from_the_capability_statement(
    httpx_mock: HTTPXMock,
    smart_config: Callable[..., FhirClientConfig],
    fake_time: FakeTime,
    value: dict[str, str],
) -> None:
    httpx_mock.add_response(method="GET", url=WELL_KNOWN, status_code=404)
    httpx_mock.add_response(method="GET", url=METADATA, json=_capability_statement(value))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", json=patient(1))
    httpx_mock.add_response(url=f"{BASE}/Patient/p2", json=patient(2))
    async with FhirClient(smart_config(), timing=fake_time.timing()) as fhir:
        assert (await fhir.read("Patient", "p1"))["id"] == "p1"
        fake_time.advance(600)  # a new token: the endpoint is not looked for again
        httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-2"))
        assert (await fhir.read("Patient", "p2"))["id"] == "p2"
    assert len(httpx_mock.get_requests(url=WELL_KNOWN)) == 1
    assert len(httpx_mock.get_requests(url=METADATA)) == 1
    [first, second] = httpx_mock.get_requests(url=f"{BASE}/Patient/p1") + httpx_mock.get_requests(
        url=f"{BASE}/Patient/p2"
    )
    assert first.headers["Authorization"] == "Bearer at-1"
    assert second.headers["Authorization"] == "Bearer at-2"


async def test_neither_document_naming_a_token_endpoint_is_malformed(
    httpx_mock: HTTPXMock, smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    httpx_mock.add_response(method="GET", url=WELL_KNOWN, status_code=404)
    httpx_mock.add_response(method="GET", url=METADATA, json=_capability_statement(None))
    async with FhirClient(smart_config(), timing=fake_time.timing()) as fhir:
        with pytest.raises(MalformedResponse, match="token endpoint"):
            await fhir.read("Patient", "p1")
    assert httpx_mock.get_requests(url=f"{BASE}/Patient/p1") == []


async def test_a_plain_http_token_endpoint_in_the_statement_is_refused(
    httpx_mock: HTTPXMock, smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    httpx_mock.add_response(method="GET", url=WELL_KNOWN, status_code=404)
    httpx_mock.add_response(
        method="GET",
        url=METADATA,
        json=_capability_statement({"valueUri": "http://auth.example.org/oauth2/token"}),
    )
    async with FhirClient(smart_config(), timing=fake_time.timing()) as fhir:
        with pytest.raises(MalformedResponse, match="non-https"):
            await fhir.read("Patient", "p1")
    assert httpx_mock.get_requests(method="POST") == []


async def test_a_large_capability_statement_is_read(
    httpx_mock: HTTPXMock, smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    """A statement listing every type and search parameter (a HAPI JPA server's runs to
    several hundred kB, with documentation text) is larger than a token answer may be."""
    statement = _capability_statement({"valueUri": TOKEN_URL})
    statement["rest"][0]["resource"] = [
        {"type": f"Type{i}", "documentation": "x" * 1000} for i in range(1500)
    ]
    httpx_mock.add_response(method="GET", url=WELL_KNOWN, status_code=404)
    httpx_mock.add_response(method="GET", url=METADATA, json=statement)
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", json=patient(1))
    async with FhirClient(smart_config(), timing=fake_time.timing()) as fhir:
        assert (await fhir.read("Patient", "p1"))["id"] == "p1"


async def test_no_document_at_all_is_no_unknown_patient(
    httpx_mock: HTTPXMock, smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    """Both discovery documents missing is a setup error naming both, never a 404 for the
    patient read (which a caller would take for "no such patient")."""
    httpx_mock.add_response(method="GET", url=WELL_KNOWN, status_code=404)
    httpx_mock.add_response(method="GET", url=METADATA, status_code=404)
    async with FhirClient(smart_config(), timing=fake_time.timing()) as fhir:
        with pytest.raises(MalformedResponse, match=r"HTTP 404 .*CapabilityStatement .*HTTP 404"):
            await fhir.read("Patient", "p1")
