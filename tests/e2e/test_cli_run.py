"""`fhirtis run` against the test FHIR server."""

from __future__ import annotations

import json

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
