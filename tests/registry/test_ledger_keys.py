"""A patient is skipped only when its input, the server, the policy and the version are all
unchanged; --summaries holds this run's patients; what a run leaves on disk is private; faults
stop the run with a plain message and a non-zero exit, and the next run resumes."""

from __future__ import annotations

import errno
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.registry import cohort, partition
from fhirtis.registry import run_key as run_key_module
from tests.fhir_test_server import FhirTestServer
from tests.registry.test_cohort import _export, _load

runner = CliRunner()


def _cohort(folder: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "cohort",
        "--ndjson",
        str(folder),
        "--ledger",
        str(tmp_path / "ledger" / "l.sqlite"),
        "--work-dir",
        str(tmp_path / "work"),
        "--no-progress",
        *extra,
    ]


def test_server_a_then_b_then_plain_rerun(
    tmp_path: Path, fhir_server: FhirTestServer, fhir_base: str
) -> None:
    folder = _export(tmp_path, 4)
    _load(fhir_base, folder)
    server_b = fhir_base.replace("127.0.0.1", "localhost")  # another base URL
    to_a = runner.invoke(app, _cohort(folder, tmp_path, "--server", fhir_base, "--write"))
    assert "written 4; skipped (unchanged since the ledger) 0" in to_a.stdout, to_a.output
    to_b = runner.invoke(app, _cohort(folder, tmp_path, "--server", server_b, "--write"))
    assert to_b.exit_code == 0, to_b.output
    assert "unchanged 4; skipped (unchanged since the ledger) 0" in to_b.stdout  # checked on B
    fhir_server.reset_stats()
    again = runner.invoke(app, _cohort(folder, tmp_path, "--server", server_b, "--write"))
    assert "skipped (unchanged since the ledger) 4" in again.stdout, again.output
    assert fhir_server.stats()["committed_writes"] == 0


def test_policy_change_version_change_and_summaries_of_this_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _export(tmp_path, 3)
    out = tmp_path / "s.ndjson"
    first = runner.invoke(app, _cohort(folder, tmp_path, "--summaries", str(out)))
    assert "evaluated 3; skipped (unchanged since the ledger) 0" in first.stdout, first.output
    plain = runner.invoke(app, _cohort(folder, tmp_path, "--summaries", str(out)))
    assert "skipped (unchanged since the ledger) 3" in plain.stdout
    assert len(out.read_bytes().splitlines()) == 3  # the skipped patients are this run's too
    settings = tmp_path / "policy.toml"
    settings.write_text("[policy]\nmax_rate_mg_kg_min = 3\n")
    policy = runner.invoke(app, _cohort(folder, tmp_path, "--settings", str(settings)))
    assert "evaluated 3; skipped (unchanged since the ledger) 0" in policy.stdout, policy.output
    monkeypatch.setattr(run_key_module, "__version__", "99.0")
    upgraded = runner.invoke(app, _cohort(folder, tmp_path))
    assert "evaluated 3; skipped (unchanged since the ledger) 0" in upgraded.stdout
    other = _export(tmp_path / "other", 2, seed=99)
    runner.invoke(app, _cohort(other, tmp_path, "--summaries", str(out)))
    assert len(out.read_bytes().splitlines()) == 2  # not the 5 patients of the whole ledger


def test_files_are_private_and_the_work_folder_is_removed(tmp_path: Path) -> None:
    folder = _export(tmp_path, 2)
    out = tmp_path / "private" / "s.ndjson"
    kept = runner.invoke(app, _cohort(folder, tmp_path, "--summaries", str(out), "--keep-work-dir"))
    assert kept.exit_code == 0, kept.output
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "ledger") == 0o700 and mode(out.parent) == 0o700
    assert mode(tmp_path / "ledger" / "l.sqlite") == 0o600 and mode(out) == 0o600
    work = tmp_path / "work"
    files = [p for p in work.rglob("*") if p.is_file()]
    assert files and all(mode(p) == 0o600 for p in files)
    assert all(mode(p) == 0o700 for p in [work, *(p for p in work.rglob("*") if p.is_dir())])
    runner.invoke(app, _cohort(folder, tmp_path))
    assert not work.exists()  # removed after a successful run


def test_vanished_file_full_disk_and_bad_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _export(tmp_path, 3)
    real_open = partition.open_private

    def full(path: Path) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(partition, "open_private", full)
    r = runner.invoke(app, _cohort(folder, tmp_path))
    assert (r.exit_code == 1 and r.exception is None) or isinstance(r.exception, SystemExit)
    assert "no space left on the device" in r.stderr and "run the same command again" in r.stderr
    assert "Traceback" not in r.output
    monkeypatch.setattr(partition, "open_private", real_open)

    real_range = partition.partition_range

    def vanish(r: partition.ByteRange, out_dir: str, partitions: int) -> partition.RangeResult:
        Path(r.path).unlink(missing_ok=True)
        return real_range(r, out_dir, partitions)

    monkeypatch.setattr(cohort, "partition_range", vanish)
    gone = runner.invoke(app, _cohort(folder, tmp_path))
    assert gone.exit_code == 1 and "cannot read the NDJSON file" in gone.stderr
    assert "Traceback" not in gone.output
    monkeypatch.setattr(cohort, "partition_range", real_range)

    folder = _export(tmp_path / "again", 3)
    with (folder / "Observation.ndjson").open("ab") as f:
        f.write(b'{"resourceType": "Observation"\n')
    bad = runner.invoke(app, _cohort(folder, tmp_path))
    assert bad.exit_code == 1
    assert "evaluated 3" in bad.stdout and "input problem: Observation.ndjson byte" in bad.stdout
    resumed = runner.invoke(app, _cohort(folder, tmp_path))
    assert "skipped (unchanged since the ledger) 3" in resumed.stdout  # resume works


def test_refused_bulk_export_is_a_plain_message(tmp_path: Path, fhir_base: str) -> None:
    r = runner.invoke(
        app,
        [
            "cohort",
            "--group",
            "no-such-group",
            "--server",
            fhir_base,
            "--ledger",
            str(tmp_path / "l.sqlite"),
            "--work-dir",
            str(tmp_path / "w"),
            "--no-progress",
        ],
    )
    assert r.exit_code == 1, r.output
    # a Group the server does not have (404): said so, never "resume" (s36)
    assert "fhirtis cohort: Group/no-such-group was not found on the FHIR server" in r.stderr
    assert "run the same command again" not in r.stderr
    assert "Traceback" not in r.output
