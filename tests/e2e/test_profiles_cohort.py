"""``fhirtis cohort --patients … --write`` against every vendor profile of the test server, and a
SIGKILL mid-write on the no-transaction path (single requests) followed by a resume.

The kill point is deterministic and needs no hook in fhirtis: the cohort runs in a subprocess
talking to a small proxy in this test, which forwards to the test server and SIGKILLs the
subprocess right after forwarding the second write request of the second patient written
(``--concurrency 1``: the first patient is then complete and in the ledger, the second has two
resources stored, no Provenance, and no ledger entry).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.fhir.derive import DERIVED_TYPES
from fhirtis.io._capabilities import CACHE
from fhirtis.registry.ledger import Ledger
from tests.e2e.test_profiles import LACKS, PROFILES
from tests.e2e.test_run import load, search
from tests.fhir_test_server import FhirTestServer
from tests.synthetic import make_cohort

Json = dict[str, Any]
N = 4
SEED = 31
IDS = [f"syn{i:06d}" for i in range(N)]
WRITTEN = (*DERIVED_TYPES, "Provenance")
DERIVED_SYSTEM = "http://fhirtis.org/fhir/identifier/derived"
runner = CliRunner()


def _load_cohort(base: str, n: int = N) -> None:
    for patient_bundle in make_cohort(n, SEED):
        load(base, patient_bundle)


def _counts(server: FhirTestServer) -> dict[str, int]:
    resources: dict[str, int] = server.stats()["resources"]
    return {t: resources.get(t, 0) for t in WRITTEN}


def _cohort(base: str, ledger: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        [
            "cohort",
            "--patients",
            ",".join(IDS),
            "--server",
            base,
            "--write",
            "--ledger",
            str(ledger),
            "--no-progress",
            *extra,
        ],
    )
    return result.exit_code, result.stdout


def _derived_identifiers(server: FhirTestServer) -> list[str]:
    """Every stored derived identifier (one entry per stored copy), searched on the full
    profile (oracle-like has no identifier search on Observation)."""
    server.set_profile("full")
    out: list[str] = []
    for rtype in DERIVED_TYPES:
        for r in search(server.base_url, rtype, identifier=f"{DERIVED_SYSTEM}|"):
            idents = r.get("identifier", [])
            for ident in idents if isinstance(idents, list) else [idents]:
                if ident.get("system") == DERIVED_SYSTEM:
                    out.append(f"{rtype} {ident['value']}")
    return out


@pytest.fixture(scope="module")
def full_cohort_written(
    fhir_server: FhirTestServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, int]:
    """What ``fhirtis cohort --patients … --write`` stores on the full profile (the reference)."""
    fhir_server.reset()
    CACHE.forget()  # module scope: set up before the per-test autouse fixture forgets it
    _load_cohort(fhir_server.base_url)
    before = _counts(fhir_server)
    code, out = _cohort(fhir_server.base_url, tmp_path_factory.mktemp("full") / "l.sqlite")
    assert code == 0, out
    after = _counts(fhir_server)
    written = {t: after[t] - before[t] for t in WRITTEN}
    assert written["Provenance"] == N and written["Flag"] > 0
    return written


@pytest.mark.parametrize("profile", PROFILES)
def test_cohort_write_per_profile_then_nothing(
    fhir_server: FhirTestServer,
    fhir_base: str,
    full_cohort_written: dict[str, int],
    profile: str,
    tmp_path: Path,
) -> None:
    _load_cohort(fhir_base)  # loaded on the full profile (transactions)
    fhir_server.set_profile(profile)
    before = _counts(fhir_server)
    code, out = _cohort(fhir_base, tmp_path / "first.sqlite")
    assert code == 0, out
    assert f"written {N}" in out
    written = {t: _counts(fhir_server)[t] - before[t] for t in WRITTEN}
    expected = {t: (0 if t in LACKS[profile] else n) for t, n in full_cohort_written.items()}
    assert written == expected

    # A second run with a fresh ledger re-checks every patient against the server: nothing
    # is committed (with the same ledger every patient would be skipped without a request).
    fhir_server.reset_stats()
    code, out = _cohort(fhir_base, tmp_path / "second.sqlite")
    assert code == 0, out
    assert f"unchanged {N}" in out
    assert fhir_server.stats()["committed_writes"] == 0
    idents = _derived_identifiers(fhir_server)
    assert len(idents) == len(set(idents))


# -- SIGKILL mid-write, then resume -----------------------------------------------------------

PATIENT_REF = re.compile(rb'"Patient/([A-Za-z0-9\-.]{1,64})"')
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def _is_write(method: str, path: str, body: bytes) -> bool:
    if method not in {"POST", "PUT", "DELETE", "PATCH"}:
        return False
    if method == "POST" and path.rstrip("/").endswith("/fhir"):  # a batch: of searches?
        entries = orjson.loads(body).get("entry", [])
        return any(e["request"]["method"] != "GET" for e in entries)
    return True


class KillingProxy:
    """Forwards every request to ``upstream``; rewrites the upstream origin in response bodies
    (search ``next`` links) to its own; after forwarding the ``at``-th write request naming a
    patient other than the first patient written, SIGKILLs ``victim`` (set once started)."""

    def __init__(self, upstream_root: str, at: int) -> None:
        self.upstream_root = upstream_root
        self.at = at
        self.victim: int | None = None
        self.killed = threading.Event()
        self.writes: list[str] = []  # "METHOD path" of each write forwarded
        self._first_patient: str | None = None
        self._later_writes = 0
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=upstream_root, timeout=60.0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.handle(self, body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        answer = self._http.request(handler.command, handler.path, content=body, headers=headers)
        kill = False
        if _is_write(handler.command, handler.path, body):
            with self._lock:
                self.writes.append(f"{handler.command} {handler.path.split('?')[0]}")
                named = {m.decode() for m in PATIENT_REF.findall(body)}
                if self._first_patient is None and named:
                    self._first_patient = sorted(named)[0]
                elif named and self._first_patient not in named:
                    self._later_writes += 1
                    kill = self._later_writes == self.at and self.victim is not None
        if kill:
            assert self.victim is not None
            os.kill(self.victim, signal.SIGKILL)
            self.killed.set()
        content = answer.content.replace(self.upstream_root.encode(), self.root.encode())
        handler.send_response(answer.status_code)
        for k, v in answer.headers.items():
            if k.lower() not in HOP_BY_HOP | {"content-encoding"}:
                handler.send_header(k, v.replace(self.upstream_root, self.root))
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        with contextlib.suppress(OSError):  # the client may have been killed
            handler.wfile.write(content)

    def __enter__(self) -> KillingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._http.close()


@pytest.fixture
def proxy(fhir_server: FhirTestServer, fhir_base: str) -> Iterator[KillingProxy]:
    with KillingProxy(fhir_server.root_url, at=2) as p:
        yield p


def test_sigkill_mid_write_then_resume_on_no_transaction(
    fhir_server: FhirTestServer, fhir_base: str, proxy: KillingProxy, tmp_path: Path
) -> None:
    _load_cohort(fhir_base)
    fhir_server.set_profile("no-transaction")
    ledger = tmp_path / "l.sqlite"

    def cmd(base: str, ledger: Path = ledger) -> list[str]:
        return [
            sys.executable,
            "-m",
            "fhirtis",
            "cohort",
            "--patients",
            ",".join(IDS),
            "--server",
            base,
            "--write",
            "--ledger",
            str(ledger),
            "--concurrency",
            "1",
            "--no-progress",
        ]

    proc = subprocess.Popen(
        cmd(f"{proxy.root}/fhir"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    proxy.victim = proc.pid
    try:
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, stderr
    assert proxy.killed.is_set()
    assert proxy.writes and all(w != "POST /fhir" for w in proxy.writes)  # single requests
    with Ledger(ledger) as book:
        recorded = book.counts().get("written", 0)
    # the ledger commits in batches: the first patient is recorded or not yet; the second, in
    # flight, never
    assert recorded in {0, 1}
    stored_before = Counter(_derived_identifiers(fhir_server))
    assert len(stored_before) > 2  # the first patient's, and two of the second's
    fhir_server.set_profile("no-transaction")

    resumed = subprocess.run(
        cmd(fhir_base), capture_output=True, text=True, timeout=600, check=False
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # The resume talks to the server directly, not through the proxy: another server URL, so
    # the ledger (keyed on the server written to) skips nothing and every patient is read
    # again: the first is found unchanged, the killed one and the rest are written.
    assert "skipped (unchanged since the ledger) 0" in resumed.stdout
    assert f"written {N - 1}" in resumed.stdout and "unchanged 1" in resumed.stdout
    with Ledger(ledger) as book:
        assert book.counts() == {"written": N - 1, "unchanged": 1}
    idents = _derived_identifiers(fhir_server)
    assert len(idents) == len(set(idents)), "a duplicate after the resume"
    assert set(stored_before) <= set(idents)
    fhir_server.set_profile("no-transaction")
    # Every patient has its risk Flag; every Provenance names distinct resources.
    assert len(search(fhir_base, "Flag")) == N
    provenances = search(fhir_base, "Provenance")
    targets = [t["reference"] for p in provenances for t in p["target"]]
    assert len(targets) == len(set(targets))
    assert len(provenances) == N  # the killed patient's Provenance was posted on resume
    # ... and names the two resources written before the kill too: every derived resource is
    # named by a Provenance
    stored = {
        f"{rtype}/{r['id']}"
        for rtype in DERIVED_TYPES
        for r in search(fhir_base, rtype, identifier=f"{DERIVED_SYSTEM}|")
    }
    assert stored and stored <= set(targets)

    # And nothing is left to write: a fresh ledger finds every patient unchanged.
    fhir_server.reset_stats()
    again = subprocess.run(
        cmd(fhir_base, tmp_path / "fresh.sqlite"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"unchanged {N}" in again.stdout
    assert fhir_server.stats()["committed_writes"] == 0
