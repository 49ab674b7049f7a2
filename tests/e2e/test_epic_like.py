"""fhirtis against the test server's ``epic-like`` profile (tests/fhir_server/README.md, "Server
profiles"): an Epic-shaped patient (ids like Epic's, "eZO66HeGXB6VCJemL-ciSKA3") is read,
evaluated and written back with no refused request (Observations are searched by patient and
code, as Epic requires; the derived ones are found again by patient and code, since Epic offers
no ``identifier`` search on Observation), empty searchsets carry Epic's warning OperationOutcome
entry, and an unchanged re-run writes nothing."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.fhir.derive import DERIVED_TYPES
from fhirtis.io._capabilities import CACHE
from tests.e2e.test_run import load, search
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
EPIC_PATIENT = "eZO66HeGXB6VCJemL-ciSKA3"  # the Patient id of Epic's published R4 examples
WRITTEN = (*DERIVED_TYPES, "Provenance")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"


def _epic_id(old: str) -> str:
    digest = hashlib.sha256(old.encode()).digest()
    return "e" + "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest)[:43]


def _rename(value: Any, refs: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: (refs.get(v, v) if k == "reference" and isinstance(v, str) else _rename(v, refs))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rename(v, refs) for v in value]
    return value


def epic_shaped(bundle: Json, patient_id: str = EPIC_PATIENT) -> Json:
    """The bundle with every id (and every reference to it) replaced by an Epic-shaped id."""
    ids: dict[tuple[str, str], str] = {}
    for e in bundle["entry"]:
        r = e["resource"]
        new = patient_id if r["resourceType"] == "Patient" else _epic_id(r["id"])
        ids[(r["resourceType"], r["id"])] = new
    refs = {f"{t}/{old}": f"{t}/{new}" for (t, old), new in ids.items()}
    entries = []
    for e in bundle["entry"]:
        r = _rename(e["resource"], refs)
        r["id"] = ids[(r["resourceType"], e["resource"]["id"])]
        entries.append({**e, "resource": r})
    return {**bundle, "entry": entries}


def _counts(server: FhirTestServer) -> dict[str, int]:
    resources: dict[str, int] = server.stats()["resources"]
    return {t: resources.get(t, 0) for t in WRITTEN}


def _run(base: str, patient: str, *extra: str) -> tuple[int, Json]:
    result = CliRunner().invoke(
        app, ["run", "--patient", patient, "--server", base, "--json", *extra]
    )
    return result.exit_code, json.loads(result.stdout)


def _refused(stats: Json) -> dict[str, int]:
    return {s: n for s, n in stats["by_status"].items() if int(s) >= 400}


@pytest.fixture
def full_reference(fhir_server: FhirTestServer, fhir_base: str) -> tuple[Json, dict[str, int]]:
    """The run record and what ``fhirtis run --write`` stores for the Epic-shaped patient on
    the full profile (then the store is emptied)."""
    load(fhir_base, epic_shaped(responder(dvt_after_cycle=2)))
    before = _counts(fhir_server)
    code, out = _run(fhir_base, EPIC_PATIENT, "--write")
    assert code == 0, out
    written = {t: _counts(fhir_server)[t] - before[t] for t in WRITTEN}
    fhir_server.reset()
    CACHE.forget()  # the next run reads the epic-like statement, not the cached full one
    return out["runs"][0], written


def _clinical(run: Json) -> Any:
    kept = {k: run[k] for k in ("evaluation", "plan", "summary")}
    assert kept["evaluation"], run  # there is a result to compare
    return kept


@pytest.mark.parametrize("statement", ["truthful", "missing"])
def test_epic_shaped_patient_read_written_then_nothing(
    fhir_server: FhirTestServer,
    fhir_base: str,
    full_reference: tuple[Json, dict[str, int]],
    statement: str,
) -> None:
    reference, full_written = full_reference
    load(fhir_base, epic_shaped(responder(dvt_after_cycle=2)))  # loaded on the full profile
    fhir_server.set_profile("epic-like", statement)
    fhir_server.reset_stats()
    before = _counts(fhir_server)
    code, out = _run(fhir_base, EPIC_PATIENT, "--write")
    run = out["runs"][0]
    assert run["status"] == "written", run.get("error")
    assert code == 0
    assert _clinical(run) == _clinical(reference)
    assert {t: _counts(fhir_server)[t] - before[t] for t in WRITTEN} == full_written
    assert not run.get("not_written")
    stats = fhir_server.stats()
    if statement == "truthful":
        assert _refused(stats) == {}, "a request shaped against the statement was refused"
    else:  # /metadata 404; the Observation identifier search refused (not-supported), learnt
        assert set(_refused(stats)) <= {"400", "404"}
    derived = search(fhir_base, "Flag", patient=f"Patient/{EPIC_PATIENT}")
    assert derived and all(re.fullmatch(r"e[A-Za-z0-9-]{43}", r["id"]) for r in derived)
    fhir_server.reset_stats()
    code, out = _run(fhir_base, EPIC_PATIENT, "--write")
    assert out["runs"][0]["status"] == "unchanged", out["runs"][0]
    assert code == 0
    assert fhir_server.stats()["committed_writes"] == 0


def test_cohort_of_an_epic_shaped_patient_then_nothing(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    """``fhirtis cohort --patients <Epic id> --write`` on epic-like: written with no refused
    request; a second cohort (a fresh ledger: read and planned again) commits nothing."""
    load(fhir_base, epic_shaped(responder(dvt_after_cycle=2)))
    fhir_server.set_profile("epic-like")
    fhir_server.reset_stats()
    before = _counts(fhir_server)

    def cohort(ledger: str) -> Any:
        return CliRunner().invoke(
            app,
            [
                "cohort", "--patients", EPIC_PATIENT, "--server", fhir_base, "--write",
                "--ledger", str(tmp_path / ledger), "--work-dir", str(tmp_path / "work"),
            ],
        )  # fmt: skip

    first = cohort("first.sqlite")
    assert first.exit_code == 0, first.output
    written = {t: _counts(fhir_server)[t] - before[t] for t in WRITTEN}
    assert written["Provenance"] == 1 and written["Observation"] > 0, written
    assert _refused(fhir_server.stats()) == {}
    fhir_server.reset_stats()
    again = cohort("second.sqlite")
    assert again.exit_code == 0, again.output
    assert fhir_server.stats()["committed_writes"] == 0
