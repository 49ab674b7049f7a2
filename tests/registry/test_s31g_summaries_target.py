"""``--summaries`` naming something other than a plain file (sweep s31g). The summaries are
written beside the target and renamed over it (whole or not at all), which replaced whatever
the path named: a symbolic link became a plain file (its target left stale), and a named pipe
or a device (``/dev/stdout``; run as root, ``/dev/full``, whose full disk was then never
reported) was replaced by a plain file that nobody reads, while the run said it succeeded."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from fhirtis.cli import app
from tests.registry.cohort_cli import ndjson_args
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()


def _export(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "export"
    write_ndjson(make_cohort(n, seed=31), folder)
    return folder


def test_summaries_through_a_link_write_its_target_and_keep_the_link(tmp_path: Path) -> None:
    folder = _export(tmp_path, 2)
    target = tmp_path / "store" / "summaries.ndjson"
    target.parent.mkdir()
    target.write_bytes(b"stale\n")
    link = tmp_path / "latest.ndjson"
    link.symlink_to(target)
    r = runner.invoke(app, ndjson_args(folder, tmp_path, "--summaries", str(link)))
    assert r.exit_code == 0, r.output
    assert link.is_symlink()  # the link is kept, not replaced by a file of its own
    lines = target.read_bytes().splitlines()
    assert len(lines) == 2 and b"stale" not in lines  # the target holds this run's patients
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not list(target.parent.glob(".*.part")) and not list(tmp_path.glob(".*.part"))


def test_summaries_into_a_named_pipe_go_down_the_pipe(tmp_path: Path) -> None:
    folder = _export(tmp_path, 2)
    pipe = tmp_path / "summaries.fifo"
    os.mkfifo(pipe, 0o600)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # a reader is waiting
    try:
        r = runner.invoke(app, ndjson_args(folder, tmp_path, "--summaries", str(pipe)))
        assert r.exit_code == 0, r.output
        assert stat.S_ISFIFO(pipe.stat().st_mode)  # still the pipe, not a plain file
        received = b""
        while chunk := os.read(reader, 1 << 16):
            received += chunk
    except BlockingIOError:
        received = b""
    finally:
        os.close(reader)
    assert len(received.splitlines()) == 2
