"""``fhirtis evaluate`` (the readable report) and ``fhirtis cohort``'s summary: text from the
input never goes through rich's highlighter.

The report echoes what an input holds in its issues (``not counted: status <the status>``, a
reference, a code). rich's ``ReprHighlighter`` runs a dozen regular expressions over every
printed line, and their time grows with the square of an unbroken word's length: a Bundle of
100 kB whose ``MedicationAdministration.status`` was one word of 100,000 characters kept
``fhirtis evaluate`` busy for 2 min 8 s (3.8 s without it; ``--json`` took 6 s), 20,000
characters for 11 s (found by mutation fuzzing of the corpus Bundles, audit s39fuzz). The report
is plain text (its lines are read by people, logs and grep): it is no longer highlighted, so its
time is linear in the input. The text itself is unchanged.

No timing is asserted: the test fails wherever the highlighter is asked to colour a printed
line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.highlighter import ReprHighlighter
from rich.text import Text
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.cli._common import err_console, report_console

runner = CliRunner()
SOURCE = Path(__file__).parent / "data" / "s27h-pub" / "ips-year-abatement-hypertension.json"
LONG = "completed" + "x" * 5_000


@pytest.fixture
def no_highlighting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every line rich is asked to highlight fails the test (its length recorded)."""
    asked: list[int] = []

    def refuse(self: ReprHighlighter, text: Text) -> None:
        asked.append(len(text.plain))
        raise AssertionError(f"a printed line of {len(text.plain)} characters was highlighted")

    monkeypatch.setattr(ReprHighlighter, "highlight", refuse)
    return asked


def _bundle_with_long_status(tmp_path: Path) -> Path:
    doc = json.loads(SOURCE.read_text(encoding="utf-8"))
    administration = doc["entry"][4]["resource"]
    assert administration["resourceType"] == "MedicationAdministration"
    administration["status"] = LONG
    path = tmp_path / "long-status.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_the_report_echoes_a_long_status_without_highlighting_it(
    tmp_path: Path, no_highlighting: list[int]
) -> None:
    result = runner.invoke(app, ["evaluate", str(_bundle_with_long_status(tmp_path))])
    assert no_highlighting == []
    assert result.exit_code == 0, result.output
    # the administration is not counted, and the report says so with the status as given
    line = next(x for x in result.output.splitlines() if "ivig-2 not counted" in x)
    assert f"status {LONG}" in line


def test_the_consoles_of_the_reports_do_not_highlight(no_highlighting: list[int]) -> None:
    for console in (report_console(), err_console()):
        with console.capture() as captured:
            console.print(f"issue (warning): {LONG} at MedicationAdministration.status")
        assert LONG in captured.get()
    assert no_highlighting == []
