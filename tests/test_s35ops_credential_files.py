"""An integrator's first set-up (session s35, helper ops): the credential file the FHIR settings
name (SMART Backend Services' ``private_key_path``, client credentials' ``client_secret_path``)
is missing, is a folder, cannot be read or holds no usable key.

README: "Server, auth, paging, retries and timeouts come from settings"; a setting that cannot be
used is a usage error (exit 2) with one line naming it. Such a file was read only when the FHIR
client was made, after the settings were checked: ``fhirtis run``, ``capabilities``, ``cohort``
and ``serve`` ended in a Python traceback (``FileNotFoundError``, ``ValueError: the private key
is not a PEM RSA key``), exit 1, naming no setting (and ``cohort`` had made its ledger)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app

runner = CliRunner()
BASE = "http://127.0.0.1:9/fhir"  # nothing is sent: the settings are refused first


def _smart(key: Path) -> dict[str, str]:
    return {
        "FHIRTIS_FHIR__BASE_URL": BASE,
        "FHIRTIS_FHIR__AUTH_MODE": "smart-backend",
        "FHIRTIS_FHIR__CLIENT_ID": "fhirtis",
        "FHIRTIS_FHIR__KID": "k1",
        "FHIRTIS_FHIR__SCOPE": "system/*.read",
        "FHIRTIS_FHIR__TOKEN_URL": "http://127.0.0.1:9/token",
        "FHIRTIS_FHIR__PRIVATE_KEY_PATH": str(key),
    }


def _secret(path: Path) -> dict[str, str]:
    return {
        "FHIRTIS_FHIR__BASE_URL": BASE,
        "FHIRTIS_FHIR__AUTH_MODE": "client-secret",
        "FHIRTIS_FHIR__CLIENT_ID": "fhirtis",
        "FHIRTIS_FHIR__SCOPE": "system/*.read",
        "FHIRTIS_FHIR__TOKEN_URL": "http://127.0.0.1:9/token",
        "FHIRTIS_FHIR__CLIENT_SECRET_PATH": str(path),
    }


def _usage_error(result: Any, setting: str, path: Path) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"fhir.{setting} {path}" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--patient", "p1"],
        ["capabilities"],
        ["cohort", "--patients", "p1"],
    ],
)
def test_missing_private_key_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    key = tmp_path / "keys" / "fhirtis.pem"
    ledger = tmp_path / "ledger.db"
    if command[0] == "cohort":
        command = [*command, "--ledger", str(ledger), "--work-dir", str(tmp_path / "work")]
    result = runner.invoke(app, command, env=_smart(key))
    _usage_error(result, "private_key_path", key)
    assert "No such file or directory" in result.stderr
    assert not ledger.exists()  # refused before anything was made


def test_private_key_file_that_is_no_key_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public key or the certificate given in place of the private key, a common slip."""
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    key = tmp_path / "fhirtis.pem"
    key.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    result = runner.invoke(app, ["run", "--patient", "p1"], env=_smart(key))
    _usage_error(result, "private_key_path", key)
    assert "MIIB" not in result.output  # the file's content is never shown


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_client_secret_file_that_cannot_be_read_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    secret = tmp_path / "client-secret"
    if kind == "folder":
        secret.mkdir()
    result = runner.invoke(app, ["run", "--patient", "p1"], env=_secret(secret))
    _usage_error(result, "client_secret_path", secret)


def test_serve_refuses_to_start_without_its_fhir_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service reads with its backend-services credentials (validate mode) and writes to a
    write server with them: a key file that is not there fails every request later."""
    uvicorn = pytest.importorskip("uvicorn")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)  # never serve from a test
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    key = tmp_path / "absent.pem"
    result = runner.invoke(app, ["serve", "--port", "1"], env=_smart(key))
    _usage_error(result, "private_key_path", key)


def test_a_readable_secret_file_still_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check reads, and sends nothing: a good file goes on to the server (refused here)."""
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    secret = tmp_path / "client-secret"
    secret.write_text("s3cret\n")
    result = runner.invoke(
        app,
        ["capabilities", "--json"],
        env={**_secret(secret), "FHIRTIS_FHIR__RETRY_MAX_ATTEMPTS": "1"},
    )
    assert "client_secret_path" not in result.output
    assert "s3cret" not in result.output
