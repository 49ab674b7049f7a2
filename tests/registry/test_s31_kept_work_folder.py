"""A cohort run with failed patients keeps its work folder (issue 13, data at rest: it is
removed after a *successful* run), which holds every patient's data, readable only by the user.
Before, nothing said so: a folder of patient data was left behind without a word (audit s31g).
Now the run's report names it and says why it was kept; a successful run removes it, as
before."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fhirtis.cli import app
from tests.registry.cohort_cli import ndjson_args
from tests.registry.test_s29_merged_patient import append_merged_patient
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()


def _export(tmp_path: Path, *, failing: bool) -> Path:
    folder = tmp_path / "export"
    write_ndjson(make_cohort(2, seed=31), folder)
    if failing:  # a merged patient's retired record fails (tests/registry/test_s29_merged_patient)
        append_merged_patient(folder)
    return folder


def test_a_run_with_failures_says_it_kept_the_work_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ndjson_args(_export(tmp_path, failing=True), tmp_path))
    assert result.exit_code == 1, result.output
    work = tmp_path / "work"
    assert (work / "partitions").is_dir()
    assert f"work folder kept: {work}" in result.output
    assert "patient data" in result.output


def test_a_successful_run_removes_it_and_says_nothing_of_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ndjson_args(_export(tmp_path, failing=False), tmp_path))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "work").exists()
    assert "work folder kept" not in result.output
