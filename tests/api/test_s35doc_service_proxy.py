"""The service's requests to FHIR servers take the outgoing proxy from the environment
(``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``), as the README says and as the CLI's do, and
are still counted in ``fhirtis_fhir_requests_total`` (session s35, docs truth)."""

from __future__ import annotations

import asyncio

import pytest

from fhirtis.api.app import ServiceState
from fhirtis.settings import Settings

BODY = b'{"resourceType":"CapabilityStatement"}'


async def _listener(lines: list[str]) -> tuple[asyncio.Server, int]:
    """A stand-in HTTP server (or forward proxy): records each request line, answers 200."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines.append((await reader.readline()).decode().strip())
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
            + f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode()
            + BODY
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _counted(state: ServiceState) -> float | None:
    return state.metrics.registry.get_sample_value(
        "fhirtis_fhir_requests_total", {"outcome": "2xx"}
    )


def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def test_the_service_reaches_fhir_servers_through_the_environment_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_proxy_env(monkeypatch)
    lines: list[str] = []
    proxy, port = await _listener(lines)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    state = ServiceState(Settings())
    try:
        response = await state.http.get("http://ehr.invalid/fhir/metadata")
    finally:
        await state.http.aclose()
        proxy.close()
    assert response.status_code == 200
    assert lines == ["GET http://ehr.invalid/fhir/metadata HTTP/1.1"]  # sent to the proxy
    assert _counted(state) == 1  # still counted


async def test_a_no_proxy_host_is_reached_directly_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_proxy_env(monkeypatch)
    proxied: list[str] = []
    proxy, proxy_port = await _listener(proxied)
    direct: list[str] = []
    server, port = await _listener(direct)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    state = ServiceState(Settings())
    try:
        response = await state.http.get(f"http://127.0.0.1:{port}/fhir/metadata")
    finally:
        await state.http.aclose()
        proxy.close()
        server.close()
    assert response.status_code == 200
    assert direct == ["GET /fhir/metadata HTTP/1.1"] and proxied == []
    assert _counted(state) == 1
