"""HTTP and FHIR semantics a real client hits: HEAD on every GET resource (RFC 9110 §9.3.2),
and the FHIR version a client asks for with the ``fhirVersion`` MIME-type parameter (FHIR R4
versioning.html "Mime Type Parameter", http.html "FHIR Version Parameter")."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_cds_hooks import ALLOWED
from tests.api.test_evaluate_api import AUTH, OP, service

Json = dict[str, Any]
EHR = "https://ehr.example.org"

# every GET resource of the service that answers without a FHIR server or a token
PUBLIC_GETS = (
    "/metadata",
    "/OperationDefinition/myositis-evaluate",
    "/cds-services",
    "/livez",
    "/metrics",
    "/app/config.json",
    "/app/",
)


def only_issue(r: httpx.Response) -> Json:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", r.text
    issue: Json = body["issue"][0]
    return issue


# -- 1. HEAD: what GET answers, without the body (RFC 9110 §9.3.2) ----------------------------


@pytest.mark.parametrize("path", PUBLIC_GETS)
async def test_head_answers_as_get_without_a_body(path: str) -> None:
    async with service(ALLOWED) as client:
        get = await client.get(path)
        head = await client.head(path)
    assert get.status_code == 200, get.text
    assert head.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["cache-control"] == get.headers["cache-control"]
    # once: the page's files carry their own, and every answer gets the service's
    assert get.headers["x-content-type-options"] == "nosniff"
    assert head.headers["x-content-type-options"] == "nosniff"


async def test_head_on_a_refused_get_is_refused_alike() -> None:
    """HEAD runs GET's checks: the operation's GET without a token (or with a bad parameter)
    is refused with the same status, no body."""
    async with service(ALLOWED) as client:
        for path in (OP + "?population=martian", "/Patient/p1/$myositis-evaluate?write=true"):
            get = await client.get(path, headers=AUTH)
            head = await client.head(path, headers=AUTH)
            assert get.status_code == 400, get.text
            assert head.status_code == get.status_code
            assert head.content == b""
        get = await client.get("/nothing-here")
        head = await client.head("/nothing-here")
        assert get.status_code == head.status_code == 404


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/metadata", {"GET", "HEAD"}),
        ("/cds-services", {"GET", "HEAD"}),
        (OP, {"GET", "HEAD", "POST"}),
        ("/Patient/$myositis-evaluate", {"POST"}),
    ],
)
async def test_405_allow_lists_head_with_get(path: str, allow: set[str]) -> None:
    async with service(ALLOWED) as client:
        r = await client.put(path, headers=AUTH, json={})
    assert r.status_code == 405, r.text
    assert {m.strip() for m in r.headers["allow"].split(",")} == allow
    assert only_issue(r)["code"] == "not-supported"


async def test_head_on_a_post_only_resource_is_405() -> None:
    async with service(ALLOWED) as client:
        r = await client.head("/Patient/$myositis-evaluate")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.content == b""


async def test_a_cors_preflight_for_head_is_answered() -> None:
    """HEAD sent from a browser with an Authorization header is preflighted (Fetch standard,
    CORS-safelisted request headers); the preflight names HEAD, allowed like GET."""
    preflight = {
        "Origin": EHR,
        "Access-Control-Request-Method": "HEAD",
        "Access-Control-Request-Headers": "authorization",
    }
    async with service(ALLOWED, cors_origins=[EHR]) as client:
        r = await client.options(OP, headers=preflight)
    assert r.status_code == 200, r.text
    assert "HEAD" in r.headers["access-control-allow-methods"]


# -- 2. fhirVersion: R4 only; another version asked for is 406 (answer) or 415 (body) ----------


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ("", "application/fhir+json; fhirVersion=3.0"),
        ("", "application/fhir+json;fhirVersion=5.0"),
        ("", "application/fhir+json; fhirVersion=4.3"),
        ("", 'application/json; fhirVersion="1.0"'),
        ("?_format=application/fhir%2Bjson;%20fhirVersion=3.0", None),
        ("?_format=application/fhir+json;fhirVersion=3.0", "application/fhir+json"),
    ],
)
async def test_another_fhir_version_asked_for_is_406(query: str, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    async with service(ALLOWED) as client:
        for path in ("/metadata", "/OperationDefinition/myositis-evaluate", OP):
            r = await client.get(path + query, headers={**AUTH, **headers})
            assert r.status_code == 406, (path, r.text)
            issue = only_issue(r)
            assert issue["code"] == "not-supported"
            assert "4.0" in issue["diagnostics"] and "fhirVersion" in issue["diagnostics"]


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+json; fhirVersion=4.0",
        "application/fhir+json; fhirVersion=4.0.1",
        "application/fhir+json;fhirversion=4.0;charset=utf-8",
        'application/fhir+json; fhirVersion="4.0"',
        # R3 preferred, R4 acceptable: the server answers in the one it has
        "application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0;q=0.5",
        "application/fhir+json; fhirVersion=3.0, */*;q=0.1",
    ],
)
async def test_r4_asked_for_is_served(accept: str) -> None:
    async with service(ALLOWED) as client:
        r = await client.get("/metadata", headers={"Accept": accept})
        f = await client.get("/metadata?_format=application/fhir%2Bjson;fhirVersion=4.0")
    assert r.status_code == f.status_code == 200, r.text
    assert r.json()["fhirVersion"] == "4.0.1"


@pytest.mark.parametrize(
    "content_type", ["application/fhir+json; fhirVersion=3.0", "application/json;fhirVersion=5.0"]
)
async def test_a_body_of_another_fhir_version_is_415(content_type: str) -> None:
    async with service(ALLOWED) as client:
        r = await client.post(
            OP,
            headers={**AUTH, "Content-Type": content_type},
            content=b'{"resourceType": "Parameters"}',
        )
    assert r.status_code == 415, r.text
    issue = only_issue(r)
    assert issue["code"] == "not-supported" and "fhirVersion" in issue["diagnostics"]


async def test_a_head_is_counted_under_its_route_and_method() -> None:
    async with service(ALLOWED) as client:
        await client.head("/metadata")
        metrics = (await client.get("/metrics")).text
    assert 'fhirtis_http_requests_total{method="HEAD",route="/metadata",status="200"}' in metrics


# -- 3. a generic JSON type asked for is the one answered (FHIR R4 http.html, "Content Types
# and encodings": the server SHOULD respond with the requested generic mime type) -------------


@pytest.mark.parametrize(
    ("accept", "answered"),
    [
        ("application/json", "application/json"),
        ("text/json", "text/json"),
        ("application/json, text/plain;q=0.5", "application/json"),
        ("application/fhir+json;q=0.4, application/json", "application/json"),
        ("application/json, application/fhir+json", "application/fhir+json"),
        ("application/fhir+json", "application/fhir+json"),
        ("*/*", "application/fhir+json"),
        (None, "application/fhir+json"),
    ],
)
async def test_the_json_type_asked_for_is_answered(accept: str | None, answered: str) -> None:
    headers = {"Accept": accept} if accept else {}
    async with service(ALLOWED) as client:
        for path in ("/metadata", "/OperationDefinition/myositis-evaluate"):
            r = await client.get(path, headers=headers)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == f"{answered}; charset=utf-8", path
            assert "accept" in r.headers["vary"].lower()
        # refusals too: no token
        r = await client.get(OP, headers=headers)
        assert r.status_code == 401
        assert r.headers["content-type"] == f"{answered}; charset=utf-8"
        assert only_issue(r)["code"] == "login"


async def test_format_decides_over_a_generic_accept() -> None:
    async with service(ALLOWED) as client:
        r = await client.get("/metadata?_format=json", headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/fhir+json; charset=utf-8"
