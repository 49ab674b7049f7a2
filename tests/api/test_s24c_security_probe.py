"""Findings of a security probe of the HTTP service (hospital security review / penetration
test), each test-first. The app runs in-process (httpx's ASGI transport) with its lifespan.

OWASP API Security Top 10 2023, API4 "Unrestricted Resource Consumption"
(https://owasp.org/API-Security/editions/2023/en/0xa4-unrestricted-resource-consumption/), and
Prometheus "Instrumentation" / "Naming" best practice: "do not use labels to store dimensions
with high cardinality (many different label values), such as user IDs ... or other unbounded sets
of values" (https://prometheus.io/docs/practices/naming/#labels).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest

from fhirtis.api.access import missing_scopes
from fhirtis.api.app import create_app
from fhirtis.io import FhirClientConfig
from fhirtis.settings import ServiceSettings, Settings
from tests.api.app_setup import serving
from tests.api.test_evaluate_api import AUTH, KEY, OP, SCOPES, service, token
from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer, start_fhir_test_server

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}


def _method_labels(metrics: str) -> set[str]:
    found = set()
    for line in metrics.splitlines():
        if line.startswith("fhirtis_http_requests_total{"):
            labels = line[line.index("{") + 1 : line.index("}")]
            for part in labels.split('",'):
                name, _, value = part.partition('="')
                if name == "method":
                    found.add(value.rstrip('"'))
    return found


async def test_a_caller_cannot_grow_the_metrics_with_made_up_http_methods() -> None:
    """HTTP allows any token as a method (RFC 9110 §9.1) and uvicorn passes it on; the request
    counter's ``method`` label took it verbatim, so each made-up method (``X1``, ``X2``, ...) —
    sent by anyone, no token needed — added a time series kept for the life of the process
    (unbounded memory, and a /metrics answer that grows with every request). A method that is
    not a standard one is counted as ``other``."""
    async with service("http://127.0.0.1:9/fhir") as client:
        for i in range(40):
            r = await client.request(f"PROBE{i}", "/livez")
            assert r.status_code == 405
        assert (await client.get("/livez")).status_code == 200
        text = (await client.get("/metrics")).text
    methods = _method_labels(text)
    assert "GET" in methods
    assert methods <= HTTP_METHODS | {"other"}, sorted(methods)
    assert 'fhirtis_http_requests_total{method="other",route="/livez",status="405"} 40.0' in text


# -- SMART v2 scopes: writing back deletes, so it needs "d" -------------------------------------

WRITE = {"resourceType": "Parameters", "parameter": [{"name": "write", "valueBoolean": True}]}


@asynccontextmanager
async def validating_offline() -> AsyncIterator[httpx.AsyncClient]:
    """Validate mode with no FHIR server: a request refused for its token reads nothing."""
    jwks = json.dumps({"keys": [KEY.as_dict(private=False)]})
    async with service(
        "http://127.0.0.1:9/fhir",
        auth_mode="validate",
        issuer="https://auth.test",
        audience="https://fhirtis.test",
        jwks=jwks,
    ) as client:
        yield client


async def test_a_v2_token_that_may_not_delete_cannot_make_fhirtis_delete() -> None:
    """SMART App Launch 2.0 §Scopes (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-
    context.html): ``c`` create, ``r`` read, ``u`` update, ``d`` delete, ``s`` search; a v1
    ``.write`` is ``cud``. Writing back, fhirtis DELETEs: an earlier AdverseEvent it withdraws
    (no entered-in-error status) and the extra copies of a concurrent create (Observation, Flag,
    DetectedIssue, AdverseEvent). In validate mode fhirtis writes with its own backend
    credentials, so a caller whose token may only create and update (``patient/*.cu``) had it
    delete for them (a confused deputy). Such a token is refused (403, naming the types)."""
    create_update = token(scope=SCOPES + " patient/*.cu")
    async with validating_offline() as client:
        r = await client.post(OP, headers={"Authorization": f"Bearer {create_update}"}, json=WRITE)
    assert r.status_code == 403, r.text
    assert "insufficient_scope" in r.headers["www-authenticate"]
    for rtype in ("AdverseEvent", "Observation", "Flag", "DetectedIssue"):
        assert f"{rtype}.write" in r.text
    assert "Provenance" not in r.text  # created only: c and u are enough, as before


@pytest.mark.parametrize(
    "scopes",
    [
        "patient/*.cruds",
        "patient/*.write patient/*.rs",
        "patient/*.cud patient/*.rs",
        "patient/*.*",
        "user/*.cruds",
        "patient/*.r patient/*.s patient/*.c patient/*.u patient/*.d",  # together, as one
    ],
)
def test_write_scopes_that_cover_delete_are_taken(scopes: str) -> None:
    assert missing_scopes(scopes.split(), write=True) == []


@pytest.mark.parametrize("scopes", ["patient/*.cru patient/*.s", "patient/*.rs patient/*.cu"])
def test_write_scopes_without_delete_are_not(scopes: str) -> None:
    lacking = missing_scopes(scopes.split(), write=True)
    assert sorted(lacking) == sorted(
        f"{t}.write" for t in ("Observation", "Flag", "DetectedIssue", "AdverseEvent")
    )


def test_a_granular_v2_scope_does_not_grant_the_whole_type() -> None:
    """SMART 2.0 granular scopes (``patient/Observation.rs?category=laboratory``) grant part of
    a type; fhirtis reads every Observation it needs, so such a token is refused for it (403)
    rather than given a result from part of the record."""
    scopes = [s for s in SCOPES.split() if not s.startswith("patient/Observation.")]
    assert missing_scopes([*scopes, "patient/Observation.rs?category=laboratory"], write=False) == [
        "Observation.read"
    ]


# -- pass-through mode never writes to a separate write server ------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirTestServer]:
    """A second test server: a registry's own store (``FHIRTIS_FHIR__WRITE_BASE_URL``)."""
    server = start_fhir_test_server(tmp_path_factory.mktemp("s24c_store"))
    try:
        yield server
    finally:
        server.close()


async def test_a_pass_through_token_cannot_write_to_the_separate_write_server(
    fhir_base: str, store: FhirTestServer
) -> None:
    """Pass-through mode does not read the caller's token: the EHR's FHIR server, receiving it,
    decides. With ``FHIRTIS_FHIR__WRITE_BASE_URL`` the writes go to another server with the
    service's own credentials (the caller's token must not leave the EHR's origin), so nobody
    decided whether this caller may write: a token that may only read the EHR (a patient's
    ``patient/*.read``) had fhirtis create, update and delete in the registry's store. Such a
    request is refused (403) before anything is read or written; validate mode (which checks the
    token's write scopes) writes there as before."""
    store.reset()
    store.reset_stats()
    load(fhir_base, responder())
    settings = Settings(
        fhir=FhirClientConfig(
            base_url=fhir_base,
            write_base_url=store.base_url,
            retry_max_attempts=2,
            retry_budget_seconds=2,
            read_timeout_seconds=5,
        ),
        service=ServiceSettings(),
    )
    async with serving(create_app(settings), base_url="http://t") as client:
        r = await client.post(OP, headers=AUTH, json=WRITE)
        read_only = await client.post(OP, headers=AUTH)
    assert r.status_code == 403, r.status_code
    assert "insufficient_scope" in r.headers["www-authenticate"]
    assert "validate" in r.json()["issue"][0]["diagnostics"]
    assert store.stats()["resources"] == {} or not any(store.stats()["resources"].values())
    assert read_only.status_code == 200  # evaluating without write is untouched
