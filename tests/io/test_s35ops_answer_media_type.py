"""A 2xx answer that is not JSON names the media type the server sent.

A base URL that lands on a sign-in page (an SSO proxy's 200 ``text/html``), or a server that
answers FHIR XML only, was reported as "body from GET … is not a JSON object": nothing said the
server had answered HTML or XML, which is what the integrator has to fix (the base URL, the
proxy, or the server's JSON support). The message now names the media type (a header, never
the body, which may hold anything), with a hint for the usual causes."""

from __future__ import annotations

import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig, MalformedResponse
from tests.io._support import BASE


async def _read(httpx_mock: HTTPXMock, content: bytes, media_type: str) -> MalformedResponse:
    httpx_mock.add_response(
        url=f"{BASE}/Patient/p1", content=content, headers={"Content-Type": media_type}
    )
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        with pytest.raises(MalformedResponse) as caught:
            await client.read("Patient", "p1")
    return caught.value


async def test_a_sign_in_page_is_said_to_be_html(httpx_mock: HTTPXMock) -> None:
    page = b"<!DOCTYPE html><html><body>Sign in to Example Health (jane.doe)</body></html>"
    error = await _read(httpx_mock, page, "text/html; charset=utf-8")
    assert "text/html" in str(error)
    assert "sign-in page" in str(error) or "base URL" in str(error)
    assert "jane.doe" not in str(error)  # the body is never copied


async def test_fhir_xml_is_said_to_be_xml(httpx_mock: HTTPXMock) -> None:
    xml = b'<Patient xmlns="http://hl7.org/fhir"><id value="p1"/></Patient>'
    error = await _read(httpx_mock, xml, "application/fhir+xml")
    assert "application/fhir+xml" in str(error)
    assert "JSON" in str(error)


async def test_json_that_is_no_object_says_no_media_type_hint(httpx_mock: HTTPXMock) -> None:
    error = await _read(httpx_mock, b"[1, 2]", "application/fhir+json")
    assert "is not a JSON object" in str(error)
    assert "answered application/fhir+json" not in str(error)
