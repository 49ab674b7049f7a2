"""A URL's credentials are never put into a message.

``_urls.redact`` (the URL of every error message of ``fhirtis.io``, and of the token endpoint's
debug line) replaced query values but kept the userinfo: a token endpoint configured as
``https://client:secret@login.example/token`` (``FHIRTIS_FHIR__TOKEN_URL``; the base URL refuses
credentials, the token URL did not) put the secret into the refusal the endpoint answered
(httpx sends no Basic auth from a URL in an auth flow's request: the answer is 401), which
``fhirtis run`` prints, the cohort ledger records, and ``$myositis-evaluate`` answers its caller
with (502 "the FHIR server refused: ...").
"""

from __future__ import annotations

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig, Unauthorized
from fhirtis.io._urls import redact

SECRET = "ZZSECRETMARK-s32priv"


def test_redact_leaves_out_credentials() -> None:
    text = redact(httpx.URL(f"https://client:{SECRET}@login.example/token?code=abc#x"))
    assert text == "https://login.example/token?code=***"


async def test_a_refused_token_request_does_not_quote_the_token_urls_secret(
    httpx_mock: HTTPXMock,
) -> None:
    token_url = f"https://client:{SECRET}@login.example/oauth2/token"
    httpx_mock.add_response(
        method="POST", url=token_url, status_code=401, json={"error": "invalid_client"}
    )
    config = FhirClientConfig(
        base_url="https://ehr.example/fhir",
        auth_mode="client-secret",
        client_id="fhirtis",
        client_secret="another-secret",  # type: ignore[arg-type]
        scope="system/*.read",
        token_url=token_url,
    )
    async with FhirClient(config) as fhir:
        with pytest.raises(Unauthorized) as raised:
            await fhir.read("Patient", "p1")
    assert "invalid_client" in str(raised.value)
    assert SECRET not in str(raised.value) and SECRET not in raised.value.url
