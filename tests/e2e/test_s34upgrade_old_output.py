"""Upgrading fhirtis over the output of the version before (clinical spec §7: "changed inputs
update in place"; README: earlier output the new evaluation no longer produces is withdrawn).

``tests/data/s34upgrade/old-output.json`` is what fhirtis at commit 1803df6 wrote for the patient
built by :func:`_patient` (recorded once against the test server; ids as it stored them). Since
then the tee-risk Flag names the factors not assessable (``tee-risk-unassessed``), a cycle-dose
note says when weights recorded at the same time disagree, and a rate whose unit text and UCUM
code disagree ("mL/kg/h" coded "mL/h") is unknown rather than read as 300 mL/h: the rate
DetectedIssue the old version derived from it is no longer derived. The upgrade must update the
changed resources in place (same ids, versions bumped, one per business identifier), withdraw
only that DetectedIssue, name exactly what changed in one Provenance, and then rest; a cohort
ledger written by the old version must not skip the patient (the version is in its key)."""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.fhir.derive import DERIVED_TYPES
from fhirtis.registry.run_key import run_key
from fhirtis.settings import Settings
from tests.e2e.test_run import load, search
from tests.fhir.patients import responder
from tests.fhir.test_conformance import _errors, _run_validator
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
runner = CliRunner()
OLD_OUTPUT = Path(__file__).parents[1] / "data" / "s34upgrade" / "old-output.json"
DERIVED_SYSTEM = "http://fhirtis.org/fhir/identifier/derived"
UNASSESSED = "http://fhirtis.org/fhir/StructureDefinition/tee-risk-unassessed"
WEIGHT_CONFLICT = "body weights recorded at the same time disagree"
PATIENT = "p1"


def _patient() -> Json:
    """The responder of tests/fhir/patients.py with a 300 mL/h administration (7.1 mg/kg/min,
    a rate finding) whose unit text says "mL/kg/h" while its code says "mL/h", and a second
    body weight (80 kg) on the date of the first (70 kg)."""
    bundle = responder(fast_admin=True)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["id"] == "ma10":
            resource["dosage"]["rateQuantity"]["unit"] = "mL/kg/h"
        if resource["id"] == "w0":
            weight = copy.deepcopy(resource)
    weight["id"] = "w0b"
    weight["valueQuantity"]["value"] = 80
    bundle["entry"].append({"resource": weight})
    return bundle


def _load_old_output(base: str) -> list[Json]:
    """Store the old version's resources under the ids it gave them."""
    old: list[Json] = json.loads(OLD_OUTPUT.read_text(encoding="utf-8"))
    load(base, {"entry": [{"resource": r} for r in old]})
    return old


def _derived(base: str) -> dict[str, Json]:
    """Every stored resource with fhirtis's identifier, by ``Type/id``."""
    out: dict[str, Json] = {}
    for rtype in DERIVED_TYPES:
        for r in search(base, rtype, identifier=f"{DERIVED_SYSTEM}|", patient=PATIENT):
            out[f"{rtype}/{r['id']}"] = r
    return out


def _identifier(resource: Json) -> str:
    (value,) = [i["value"] for i in resource["identifier"] if i["system"] == DERIVED_SYSTEM]
    return str(value)


def _provenances(base: str) -> dict[str, Json]:
    return {f"Provenance/{p['id']}": p for p in search(base, "Provenance")}


def _cycle_notes(resource: Json) -> list[str]:
    return [n["text"] for n in resource.get("note", [])]


def _check_upgrade(base: str, old: list[Json], before: dict[str, Json]) -> None:
    """What the upgrading run stored against what the old version had."""
    old_ids = {f"{r['resourceType']}/{r['id']}" for r in old if r["resourceType"] != "Provenance"}
    after = _derived(base)
    # nothing lost, nothing duplicated: the same ids, one resource per business identifier
    assert set(after) == old_ids == set(before)
    idents = [(k.split("/")[0], _identifier(r)) for k, r in after.items()]
    assert len(idents) == len(set(idents))
    changed = {
        k for k, r in after.items() if r["meta"]["versionId"] != before[k]["meta"]["versionId"]
    }
    # updated in place, never more than one version per run
    for k in changed:
        assert int(after[k]["meta"]["versionId"]) == int(before[k]["meta"]["versionId"]) + 1
    by_type = {k.split("/")[0]: r for k, r in after.items() if k.split("/")[0] != "Observation"}
    flag, issue = by_type["Flag"], by_type["DetectedIssue"]
    # the Flag now names the factors not assessable; the refused rate's finding is withdrawn
    assert any(e["url"] == UNASSESSED for e in flag["extension"])
    assert issue["status"] == "entered-in-error"
    for k, r in after.items():
        if k.split("/")[0] != "DetectedIssue":
            assert r["status"] == before[k]["status"], f"{k} withdrawn"
    cycles = [
        r
        for r in after.values()
        if r["resourceType"] == "Observation" and _identifier(r).startswith("ivig-cycle-dose-")
    ]
    assert len(cycles) == 4
    assert all(any(WEIGHT_CONFLICT in t for t in _cycle_notes(c)) for c in cycles)
    assert {f"Flag/{flag['id']}", f"DetectedIssue/{issue['id']}"} <= changed
    assert {f"Observation/{c['id']}" for c in cycles} <= changed
    # one new Provenance, naming exactly what changed
    old_provenances = {f"Provenance/{r['id']}" for r in old if r["resourceType"] == "Provenance"}
    provenances = _provenances(base)
    (new,) = set(provenances) - old_provenances
    targets = {t["reference"].split("/_history")[0] for t in provenances[new]["target"]}
    assert targets == changed
    # what a consumer reads conforms to fhirtis's profiles
    results = _run_validator([], [*after.values(), provenances[new]])
    assert not _errors(results), _errors(results)


def test_run_write_upgrades_the_old_versions_output_in_place(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    load(fhir_base, _patient())
    old = _load_old_output(fhir_base)
    before = _derived(fhir_base)
    args = ["run", "--server", fhir_base, "--patient", PATIENT, "--write", "--json"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    record = json.loads(out.stdout)["runs"][0]
    assert record["status"] == "written"
    _check_upgrade(fhir_base, old, before)
    # the next run of the new version rests
    fhir_server.reset_stats()
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["runs"][0]["status"] == "unchanged"
    assert fhir_server.stats()["writes"] == 0


def _cohort(base: str, ledger: Path, *mode: str) -> str:
    out = runner.invoke(
        app,
        [
            "cohort",
            "--patients",
            PATIENT,
            "--server",
            base,
            "--ledger",
            str(ledger),
            "--no-progress",
            *mode,
        ],
    )
    assert out.exit_code == 0, out.output
    return out.stdout


def _ledger_as_old_version_wrote_it(ledger: Path, version: str) -> None:
    """The old version's record: the patient written, with this input, under its version."""
    db = sqlite3.connect(ledger)
    try:
        with db:
            changed = db.execute("UPDATE patient SET status = 'written', version = ?", (version,))
            assert changed.rowcount == 1
    finally:
        db.close()


def test_cohort_write_with_the_old_versions_ledger_evaluates_again(
    fhir_base: str, fhir_server: FhirTestServer, tmp_path: Path
) -> None:
    load(fhir_base, _patient())
    old = _load_old_output(fhir_base)
    before = _derived(fhir_base)
    ledger = tmp_path / "ledger.sqlite"
    # a dry run records the digest of this input (the old output read back included) ...
    assert "evaluated 1" in _cohort(fhir_base, ledger, "--dry-run")
    key = run_key(Settings(), fhir_base)
    # ... which the simulation is faithful to: under this version's key it would be skipped
    same_version = tmp_path / "same-version.sqlite"
    shutil.copyfile(ledger, same_version)
    _ledger_as_old_version_wrote_it(same_version, key.version)
    assert "skipped (unchanged since the ledger) 1" in _cohort(fhir_base, same_version, "--dry-run")
    # the old version wrote this patient: the ledger says so under its version
    _ledger_as_old_version_wrote_it(ledger, "0.1.0+algorithm.1.code.0123456789abcdef")
    fhir_server.reset_stats()
    first = _cohort(fhir_base, ledger, "--write")
    assert "written 1" in first and "skipped (unchanged since the ledger) 0" in first
    _check_upgrade(fhir_base, old, before)
    fhir_server.reset_stats()
    again = _cohort(fhir_base, ledger, "--write")
    assert "skipped (unchanged since the ledger) 1" in again
    assert fhir_server.stats()["writes"] == 0
