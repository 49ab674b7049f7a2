"""``fhirtis evaluate``'s printout says each note once (s36 tidy audit of what a clinician reads).

The printout shows a note's severity and message, not its source: a note said of each
administration ("no usable infusion rate recorded" of every bag of a MAR that charts no rate)
read as the same line once per administration: 32 of the 39 lines for 4 cycles of 4 bags. It is
now one line saying how many resources it is said of; the summary (``--json``) keeps every note
with its source, as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.cli.render import _said_once, print_patient
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, obs
from tests.fhir.patients import responder

runner = CliRunner()
Json = dict[str, Any]


def _no_rates() -> Json:
    """The responder (4 cycles of 4 bags), its MAR charting no infusion rate."""
    data = responder()
    for e in data["entry"]:
        if e["resource"]["resourceType"] == "MedicationAdministration":
            e["resource"]["dosage"].pop("rateQuantity")
    return data


def _report(tmp_path: Path, data: Json, *args: str) -> str:
    path = tmp_path / "p.json"
    path.write_bytes(orjson.dumps(data))
    result = runner.invoke(app, ["evaluate", str(path), *args], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.stdout


def _notes(report: str) -> list[str]:
    lines = report.splitlines()
    head = next(i for i, line in enumerate(lines) if "warnings/exclusions/missing data" in line)
    count = int(lines[head].split()[0])
    return [line.strip() for line in lines[head + 1 : head + 1 + count]]


def test_a_note_said_of_every_administration_is_one_line(tmp_path: Path) -> None:
    notes = _notes(_report(tmp_path, _no_rates()))
    assert len(notes) == len(set(notes)), notes
    assert "missing: no usable infusion rate recorded (16 MedicationAdministrations)" in notes
    assert (
        "missing: infusion rate in mg/kg/min unknown; not checked against the maximum rate "
        "(16 MedicationAdministrations)" in notes
    )
    # said per cycle: four statements, each once
    assert [n for n in notes if "no administration rate known" in n] == [
        f"missing: no administration rate known in cycle {i}" for i in range(1, 5)
    ]


def test_the_summary_keeps_every_note_with_its_source(tmp_path: Path) -> None:
    (record,) = json.loads(_report(tmp_path, _no_rates(), "--json"))["results"]
    unknown = [n for n in record["notes"] if n["code"] == "rate-unknown"]
    assert len({n["source"] for n in unknown}) == 16


def test_an_excluded_weight_is_one_line_of_the_printout(tmp_path: Path) -> None:
    """Said once per cycle before (4 lines); a note said of one resource carries no count."""
    data = responder()
    w0 = next(e["resource"] for e in data["entry"] if e["resource"]["id"] == "w0")
    data["entry"].append(
        {"resource": obs("w0lb", "29463-7", 154, "kg", w0["effectiveDateTime"], system=LOINC)}
    )
    notes = _notes(_report(tmp_path, data))
    jumps = [n for n in notes if "154 kg is implausible" in n]
    assert len(jumps) == 1 and jumps[0].endswith("; not used"), jumps


def test_a_note_said_of_resources_of_several_kinds_counts_resources() -> None:
    said = _said_once(
        [
            {"severity": "missing", "message": "m", "source": "Observation/a"},
            {"severity": "missing", "message": "m", "source": "Condition/b"},
            {"severity": "missing", "message": "m", "source": "Condition/b"},
            {"severity": "warning", "message": "m"},
            {"severity": "warning", "message": "m"},
        ]
    )
    assert said == [("missing", "m", " (2 resources)"), ("warning", "m", "")]


def test_a_stopped_administration_is_said_once(tmp_path: Path) -> None:
    """examples/bundles/us-ehr-ivig-course.json (real-shaped MAR): administration 197400201 is
    ``stopped``. The printout said it twice, as the input's warning ("… is stopped: counted for
    the dose and rate recorded at Bundle.entry[8].resource.status") and as a note
    ("administration stopped; counted for the dose and rate recorded")."""
    example = Path(__file__).resolve().parent.parent / "examples" / "bundles"
    data = orjson.loads((example / "us-ehr-ivig-course.json").read_bytes())
    report = _report(tmp_path, data)
    said = [line for line in report.splitlines() if "stopped" in line]
    assert len(said) == 1, said
    assert "MedicationAdministration/197400201 is stopped" in said[0]
    # a stopped administration that no issue names (a record read from elsewhere) keeps its note
    result = evaluate_bundle_bytes(orjson.dumps(data), "us-ehr.json", Settings())
    record = patient_summary(result.patient_ref, result.evaluation, [])
    console = Console(record=True, width=250)
    print_patient(console, record)
    said = [line for line in console.export_text().splitlines() if "stopped" in line]
    assert said == ["  warning: administration stopped; counted for the dose and rate recorded"]
