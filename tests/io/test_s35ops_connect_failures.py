"""A FHIR server that cannot be reached, as an integrator meets it on the first day (session s35,
helper ops): a hospital server whose TLS certificate is issued by the hospital's own CA, a host
name mistyped, a port with nothing listening, ``https://`` to a plain-HTTP port.

Each ended in the same line, "GET …/metadata failed after 5 attempt(s); last: ConnectError",
for ``fhirtis run``, ``cohort`` and the service's 502: nothing said which of these it was, and
nothing said how a site CA is given (``SSL_CERT_FILE``, which httpx honours; fhirtis otherwise
trusts certifi's public CAs, not the system store). The message now says what stopped the
connection, and the certificate case names ``SSL_CERT_FILE``; with it, the same server is read.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fhirtis.io import FhirClient, FhirClientConfig, TooManyRetries

STATEMENT = (
    b'{"resourceType":"CapabilityStatement","status":"active","kind":"instance",'
    b'"fhirVersion":"4.0.1","format":["json"],"rest":[{"mode":"server"}]}'
)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A hospital CA's certificate for 127.0.0.1 (self-signed, as a test CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hospital Test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "ca.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Metadata(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(STATEMENT)))
        self.end_headers()
        self.wfile.write(STATEMENT)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hospital_tls(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, CA file) of an https FHIR server whose certificate no public CA issued."""
    cert, key = _self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/fhir", cert
    finally:
        server.shutdown()
        server.server_close()


def _config(base: str) -> FhirClientConfig:
    return FhirClientConfig(base_url=base, retry_max_attempts=1, connect_timeout_seconds=5)


async def _metadata(base: str) -> str:
    async with FhirClient(_config(base)) as client:
        response = await client.request("GET", "metadata")
    return str(response.body["resourceType"])


async def test_an_untrusted_certificate_says_so_and_names_ssl_cert_file(
    hospital_tls: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = hospital_tls
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(TooManyRetries) as raised:
        await _metadata(base)
    assert "TLS certificate is not trusted" in str(raised.value)
    assert "SSL_CERT_FILE" in str(raised.value)


async def test_the_site_ca_in_ssl_cert_file_is_trusted(
    hospital_tls: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What README documents for a hospital CA works."""
    base, ca = hospital_tls
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    assert await _metadata(base) == "CapabilityStatement"


async def test_a_refused_connection_says_so() -> None:
    with socket.socket() as sock:  # a port of this machine with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TooManyRetries) as raised:
        await _metadata(f"http://127.0.0.1:{port}/fhir")
    assert "Connection refused" in str(raised.value)


async def test_https_to_a_plain_http_port_says_tls_failed() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(TooManyRetries) as raised:
            await _metadata(f"https://127.0.0.1:{server.server_address[1]}/fhir")
    finally:
        server.shutdown()
        server.server_close()
    assert "TLS failed" in str(raised.value)


async def test_a_host_name_that_does_not_resolve_says_so() -> None:
    """``.invalid`` never resolves (RFC 6761)."""
    with pytest.raises(TooManyRetries) as raised:
        await _metadata("https://fhir.hospital.invalid/fhir")
    assert "host name does not resolve" in str(raised.value)
