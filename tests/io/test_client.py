"""The client's plain operations: read, batch, transaction, request, errors, lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from fhirtis import __version__
from fhirtis.io import (
    FhirClient,
    FhirClientConfig,
    FhirServerError,
    Forbidden,
    MalformedResponse,
    NotFound,
    PreconditionFailed,
)
from tests.io._support import BASE, FakeTime, patient

ConfigFactory = Callable[..., FhirClientConfig]
PATIENT_URL = f"{BASE}/Patient/p1"
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "processing", "diagnostics": "Jane Smith 1970-01-01"}],
}


@pytest.fixture
def fhir(make_config: ConfigFactory, fake_time: FakeTime) -> FhirClient:
    return FhirClient(make_config(), timing=fake_time.timing())


async def test_read_returns_a_dict_and_sends_fhir_headers(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(url=PATIENT_URL, json=patient(1))
    async with fhir:
        assert await fhir.read("Patient", "p1") == {"resourceType": "Patient", "id": "p1"}
    request = httpx_mock.get_request()
    assert request is not None
    assert request.method == "GET"
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.headers["User-Agent"] == f"fhirtis/{__version__}"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, NotFound),
        (410, NotFound),
        (412, PreconditionFailed),
        (403, Forbidden),
        (400, FhirServerError),
        (500, FhirServerError),
    ],
)
async def test_error_statuses_map_to_errors_with_the_outcome_as_data(
    httpx_mock: HTTPXMock, fhir: FhirClient, status: int, error: type[FhirServerError]
) -> None:
    httpx_mock.add_response(url=PATIENT_URL, status_code=status, json=OUTCOME)
    async with fhir:
        with pytest.raises(error) as caught:
            await fhir.read("Patient", "p1")
    assert type(caught.value) is error
    assert caught.value.status == status
    assert caught.value.operation_outcome == OUTCOME
    assert str(caught.value) == f"HTTP {status} for GET {PATIENT_URL}"
    assert len(httpx_mock.get_requests()) == 1  # not retried


async def test_error_without_outcome_body(httpx_mock: HTTPXMock, fhir: FhirClient) -> None:
    httpx_mock.add_response(url=PATIENT_URL, status_code=404, text="<html>nope</html>")
    async with fhir:
        with pytest.raises(NotFound) as caught:
            await fhir.read("Patient", "p1")
    assert caught.value.operation_outcome is None


async def test_if_match_conflict_is_precondition_failed(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(method="PUT", url=f"{BASE}/Flag/f1", status_code=412, json=OUTCOME)
    async with fhir:
        with pytest.raises(PreconditionFailed):
            await fhir.request(
                "PUT",
                "Flag/f1",
                json={"resourceType": "Flag", "id": "f1"},
                headers={"If-Match": 'W/"4"'},
            )
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["If-Match"] == 'W/"4"'
    assert request.headers["Content-Type"] == "application/fhir+json"


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"resourceType": "OperationOutcome"}', b"[]"],
)
async def test_read_of_something_else_is_malformed(
    httpx_mock: HTTPXMock, fhir: FhirClient, body: bytes
) -> None:
    httpx_mock.add_response(url=PATIENT_URL, content=body)
    async with fhir:
        with pytest.raises(MalformedResponse) as caught:
            await fhir.read("Patient", "p1")
    assert PATIENT_URL in str(caught.value)


@pytest.mark.parametrize(
    ("resource_type", "resource_id"),
    [("Patient", "../Observation"), ("Patient", ".."), ("patient", "p1"), ("Patient", "a/b")],
)
async def test_read_refuses_bad_type_or_id_without_sending(
    fhir: FhirClient, resource_type: str, resource_id: str
) -> None:
    async with fhir:
        with pytest.raises(ValueError, match="not a FHIR"):
            await fhir.read(resource_type, resource_id)


async def test_batch_posts_a_batch_bundle(httpx_mock: HTTPXMock, fhir: FhirClient) -> None:
    response = {"resourceType": "Bundle", "type": "batch-response", "entry": [{}]}
    httpx_mock.add_response(method="POST", url=BASE, json=response)
    entries = [{"request": {"method": "GET", "url": "Patient/p1"}}]
    async with fhir:
        assert await fhir.batch(entries) == response
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["Content-Type"] == "application/fhir+json"


async def test_batch_answer_that_is_not_a_bundle_is_malformed(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(method="POST", url=BASE, json=OUTCOME)
    async with fhir:
        with pytest.raises(MalformedResponse):
            await fhir.batch([])


async def test_transaction_needs_a_transaction_bundle(fhir: FhirClient) -> None:
    async with fhir:
        with pytest.raises(ValueError, match="transaction"):
            await fhir.transaction({"resourceType": "Bundle", "type": "batch"})


async def test_request_relative_and_absolute_urls(httpx_mock: HTTPXMock, fhir: FhirClient) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/metadata?_summary=true", json={"resourceType": "CapabilityStatement"}
    )
    httpx_mock.add_response(
        url=f"{BASE}/Patient/p1/$everything?_count=5&_type=Observation",
        json={"resourceType": "Bundle"},
    )
    httpx_mock.add_response(method="DELETE", url=f"{BASE}/Flag/f1", status_code=204)
    async with fhir:
        meta = await fhir.request("GET", "metadata", params={"_summary": "true"})
        assert meta.body == {"resourceType": "CapabilityStatement"}
        everything = await fhir.request(
            "GET", f"{BASE}/Patient/p1/$everything?_count=5", params={"_type": "Observation"}
        )
        assert everything.status == 200
        deleted = await fhir.request("DELETE", "/Flag/f1")
        assert deleted.status == 204
        assert deleted.body is None


async def test_request_returns_location_and_etag(httpx_mock: HTTPXMock, fhir: FhirClient) -> None:
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/Observation",
        status_code=201,
        headers={"Location": f"{BASE}/Observation/o9/_history/1", "ETag": 'W/"1"'},
    )
    async with fhir:
        created = await fhir.request("POST", "Observation", json={"resourceType": "Observation"})
    assert created.location == f"{BASE}/Observation/o9/_history/1"
    assert created.etag == 'W/"1"'


async def test_owned_http_client_is_closed_and_a_shared_one_is_not(
    make_config: ConfigFactory,
) -> None:
    owned = FhirClient(make_config())
    async with owned:
        pass
    assert owned._http.is_closed

    async with httpx.AsyncClient() as shared:
        async with FhirClient(make_config(), http=shared):
            pass
        assert not shared.is_closed


async def _keep_alive_server(connections: list[tuple[str, int]]) -> asyncio.Server:
    """A minimal HTTP/1.1 server on 127.0.0.1 answering every request with a Patient, keeping
    connections open; it records the peer address of each new TCP connection."""
    body = orjson.dumps(patient(1))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername")[:2])
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_one_connection_pool_is_reused_across_calls() -> None:
    """Sequential reads travel over one kept-alive TCP connection: a client that opened a new
    connection (or a new pool) per request would show one connection per read here."""
    connections: list[tuple[str, int]] = []
    server = await _keep_alive_server(connections)
    port = server.sockets[0].getsockname()[1]
    config = FhirClientConfig(base_url=f"http://127.0.0.1:{port}/fhir")
    async with server, FhirClient(config) as fhir:
        for _ in range(3):
            assert (await fhir.read("Patient", "p1"))["id"] == "p1"
        sequential = len(connections)
        # concurrent reads may open up to `concurrency` connections, never more
        await asyncio.gather(*(fhir.read("Patient", "p1") for _ in range(20)))
    assert sequential == 1
    assert len(connections) <= config.concurrency


async def test_concurrency_limits_requests_in_flight(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    in_flight = 0
    peak = 0

    async def respond(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=patient(int(request.url.path.rsplit("p", 1)[1])))

    httpx_mock.add_callback(respond, is_reusable=True)
    config = make_config(concurrency=2)
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        results = await asyncio.gather(*(fhir.read("Patient", f"p{i}") for i in range(6)))
    assert [r["id"] for r in results] == [f"p{i}" for i in range(6)]
    assert peak == 2
