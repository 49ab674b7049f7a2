"""A catheter Device referenced by a DeviceUseStatement (not contained) is a source of the
tee-risk Flag's catheter factor, read by id as a Medication is; the Provenance of the write
named the administrations' Medications but not the Device, and so carried none of its labels
(s38: the lbl audit's remaining gap). It now names the Device (versioned) like a Medication,
and carries its security labels. (The Flag, which cites the statement, carries the Device's
labels too since s39: tests/fhir/test_s39left_security_labels.py.)"""

from __future__ import annotations

from typing import Any

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.patients import responder
from tests.fhir.test_s37seclab_security_labels import CONF, R, _security

Json = dict[str, Any]

_CVC = {"system": "http://snomed.info/sct", "code": "52124006"}  # central venous catheter


def _with_catheter(device_meta: Json | None) -> Json:
    doc = responder()
    device: Json = {"resourceType": "Device", "id": "cvc", "type": {"coding": [_CVC]}}
    if device_meta is not None:
        device["meta"] = device_meta
    statement = {
        "resourceType": "DeviceUseStatement",
        "id": "dus",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "device": {"reference": "Device/cvc"},
        "timingPeriod": {"start": "2024-01-01"},
    }
    doc["entry"] += [
        {"fullUrl": "Device/cvc", "resource": device},
        {"fullUrl": "DeviceUseStatement/dus", "resource": statement},
    ]
    return doc


def provenance_of(doc: Json, factor: str) -> Json:
    """The write's Provenance of ``doc``, whose evaluation reads the risk ``factor``."""
    result = evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings())
    assert any(factor in str(d.resource) for d in result.derived), f"{factor} read"
    bundle = result.plan().bundle
    assert bundle is not None
    [prov] = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"
    ]
    return prov


def _provenance(doc: Json) -> Json:
    return provenance_of(doc, "central-venous-catheter")


def test_the_provenance_names_the_referenced_device() -> None:
    prov = _provenance(_with_catheter({"versionId": "4"}))
    named = [e["what"]["reference"] for e in prov["entity"]]
    assert "Device/cvc/_history/4" in named, named
    assert "DeviceUseStatement/dus" in named, named
    assert _security(prov) is None  # nothing labelled: nothing added


def test_the_provenance_carries_the_devices_labels() -> None:
    prov = _provenance(_with_catheter({"security": [R]}))
    assert "Device/cvc" in [e["what"]["reference"] for e in prov["entity"]]
    assert {(c["system"], c["code"]) for c in _security(prov) or []} == {(CONF, "R")}
