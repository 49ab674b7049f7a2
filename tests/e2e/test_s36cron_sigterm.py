"""``fhirtis run`` and ``fhirtis cohort`` stopped by SIGTERM, as cron wrappers, ``docker stop``
and Kubernetes stop them (SIGTERM, then SIGKILL after the grace period, 30 s by default).

The registry image runs ``docker run --entrypoint fhirtis IMAGE cohort …`` (docs/operations.md):
fhirtis is then PID 1 of its container, and the kernel does not deliver a signal whose action
is the default to PID 1. fhirtis installed no SIGTERM handler, so the run went on writing until
the SIGKILL, and the job ended with 137 (what Kubernetes also reports for an out-of-memory kill)
rather than stopping at once with the status 143 of SIGTERM. Stopped, the next run settles what
a kill leaves (README: "Kill the run at any moment … run it again")."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_run import search
from tests.fhir_test_server import FhirTestServer
from tests.registry.test_cohort import _export, _load

ROOT = Path(__file__).parents[2]


class SilentServer:
    """A FHIR base on loopback that accepts connections and never answers: a run waits on it.
    ``asked`` is set once fhirtis has connected (it is then inside its run, not importing)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(50)
        self.listener.settimeout(0.2)
        self.base = f"http://127.0.0.1:{self.listener.getsockname()[1]}/fhir"
        self.asked = threading.Event()
        self.stop = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                continue
            self.asked.set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for conn in self.held:
            conn.close()
        self.listener.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}


def _waiting(process: subprocess.Popen[bytes], server: SilentServer) -> None:
    """Once fhirtis is inside its run, waiting on the server (its imports done)."""
    if not server.asked.wait(120):
        process.kill()
        pytest.fail(f"fhirtis never asked the server: {process.communicate()}")
    time.sleep(0.5)
    assert process.poll() is None, process.communicate()


@pytest.mark.parametrize("command", ["run", "cohort"])
def test_sigterm_stops_with_status_143_and_says_so(
    silent_server: SilentServer, tmp_path: Path, command: str
) -> None:
    args = ["run", "--server", silent_server.base, "--patient", "p1", "--write"]
    if command == "cohort":
        args = ["cohort", "--server", silent_server.base, "--patients", "p1,p2", "--write"]
        args += ["--ledger", str(tmp_path / "l.sqlite"), "--no-progress"]
    process = subprocess.Popen(
        [sys.executable, "-m", "fhirtis", *args],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _waiting(process, silent_server)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert f"fhirtis {command}: stopped by SIGTERM".encode() in err


def _pid1_available() -> bool:
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    for extra in ([], ["--user", "--map-root-user"]):
        probe = ["unshare", *extra, "--pid", "--fork", "--mount-proc", "true"]
        try:
            if subprocess.run(probe, capture_output=True, timeout=20, check=False).returncode == 0:
                return True
        except (OSError, subprocess.TimeoutExpired):
            continue
    return False


def _pid1_prefix() -> list[str]:
    plain = ["unshare", "--pid", "--fork", "--mount-proc", "true"]
    if subprocess.run(plain, capture_output=True, timeout=20, check=False).returncode == 0:
        return plain[:-1]
    return ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"]


@pytest.mark.skipif(not _pid1_available(), reason="needs unshare for a PID namespace")
def test_sigterm_stops_fhirtis_as_pid_1_of_its_container(
    silent_server: SilentServer, tmp_path: Path
) -> None:
    """As in ``docker run --entrypoint fhirtis IMAGE cohort …``: fhirtis is PID 1."""
    args = ["cohort", "--server", silent_server.base, "--patients", "p1", "--write"]
    args += ["--ledger", str(tmp_path / "l.sqlite"), "--no-progress"]
    wrapper = subprocess.Popen(
        [*_pid1_prefix(), sys.executable, "-m", "fhirtis", *args],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _waiting(wrapper, silent_server)
    children = Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children").read_text().split()
    (fhirtis,) = children  # PID 1 of the new namespace
    os.kill(int(fhirtis), signal.SIGTERM)
    try:
        _, err = wrapper.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(int(fhirtis), signal.SIGKILL)  # what Kubernetes does at the grace period's end
        wrapper.communicate(timeout=30)
        pytest.fail("fhirtis as PID 1 went on after SIGTERM")
    assert wrapper.returncode == 128 + signal.SIGTERM, err
    assert b"fhirtis cohort: stopped by SIGTERM" in err


_TERM_AFTER_WRITES = """
import os, runpy, signal, sys
from fhirtis.pipeline.server import RunStatus
from fhirtis.registry import cohort
real, written, after = cohort.settle, 0, int(sys.argv[1])
async def settle(*a, **k):
    global written
    run = await real(*a, **k)
    if run.status is RunStatus.WRITTEN:
        written += 1
        if written >= after:
            os.kill(os.getpid(), signal.SIGTERM)
    return run
cohort.settle = settle
sys.argv = ["fhirtis", *sys.argv[2:]]
runpy.run_module("fhirtis", run_name="__main__")
"""


def test_cohort_stopped_by_sigterm_mid_write_is_settled_by_the_next_night(
    tmp_path: Path, fhir_base: str, fhir_server: FhirTestServer
) -> None:
    """SIGTERM right after the 2nd patient's write reached the server, before the ledger
    recorded it: status 143; the next run finishes the cohort, exit 0, nothing twice; the
    night after writes nothing."""
    n = 4
    folder = _export(tmp_path, n, seed=31)
    _load(fhir_base, folder)
    args = ["cohort", "--ndjson", str(folder), "--server", fhir_base, "--write"]
    args += ["--ledger", str(tmp_path / "l.sqlite"), "--work-dir", str(tmp_path / "w")]
    args += ["--concurrency", "1", "--no-progress"]
    stopped = subprocess.run(
        [sys.executable, "-c", _TERM_AFTER_WRITES, "2", *args],
        capture_output=True,
        timeout=300,
        env=_env(),
        check=False,
    )
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert b"fhirtis cohort: stopped by SIGTERM" in stopped.stderr
    assert len(search(fhir_base, "Provenance")) == 2
    nights = []
    for _ in range(2):
        night = subprocess.run(
            [sys.executable, "-m", "fhirtis", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=_env(),
            check=False,
        )
        assert night.returncode == 0, night.stdout + night.stderr
        nights.append(night.stdout)
    assert f"skipped (unchanged since the ledger) {n}" in nights[1]
    assert len(search(fhir_base, "Provenance")) == n
    for rtype in ("Observation", "Flag", "DetectedIssue"):
        ids = Counter(
            f"{i['system']}|{i['value']}"
            for r in search(fhir_base, rtype)
            for i in r.get("identifier", [])
            if "fhirtis" in i.get("system", "")
        )
        assert all(count == 1 for count in ids.values()), rtype
