"""HTTP edges of the service: GET and POST parameters alike, strict dates, media types (415,
406), malformed headers, security headers on CORS preflights, the CDS 401 challenge, and a
refused connection told apart from a timeout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import TooManyRetries
from fhirtis.pipeline.server import status_for
from tests.api.test_cds_hooks import ALLOWED, SIGN, call, cds, ivig_order
from tests.api.test_evaluate_api import AUTH, OP, service
from tests.api.test_security import app_client, hook_call, validate_mode
from tests.e2e.test_run import load
from tests.fhir.builders import qty
from tests.fhir.patients import responder

Json = dict[str, Any]
EHR = "https://ehr.example.org"


def parameters(*params: Json) -> Json:
    return {"resourceType": "Parameters", "parameter": list(params)}


def tis_note(body: Json) -> str:
    tis = [
        e["resource"]
        for e in body["entry"][1:]
        if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "tis"
    ]
    return str(tis[-1]["note"][-1]["text"])


def only_issue(r: httpx.Response) -> Json:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", r.text
    issue: Json = body["issue"][0]
    return issue


@pytest.fixture
async def api(fhir_base: str) -> Any:
    load(fhir_base, responder())
    async with service(fhir_base) as client:
        yield client


# -- 1. GET takes the parameters POST takes, with the same checks ----------------------------


async def test_get_uses_a_policy_value_as_post_does(api: httpx.AsyncClient) -> None:
    post = await api.post(
        OP, headers=AUTH, json=parameters({"name": "cycle_gap_days", "valueInteger": 10})
    )
    get = await api.get(OP + "?cycle_gap_days=10", headers=AUTH)
    assert post.status_code == get.status_code == 200, get.text
    assert "cycle_gap_days=10" in tis_note(post.json())
    assert "cycle_gap_days=10" in tis_note(get.json())


@pytest.mark.parametrize(
    ("query", "params", "where", "says"),
    [
        ("bogus=1", [{"name": "bogus", "valueString": "1"}], "bogus", "unknown parameter"),
        (
            "population=adult&population=juvenile",
            [
                {"name": "population", "valueCode": "adult"},
                {"name": "population", "valueCode": "juvenile"},
            ],
            "population",
            "given twice",
        ),
        ("cycle_gap_days=0", [{"name": "cycle_gap_days", "valueInteger": 0}], "cycle_gap_days", ""),
        ("write=perhaps", [{"name": "write", "valueString": "perhaps"}], "write", "true or false"),
        ("population=child", [{"name": "population", "valueCode": "child"}], "population", "adult"),
        ("patient=p2", [{"name": "patient", "valueString": "p2"}], "patient", "differs"),
    ],
)
async def test_get_refuses_what_post_refuses(
    api: httpx.AsyncClient, query: str, params: list[Json], where: str, says: str
) -> None:
    post = await api.post(OP, headers=AUTH, json=parameters(*params))
    get = await api.get(f"{OP}?{query}", headers=AUTH)
    assert post.status_code == get.status_code == 400, get.text
    assert only_issue(get) == only_issue(post)
    assert only_issue(get)["expression"] == [where]
    assert says in only_issue(get)["diagnostics"]


async def test_get_takes_fhirs_general_parameters(api: httpx.AsyncClient) -> None:
    r = await api.get(
        OP + "?_format=json&_pretty=true&_summary=false&_elements=id&population=adult",
        headers=AUTH,
    )
    assert r.status_code == 200, r.text


async def test_get_still_refuses_write(api: httpx.AsyncClient) -> None:
    r = await api.get(OP + "?write=true", headers=AUTH)
    assert r.status_code == 400
    assert only_issue(r)["expression"] == ["write"]
    assert (await api.get(OP + "?write=false", headers=AUTH)).status_code == 200


# -- 2. baseline-date is a FHIR date, YYYY-MM-DD ---------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "20240101",
        "2024-W01-1",
        "2024W011",
        "2024-1-01",
        "2024-02-30",
        "2024",
        "2024-01",
        "2024-01-01T00:00:00Z",
        "٢٠٢٤-01-01",  # Arabic-Indic digits: \d, not [0-9]
        "soon",
    ],
)
async def test_baseline_date_must_be_yyyy_mm_dd(api: httpx.AsyncClient, value: str) -> None:
    post = await api.post(
        OP, headers=AUTH, json=parameters({"name": "baseline-date", "valueDate": value})
    )
    get = await api.get(OP, params={"baseline-date": value}, headers=AUTH)
    for r in (post, get):
        assert r.status_code == 400, (value, r.text)
        issue = only_issue(r)
        assert issue["code"] == "invalid" and issue["expression"] == ["baseline-date"]
        assert "YYYY-MM-DD" in issue["diagnostics"]


async def test_a_real_baseline_date_is_taken(api: httpx.AsyncClient) -> None:
    r = await api.get(OP + "?baseline-date=2024-01-01", headers=AUTH)
    assert r.status_code == 200, r.text


# -- 3. CORS preflights carry the security headers --------------------------------------------


@pytest.mark.parametrize(("origin", "status"), [(EHR, 200), ("https://rogue.example.net", 400)])
async def test_cors_preflights_carry_the_security_headers(origin: str, status: int) -> None:
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with service(ALLOWED, cors_origins=[EHR]) as client:
        for path in (OP, SIGN):
            r = await client.options(path, headers=preflight)
            assert r.status_code == status, r.text
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["cache-control"] == "no-store"
        if status == 200:
            assert r.headers["access-control-allow-origin"] == EHR


# -- 4. a CDS 401 carries a challenge ----------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer not.a.jwt", "Basic dXNlcjpwYXNz"])
async def test_cds_401_carries_www_authenticate(tmp_path: Path, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with app_client(ALLOWED, **validate_mode(tmp_path)) as client:
        r = await client.post(SIGN, json=hook_call(ALLOWED), headers=headers)
        discovery = await client.get("/cds-services")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="fhirtis-cds"'
    assert set(r.json()) == {"error", "message"} and r.json()["error"] == "unauthorized"
    assert discovery.status_code == 200 and "www-authenticate" not in discovery.headers


# -- 5. a refused connection is 502, a timeout 504 ---------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (httpx.ConnectError("connection refused"), 502, "transient"),
        (httpx.ConnectTimeout("no answer to connect"), 504, "timeout"),
        (httpx.ReadTimeout("slow"), 504, "timeout"),
    ],
)
async def test_a_refused_connection_is_502_a_timeout_504(
    httpx_mock: HTTPXMock, failure: Exception, status: int, code: str
) -> None:
    httpx_mock.add_exception(failure, is_reusable=True)
    async with service(ALLOWED) as api:
        r = await api.post(OP, headers=AUTH)
    assert r.status_code == status, r.text
    assert only_issue(r)["code"] == code
    body = call([ivig_order(rate=qty(150, "mL/h"))], None, server=ALLOWED, token="tok-7")
    async with cds() as cds_api:
        r = await cds_api.post(SIGN, body)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "message"}


def _retried(cause: Exception | None, last_status: int | None) -> TooManyRetries:
    """A TooManyRetries as the client raises it: ``from`` the last transport error, if any."""
    error = TooManyRetries("failed", url="u", attempts=2, last_status=last_status)
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("cause", "last_status", "status"),
    [
        (httpx.ConnectError("refused"), None, 502),
        (httpx.ReadError("reset"), None, 502),
        (httpx.RemoteProtocolError("garbled"), None, 502),
        (httpx.ConnectTimeout("slow"), None, 504),
        (httpx.ReadTimeout("slow"), None, 504),
        (httpx.PoolTimeout("busy"), None, 504),
        (None, 503, 502),
        (None, 504, 502),
    ],
)
def test_status_for_retries_tells_a_timeout_from_a_failure(
    cause: Exception | None, last_status: int | None, status: int
) -> None:
    assert status_for(_retried(cause, last_status)) == status


# -- 6. bodies and media types -----------------------------------------------------------------


@pytest.mark.parametrize("url", [OP, "/Patient/$myositis-evaluate"])
async def test_a_json_null_body_is_not_parameters(api: httpx.AsyncClient, url: str) -> None:
    r = await api.post(
        url, headers={**AUTH, "Content-Type": "application/fhir+json"}, content=b"null"
    )
    assert r.status_code == 400, r.text
    assert "Parameters" in only_issue(r)["diagnostics"]


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("application/fhir+xml", b'<Parameters xmlns="http://hl7.org/fhir"/>'),
        ("application/xml", b"<Parameters/>"),
        ("text/plain", b"{}"),
        ("application/x-www-form-urlencoded", b"write=true"),
    ],
)
async def test_a_body_that_is_not_json_is_415(
    api: httpx.AsyncClient, content_type: str, content: bytes
) -> None:
    r = await api.post(OP, headers={**AUTH, "Content-Type": content_type}, content=content)
    assert r.status_code == 415, r.text
    issue = only_issue(r)
    assert issue["code"] == "not-supported" and "JSON" in issue["diagnostics"]


@pytest.mark.parametrize(
    "content_type",
    ["application/fhir+json", "application/json", "application/fhir+json; charset=utf-8"],
)
async def test_json_bodies_are_taken(api: httpx.AsyncClient, content_type: str) -> None:
    r = await api.post(
        OP, headers={**AUTH, "Content-Type": content_type}, content=b'{"resourceType":"Parameters"}'
    )
    assert r.status_code == 200, r.text
    assert (await api.post(OP, headers=AUTH)).status_code == 200  # no body at all


async def test_a_body_that_is_not_json_text_is_400(api: httpx.AsyncClient) -> None:
    r = await api.post(OP, headers={**AUTH, "Content-Type": "application/json"}, content=b"{")
    assert r.status_code == 400
    assert only_issue(r)["code"] == "invalid"


@pytest.mark.parametrize("value", ["abc", "-1", "1e3", ""])
async def test_a_malformed_content_length_is_400(value: str) -> None:
    async with service(ALLOWED) as client:
        r = await client.post(
            OP,
            headers={**AUTH, "Content-Type": "application/json", "Content-Length": value},
            content=b"{}",
        )
        assert r.status_code == 400, r.text
        assert only_issue(r)["code"] == "invalid"
        assert "Content-Length" in only_issue(r)["diagnostics"]
        r = await client.post(SIGN, headers={"Content-Length": value}, content=b"{}")
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid-request"


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ("?_format=xml", None),
        ("?_format=application/fhir%2Bxml", None),
        ("?_format=application/fhir+xml", None),
        ("?_format=text/turtle", None),
        ("?_format=xml", "application/fhir+json"),  # _format overrides Accept
        ("", "application/fhir+xml"),
        ("", "application/xml, text/html"),
        ("", "application/fhir+json;q=0, application/fhir+xml"),
    ],
)
async def test_an_answer_only_in_xml_is_406(query: str, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    async with service(ALLOWED) as client:
        for path in ("/metadata", "/OperationDefinition/myositis-evaluate", OP):
            r = await client.get(path + query, headers={**AUTH, **headers})
            assert r.status_code == 406, (path, r.text)
            issue = only_issue(r)
            assert issue["code"] == "not-supported" and "JSON" in issue["diagnostics"]
        r = await client.post(OP + query, headers={**AUTH, **headers})
        assert r.status_code == 406


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ("", None),
        ("?_format=json", None),
        ("?_format=application/json", None),
        ("?_format=application/fhir%2Bjson", None),
        ("?_format=application/fhir+json", None),
        ("?_format=json", "application/fhir+xml"),  # _format overrides Accept
        ("", "*/*"),
        ("", "application/*"),
        ("", "application/json"),
        ("", "application/fhir+json"),
        ("", "application/fhir+json; fhirVersion=4.0"),
        ("", "application/fhir+xml;q=0.9, application/fhir+json;q=0.5"),
        ("", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ],
)
async def test_json_answers_are_still_served(query: str, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    async with service(ALLOWED) as client:
        r = await client.get("/metadata" + query, headers=headers)
    assert r.status_code == 200, r.text
    # a generic JSON type asked for is the one answered (FHIR R4 http.html), unless _format
    generic = accept == "application/json" and not query
    expected = "application/json" if generic else "application/fhir+json"
    assert r.headers["content-type"] == f"{expected}; charset=utf-8"
