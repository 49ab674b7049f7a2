"""The client id, key id and scopes as a secret store hands them over: with a line end.

A Kubernetes Secret made from a file (`kubectl create secret generic --from-file=client_id=…`)
keeps the file's final newline, and so does the environment variable set from it
(`env[].valueFrom.secretKeyRef`); `docker run --env-file` keeps trailing spaces. fhirtis sent
that whitespace as it came: in the assertion's `iss`/`sub` and HTTP Basic user (the client id),
the JWT header's `kid`, and the form's `scope`. The token endpoint answers `invalid_client` (or
`invalid_scope`), which says nothing of a newline. The bearer token setting is read without
the whitespace around it since s32; these settings now are too. RFC 6749 §3.3: `scope` is
scope-tokens separated by single spaces (a line break between them, as in a TOML multi-line
string, is no separator), so the scope's whitespace runs become single spaces. A control
character *inside* the client id or key id is a usage error naming the setting, never the value.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest
from joserfc import jws
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.settings import SettingsError, load_settings
from tests.io._support import BASE, TOKEN_URL, FakeTime, patient, token_response

SCOPES = "system/Observation.rs system/Observation.cu"


def _form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode(), keep_blank_values=True)


async def _token_request(
    httpx_mock: HTTPXMock, config: FhirClientConfig, fake_time: FakeTime
) -> httpx.Request:
    """The token request a client made with ``config`` sends to read ``Patient/p1``."""
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", json=patient(1))
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        await fhir.read("Patient", "p1")
    token_request = httpx_mock.get_requests(method="POST")[0]
    return token_request


async def test_smart_backend_sends_the_client_id_kid_and_scope_without_surrounding_whitespace(
    httpx_mock: HTTPXMock, smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    config = smart_config(
        client_id="fhirtis-test\n",
        kid=" kid-RS384\r\n",
        scope="system/Observation.rs\n  system/Observation.cu\n",
        token_url=TOKEN_URL,
    )
    token_request = await _token_request(httpx_mock, config, fake_time)
    form = _form(token_request)
    assert form["scope"] == [SCOPES]
    assertion = form["client_assertion"][0]
    header = jws.extract_compact(assertion.encode()).protected
    claims = jws.extract_compact(assertion.encode()).payload
    assert header["kid"] == "kid-RS384"
    assert b'"iss":"fhirtis-test"' in claims.replace(b" ", b"")
    assert b'"sub":"fhirtis-test"' in claims.replace(b" ", b"")


async def test_client_secret_sends_the_client_id_without_its_line_end(
    httpx_mock: HTTPXMock, make_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    config = make_config(
        auth_mode="client-secret",
        client_id="c0ffee00-1111-2222-3333-444455556666\n",
        client_secret="s3cr3t",
        scope="https://myfhir.example.org/.default\n",
        token_url=TOKEN_URL,
    )
    token_request = await _token_request(httpx_mock, config, fake_time)
    basic = token_request.headers["Authorization"].partition(" ")[2]
    user = base64.b64decode(basic).decode().partition(":")[0]
    assert user == "c0ffee00-1111-2222-3333-444455556666"
    assert _form(token_request)["scope"] == ["https://myfhir.example.org/.default"]


def test_settings_from_environment_variables_with_a_final_newline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", BASE)
    monkeypatch.setenv("FHIRTIS_FHIR__AUTH_MODE", "client-secret")
    monkeypatch.setenv("FHIRTIS_FHIR__CLIENT_ID", "fhirtis\n")
    monkeypatch.setenv("FHIRTIS_FHIR__CLIENT_SECRET", "s3cr3t")
    monkeypatch.setenv("FHIRTIS_FHIR__SCOPE", "system/Patient.rs\n")
    monkeypatch.setenv("FHIRTIS_FHIR__KID", "k1 ")
    fhir = load_settings().fhir
    assert fhir is not None
    assert (fhir.client_id, fhir.scope, fhir.kid) == ("fhirtis", "system/Patient.rs", "k1")


@pytest.mark.parametrize("name", ["client_id", "kid", "scope"])
def test_a_setting_of_whitespace_only_is_missing(
    smart_config: Callable[..., FhirClientConfig], name: str
) -> None:
    with pytest.raises(ValueError, match=f"needs {name}"):
        smart_config(**{name: " \n"})


@pytest.mark.parametrize("name", ["client_id", "kid"])
def test_a_control_character_inside_is_refused_naming_the_setting_not_the_value(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", BASE)
    monkeypatch.setenv(f"FHIRTIS_FHIR__{name.upper()}", "secret-part\nother-part")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value)
    assert f"fhir.{name}" in text
    assert "control character" in text
    assert "secret-part" not in text and "other-part" not in text
