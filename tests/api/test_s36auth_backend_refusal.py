"""Validate mode: fhirtis reads with its own backend credentials, so their refusal by the EHR
(the token endpoint's ``invalid_client``, the FHIR server's 401 to fhirtis's token) is a
failure upstream (502), never a 401 ``invalid_token`` that tells a caller whose token fhirtis
accepted to fetch another one (RFC 6750 §3.1)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClientConfig
from fhirtis.settings import ServiceSettings, Settings
from tests.api.app_setup import served
from tests.api.test_security import READ_TYPES

BASE = "http://fhir.test/fhir"
TOKEN_URL = "http://auth.test/token"
OP = "/Patient/p1/$myositis-evaluate"
SECRET = "backend-s3cret"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


def _caller_token() -> str:
    now = int(time.time())
    claims = {
        "iss": "https://auth.test",
        "aud": "https://fhirtis.test",
        "exp": now + 300,
        "iat": now,
        "scope": " ".join(f"patient/{t}.read" for t in READ_TYPES),
        "patient": "p1",
        "sub": "app",
    }
    return jwt.encode({"alg": "RS384", "kid": "k1"}, claims, KEY, algorithms=["RS384"])


@asynccontextmanager
async def _validating() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        fhir=FhirClientConfig(
            base_url=BASE,
            auth_mode="client-secret",
            client_id="fhirtis-backend",
            client_secret=SecretStr(SECRET),
            scope="system/*.read",
            token_url=TOKEN_URL,
            retry_max_attempts=2,
            retry_budget_seconds=2,
            read_timeout_seconds=2,
        ),
        service=ServiceSettings(
            auth_mode="validate",
            issuer="https://auth.test",
            audience="https://fhirtis.test",
            jwks=json.dumps({"keys": [KEY.as_dict(private=False)]}),
        ),
    )
    async with served(settings) as client:
        yield client


def _assert_upstream_failure(r: httpx.Response, caller: str) -> None:
    assert r.status_code == 502, r.text
    assert "invalid_token" not in r.headers.get("www-authenticate", "")
    outcome: dict[str, Any] = r.json()
    assert outcome["issue"][0]["code"] == "security"
    assert "own credentials" in outcome["issue"][0]["diagnostics"]
    assert SECRET not in r.text and caller not in r.text


@pytest.mark.httpx_mock(assert_all_responses_were_requested=False)
async def test_the_ehr_refusing_fhirtis_credentials_is_no_invalid_caller_token(
    httpx_mock: HTTPXMock,
) -> None:
    # Epic answers 400 invalid_client until the client is mapped to a user, or once its key
    # is unregistered; Oracle Health once a system account's secret is replaced
    httpx_mock.add_response(
        url=TOKEN_URL,
        method="POST",
        status_code=400,
        json={"error": "invalid_client"},
        is_reusable=True,
    )
    caller = _caller_token()
    async with _validating() as api:
        r = await api.post(OP, headers={"Authorization": f"Bearer {caller}"})
    _assert_upstream_failure(r, caller)
    assert "invalid_client" in r.text  # what the operator has to fix


@pytest.mark.httpx_mock(assert_all_responses_were_requested=False)
async def test_the_fhir_server_refusing_fhirtis_token_is_no_invalid_caller_token(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_response(
        url=TOKEN_URL,
        method="POST",
        json={"access_token": "backend-token", "token_type": "Bearer", "expires_in": 3600},
        is_reusable=True,
    )
    httpx_mock.add_response(url=f"{BASE}/metadata", status_code=404, json={}, is_reusable=True)
    fhir_url = re.compile(re.escape(BASE) + r"(?!/metadata).*")
    httpx_mock.add_response(url=fhir_url, status_code=401, json={}, is_reusable=True)
    caller = _caller_token()
    async with _validating() as api:
        r = await api.post(OP, headers={"Authorization": f"Bearer {caller}"})
    _assert_upstream_failure(r, caller)
    assert "backend-token" not in r.text
    fhir = [q for q in httpx_mock.get_requests() if q.url.host == "fhir.test"]
    assert fhir and all(q.headers["authorization"] == "Bearer backend-token" for q in fhir)
