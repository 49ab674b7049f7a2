"""A systematic fault sweep of ``run --write``: every request of a clean run, failing in each way.

For request k of the clean run's sequence, and each fault (500 with an OperationOutcome, 503 with
``Retry-After``, a connection refused, a read timeout before the server saw the request, and for
writes the server committing but the answer being lost), a run from the same start must not crash,
must not claim success for work it did not do, and a clean re-run must leave the server exactly
as the clean run did: one of each derived resource, every current version named by a Provenance,
the patient's own data untouched.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhirtis.fhir.codes import IDENTIFIER_SYSTEM
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.io._capabilities import CACHE
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.registry import cohort
from fhirtis.registry.cohort import CohortError
from fhirtis.registry.ledger import Ledger
from fhirtis.registry.options import CohortOptions
from fhirtis.settings import Settings
from tests.e2e.test_run import load, search
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "bundles"
DERIVED = ("Observation", "Flag", "DetectedIssue", "AdverseEvent")
KINDS = tuple(os.environ.get("S33FAULT_KINDS", "500,503,connect,timeout,down,lost").split(","))
# The whole sweep (every example and write mode: about 12 minutes on 2 cores) with
# S33FAULT_WIDE=1; by default one example against transactions (under a minute).
WIDE = os.environ.get("S33FAULT_WIDE") == "1"
PROFILES = ["full", "no-transaction", "oracle-like"] if WIDE else ["full"]
EXAMPLE_NAMES = ["dvt-after-cycle", "rate-above-max"] if WIDE else ["dvt-after-cycle"]
COHORT_PROFILE = os.environ.get("S33FAULT_COHORT_PROFILE", "full")
DONE = ("written", "unchanged")
OO = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}


def _fault(kind: str, request: httpx.Request) -> httpx.Response:
    if kind == "500":
        return httpx.Response(500, json=OO, request=request)
    if kind == "503":
        return httpx.Response(503, json=OO, headers={"Retry-After": "0"}, request=request)
    if kind == "connect":
        raise httpx.ConnectError("connection refused", request=request)
    if kind == "timeout":
        raise httpx.ReadTimeout("timed out", request=request)
    raise AssertionError(kind)


class Sweep(httpx.AsyncBaseTransport):
    """Forwards to the server; request number ``k`` (1-based) fails as ``kind`` once."""

    def __init__(self, k: int = 0, kind: str = "") -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.k = k
        self.kind = kind
        self.n = 0
        self.log: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.n += 1
        self.log.append(f"{request.method} {request.url.path}?{request.url.query.decode()[:60]}")
        if self.kind == "down" and self.n >= self.k:  # the server is gone from here on
            raise httpx.ConnectError("connection refused", request=request)
        if self.n == self.k:
            if self.kind == "lost":
                response = await self.inner.handle_async_request(request)
                await response.aread()
                raise httpx.ReadTimeout("answer lost after the server committed", request=request)
            return _fault(self.kind, request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def run_with(base: str, patient: str, transport: httpx.AsyncBaseTransport) -> PatientRun:
    async def go() -> PatientRun:
        CACHE.forget()
        config = FhirClientConfig(base_url=base, retry_budget_seconds=5)
        async with (
            httpx.AsyncClient(transport=transport) as http,
            FhirClient(config, http=http) as client,
        ):
            return await run_patient(client, patient, Settings(), write=True)

    return asyncio.run(go())


def _strip(resource: Json) -> Json:
    out = {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}
    return out


def _identifiers(resource: Json) -> list[Json]:
    """``identifier`` as a list (AdverseEvent's is a single Identifier in R4)."""
    value = resource.get("identifier", [])
    items = value if isinstance(value, list) else [value]
    return [i for i in items if isinstance(i, dict)]


def state(base: str) -> tuple[dict[str, Any], list[str]]:
    """(what the server holds, what is wrong with it)."""
    problems: list[str] = []
    derived: dict[str, Json] = {}
    current: dict[str, str] = {}
    own: dict[str, str] = {}
    for rtype in (*DERIVED, "Patient", "MedicationAdministration", "Condition", "Medication"):
        for r in search(base, rtype):
            ident = next(
                (i["value"] for i in _identifiers(r) if i.get("system") == IDENTIFIER_SYSTEM),
                None,
            )
            ref = f"{rtype}/{r['id']}"
            if ident is None:
                own[ref] = _ids_free(_strip(r))
                continue
            if r.get("status") == "entered-in-error":
                continue
            key = f"{rtype}|{ident}"
            if key in derived:
                problems.append(f"duplicate {key}")
            derived[key] = _strip(r)
            current[ref] = r.get("meta", {}).get("versionId", "")
    named: set[str] = set()
    for prov in search(base, "Provenance"):
        for t in prov.get("target", []):
            named.add(t.get("reference", ""))
    for ref, vid in current.items():
        if f"{ref}/_history/{vid}" not in named and ref not in named:
            problems.append(f"unnamed {ref}/_history/{vid}")
    return {"derived": derived, "own": own}, problems


def _ids_free(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_fault_sweep_run_write(
    example: str, profile: str, fhir_base: str, fhir_server: FhirTestServer
) -> None:
    bundle = json.loads((EXAMPLES / f"{example}.json").read_text())
    patient = next(
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )

    def fresh() -> None:
        fhir_server.reset()
        load(fhir_base, bundle)
        fhir_server.set_profile(profile)

    fresh()
    clean_t = Sweep()
    clean = run_with(fhir_base, patient, clean_t)
    assert clean.status is RunStatus.WRITTEN, clean.error
    clean_state, problems = state(fhir_base)
    assert problems == []
    n = clean_t.n
    findings: list[str] = []
    for k in range(1, n + 1):
        is_write = not clean_t.log[k - 1].startswith("GET")
        for kind in (k for k in KINDS if is_write or k != "lost"):
            fresh()
            label = f"{example} {profile} k={k}/{n} {clean_t.log[k - 1][:70]} {kind}"
            try:
                faulty = run_with(fhir_base, patient, Sweep(k, kind))
            except Exception as exc:  # a crash
                findings.append(f"{label}: crash {exc!r}")
                continue
            after_fault, problems = state(fhir_base)
            if faulty.status is RunStatus.WRITTEN and (
                _ids_free(after_fault["derived"]) != _ids_free(clean_state["derived"]) or problems
            ):
                findings.append(f"{label}: reported written but {problems or 'state differs'}")
            if faulty.status not in (RunStatus.WRITTEN, RunStatus.FAILED):
                findings.append(f"{label}: status {faulty.status}")
            again = run_with(fhir_base, patient, Sweep())
            final, problems = state(fhir_base)
            if again.status not in (RunStatus.WRITTEN, RunStatus.UNCHANGED):
                findings.append(f"{label}: re-run {again.status} {again.error}")
            if problems:
                findings.append(f"{label}: after re-run {problems}")
            if _ids_free(final["derived"]) != _ids_free(clean_state["derived"]):
                missing = set(clean_state["derived"]) ^ set(final["derived"])
                findings.append(f"{label}: after re-run derived differ {sorted(missing)[:3]}")
            if final["own"] != clean_state["own"]:
                findings.append(f"{label}: patient data changed")
            third = run_with(fhir_base, patient, Sweep())
            if third.status is not RunStatus.UNCHANGED:
                findings.append(f"{label}: third run {third.status} {third.written[:2]}")
    print(f"\n{example} {profile}: {n} requests swept", *clean_t.log, sep="\n  ")
    assert findings == [], "\n".join(findings)


def cohort_with(base: str, ids: list[str], ledger: Path, transport: Sweep) -> Any:
    opened: list[httpx.AsyncClient] = []

    def client(config: FhirClientConfig) -> FhirClient:
        opened.append(httpx.AsyncClient(transport=transport))
        return FhirClient(config, http=opened[-1])

    async def go() -> Any:
        CACHE.forget()
        options = CohortOptions(write=True, concurrency=1, ledger=ledger, progress=False)
        config = FhirClientConfig(base_url=base, retry_budget_seconds=5)
        original = cohort.FhirClient
        cohort.FhirClient = client  # type: ignore[misc,assignment]
        try:
            return await cohort.run_cohort(Settings(), options, config, ids=ids)
        finally:
            cohort.FhirClient = original  # type: ignore[misc]
            for http in opened:
                await http.aclose()

    return asyncio.run(go())


def test_fault_sweep_cohort_write(
    fhir_base: str, fhir_server: FhirTestServer, tmp_path: Path
) -> None:
    bundles = [
        json.loads((EXAMPLES / f"{n}.json").read_text())
        for n in ("dvt-after-cycle", "rate-above-max")
    ]
    ids = [
        next(e["resource"]["id"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient")
        for b in bundles
    ]

    def fresh() -> None:
        fhir_server.reset()
        for b in bundles:
            load(fhir_base, b)
        fhir_server.set_profile(COHORT_PROFILE)

    fresh()
    clean_t = Sweep()
    clean = cohort_with(fhir_base, ids, tmp_path / "clean.sqlite", clean_t)
    assert not clean.failed and clean.statuses.get("written") == 2, clean
    clean_state, problems = state(fhir_base)
    assert problems == []
    n = clean_t.n
    findings: list[str] = []
    for k in range(1, n + 1):
        is_write = not clean_t.log[k - 1].startswith("GET")
        for kind in (k for k in KINDS if is_write or k != "lost"):
            fresh()
            ledger = tmp_path / f"l-{k}-{kind}.sqlite"
            label = f"cohort k={k}/{n} {clean_t.log[k - 1][:70]} {kind}"
            try:
                faulty = cohort_with(fhir_base, ids, ledger, Sweep(k, kind))
            except CohortError:
                faulty = None
            except Exception as exc:
                findings.append(f"{label}: crash {exc!r}")
                continue
            after, problems = state(fhir_base)
            with Ledger(ledger) as book:
                done = {p: book.get(f"Patient/{p}") for p in ids}
            complete = _ids_free(after["derived"]) == _ids_free(clean_state["derived"])
            if faulty is not None and not faulty.failed and (not complete or problems):
                findings.append(f"{label}: no failure reported but {problems or 'state differs'}")
            all_done = all(e is not None and e.status in DONE for e in done.values())
            if all_done and (not complete or problems):
                findings.append(f"{label}: ledger says done but {problems or 'incomplete'}")
            if faulty is not None:
                for pid, _why in faulty.failed:
                    e = done.get(pid.removeprefix("Patient/"))
                    if e is not None and e.status in DONE:
                        findings.append(f"{label}: {pid} failed but recorded {e.status}")
            again = cohort_with(fhir_base, ids, ledger, Sweep())
            final, problems = state(fhir_base)
            if again.failed or problems:
                findings.append(f"{label}: re-run {again.failed} {problems}")
            if _ids_free(final["derived"]) != _ids_free(clean_state["derived"]):
                findings.append(f"{label}: re-run left derived resources differing")
            if final["own"] != clean_state["own"]:
                findings.append(f"{label}: patient data changed")
            with Ledger(ledger) as book:
                recorded = {p: book.get(f"Patient/{p}") for p in ids}
            if any(e is None or e.status not in DONE for e in recorded.values()):
                findings.append(f"{label}: ledger after re-run {recorded} (after fault {done})")
    print(f"\ncohort: {n} requests swept", *clean_t.log, sep="\n  ")
    assert findings == [], "\n".join(findings)
