"""Where and whether the derived resources are written: ``FHIRTIS_FHIR__WRITE_BASE_URL`` (read
from one server, write to another), and a write refused permanently while the computation
succeeded (the result is still returned, CLI and HTTP, with the write failure as an error issue
that is never ``transient``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.fhir.derive import DERIVED_TYPES
from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
WRITTEN = (*DERIVED_TYPES, "Provenance")


def _counts(server: FhirTestServer) -> dict[str, int]:
    resources: dict[str, int] = server.stats()["resources"]
    return {t: resources.get(t, 0) for t in WRITTEN}


def _cli_run(*args: str) -> tuple[int, Json]:
    result = CliRunner().invoke(app, ["run", "--patient", "p1", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


# -- FHIRTIS_FHIR__WRITE_BASE_URL ---------------------------------------------------------------


@pytest.mark.parametrize("write_profile", ["full", "no-transaction"])
def test_reads_from_one_server_writes_to_another(
    fhir_server: FhirTestServer,
    fhir_base: str,
    registry_server: FhirTestServer,
    monkeypatch: pytest.MonkeyPatch,
    write_profile: str,
) -> None:
    registry_server.reset()
    registry_server.set_profile(write_profile)
    load(fhir_base, responder(dvt_after_cycle=2))
    ehr_before = fhir_server.stats()["resources"]
    fhir_server.reset_stats()
    monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", fhir_base)
    monkeypatch.setenv("FHIRTIS_FHIR__WRITE_BASE_URL", registry_server.base_url)

    code, out = _cli_run("--write")
    run = out["runs"][0]
    assert code == 0 and run["status"] == "written", run.get("error")
    assert "evaluation" in run
    # Nothing was written to the server read from (not even attempted) ...
    assert fhir_server.stats()["writes"] == 0
    assert fhir_server.stats()["resources"] == ehr_before
    # ... and the registry holds every planned derived resource and one Provenance.
    stored = _counts(registry_server)
    planned: dict[str, int] = {}
    for item in run["plan"]:
        planned[item["resourceType"]] = planned.get(item["resourceType"], 0) + 1
    assert stored == {t: planned.get(t, 0) for t in DERIVED_TYPES} | {"Provenance": 1}
    assert registry_server.stats()["resources"].get("Patient", 0) == 0  # only derived output

    # Idempotent: the re-run finds its earlier output on the registry and commits nothing.
    fhir_server.reset_stats()
    registry_server.reset_stats()
    code, out = _cli_run("--write")
    assert code == 0 and out["runs"][0]["status"] == "unchanged", out["runs"][0].get("error")
    assert registry_server.stats()["committed_writes"] == 0
    assert fhir_server.stats()["writes"] == 0
    assert _counts(registry_server) == stored


def test_capabilities_command_names_the_write_server(
    fhir_base: str, registry_server: FhirTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry_server.reset()
    registry_server.set_profile("read-only-for-derived-types")
    monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", fhir_base)
    monkeypatch.setenv("FHIRTIS_FHIR__WRITE_BASE_URL", registry_server.base_url)
    result = CliRunner().invoke(app, ["capabilities", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["write_server"] == registry_server.base_url
    assert record["read"]["mode"] == "batch"  # the EHR (full profile) reads in one batch
    assert record["write"]["not_written"]["Flag"].startswith("the server does not")


# -- only the write failed ----------------------------------------------------------------------

REFUSALS = {
    # a business rule of the server rejects the transaction: permanent, "processing"
    "422-business-rule": (422, "business-rule", "processing"),
    # the client may read but not write (missing write scope): permanent
    "403-forbidden": (403, "forbidden", "exception"),
}


def _refusing_transactions(monkeypatch: pytest.MonkeyPatch, status: int, code: str) -> list[str]:
    """Every ``transaction`` Bundle fhirtis sends is answered ``status`` with an
    OperationOutcome (``code``) instead of reaching the server; everything else goes through.
    Returns a list that records each refused request."""
    refused: list[str] = []
    real = httpx.AsyncHTTPTransport.handle_async_request

    async def handle(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and b'"transaction"' in request.content:
            refused.append(str(request.url))
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": code}],
            }
            return httpx.Response(status, json=outcome, request=request)
        return await real(self, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", handle)
    return refused


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_cli_run_returns_the_result_when_only_the_write_failed(
    fhir_server: FhirTestServer, fhir_base: str, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    status, outcome_code, expected = REFUSALS[case]
    load(fhir_base, responder(dvt_after_cycle=2))
    refused = _refusing_transactions(monkeypatch, status, outcome_code)
    before = _counts(fhir_server)
    code, out = _cli_run("--server", fhir_base, "--write")
    run = out["runs"][0]
    assert refused, "no transaction was sent"
    assert code == 1  # incomplete: reported
    assert run["status"] == "failed"
    assert str(status) in run["error"]
    assert run.get("error_code", "exception") == expected
    # The computed result is there all the same.
    assert run["evaluation"]["assessments"]
    assert {i["action"] for i in run["plan"]} == {"create"}
    assert _counts(fhir_server) == before


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_operation_returns_the_result_when_only_the_write_failed(
    fhir_server: FhirTestServer, fhir_base: str, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    from tests.api.test_evaluate_api import AUTH, OP, service  # noqa: PLC0415

    status, outcome_code, expected = REFUSALS[case]
    load(fhir_base, responder(dvt_after_cycle=2))
    refused = _refusing_transactions(monkeypatch, status, outcome_code)

    async def go() -> httpx.Response:
        async with service(fhir_base) as api:
            body = {
                "resourceType": "Parameters",
                "parameter": [{"name": "write", "valueBoolean": True}],
            }
            return await api.post(OP, headers=AUTH, json=body)

    r = asyncio.run(go())
    assert refused, "no transaction was sent"
    assert r.status_code == 200, r.text  # the computation succeeded: its result is the answer
    entries = r.json()["entry"]
    issues = entries[0]["resource"]["issue"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert len(errors) == 1
    assert errors[0]["code"] == expected != "transient"
    assert "not written" in errors[0]["diagnostics"] and str(status) in errors[0]["diagnostics"]
    assert issues[0]["diagnostics"].startswith("write failed: the result was computed")
    derived = [e["resource"] for e in entries[1:]]
    assert any(d["resourceType"] == "Observation" for d in derived)
    assert all(i["code"] != "transient" for i in issues)


def test_cohort_writes_to_the_write_server(
    fhir_server: FhirTestServer,
    fhir_base: str,
    registry_server: FhirTestServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The registry path too: ``fhirtis cohort --patients`` reads the EHR, writes the registry."""
    registry_server.reset()
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.reset_stats()
    monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", fhir_base)
    monkeypatch.setenv("FHIRTIS_FHIR__WRITE_BASE_URL", registry_server.base_url)
    args = ["cohort", "--patients", "p1", "--write", "--no-progress"]
    first = CliRunner().invoke(app, [*args, "--ledger", str(tmp_path / "a.sqlite")])
    assert first.exit_code == 0, first.output
    assert "written 1" in first.stdout
    assert fhir_server.stats()["writes"] == 0
    assert _counts(registry_server)["Provenance"] == 1
    registry_server.reset_stats()
    again = CliRunner().invoke(app, [*args, "--ledger", str(tmp_path / "b.sqlite")])
    assert "unchanged 1" in again.stdout
    assert registry_server.stats()["committed_writes"] == 0
    assert fhir_server.stats()["writes"] == 0
