"""Auth: none, static bearer, SMART Backend Services (assertion, discovery, cache, 401 refresh)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey, import_key
from pytest_httpx import HTTPXMock

from fhirtis.io import (
    FhirClient,
    FhirClientConfig,
    ForeignUrl,
    MalformedResponse,
    SigningAlg,
    SmartBackendAuth,
    Unauthorized,
    load_private_key,
)
from fhirtis.io._auth import CLIENT_ASSERTION_TYPE, BearerTokenAuth, _lifetime
from tests.io._support import (
    BASE,
    START_WALL,
    TOKEN_URL,
    WELL_KNOWN,
    FakeTime,
    patient,
    token_response,
)

ConfigFactory = Callable[..., FhirClientConfig]
PATIENT_URL = f"{BASE}/Patient/p1"
SMART_CONFIGURATION = {
    "token_endpoint": TOKEN_URL,
    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
}


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def _public(alg: SigningAlg, rsa_key: RSAKey, ec_key: ECKey) -> RSAKey | ECKey:
    if alg == "RS384":
        return import_key(rsa_key.as_pem(private=False), "RSA")
    return import_key(ec_key.as_pem(private=False), "EC")


def _add_recording(
    httpx_mock: HTTPXMock, seen: list[str], *, status: int = 200, json: Any = None, **match: Any
) -> None:
    """A response that records the Authorization header as it was when sent (the auth flow
    re-sends the same request object after a 401, so recorded requests show the last value)."""

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        return httpx.Response(status, json=json)

    httpx_mock.add_callback(respond, **match)


def _token_requests(httpx_mock: HTTPXMock) -> list[httpx.Request]:
    return httpx_mock.get_requests(method="POST", url=TOKEN_URL)


def _fhir_requests(httpx_mock: HTTPXMock) -> list[httpx.Request]:
    """Requests to the FHIR server, discovery excluded."""
    return [
        r
        for r in httpx_mock.get_requests()
        if r.url.host == "fhir.example.org" and "/.well-known/" not in r.url.path
    ]


# -- none and static bearer ------------------------------------------------------------------------


async def test_no_auth_sends_no_authorization_header(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=PATIENT_URL, json=patient(1))
    async with FhirClient(make_config(), timing=fake_time.timing()) as fhir:
        await fhir.read("Patient", "p1")
    request = httpx_mock.get_request()
    assert request is not None
    assert "Authorization" not in request.headers


async def test_static_bearer_header_is_sent(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=PATIENT_URL, json=patient(1))
    config = make_config(auth_mode="bearer", bearer_token="abc.def.ghi")
    assert "abc.def.ghi" not in repr(config)
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        await fhir.read("Patient", "p1")
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["Authorization"] == "Bearer abc.def.ghi"


async def test_static_bearer_401_is_final(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(url=PATIENT_URL, status_code=401)
    config = make_config(auth_mode="bearer", bearer_token="abc.def.ghi")
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        with pytest.raises(Unauthorized) as caught:
            await fhir.read("Patient", "p1")
    assert caught.value.status == 401
    assert "abc.def.ghi" not in str(caught.value)
    assert len(httpx_mock.get_requests()) == 1


def test_bearer_is_never_attached_to_another_origin() -> None:
    auth = BearerTokenAuth("abc.def.ghi", base_url=BASE)
    flow = auth.auth_flow(httpx.Request("GET", "https://evil.example.com/r4/Patient"))
    with pytest.raises(ForeignUrl) as caught:
        next(flow)
    assert "abc.def.ghi" not in str(caught.value)
    assert "abc.def.ghi" not in repr(auth)


async def test_request_to_another_origin_is_refused_before_sending(
    httpx_mock: HTTPXMock, make_config: ConfigFactory, fake_time: FakeTime
) -> None:
    config = make_config(auth_mode="bearer", bearer_token="abc.def.ghi")
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        with pytest.raises(ForeignUrl):
            await fhir.request("GET", "https://evil.example.com/r4/Patient/p1")
        with pytest.raises(ForeignUrl):
            await fhir.request("GET", "//evil.example.com/r4/Patient/p1")
    assert httpx_mock.get_requests() == []


# -- SMART backend services ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_smart_discovery_token_and_verified_assertion(
    httpx_mock: HTTPXMock,
    smart_config: ConfigFactory,
    fake_time: FakeTime,
    rsa_key: RSAKey,
    ec_key: ECKey,
    alg: SigningAlg,
) -> None:
    httpx_mock.add_response(method="GET", url=WELL_KNOWN, json=SMART_CONFIGURATION)
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    httpx_mock.add_response(url=PATIENT_URL, json=patient(1))

    async with FhirClient(smart_config(alg), timing=fake_time.timing()) as fhir:
        assert (await fhir.read("Patient", "p1"))["id"] == "p1"

    discovery, token_request, read = httpx_mock.get_requests()
    assert discovery.url == httpx.URL(WELL_KNOWN)
    assert "Authorization" not in discovery.headers
    assert "Authorization" not in token_request.headers
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert token_request.extensions["timeout"]["read"] == 60.0
    form = _form(token_request)
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "system/Observation.rs system/Observation.cu"
    assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    assert "client_id" not in form

    token = jwt.decode(form["client_assertion"], _public(alg, rsa_key, ec_key), algorithms=[alg])
    assert token.header["alg"] == alg
    assert token.header["kid"] == f"kid-{alg}"
    assert token.header["typ"] == "JWT"
    claims = token.claims
    assert claims["iss"] == claims["sub"] == "fhirtis-test"
    assert claims["aud"] == TOKEN_URL
    assert START_WALL < claims["exp"] <= START_WALL + 300
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 32

    assert read.headers["Authorization"] == "Bearer at-1"


async def test_assertion_signed_with_another_key_does_not_verify(
    smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    auth = SmartBackendAuth.from_config(smart_config("ES384"), clock=fake_time.timing().time)
    other = ECKey.generate_key("P-384")
    with pytest.raises(Exception, match="signature"):
        jwt.decode(auth.make_assertion(TOKEN_URL), other, algorithms=["ES384"])


def test_jti_is_unique_per_assertion(smart_config: ConfigFactory, fake_time: FakeTime) -> None:
    auth = SmartBackendAuth.from_config(smart_config(), clock=fake_time.timing().time)
    key = auth._key  # the private key verifies too
    first = jwt.decode(auth.make_assertion(TOKEN_URL), key, algorithms=["RS384"]).claims
    second = jwt.decode(auth.make_assertion(TOKEN_URL), key, algorithms=["RS384"]).claims
    assert first["jti"] != second["jti"]
    assert first["exp"] == second["exp"]


async def test_configured_token_url_skips_discovery_and_token_is_cached(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    for i in range(3):
        httpx_mock.add_response(url=f"{BASE}/Patient/p{i}", json=patient(i))
    config = smart_config(token_url=TOKEN_URL)
    async with FhirClient(config, timing=fake_time.timing()) as fhir:
        for i in range(3):
            await fhir.read("Patient", f"p{i}")
            fake_time.advance(60)
    assert len(_token_requests(httpx_mock)) == 1
    assert httpx_mock.get_requests(url=WELL_KNOWN) == []
    assert [r.headers["Authorization"] for r in _fhir_requests(httpx_mock)] == ["Bearer at-1"] * 3


async def test_token_is_refreshed_near_expiry_and_discovery_is_not_repeated(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(method="GET", url=WELL_KNOWN, json=SMART_CONFIGURATION)
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1", 300))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-2", 300))
    httpx_mock.add_response(url=PATIENT_URL, json=patient(1), is_reusable=True)

    async with FhirClient(smart_config(), timing=fake_time.timing()) as fhir:
        await fhir.read("Patient", "p1")  # t=0: discovery + token 1
        fake_time.advance(200)
        await fhir.read("Patient", "p1")  # t=200: cached (expires at 300, refresh at 240)
        fake_time.advance(50)
        await fhir.read("Patient", "p1")  # t=250: within the margin: token 2

    assert len(httpx_mock.get_requests(url=WELL_KNOWN)) == 1
    assert len(_token_requests(httpx_mock)) == 2
    assert [r.headers["Authorization"] for r in _fhir_requests(httpx_mock)] == [
        "Bearer at-1",
        "Bearer at-1",
        "Bearer at-2",
    ]


async def test_401_refreshes_the_token_once_then_succeeds(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1", 3600))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-2", 3600))
    sent: list[str] = []
    _add_recording(httpx_mock, sent, url=PATIENT_URL, status=401)
    _add_recording(httpx_mock, sent, url=PATIENT_URL, json=patient(1))

    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        assert (await fhir.read("Patient", "p1"))["id"] == "p1"

    assert len(_token_requests(httpx_mock)) == 2
    assert sent == ["Bearer at-1", "Bearer at-2"]
    assert fake_time.sleeps == []


async def test_second_401_raises_unauthorized(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1", 3600))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-2", 3600))
    sent: list[str] = []
    _add_recording(httpx_mock, sent, url=PATIENT_URL, status=401)
    _add_recording(httpx_mock, sent, url=PATIENT_URL, status=401)

    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        with pytest.raises(Unauthorized) as caught:
            await fhir.read("Patient", "p1")

    assert sent == ["Bearer at-1", "Bearer at-2"]

    assert caught.value.status == 401
    assert "at-2" not in str(caught.value)
    assert len(_token_requests(httpx_mock)) == 2
    assert len(_fhir_requests(httpx_mock)) == 2


async def test_401_on_a_transaction_is_resent_once_with_a_new_token(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1", 3600))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-2", 3600))
    httpx_mock.add_response(method="POST", url=BASE, status_code=401)
    httpx_mock.add_response(
        method="POST", url=BASE, json={"resourceType": "Bundle", "type": "transaction-response"}
    )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        await fhir.transaction(bundle)
    first, second = _fhir_requests(httpx_mock)
    assert first.content == second.content
    assert second.headers["Authorization"] == "Bearer at-2"


async def test_token_endpoint_refusal_raises_unauthorized_without_sending_the_request(
    httpx_mock: HTTPXMock,
    smart_config: ConfigFactory,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=TOKEN_URL,
        status_code=400,
        json={"error": "invalid_client", "error_description": "jwt for Smith rejected"},
    )
    caplog.set_level(logging.DEBUG, logger="fhirtis.io")
    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        with pytest.raises(Unauthorized) as caught:
            await fhir.read("Patient", "p1")
    message = str(caught.value)
    assert "HTTP 400 (invalid_client)" in message
    assert "Smith" not in message
    assert caught.value.url == TOKEN_URL
    assert _fhir_requests(httpx_mock) == []
    assertion = _form(_token_requests(httpx_mock)[0])["client_assertion"]
    assert assertion not in message
    assert assertion not in caplog.text


async def test_token_endpoint_503_is_retried_even_for_a_transaction(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST", url=TOKEN_URL, status_code=503, headers={"Retry-After": "2"}
    )
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    httpx_mock.add_response(
        method="POST", url=BASE, json={"resourceType": "Bundle", "type": "transaction-response"}
    )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        await fhir.transaction(bundle)
    assert fake_time.sleeps == [2.0]
    assert len(_fhir_requests(httpx_mock)) == 1  # sent once, after the token came


async def test_token_endpoint_timeout_is_retried_even_for_a_transaction(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("t"), method="POST", url=TOKEN_URL)
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    httpx_mock.add_response(
        method="POST", url=BASE, json={"resourceType": "Bundle", "type": "transaction-response"}
    )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        await fhir.transaction(bundle)
    assert len(_fhir_requests(httpx_mock)) == 1


async def test_concurrent_requests_share_one_token_fetch(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(method="GET", url=WELL_KNOWN, json=SMART_CONFIGURATION)
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    for i in range(6):
        httpx_mock.add_response(url=f"{BASE}/Patient/p{i}", json=patient(i))
    async with FhirClient(smart_config(), timing=fake_time.timing()) as fhir:
        results = await asyncio.gather(*(fhir.read("Patient", f"p{i}") for i in range(6)))
    assert [r["id"] for r in results] == [f"p{i}" for i in range(6)]
    assert len(_token_requests(httpx_mock)) == 1
    assert len(httpx_mock.get_requests(url=WELL_KNOWN)) == 1


def test_the_same_flow_drives_a_sync_client(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(method="GET", url=WELL_KNOWN, json=SMART_CONFIGURATION)
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-1"))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-2"))
    sent: list[str] = []
    _add_recording(httpx_mock, sent, url=PATIENT_URL, status=401)
    _add_recording(httpx_mock, sent, url=PATIENT_URL, json=patient(1))
    auth = SmartBackendAuth.from_config(smart_config(), clock=fake_time.timing().time)
    with httpx.Client(auth=auth) as client:
        response = client.get(PATIENT_URL)
    assert response.status_code == 200
    assert sent == ["Bearer at-1", "Bearer at-2"]
    assert len(_token_requests(httpx_mock)) == 2


async def test_discovery_without_token_endpoint_is_malformed(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(method="GET", url=WELL_KNOWN, json={"issuer": BASE})
    async with FhirClient(smart_config(), timing=fake_time.timing()) as fhir:
        with pytest.raises(MalformedResponse, match="no token_endpoint"):
            await fhir.read("Patient", "p1")
    assert _fhir_requests(httpx_mock) == []


async def test_discovered_plain_http_token_endpoint_is_refused(
    httpx_mock: HTTPXMock, smart_config: ConfigFactory, fake_time: FakeTime
) -> None:
    httpx_mock.add_response(
        method="GET", url=WELL_KNOWN, json={"token_endpoint": "http://auth.example.org/token"}
    )
    async with FhirClient(smart_config(), timing=fake_time.timing()) as fhir:
        with pytest.raises(MalformedResponse, match="non-https"):
            await fhir.read("Patient", "p1")
    assert len(httpx_mock.get_requests()) == 1


async def test_tokens_never_reach_the_logs(
    httpx_mock: HTTPXMock,
    smart_config: ConfigFactory,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-SECRET"))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=token_response("at-SECRET-2"))
    httpx_mock.add_response(url=f"{BASE}/Patient?identifier=MRN-4242&_count=100", status_code=401)
    httpx_mock.add_response(url=f"{BASE}/Patient?identifier=MRN-4242&_count=100", status_code=503)
    httpx_mock.add_response(
        url=f"{BASE}/Patient?identifier=MRN-4242&_count=100",
        json={"resourceType": "Bundle", "type": "searchset"},
    )
    caplog.set_level(logging.DEBUG, logger="fhirtis.io")
    async with FhirClient(smart_config(token_url=TOKEN_URL), timing=fake_time.timing()) as fhir:
        [e async for e in fhir.search("Patient", {"identifier": "MRN-4242"})]
    fhir_logs = [r for r in caplog.records if r.name == "fhirtis.io"]
    assert fhir_logs, "the client logs its requests"
    assert "/r4/Patient?identifier&_count" in caplog.text
    assert "at-SECRET" not in caplog.text
    assert "MRN-4242" not in caplog.text
    assert "Bearer" not in caplog.text


# -- keys ------------------------------------------------------------------------------------


def test_key_must_match_the_algorithm(rsa_key: RSAKey, ec_key: ECKey) -> None:
    with pytest.raises(ValueError, match="EC"):
        load_private_key(rsa_key.as_pem(private=True), "ES384")
    with pytest.raises(ValueError, match="RSA"):
        load_private_key(ec_key.as_pem(private=True), "RS384")
    p256 = ECKey.generate_key("P-256")
    with pytest.raises(ValueError, match="P-384"):
        load_private_key(p256.as_pem(private=True), "ES384")
    with pytest.raises(ValueError, match="private key"):
        load_private_key(rsa_key.as_pem(private=False), "RS384")
    with pytest.raises(ValueError, match="PEM"):
        load_private_key(b"not a key", "RS384")


def test_key_is_read_from_a_path(
    tmp_path: Path, ec_key: ECKey, smart_config: ConfigFactory
) -> None:
    path = tmp_path / "client.pem"
    path.write_bytes(ec_key.as_pem(private=True))
    config = smart_config("ES384", private_key_pem=None, private_key_path=path)
    auth = SmartBackendAuth.from_config(config)
    claims: dict[str, Any] = jwt.decode(
        auth.make_assertion(TOKEN_URL), ec_key, algorithms=["ES384"]
    ).claims
    assert claims["aud"] == TOKEN_URL


@pytest.mark.parametrize(
    ("expires_in", "seconds"),
    [
        (3600, 3600.0),
        ("3600", 3600.0),
        (59.5, 59.5),
        (-5, 300.0),  # no lifetime (RFC 6749 §5.1): the default, as for none given
        (0, 300.0),
        (None, 300.0),
        (True, 300.0),
    ],
)
def test_token_lifetime(expires_in: Any, seconds: float) -> None:
    assert _lifetime(expires_in) == seconds
