"""A history Bundle that lists a resource's versions oldest first is read by version (s37).

R4 http.html#history: a history Bundle lists versions newest first, and fhirtis reads the first
entry of a resource as its current state (a DELETE first: deleted). Some servers, and exports
saved from them, list the versions oldest first; fhirtis then read the oldest version as
current (a weight corrected from 60 to 80 kg dosed on 60 kg) and missed a deletion listed last.
Where every entry of a resource says its version (``meta.versionId`` as an integer, a DELETE's
``response.etag``) or, else, when (``meta.lastUpdated``, a DELETE's ``response.lastModified``),
its entries are read newest first by it; where they do not, in the order listed, as before.

fhirtis reads a history Bundle only from a file (``fhirtis evaluate``, standard input): no
server read of fhirtis asks for ``_history`` (its searches refuse any Bundle but a searchset),
so this is tested on the Bundle as saved, not through an HTTP fake."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import administration, medication, patient, qty

Json = dict[str, Any]


def _weight(kg: int, version: str | None, updated: str | None) -> Json:
    meta: Json = {}
    if version is not None:
        meta["versionId"] = version
    if updated is not None:
        meta["lastUpdated"] = updated
    w: Json = {
        "resourceType": "Observation",
        "id": "w",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2025-03-01T08:00:00Z",
        "valueQuantity": {
            "value": kg,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    }
    if meta:
        w["meta"] = meta
    return w


def _entry(resource: Json, method: str = "PUT") -> Json:
    key = f"{resource['resourceType']}/{resource['id']}"
    return {
        "fullUrl": f"https://example.org/fhir/{key}",
        "resource": resource,
        "request": {"method": method, "url": key},
        "response": {"status": "200 OK"},
    }


def _history(*entries: Json) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "history", "entry": list(entries)})


def _kg(raw: bytes) -> list[Any]:
    data = read_patient_bundle(raw)
    return [r["valueQuantity"]["value"] for _, r in data.resources if r.get("id") == "w"]


def test_oldest_first_by_version_id_reads_the_newest() -> None:
    """Version 1 (60 kg, a typo) listed before version 2 (80 kg, the correction)."""
    raw = _history(
        _entry(patient()),
        _entry(_weight(60, "1", None), "POST"),
        _entry(_weight(80, "2", None)),
    )
    assert _kg(raw) == [80]
    data = read_patient_bundle(raw)
    assert [(i.severity, i.code, i.expression) for i in data.issues] == [
        ("information", "duplicate", "Bundle.entry[1].resource")  # the older version, not read
    ]


def test_oldest_first_by_last_updated_reads_the_newest() -> None:
    raw = _history(
        _entry(_weight(60, None, "2025-03-01T08:05:00Z"), "POST"),
        _entry(_weight(80, None, "2025-03-01T09:00:00+01:00")),  # 08:00Z: the older one
        _entry(_weight(75, None, "2025-03-02T10:00:00Z")),
        _entry(patient()),
    )
    assert _kg(raw) == [75]


def test_version_ids_decide_over_position_and_non_integer_ids_keep_the_listing() -> None:
    # versionIds that are not integers (an opaque id) and no lastUpdated: as listed, as before
    raw = _history(_entry(_weight(60, "a1", None)), _entry(_weight(80, "b2", None)))
    assert _kg(raw) == [60]
    # one version without any mark: as listed
    raw = _history(_entry(_weight(60, "1", None)), _entry(_weight(80, None, None)))
    assert _kg(raw) == [60]
    # newest first, as R4 lists them: unchanged
    raw = _history(_entry(_weight(80, "2", None)), _entry(_weight(60, "1", None)))
    assert _kg(raw) == [80]
    # version 10 is newer than version 9 (integers, not texts)
    raw = _history(_entry(_weight(60, "9", None)), _entry(_weight(80, "10", None)))
    assert _kg(raw) == [80]


def test_a_delete_listed_last_by_its_etag_deletes() -> None:
    """Oldest first: the weight's creation, then its deletion (version 2, R4 response.etag)."""
    raw = _history(
        _entry(patient()),
        _entry(_weight(60, "1", None), "POST"),
        {
            "fullUrl": "https://example.org/fhir/Observation/w",
            "request": {"method": "DELETE", "url": "Observation/w"},
            "response": {"status": "204 No Content", "etag": 'W/"2"'},
        },
    )
    assert _kg(raw) == []
    data = read_patient_bundle(raw)
    assert [(i.code, i.expression) for i in data.issues] == [
        ("deleted", "Bundle.entry[1].resource")
    ]


def test_the_dose_uses_the_corrected_weight() -> None:
    """The whole evaluation: 160 g over a 80 kg dosing weight is 2 g/kg (60 kg gave 2.67)."""
    raw = _history(
        _entry(patient()),
        _entry(_weight(60, "1", "2025-03-01T08:00:00Z"), "POST"),
        _entry(_weight(80, "2", "2025-03-01T09:00:00Z")),
        _entry(medication()),
        _entry(administration("a1", "2025-03-03T09:00:00Z", dose=qty(80, "g"))),
        _entry(administration("a2", "2025-03-04T09:00:00Z", dose=qty(80, "g"))),
    )
    result = evaluate_patient_resources(read_patient_bundle(raw), Settings())
    (cycle,) = result.evaluation.exposure.cycles
    assert cycle.g_per_kg == Decimal(2)
