"""The FHIR face of the service: $myositis-evaluate, /metadata, statuses and OperationOutcomes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClientConfig
from fhirtis.settings import ServiceSettings, Settings
from tests.api.app_setup import served
from tests.api.test_security import READ_TYPES
from tests.e2e.test_run import load
from tests.fhir.builders import bundle, patient
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

OP = "/Patient/p1/$myositis-evaluate"
AUTH = {"Authorization": "Bearer caller-token"}


@asynccontextmanager
async def service(base: str, **service: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process (httpx's ASGI transport, so pytest-httpx still sees the app's own
    calls to the FHIR server), with its lifespan run."""
    settings = Settings(
        fhir=FhirClientConfig(
            base_url=base, retry_max_attempts=2, retry_budget_seconds=2, read_timeout_seconds=2
        ),
        service=ServiceSettings(**service),
    )
    async with served(settings) as client:
        yield client


@pytest.fixture
async def api(fhir_base: str) -> AsyncIterator[httpx.AsyncClient]:
    load(fhir_base, responder())
    async with service(fhir_base) as client:
        yield client


def _resources(body: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in body["entry"] if e["resource"]["resourceType"] == rtype]


async def test_metadata_tells_the_truth(api: httpx.AsyncClient) -> None:
    r = await api.get("/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    ops = cs["rest"][0]["resource"][0]["operation"]
    assert [o["name"] for o in ops] == ["myositis-evaluate"]
    opdef = (await api.get("/OperationDefinition/myositis-evaluate")).json()
    assert opdef["url"] == ops[0]["definition"]
    assert (await api.get("/docs")).status_code == 200


async def test_dry_run_changes_nothing(api: httpx.AsyncClient, fhir_server: FhirTestServer) -> None:
    fhir_server.reset_stats()
    r = await api.post(OP, headers=AUTH, json={"resourceType": "Parameters", "parameter": []})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "Bundle"
    first = body["entry"][0]["resource"]
    assert first["resourceType"] == "OperationOutcome"
    assert "dry run" in first["issue"][0]["diagnostics"]
    tis = [o for o in _resources(body, "Observation") if o["code"]["coding"][0]["code"] == "tis"]
    assert tis[-1]["valueQuantity"]["value"] == 62.5
    assert fhir_server.stats()["committed_writes"] == 0
    get = await api.get(OP, headers=AUTH)
    assert get.status_code == 200
    assert get.json()["entry"][1:] == body["entry"][1:]


async def test_write_then_nothing_left_to_write(
    api: httpx.AsyncClient, fhir_server: FhirTestServer
) -> None:
    params = {"resourceType": "Parameters", "parameter": [{"name": "write", "valueBoolean": True}]}
    r = await api.post(OP, headers=AUTH, json=params)
    assert r.status_code == 200, r.text
    issues = r.json()["entry"][0]["resource"]["issue"]
    assert issues[0]["diagnostics"] == "written"
    assert any(": created" in i["diagnostics"] for i in issues)
    fhir_server.reset_stats()
    again = await api.post(
        "/Patient/$myositis-evaluate",
        headers=AUTH,
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patient", "valueReference": {"reference": "Patient/p1"}},
                {"name": "write", "valueBoolean": True},
            ],
        },
    )
    assert again.status_code == 200
    assert again.json()["entry"][0]["resource"]["issue"][0]["diagnostics"].startswith("nothing")
    assert fhir_server.stats()["committed_writes"] == 0


async def test_policy_and_population_parameters(api: httpx.AsyncClient) -> None:
    r = await api.post(
        OP,
        headers=AUTH,
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "population", "valueCode": "juvenile"},
                {"name": "cycle_gap_days", "valueInteger": 10},
            ],
        },
    )
    assert r.status_code == 200
    tis = [
        o for o in _resources(r.json(), "Observation") if o["code"]["coding"][0]["code"] == "tis"
    ]
    assert tis[-1]["method"]["coding"][0]["code"] == "juvenile-criteria"
    assert tis[-1]["interpretation"][0]["coding"][0]["code"] == "moderate"  # 62.5 juvenile
    assert "cycle_gap_days=10" in tis[-1]["note"][-1]["text"]


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ([{"name": "population", "valueCode": "child"}], "population"),
        ([{"name": "bogus", "valueString": "x"}], "bogus"),
        ([{"name": "baseline-date", "valueString": "soon"}], "baseline-date"),
        ([{"name": "write", "valueString": "perhaps"}], "write"),
        ([{"name": "cycle_gap_days", "valueInteger": 0}], "cycle_gap_days"),
        ([{"name": "write"}], "write"),
    ],
)
async def test_bad_parameters_are_400(
    api: httpx.AsyncClient, params: list[Any], where: str
) -> None:
    r = await api.post(OP, headers=AUTH, json={"resourceType": "Parameters", "parameter": params})
    assert r.status_code == 400
    issue = r.json()["issue"][0]
    assert issue["severity"] == "error" and where in issue["expression"][0]


async def test_other_client_errors(api: httpx.AsyncClient) -> None:
    assert (await api.post(OP, headers=AUTH, json={"resourceType": "Patient"})).status_code == 400
    assert (await api.get(OP + "?write=true", headers=AUTH)).status_code == 400
    r = await api.post(OP, json={"resourceType": "Parameters"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["issue"][0]["code"] == "login"
    nobody = await api.post("/Patient/nobody/$myositis-evaluate", headers=AUTH)
    assert nobody.status_code == 404 and nobody.json()["resourceType"] == "OperationOutcome"
    assert (await api.get("/nowhere")).json()["resourceType"] == "OperationOutcome"


async def test_allow_list(api: httpx.AsyncClient) -> None:
    r = await api.post(OP, headers={**AUTH, "X-FHIR-Server": "https://evil.example.org/fhir"})
    assert r.status_code == 403


async def test_422_when_nothing_can_be_evaluated(fhir_base: str) -> None:
    load(fhir_base, bundle(patient()))
    async with service(fhir_base) as api:
        r = await api.post(OP, headers=AUTH)
    assert r.status_code == 422
    assert any(i["code"] == "required" for i in r.json()["issue"])


async def test_upstream_failure_and_timeout(httpx_mock: HTTPXMock) -> None:
    base = "http://fhir.test/fhir"
    httpx_mock.add_response(url=f"{base}/metadata", status_code=404, json={})
    httpx_mock.add_response(url=base, method="POST", status_code=500, json={})
    async with service(base) as api:
        assert (await api.post(OP, headers=AUTH)).status_code == 502
    httpx_mock.reset()
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), is_reusable=True)
    async with service(base) as api:
        r = await api.post(OP, headers=AUTH)
    assert r.status_code == 504
    assert "caller-token" not in r.text


async def test_pass_through_forwards_the_callers_token(httpx_mock: HTTPXMock) -> None:
    base = "http://fhir.test/fhir"
    httpx_mock.add_response(url=f"{base}/metadata", status_code=404, json={})
    httpx_mock.add_response(url=base, method="POST", status_code=401, json={})
    async with service(base) as api:
        r = await api.post(OP, headers=AUTH)
    assert r.status_code == 401
    sent = httpx_mock.get_requests()
    assert sent and all(req.headers["authorization"] == "Bearer caller-token" for req in sent)


# -- validate mode -------------------------------------------------------------------------

KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "k1"})
SCOPES = " ".join(f"patient/{t}.read" for t in READ_TYPES)


def token(key: RSAKey = KEY, **claims: Any) -> str:
    now = int(time.time())
    base = {
        "iss": "https://auth.test",
        "aud": "https://fhirtis.test",
        "exp": now + 300,
        "iat": now,
        "scope": SCOPES,
        "patient": "p1",
        "sub": "app",
    }
    base.update(claims)
    return jwt.encode(
        {"alg": "RS384", "kid": "k1"},
        {k: v for k, v in base.items() if v is not None},
        key,
        algorithms=["RS384"],
    )


@pytest.fixture
async def validating(fhir_base: str) -> AsyncIterator[httpx.AsyncClient]:
    load(fhir_base, responder())
    jwks = json.dumps({"keys": [KEY.as_dict(private=False)]})
    async with service(
        fhir_base,
        auth_mode="validate",
        issuer="https://auth.test",
        audience="https://fhirtis.test",
        jwks=jwks,
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("tok", "status"),
    [
        (token, 200),
        (lambda: token(exp=int(time.time()) - 10), 401),
        (lambda: token(aud="https://other.test"), 401),
        (lambda: token(iss="https://rogue.test"), 401),
        (lambda: token(key=OTHER), 401),
        (lambda: "not-a-jwt", 401),
        (lambda: token(patient="p2"), 403),
        (lambda: token(scope="patient/Patient.read patient/Observation.read"), 403),
        (lambda: token(scope="user/*.read", patient=None), 200),
        (lambda: token(scope="patient/*.rs"), 200),
    ],
)
async def test_validate_mode(validating: httpx.AsyncClient, tok: Any, status: int) -> None:
    r = await validating.post(OP, headers={"Authorization": f"Bearer {tok()}"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")


async def test_validate_mode_write_needs_write_scopes(validating: httpx.AsyncClient) -> None:
    params = {"resourceType": "Parameters", "parameter": [{"name": "write", "valueBoolean": True}]}
    r = await validating.post(OP, headers={"Authorization": f"Bearer {token()}"}, json=params)
    assert r.status_code == 403 and "Observation.write" in r.text
    writer = token(scope=SCOPES + " patient/*.write")
    ok = await validating.post(OP, headers={"Authorization": f"Bearer {writer}"}, json=params)
    assert ok.status_code == 200
