"""`fhirtis evaluate` and `fhirtis run` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from typer.testing import CliRunner

from fhirtis.cli import app
from tests.fhir.patients import responder

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "bundles"


def _bundle(tmp_path: Path, name: str = "p1.json", **kwargs: bool) -> Path:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(responder(**kwargs)))  # type: ignore[arg-type]
    return path


def test_evaluate_report_and_out(tmp_path: Path) -> None:
    path = _bundle(tmp_path, dvt_after_cycle=2)
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "62.5" in result.stdout and "major" in result.stdout
    assert "deep-vein-thrombosis" in result.stdout
    written = json.loads((out / "Patient-p1.transaction.json").read_text())
    assert written["type"] == "transaction"
    assert written["entry"][-1]["resource"]["resourceType"] == "Provenance"
    again = tmp_path / "again"
    runner.invoke(app, ["evaluate", str(path), "--out", str(again)])
    assert (again / "Patient-p1.transaction.json").read_bytes() == (
        out / "Patient-p1.transaction.json"
    ).read_bytes()


def test_evaluate_json_and_exit_codes(tmp_path: Path) -> None:
    good = _bundle(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = runner.invoke(app, ["evaluate", "--json", str(good), str(bad)])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [r["patient"] for r in doc["results"]] == ["Patient/p1"]
    assert doc["results"][0]["assessments"][-1]["tis"] == 62.5
    assert doc["errors"][0]["outcome"]["resourceType"] == "OperationOutcome"
    assert runner.invoke(app, ["evaluate", str(tmp_path / "nope.json")]).exit_code == 2
    assert runner.invoke(app, ["evaluate", str(good), "--baseline-date", "soon"]).exit_code == 2


def test_a_patient_with_a_baseline_and_no_follow_up_is_reported(tmp_path: Path) -> None:
    """A baseline assessment and no follow-up yet (the first infusion just given): the report's
    TIS table has no row. The narrow-terminal table writer crashed on a table without rows
    (``max`` of one width), so `fhirtis evaluate` printed a traceback for such a patient."""
    doc = json.loads((EXAMPLES / "adult-responder.json").read_text())
    observations = [e for e in doc["entry"] if e["resource"]["resourceType"] == "Observation"]
    first = min(str(e["resource"].get("effectiveDateTime"))[:10] for e in observations)
    doc["entry"] = [
        e
        for e in doc["entry"]
        if e["resource"]["resourceType"] != "Observation"
        or str(e["resource"].get("effectiveDateTime"))[:10] == first
        or "29463-7" in json.dumps(e["resource"]["code"])
    ]
    path = tmp_path / "baseline-only.json"
    path.write_text(json.dumps(doc))
    for columns in ("120", "40"):
        result = runner.invoke(app, ["evaluate", str(path)], env={"COLUMNS": columns})
        assert result.exit_code == 0, result.output
        assert f"TIS against baseline {first}" in result.output
