"""Registry faults found by running ``fhirtis cohort`` as a registry analyst would (sweep s28b):
a second run started on the same work folder while the first is still evaluating, and an
export file saved with its HTTP ``Content-Encoding: gzip`` body under an ``.ndjson`` name."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.registry import cohort
from fhirtis.registry.ledger import Ledger, RunKey
from tests.e2e.test_run import search
from tests.fhir_test_server import start_fhir_test_server
from tests.registry.cohort_cli import ndjson_args
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()
ROOT = Path(__file__).parents[2]


def _second_run(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The same command (same work folder, its own ledger) started from another shell."""
    args = ndjson_args(folder, tmp_path)
    ledger = args.index("--ledger") + 1
    args[ledger] = str(tmp_path / "other-ledger.sqlite")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "fhirtis", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_second_run_on_the_same_work_folder_cannot_take_the_first_runs_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cron job and a manual run of one registry feed share the default ``--work-dir``. Each
    run empties ``<work-dir>/partitions`` when it starts and removes it when it ends: a second
    run meanwhile deleted the first one's partitions, and the first reported fewer patients
    with exit 0 (no word of the lost ones). The second must stop at once with a plain
    message, and the first must evaluate the whole cohort."""
    folder = tmp_path / "export"
    write_ndjson(make_cohort(12, seed=5), folder)
    real = cohort.evaluate_partition
    second: list[subprocess.CompletedProcess[str]] = []

    def evaluate(out_dir: str, bucket: int, *args: Any, **kwargs: Any) -> Any:
        if not second:  # the other run starts while this one evaluates its first partition
            second.append(_second_run(folder, tmp_path))
        return real(out_dir, bucket, *args, **kwargs)

    monkeypatch.setattr(cohort, "evaluate_partition", evaluate)
    first = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert first.stdout.startswith("12 patients: evaluated 12;"), first.output
    assert first.exit_code == 0, first.output
    [other] = second
    assert other.returncode == 1, other.stdout + other.stderr
    assert "in use by another" in other.stderr and "--work-dir" in other.stderr, other.stderr
    assert "Traceback" not in other.stderr
    assert not (tmp_path / "work").exists()  # the first run still cleans up after itself


def test_the_work_folder_lock_goes_with_a_successful_run(tmp_path: Path) -> None:
    """The lock is released with the run: the same command runs again at once (it resumes),
    and a successful run leaves no work folder behind. The lock file a killed run left (a
    SIGKILL runs no clean-up) holds no lock: it stops nothing."""
    folder = tmp_path / "export"
    write_ndjson(make_cohort(2, seed=5), folder)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / ".lock").touch()  # left by a run killed with SIGKILL
    for expected in ("evaluated 2; skipped (unchanged since the ledger) 0", "skipped (unch"):
        r = runner.invoke(app, ndjson_args(folder, tmp_path))
        assert r.exit_code == 0 and expected in r.stdout, r.output
    assert not (tmp_path / "work").exists()
    kept = runner.invoke(app, ndjson_args(folder, tmp_path, "--keep-work-dir"))
    assert kept.exit_code == 0, kept.output
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["partitions"]


def test_an_export_file_saved_still_gzip_encoded_is_read(tmp_path: Path) -> None:
    """Bulk Data IG, Bulk Data Output File Request (HL7/bulk-data
    input/pagecontent/async-output-file-request.md): a client SHOULD send ``Accept-Encoding``
    with ``gzip``, and the server then sends the file gzip-compressed with ``Content-Encoding:
    gzip``. A download that keeps that body as it came (``curl -H 'Accept-Encoding: gzip' -o
    Observation.ndjson``) is a gzip stream under an ``.ndjson`` name: it was read as text and
    every "line" of compressed bytes reported as a bad line (0 patients). No NDJSON line can
    begin with gzip's magic bytes (0x1f 0x8b: not JSON), so such a file is read as gzip."""
    folder = tmp_path / "export"
    write_ndjson(make_cohort(3, seed=9), folder)
    plain = runner.invoke(app, ndjson_args(folder, tmp_path / "plain"))
    assert plain.exit_code == 0, plain.output
    for name in ("Observation.ndjson", "Patient.ndjson"):
        file = folder / name
        file.write_bytes(gzip.compress(file.read_bytes()))
    r = runner.invoke(app, ndjson_args(folder, tmp_path, "--summaries", str(tmp_path / "s")))
    assert r.exit_code == 0, r.output
    assert r.stdout == plain.stdout  # the same patients, evaluated the same
    assert "input problems 0" in r.stdout and "input problem:" not in r.stdout


def test_a_run_between_batches_holds_no_lock_on_a_shared_ledger(tmp_path: Path) -> None:
    """One ledger may serve several cohorts (README: the export time is kept per server and
    Group), and two runs may start together on it. A run records its patients in batches; it
    held SQLite's write lock from its first uncommitted record until the batch's commit, which
    comes only with a later record: while it waited for its next partition or for the server,
    another run on the ledger could not start (``BEGIN IMMEDIATE``) or commit, and stopped
    after SQLite's 5-second busy timeout: "cannot write the ledger …: database is locked"."""
    path = tmp_path / "ledger.sqlite"
    key = RunKey("", "policy", "version")
    with Ledger(path) as first:
        first.start_run()
        first.record("Patient/a", "d1", "evaluated", key, {"patient": "a"})  # batch not full
        with Ledger(path) as second:  # started meanwhile, e.g. another Group's run
            assert second.start_run() == 2
            second.record("Patient/b", "d2", "evaluated", key, {"patient": "b"})
            second.commit()
        assert first.get("Patient/a") is not None  # its own records, read before they commit
    with Ledger(path) as ledger:
        assert ledger.done(key, write=False) == {"Patient/a": "d1", "Patient/b": "d2"}
        assert [orjson.loads(s) for s in ledger.summaries(1)] == [{"patient": "a"}]
        assert [orjson.loads(s) for s in ledger.summaries(2)] == [{"patient": "b"}]


def test_a_new_write_server_is_a_new_run_key(
    tmp_path: Path, fhir_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README (Registries): a patient is skipped only when the input, the server written to,
    the policy and the version are unchanged; ``FHIRTIS_FHIR__WRITE_BASE_URL`` sends the
    derived resources to another server than the one read (a registry's own store). The
    ledger keyed on the server read: after the registry's store moved to a new server, every
    patient was skipped as unchanged and nothing was written there."""
    folder = tmp_path / "export"
    write_ndjson(make_cohort(3, seed=21), folder)
    monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", fhir_base)
    args = [*ndjson_args(folder, tmp_path), "--write"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and "written 3" in first.stdout, first.output
    (tmp_path / "store-log").mkdir()
    store = start_fhir_test_server(tmp_path / "store-log")
    try:
        monkeypatch.setenv("FHIRTIS_FHIR__WRITE_BASE_URL", store.base_url)
        moved = runner.invoke(app, args)
        assert moved.exit_code == 0, moved.output
        assert "written 3; skipped (unchanged since the ledger) 0" in moved.stdout, moved.stdout
        assert len(search(store.base_url, "Provenance")) == 3
        again = runner.invoke(app, args)  # the same write server again: skipped
        assert "skipped (unchanged since the ledger) 3" in again.stdout, again.output
    finally:
        store.close()


def test_summaries_into_a_folder_is_a_usage_error_before_the_run(tmp_path: Path) -> None:
    """``--summaries out`` where ``out`` is a folder: the run evaluated the whole cohort, then
    stopped on "cannot write the summaries .out.<pid>.part: Is a directory" (a file that does
    not exist) and said to run the same command again, which fails the same way for ever."""
    folder = tmp_path / "export"
    write_ndjson(make_cohort(2, seed=3), folder)
    out = tmp_path / "out"
    out.mkdir()
    r = runner.invoke(app, ndjson_args(folder, tmp_path, "--summaries", str(out)))
    assert r.exit_code == 2, r.output
    assert f"--summaries {out} is a folder" in r.stderr, r.stderr
    assert "run the same command again" not in r.stderr
    assert not (tmp_path / "ledger.sqlite").exists()  # refused before anything ran


@pytest.mark.parametrize("damage", ["cut", "overwritten"])
def test_a_damaged_ledger_says_what_to_do_not_to_run_again(tmp_path: Path, damage: str) -> None:
    """A ledger cut short (copied while a run wrote it, a full network share) or overwritten
    is "database disk image is malformed" / "file is not a database": running the same command
    again, as the run said, fails the same way every time. The message says what helps."""
    folder = tmp_path / "export"
    write_ndjson(make_cohort(40, seed=3), folder)
    first = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert first.exit_code == 0, first.output
    ledger = tmp_path / "ledger.sqlite"
    body = ledger.read_bytes()
    ledger.write_bytes(body[: len(body) // 4] if damage == "cut" else b"x" * len(body))
    r = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    assert f"the ledger {ledger}" in r.stderr.replace("\n", ""), r.stderr
    assert "restore it from a backup or give a new --ledger" in r.stderr, r.stderr
    assert "run the same command again" not in r.stderr, r.stderr
