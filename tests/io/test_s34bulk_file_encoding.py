"""A Bulk Data output file whose ``Content-Encoding`` cannot be decoded.

The IG (export.html, "Bulk Data Output File Request") has servers send files gzip-compressed
with ``Content-Encoding: gzip`` when the client accepts it (smart-on-fhir/bulk-data-server
does so whenever ``Accept-Encoding`` names gzip; object stores serve what was stored with its
metadata). A file labelled ``gzip`` whose body is not (stored uncompressed under gzip metadata,
or unpacked by a proxy that kept the header) made httpx raise its own ``DecodingError`` from
the streamed download: it left ``fhirtis.io`` as a raw httpx error (the package raises only
:class:`FhirClientError`\\ s, as its other answers labelled gzip that are not already do), and
``fhirtis cohort --group`` stopped with a traceback instead of saying what went wrong, keeping
the export for the next run to fail on the same way.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import (
    BulkExportClient,
    FhirClient,
    FhirClientConfig,
    MalformedResponse,
    Manifest,
    NotFound,
)
from fhirtis.registry import cohort
from fhirtis.registry.errors import CohortError
from fhirtis.registry.options import CohortOptions
from fhirtis.settings import Settings
from tests.io._support import BASE

FILE = f"{BASE}/bulkfiles/Patient.ndjson"
SIGNED = "https://bucket.s3.example.com/Patient.ndjson?X-Amz-Signature=secret-sig"
LINES = b"".join(orjson.dumps({"resourceType": "Patient", "id": f"p{i}"}) + b"\n" for i in range(3))


def _labelled_gzip(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, stream=httpx.ByteStream(body), headers={"Content-Encoding": "gzip"}
    )


def _manifest(url: str, requires_token: bool = True) -> Manifest:
    return Manifest.from_json(
        {
            "transactionTime": "2024-05-01T10:00:00Z",
            "requiresAccessToken": requires_token,
            "output": [{"type": "Patient", "url": url}],
            "error": [],
        }
    )


async def test_a_gzip_file_is_read(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_callback(lambda _: _labelled_gzip(gzip.compress(LINES)), url=FILE)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as fhir:
        got = [r["id"] async for _, r in BulkExportClient(fhir).download(_manifest(FILE))]
    assert got == ["p0", "p1", "p2"]


@pytest.mark.parametrize("url", [FILE, SIGNED], ids=["server", "pre-signed"])
async def test_a_file_labelled_gzip_that_is_not_is_a_malformed_response(
    httpx_mock: HTTPXMock, tmp_path: Path, url: str
) -> None:
    httpx_mock.add_callback(lambda _: _labelled_gzip(LINES), url=url, is_reusable=True)
    manifest = _manifest(url, requires_token=url == FILE)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as fhir:
        bulk = BulkExportClient(fhir)
        with pytest.raises(MalformedResponse, match="Content-Encoding could not be decoded") as e:
            [r async for _, r in bulk.download(manifest)]
        assert "secret-sig" not in str(e.value)  # a pre-signed URL's query is a credential
        assert e.value.url == url.partition("?")[0] + ("?X-Amz-Signature=***" if "?" in url else "")
        with pytest.raises(MalformedResponse, match="Content-Encoding could not be decoded"):
            await bulk.download_to(manifest, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())  # no partial file left


async def test_an_error_answer_labelled_gzip_that_is_not_keeps_its_status(
    httpx_mock: HTTPXMock,
) -> None:
    """A 404 for an expired file whose error page a gateway labelled gzip: the 404 counts."""
    httpx_mock.add_callback(lambda _: _labelled_gzip(b"<html>gone</html>", 404), url=FILE)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as fhir:
        with pytest.raises(NotFound):
            [r async for _, r in BulkExportClient(fhir).download(_manifest(FILE))]


async def test_a_group_run_says_so_and_stops(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = f"{BASE}/bulkstatus/gz-1"
    # no CapabilityStatement (cohort reads it first, for the FHIR version: s36): as before
    httpx_mock.add_response(url=f"{BASE}/metadata", status_code=404, json={})
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{BASE}/Group/g1/$export") + r".*"),
        status_code=202,
        headers={"Content-Location": status},
    )
    httpx_mock.add_response(url=status, json=_manifest(FILE).to_json())
    httpx_mock.add_callback(lambda _: _labelled_gzip(LINES), url=FILE)
    httpx_mock.add_response(method="DELETE", url=status, status_code=202)
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "w")
    with pytest.raises(CohortError, match="Content-Encoding could not be decoded"):
        await cohort.run_cohort(Settings(), options, FhirClientConfig(base_url=BASE), group="g1")
