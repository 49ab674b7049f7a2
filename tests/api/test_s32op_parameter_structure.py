"""A Parameters body whose parameter carries more than its value is refused, never half read.

- FHIR R4 BackboneElement.modifierExtension (Parameters.parameter is a BackboneElement):
  "Applications processing a resource are required to check for modifier extensions"; one that
  is not understood may change the meaning of the element (negation, qualification), so the
  element cannot be used as if it were absent. fhirtis refuses input data carrying one
  (``modifier_extension_error``), but ``$myositis-evaluate`` read ``{"name": "write",
  "valueBoolean": true, "modifierExtension": [...]}`` as a plain ``write=true`` and wrote.
- FHIR R4 Parameters, invariant inv-1: "A parameter must have one and only one of (value,
  resource, part)". A parameter giving a value and also a ``resource`` or ``part`` was read by
  its value, the rest silently dropped; every parameter the OperationDefinition declares is a
  value (no resource, no parts), so such a parameter is now 400, naming it, as one with no
  value or two values already was.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_evaluate_api import AUTH, OP, service
from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
MODIFIER = [{"url": "http://example.org/fhir/StructureDefinition/not", "valueBoolean": True}]


@pytest.fixture
async def api(fhir_base: str) -> Any:
    load(fhir_base, responder())
    async with service(fhir_base) as client:
        yield client


@pytest.mark.parametrize(
    ("parameter", "said"),
    [
        (
            {"name": "write", "valueBoolean": True, "modifierExtension": MODIFIER},
            "modifierExtension",
        ),
        (
            {"name": "population", "valueCode": "juvenile", "modifierExtension": MODIFIER},
            "modifierExtension",
        ),
        (
            {"name": "write", "valueBoolean": True, "resource": {"resourceType": "Patient"}},
            "resource",
        ),
        (
            {"name": "write", "valueBoolean": True, "part": [{"name": "x", "valueBoolean": False}]},
            "part",
        ),
    ],
)
async def test_a_parameter_with_more_than_its_value_is_400(
    api: httpx.AsyncClient, fhir_server: FhirTestServer, parameter: Json, said: str
) -> None:
    fhir_server.reset_stats()
    body = {"resourceType": "Parameters", "parameter": [parameter]}
    r = await api.post(OP, headers=AUTH, json=body)
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert issue["code"] == "invalid"
    assert issue["expression"] == [parameter["name"]]
    assert said in issue["diagnostics"]
    assert fhir_server.stats()["committed_writes"] == 0


async def test_extensions_that_modify_nothing_are_still_read(api: httpx.AsyncClient) -> None:
    ext = [{"url": "http://example.org/fhir/StructureDefinition/note", "valueString": "x"}]
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "population", "valueCode": "adult", "extension": ext}],
    }
    r = await api.post(OP, headers=AUTH, json=body)
    assert r.status_code == 200, r.text
