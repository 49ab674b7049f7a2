"""The scopes fhirtis asks for, what the server advertises, and what it grants.

SMART App Launch 2.x, Conformance: `.well-known/smart-configuration` lists `capabilities`
(REQUIRED), among them `permission-v1` ("support for SMARTv1 scope syntax (e.g.,
`patient/Observation.read`)") and `permission-v2` ("SMARTv2 granular scope syntax"), and
`scopes_supported` (RECOMMENDED). Scopes and Launch Context: "servers SHOULD advertise the
`permission-v1` capability", v1 `.read` ⇒ v2 `.rs`, `.write` ⇒ `.cud`, `.*` ⇒ `.cruds`; "Scope
requests with undefined or out of order interactions MAY be ignored, replaced with server default
scopes, or rejected". Backend Services: the access token response's `scope` is REQUIRED, "Scope
of access authorized. Note that this can be different from the scopes requested by the app."

`deploy/fhirtis.env.example` suggests v2 scopes (`system/Observation.rs`); a server that takes
v1 scopes only answers `invalid_scope`, and fhirtis said only "token request … was refused:
HTTP 400 (invalid_scope)": not which scopes it asked (they are no secret), nor that the server
advertises v1 only. A token granted fewer scopes than asked went unremarked until a 403 in the
middle of a run; `fhirtis capabilities` said nothing of authorization at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig, Unauthorized
from tests.io._support import BASE, TOKEN_URL, WELL_KNOWN, FakeTime, patient

V2 = (
    "system/Patient.rs system/MedicationAdministration.rs system/Observation.cud "
    "system/Provenance.cu"
)


def _smart_configuration(capabilities: list[str], **more: Any) -> dict[str, Any]:
    return {
        "token_endpoint": TOKEN_URL,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "capabilities": capabilities,
        **more,
    }


async def test_invalid_scope_names_the_scopes_asked_and_the_v1_syntax_the_server_takes(
    httpx_mock: HTTPXMock, smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    httpx_mock.add_response(
        url=WELL_KNOWN,
        json=_smart_configuration(
            ["client-confidential-asymmetric", "permission-v1"],
            scopes_supported=["system/Patient.read", "system/Observation.read"],
        ),
    )
    httpx_mock.add_response(
        method="POST",
        url=TOKEN_URL,
        status_code=400,
        json={"error": "invalid_scope", "error_description": "Invalid scopes: system/Patient.rs"},
    )
    async with FhirClient(smart_config(scope=V2), timing=fake_time.timing()) as fhir:
        with pytest.raises(Unauthorized) as caught:
            await fhir.read("Patient", "p1")
    text = str(caught.value)
    assert "invalid_scope" in text
    assert V2 in text  # the scopes asked
    assert "permission-v1" in text and "v1" in text
    # what to ask instead, in the syntax the server takes
    assert "system/Patient.read system/MedicationAdministration.read" in text
    assert "system/Observation.read" in text  # one of its scopes_supported


async def test_invalid_scope_with_a_configured_token_url_still_names_the_scopes(
    httpx_mock: HTTPXMock, smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST", url=TOKEN_URL, status_code=400, json={"error": "invalid_scope"}
    )
    config = smart_config(scope=V2, token_url=TOKEN_URL)
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        with pytest.raises(Unauthorized) as caught:
            await fhir.read("Patient", "p1")
    assert V2 in str(caught.value)


async def test_a_token_granted_fewer_scopes_than_asked_is_said_before_reading(
    httpx_mock: HTTPXMock,
    smart_config: Callable[..., FhirClientConfig],
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    httpx_mock.add_response(url=WELL_KNOWN, json=_smart_configuration(["permission-v2"]))
    httpx_mock.add_response(
        method="POST",
        url=TOKEN_URL,
        json={
            "access_token": "at-1",
            "token_type": "bearer",
            "expires_in": 300,
            # v1 answers to v2 asks are the same grant; MedicationAdministration is missing
            "scope": "system/Patient.read system/Observation.write system/Provenance.rs",
        },
    )
    httpx_mock.add_response(url=f"{BASE}/Patient/p1", json=patient(1))
    with caplog.at_level(logging.WARNING, logger="fhirtis.io"):
        async with FhirClient(smart_config(scope=V2), timing=fake_time.timing()) as fhir:
            await fhir.read("Patient", "p1")
            info = fhir.authorization()
    assert info is not None
    assert info.not_granted == ("system/MedicationAdministration.rs", "system/Provenance.cu")
    assert info.scope_syntax == "v2"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("system/MedicationAdministration.rs" in m for m in warned)
    assert all("at-1" not in m for m in warned)


def test_scope_helpers() -> None:
    from fhirtis.io._scopes import not_granted, scope_syntax, v1_equivalent  # noqa: PLC0415

    assert scope_syntax(["permission-v1"]) == "v1"
    assert scope_syntax(["permission-v1", "permission-v2"]) == "v1 and v2"
    assert scope_syntax(["launch-ehr"]) == "not advertised"
    assert scope_syntax(None) == "unknown"
    assert v1_equivalent("system/Observation.rs system/Flag.cud system/Provenance.cu") == (
        "system/Observation.read system/Flag.write system/Provenance.write"
    )
    assert not_granted("system/Observation.rs", "system/*.read") == ()
    assert not_granted("system/Observation.rs?category=laboratory", "system/Observation.rs") == ()
    assert not_granted("system/Observation.rs", "system/Observation.rs?category=laboratory") == (
        "system/Observation.rs",
    )
    # scopes that are not SMART's (Entra's {fhirurl}/.default) are not compared
    assert not_granted("https://x.example.org/.default", "") == ()


def test_capabilities_shows_the_scope_syntax_and_what_the_token_cannot_read(
    httpx_mock: HTTPXMock, rsa_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json  # noqa: PLC0415

    from typer.testing import CliRunner  # noqa: PLC0415

    from fhirtis.cli import app  # noqa: PLC0415

    env = {
        "FHIRTIS_FHIR__BASE_URL": BASE,
        "FHIRTIS_FHIR__AUTH_MODE": "smart-backend",
        "FHIRTIS_FHIR__CLIENT_ID": "fhirtis",
        "FHIRTIS_FHIR__KID": "k1",
        "FHIRTIS_FHIR__SCOPE": "system/*.read",
        "FHIRTIS_FHIR__PRIVATE_KEY_PEM": rsa_key.as_pem(private=True).decode(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    httpx_mock.add_response(
        url=WELL_KNOWN, json=_smart_configuration(["permission-v1"]), is_reusable=True
    )
    httpx_mock.add_response(
        method="POST",
        url=TOKEN_URL,
        json={
            "access_token": "at-1",
            "token_type": "bearer",
            "expires_in": 300,
            "scope": "system/Patient.read system/Observation.read",
        },
        is_reusable=True,
    )
    httpx_mock.add_response(
        url=f"{BASE}/metadata",
        json={"resourceType": "CapabilityStatement", "status": "active", "kind": "instance"},
        is_reusable=True,
    )
    runner = CliRunner()
    text = runner.invoke(app, ["capabilities"])
    assert text.exit_code == 0, text.output
    assert "scope syntax: SMART v1 only" in text.stdout
    lacking = next(line for line in text.stdout.splitlines() if "token cannot read" in line)
    assert "MedicationAdministration" in lacking and "Observation," not in lacking
    assert "at-1" not in text.output
    as_json = runner.invoke(app, ["capabilities", "--json"])
    assert as_json.exit_code == 0, as_json.output
    auth = json.loads(as_json.stdout)["authorization"]
    assert auth["scope_syntax"] == "v1"
    assert auth["scopes_granted"] == "system/Patient.read system/Observation.read"
    assert "MedicationAdministration" in auth["types_not_granted"]
    assert "Patient" not in auth["types_not_granted"]
