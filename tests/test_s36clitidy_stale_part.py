"""A killed ``fhirtis cohort --summaries OUT`` left its ``.OUT.{pid}.part`` beside OUT for ever
(session s36, helper clitidy).

The summaries (and ``evaluate --out`` files) are written beside their target and renamed, and a
run that fails or is stopped removes its part; a run killed outright (SIGKILL, the OOM killer,
a power cut) runs no handler, and its part, a copy of patient summaries, stayed. Now the next
write of the same file removes the parts of that name whose process no longer exists, and
nothing else: not another file's part, not a live process's, not a part name with no pid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fhirtis.cli._common import part_path, write_private
from fhirtis.cli.registry import _write_summaries


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftovers(folder: Path, dead: int) -> dict[str, Path]:
    files = {
        "stale": folder / f".summaries.ndjson.{dead}.part",
        "live": folder / f".summaries.ndjson.{os.getppid()}.part",  # a process that exists
        "other": folder / f".other.ndjson.{dead}.part",
        "no-pid": folder / ".summaries.ndjson.x1.part",
        "plain": folder / "summaries.ndjson.part",
    }
    for path in files.values():
        path.write_bytes(b"{}\n")
    return files


def test_summaries_remove_a_killed_runs_part_of_the_same_name_only(tmp_path: Path) -> None:
    dead = _dead_pid()
    files = _leftovers(tmp_path, dead)
    out = tmp_path / "summaries.ndjson"
    _write_summaries(tmp_path / "ledger.sqlite", out, 1)
    assert out.is_file()
    assert not files["stale"].exists()
    assert all(files[k].exists() for k in ("live", "other", "no-pid", "plain"))


def test_write_private_removes_a_killed_runs_part(tmp_path: Path) -> None:
    dead = _dead_pid()
    files = _leftovers(tmp_path, dead)
    write_private(tmp_path / "summaries.ndjson", b"x\n")
    assert (tmp_path / "summaries.ndjson").read_bytes() == b"x\n"
    assert not files["stale"].exists()
    assert all(files[k].exists() for k in ("live", "other", "no-pid", "plain"))
    assert part_path(tmp_path / "a") == tmp_path / f".a.{os.getpid()}.part"


def test_a_link_named_like_a_stale_part_is_left(tmp_path: Path) -> None:
    dead = _dead_pid()
    target = tmp_path / "kept"
    target.write_bytes(b"k")
    link = tmp_path / f".summaries.ndjson.{dead}.part"
    link.symlink_to(target)
    write_private(tmp_path / "summaries.ndjson", b"x\n")
    assert link.is_symlink() and target.read_bytes() == b"k"
