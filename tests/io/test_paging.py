"""Search paging: next links (relative, absolute, foreign, looping), _count, malformed pages."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import (
    FhirClient,
    FhirClientConfig,
    ForeignNextLink,
    MalformedResponse,
    NotFound,
    PagingLoop,
)
from fhirtis.io._paging import PageRequest, resolve_next, walk_pages
from tests.io._support import BASE, FakeTime, patient, searchset

ConfigFactory = Callable[..., FhirClientConfig]


def _client(make_config: ConfigFactory, fake_time: FakeTime, **overrides: object) -> FhirClient:
    return FhirClient(make_config(**overrides), timing=fake_time.timing())


async def test_follows_relative_and_absolute_next_links_with_count(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    page2 = f"{BASE}/Patient?name=smith&_count=2&_page=2"
    page3 = "https://fhir.example.org/r4?_getpages=abc&_getpagesoffset=4"
    httpx_mock.add_response(
        url=f"{BASE}/Patient?name=smith&_count=2",
        json=searchset([patient(1), patient(2)], next_url="Patient?name=smith&_count=2&_page=2"),
    )
    httpx_mock.add_response(url=page2, json=searchset([patient(3), patient(4)], next_url=page3))
    httpx_mock.add_response(url=page3, json=searchset([patient(5)]))

    async with _client(make_config, fake_time) as fhir:
        entries = [e async for e in fhir.search("Patient", {"name": "smith"}, count=2)]

    assert [e["resource"]["id"] for e in entries] == ["p1", "p2", "p3", "p4", "p5"]
    assert all(e["search"]["mode"] == "match" for e in entries)
    sent = httpx_mock.get_requests()
    assert [str(r.url) for r in sent] == [f"{BASE}/Patient?name=smith&_count=2", page2, page3]
    assert all(r.method == "GET" for r in sent)


async def test_count_defaults_to_config_and_params_win(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=f"{BASE}/Observation?_count=25", json=searchset([]))
    httpx_mock.add_response(url=f"{BASE}/Observation?_count=7", json=searchset([]))
    async with _client(make_config, fake_time, page_size=25) as fhir:
        assert [e async for e in fhir.search("Observation")] == []
        assert [e async for e in fhir.search("Observation", {"_count": 7}, count=3)] == []
    assert len(httpx_mock.get_requests()) == 2


async def test_default_page_size_is_100(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=f"{BASE}/Observation?_count=100", json=searchset([]))
    async with _client(make_config, fake_time) as fhir:
        assert [e async for e in fhir.search("Observation")] == []


async def test_repeated_parameters_are_kept(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(json=searchset([]))
    params = {"date": ["ge2020-01-01", "le2020-12-31"], "code": "http://loinc.org|1234-5"}
    async with _client(make_config, fake_time) as fhir:
        [e async for e in fhir.search("Observation", params)]
    request = httpx_mock.get_request()
    assert request is not None
    assert request.url.params.get_list("date") == ["ge2020-01-01", "le2020-12-31"]
    assert request.url.params["code"] == "http://loinc.org|1234-5"


async def test_pages_are_fetched_lazily(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient?_count=100",
        json=searchset([patient(1)], next_url=f"{BASE}/Patient?page=2"),
    )
    async with _client(make_config, fake_time) as fhir:
        pages = fhir.search_bundle_pages("Patient")
        first = await anext(pages)
        assert first["entry"][0]["resource"]["id"] == "p1"
        await pages.aclose()
    assert len(httpx_mock.get_requests()) == 1  # page 2 never asked for


@pytest.mark.parametrize(
    "foreign",
    [
        "https://evil.example.com/r4/Patient?page=2",  # another host
        "http://fhir.example.org/r4/Patient?page=2",  # another scheme
        "https://fhir.example.org:8443/r4/Patient?page=2",  # another port
        "//evil.example.com/r4/Patient?page=2",  # scheme-relative, another host
    ],
)
async def test_next_link_to_another_origin_is_refused_and_not_requested(
    httpx_mock: HTTPXMock,
    make_config: ConfigFactory,
    fake_time: FakeTime,
    foreign: str,
) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient?_count=100", json=searchset([patient(1)], next_url=foreign)
    )
    seen: list[str] = []
    config = make_config(auth_mode="bearer", bearer_token="tok-secret")
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        with pytest.raises(ForeignNextLink) as caught:
            async for entry in fhir.search("Patient"):
                seen.append(entry["resource"]["id"])

    assert seen == ["p1"]  # the first page's entries were delivered
    sent = httpx_mock.get_requests()
    assert len(sent) == 1
    assert sent[0].url.host == "fhir.example.org"
    assert sent[0].headers["Authorization"] == "Bearer tok-secret"
    assert "no request was sent" in str(caught.value)
    assert "tok-secret" not in str(caught.value)
    assert "page=2" not in str(caught.value)


async def test_explicit_default_port_is_same_origin(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient?_count=100",
        json=searchset([patient(1)], next_url="https://FHIR.example.org:443/r4/Patient?page=2"),
    )
    httpx_mock.add_response(url=f"{BASE}/Patient?page=2", json=searchset([patient(2)]))
    async with _client(make_config, fake_time) as fhir:
        ids = [e["resource"]["id"] async for e in fhir.search("Patient")]
    assert ids == ["p1", "p2"]


async def test_paging_loop_is_detected(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    first = f"{BASE}/Patient?_count=100"
    second = f"{BASE}/Patient?_count=100&page=2"
    httpx_mock.add_response(url=first, json=searchset([patient(1)], next_url=second))
    httpx_mock.add_response(url=second, json=searchset([patient(2)], next_url=first))
    async with _client(make_config, fake_time) as fhir:
        with pytest.raises(PagingLoop) as caught:
            [e async for e in fhir.search("Patient")]
    assert len(httpx_mock.get_requests()) == 2
    assert "/r4/Patient" in str(caught.value)


async def test_self_loop_is_detected(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    first = f"{BASE}/Patient?_count=100"
    httpx_mock.add_response(url=first, json=searchset([patient(1)], next_url=first))
    async with _client(make_config, fake_time) as fhir:
        with pytest.raises(PagingLoop):
            [e async for e in fhir.search("Patient")]
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>Smith, John</html>", "not valid JSON"),
        (b'{"resourceType": "OperationOutcome", "issue": [{"diagnostics": "Smith"}]}', "Bundle"),
        (b'{"resourceType": "Bundle", "type": "batch-response", "entry": []}', "searchset"),
        (b'{"resourceType": "Bundle", "type": "searchset", "entry": {"x": "Smith"}}', "entry"),
        (b"[1, 2]", "Bundle"),
    ],
)
async def test_malformed_page_midway_names_the_url(
    httpx_mock: HTTPXMock,
    make_config: ConfigFactory,
    fake_time: FakeTime,
    body: bytes,
    reason: str,
) -> None:
    page2 = f"{BASE}/Patient?_getpages=xyz&identifier=MRN-778899"
    httpx_mock.add_response(
        url=f"{BASE}/Patient?_count=100", json=searchset([patient(1)], next_url=page2)
    )
    httpx_mock.add_response(url=page2, content=body)
    seen: list[str] = []
    async with _client(make_config, fake_time) as fhir:
        with pytest.raises(MalformedResponse) as caught:
            async for entry in fhir.search("Patient"):
                seen.append(entry["resource"]["id"])
    error = caught.value
    assert seen == ["p1"]
    assert error.status == 200
    assert "https://fhir.example.org/r4/Patient?_getpages=***&identifier=***" in str(error)
    assert error.url == "https://fhir.example.org/r4/Patient?_getpages=***&identifier=***"
    assert reason in str(error)
    assert "Smith" not in str(error)
    assert "MRN-778899" not in str(error)
    assert error.__cause__ is None  # the decoder error (which holds the body) is not chained


async def test_error_status_on_a_page_redacts_search_values(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": "MRN-123456 Smith"}],
    }
    httpx_mock.add_response(status_code=404, json=outcome)
    async with _client(make_config, fake_time) as fhir:
        with pytest.raises(NotFound) as caught:
            [e async for e in fhir.search("Patient", {"identifier": "MRN-123456"})]
    assert caught.value.status == 404
    assert caught.value.operation_outcome == outcome  # kept as data ...
    assert "MRN-123456" not in str(caught.value)  # ... never in the message
    assert "HTTP 404 for GET https://fhir.example.org/r4/Patient?identifier=***" in str(
        caught.value
    )


async def test_post_search_sends_parameters_in_the_body(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    page2 = f"{BASE}/Observation?_getpages=abc"
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/Observation/_search",
        json=searchset([patient(1)], next_url=page2),
    )
    httpx_mock.add_response(method="GET", url=page2, json=searchset([patient(2)]))
    async with _client(make_config, fake_time) as fhir:
        ids = [
            e["resource"]["id"]
            async for e in fhir.search(
                "Observation", [("patient", "Patient/1"), ("code", "a,b")], count=50, use_post=True
            )
        ]
    assert ids == ["p1", "p2"]
    post, get = httpx_mock.get_requests()
    assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(post.content.decode()) == [
        ("patient", "Patient/1"),
        ("code", "a,b"),
        ("_count", "50"),
    ]
    assert not post.url.query
    assert get.method == "GET"


async def test_bad_resource_type_is_refused_before_sending(
    make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    async with _client(make_config, fake_time) as fhir:
        with pytest.raises(ValueError, match="resource type"):
            [e async for e in fhir.search("../admin")]


# -- the walk itself, without any I/O -----------------------------------------------------------


def test_walk_is_pure_and_yields_each_page_request() -> None:
    base = httpx.URL(BASE)
    walk = walk_pages(base, PageRequest("GET", httpx.URL(f"{BASE}/Patient?_count=1")))
    assert next(walk).url == httpx.URL(f"{BASE}/Patient?_count=1")
    nxt = walk.send({"link": [{"relation": "next", "url": "Patient?page=2"}]})
    assert nxt == PageRequest("GET", httpx.URL(f"{BASE}/Patient?page=2"))
    nxt = walk.send({"link": [{"relation": "next", "url": "/r4/Patient?page=3"}]})
    assert nxt.url == httpx.URL(f"{BASE}/Patient?page=3")
    with pytest.raises(StopIteration):
        walk.send({"link": [{"relation": "self", "url": "x"}]})


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("Patient?page=2", f"{BASE}/Patient?page=2"),
        ("/r4/Patient?page=2", f"{BASE}/Patient?page=2"),
        ("?page=2", f"{BASE}/Observation?page=2"),
        (f"{BASE}?_getpages=a", f"{BASE}?_getpages=a"),
    ],
)
def test_resolve_next(link: str, expected: str) -> None:
    page_url = httpx.URL(f"{BASE}/Observation?_count=10")
    assert resolve_next(httpx.URL(BASE), page_url, link) == httpx.URL(expected)
