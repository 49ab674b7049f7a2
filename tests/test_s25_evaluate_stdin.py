"""``fhirtis evaluate -``: a Bundle on standard input, as Unix tools take one (``curl … |
fhirtis evaluate -``, a Bulk export piped through ``jq``). It was read as a file named ``-``:
"no such file: -", exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from typer.testing import CliRunner

from fhirtis.cli import app
from tests.fhir.patients import responder

runner = CliRunner()


def test_a_bundle_on_standard_input_is_evaluated_as_from_a_file(tmp_path: Path) -> None:
    raw = orjson.dumps(responder(dvt_after_cycle=2))
    from_file = tmp_path / "p1.json"
    from_file.write_bytes(raw)
    piped = runner.invoke(app, ["evaluate", "--json", "-"], input=raw)
    assert piped.exit_code == 0, piped.output
    filed = runner.invoke(app, ["evaluate", "--json", str(from_file)])
    got, want = json.loads(piped.stdout), json.loads(filed.stdout)
    assert got["results"][0]["file"] == "-"
    for doc in (got, want):
        del doc["results"][0]["file"]
    assert got == want
    assert got["results"][0]["assessments"][-1]["tis"] == 62.5


def test_standard_input_writes_its_transaction_with_out(tmp_path: Path) -> None:
    raw = orjson.dumps(responder())
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", "-", "--out", str(out)], input=raw)
    assert result.exit_code == 0, result.output
    written = json.loads((out / "Patient-p1.transaction.json").read_text())
    assert written["type"] == "transaction"


def test_what_is_not_a_bundle_on_standard_input_is_an_input_error() -> None:
    result = runner.invoke(app, ["evaluate", "--json", "-"], input=b"[1, 2]")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["errors"][0]["file"] == "-"
    assert doc["errors"][0]["outcome"]["resourceType"] == "OperationOutcome"


def test_standard_input_is_read_once() -> None:
    result = runner.invoke(app, ["evaluate", "-", "-"], input=orjson.dumps(responder()))
    assert result.exit_code == 2
    assert "standard input" in result.output
