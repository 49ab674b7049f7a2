"""`fhirtis run` against the test FHIR server."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fhirtis.cli import app
from tests.e2e.test_run import load
from tests.fhir.patients import responder

runner = CliRunner()


def test_run_dry_run_then_write(fhir_base: str) -> None:
    load(fhir_base, responder())
    dry = runner.invoke(app, ["run", "--server", fhir_base, "--patient", "p1"])
    assert dry.exit_code == 0, dry.output
    assert "dry-run" in dry.stdout and "create" in dry.stdout
    wrote = runner.invoke(
        app, ["run", "--server", fhir_base, "--patient", "p1", "--write", "--json"]
    )
    assert wrote.exit_code == 0
    record = json.loads(wrote.stdout)["runs"][0]
    assert record["status"] == "written"
    again = runner.invoke(
        app, ["run", "--server", fhir_base, "--patient", "p1", "--write", "--json"]
    )
    assert json.loads(again.stdout)["runs"][0]["status"] == "unchanged"
    missing = runner.invoke(app, ["run", "--server", fhir_base, "--patient", "ghost"])
    assert missing.exit_code == 1


def test_rerun_reads_back_its_own_adverse_event_without_hiding_the_dvt(fhir_base: str) -> None:
    # Issue 10 item 10: the DVT Condition cited by a hospital AdverseEvent is one TEE; on a re-run
    # fhirtis reads back its own AdverseEvent (which cites the Condition too) and must still
    # count the DVT, its history risk factor, the 3.3 limit and the two rate findings.
    corpus = Path(__file__).parents[1] / "data" / "dvt-cited-by-adverse-event.json"
    load(fhir_base, json.loads(corpus.read_text()))
    args = ["run", "--server", fhir_base, "--patient", "pt-dvtae", "--write", "--json"]
    records = []
    for _ in range(2):
        out = runner.invoke(app, args)
        assert out.exit_code == 0, out.output
        records.append(json.loads(out.stdout)["runs"][0])
    assert [r["status"] for r in records] == ["written", "unchanged"]
    for record in records:
        thrombosis = record["evaluation"]["thrombosis"]
        (event,) = thrombosis["associated_events"]
        assert event["event"].startswith("Condition/dvtae-dvt")
        assert [str(f["limit"]) for f in thrombosis["rate_findings"]] == ["3.3", "3.3"]
