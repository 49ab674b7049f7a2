"""Cohort from a FHIR Group over Bulk Data ``$export`` (test server), then incremental
``_since`` runs (the ledger's ``bulk_transaction_time``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import orjson
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.registry.ledger import Ledger
from tests.fhir_test_server import FhirTestServer
from tests.synthetic import make_cohort

runner = CliRunner()


def _load_group(base: str) -> tuple[str, list[str]]:
    """PUT four synthetic patients' resources and a Group of the first three."""
    entries = []
    patients: list[str] = []
    for bundle in make_cohort(4, seed=3):
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "Patient":
                patients.append(r["id"])
            url = f"{r['resourceType']}/{r['id']}"
            entries.append({"resource": r, "request": {"method": "PUT", "url": url}})
    group = {
        "resourceType": "Group",
        "id": "registry-3",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in patients[:3]],
    }
    entries.append({"resource": group, "request": {"method": "PUT", "url": "Group/registry-3"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    httpx.post(base, json=bundle, timeout=300).raise_for_status()
    return group["id"], patients


def _exported(work: Path) -> list[dict]:
    return [
        orjson.loads(line)
        for file in sorted((work / "export").glob("*.ndjson"))
        for line in file.read_bytes().splitlines()
    ]


def test_group_export_cohort_then_since(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    group, patients = _load_group(fhir_base)
    assert len(patients) == 4
    ledger = tmp_path / "ledger.sqlite"
    work = tmp_path / "work"
    args = [
        "cohort",
        "--group",
        group,
        "--server",
        fhir_base,
        "--write",
        "--ledger",
        str(ledger),
        "--work-dir",
        str(work),
        "--keep-work-dir",
        "--no-progress",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("3 patients:"), first.stdout
    assert "written 3" in first.stdout, first.stdout
    exported = {r["id"] for r in _exported(work) if r["resourceType"] == "Patient"}
    assert exported == set(patients[:3])  # the Group's members only
    since = _transaction_time(ledger)

    # Second run: `_since` = the first export's transactionTime. Nothing in the source data
    # changed; the export holds only fhirtis's own write-backs (newer than `_since`), which do
    # not make a patient changed: no patient is read again, nothing is written. The run still
    # reports the whole Group: its three members are skipped as unchanged since the ledger.
    fhir_server.reset_stats()
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith("3 patients: none; skipped (unchanged since the ledger) 3;"), (
        second.stdout
    )
    assert fhir_server.stats()["committed_writes"] == 0
    changed = _exported(work)
    assert changed and all(r["resourceType"] != "Patient" for r in changed)
    assert all(_instant(r["meta"]["lastUpdated"]) > _instant(since) for r in changed)
    since2 = _transaction_time(ledger)
    assert _instant(since2) > _instant(since)

    # Third run: nothing changed on the server since the second export → an empty export,
    # no patient read or evaluated; every member skipped.
    third = runner.invoke(app, args)
    assert third.exit_code == 0, third.output
    assert third.stdout.startswith("3 patients: none; skipped (unchanged since the ledger) 3;"), (
        third.stdout
    )
    assert _exported(work) == []
    assert _instant(_transaction_time(ledger)) >= _instant(since2)

    # One member's PGA is corrected at the source: only that patient is read, re-evaluated and
    # its derived resources updated.
    pga = next(
        e["resource"]
        for e in httpx.get(
            f"{fhir_base}/Observation",
            params={
                "subject": f"Patient/{patients[0]}",
                "code": "http://fhirtis.org/fhir/CodeSystem/myositis-core-set|pga",
                "_count": "1",
            },
        ).json()["entry"]
    )
    pga["valueQuantity"]["value"] = 0
    httpx.put(f"{fhir_base}/Observation/{pga['id']}", json=pga).raise_for_status()
    fourth = runner.invoke(app, args)
    assert fourth.exit_code == 0, fourth.output
    assert fourth.stdout.startswith(
        "3 patients: written 1; skipped (unchanged since the ledger) 2;"
    ), fourth.stdout


def _transaction_time(ledger: Path) -> str:
    with Ledger(ledger) as book:
        value = book.get_value("bulk_transaction_time")
    assert isinstance(value, str) and value
    return value


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
