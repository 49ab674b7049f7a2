"""The terminology client (issue 10 item 11): CodeSystem/$subsumes answers, cache, failures."""

from __future__ import annotations

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import TerminologyClient, TerminologyConfig

BASE = "https://tx.example.org/fhir"
SCT = "http://snomed.info/sct"
DVT, POPLITEAL, PE = "128053003", "132251000119101", "233935004"


def subsumes_url(code_a: str, code_b: str) -> str:
    return str(
        httpx.URL(
            f"{BASE}/CodeSystem/$subsumes",
            params={"system": SCT, "codeA": code_a, "codeB": code_b},
        )
    )


def outcome(value: str) -> dict[str, object]:
    return {"resourceType": "Parameters", "parameter": [{"name": "outcome", "valueCode": value}]}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("subsumes", True), ("equivalent", True), ("subsumed-by", False), ("not-subsumed", False)],
)
async def test_outcome_maps_to_is_a(httpx_mock: HTTPXMock, answer: str, expected: bool) -> None:
    httpx_mock.add_response(url=subsumes_url(DVT, POPLITEAL), json=outcome(answer))
    async with TerminologyClient(TerminologyConfig(base_url=BASE)) as client:
        assert await client.is_a(SCT, POPLITEAL, DVT) is expected
    request = httpx_mock.get_request()
    assert request is not None and request.url.params["codeA"] == DVT  # A is the parent
    assert "Authorization" not in request.headers


async def test_answers_are_cached_per_question(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=subsumes_url(DVT, POPLITEAL), json=outcome("subsumes"))
    httpx_mock.add_response(url=subsumes_url(DVT, PE), json=outcome("not-subsumed"))
    cache: dict[tuple[str, str, str], bool] = {}
    async with TerminologyClient(TerminologyConfig(base_url=BASE), cache=cache) as client:
        answers = await client.answer_all(
            [(SCT, POPLITEAL, DVT), (SCT, PE, DVT), (SCT, POPLITEAL, DVT)]
        )
        assert answers == {(SCT, POPLITEAL, DVT): True, (SCT, PE, DVT): False}
        assert await client.is_a(SCT, POPLITEAL, DVT) is True
    # a second client sharing the cache asks nothing
    async with TerminologyClient(TerminologyConfig(base_url=BASE), cache=cache) as client:
        assert await client.is_a(SCT, PE, DVT) is False
    assert len(httpx_mock.get_requests()) == 2


@pytest.mark.parametrize(
    "reply",
    [
        {"status_code": 500, "json": {"resourceType": "OperationOutcome"}},
        {"status_code": 400, "json": {"resourceType": "OperationOutcome"}},
        {"status_code": 200, "json": {"resourceType": "Parameters", "parameter": []}},
        {"status_code": 200, "json": outcome("maybe")},
        {"status_code": 200, "text": "not json"},
    ],
)
async def test_server_failure_is_none_and_not_cached(
    httpx_mock: HTTPXMock, reply: dict[str, object]
) -> None:
    httpx_mock.add_response(url=subsumes_url(DVT, POPLITEAL), is_reusable=True, **reply)  # type: ignore[arg-type]
    cache: dict[tuple[str, str, str], bool] = {}
    async with TerminologyClient(TerminologyConfig(base_url=BASE), cache=cache) as client:
        assert await client.is_a(SCT, POPLITEAL, DVT) is None
        assert await client.is_a(SCT, POPLITEAL, DVT) is None
    assert cache == {}
    assert len(httpx_mock.get_requests()) == 2  # asked again: a failure is not remembered


async def test_unreachable_server_is_none(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectTimeout("timed out"))
    async with TerminologyClient(TerminologyConfig(base_url=BASE)) as client:
        assert await client.answer_all([(SCT, POPLITEAL, DVT)]) == {(SCT, POPLITEAL, DVT): None}


async def test_bearer_token_is_sent(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=subsumes_url(DVT, POPLITEAL), json=outcome("subsumes"))
    config = TerminologyConfig(base_url=BASE, bearer_token="tx-token")  # type: ignore[arg-type]
    async with TerminologyClient(config) as client:
        assert await client.is_a(SCT, POPLITEAL, DVT) is True
    request = httpx_mock.get_request()
    assert request is not None and request.headers["Authorization"] == "Bearer tx-token"


def test_config_refuses_a_base_url_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="http or https"):
        TerminologyConfig(base_url="ftp://tx.example.org/fhir")
