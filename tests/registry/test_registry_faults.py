"""Faults and promises of registry runs found by testing: a full disk under the ledger or the
work store, the terminology server in the run key, two runs starting together on one ledger,
private report and summaries folders, bad lines of an incremental Group export, when a Group
export's transaction time is recorded, and Dask's worker logs on a fault."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

import fhirtis.io
from fhirtis.cli import app
from fhirtis.io import FhirClientConfig, TerminologyConfig
from fhirtis.registry import cohort
from fhirtis.registry.errors import CohortError
from fhirtis.registry.group_export import GroupExport
from fhirtis.registry.ledger import Ledger, RunKey
from fhirtis.registry.options import CohortOptions
from fhirtis.settings import Settings
from tests.registry.cohort_cli import group_args
from tests.registry.test_cohort import _export, export_of_bundle
from tests.registry.test_group_export import _load_group
from tests.registry.test_ledger_keys import _cohort

runner = CliRunner()
FULL = "database or disk is full"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class _Connection:
    """A SQLite connection on a disk that fills up: once ``full`` says so for a statement (or
    for the commit of rows written), SQLite's own error is raised."""

    def __init__(self, db: sqlite3.Connection, full: Any) -> None:
        self._db = db
        self._full = full
        self._wrote = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, sql: str, *args: Any) -> Any:
        if self._full(sql):
            raise sqlite3.OperationalError(FULL)
        self._wrote |= sql.lstrip().upper().startswith(("INSERT", "UPDATE"))
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        if self._full(sql):
            raise sqlite3.OperationalError(FULL)
        self._wrote = True
        return self._db.executemany(sql, *args)

    def commit(self) -> None:
        if self._wrote and self._full("COMMIT"):
            raise sqlite3.OperationalError(FULL)
        self._wrote = False
        self._db.commit()


def _full_disk(monkeypatch: pytest.MonkeyPatch, full: Any) -> None:
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        return _Connection(real(*args, **kwargs), full)

    monkeypatch.setattr(sqlite3, "connect", connect)


def test_a_full_disk_under_the_ledger_is_a_plain_message_and_the_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _export(tmp_path, 3)
    patients_written = {"n": 0}

    def full(sql: str) -> bool:  # the commit of the patients' batch fails (Ledger.__exit__)
        if sql.startswith("INSERT INTO patient"):
            patients_written["n"] += 1
        return sql == "COMMIT" and patients_written["n"] > 0

    _full_disk(monkeypatch, full)
    r = runner.invoke(app, _cohort(folder, tmp_path))
    assert r.exit_code == 1 and (r.exception is None or isinstance(r.exception, SystemExit))
    assert "Traceback" not in r.output
    ledger = str(tmp_path / "ledger" / "l.sqlite")
    assert "fhirtis cohort: cannot write the ledger" in r.stderr, r.output
    assert "no space left on the device" in r.stderr.replace("\n", " ")
    assert ledger in r.stderr.replace("\n", "")
    assert "run the same command again" in r.stderr
    monkeypatch.undo()
    resumed = runner.invoke(app, _cohort(folder, tmp_path))
    assert resumed.exit_code == 0, resumed.output
    assert "evaluated 3; skipped (unchanged since the ledger) 0" in resumed.stdout  # redone


def test_a_full_disk_on_a_ledger_insert_is_a_plain_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _export(tmp_path, 2)
    _full_disk(monkeypatch, lambda sql: sql.startswith("INSERT INTO patient"))
    r = runner.invoke(app, _cohort(folder, tmp_path))
    assert r.exit_code == 1 and (r.exception is None or isinstance(r.exception, SystemExit))
    assert "cannot write the ledger" in r.stderr and "Traceback" not in r.output


@pytest.mark.parametrize("kind", ["folder", "garbage"])
def test_a_ledger_that_is_no_database_is_a_plain_message(tmp_path: Path, kind: str) -> None:
    folder = _export(tmp_path, 1)
    ledger = tmp_path / "ledger" / "l.sqlite"
    if kind == "folder":
        ledger.mkdir(parents=True)
    else:
        ledger.parent.mkdir()
        ledger.write_bytes(b"not a database, " * 512)
    r = runner.invoke(app, _cohort(folder, tmp_path))
    assert r.exit_code == 1 and (r.exception is None or isinstance(r.exception, SystemExit))
    assert "the ledger" in r.stderr and "Traceback" not in r.output


def test_a_full_work_folder_under_the_ndjson_store_is_a_cohort_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _export(tmp_path, 2)
    _full_disk(monkeypatch, lambda sql: sql.startswith("INSERT INTO resource"))
    with pytest.raises(CohortError) as raised:
        cohort.load_store(folder, tmp_path / "work")
    message = str(raised.value)
    assert "cannot write the work folder" in message and "store.sqlite" in message, message
    assert "no space left on the device" in message


def test_the_terminology_server_is_part_of_the_run_key() -> None:
    plain = cohort.run_key(Settings(), "")
    term = TerminologyConfig(base_url="https://tx.example.org/fhir")
    with_server = cohort.run_key(Settings(terminology=term), "")
    assert with_server.policy != plain.policy
    other = TerminologyConfig(base_url="https://tx2.example.org/fhir")
    assert cohort.run_key(Settings(terminology=other), "").policy != with_server.policy
    # how it is reached does not change its answers: neither credentials nor timeouts
    same = TerminologyConfig(
        base_url="https://tx.example.org/fhir",
        bearer_token="secret",  # type: ignore[arg-type]
        timeout_seconds=60,
        concurrency=2,
    )
    assert cohort.run_key(Settings(terminology=same), "") == with_server


def test_turning_on_a_terminology_server_re_evaluates_everyone(
    tmp_path: Path, fhir_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = export_of_bundle("problem-list-snomed-descendants.json", tmp_path / "export")
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    monkeypatch.delenv("FHIRTIS_TERMINOLOGY__BASE_URL", raising=False)
    out = tmp_path / "s.ndjson"
    first = runner.invoke(app, _cohort(folder, tmp_path, "--summaries", str(out)))
    assert "evaluated 1; skipped (unchanged since the ledger) 0" in first.stdout, first.output
    assert "malignancy" not in out.read_text()
    monkeypatch.setenv("FHIRTIS_TERMINOLOGY__BASE_URL", fhir_base)
    second = runner.invoke(app, _cohort(folder, tmp_path, "--summaries", str(out)))
    assert "evaluated 1; skipped (unchanged since the ledger) 0" in second.stdout, second.output
    assert "malignancy" in out.read_text()


def test_two_runs_starting_together_get_different_run_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run reads the last run number, pauses (widening the window a run had between its
    read and its write), then writes its own: both started at once, each must get its own."""
    path = tmp_path / "l.sqlite"
    Ledger(path).close()
    real = Ledger.get_value

    def slow(self: Ledger, key: str) -> str | None:
        value = real(self, key)
        if key == "last_run":
            time.sleep(0.3)
        return value

    monkeypatch.setattr(Ledger, "get_value", slow)
    start = threading.Barrier(2)
    runs: dict[str, int] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            with Ledger(path) as ledger:
                start.wait()
                runs[name] = ledger.start_run()
                for i in range(3):
                    ledger.record(
                        f"Patient/{name}{i}", "d", "evaluated", RunKey("", "p", "v"), {"n": i}
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in "AB"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(runs.values()) == [1, 2]
    with Ledger(path) as ledger:
        assert len(list(ledger.summaries(runs["A"]))) == 3
        assert len(list(ledger.summaries(runs["B"]))) == 3


def test_report_output_and_summaries_folders_are_private(tmp_path: Path) -> None:
    folder = _export(tmp_path, 2)
    summaries = tmp_path / "a" / "b" / "out.ndjson"
    ledger = tmp_path / "l1" / "l2" / "l.sqlite"
    work = tmp_path / "w1" / "w2"
    r = runner.invoke(
        app,
        [
            "cohort",
            "--ndjson",
            str(folder),
            "--ledger",
            str(ledger),
            "--work-dir",
            str(work),
            "--keep-work-dir",
            "--no-progress",
            "--summaries",
            str(summaries),
        ],
    )
    assert r.exit_code == 0, r.output
    for made in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "l1", ledger.parent):
        assert _mode(made) == 0o700, made
    for made in (tmp_path / "w1", work):
        assert _mode(made) == 0o700, made
    out = tmp_path / "r1" / "r2" / "report"
    rep = runner.invoke(app, ["report", str(summaries), "--out", str(out)])
    assert rep.exit_code == 0, rep.output
    for made in (tmp_path / "r1", tmp_path / "r1" / "r2", out):
        assert _mode(made) == 0o700, made
    files = sorted(p for p in out.iterdir())
    assert {p.name for p in files} >= {"patients.csv", "summary.json"}
    assert any(p.suffix == ".png" for p in files)
    assert all(_mode(p) == 0o600 for p in files), {p.name: oct(_mode(p)) for p in files}


def test_report_into_an_existing_folder_makes_its_files_private(tmp_path: Path) -> None:
    folder = _export(tmp_path, 1)
    summaries = tmp_path / "s.ndjson"
    runner.invoke(app, _cohort(folder, tmp_path, "--summaries", str(summaries)))
    out = tmp_path / "existing"
    out.mkdir()
    (out / "patients.csv").write_text("old\n")  # an earlier report's file, made 644
    (out / "patients.csv").chmod(0o644)
    rep = runner.invoke(app, ["report", str(summaries), "--out", str(out)])
    assert rep.exit_code == 0, rep.output
    assert all(_mode(p) == 0o600 for p in out.iterdir())


def _since_export(folder: Path) -> Any:
    async def fake(client: Any, group: str, options: Any, settings: Any = None) -> GroupExport:
        return GroupExport(folder, True, ())

    return fake


def test_bad_lines_of_an_incremental_group_export_are_input_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = tmp_path / "export"
    export.mkdir()
    good = orjson.dumps(
        {
            "resourceType": "Observation",
            "id": "o9",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
        }
    )
    (export / "Observation.ndjson").write_bytes(good[:-20] + b"\n")  # the line cut short
    monkeypatch.setattr(cohort, "export_group", _since_export(export))
    options = CohortOptions(ledger=tmp_path / "l.sqlite", work_dir=tmp_path / "w", progress=False)
    fhir = FhirClientConfig(base_url="http://127.0.0.1:9/fhir")
    result = asyncio.run(cohort.run_cohort(Settings(), options, fhir, group="g1"))
    assert result.problems, result
    file, where, why = result.problems[0]
    assert file == "Observation.ndjson" and "1" in where and "not a FHIR resource" in why


def _transaction_time(tmp_path: Path) -> str | None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        return ledger.get_value("bulk_transaction_time")


def test_the_transaction_time_is_recorded_only_after_a_complete_clean_run(
    fhir_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group, _ = _load_group(fhir_base)
    bulk = fhirtis.io.BulkExportClient
    sent: list[object] = []
    real_kick_off, real_download = bulk.kick_off, bulk.download_to
    broken = {"line": True, "evaluation": False}

    async def kick_off(self: Any, *args: Any, **kwargs: Any) -> str:
        sent.append(kwargs.get("since"))
        return await real_kick_off(self, *args, **kwargs)

    async def download_to(self: Any, manifest: Any, directory: Any, *a: Any, **k: Any) -> Any:
        paths = await real_download(self, manifest, directory, *a, **k)
        if broken["line"]:
            with open(next(p for p in paths if p.name.startswith("Observation")), "ab") as f:
                f.write(b'{"resourceType": "Observation", "id": "cut-sh\n')
        return paths

    monkeypatch.setattr(bulk, "kick_off", kick_off)
    monkeypatch.setattr(bulk, "download_to", download_to)
    args = group_args(group, fhir_base, tmp_path)

    bad = runner.invoke(app, args)
    assert bad.exit_code == 1 and "input problem: Observation" in bad.stdout, bad.output
    assert sent == [None] and _transaction_time(tmp_path) is None

    # a run stopped during the evaluation (killed, or a fault) records nothing either
    broken["line"] = False
    real_run = cohort.run_ndjson

    async def stopped(*a: Any, **k: Any) -> Any:
        raise CohortError("stopped in the middle")

    monkeypatch.setattr(cohort, "run_ndjson", stopped)
    halted = runner.invoke(app, args)
    assert halted.exit_code == 1, halted.output
    assert sent == [None, None] and _transaction_time(tmp_path) is None
    monkeypatch.setattr(cohort, "run_ndjson", real_run)

    clean = runner.invoke(app, args)
    assert clean.exit_code == 0, clean.output
    assert clean.stdout.startswith("3 patients:"), clean.stdout
    assert sent == [None, None, None]  # still a full export: the earlier runs were not clean
    assert _transaction_time(tmp_path) is not None

    after = runner.invoke(app, args)
    assert after.exit_code == 0, after.output
    assert sent[-1] is not None  # a clean complete run: the next one asks only _since


def test_a_dask_run_that_meets_a_fault_prints_no_traceback(tmp_path: Path) -> None:
    folder = _export(tmp_path, 2)
    (folder / "Zz.ndjson").mkdir()  # listed as an NDJSON file, cannot be read
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fhirtis",
            *_cohort(folder, tmp_path, "--engine", "dask", "--workers", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "cannot read the NDJSON file" in proc.stderr, output
    assert "Traceback" not in output, output
    assert "run the same command again" in proc.stderr
