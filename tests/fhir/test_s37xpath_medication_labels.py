"""The Provenance carries the security labels of the Medication it names.

A write's Provenance names every source used (clinical spec §7), the administrations' Medication
among them, and carries the labels of every source it names (R4 security-labels.html: labels are
carried forward; CHANGELOG, s37). The Medication was recorded as a source apart from the others
(``medications.py``) and its ``meta.security`` was never read: a Medication labelled ``V`` (very
restricted) was named by an unlabelled Provenance, on every path (Bundle, server, NDJSON)."""

from __future__ import annotations

from typing import Any

import orjson

from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.settings import Settings
from tests.fhir.patients import responder

Json = dict[str, Any]
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def _provenance(data: Json) -> Json:
    result = evaluate_bundle_bytes(orjson.dumps(data), "p1.json", Settings())
    bundle: Any = result.plan().bundle
    (prov,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"
    ]
    return prov


def _labelled_medication(meta: Json) -> Json:
    data = responder()
    for e in data["entry"]:
        if e["resource"]["resourceType"] == "Medication":
            e["resource"]["meta"] = meta
    return data


def test_the_provenance_carries_the_medications_label() -> None:
    prov = _provenance(
        _labelled_medication({"versionId": "3", "security": [{"system": CONF, "code": "V"}]})
    )
    assert {"reference": "Medication/octa/_history/3"} in [e["what"] for e in prov["entity"]]
    assert prov["meta"]["security"] == [{"system": CONF, "code": "V"}]


def test_an_unlabelled_medication_adds_none() -> None:
    prov = _provenance(_labelled_medication({"versionId": "3"}))
    assert "security" not in prov.get("meta", {})
