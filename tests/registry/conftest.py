"""Registry tests use the real FHIR engine of the e2e tests."""

from tests.e2e.conftest import fhir_base, fhir_server

__all__ = ["fhir_base", "fhir_server"]
