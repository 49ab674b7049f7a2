"""``fhirtis cohort``'s input folder, summaries and work folder: what an analyst meets.

- ``--ndjson`` pointed at a folder that holds no NDJSON file (a wrong path, an export saved as
  ``.json``): nothing can be evaluated, so it is a usage error (exit 2, one line), not a
  successful run of 0 patients (exit 0) that a scheduled registry job would take as done.
- The summaries are written whole or not at all.
- The clean-up after a run removes only what the run made, never the input.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.registry.ledger import Ledger
from tests.registry.cohort_cli import ndjson_args
from tests.registry.test_cohort import _export
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()


@pytest.mark.parametrize("files", [[], ["Patient.json", "notes.txt"]], ids=["empty", "json"])
def test_a_folder_without_ndjson_files_is_a_usage_error(tmp_path: Path, files: list[str]) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    for name in files:
        (folder / name).write_text('{"resourceType": "Patient", "id": "p1"}\n')
    r = runner.invoke(
        app,
        ndjson_args(folder, tmp_path),
    )
    assert r.exit_code == 2, r.output
    assert "no NDJSON file" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "ledger.sqlite").exists()  # stopped before anything was written


def test_a_disk_that_fills_while_the_summaries_are_written_keeps_the_last_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summaries are written whole or not at all: a full disk part-way does not leave a
    cut file in place of the last run's (a later ``fhirtis report`` would read a part of the
    cohort as if it were all of it), and the run says so and exits 1."""
    folder = _export(tmp_path, 3)
    out = tmp_path / "s" / "summaries.ndjson"
    args = ndjson_args(folder, tmp_path, "--summaries", str(out))
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    before = out.read_bytes()
    assert len(before.splitlines()) == 3
    real = Ledger.summaries

    def fills(self: Ledger, run: int | None = None) -> Iterator[bytes]:
        for i, body in enumerate(real(self, run)):
            if i == 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            yield body

    monkeypatch.setattr(Ledger, "summaries", fills)
    full = runner.invoke(app, args)
    assert full.exit_code == 1 and "no space left on the device" in full.stderr, full.output
    assert "Traceback" not in full.output
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["summaries.ndjson"]  # no part left


def test_the_work_folder_removed_after_a_run_is_only_what_the_run_made(tmp_path: Path) -> None:
    """A Bulk export is commonly kept in a folder named ``export``; given as ``--ndjson`` beside
    (inside) the work folder, it is the input, not the Group export fhirtis downloads there:
    the clean-up after a successful run must not delete it."""
    registry = tmp_path / "registry"
    write_ndjson(make_cohort(2, seed=4), registry / "export")
    before = sorted(p.name for p in (registry / "export").iterdir())
    r = runner.invoke(
        app,
        [
            "cohort",
            "--ndjson",
            str(registry / "export"),
            "--ledger",
            str(tmp_path / "l.sqlite"),
            "--work-dir",
            str(registry),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("2 patients: evaluated 2;"), r.stdout
    assert sorted(p.name for p in (registry / "export").iterdir()) == before
    assert not (registry / "partitions").exists()  # what the run made is removed


def test_an_ndjson_folder_inside_the_work_partitions_is_refused_not_emptied(
    tmp_path: Path,
) -> None:
    """Each run empties ``<work-dir>/partitions`` before it reads its input: an export kept
    there would be deleted before it is read."""
    folder = tmp_path / "work" / "partitions"
    write_ndjson(make_cohort(1, seed=4), folder)
    r = runner.invoke(
        app,
        ndjson_args(folder, tmp_path),
    )
    assert r.exit_code == 2 and "give another --work-dir" in r.stderr, r.output
    assert "run the same command again" not in r.stderr  # a usage error, not a fault
    assert any(folder.iterdir())
