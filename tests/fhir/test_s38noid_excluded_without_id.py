"""A resource without an id was excluded as "Observation/None" (s38 published-data sweep): a
reference that names nothing, in the message and as the issue's resource. It is now said as
"an Observation without an id", the entry's location naming which, and the issue names no
resource."""

from __future__ import annotations

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.patients import responder


def test_a_resource_without_an_id_is_said_so() -> None:
    doc = responder()
    index = next(
        i for i, e in enumerate(doc["entry"]) if e["resource"]["resourceType"] == "Observation"
    )
    del doc["entry"][index]["resource"]["id"]
    doc["entry"][index].pop("fullUrl", None)
    result = evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings())
    [issue] = [i for i in result.issues if "without an id" in i.diagnostics]
    assert issue.severity == "error"
    assert issue.diagnostics == "an Observation without an id excluded: resource has no valid id"
    assert issue.expression == f"Bundle.entry[{index}].resource.id"
    assert issue.resource is None
    assert not [i for i in result.issues if "None" in i.diagnostics]
