"""OAuth 2.0 client credentials with a client secret (`auth_mode = "client-secret"`).

The FHIR servers that give a backend client a secret, not a key, could not be used without a
static token that expires within the hour:
- Microsoft Azure Health Data Services: a token from Microsoft Entra ID
  (`https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`, `grant_type=client_credentials`,
  `scope={fhir-url}/.default`; learn.microsoft.com/entra/identity-platform/
  v2-oauth2-client-creds-grant-flow: "the Basic auth pattern of instead providing credentials in
  the Authorization header, per RFC 6749 is also supported"); its answer carries `token_type`
  "Bearer", `expires_in` 3599 and `ext_expires_in`;
- Medplum (medplum.com/docs/api/oauth/token: "If the client was issued a secret, the client must
  pass its client_id and client_secret in the authorization header through Basic HTTP
  authorization"; `.well-known/smart-configuration` lists `client_secret_basic`);
- Oracle Health system accounts (its SMART configuration lists `client_secret_basic`).
RFC 6749 §2.3.1: the client id and secret are form-urlencoded, then sent as HTTP Basic; §4.4.2
the request is `grant_type=client_credentials` with `scope`. The secret is never logged.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig, Unauthorized
from fhirtis.settings import SettingsError, load_settings
from tests.io._support import FakeTime

AZURE_FHIR = "https://myws-myfhir.fhir.azurehealthcareapis.com"
AZURE_TOKEN = (
    "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
)
MEDPLUM_FHIR = "https://api.medplum.com/fhir/R4"
MEDPLUM_TOKEN = "https://api.medplum.com/oauth2/token"
SECRET = "Qx8Q~s3cr3t.v4lue_with-unreserved~chars"


def _form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode())


def _basic(request: httpx.Request) -> tuple[str, str]:
    scheme, _, value = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(value).decode().partition(":")
    return user, password


def _azure_config(**overrides: object) -> FhirClientConfig:
    values: dict[str, object] = {
        "base_url": AZURE_FHIR,
        "auth_mode": "client-secret",
        "client_id": "c0ffee00-1111-2222-3333-444455556666",
        "client_secret": SECRET,
        "scope": f"{AZURE_FHIR}/.default",
        "token_url": AZURE_TOKEN,
    }
    values.update(overrides)
    return FhirClientConfig.model_validate(values)


async def test_azure_entra_token_with_a_client_secret(
    httpx_mock: HTTPXMock, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=AZURE_TOKEN,
        json={
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": "eyJ0eXAiOiJKV1Qi.azure.token",
        },
    )
    httpx_mock.add_response(
        url=f"{AZURE_FHIR}/Patient/p1", json={"resourceType": "Patient", "id": "p1"}
    )
    httpx_mock.add_response(
        url=f"{AZURE_FHIR}/Patient/p2", json={"resourceType": "Patient", "id": "p2"}
    )
    async with FhirClient(_azure_config(), timing=fake_time.timing()) as fhir:
        await fhir.read("Patient", "p1")
        fake_time.advance(3000)  # the token still serves (3599 s, refreshed 60 s before)
        await fhir.read("Patient", "p2")
    [token_request] = httpx_mock.get_requests(url=AZURE_TOKEN)
    assert _form(token_request) == {
        "grant_type": ["client_credentials"],
        "scope": [f"{AZURE_FHIR}/.default"],
    }
    assert _basic(token_request) == ("c0ffee00-1111-2222-3333-444455556666", SECRET)
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    reads = [r for r in httpx_mock.get_requests() if r.url.path.startswith("/Patient/")]
    assert len(reads) == 2
    for request in reads:
        assert request.headers["Authorization"] == "Bearer eyJ0eXAiOiJKV1Qi.azure.token"


async def test_medplum_token_endpoint_is_discovered(
    httpx_mock: HTTPXMock, fake_time: FakeTime, tmp_path: Path
) -> None:
    secret_file = tmp_path / "medplum-secret"
    secret_file.write_text("0d9f2c7e1b4a" * 5 + "\n")  # a file from a secret store
    httpx_mock.add_response(
        url=f"{MEDPLUM_FHIR}/.well-known/smart-configuration",
        json={
            "issuer": "https://api.medplum.com/",
            "token_endpoint": MEDPLUM_TOKEN,
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
        },
    )
    httpx_mock.add_response(
        method="POST",
        url=MEDPLUM_TOKEN,
        json={"token_type": "Bearer", "access_token": "mp-token", "expires_in": 3600},
    )
    httpx_mock.add_response(
        url=f"{MEDPLUM_FHIR}/Patient/p1", json={"resourceType": "Patient", "id": "p1"}
    )
    config = FhirClientConfig(
        base_url=MEDPLUM_FHIR,
        auth_mode="client-secret",
        client_id="01234567-89ab-cdef-0123-456789abcdef",
        client_secret_path=secret_file,
        scope="system/*.rs",
    )
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        await fhir.read("Patient", "p1")
    [token_request] = httpx_mock.get_requests(url=MEDPLUM_TOKEN)
    assert _basic(token_request) == ("01234567-89ab-cdef-0123-456789abcdef", "0d9f2c7e1b4a" * 5)
    assert "client_assertion" not in _form(token_request)
    [read] = httpx_mock.get_requests(url=f"{MEDPLUM_FHIR}/Patient/p1")
    assert read.headers["Authorization"] == "Bearer mp-token"


async def test_id_and_secret_are_form_urlencoded_before_basic(
    httpx_mock: HTTPXMock, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST", url=AZURE_TOKEN, json={"access_token": "t", "token_type": "Bearer"}
    )
    httpx_mock.add_response(
        url=f"{AZURE_FHIR}/Patient/p1", json={"resourceType": "Patient", "id": "p1"}
    )
    config = _azure_config(client_id="svc:fhirtis", client_secret="a+b/c=d:e f")
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        await fhir.read("Patient", "p1")
    [token_request] = httpx_mock.get_requests(url=AZURE_TOKEN)
    assert _basic(token_request) == ("svc%3Afhirtis", "a%2Bb%2Fc%3Dd%3Ae+f")


async def test_a_refused_secret_is_never_written(
    httpx_mock: HTTPXMock, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=AZURE_TOKEN,
        status_code=401,
        json={
            "error": "invalid_client",
            "error_description": f"AADSTS7000215: Invalid client secret provided: {SECRET[:4]}",
            "error_codes": [7000215],
        },
    )
    caplog.set_level(logging.DEBUG)
    async with FhirClient(_azure_config(), timing=fake_time.timing()) as fhir:
        with pytest.raises(Unauthorized) as caught:
            await fhir.read("Patient", "p1")
    assert "(invalid_client)" in str(caught.value)
    assert "AADSTS" not in str(caught.value)
    assert SECRET not in caplog.text and SECRET not in str(caught.value)
    basic = httpx_mock.get_requests(url=AZURE_TOKEN)[0].headers["Authorization"]
    assert basic.split()[1] not in caplog.text
    assert SECRET not in repr(_azure_config())
    assert httpx_mock.get_requests(url=f"{AZURE_FHIR}/Patient/p1") == []


def test_the_mode_needs_its_settings_and_never_echoes_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", AZURE_FHIR)
    monkeypatch.setenv("FHIRTIS_FHIR__AUTH_MODE", "client-secret")
    monkeypatch.setenv("FHIRTIS_FHIR__CLIENT_SECRET", SECRET)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "client_id" in str(caught.value) and "scope" in str(caught.value)
    assert SECRET not in str(caught.value)
    monkeypatch.setenv("FHIRTIS_FHIR__CLIENT_ID", "c1")
    monkeypatch.setenv("FHIRTIS_FHIR__SCOPE", f"{AZURE_FHIR}/.default")
    fhir = load_settings().fhir
    assert fhir is not None and fhir.auth_mode == "client-secret"
    monkeypatch.delenv("FHIRTIS_FHIR__CLIENT_SECRET")
    with pytest.raises(SettingsError, match="client_secret"):
        load_settings()
