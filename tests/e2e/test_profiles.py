"""fhirtis against every vendor profile of the test server: the same clinical result; only the
requests differ, and what a server cannot store is reported, not attempted."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.fhir.derive import DERIVED_TYPES
from fhirtis.io._capabilities import CACHE
from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
LACKS: dict[str, set[str]] = {
    "full": set(),
    "google-like": set(),
    "no-transaction": set(),
    "read-only-for-derived-types": {"Flag", "DetectedIssue", "AdverseEvent", "Provenance"},
    "oracle-like": {"Flag", "DetectedIssue", "AdverseEvent"},
    "epic-like": set(),
}
PROFILES = sorted(LACKS)
WRITTEN = (*DERIVED_TYPES, "Provenance")


def _counts(server: FhirTestServer) -> dict[str, int]:
    resources: dict[str, int] = server.stats()["resources"]
    return {t: resources.get(t, 0) for t in WRITTEN}


def _cli_run(base: str, *extra: str) -> tuple[int, Json]:
    result = CliRunner().invoke(app, ["run", "--patient", "p1", "--server", base, "--json", *extra])
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture(scope="module")
def full_written(fhir_server: FhirTestServer) -> dict[str, int]:
    """What `fhirtis run --write` stores on the full profile (the reference)."""
    fhir_server.reset()
    CACHE.forget()  # module scope: set up before the per-test autouse fixture forgets it
    load(fhir_server.base_url, responder(dvt_after_cycle=2))
    before = _counts(fhir_server)
    code, _ = _cli_run(fhir_server.base_url, "--write")
    assert code == 0
    after = _counts(fhir_server)
    return {t: after[t] - before[t] for t in WRITTEN}


def _written_on(
    server: FhirTestServer, full_written: dict[str, int], profile: str, statement: str = "truthful"
) -> Json:
    """``fhirtis run --write`` on ``profile``: written, exit 0, every type but those the profile
    lacks stored as on the full profile, and exactly the lacking ones reported not written."""
    load(server.base_url, responder(dvt_after_cycle=2))  # loaded on the full profile
    server.set_profile(profile, statement)
    before = _counts(server)
    code, out = _cli_run(server.base_url, "--write")
    run: Json = out["runs"][0]
    assert run["status"] == "written", run.get("error")
    assert code == 0
    written = {t: _counts(server)[t] - before[t] for t in WRITTEN}
    assert written == {t: (0 if t in LACKS[profile] else n) for t, n in full_written.items()}
    not_written = {n["resourceType"] for n in run.get("not_written", [])}
    assert not_written == {t for t in LACKS[profile] if full_written[t]}, run
    return run


@pytest.mark.parametrize("profile", PROFILES)
def test_run_write_then_rerun_commits_nothing(
    fhir_server: FhirTestServer, fhir_base: str, full_written: dict[str, int], profile: str
) -> None:
    run = _written_on(fhir_server, full_written, profile)
    for n in run.get("not_written", []):
        if n["resourceType"] in {"Flag", "DetectedIssue"}:
            assert n["reason"].startswith("the server does not")
    fhir_server.reset_stats()
    code, out = _cli_run(fhir_base, "--write")
    assert out["runs"][0]["status"] == "unchanged"
    assert code == 0
    assert fhir_server.stats()["committed_writes"] == 0


@pytest.mark.parametrize("profile", PROFILES)
def test_operation_with_write_per_profile(
    fhir_server: FhirTestServer, fhir_base: str, full_written: dict[str, int], profile: str
) -> None:
    from tests.api.test_evaluate_api import AUTH, OP, service  # noqa: PLC0415

    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)

    async def go() -> httpx.Response:
        async with service(fhir_base) as api:
            body = {
                "resourceType": "Parameters",
                "parameter": [{"name": "write", "valueBoolean": True}],
            }
            return await api.post(OP, headers=AUTH, json=body)

    before = _counts(fhir_server)
    r = asyncio.run(go())
    assert r.status_code == 200, r.text
    written = {t: _counts(fhir_server)[t] - before[t] for t in WRITTEN}
    assert written == {t: (0 if t in LACKS[profile] else n) for t, n in full_written.items()}
    issues = r.json()["entry"][0]["resource"]["issue"]
    reported = [i for i in issues if i["code"] == "not-supported"]
    for t in LACKS[profile] - {"Provenance"}:
        if full_written[t]:
            assert any(
                f"{t} " in i["diagnostics"] and "not written" in i["diagnostics"] for i in reported
            )


@pytest.mark.parametrize("statement", ["lie", "missing", "malformed"])
def test_a_bad_capability_statement_falls_back(
    fhir_server: FhirTestServer, fhir_base: str, full_written: dict[str, int], statement: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("no-transaction", statement)
    before = _counts(fhir_server)
    _, out = _cli_run(fhir_base, "--write")
    assert out["runs"][0]["status"] == "written", out["runs"][0].get("error")
    written = {t: _counts(fhir_server)[t] - before[t] for t in WRITTEN}
    assert written == full_written
    result = CliRunner().invoke(app, ["capabilities", "--server", fhir_base])
    assert result.exit_code == 0
    assert "read plan:" in result.stdout and "write plan:" in result.stdout


def test_capabilities_command_on_oracle_like(fhir_server: FhirTestServer, fhir_base: str) -> None:
    fhir_server.set_profile("oracle-like")
    result = CliRunner().invoke(app, ["capabilities", "--server", fhir_base, "--json"])
    assert result.exit_code == 0
    record = json.loads(result.stdout)
    assert record["read"]["mode"] == "get"
    ma = record["read"]["searches"]["MedicationAdministration"]
    assert ma == {"patient": "patient", "include": False, "count": 100, "also": None}
    assert record["read"]["searches"]["Observation"]["count"] == 100
    assert record["read"]["searches"]["AdverseEvent"] is None
    assert record["write"]["mode"] == "single"
    assert record["write"]["conditional_create"]["Observation"] is False
    assert record["write"]["not_written"]["Flag"] == "the server does not support Flag"


@pytest.mark.parametrize("profile", PROFILES)
def test_cohort_patients_write_per_profile(
    fhir_server: FhirTestServer,
    fhir_base: str,
    full_written: dict[str, int],
    profile: str,
    tmp_path: Any,
) -> None:
    """`fhirtis cohort --patients … --write` on every profile: what is stored equals the full
    profile's minus the types the profile lacks, and a second run (a fresh ledger, so every
    patient is read and planned again) commits nothing."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)
    before = _counts(fhir_server)

    def cohort(ledger: str) -> Any:
        return CliRunner().invoke(
            app,
            [
                "cohort", "--patients", "p1", "--server", fhir_base, "--write",
                "--ledger", str(tmp_path / ledger), "--work-dir", str(tmp_path / "work"),
            ],
        )  # fmt: skip

    first = cohort("first.sqlite")
    assert first.exit_code == 0, first.output
    written = {t: _counts(fhir_server)[t] - before[t] for t in WRITTEN}
    assert written == {t: (0 if t in LACKS[profile] else n) for t, n in full_written.items()}
    fhir_server.reset_stats()
    again = cohort("second.sqlite")
    assert again.exit_code == 0, again.output
    assert fhir_server.stats()["committed_writes"] == 0


async def test_two_writers_racing_without_conditional_create_leave_no_duplicate(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """oracle-like has no conditional create, so fhirtis searches by identifier, then creates.
    Two writers of the same patient at once race between that search and their POSTs; after
    both, every derived Observation is live once (oracle-like refuses delete, so the copies a
    race made are marked entered-in-error), and a later run changes nothing."""
    from fhirtis.io import FhirClient, FhirClientConfig  # noqa: PLC0415
    from fhirtis.pipeline.server import run_patient  # noqa: PLC0415
    from fhirtis.settings import Settings  # noqa: PLC0415
    from tests.e2e.test_run import search  # noqa: PLC0415

    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("oracle-like")

    async def writer() -> str:
        async with FhirClient(FhirClientConfig(base_url=fhir_base)) as client:
            run = await run_patient(client, "p1", Settings(), write=True)
            return run.status.value

    statuses = await asyncio.gather(writer(), writer())
    assert set(statuses) <= {"written", "unchanged"}, statuses
    observations = search(fhir_base, "Observation", subject="Patient/p1")
    mine = [
        o
        for o in observations
        if o.get("identifier") and "derived" in o["identifier"][0].get("system", "")
    ]
    live = [o["identifier"][0]["value"] for o in mine if o["status"] != "entered-in-error"]
    assert live and len(live) == len(set(live)), "a derived Observation is duplicated"
    # copies the race made (if it made any: oracle-like refuses delete) are marked void
    retired = [o for o in mine if o["status"] == "entered-in-error"]
    assert len(mine) == len(live) + len(retired)
    fhir_server.reset_stats()
    async with FhirClient(FhirClientConfig(base_url=fhir_base)) as client:
        again = await run_patient(client, "p1", Settings(), write=True)
    assert again.status.value == "unchanged"
    assert fhir_server.stats()["committed_writes"] == 0


@pytest.mark.parametrize("statement", ["missing", "lie"])
def test_refused_derived_types_are_learnt_and_reported_without_a_statement(
    fhir_server: FhirTestServer, fhir_base: str, full_written: dict[str, int], statement: str
) -> None:
    """A registry store that takes Observations only and says nothing true about it: each
    refusal teaches the run, the rest is written, and every type refused (Provenance too) is
    reported "not written"."""
    _written_on(fhir_server, full_written, "read-only-for-derived-types", statement)
