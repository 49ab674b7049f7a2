"""The in-memory FHIR R4 test server as a process: start, reset, stats, stop. The session-wide
fixtures using it are in ``tests/conftest.py``.

The server lives in ``tests/fhir_server`` (Node.js, Medplum's FHIR router). Install it once with::

    npm ci --prefix tests/fhir_server
"""

from __future__ import annotations

import contextlib
import selectors
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

REPO_ROOT: Path = Path(__file__).resolve().parents[1]
SERVER_DIR: Path = REPO_ROOT / "tests" / "fhir_server"
SERVER_SCRIPT: Path = SERVER_DIR / "server.mjs"
INSTALL_HINT: str = "npm ci --prefix tests/fhir_server"
STARTUP_TIMEOUT_S: float = 60.0
SHUTDOWN_TIMEOUT_S: float = 10.0
LISTENING_PREFIX: str = "LISTENING "


class FhirTestServer:
    """A running ``tests/fhir_server/server.mjs`` process."""

    def __init__(self, process: subprocess.Popen[str], root_url: str, log_path: Path) -> None:
        self.process: subprocess.Popen[str] = process
        self.root_url: str = root_url
        self.base_url: str = f"{root_url}/fhir"
        self.log_path: Path = log_path
        self._admin: httpx.Client = httpx.Client(base_url=f"{root_url}/admin", timeout=10.0)

    def reset(self) -> None:
        """Delete every resource (and its history) from the store; back to the start-up
        profile."""
        self._admin.post("/reset").raise_for_status()

    def set_profile(self, profile: str, capability_statement: str = "truthful") -> None:
        """Switch the server's vendor profile (and how its CapabilityStatement behaves:
        truthful, lie, missing, malformed) until the next :meth:`reset`."""
        self._admin.post(
            "/profile", json={"profile": profile, "capabilityStatement": capability_statement}
        ).raise_for_status()

    def reset_stats(self) -> None:
        """Zero the request counters."""
        self._admin.post("/reset-stats").raise_for_status()

    def stats(self) -> dict[str, Any]:
        """Request counters since the last reset, plus ``resources``: current counts per type."""
        response = self._admin.get("/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def health(self) -> dict[str, Any]:
        """Liveness information (FHIR base, Medplum version)."""
        response = self._admin.get("/health")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def log_tail(self, max_chars: int = 4000) -> str:
        """The end of the server's stderr log, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text[-max_chars:]

    def close(self) -> None:
        """Stop the server process and release every pipe and client."""
        self._admin.close()
        _stop_process(self.process)


def _stop_process(process: subprocess.Popen[str]) -> None:
    """Ask the server to exit (stdin EOF, then SIGTERM, then SIGKILL) and close its pipes."""
    if process.stdin is not None and not process.stdin.closed:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _read_listening_line(process: subprocess.Popen[str], deadline: float) -> str:
    """Wait for the ``LISTENING host:port`` line on the server's stdout."""
    stdout: IO[str] | None = process.stdout
    assert stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.1):
                if process.poll() is not None:
                    break
                continue
            line = stdout.readline()
            if line.startswith(LISTENING_PREFIX):
                return line[len(LISTENING_PREFIX) :].strip()
            if line == "":
                break
    return ""


def _wait_until_ready(root_url: str, process: subprocess.Popen[str], deadline: float) -> bool:
    """Poll ``/admin/health`` until the server answers."""
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.get(f"{root_url}/admin/health").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    return False


def start_fhir_test_server(log_dir: Path, *extra_args: str) -> FhirTestServer:
    """Start ``server.mjs`` on a free port (``extra_args``: e.g. ``--profile oracle-like``);
    fails the test (pytest.fail) with the server log when it cannot start."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js (>= 20.19) is required for the e2e tests but `node` is not on PATH.")
    if not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.fail(
            f"The FHIR test server dependencies are not installed ({SERVER_DIR / 'node_modules'} "
            f"is missing). Run `{INSTALL_HINT}` from the repository root."
        )

    log_path = log_dir / "server.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        process: subprocess.Popen[str] = subprocess.Popen(
            [
                node,
                str(SERVER_SCRIPT),
                "--port",
                "0",
                "--watch-stdin",
                "--log-requests",
                *extra_args,
            ],
            cwd=SERVER_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            encoding="utf-8",
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    address = _read_listening_line(process, deadline)
    root_url = f"http://{address}"
    if not address or not _wait_until_ready(root_url, process, deadline):
        _stop_process(process)
        log = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        pytest.fail(
            f"The FHIR test server did not start (exit code {process.returncode}).\n"
            f"If dependencies are missing, run `{INSTALL_HINT}`.\nServer log:\n{log}"
        )

    return FhirTestServer(process, root_url, log_path)
