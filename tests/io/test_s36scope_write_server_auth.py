"""How fhirtis authenticates to a separate write server (``FHIRTIS_FHIR__WRITE_BASE_URL``).

The write server was given the read server's auth settings with ``token_url`` dropped: the same
``auth_mode``, client and ``scope``, the token endpoint discovered at the write server. Two
setups the README documents could not work:

- a registry's own store that is a second Azure Health Data Services FHIR service, through
  Microsoft Entra ID: each FHIR service is its own audience, and Entra issues a token for the
  resource named by ``scope`` (``{fhirurl}/.default``, learn.microsoft.com/azure/healthcare-apis/
  fhir/…). A token for the EHR's service is refused 401 by the store; there was no way to ask
  for ``{store}/.default``, and the Entra token endpoint configured (``token_url``) was dropped;
- a registry's own store that takes no credentials (a HAPI FHIR server on the site's network)
  while the EHR needs SMART Backend Services: the write client looked for a token endpoint at the
  store, found none, and failed every write with "set token_url", which it then ignored.

``write_scope``, ``write_token_url`` and ``write_auth_mode`` set them for the write server; unset,
the write server is used as before (the read server's mode and scope, its own discovery).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs

import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.settings import SettingsError, load_settings
from tests.io._support import FakeTime, patient, token_response

EHR = "https://ehr-fhir.fhir.azurehealthcareapis.com"
STORE = "https://registry-fhir.fhir.azurehealthcareapis.com"
ENTRA = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"


def _azure(**overrides: object) -> FhirClientConfig:
    values: dict[str, object] = {
        "base_url": EHR,
        "write_base_url": STORE,
        "auth_mode": "client-secret",
        "client_id": "c0ffee00-1111-2222-3333-444455556666",
        "client_secret": "s3cr3t",
        "scope": f"{EHR}/.default",
        "token_url": ENTRA,
    }
    values.update(overrides)
    return FhirClientConfig.model_validate(values)


async def test_a_second_azure_fhir_service_gets_a_token_for_its_own_audience(
    httpx_mock: HTTPXMock, fake_time: FakeTime
) -> None:
    config = _azure(write_scope=f"{STORE}/.default", write_token_url=ENTRA)
    httpx_mock.add_response(method="POST", url=ENTRA, json=token_response("ehr-token"))
    httpx_mock.add_response(method="POST", url=ENTRA, json=token_response("store-token"))
    httpx_mock.add_response(url=f"{EHR}/Patient/p1", json=patient(1))
    httpx_mock.add_response(url=f"{STORE}/Patient/p1", json=patient(1))
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        await fhir.read("Patient", "p1")
        await fhir.writer().read("Patient", "p1")
    scopes = [parse_qs(r.content.decode())["scope"] for r in httpx_mock.get_requests(method="POST")]
    assert scopes == [[f"{EHR}/.default"], [f"{STORE}/.default"]]
    store_read = httpx_mock.get_requests(url=f"{STORE}/Patient/p1")[0]
    assert store_read.headers["Authorization"] == "Bearer store-token"


async def test_a_write_server_that_takes_no_credentials(
    httpx_mock: HTTPXMock, smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    store = "http://registry.internal:8080/fhir"
    config = smart_config(write_base_url=store, write_auth_mode="none")
    httpx_mock.add_response(url=f"{store}/Patient/p1", json=patient(1))
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        await fhir.writer().read("Patient", "p1")
    (request,) = httpx_mock.get_requests()
    assert "Authorization" not in request.headers


def test_unset_the_write_server_is_used_as_before() -> None:
    writes = _azure().for_writes()
    assert (writes.base_url, writes.auth_mode, writes.scope, writes.token_url) == (
        f"{STORE}/",
        "client-secret",
        f"{EHR}/.default",
        None,
    )


def test_write_settings_without_a_write_server_are_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", EHR)
    monkeypatch.setenv("FHIRTIS_FHIR__WRITE_SCOPE", f"{STORE}/.default")
    with pytest.raises(SettingsError, match="write_base_url"):
        load_settings()


def test_the_write_servers_mode_is_checked_at_start_up() -> None:
    # client-secret to the store needs a scope: the read server takes none here
    with pytest.raises(ValueError, match="write_scope"):
        FhirClientConfig.model_validate(
            {
                "base_url": EHR,
                "write_base_url": STORE,
                "write_auth_mode": "client-secret",
                "client_id": "c0ffee00",
                "client_secret": "s3cr3t",
            }
        )
