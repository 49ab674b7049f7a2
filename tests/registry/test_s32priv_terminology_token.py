"""A registry run sends the terminology server its real token, not pydantic's mask.

The NDJSON and Group runs hand the settings to the evaluation of each partition as JSON
(``Settings.model_dump_json``), on the local engine as on Dask workers. Pydantic writes every
``SecretStr`` there as ``**********``: the partition read ``terminology.bearer_token`` back as
that mask and sent ``Authorization: Bearer **********``. A terminology server that requires its
token refused every question, so each problem-list code the shipped expansions lack was left
unclassified (a malignancy or a thrombosis history coded below the listed concepts was no risk
factor), where ``fhirtis evaluate`` and ``fhirtis run`` with the same settings classified them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.io._terminology import TerminologyConfig
from fhirtis.settings import Settings
from tests.registry.test_cohort import export_of_bundle

TOKEN = "tx-token-s32priv.42"


@pytest.fixture
def guarded_terminology(fhir_base: str) -> Iterator[tuple[str, list[str]]]:
    """The test FHIR server's ``$subsumes`` behind a gate that requires ``Bearer TOKEN`` (401
    otherwise); returns its base URL and the Authorization headers it was sent."""
    seen: list[str] = []

    class Gate(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            given = self.headers.get("Authorization", "")
            seen.append(given)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if given != f"Bearer {TOKEN}":
                status, data, kind = 401, b"", "text/plain"
            else:
                answer = httpx.request(
                    self.command,
                    fhir_base + self.path.removeprefix("/fhir"),
                    content=body,
                    headers={"Content-Type": self.headers.get("Content-Type", "")},
                    timeout=30,
                )
                status, data = answer.status_code, answer.content
                kind = answer.headers.get("Content-Type", "application/fhir+json")
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _forward  # noqa: N815

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_cohort_run_sends_the_terminology_server_its_token(
    engine: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    guarded_terminology: tuple[str, list[str]],
) -> None:
    base, seen = guarded_terminology
    folder = export_of_bundle("problem-list-snomed-descendants.json", tmp_path / "export")
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    monkeypatch.setenv("FHIRTIS_TERMINOLOGY__BASE_URL", base)
    monkeypatch.setenv("FHIRTIS_TERMINOLOGY__BEARER_TOKEN", TOKEN)
    out = tmp_path / "s.ndjson"
    result = CliRunner().invoke(
        app,
        [
            "cohort", "--ndjson", str(folder), "--summaries", str(out),
            "--ledger", str(tmp_path / "l.sqlite"), "--work-dir", str(tmp_path / "work"),
            "--engine", engine, "--workers", "1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen, "the terminology server was not asked"
    assert set(seen) == {f"Bearer {TOKEN}"}, sorted(set(seen))
    summary = out.read_text()
    assert "malignancy" in summary and "thrombosis-history" in summary


def test_the_token_given_to_partitions_is_not_shown_where_their_arguments_are() -> None:
    """A Dask worker logs a failed task with its arguments' repr (``Compute Failed``)."""
    from fhirtis.registry.evaluate import settings_for_partitions  # noqa: PLC0415 - the fix

    config = TerminologyConfig(base_url="https://tx.example/fhir", bearer_token=TOKEN)  # type: ignore[arg-type]
    given = settings_for_partitions(Settings(terminology=config))
    assert TOKEN not in repr(given) and TOKEN not in str(given)
    assert TOKEN in given.get_secret_value()
