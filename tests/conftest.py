"""Fixtures shared by every test folder: one FHIR test server for the whole session.

The server lives in ``tests/fhir_server`` (Node.js, Medplum's FHIR router). Install it once with::

    npm ci --prefix tests/fhir_server

It starts once per session (on first use) and is reset before each test that asks for
``fhir_base``: empty store, zeroed statistics, the start-up profile (``full``), and fhirtis's
cache of what each server can do forgotten.

Every test also validates everything fhirtis writes with the fhir.resources R4B models (derived
resources and Provenance); the CLI runs the tests start inherit the switch.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhirtis.fhir.validation import enable
from fhirtis.io._capabilities import CACHE
from tests.fhir_test_server import FhirTestServer, start_fhir_test_server

enable()


@pytest.fixture(autouse=True)
def _forget_capabilities() -> None:
    """Each test starts without fhirtis's cached knowledge of any server (servers are faked
    differently, or switch profile, from one test to the next)."""
    CACHE.forget()


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirTestServer]:
    """The session's FHIR test server, on a free port of 127.0.0.1."""
    server = start_fhir_test_server(tmp_path_factory.mktemp("fhir_server"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fhir_base(fhir_server: FhirTestServer) -> str:
    """An empty store with zeroed statistics and the full profile; returns the FHIR base URL."""
    fhir_server.reset()
    fhir_server.reset_stats()
    return fhir_server.base_url
