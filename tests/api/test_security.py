"""Issue 12: what a hospital's security review asks of ``fhirtis serve``, tested against the real
app (its ASGI app with its lifespan, or uvicorn on a loopback port) with real JWTs (joserfc) and
the test FHIR server."""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from fhirtis.api.app import create_app
from fhirtis.io import FhirClientConfig
from fhirtis.settings import CdsSettings, ServiceSettings, Settings, TrustedCdsClient
from tests.api.app_setup import served
from tests.api.test_cds_hooks import (
    DVT,
    SIGN,
    call,
    full_prefetch,
    ivig_order,
    patient_70kg,
    qty,
)
from tests.e2e.test_run import load
from tests.fhir.builders import bundle, medication
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
BASE = "http://fhirtis.test"
EHR_ISS = "https://ehr.test"
CDS_KEY = ECKey.generate_key("P-384", parameters={"kid": "cds-1"})
CDS_RSA = RSAKey.generate_key(2048, parameters={"kid": "cds-2"})
ROGUE_KEY = ECKey.generate_key("P-384", parameters={"kid": "cds-1"})
SMART_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
SMART_ISS = "https://auth.test"
ALL_READ = "patient/*.rs"


def jwks(*keys: ECKey | RSAKey) -> str:
    return json.dumps({"keys": [k.as_dict(private=False) for k in keys]})


def cds_jwt(
    *,
    key: ECKey | RSAKey = CDS_KEY,
    alg: str = "ES384",
    aud: Any = BASE + SIGN,
    **claims: Any,
) -> str:
    """A CDS client's JWT (CDS Hooks 2.0, "Trusting CDS Clients")."""
    now = int(time.time())
    body: Json = {
        "iss": EHR_ISS,
        "sub": "ehr-client",
        "aud": aud,
        "exp": now + 240,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, body, key, algorithms=[alg])


def smart_token(**claims: Any) -> str:
    now = int(time.time())
    body: Json = {
        "iss": SMART_ISS,
        "aud": BASE,
        "exp": now + 300,
        "iat": now,
        "scope": ALL_READ,
        "patient": "p1",
        "sub": "clinician-app",
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": "RS384", "kid": "k1"}, body, SMART_KEY, algorithms=["RS384"])


@asynccontextmanager
async def app_client(
    fhir_base: str, *, cds: CdsSettings | None = None, **service: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        fhir=FhirClientConfig(
            base_url=fhir_base, retry_max_attempts=2, retry_budget_seconds=2, read_timeout_seconds=5
        ),
        service=ServiceSettings(**service),
        cds=cds or CdsSettings(),
    )
    async with served(settings) as client:
        yield client


def validate_mode(tmp_path: Path) -> Json:
    path = tmp_path / "ehr-jwks.json"
    path.write_text(jwks(CDS_KEY, CDS_RSA))
    return {
        "auth_mode": "validate",
        "issuer": SMART_ISS,
        "audience": BASE,
        "jwks": jwks(SMART_KEY),
        "cds": CdsSettings(trusted_clients=[TrustedCdsClient(iss=EHR_ISS, jwks_path=path)]),
    }


def hook_call(fhir_base: str) -> Json:
    return call([ivig_order(rate=qty(300, "mL/h"))], full_prefetch(patient_70kg(DVT)))


# -- 1. CDS Hooks: trusting CDS clients ---------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "why"),
    [
        (None, "no Authorization"),
        ("Bearer garbage", "not a JWT"),
        ("Basic dXNlcjpwYXNz", "not a bearer JWT"),
        (lambda: f"Bearer {cds_jwt(key=ROGUE_KEY)}", "signed by another key"),
        (lambda: f"Bearer {cds_jwt(iss='https://rogue.test')}", "untrusted issuer"),
        (lambda: f"Bearer {cds_jwt(aud=BASE + '/cds-services/other')}", "another audience"),
        (lambda: f"Bearer {cds_jwt(exp=int(time.time()) + 3600)}", "exp an hour ahead"),
        (lambda: f"Bearer {cds_jwt(exp=int(time.time()) - 5)}", "expired"),
        (lambda: f"Bearer {cds_jwt(exp=math.nan)}", "exp NaN"),
        (lambda: f"Bearer {cds_jwt(exp=math.inf)}", "exp Infinity"),
        (lambda: f"Bearer {cds_jwt(nbf=math.nan)}", "nbf NaN"),
        (lambda: f"Bearer {cds_jwt(jti=None)}", "no jti"),
        (lambda: f"Bearer {cds_jwt(key=CDS_RSA, alg='RS256')}", "RS256 is not a CDS Hooks alg"),
    ],
)
async def test_cds_calls_need_a_trusted_clients_jwt(
    fhir_base: str, tmp_path: Path, authorization: Any, why: str
) -> None:
    settings = validate_mode(tmp_path)
    async with app_client(fhir_base, **settings) as client:
        value = authorization() if callable(authorization) else authorization
        headers = {"Authorization": value} if value is not None else {}
        r = await client.post(SIGN, json=hook_call(fhir_base), headers=headers)
        assert r.status_code == 401, (why, r.text)
        assert "cards" not in r.json()
        assert r.json()["error"] == "unauthorized"


async def test_a_trusted_clients_jwt_gets_cards_once(fhir_base: str, tmp_path: Path) -> None:
    async with app_client(fhir_base, **validate_mode(tmp_path)) as client:
        assert (await client.get("/cds-services")).status_code == 200  # discovery is public
        for token in (cds_jwt(), cds_jwt(key=CDS_RSA, alg="RS384")):
            auth = {"Authorization": f"Bearer {token}"}
            r = await client.post(SIGN, json=hook_call(fhir_base), headers=auth)
            assert r.status_code == 200, r.text
            assert any("exceeds" in c["summary"] for c in r.json()["cards"])
            replay = await client.post(SIGN, json=hook_call(fhir_base), headers=auth)
            assert replay.status_code == 401 and "replayed" in replay.json()["message"]


async def test_pass_through_checks_cds_jwts_when_clients_are_trusted(
    fhir_base: str, tmp_path: Path
) -> None:
    cds = validate_mode(tmp_path)["cds"]
    async with app_client(fhir_base, cds=cds) as client:
        assert (await client.post(SIGN, json=hook_call(fhir_base))).status_code == 401
        auth = {"Authorization": f"Bearer {cds_jwt()}"}
        assert (await client.post(SIGN, json=hook_call(fhir_base), headers=auth)).status_code == 200


class _JwksHandler(BaseHTTPRequestHandler):
    body = b""
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_url() -> Iterator[str]:
    _JwksHandler.body = jwks(CDS_KEY).encode()
    _JwksHandler.hits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JwksHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


async def test_trusted_client_keys_from_a_jwks_url(fhir_base: str, jwks_url: str) -> None:
    cds = CdsSettings(trusted_clients=[TrustedCdsClient(iss=EHR_ISS, jwks_url=jwks_url)])
    async with app_client(fhir_base, cds=cds) as client:
        for _ in range(2):
            auth = {"Authorization": f"Bearer {cds_jwt()}"}
            r = await client.post(SIGN, json=hook_call(fhir_base), headers=auth)
            assert r.status_code == 200, r.text
        bad = {"Authorization": f"Bearer {cds_jwt(key=ROGUE_KEY)}"}
        assert (await client.post(SIGN, json=hook_call(fhir_base), headers=bad)).status_code == 401
    assert _JwksHandler.hits == 1  # kept, not read per call


def test_trusted_client_settings_need_one_key_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TrustedCdsClient(iss=EHR_ISS)
    with pytest.raises(ValueError, match="exactly one"):
        TrustedCdsClient(iss=EHR_ISS, jwks_url="https://x.test/j", jwks_path=Path("j.json"))


async def test_cds_reads_from_the_fhir_server_for_a_trusted_client(
    fhir_base: str, tmp_path: Path
) -> None:
    load(fhir_base, bundle(*patient_70kg(DVT), medication()))
    body = call([ivig_order(rate=qty(300, "mL/h"))], {"patient": None}, server=fhir_base, token="t")
    body["prefetch"] = {}
    async with app_client(fhir_base, cds=validate_mode(tmp_path)["cds"]) as client:
        r = await client.post(SIGN, json=body, headers={"Authorization": f"Bearer {cds_jwt()}"})
        assert r.status_code == 200, r.text
        assert any("thrombosis" in c["summary"] or "TEE" in c["summary"] for c in r.json()["cards"])


# -- 3. safety limits cannot be changed by a caller ---------------------------------------------

OP = "/Patient/p1/$myositis-evaluate"
CALLER = {"Authorization": "Bearer caller-token"}


def parameters(*params: Json, write: bool = False) -> Json:
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "write", "valueBoolean": write}, *params],
    }


def test_no_setting_raises_the_labels_maximum_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    from fhirtis.clinical.policy import Policy  # noqa: PLC0415
    from fhirtis.settings import load_settings  # noqa: PLC0415

    for name, value in (("max_rate_mg_kg_min", "4.01"), ("max_rate_with_risk_mg_kg_min", "3.4")):
        with pytest.raises(ValueError, match="less than or equal"):
            Policy.model_validate({name: value})
        monkeypatch.setenv(f"FHIRTIS_POLICY__{name.upper()}", value)
        with pytest.raises(ValueError, match=name):
            load_settings()
        monkeypatch.delenv(f"FHIRTIS_POLICY__{name.upper()}")
    lowered = load_settings(policy={"max_rate_mg_kg_min": "3", "max_rate_with_risk_mg_kg_min": "2"})
    assert lowered.policy.max_rate_mg_kg_min == 3  # a site may lower them


@pytest.mark.parametrize("write", [False, True])
@pytest.mark.parametrize(
    "param",
    [
        {"name": "max_rate_mg_kg_min", "valueDecimal": 50},
        {"name": "max_rate_with_risk_mg_kg_min", "valueDecimal": 3.31},
        {"name": "max_rate_mg_kg_min", "valueDecimal": 1e30},
    ],
)
async def test_no_request_raises_the_labels_maximum_rates(
    fhir_base: str, write: bool, param: Json
) -> None:
    load(fhir_base, responder())
    async with app_client(fhir_base, allow_policy_override_on_write=True) as client:
        r = await client.post(OP, headers=CALLER, json=parameters(param, write=write))
        assert r.status_code == 400, r.text
        assert r.json()["issue"][0]["expression"] == [param["name"]]


async def test_policy_overrides_with_write_are_refused_unless_allowed(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    load(fhir_base, responder())
    gap = {"name": "cycle_gap_days", "valueInteger": 10}
    lower = {"name": "max_rate_mg_kg_min", "valueDecimal": 3}
    fhir_server.reset_stats()
    async with app_client(fhir_base) as client:
        r = await client.post(OP, headers=CALLER, json=parameters(gap, write=True))
        assert r.status_code == 403, r.text
        assert "ALLOW_POLICY_OVERRIDE_ON_WRITE" in r.json()["issue"][0]["diagnostics"]
        assert (await client.post(OP, headers=CALLER, json=parameters(gap))).status_code == 200
        assert (await client.post(OP, headers=CALLER, json=parameters(lower))).status_code == 200
    assert fhir_server.stats()["committed_writes"] == 0
    async with app_client(fhir_base, allow_policy_override_on_write=True) as client:
        # the label's limits: never changed for a result that is written, even lowered
        r = await client.post(OP, headers=CALLER, json=parameters(lower, write=True))
        assert r.status_code == 403 and "label" in r.json()["issue"][0]["diagnostics"]
        assert fhir_server.stats()["committed_writes"] == 0
        r = await client.post(OP, headers=CALLER, json=parameters(gap, write=True))
        assert r.status_code == 200, r.text
    assert fhir_server.stats()["committed_writes"] > 0


# -- 2. scopes cover every resource type the evaluation reads -----------------------------------

READ_TYPES = (
    "Patient",
    "Observation",
    "MedicationAdministration",
    "Medication",
    "Condition",
    "MedicationStatement",
    "MedicationRequest",
    "Device",
    "DeviceUseStatement",
    "Procedure",
    "AdverseEvent",
    "Flag",
    "DetectedIssue",
)


@pytest.mark.parametrize(
    "lacking", ["Device", "DeviceUseStatement", "Procedure", "MedicationStatement", "Flag"]
)
async def test_a_token_must_cover_every_type_read(
    fhir_base: str, tmp_path: Path, lacking: str
) -> None:
    """Refused (403, naming the missing scopes), never a result from part of the record: a
    token without Device scope got a central-line risk factor before."""
    load(fhir_base, responder())
    settings = validate_mode(tmp_path)
    scopes = " ".join(f"patient/{t}.rs" for t in READ_TYPES if t != lacking)
    async with app_client(fhir_base, **settings) as client:
        auth = {"Authorization": f"Bearer {smart_token(scope=scopes)}"}
        r = await client.post(OP, headers=auth)
        assert r.status_code == 403, r.text
        diagnostics = r.json()["issue"][0]["diagnostics"]
        assert f"{lacking}.read" in diagnostics and "refuses" in diagnostics
        full = " ".join(f"patient/{t}.rs" for t in READ_TYPES)
        ok = await client.post(OP, headers={"Authorization": f"Bearer {smart_token(scope=full)}"})
        assert ok.status_code == 200, ok.text


# -- 4. bounded work ----------------------------------------------------------------------------


_MALFORMED_SEARCHSETS: dict[str, Any] = {
    "entry-object": {"resource": {"resourceType": "Condition", "id": "c1"}},
    "entry-strings": ["Condition/c1"],
    "resource-array": [{"resource": [{"resourceType": "Condition", "id": "c1"}]}],
}
"""Hostile modes whose batch-response holds searchsets with this malformed ``entry``."""


class Hostile(BaseHTTPRequestHandler):
    """A FHIR server that misbehaves in one ``mode``: ``hang`` (never answers), ``endless``
    (every search has one more page), ``gone2`` (page 2 of a search answers 404), ``huge`` (a
    200 MB batch response), ``strings`` (a batch response whose entries are strings)."""

    mode = "endless"
    pages = 0
    bytes_sent = 0
    release = threading.Event()
    protocol_version = "HTTP/1.1"

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _page(self, n: int) -> Json:
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.mode in _MALFORMED_SEARCHSETS:  # one page, damaged in do_POST
            return {"resourceType": "Bundle", "type": "searchset", "entry": []}
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": [{"relation": "next", "url": f"{base}/Observation?page={n + 1}"}],
            "entry": [],
        }

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        sent = json.loads(self.rfile.read(length))
        if self.mode == "hang":
            self.release.wait(30)
            return
        if self.mode == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b" " * 1_000_000
            try:
                for _ in range(200):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    type(self).bytes_sent += len(chunk)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            return
        entries: list[Any] = []
        for e in sent["entry"]:
            url = e["request"]["url"]
            if url.startswith("Patient/"):
                resource: Json = {"resourceType": "Patient", "id": url.split("/")[1]}
            else:
                resource = self._page(1)
            entries.append({"response": {"status": "200 OK"}, "resource": resource})
        if self.mode == "strings":
            entries = ["200 OK" for _ in entries]
        if self.mode in _MALFORMED_SEARCHSETS:  # every searchset in the batch, damaged
            for e in entries:
                if e["resource"]["resourceType"] == "Bundle":
                    e["resource"] = {**e["resource"], "entry": _MALFORMED_SEARCHSETS[self.mode]}
        self._json(200, {"resourceType": "Bundle", "type": "batch-response", "entry": entries})

    def do_GET(self) -> None:
        if self.path.split("?")[0].endswith("/metadata"):  # no CapabilityStatement: defaults
            self._json(404, {"resourceType": "OperationOutcome", "issue": []})
            return
        type(self).pages += 1
        if self.mode == "gone2":
            self._json(404, {"resourceType": "OperationOutcome", "issue": []})
            return
        n = int(self.path.rsplit("=", 1)[1]) if "page=" in self.path else 1
        self._json(200, self._page(n))

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[str]:
    Hostile.pages = 0
    Hostile.bytes_sent = 0
    Hostile.release = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        Hostile.release.set()
        server.shutdown()
        server.server_close()


async def test_a_large_body_is_refused_unread(fhir_base: str) -> None:
    consumed = 0

    async def endless_body() -> Any:
        nonlocal consumed
        for _ in range(10_000):  # 640 MB if read whole
            consumed += 1
            yield b"x" * 65_536

    async with app_client(fhir_base, max_body_bytes=1_000_000) as client:
        r = await client.post(OP, headers=CALLER, content=endless_body())
        assert r.status_code == 413
        assert consumed < 100
        declared = await client.post(
            OP, headers={**CALLER, "Content-Type": "application/fhir+json"}, content=b"{}" * 600_000
        )
        assert declared.status_code == 413
        assert declared.json()["resourceType"] == "OperationOutcome"
        cds = await client.post(SIGN, content=b" " * 1_200_000)
        assert cds.status_code == 413 and cds.json()["error"] == "request-refused"
        assert (await client.post(OP, headers=CALLER, json=parameters())).status_code != 413


async def test_a_hanging_fhir_server_is_504_and_fetching_stops(hostile: str) -> None:
    Hostile.mode = "hang"
    async with app_client(hostile, evaluation_timeout_seconds=1.5) as client:
        started = time.monotonic()
        r = await client.post(OP, headers=CALLER)
        assert r.status_code == 504, r.text
        assert time.monotonic() - started < 5


async def test_a_hanging_fhir_server_is_answered_504_by_the_wait_cap(hostile: str) -> None:
    """With the evaluation timeout at its default (60 s), the cap on waiting for one FHIR
    request (``service.fhir_wait_seconds``, 25 s by default, 1 s here) answers first."""
    Hostile.mode = "hang"
    settings = Settings(
        fhir=FhirClientConfig(base_url=hostile), service=ServiceSettings(fhir_wait_seconds=1)
    )
    assert settings.service.evaluation_timeout_seconds == 60
    async with served(settings) as client:
        started = time.monotonic()
        r = await client.post(OP, headers=CALLER)
        assert r.status_code == 504, r.text
        assert time.monotonic() - started < 5


async def test_by_default_one_fhir_request_waits_under_30_seconds() -> None:
    settings = Settings(fhir=FhirClientConfig(base_url="https://ehr.example.org/fhir"))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state.fhirtis
        for server in ("https://ehr.example.org/fhir", "https://other.example.org/fhir"):
            config = state.config_for(server)
            assert config.read_timeout_seconds <= 25
            assert config.retry_budget_seconds <= 25


async def test_endless_next_links_stop_at_the_timeout(hostile: str) -> None:
    Hostile.mode = "endless"
    async with app_client(hostile, evaluation_timeout_seconds=1.5) as client:
        r = await client.post(OP, headers=CALLER)
        assert r.status_code == 504, r.text
        after = Hostile.pages
        time.sleep(1.0)
        assert Hostile.pages <= after + 1  # nothing is fetched after the caller got its answer


async def test_a_cap_on_pages_per_search(hostile: str) -> None:
    Hostile.mode = "endless"
    settings = Settings(
        fhir=FhirClientConfig(base_url=hostile, max_pages_per_search=5, retry_max_attempts=1),
    )
    async with served(settings) as client:
        r = await client.post(OP, headers=CALLER)
    assert r.status_code == 502, r.text
    assert "max_pages_per_search" in r.json()["issue"][0]["diagnostics"]
    assert Hostile.pages <= 5


async def test_a_huge_fhir_answer_is_refused_as_it_arrives(hostile: str) -> None:
    Hostile.mode = "huge"
    settings = Settings(
        fhir=FhirClientConfig(base_url=hostile, max_response_bytes=5_000_000, retry_max_attempts=1)
    )
    async with served(settings) as client:
        r = await client.post(OP, headers=CALLER)
    assert r.status_code == 502, r.text
    assert "max_response_bytes" in r.json()["issue"][0]["diagnostics"]
    assert Hostile.bytes_sent < 100_000_000


# -- 5. clean errors everywhere -----------------------------------------------------------------


async def test_a_batch_response_of_strings_is_502(hostile: str) -> None:
    Hostile.mode = "strings"
    async with app_client(hostile) as client:
        r = await client.post(OP, headers=CALLER)
    assert r.status_code == 502, r.text


@pytest.mark.parametrize("mode", sorted(_MALFORMED_SEARCHSETS))
async def test_a_malformed_searchset_in_a_batch_response_is_502(hostile: str, mode: str) -> None:
    """A searchset whose entries cannot be read is a failed read (502), by the operation and by
    the CDS service alike; it was read as a search with no matches (no risk factor, 4 mg/kg/min)."""
    Hostile.mode = mode
    async with app_client(hostile) as client:
        r = await client.post(OP, headers=CALLER)
        assert r.status_code == 502, r.text
        assert "entr" in r.json()["issue"][0]["diagnostics"]
        order = ivig_order(rate=qty(150, "mL/h"))
        cds = await client.post(SIGN, json=call([order], None, server=hostile, token="tok"))
        assert cds.status_code == 502, cds.text
        assert cds.json()["error"] == "fhir-server-failed"


async def test_a_gone_page_2_is_not_patient_not_found(hostile: str) -> None:
    Hostile.mode = "gone2"
    async with app_client(hostile) as client:
        r = await client.post(OP, headers=CALLER)
    assert r.status_code == 502, r.text
    assert "not found" not in r.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("url", [OP, SIGN])
async def test_a_200000_deep_json_body_is_400(fhir_base: str, url: str) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    async with app_client(fhir_base) as client:
        r = await client.post(
            url, content=deep, headers={**CALLER, "Content-Type": "application/json"}
        )
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("case", ["weight 1e300 kg", "strength 1e-30"])
async def test_absurd_numbers_in_cds_prefetch_are_not_500(fhir_base: str, case: str) -> None:
    resources = patient_70kg(DVT)
    order = ivig_order(rate=qty(300, "mL/h"))
    if case.startswith("weight"):
        resources[1]["valueQuantity"]["value"] = 1e300
    else:
        order["contained"][0]["ingredient"][0]["strength"]["numerator"]["value"] = 1e-30
    async with app_client(fhir_base) as client:
        r = await client.post(SIGN, json=call([order], full_prefetch(resources)))
    assert r.status_code < 500, r.text
    assert "E+" not in r.text and "E-" not in r.text  # no exponent in what a clinician reads


async def _raw(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """One request straight into the ASGI app (httpx refuses to send CR/LF in a header)."""
    sent: list[Json] = []

    async def receive() -> Json:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Json) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"fhirtis.test"), *headers],
        "server": ("fhirtis.test", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    await app(scope, receive, send)
    return int(sent[0]["status"])


async def test_a_token_with_cr_lf_is_refused_not_500(fhir_base: str) -> None:
    load(fhir_base, responder())
    app = create_app(Settings(fhir=FhirClientConfig(base_url=fhir_base, retry_max_attempts=1)))
    async with app.router.lifespan_context(app):
        status = await _raw(app, OP, [(b"authorization", b"Bearer abc\r\nX-Evil: 1")])
        assert status == 401
    async with app_client(fhir_base) as client:
        body = call([ivig_order(rate=qty(300, "mL/h"))], {}, server=fhir_base, token="a\r\nb")
        r = await client.post(SIGN, json=body)
        assert r.status_code == 400 and "access_token" in r.json()["message"]


@pytest.mark.parametrize(
    "claims",
    [{"exp": math.nan}, {"exp": math.inf}, {"nbf": math.nan}, {"exp": True}],
)
async def test_smart_jwt_times_must_be_real_numbers(
    fhir_base: str, tmp_path: Path, claims: Json
) -> None:
    load(fhir_base, responder())
    async with app_client(fhir_base, **validate_mode(tmp_path)) as client:
        auth = {"Authorization": f"Bearer {smart_token(**claims)}"}
        r = await client.post(OP, headers=auth)
        assert r.status_code == 401, r.text


def test_settings_errors_never_echo_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from fhirtis.settings import load_settings  # noqa: PLC0415

    secret = "s3cr3t-t0ken-value"
    monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", "https://ehr.test/fhir")
    monkeypatch.setenv("FHIRTIS_FHIR__AUTH_MODE", "smart-backend")
    monkeypatch.setenv("FHIRTIS_FHIR__BEARER_TOKEN", secret)
    monkeypatch.setenv("FHIRTIS_FHIR__PRIVATE_KEY_PEM", "-----BEGIN PRIVATE KEY-----\nMIIsecret")
    with pytest.raises(ValueError, match="client_id") as caught:
        load_settings()
    text = str(caught.value) + repr(caught.value)
    assert secret not in text and "MIIsecret" not in text


async def test_numbers_in_text_written_to_the_ehr_have_no_exponent(fhir_base: str) -> None:
    """A cycle whose known grams are 490: "known: 490 g", never "4.9E+2 g"."""
    from tests.fhir.builders import LOINC, administration, obs, patient  # noqa: PLC0415

    load(
        fhir_base,
        bundle(
            patient(),
            obs("w1", "29463-7", 70, "kg", "2026-01-01", system=LOINC),
            medication(),
            administration(
                "a1", "2026-01-05T08:00:00Z", "2026-01-05T14:00:00Z", dose=qty(490, "g")
            ),
            administration("a2", "2026-01-06T08:00:00Z", "2026-01-06T14:00:00Z"),
        ),
    )
    async with app_client(fhir_base) as client:
        r = await client.post(OP, headers=CALLER)
    assert r.status_code == 200, r.text
    text = r.text
    assert "known: 490 g" in text, text
    assert "E+" not in text


# -- 6. operations ------------------------------------------------------------------------------


async def test_health_endpoints_need_no_authentication(fhir_base: str, tmp_path: Path) -> None:
    async with app_client(fhir_base, **validate_mode(tmp_path)) as client:
        live = await client.get("/livez")
        assert live.status_code == 200 and live.json()["status"] == "live"
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"settings": "ok", "profiles": "ok", "fhir_server": "ok"}
    async with app_client("http://127.0.0.1:9/fhir") as client:  # nothing listens there
        assert (await client.get("/livez")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["fhir_server"].startswith("failed")


async def test_metrics_count_requests_latency_and_fhir_outcomes(fhir_base: str) -> None:
    load(fhir_base, responder())
    async with app_client(fhir_base) as client:
        assert (await client.post(OP, headers=CALLER)).status_code == 200
        assert (await client.post("/Patient/p2/$myositis-evaluate", headers=CALLER)).status_code
        text = (await client.get("/metrics")).text
    assert (
        'fhirtis_http_requests_total{method="POST",route="/Patient/{patient_id}/$myositis-evaluate"'
        ',status="200"} 1.0' in text
    )
    assert 'fhirtis_evaluation_seconds_count{kind="evaluate"} 2.0' in text
    assert 'fhirtis_fhir_requests_total{outcome="2xx"}' in text
    assert "p1" not in text and "p2" not in text  # route templates, never ids


async def test_an_audit_line_per_access(
    fhir_base: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load(fhir_base, responder())
    caplog.set_level("INFO", logger="fhirtis.audit")
    settings = validate_mode(tmp_path)
    token = smart_token(scope=ALL_READ)
    async with app_client(fhir_base, **settings) as client:
        assert (await client.post(OP, headers={"Authorization": f"Bearer {token}"})).status_code
        other = smart_token(scope=ALL_READ, patient="p2")
        r = await client.post(OP, headers={"Authorization": f"Bearer {other}"})
        assert r.status_code == 403
        cds = await client.post(
            SIGN, json=hook_call(fhir_base), headers={"Authorization": f"Bearer {cds_jwt()}"}
        )
        assert cds.status_code == 200
    lines = [r.audit for r in caplog.records if r.name == "fhirtis.audit"]  # type: ignore[attr-defined]
    assert [(a["action"], a["patient"], a["status"]) for a in lines] == [
        ("evaluate", "p1", 200),
        ("evaluate", "p1", 403),
        ("cds", "p1", 200),
    ]
    assert lines[0]["who"] == {"verified": True, "sub": "clinician-app", "iss": SMART_ISS}
    assert lines[2]["who"] == {"verified": True, "iss": EHR_ISS, "sub": "ehr-client"}
    logged = "\n".join(
        r.getMessage() + json.dumps(r.audit) for r in caplog.records if r.name == "fhirtis.audit"
    )  # type: ignore[attr-defined]
    assert token not in logged and other not in logged


async def test_answers_with_patient_data_are_not_stored_or_sniffed(fhir_base: str) -> None:
    load(fhir_base, responder())
    async with app_client(fhir_base) as client:
        for r in (
            await client.post(OP, headers=CALLER),
            await client.post(SIGN, json=hook_call(fhir_base)),
            await client.get("/metadata"),
        ):
            assert r.status_code == 200
            assert r.headers["cache-control"] == "no-store"
            assert r.headers["x-content-type-options"] == "nosniff"


async def test_the_page_names_the_ehr_origins_that_may_frame_it(fhir_base: str) -> None:
    async with app_client(fhir_base) as client:
        csp = (await client.get("/app/")).headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
    ehr = "https://ehr.example.org"
    async with app_client(fhir_base, frame_ancestors=[ehr, "https://ehr2.test:8443"]) as client:
        csp = (await client.get("/app/")).headers["content-security-policy"]
        assert f"frame-ancestors {ehr} https://ehr2.test:8443" in csp
    with pytest.raises(ValueError, match="origins"):
        ServiceSettings(frame_ancestors=["https://ehr.test; script-src *"])


async def test_browser_clients_of_listed_origins_may_call_the_service(fhir_base: str) -> None:
    """CDS Hooks: "CDS Services ... will require CORS support" for browser-based CDS clients
    (https://cds-hooks.hl7.org/2.0/#cross-origin-resource-sharing), and a SMART app served from
    another origin calls $myositis-evaluate the same way. Off by default (the CapabilityStatement
    says cors false); ``cors_origins`` lists the origins answered, and only they."""
    ehr, rogue = "https://ehr.example.org", "https://rogue.example.net"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with app_client(fhir_base) as client:
        r = await client.options(SIGN, headers={"Origin": ehr, **preflight})
        assert "access-control-allow-origin" not in r.headers
        r = await client.get("/cds-services", headers={"Origin": ehr})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        assert (await client.get("/metadata")).json()["rest"][0]["security"]["cors"] is False
    load(fhir_base, responder())
    async with app_client(fhir_base, cors_origins=[ehr]) as client:
        r = await client.options(SIGN, headers={"Origin": ehr, **preflight})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == ehr
        assert "POST" in r.headers["access-control-allow-methods"]
        allowed = r.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        r = await client.options(SIGN, headers={"Origin": rogue, **preflight})
        assert r.headers.get("access-control-allow-origin") != rogue
        for r in (
            await client.get("/cds-services", headers={"Origin": ehr}),
            await client.post(OP, headers={"Origin": ehr, **CALLER}),
            await client.post(OP, headers={"Origin": ehr}),  # refused (no token): still readable
        ):
            assert r.headers["access-control-allow-origin"] == ehr, r.status_code
            assert r.headers.get("access-control-allow-credentials") is None  # bearer, no cookies
        assert (await client.post(OP, headers={"Origin": ehr})).status_code == 401
        r = await client.get("/cds-services", headers={"Origin": rogue})
        assert "access-control-allow-origin" not in r.headers
        assert (await client.get("/metadata")).json()["rest"][0]["security"]["cors"] is True
    for bad in ("*", "https://ehr.test/path", "null"):
        with pytest.raises(ValueError, match="origins"):
            ServiceSettings(cors_origins=[bad])


async def test_docs_are_served_offline_and_can_be_disabled(fhir_base: str) -> None:
    async with app_client(fhir_base) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "cdn" not in page.text.lower()
        scripts = [s for s in page.text.split('"') if s.endswith((".js", ".css"))]
        assert scripts and all(s.startswith("/") for s in scripts), scripts
        for asset in scripts:
            assert (await client.get(asset)).status_code == 200, asset
        assert (await client.get("/openapi.json")).status_code == 200
    async with app_client(fhir_base, docs_enabled=False) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404


def test_fhirtis_serve_logs_json_lines_with_an_audit_line(fhir_base: str) -> None:
    """The real thing: ``fhirtis serve`` (uvicorn on a loopback port) and its stderr."""
    load(fhir_base, responder())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # WEB_CONCURRENCY (set by many platforms) must not stop it: fhirtis serve is one process
    env = {**os.environ, "FHIRTIS_FHIR__BASE_URL": fhir_base, "WEB_CONCURRENCY": "2"}
    env.pop("FHIRTIS_SETTINGS_FILE", None)
    command = [sys.executable, "-m", "fhirtis", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{root}/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "serve did not start"
            time.sleep(0.2)
        r = httpx.post(f"{root}{OP}", headers=CALLER, timeout=60)
        assert r.status_code == 200, r.text
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    audits = [r["audit"] for r in records if r["logger"] == "fhirtis.audit"]
    fingerprint = hashlib.sha256(b"caller-token").hexdigest()[:16]
    assert audits == [
        {
            "action": "evaluate",
            "patient": "p1",
            "who": {"verified": False, "token_sha256": fingerprint},
            "status": 200,
        }
    ]
    assert "caller-token" not in stderr
