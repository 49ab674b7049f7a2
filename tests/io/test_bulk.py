"""Bulk Data $export: kick-off, polling, cancel, and NDJSON downloads (IG v2)."""

from __future__ import annotations

import email.utils
import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock, IteratorStream

from fhirtis.io import (
    BulkExportClient,
    BulkExportFailed,
    BulkExportTimeout,
    FhirClient,
    FhirClientConfig,
    ForeignUrl,
    MalformedNdjson,
    MalformedResponse,
    Manifest,
    NotFound,
    TooManyRetries,
)
from fhirtis.io._bulk_protocol import (
    NdjsonLines,
    PollSchedule,
    PollWait,
    StatusAnswer,
    is_transient_outcome,
    parse_line,
    poll_status,
)
from fhirtis.io._retry import RetryPolicy
from tests.io._support import BASE, TOKEN_URL, FakeTime, token_response

ConfigFactory = Callable[..., FhirClientConfig]

STATUS_URL = f"{BASE}/bulkstatus/job-1"
FILES = f"{BASE}/bulkfiles"
FOREIGN_FILE = "https://files.example.net/export/Observation-1.ndjson?X-Amz-Signature=topsecret"
KICKOFF = re.compile(r"https://fhir\.example\.org/r4/.*\$export.*")
FILTER_1 = "MedicationRequest?status=active,completed&date=gt2018-07-01T00:00:00Z"
FILTER_2 = "Observation?category=laboratory"
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "processing", "diagnostics": "Jane Smith 1970-01-01"}],
}
TRANSIENT_OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "transient", "diagnostics": "try later"}],
}


def patient(i: int) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": f"p{i}", "name": [{"family": f"Fam{i}"}]}


def ndjson(resources: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in resources)


def manifest_json(
    requires_token: bool, files: list[tuple[str, str]], **extra: Any
) -> dict[str, Any]:
    return {
        "transactionTime": "2024-05-01T10:00:00.123Z",
        "request": f"{BASE}/Group/g1/$export?_type=Patient",
        "requiresAccessToken": requires_token,
        "output": [{"type": t, "url": u} for t, u in files],
        "error": [],
        **extra,
    }


def make_manifest(requires_token: bool, files: list[tuple[str, str]], **extra: Any) -> Manifest:
    return Manifest.from_json(manifest_json(requires_token, files, **extra))


@pytest.fixture
def fhir(make_config: ConfigFactory, fake_time: FakeTime) -> FhirClient:
    return FhirClient(make_config(), timing=fake_time.timing())


@pytest.fixture
def bearer_fhir(make_config: ConfigFactory, fake_time: FakeTime) -> FhirClient:
    return FhirClient(
        make_config(auth_mode="bearer", bearer_token="s3cret-token"), timing=fake_time.timing()
    )


# -- kick-off ------------------------------------------------------------------------------------


async def test_kick_off_sends_the_ig_parameters_and_headers(
    httpx_mock: HTTPXMock, bearer_fhir: FhirClient
) -> None:
    httpx_mock.add_response(
        method="GET", url=KICKOFF, status_code=202, headers={"Content-Location": STATUS_URL}
    )
    since = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    async with bearer_fhir:
        status_url = await BulkExportClient(bearer_fhir).kick_off(
            "group",
            "g1",
            types=["Patient", "Observation", "Patient"],
            since=since,
            type_filters=[FILTER_1, FILTER_2],
        )
    assert status_url == STATUS_URL
    request = httpx_mock.get_request()
    assert request is not None
    assert request.method == "GET"
    assert request.url.path == "/r4/Group/g1/$export"
    assert request.url.params.multi_items() == [
        ("_type", "Patient,Observation"),
        ("_since", "2024-01-02T02:04:05Z"),
        ("_typeFilter", FILTER_1),
        ("_typeFilter", FILTER_2),
    ]
    # on the wire: literal commas in _type, each _typeFilter query percent-encoded (IG example)
    assert request.url.query.decode() == (
        "_type=Patient,Observation&_since=2024-01-02T02:04:05Z"
        "&_typeFilter=MedicationRequest%3Fstatus%3Dactive%2Ccompleted%26date%3D"
        "gt2018-07-01T00%3A00%3A00Z&_typeFilter=Observation%3Fcategory%3Dlaboratory"
    )
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.headers["Prefer"] == "respond-async"
    assert request.headers["Authorization"] == "Bearer s3cret-token"


@pytest.mark.parametrize(
    ("level", "path"),
    [("patient", "/r4/Patient/$export"), ("system", "/r4/$export")],
)
async def test_kick_off_levels_and_no_parameters(
    httpx_mock: HTTPXMock, fhir: FhirClient, level: Any, path: str
) -> None:
    httpx_mock.add_response(
        method="GET", url=KICKOFF, status_code=202, headers={"Content-Location": STATUS_URL}
    )
    async with fhir:
        await BulkExportClient(fhir).kick_off(level)
    request = httpx_mock.get_request()
    assert request is not None
    assert request.url.path == path
    assert request.url.query == b""


async def test_since_string_is_sent_as_given_with_its_plus_encoded(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(
        method="GET", url=KICKOFF, status_code=202, headers={"Content-Location": STATUS_URL}
    )
    async with fhir:
        await BulkExportClient(fhir).kick_off(
            "system", types=["Observation"], since="2024-01-02T03:04:05.123+01:00"
        )
    request = httpx_mock.get_request()
    assert request is not None
    assert request.url.params["_since"] == "2024-01-02T03:04:05.123+01:00"
    assert b"_since=2024-01-02T03:04:05.123%2B01:00" in request.url.query  # not a space


@pytest.mark.parametrize(
    "kwargs",
    [
        {"level": "group"},
        {"level": "patient", "group_id": "g1"},
        {"level": "group", "group_id": "../Patient"},
        {"level": "cohort"},
        {"level": "system", "types": ["patient"]},
        {"level": "system", "types": []},
        {"level": "system", "since": datetime(2024, 1, 2)},  # naive: ambiguous
        {"level": "system", "since": "2024-01-02"},
        {"level": "system", "since": "2024-13-02T00:00:00Z"},
        {"level": "system", "type_filters": ["status=active"]},
    ],
)
async def test_bad_kick_off_arguments_are_refused_before_sending(
    httpx_mock: HTTPXMock, fhir: FhirClient, kwargs: dict[str, Any]
) -> None:
    async with fhir:
        with pytest.raises(ValueError):
            await BulkExportClient(fhir).kick_off(**kwargs)
    assert httpx_mock.get_requests() == []


async def test_kick_off_refused_raises_with_the_outcome_as_data(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(method="GET", url=KICKOFF, status_code=400, json=OUTCOME)
    async with fhir:
        with pytest.raises(BulkExportFailed) as caught:
            await BulkExportClient(fhir).kick_off("group", "g1", type_filters=[FILTER_2])
    assert caught.value.status == 400
    assert caught.value.operation_outcome == OUTCOME
    message = str(caught.value)
    assert message.startswith("bulk export kick-off refused: HTTP 400 for GET ")
    assert "_typeFilter=***" in message
    assert "Jane" not in message
    assert "laboratory" not in message
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (200, {"Content-Location": STATUS_URL}, MalformedResponse),
        (202, {}, MalformedResponse),
        (202, {"Content-Location": "https://evil.example.com/status/1"}, ForeignUrl),
        (202, {"Content-Location": "http://fhir.example.org/r4/status/1"}, ForeignUrl),
    ],
)
async def test_unusable_kick_off_answers(
    httpx_mock: HTTPXMock,
    fhir: FhirClient,
    status: int,
    headers: dict[str, str],
    error: type[Exception],
) -> None:
    httpx_mock.add_response(method="GET", url=KICKOFF, status_code=status, headers=headers)
    async with fhir:
        with pytest.raises(error):
            await BulkExportClient(fhir).kick_off("system")
    assert len(httpx_mock.get_requests()) == 1


async def test_relative_content_location_is_resolved_against_the_request(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(
        method="GET", url=KICKOFF, status_code=202, headers={"Content-Location": "/r4/status/9"}
    )
    async with fhir:
        assert await BulkExportClient(fhir).kick_off("system") == f"{BASE}/status/9"


async def test_kick_off_429_is_retried_after_retry_after(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(
        method="GET", url=KICKOFF, status_code=429, headers={"Retry-After": "30"}
    )
    httpx_mock.add_response(
        method="GET", url=KICKOFF, status_code=202, headers={"Content-Location": STATUS_URL}
    )
    async with fhir:
        assert await BulkExportClient(fhir).kick_off("system") == STATUS_URL
    assert fake_time.sleeps == [30.0]
    assert len(httpx_mock.get_requests()) == 2


# -- polling -------------------------------------------------------------------------------------


async def test_poll_honours_retry_after_seconds_and_date_then_returns_the_manifest(
    httpx_mock: HTTPXMock, bearer_fhir: FhirClient, fake_time: FakeTime
) -> None:
    date = email.utils.formatdate(fake_time.wall + 7 + 12, usegmt=True)  # 12 s after 2nd answer
    httpx_mock.add_response(
        url=STATUS_URL, status_code=202, headers={"Retry-After": "7", "X-Progress": "10% done"}
    )
    httpx_mock.add_response(
        url=STATUS_URL, status_code=202, headers={"Retry-After": date, "X-Progress": "50% done"}
    )
    httpx_mock.add_response(url=STATUS_URL, status_code=202)  # no Retry-After, no progress
    body = manifest_json(True, [("Patient", f"{FILES}/p.ndjson")])
    body["output"][0]["count"] = 2
    body["error"] = [{"type": "OperationOutcome", "url": f"{FILES}/err.ndjson"}]
    httpx_mock.add_response(url=STATUS_URL, json=body)
    progress: list[str] = []

    async with bearer_fhir:
        manifest = await BulkExportClient(bearer_fhir).poll(STATUS_URL, on_progress=progress.append)

    assert fake_time.sleeps == [7.0, 12.0, 5.0]  # the third: the configured default interval
    assert progress == ["10% done", "50% done"]
    requests = httpx_mock.get_requests()
    assert len(requests) == 4
    for request in requests:
        assert request.method == "GET"
        assert request.url == STATUS_URL
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Authorization"] == "Bearer s3cret-token"
    assert manifest.transaction_time == "2024-05-01T10:00:00.123Z"
    assert manifest.requires_access_token is True
    assert manifest.request == f"{BASE}/Group/g1/$export?_type=Patient"
    assert [(f.type, f.url, f.count) for f in manifest.output] == [
        ("Patient", f"{FILES}/p.ndjson", 2)
    ]
    assert [f.type for f in manifest.error] == ["OperationOutcome"]
    assert manifest.deleted == ()


async def test_429_during_polling_backs_off(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=STATUS_URL, status_code=202, headers={"Retry-After": "3"})
    httpx_mock.add_response(url=STATUS_URL, status_code=429, headers={"Retry-After": "10"})
    httpx_mock.add_response(url=STATUS_URL, status_code=429)  # no Retry-After: jittered backoff
    httpx_mock.add_response(url=STATUS_URL, json=manifest_json(False, []))
    async with fhir:
        manifest = await BulkExportClient(fhir).poll(STATUS_URL)
    # 3 from the 202; 10 from the 429; then rand 0.5 * min(30, 0.5 * 2**1) for the second 429
    assert fake_time.sleeps == [3.0, 10.0, 0.5]
    assert len(httpx_mock.get_requests()) == 4
    assert manifest.output == ()


async def test_500_with_an_operation_outcome_raises_a_clear_error(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=STATUS_URL, status_code=202, headers={"Retry-After": "2"})
    httpx_mock.add_response(url=STATUS_URL, status_code=500, json=OUTCOME)
    async with fhir:
        with pytest.raises(BulkExportFailed) as caught:
            await BulkExportClient(fhir).poll(STATUS_URL)
    error = caught.value
    assert str(error) == f"bulk export failed: HTTP 500 for GET {STATUS_URL}"
    assert error.status == 500
    assert error.operation_outcome == OUTCOME
    assert "Jane" not in str(error)
    assert fake_time.sleeps == [2.0]
    assert len(httpx_mock.get_requests()) == 2  # a failed export is not retried


async def test_500_with_a_transient_outcome_is_retried(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=STATUS_URL, status_code=500, json=TRANSIENT_OUTCOME)
    httpx_mock.add_response(url=STATUS_URL, json=manifest_json(False, []))
    async with fhir:
        await BulkExportClient(fhir).poll(STATUS_URL)
    assert fake_time.sleeps == [0.25]  # rand 0.5 * backoff base 0.5
    assert len(httpx_mock.get_requests()) == 2


async def test_404_after_cancel_or_expiry_is_not_found(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(url=STATUS_URL, status_code=404, json=OUTCOME)
    async with fhir:
        with pytest.raises(NotFound):
            await BulkExportClient(fhir).poll(STATUS_URL)


async def test_time_budget_exhausted_raises(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(
        url=STATUS_URL,
        status_code=202,
        headers={"Retry-After": "10", "X-Progress": "still running"},
        is_reusable=True,
    )
    async with fhir:
        with pytest.raises(BulkExportTimeout) as caught:
            await BulkExportClient(fhir).poll(STATUS_URL, budget=30)
    # polls at 0, 10, 20, 30 s; waiting 10 more would end past the budget: no fourth sleep
    assert fake_time.sleeps == [10.0, 10.0, 10.0]
    assert len(httpx_mock.get_requests()) == 4
    assert caught.value.elapsed == 30.0
    assert caught.value.budget == 30.0
    assert caught.value.progress == "still running"
    assert "still running" not in str(caught.value)


async def test_a_retry_after_past_the_budget_raises_without_sleeping(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=STATUS_URL, status_code=202, headers={"Retry-After": "3600"})
    async with fhir:
        with pytest.raises(BulkExportTimeout):
            await BulkExportClient(fhir).poll(STATUS_URL, budget=600)
    assert fake_time.sleeps == []
    assert len(httpx_mock.get_requests()) == 1


async def test_a_429_past_the_budget_raises_a_timeout(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=STATUS_URL, status_code=202, headers={"Retry-After": "10"})
    httpx_mock.add_response(url=STATUS_URL, status_code=429, headers={"Retry-After": "60"})
    async with fhir:
        with pytest.raises(BulkExportTimeout) as caught:
            await BulkExportClient(fhir).poll(STATUS_URL, budget=30)
    assert isinstance(caught.value.__cause__, TooManyRetries)
    assert fake_time.sleeps == [10.0]
    assert len(httpx_mock.get_requests()) == 2


async def test_the_budget_defaults_to_the_config(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    config = make_config(
        bulk_poll_interval_seconds=2, bulk_poll_max_interval_seconds=4, bulk_budget_seconds=10
    )
    httpx_mock.add_response(url=STATUS_URL, status_code=202, is_reusable=True)
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        with pytest.raises(BulkExportTimeout):
            await BulkExportClient(fhir).poll(STATUS_URL)
    assert fake_time.sleeps == [2.0, 3.0, 4.0]  # grows by half, capped; a 4th ends past 10 s


@pytest.mark.parametrize(
    ("status_url", "error"),
    [
        ("https://evil.example.com/bulkstatus/job-1", ForeignUrl),
        ("bulkstatus/job-1", ValueError),
    ],
)
async def test_status_url_must_be_absolute_on_the_server_origin(
    httpx_mock: HTTPXMock, bearer_fhir: FhirClient, status_url: str, error: type[Exception]
) -> None:
    async with bearer_fhir:
        bulk = BulkExportClient(bearer_fhir)
        with pytest.raises(error):
            await bulk.poll(status_url)
        with pytest.raises(error):
            await bulk.cancel(status_url)
    assert httpx_mock.get_requests() == []


async def test_malformed_manifest_is_refused(httpx_mock: HTTPXMock, fhir: FhirClient) -> None:
    body = manifest_json(True, [])
    body["requiresAccessToken"] = "maybe"  # (a missing one reads true: s27e)
    httpx_mock.add_response(url=STATUS_URL, json=body)
    async with fhir:
        with pytest.raises(MalformedResponse) as caught:
            await BulkExportClient(fhir).poll(STATUS_URL)
    assert "requiresAccessToken" in str(caught.value)
    assert caught.value.status == 200


# -- the pure polling walk -----------------------------------------------------------------------


def _answer(status: int, elapsed: float, **headers: str) -> StatusAnswer:
    content = orjson.dumps(manifest_json(False, [])) if status == 200 else b""
    return StatusAnswer(status, httpx.Headers(headers), content, elapsed, 1_750_000_000.0)


def test_poll_walk_is_pure_and_grows_the_default_interval() -> None:
    schedule = PollSchedule(interval=5, max_interval=20, budget=1000)
    walk = poll_status(httpx.URL(STATUS_URL), schedule, RetryPolicy(5, 0.5, 30, 120), lambda: 0.5)
    assert next(walk) == PollWait(0.0)
    elapsed = 0.0
    waits = []
    for _ in range(5):
        wait = walk.send(_answer(202, elapsed))
        waits.append(wait.seconds)
        elapsed += wait.seconds
    assert waits == [5.0, 7.5, 11.25, 16.875, 20.0]
    assert walk.send(_answer(202, elapsed, **{"Retry-After": "0"})).seconds == 1.0  # floor
    assert walk.send(_answer(202, elapsed, **{"X-Progress": " 3/7 "})).progress == "3/7"
    with pytest.raises(StopIteration) as done:
        walk.send(_answer(200, elapsed))
    assert isinstance(done.value.value, Manifest)


def test_poll_walk_gives_up_after_the_attempt_limit() -> None:
    walk = poll_status(
        httpx.URL(STATUS_URL),
        PollSchedule(interval=5, max_interval=20, budget=1000),
        RetryPolicy(3, 0.5, 30, 120),
        lambda: 0.5,
    )
    next(walk)
    assert walk.send(_answer(503, 0)).seconds == 0.25
    assert walk.send(_answer(502, 1)).seconds == 0.5
    with pytest.raises(TooManyRetries) as caught:
        walk.send(_answer(504, 2))
    assert caught.value.attempts == 3
    assert caught.value.last_status == 504


@pytest.mark.parametrize(
    ("outcome", "transient"),
    [
        (TRANSIENT_OUTCOME, True),
        (OUTCOME, False),
        ({"resourceType": "OperationOutcome", "issue": []}, False),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "warning", "code": "informational"},
                    {"severity": "fatal", "code": "timeout"},
                ],
            },
            True,
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "error", "code": "throttled"},
                    {"severity": "error", "code": "not-found"},
                ],
            },
            False,
        ),
        (None, False),
    ],
)
def test_transient_outcomes(outcome: dict[str, Any] | None, transient: bool) -> None:
    assert is_transient_outcome(outcome) is transient


# -- cancel --------------------------------------------------------------------------------------


async def test_cancel_sends_delete(httpx_mock: HTTPXMock, bearer_fhir: FhirClient) -> None:
    httpx_mock.add_response(method="DELETE", url=STATUS_URL, status_code=202)
    async with bearer_fhir:
        await BulkExportClient(bearer_fhir).cancel(STATUS_URL)
    requests = httpx_mock.get_requests()
    assert len(requests) == 1
    assert requests[0].method == "DELETE"
    assert requests[0].url == STATUS_URL
    assert requests[0].headers["Authorization"] == "Bearer s3cret-token"


async def test_cancel_of_an_unknown_export_is_not_found(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(method="DELETE", url=STATUS_URL, status_code=404, json=OUTCOME)
    async with fhir:
        with pytest.raises(NotFound):
            await BulkExportClient(fhir).cancel(STATUS_URL)


# -- downloads: credentials ----------------------------------------------------------------------


async def _collect(
    bulk: BulkExportClient, manifest: Manifest, **kwargs: Any
) -> list[tuple[str, dict[str, Any]]]:
    return [item async for item in bulk.download(manifest, **kwargs)]


async def test_token_is_sent_for_same_origin_files_when_required(
    httpx_mock: HTTPXMock, bearer_fhir: FhirClient
) -> None:
    observation = {"resourceType": "Observation", "id": "o1", "status": "final"}
    httpx_mock.add_response(url=f"{FILES}/p.ndjson", content=ndjson([patient(1), patient(2)]))
    httpx_mock.add_response(url=f"{FILES}/o.ndjson", content=ndjson([observation]))
    manifest = make_manifest(
        True, [("Patient", f"{FILES}/p.ndjson"), ("Observation", f"{FILES}/o.ndjson")]
    )
    async with bearer_fhir:
        items = await _collect(BulkExportClient(bearer_fhir), manifest)
    assert items == [("Patient", patient(1)), ("Patient", patient(2)), ("Observation", observation)]
    requests = httpx_mock.get_requests()
    assert len(requests) == 2
    for request in requests:
        assert request.headers["Authorization"] == "Bearer s3cret-token"
        assert request.headers["Accept"] == "application/fhir+ndjson"


async def test_token_is_refused_to_a_foreign_file_host_before_any_request(
    httpx_mock: HTTPXMock, bearer_fhir: FhirClient, tmp_path: Path
) -> None:
    manifest = make_manifest(
        True, [("Patient", f"{FILES}/p.ndjson"), ("Observation", FOREIGN_FILE)]
    )
    async with bearer_fhir:
        bulk = BulkExportClient(bearer_fhir)
        with pytest.raises(ForeignUrl) as caught:
            await _collect(bulk, manifest)
        with pytest.raises(ForeignUrl):
            await bulk.download_to(manifest, tmp_path)
    assert caught.value.origin == "https://files.example.net:443"
    assert "topsecret" not in str(caught.value)
    assert httpx_mock.get_requests() == []  # not even the same-origin file
    assert list(tmp_path.iterdir()) == []


async def test_without_requires_access_token_no_authorization_is_sent(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    observation = {"resourceType": "Observation", "id": "o1"}
    httpx_mock.add_response(url=f"{FILES}/p.ndjson", content=ndjson([patient(1)]))
    httpx_mock.add_response(url=FOREIGN_FILE, content=ndjson([observation]))
    manifest = make_manifest(
        False, [("Patient", f"{FILES}/p.ndjson"), ("Observation", FOREIGN_FILE)]
    )
    config = make_config(auth_mode="bearer", bearer_token="s3cret-token")
    # even an Authorization header set on a shared httpx client is not sent
    async with (
        httpx.AsyncClient(headers={"Authorization": "Basic c2hhcmVk"}) as http,
        FhirClient(config, http=http, timing=fake_time.timing()) as fhir,
    ):
        items = await _collect(BulkExportClient(fhir), manifest)
    assert items == [("Patient", patient(1)), ("Observation", observation)]
    requests = httpx_mock.get_requests()
    assert [str(r.url) for r in requests] == [f"{FILES}/p.ndjson", FOREIGN_FILE]
    for request in requests:
        assert "Authorization" not in request.headers


async def test_smart_token_is_sent_and_the_file_is_still_streamed(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    """SMART auth must not read the whole file before the first resource comes out."""
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1", 3600))
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(1, 101):
            sent.append(i)
            yield ndjson([patient(i)])

    httpx_mock.add_response(url=f"{FILES}/p.ndjson", stream=IteratorStream(chunks()))
    manifest = make_manifest(True, [("Patient", f"{FILES}/p.ndjson")])
    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        resources = BulkExportClient(fhir).download(manifest)
        first = await anext(resources)
        assert first == ("Patient", patient(1))
        assert len(sent) < 5  # the other 95+ chunks are not read yet
        await resources.aclose()
    request = httpx_mock.get_requests(url=f"{FILES}/p.ndjson")[0]
    assert request.headers["Authorization"] == "Bearer at-1"


# -- downloads: NDJSON ---------------------------------------------------------------------------

TRICKY = [
    {"resourceType": "Patient", "id": "p1", "name": [{"family": "Müller-Lüdenscheidt"}]},
    {"resourceType": "Patient", "id": "p2", "note": "a\u2028b\u2029c \u0085 d"},  # not line ends
    {"resourceType": "Patient", "id": "p3"},
]
# CRLF, a blank line, U+2028 raw inside a string, multi-byte UTF-8, no final newline
TRICKY_BYTES = (
    orjson.dumps(TRICKY[0])
    + b"\r\n"
    + b"\n"
    + orjson.dumps(TRICKY[1])
    + b"\n  \n"
    + orjson.dumps(TRICKY[2])
)


async def test_ndjson_is_split_across_chunk_boundaries(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    one_byte_chunks = [TRICKY_BYTES[i : i + 1] for i in range(len(TRICKY_BYTES))]
    httpx_mock.add_response(url=f"{FILES}/p.ndjson", stream=IteratorStream(one_byte_chunks))
    manifest = make_manifest(False, [("Patient", f"{FILES}/p.ndjson")])
    async with fhir:
        items = await _collect(BulkExportClient(fhir), manifest)
    assert [resource for _, resource in items] == TRICKY


def test_line_splitting_does_not_depend_on_where_chunks_end() -> None:
    url = httpx.URL(f"{FILES}/p.ndjson")
    for cut in range(len(TRICKY_BYTES) + 1):
        splitter = NdjsonLines(url=url, resource_type="Patient", max_line_bytes=10_000)
        lines = splitter.feed(TRICKY_BYTES[:cut]) + splitter.feed(TRICKY_BYTES[cut:])
        lines += splitter.end()
        assert [n for n, _ in lines] == [1, 2, 3, 4, 5]
        parsed = [parse_line(raw, line=n, url=url, resource_type="Patient") for n, raw in lines]
        assert [p for p in parsed if p is not None] == TRICKY


BAD_FILE = f"{FILES}/p.ndjson?sig=topsecret"


def _bad_lines() -> bytes:
    return (
        ndjson([patient(1), patient(2)])
        + b'{"resourceType": "Patient", "name": "Jane Smi\n'  # cut off: not JSON
        + ndjson([patient(4)])
        + b'["Jane"]\n'  # not an object
        + b'{"resourceType": "Observation", "id": "Jane"}\n'  # not the file's type
    )


async def test_a_malformed_line_is_reported_with_file_and_line_number(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(url=BAD_FILE, content=_bad_lines())
    manifest = make_manifest(False, [("Patient", BAD_FILE)])
    seen: list[tuple[str, str]] = []
    async with fhir:
        with pytest.raises(MalformedNdjson) as caught:
            async for resource_type, resource in BulkExportClient(fhir).download(manifest):
                seen.append((resource_type, resource["id"]))
    assert seen == [("Patient", "p1"), ("Patient", "p2")]
    error = caught.value
    assert error.line == 3
    assert error.resource_type == "Patient"
    assert error.url == f"{FILES}/p.ndjson?sig=***"
    assert str(error) == f"NDJSON file {FILES}/p.ndjson?sig=*** (Patient) line 3: not valid JSON"
    assert error.__cause__ is None and error.__context__ is None  # no decoder text chained
    assert "Jane" not in str(error)
    assert "topsecret" not in str(error)


async def test_bad_lines_can_be_reported_and_skipped(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    httpx_mock.add_response(url=BAD_FILE, content=_bad_lines())
    manifest = make_manifest(False, [("Patient", BAD_FILE)])
    bad: list[MalformedNdjson] = []
    async with fhir:
        items = await _collect(BulkExportClient(fhir), manifest, on_bad_line=bad.append)
    assert [r["id"] for _, r in items] == ["p1", "p2", "p4"]
    assert [(e.line, str(e).rsplit(": ", 1)[1]) for e in bad] == [
        (3, "not valid JSON"),
        (5, "not a JSON object"),
        (6, "not a Patient resource"),
    ]
    assert all("Jane" not in str(e) for e in bad)


async def test_an_overlong_line_is_refused(httpx_mock: HTTPXMock, fhir: FhirClient) -> None:
    long_patient = {"resourceType": "Patient", "id": "p2", "text": "x" * 500}
    httpx_mock.add_response(
        url=f"{FILES}/p.ndjson", content=ndjson([patient(1), long_patient, patient(3)])
    )
    manifest = make_manifest(False, [("Patient", f"{FILES}/p.ndjson")])
    async with fhir:
        with pytest.raises(MalformedNdjson) as caught:
            await _collect(BulkExportClient(fhir, max_line_bytes=200), manifest)
    assert caught.value.line == 2
    assert "longer than 200 bytes" in str(caught.value)


async def test_error_files_are_downloaded_on_request(
    httpx_mock: HTTPXMock, fhir: FhirClient
) -> None:
    issue = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x"}]}
    httpx_mock.add_response(url=f"{FILES}/err.ndjson", content=ndjson([issue]))
    manifest = Manifest.from_json(
        manifest_json(False, [], error=[{"type": "OperationOutcome", "url": f"{FILES}/err.ndjson"}])
    )
    async with fhir:
        bulk = BulkExportClient(fhir)
        assert await _collect(bulk, manifest) == []
        assert await _collect(bulk, manifest, files=manifest.error) == [("OperationOutcome", issue)]


async def test_file_error_status_raises(httpx_mock: HTTPXMock, fhir: FhirClient) -> None:
    httpx_mock.add_response(url=BAD_FILE, status_code=404, text="expired")
    manifest = make_manifest(False, [("Patient", BAD_FILE)])
    async with fhir:
        with pytest.raises(NotFound) as caught:
            await _collect(BulkExportClient(fhir), manifest)
    assert "topsecret" not in str(caught.value)


# -- downloads: retries --------------------------------------------------------------------------


async def test_file_503_is_retried(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=f"{FILES}/p.ndjson", status_code=503)
    httpx_mock.add_response(url=f"{FILES}/p.ndjson", content=ndjson([patient(1)]))
    manifest = make_manifest(False, [("Patient", f"{FILES}/p.ndjson")])
    async with fhir:
        items = await _collect(BulkExportClient(fhir), manifest)
    assert items == [("Patient", patient(1))]
    assert fake_time.sleeps == [0.25]
    assert len(httpx_mock.get_requests()) == 2


class _BreakingStream(httpx.AsyncByteStream):
    """Sends some bytes, then the connection drops."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._content
        raise httpx.ReadError("connection reset by peer")


async def test_a_dropped_download_resumes_after_the_last_line_delivered(
    httpx_mock: HTTPXMock, fhir: FhirClient, fake_time: FakeTime
) -> None:
    full = ndjson([patient(i) for i in range(1, 5)])
    cut = full.index(b"p3") + 2  # mid-way through line 3
    httpx_mock.add_response(url=f"{FILES}/p.ndjson", stream=_BreakingStream(full[:cut]))
    httpx_mock.add_response(url=f"{FILES}/p.ndjson", content=full)
    manifest = make_manifest(False, [("Patient", f"{FILES}/p.ndjson")])
    async with fhir:
        items = await _collect(BulkExportClient(fhir), manifest)
    assert [r["id"] for _, r in items] == ["p1", "p2", "p3", "p4"]  # each once
    assert fake_time.sleeps == [0.25]
    assert len(httpx_mock.get_requests()) == 2


# -- downloads to disk ---------------------------------------------------------------------------


async def test_download_to_streams_files_to_disk_and_resumes(
    httpx_mock: HTTPXMock, fhir: FhirClient, tmp_path: Path
) -> None:
    observation = {"resourceType": "Observation", "id": "o1"}
    httpx_mock.add_response(url=f"{FILES}/p.ndjson", content=TRICKY_BYTES)
    httpx_mock.add_response(url=f"{FILES}/o.ndjson", content=ndjson([observation]))
    manifest = make_manifest(
        False, [("Patient", f"{FILES}/p.ndjson"), ("Observation", f"{FILES}/o.ndjson")]
    )
    folder = tmp_path / "export"
    async with fhir:
        bulk = BulkExportClient(fhir)
        paths = await bulk.download_to(manifest, folder)
        again = await bulk.download_to(manifest, folder)  # complete files are kept

    assert again == paths
    assert len(httpx_mock.get_requests()) == 2
    assert [p.parent for p in paths] == [folder, folder]
    assert re.fullmatch(r"Patient\.0000\.[0-9a-f]{12}\.ndjson", paths[0].name)
    assert re.fullmatch(r"Observation\.0001\.[0-9a-f]{12}\.ndjson", paths[1].name)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths)
    lines = paths[0].read_bytes().split(b"\n")
    assert lines[-1] == b""  # every line ends with \n
    assert [orjson.loads(line) for line in lines[:-1]] == TRICKY  # CRLF and blanks dropped
    assert orjson.loads(paths[1].read_bytes()) == observation


async def test_download_to_leaves_no_partial_file(
    httpx_mock: HTTPXMock, fhir: FhirClient, tmp_path: Path
) -> None:
    httpx_mock.add_response(url=f"{FILES}/p.ndjson", content=ndjson([patient(1)]))
    httpx_mock.add_response(url=BAD_FILE, content=_bad_lines())
    manifest = make_manifest(False, [("Patient", f"{FILES}/p.ndjson"), ("Patient", BAD_FILE)])
    async with fhir:
        with pytest.raises(MalformedNdjson) as caught:
            await BulkExportClient(fhir).download_to(manifest, tmp_path)
    assert caught.value.line == 3
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 1  # the first, complete file; nothing of the second
    assert names[0].startswith("Patient.0000.")


# -- the manifest --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"requiresAccessToken": 1}, "requiresAccessToken"),  # missing reads true: s27e
        ({"requiresAccessToken": "yes"}, "requiresAccessToken"),  # "true" is read: s27e
        ({"transactionTime": None}, "transactionTime"),
        ({"output": {"type": "Patient"}}, "output"),  # missing reads empty: s27e
        ({"output": [{"type": "../etc", "url": f"{FILES}/x.ndjson"}]}, "resource type"),
        ({"output": [{"type": "Patient", "url": "/bulkfiles/x.ndjson"}]}, "absolute"),
        ({"output": [{"type": "Patient", "url": f"{FILES}/x", "count": -1}]}, "count"),
        ({"error": {"type": "OperationOutcome"}}, "error"),
    ],
)
def test_manifest_checks(change: dict[str, Any], what: str) -> None:
    data = manifest_json(True, [("Patient", f"{FILES}/p.ndjson")])
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    with pytest.raises(MalformedResponse) as caught:
        Manifest.from_json(data)
    assert what in str(caught.value)


def test_manifest_round_trips_and_tolerates_missing_optional_fields() -> None:
    data = {
        "transactionTime": "2024-05-01T10:00:00Z",
        "requiresAccessToken": False,
        "output": [{"type": "Patient", "url": f"{FILES}/p.ndjson", "count": 3}],
        "deleted": [{"type": "Bundle", "url": f"{FILES}/del.ndjson"}],
        "extension": {"https://example.org/x": True},
    }
    manifest = Manifest.from_json(data)
    assert manifest.error == ()
    assert manifest.request is None
    assert [f.type for f in manifest.deleted] == ["Bundle"]
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_config_refuses_a_max_poll_interval_below_the_first(
    make_config: ConfigFactory,
) -> None:
    with pytest.raises(ValueError, match="bulk_poll_max_interval_seconds"):
        make_config(bulk_poll_interval_seconds=10, bulk_poll_max_interval_seconds=5)
