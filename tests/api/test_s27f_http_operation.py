"""$myositis-evaluate as HTTP clients call it: operation parameters in a POST's query string,
and the Allow header of a 405.

- FHIR R4 operations.html ("Executing an Operation"): a POST carries the operation's parameters
  in its body, a Parameters resource; only an operation invoked by GET takes them from the query.
  The service documents the same (README: "a FHIR ``Parameters`` body in JSON; for ``GET`` the
  same names in the query ... an unknown or repeated one is 400"). A parameter in a POST's query
  string was silently ignored: ``POST ...?population=juvenile`` was evaluated with adult criteria,
  ``?write=true`` ran dry, ``?foo=1`` was not refused; now each is 400, naming the parameter.
  FHIR's general parameters (``_format``, ``_pretty``, ...) stay allowed in the query.
- RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field in a 405 response
  containing a list of the target resource's currently supported methods"; FHIR R4 http.html
  ("Support for HEAD") sends a server that does not support HEAD to that answer. The operation's
  URL serves GET and POST, but a PUT, DELETE, HEAD or OPTIONS was answered ``Allow: GET``, so a
  client reading the header would never POST; the type-level URL serves POST only.
- FHIR R4 http.html: "Servers SHALL provide a Capability Statement that specifies which
  interactions and resources are supported". The service serves the operation's
  OperationDefinition by a read (``GET /OperationDefinition/myositis-evaluate``), which its
  CapabilityStatement did not declare; now it lists OperationDefinition with the read
  interaction (and no other).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_cds_hooks import ALLOWED
from tests.api.test_evaluate_api import AUTH, OP, service
from tests.e2e.test_run import load
from tests.fhir.patients import responder

Json = dict[str, Any]
TYPE_OP = "/Patient/$myositis-evaluate"


@pytest.fixture
async def api(fhir_base: str) -> Any:
    load(fhir_base, responder())
    async with service(fhir_base) as client:
        yield client


def only_issue(r: httpx.Response) -> Json:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", r.text
    issue: Json = body["issue"][0]
    return issue


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("?population=juvenile", "population"),
        ("?write=true", "write"),
        ("?cycle_gap_days=10", "cycle_gap_days"),
        ("?foo=1", "foo"),
        ("?_format=json&baseline-date=2024-01-01", "baseline-date"),
    ],
)
async def test_an_operation_parameter_in_a_posts_query_is_400(
    api: httpx.AsyncClient, query: str, name: str
) -> None:
    body = {"resourceType": "Parameters"}
    r = await api.post(OP + query, headers=AUTH, json=body)
    assert r.status_code == 400, r.text
    issue = only_issue(r)
    assert issue["code"] == "invalid" and issue["expression"] == [name]
    assert "Parameters" in issue["diagnostics"]
    typed = {"resourceType": "Parameters", "parameter": [{"name": "patient", "valueString": "p1"}]}
    r = await api.post(TYPE_OP + query, headers=AUTH, json=typed)
    assert r.status_code == 400, r.text
    assert only_issue(r)["expression"] == [name]


async def test_a_posts_parameters_in_its_body_and_general_ones_in_the_query_are_taken(
    api: httpx.AsyncClient,
) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "population", "valueCode": "adult"}],
    }
    r = await api.post(OP + "?_format=json&_pretty=true", headers=AUTH, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["resourceType"] == "Bundle"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        # HEAD is served wherever GET is (RFC 9110 §9.3.2), so Allow names it with GET
        ("PUT", OP, {"GET", "HEAD", "POST"}),
        ("DELETE", OP, {"GET", "HEAD", "POST"}),
        ("OPTIONS", OP, {"GET", "HEAD", "POST"}),
        ("PATCH", OP, {"GET", "HEAD", "POST"}),
        ("GET", TYPE_OP, {"POST"}),
        ("HEAD", TYPE_OP, {"POST"}),
        ("PUT", "/metadata", {"GET", "HEAD"}),
    ],
)
async def test_a_405_allows_every_method_the_url_serves(
    method: str, path: str, allowed: set[str]
) -> None:
    async with service(ALLOWED) as client:
        r = await client.request(method, path, headers=AUTH)
    assert r.status_code == 405, r.text
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed
    if method != "HEAD":
        assert only_issue(r)["code"] == "not-supported"


async def test_the_capability_statement_declares_the_operation_definition_read() -> None:
    async with service(ALLOWED) as client:
        cs = (await client.get("/metadata")).json()
        (rest,) = cs["rest"]
        declared = [r for r in rest["resource"] if r["type"] == "OperationDefinition"]
        assert [[i["code"] for i in r.get("interaction", [])] for r in declared] == [["read"]]
        (patient,) = [r for r in rest["resource"] if r["type"] == "Patient"]
        opdef = await client.get("/OperationDefinition/myositis-evaluate")
        assert opdef.status_code == 200
        assert opdef.json()["url"] == patient["operation"][0]["definition"]
        # and nothing else of the type is served: no search, no other id
        assert (await client.get("/OperationDefinition")).status_code in {404, 405}
        assert (await client.get("/OperationDefinition/other")).status_code == 404
