"""A create answered without saying where (a 201 with no Location and no body, a batch-response
entry without ``response.location``) is looked up by its business identifier; the Provenance
names what was found, never a ``urn:uuid:`` placeholder, and a create that cannot be found is
reported as not confirmed (and named by nobody)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from fhirtis.fhir.plan import Action
from fhirtis.io import Refused
from fhirtis.pipeline.server import PatientRun, RunStatus
from tests.e2e.test_run import load, search
from tests.e2e.test_write_outcome import (
    _Hooked,
    _is_derived_create,
    _said,
    _stored_identifiers,
)
from tests.e2e.test_write_withdraw import DERIVED, run_once
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
NO_CONDITIONAL_CREATE = tuple(Refused("conditional-create", t) for t in DERIVED)


def _run(
    base: str, transport: httpx.AsyncBaseTransport, learn: tuple[Refused, ...] = ()
) -> PatientRun:
    return run_once(base, transport=transport, learn=learn, retry_budget_seconds=5)


def _named(base: str) -> list[str]:
    return [t["reference"] for p in search(base, "Provenance") for t in p["target"]]


def _silent_201(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
    if _is_derived_create(request) and response.status_code == 201:
        return httpx.Response(201, headers={"Content-Type": "application/fhir+json"})
    return None


def _batch_without_locations(
    request: httpx.Request, response: httpx.Response
) -> httpx.Response | None:
    if request.method == "POST" and request.url.path.rstrip("/").endswith("/fhir"):
        sent = orjson.loads(request.content)
        if sent.get("type") in ("batch", "transaction") and any(
            e["request"]["method"] == "POST" for e in sent["entry"]
        ):
            body = response.json()
            for entry in body.get("entry", []):
                entry.get("response", {}).pop("location", None)
                entry.pop("resource", None)
                entry.pop("fullUrl", None)
            return httpx.Response(response.status_code, json=body)
    return None


CASES = {
    "singles-no-transaction": ("no-transaction", _silent_201, ()),
    "singles-oracle-like": ("oracle-like", _silent_201, ()),
    "batch": ("full", _batch_without_locations, NO_CONDITIONAL_CREATE),
    "transaction": ("full", _batch_without_locations, ()),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_create_answered_without_location_is_named_by_what_it_made(
    fhir_server: FhirTestServer, fhir_base: str, case: str
) -> None:
    profile, after, learn = CASES[case]
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)
    run = _run(fhir_base, _Hooked(after=after), learn)
    assert run.status is RunStatus.WRITTEN, run.error
    stored = _stored_identifiers(fhir_server, profile)
    named = _named(fhir_base)
    assert not [t for t in named if t.startswith("urn:")]
    assert set(stored.values()) <= set(named)
    assert {w.reference for w in run.written} == set(stored.values())
    assert not run.unconfirmed


def test_a_create_that_cannot_be_found_is_reported_unconfirmed(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """The third create is answered 201 with nothing, but nothing was stored (a gateway that
    lost it): the run cannot find it, names no placeholder, and says it is not confirmed."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("no-transaction")
    creates = {"n": 0}

    def swallow_third(request: httpx.Request) -> httpx.Response | None:
        if _is_derived_create(request):
            creates["n"] += 1
            if creates["n"] == 3:
                return httpx.Response(201, headers={"Content-Type": "application/fhir+json"})
        return None

    run = _run(fhir_base, _Hooked(before=swallow_third))
    stored = _stored_identifiers(fhir_server, "no-transaction")
    named = _named(fhir_base)
    assert not [t for t in named if t.startswith("urn:")]
    assert set(named) == set(stored.values())
    (missing,) = [(t, i, a) for t, i, a in run.unconfirmed]
    assert missing[2] is Action.CREATE and missing[1] not in stored
    assert _said(run, "not created (not confirmed by the server)") == {missing[1]}
