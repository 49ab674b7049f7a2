"""Fixtures of the end-to-end tests beside those of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fhir_test_server import FhirTestServer, start_fhir_test_server


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirTestServer]:
    """A second test-server process: the registry's own store the derived resources go to
    (``FHIRTIS_FHIR__WRITE_BASE_URL``), one per test module."""
    server = start_fhir_test_server(tmp_path_factory.mktemp("registry_server"))
    try:
        yield server
    finally:
        server.close()
