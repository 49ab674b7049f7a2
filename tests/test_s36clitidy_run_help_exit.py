"""``fhirtis run --help`` said the exit status is "1 when some are incomplete" (session s36,
helper clitidy), while a read the server said was partial (an ``incomplete`` warning) is
evaluated and exits 0, as the README's contract says: only a patient reported ``failed`` (or
``not-found``) makes it 1. The help now says the same as the README and the behaviour."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from fhirtis.cli import app

runner = CliRunner()


def _flat(text: str) -> str:
    return re.sub(r"[\s│]+", " ", text)


def test_run_help_says_which_patients_make_the_exit_status_1() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    assert "some are incomplete" not in text
    assert "1 when some patient failed or was not found" in text, text


def test_readme_says_a_partial_read_exits_0() -> None:
    readme = _flat((Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8"))
    assert "is no failure: exit 0" in readme
