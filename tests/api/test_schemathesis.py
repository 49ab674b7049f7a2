"""Property-based API testing from the service's own OpenAPI: no request gets a 500, and every
error is an OperationOutcome. (502/504 are the service's right answers here: its FHIR server is
unreachable.)"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from fhirtis.api.app import create_app
from fhirtis.io import FhirClientConfig
from fhirtis.settings import Settings

# The FHIR server is unreachable: evaluate calls must end in a 4xx or a 502/504, never a 500.
APP = create_app(
    Settings(
        fhir=FhirClientConfig(
            base_url="http://127.0.0.1:9/fhir", retry_max_attempts=1, retry_budget_seconds=0.5
        )
    )
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    case.headers = {**(case.headers or {}), "Authorization": "Bearer any-token"}
    response = case.call()
    assert response.status_code != 500, response.text
    if response.status_code >= 400 and not case.path.startswith("/cds-services"):
        assert response.json()["resourceType"] == "OperationOutcome"
