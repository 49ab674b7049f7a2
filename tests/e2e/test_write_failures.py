"""When only the write fails, the computed result is still returned (CLI and HTTP) with the
write failure as an error issue, never called ``transient`` when the refusal is permanent; and
derived resources can go to another server than the one read from (``fhir.write_base_url``)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.io import FhirServerError
from fhirtis.pipeline.server import describe
from tests.api.test_evaluate_api import service
from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer, start_fhir_test_server

Json = dict[str, Any]
WRITE = {"resourceType": "Parameters", "parameter": [{"name": "write", "valueBoolean": True}]}
REFUSAL = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "business-rule", "diagnostics": "writes are closed"}],
}


class _RefusingWrites(BaseHTTPRequestHandler):
    """Forwards everything to the FHIR test server except writes: a transaction or batch that
    writes, a PUT or a POST of a resource gets 422 (a permanent refusal, not a missing
    capability)."""

    upstream = ""
    refused = 0

    def _forward(self, body: bytes | None) -> None:
        target = urlsplit(self.upstream)
        path = target.path + self.path.removeprefix("/fhir")
        connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host"}}
        connection.request(self.command, path, body=body, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        connection.close()

    def _refuse(self) -> None:
        type(self).refused += 1
        data = json.dumps(REFUSAL).encode()
        self.send_response(422)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sent = json.loads(body or b"{}")
        reads_only = sent.get("resourceType") == "Bundle" and all(
            (e.get("request") or {}).get("method") == "GET" for e in sent.get("entry") or []
        )
        if reads_only or self.path.rstrip("/").endswith("_search"):
            self._forward(body)
        else:
            self._refuse()

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._refuse()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing(fhir_base: str) -> Iterator[str]:
    _RefusingWrites.upstream = fhir_base
    _RefusingWrites.refused = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingWrites)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/fhir"
    finally:
        server.shutdown()
        server.server_close()


def test_cli_keeps_the_result_when_only_the_write_failed(fhir_base: str, refusing: str) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    result = CliRunner().invoke(
        app, ["run", "--patient", "p1", "--server", refusing, "--write", "--json"]
    )
    assert result.exit_code == 1  # the patient was not completed
    run = json.loads(result.stdout)["runs"][0]
    assert _RefusingWrites.refused >= 1
    assert run["status"] == "failed"
    assert run.get("error_code") != "transient"
    assert run["evaluation"]["assessments"], "the computed result is still returned"
    assert run["evaluation"]["ivig"]["cycles"]


async def test_http_keeps_the_result_when_only_the_write_failed(
    fhir_base: str, refusing: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    async with service(refusing) as api:
        r = await api.post(
            "/Patient/p1/$myositis-evaluate", headers={"Authorization": "Bearer t"}, json=WRITE
        )
    assert r.status_code == 200, r.text
    body = r.json()
    outcome = body["entry"][0]["resource"]
    assert outcome["resourceType"] == "OperationOutcome"
    errors = [i for i in outcome["issue"] if i["severity"] in {"error", "fatal"}]
    assert errors, outcome
    assert all(i["code"] != "transient" for i in errors)
    derived = {e["resource"]["resourceType"] for e in body["entry"][1:]}
    assert "Observation" in derived  # the computed result, not written


def test_write_base_url_sends_derived_resources_elsewhere(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = start_fhir_test_server(tmp_path)
    try:
        load(fhir_base, responder(dvt_after_cycle=2))
        monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", fhir_base)
        monkeypatch.setenv("FHIRTIS_FHIR__WRITE_BASE_URL", registry.base_url)
        monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
        fhir_server.reset_stats()
        first = CliRunner().invoke(app, ["run", "--patient", "p1", "--write", "--json"])
        assert first.exit_code == 0, first.output
        assert json.loads(first.stdout)["runs"][0]["status"] == "written"
        assert fhir_server.stats()["committed_writes"] == 0  # nothing written where it was read
        stored = registry.stats()["resources"]
        assert stored.get("Observation", 0) > 0 and stored.get("Provenance", 0) == 1
        registry.reset_stats()
        again = CliRunner().invoke(app, ["run", "--patient", "p1", "--write", "--json"])
        assert json.loads(again.stdout)["runs"][0]["status"] == "unchanged"
        assert registry.stats()["committed_writes"] == 0
        assert registry.stats()["resources"] == stored
    finally:
        registry.close()


def test_next_links_on_an_alias_of_the_server(
    fhir_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test server writes absolute `next` links on 127.0.0.1; configured as `localhost`, a
    second page is on another origin: refused, naming the setting, until
    FHIRTIS_FHIR__EQUIVALENT_ORIGINS says the two are the same server."""
    load(fhir_base, responder(dvt_after_cycle=2))
    alias = fhir_base.replace("127.0.0.1", "localhost")
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", alias)
    monkeypatch.setenv("FHIRTIS_FHIR__PAGE_SIZE", "2")  # several pages per search
    refused = CliRunner().invoke(app, ["run", "--patient", "p1", "--json"])
    run = json.loads(refused.stdout)["runs"][0]
    assert refused.exit_code == 1 and run["status"] == "failed"
    assert "FHIRTIS_FHIR__EQUIVALENT_ORIGINS" in run["error"]
    origin = fhir_base.split("/fhir", maxsplit=1)[0]
    monkeypatch.setenv("FHIRTIS_FHIR__EQUIVALENT_ORIGINS", json.dumps([origin]))
    allowed = CliRunner().invoke(app, ["run", "--patient", "p1", "--json"])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["runs"][0]["evaluation"]["assessments"]


@pytest.mark.parametrize(
    "outcome",
    [
        {"resourceType": "OperationOutcome", "issue": 5},
        {"resourceType": "OperationOutcome", "issue": [{"code": "invalid", "expression": 3}]},
        {"resourceType": "OperationOutcome", "issue": [{"code": "invalid", "expression": ["x"]}]},
    ],
)
def test_a_malformed_server_outcome_is_still_described(outcome: dict[str, object]) -> None:
    """A server's OperationOutcome whose issue or expression is not an array is malformed: the
    error is still described (codes and places where readable), never a TypeError."""
    exc = FhirServerError("HTTP 422", status=422, url="Observation", operation_outcome=outcome)
    text = describe(exc)
    assert text.startswith("HTTP 422")
    if outcome["issue"] != 5:
        assert "invalid" in text
