"""An incremental (``_since``) Group run reports the whole Group, not only the members whose data
changed: a ``_since`` export holds only changed data (Bulk Data IG v2, ``_since``), so the
Group's current members (``GET Group/[id]``, R4 ``Group.member``: ``inactive`` and ``period``
say who is no longer a member) that the ledger holds under the same server and run key are
counted as skipped and are in ``--summaries``; a member the ledger does not hold is read and
evaluated, never dropped; a member that left the Group is not reported."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner, Result

from fhirtis.cli import app
from fhirtis.registry import group_export
from tests.fhir_test_server import FhirTestServer
from tests.registry.cohort_cli import group_args, refuse_group_reads
from tests.registry.test_group_export import _load_group

runner = CliRunner()


def _put_group(base: str, group: str, members: list[dict[str, Any]]) -> None:
    body = {"resourceType": "Group", "id": group, "type": "person", "actual": True}
    if members:
        body["member"] = members
    httpx.put(f"{base}/Group/{group}", json=body, timeout=60).raise_for_status()


def _member(pid: str, **extra: Any) -> dict[str, Any]:
    return {"entity": {"reference": f"Patient/{pid}"}, **extra}


def _summary_patients(path: Path) -> list[str]:
    return sorted(
        str(orjson.loads(line)["patient"]).removeprefix("Patient/")
        for line in path.read_bytes().splitlines()
    )


def _written_once(fhir_base: str, tmp_path: Path) -> tuple[str, list[str]]:
    """The Group of three members (a fourth patient's data on the server too) and its first,
    full run, written."""
    group, patients = _load_group(fhir_base)
    first = runner.invoke(app, group_args(group, fhir_base, tmp_path, "--write"))
    assert first.stdout.startswith("3 patients: written 3;"), first.output
    return group, patients


def _weekly(group: str, fhir_base: str, tmp_path: Path) -> tuple[Result, Path]:
    """The next run of the Group, written, with its ``--summaries`` file; it exits 0."""
    out = tmp_path / "weekly.ndjson"
    result = runner.invoke(
        app, group_args(group, fhir_base, tmp_path, "--write", "--summaries", str(out))
    )
    assert result.exit_code == 0, result.output
    return result, out


def test_an_unchanged_group_reports_every_member_as_skipped(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    group, patients = _written_once(fhir_base, tmp_path)
    fhir_server.reset_stats()
    again, out = _weekly(group, fhir_base, tmp_path)
    assert again.stdout.startswith("3 patients: none; skipped (unchanged since the ledger) 3;"), (
        again.stdout
    )
    assert fhir_server.stats()["committed_writes"] == 0  # nothing written for skipped members
    assert _summary_patients(out) == sorted(patients[:3])
    # and once more: the same (idempotent)
    third = runner.invoke(
        app, group_args(group, fhir_base, tmp_path, "--write", "--summaries", str(out))
    )
    assert third.stdout.startswith("3 patients: none; skipped (unchanged since the ledger) 3;")
    assert _summary_patients(out) == sorted(patients[:3])


def test_a_new_member_without_new_data_is_evaluated_not_dropped(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    # patients[3]'s data is on the server already
    group, patients = _written_once(fhir_base, tmp_path)
    _put_group(fhir_base, group, [_member(p) for p in patients])
    added, out = _weekly(group, fhir_base, tmp_path)
    # the test server's _since export does not return the new member's older data (the IG
    # lets it); fhirtis reads that member whole and writes its results
    assert added.stdout.startswith(
        "4 patients: written 1; skipped (unchanged since the ledger) 3;"
    ), added.stdout
    assert "not in the ledger under this run key" in added.stdout
    assert _summary_patients(out) == sorted(patients)


def test_members_that_left_the_group_are_not_reported(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    group, patients = _load_group(fhir_base)
    _put_group(fhir_base, group, [_member(p) for p in patients])
    first = runner.invoke(app, group_args(group, fhir_base, tmp_path, "--write"))
    assert first.stdout.startswith("4 patients: written 4;"), first.output
    _put_group(
        fhir_base,
        group,
        [
            # patients[0] removed
            _member(patients[1], inactive=True),
            _member(patients[2], period={"start": "2019-01-01", "end": "2020-06-30"}),
            _member(patients[3], period={"start": "2019-01-01", "end": "2999-12-31"}),
        ],
    )
    again, out = _weekly(group, fhir_base, tmp_path)
    assert again.stdout.startswith("1 patients: none; skipped (unchanged since the ledger) 1;"), (
        again.stdout
    )
    assert _summary_patients(out) == [patients[3]]


@pytest.mark.parametrize("group_read", ["lists-no-members", "fails"])
def test_a_group_read_without_members_falls_back_to_the_last_full_export(
    fhir_server: FhirTestServer,
    fhir_base: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    group_read: str,
) -> None:
    """Some servers' Group read leaves ``member`` out (a large Group), or the read fails: then
    the members the ledger recorded at the last full export of this Group are the cohort, and
    the run says so."""
    group, patients = _written_once(fhir_base, tmp_path)
    if group_read == "lists-no-members":
        _put_group(fhir_base, group, [])
    else:
        refuse_group_reads(monkeypatch)
    again, out = _weekly(group, fhir_base, tmp_path)
    assert again.stdout.startswith("3 patients: none; skipped (unchanged since the ledger) 3;"), (
        again.stdout
    )
    assert "the ledger recorded at the last clean run of this Group" in again.stdout
    assert _summary_patients(out) == sorted(patients[:3])


def test_an_incremental_run_killed_mid_write_resumes_with_the_whole_group(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    """SIGKILL right after the added member's write reached the server, before the ledger
    recorded it (tests/registry/kill_after_writes.py): the next run exports _since the same
    time again (none was recorded), finds that member's results on the server (unchanged, not
    written twice) and reports the whole Group."""
    group, patients = _written_once(fhir_base, tmp_path)
    _put_group(fhir_base, group, [_member(p) for p in patients])
    args = [*group_args(group, fhir_base, tmp_path, "--write", "--concurrency", "1")]
    killer = [sys.executable, str(Path(__file__).with_name("kill_after_writes.py")), "1"]
    killed = subprocess.run([*killer, *args], capture_output=True, timeout=600, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    fhir_server.reset_stats()
    out = tmp_path / "weekly.ndjson"
    cmd = [sys.executable, "-m", "fhirtis", *args, "--summaries", str(out)]
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.startswith(
        "4 patients: unchanged 1; skipped (unchanged since the ledger) 3;"
    ), resumed.stdout
    assert fhir_server.stats()["committed_writes"] == 0
    assert _summary_patients(out) == sorted(patients)


@pytest.mark.parametrize(
    ("end", "ended"),
    [
        ("2026-12-04", True),
        ("2026-12-05", False),  # a date ends with its day (FHIR dateTime precision)
        ("2026-11", True),
        ("2026-12", False),
        ("2025", True),
        ("2026-12-05T09:59:59Z", True),
        ("2026-12-05T10:00:01+00:00", False),
        ("2026-12-05T11:30:00+02:00", True),  # 09:30 UTC
    ],
)
def test_a_member_period_end_is_past_at_its_own_precision(end: str, ended: bool) -> None:
    now = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    assert group_export._ended(end, now) is ended


def test_the_fallback_members_include_one_added_after_the_full_export(
    fhir_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The members kept for the fallback are those of the last clean run that knew them (a
    full export or a Group read), not only of the full export: a member added since is kept."""
    group, patients = _written_once(fhir_base, tmp_path)
    _put_group(fhir_base, group, [_member(p) for p in patients])
    added = runner.invoke(app, group_args(group, fhir_base, tmp_path, "--write"))
    assert added.stdout.startswith("4 patients: written 1;"), added.output
    refuse_group_reads(monkeypatch)
    again, out = _weekly(group, fhir_base, tmp_path)
    assert again.stdout.startswith("4 patients: none; skipped (unchanged since the ledger) 4;"), (
        again.stdout
    )
    assert _summary_patients(out) == sorted(patients)
