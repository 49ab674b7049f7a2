"""A bearer token that cannot be sent in an HTTP header is never sent, and never printed.

httpx refuses an illegal header value (a newline, a control character) with
``LocalProtocolError("Illegal header value b'Bearer <the whole token>'")``: fhirtis re-raised it
as it came, so ``fhirtis run``, ``capabilities`` and ``cohort`` died with a traceback that
printed the token on standard error (the service's journal, a container's log). The common
case is harmless in itself: a token set from a secret file keeps the file's final newline
(``kubectl create secret --from-file``, an ``.env`` file, a Docker secret), which is not part
of the token. Now a configured token (``FHIRTIS_FHIR__BEARER_TOKEN``, the terminology
server's) is read without the whitespace around it, as ``client_secret_path`` already is; one
that still cannot be sent is a settings error that names the setting, not the value; and an
access token from a token endpoint that cannot be sent fails the request with a
``MalformedResponse`` that does not quote it.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner, Result

from fhirtis.cli import app
from fhirtis.io import FhirClient, FhirClientConfig, FhirClientError, MalformedResponse
from fhirtis.io._terminology import TerminologyConfig
from tests.e2e.test_run import load
from tests.fhir.patients import responder

TOKEN = "ZZTOKENMARK-s32priv.7f3a"


def _everything_said(result: Result) -> str:
    """What a terminal would show: the output and any traceback."""
    text = result.stdout + result.stderr
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        text += "".join(traceback.format_exception(*result.exc_info))
    return text


def _chain_text(exc: BaseException) -> str:
    """Every message a traceback of ``exc`` prints (its causes and contexts too)."""
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 20:
        seen.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(seen)


def _run(fhir_base: str, token: str, monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    monkeypatch.setenv("FHIRTIS_FHIR__AUTH_MODE", "bearer")
    monkeypatch.setenv("FHIRTIS_FHIR__BEARER_TOKEN", token)
    return CliRunner().invoke(app, ["run", "--server", fhir_base, "--patient", "p1"])


def test_a_token_from_a_secret_file_is_sent_without_its_final_newline(
    fhir_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(fhir_base, responder())
    result = _run(fhir_base, TOKEN + "\n", monkeypatch)
    said = _everything_said(result)
    assert TOKEN not in said, said[-600:]
    assert result.exit_code == 0, said[-600:]


def test_a_token_that_cannot_be_sent_is_a_settings_error_naming_no_token(
    fhir_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(fhir_base, responder())
    result = _run(fhir_base, TOKEN + "\x01" + TOKEN, monkeypatch)
    said = _everything_said(result)
    assert TOKEN not in said, said[-600:]
    assert result.exit_code == 2, said[-600:]
    assert "fhir.bearer_token" in result.stderr


def test_the_configuration_models_strip_the_token_and_never_echo_a_bad_one() -> None:
    config = FhirClientConfig(base_url="https://ehr.example/fhir", bearer_token=f" {TOKEN}\r\n")  # type: ignore[arg-type]
    assert config.bearer_token is not None
    assert config.bearer_token.get_secret_value() == TOKEN
    terminology = TerminologyConfig(base_url="https://tx.example/fhir", bearer_token=f"{TOKEN}\n")  # type: ignore[arg-type]
    assert terminology.bearer_token is not None
    assert terminology.bearer_token.get_secret_value() == TOKEN
    for model, base in (
        (FhirClientConfig, "https://ehr.example/fhir"),
        (TerminologyConfig, "https://tx.example/fhir"),
    ):
        with pytest.raises(ValidationError) as raised:
            model(base_url=base, bearer_token=f"{TOKEN}\n{TOKEN}")  # type: ignore[arg-type]
        assert "bearer_token" in str(raised.value)
        assert TOKEN not in str(raised.value)


class _TokenAndFhir(BaseHTTPRequestHandler):
    """A token endpoint whose access token holds a newline, and a FHIR server (real sockets:
    httpx's header check is in its HTTP/1.1 transport, which a mocked transport skips)."""

    def _answer(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(
            {"access_token": f"{TOKEN}\n{TOKEN}", "token_type": "Bearer", "expires_in": 300}
        )

    def do_GET(self) -> None:
        self._answer({"resourceType": "Patient", "id": "p1"})

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def token_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenAndFhir)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_an_access_token_that_cannot_be_sent_fails_the_read_without_quoting_it(
    token_server: str,
) -> None:
    config = FhirClientConfig(
        base_url=f"{token_server}/fhir",
        auth_mode="client-secret",
        client_id="fhirtis",
        client_secret="s3cret",  # type: ignore[arg-type]
        scope="system/*.read",
        token_url=f"{token_server}/token",
        retry_max_attempts=1,
    )
    async with FhirClient(config) as fhir:
        with pytest.raises(FhirClientError) as raised:
            await fhir.read("Patient", "p1")
    assert isinstance(raised.value, MalformedResponse)
    assert "access_token" in str(raised.value)
    assert TOKEN not in _chain_text(raised.value)


def test_an_empty_token_is_no_token() -> None:
    """An environment variable set to nothing (``FHIRTIS_FHIR__BEARER_TOKEN=``) is no token: not
    an error where no token is used, ``auth_mode 'bearer' needs bearer_token`` where one is."""
    assert (
        FhirClientConfig(base_url="https://ehr.example/fhir", bearer_token=" \n").bearer_token
        is None
    )  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="needs bearer_token"):
        FhirClientConfig(base_url="https://ehr.example/fhir", auth_mode="bearer", bearer_token="")  # type: ignore[arg-type]
