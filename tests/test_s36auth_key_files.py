"""A SMART Backend Services private key written with a passphrase (session s36, helper auth).

``openssl genpkey -algorithm RSA -aes256`` and ``openssl pkcs8 -topk8`` (without ``-nocrypt``)
write an encrypted PEM key, ``-----BEGIN ENCRYPTED PRIVATE KEY-----``; the traditional
``openssl genrsa -aes256`` writes ``Proc-Type: 4,ENCRYPTED``. cryptography refuses such a key
without its passphrase with a ``TypeError``, which escaped fhirtis's check of the settings:
``fhirtis run``/``capabilities``/``serve`` ended in a traceback (exit 1) instead of one line
naming the setting, as every other unusable key file does (tests/test_s35ops_credential_files.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.io import FhirClientConfig, SigningAlg, load_private_key
from fhirtis.io._auth import SmartBackendAuth
from tests.test_s35ops_credential_files import _smart, _usage_error

runner = CliRunner()
PASSPHRASE = b"correct horse"


def _encrypted(alg: SigningAlg, form: serialization.PrivateFormat) -> bytes:
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg == "RS384"
        else ec.generate_private_key(ec.SECP384R1())
    )
    encryption = serialization.BestAvailableEncryption(PASSPHRASE)
    return key.private_bytes(serialization.Encoding.PEM, form, encryption)


FORMS = [
    ("RS384", serialization.PrivateFormat.PKCS8),
    ("RS384", serialization.PrivateFormat.TraditionalOpenSSL),
    ("ES384", serialization.PrivateFormat.PKCS8),
    ("ES384", serialization.PrivateFormat.TraditionalOpenSSL),
]


@pytest.mark.parametrize(("alg", "form"), FORMS)
def test_an_encrypted_key_is_a_value_error_saying_so(
    alg: SigningAlg, form: serialization.PrivateFormat
) -> None:
    pem = _encrypted(alg, form)
    with pytest.raises(ValueError, match="encrypted with a passphrase") as raised:
        load_private_key(pem, alg)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_an_encrypted_key_in_the_settings_is_a_value_error() -> None:
    config = FhirClientConfig(
        base_url="https://fhir.example.org/r4",
        auth_mode="smart-backend",
        client_id="fhirtis",
        kid="k1",
        scope="system/*.read",
        private_key_pem=SecretStr(_encrypted("RS384", serialization.PrivateFormat.PKCS8).decode()),
    )
    with pytest.raises(ValueError, match="encrypted"):
        SmartBackendAuth.from_config(config)


@pytest.mark.parametrize("command", [["run", "--patient", "p1"], ["capabilities"]])
def test_an_encrypted_key_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    key = tmp_path / "fhirtis.pem"
    pem = _encrypted("RS384", serialization.PrivateFormat.PKCS8)
    key.write_bytes(pem)
    result = runner.invoke(app, command, env=_smart(key))
    _usage_error(result, "private_key_path", key)
    assert "encrypted" in result.stderr
    assert pem.decode().splitlines()[1] not in result.output  # the file's content is never shown
