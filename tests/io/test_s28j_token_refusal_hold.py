"""A token endpoint that refuses the client (invalid_client) is not asked again per request.

An authorization server refuses a client's credentials for reasons that last: an Epic backend
client whose public key or JWK Set URL is not yet active at the organisation, or whose client
id is not mapped to a user yet, is answered `{"error": "invalid_client", "error_description":
null}` (fhir.epic.com, Backend OAuth 2.0, "Complete Required Epic Community Member Setup";
the same answer is reported for new sandbox registrations, which take a while to propagate);
Microsoft Entra ID answers `invalid_client` (AADSTS7000215) to an expired secret. Every FHIR
request fhirtis then made fetched a token again: a cohort run or a busy CDS service sent one
refused token request (with a fresh signed assertion, or the secret) per FHIR request. RFC 6749
§5.2 makes these errors statements about the client, not the request. A refusal now holds for
a minute: requests meanwhile fail with the same error without asking; then it is asked again.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig, Unauthorized
from tests.io._support import BASE, TOKEN_URL, FakeTime, patient, token_response


async def test_a_refused_client_is_not_asked_again_for_each_request(
    httpx_mock: HTTPXMock, smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=TOKEN_URL,
        status_code=400,
        json={"error": "invalid_client", "error_description": None},
    )
    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        for i in range(5):
            with pytest.raises(Unauthorized, match=r"HTTP 400 \(invalid_client\)") as caught:
                await fhir.read("Patient", f"p{i}")
            assert caught.value.status == 400
            fake_time.advance(5)
        assert len(httpx_mock.get_requests(method="POST", url=TOKEN_URL)) == 1
        # the registration became active meanwhile: asked again after the hold
        fake_time.advance(60)
        httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
        httpx_mock.add_response(url=f"{BASE}/Patient/p9", json=patient(9))
        assert (await fhir.read("Patient", "p9"))["id"] == "p9"
    assert len(httpx_mock.get_requests(method="POST", url=TOKEN_URL)) == 2
    assert len(httpx_mock.get_requests(url=f"{BASE}/Patient/p0")) == 0


async def test_a_server_error_of_the_token_endpoint_is_not_held(
    httpx_mock: HTTPXMock, smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, status_code=500)
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    httpx_mock.add_response(url=f"{BASE}/Patient/p2", json=patient(2))
    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        with pytest.raises(Unauthorized):
            await fhir.read("Patient", "p1")
        assert (await fhir.read("Patient", "p2"))["id"] == "p2"
