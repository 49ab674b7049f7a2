"""Bulk Data file downloads answered with a redirect to a pre-signed URL.

Oracle Health Millennium documents it (github.com/cerner/fhir.cerner.com,
content/millennium/bulk-data/group-export.md, "File Retrieval Request"): the file URL answers
``307 Temporary Redirect`` with a ``Location`` on an object store; the first request needs the
Authorization header, the redirected one must not carry it ("the url is pre-signed").
"""

from __future__ import annotations

import orjson
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from fhirtis.io import (
    BulkExportClient,
    FhirClient,
    FhirClientConfig,
    MalformedResponse,
    Manifest,
)
from tests.io._support import BASE, FakeTime

TOKEN = "bulk-secret-token"
FILE = f"{BASE}/bulk-export/files/f1"
SIGNED = "https://bucket.s3.example.com/processed/f1?X-Amz-Signature=sig&X-Amz-Expires=60"


def _manifest(requires_token: bool = True) -> Manifest:
    return Manifest.from_json(
        {
            "transactionTime": "2024-05-01T10:00:00Z",
            "requiresAccessToken": requires_token,
            "output": [{"type": "Patient", "url": FILE}],
            "error": [],
        }
    )


def _client() -> FhirClient:
    config = FhirClientConfig(
        base_url=BASE, auth_mode="bearer", bearer_token=SecretStr(TOKEN), retry_max_attempts=2
    )
    return FhirClient(config, timing=FakeTime().timing())


@pytest.mark.parametrize("status", [307, 302, 303])
async def test_a_redirected_file_is_fetched_without_the_token(
    httpx_mock: HTTPXMock, status: int
) -> None:
    httpx_mock.add_response(url=FILE, status_code=status, headers={"Location": SIGNED})
    httpx_mock.add_response(
        url=SIGNED, content=orjson.dumps({"resourceType": "Patient", "id": "p1"}) + b"\n"
    )
    async with _client() as fhir:
        got = [r async for _, r in BulkExportClient(fhir).download(_manifest())]
    assert [r["id"] for r in got] == ["p1"]
    first, second = httpx_mock.get_requests()
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "Authorization" not in second.headers


async def test_a_relative_redirect_is_resolved_against_the_file_url(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_response(url=FILE, status_code=307, headers={"Location": "/r4/blobs/f1"})
    httpx_mock.add_response(
        url=f"{BASE}/blobs/f1",
        content=orjson.dumps({"resourceType": "Patient", "id": "p1"}) + b"\n",
    )
    async with _client() as fhir:
        got = [r async for _, r in BulkExportClient(fhir).download(_manifest())]
    assert [r["id"] for r in got] == ["p1"]
    assert "Authorization" not in httpx_mock.get_requests()[1].headers


async def test_redirects_are_bounded_and_never_downgrade_to_http(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_response(url=FILE, status_code=307, headers={"Location": SIGNED})
    httpx_mock.add_response(
        url=SIGNED, status_code=307, headers={"Location": SIGNED}, is_reusable=True
    )
    async with _client() as fhir:
        with pytest.raises(MalformedResponse, match="redirect"):
            _ = [r async for _, r in BulkExportClient(fhir).download(_manifest())]
    assert len(httpx_mock.get_requests()) <= 6
    httpx_mock.reset()
    httpx_mock.add_response(
        url=FILE, status_code=307, headers={"Location": "http://bucket.example.com/f1"}
    )
    async with _client() as fhir:
        with pytest.raises(MalformedResponse, match="redirect"):
            _ = [r async for _, r in BulkExportClient(fhir).download(_manifest())]
    assert len(httpx_mock.get_requests()) == 1
