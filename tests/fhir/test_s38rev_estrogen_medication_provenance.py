"""An estrogen Medication read by id through a MedicationStatement or MedicationRequest is the
source of the tee-risk Flag's estrogen factor, read exactly as an IVIG administration's
Medication or (s38) a catheter Device is: the write's Provenance names it (versioned) and
carries its security labels. s38 gave the Device this ("named as a Medication is") but the
estrogen path never named its Medication: a Medication labelled R was read and its label lost
(s38 review)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fhir.patients import responder
from tests.fhir.test_s37seclab_security_labels import CONF, R, _security
from tests.fhir.test_s38dev_referenced_device_provenance import provenance_of

Json = dict[str, Any]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_KINDS = ["MedicationStatement", "MedicationRequest", "MedicationAdministration"]


def _with_estrogen(kind: str, medication_meta: Json | None, *, contained: bool = False) -> Json:
    doc = responder()
    med: Json = {
        "resourceType": "Medication",
        "id": "est",
        "code": {
            "text": "ESTRADIOL 1 MG TABLET",
            "coding": [{"system": RXNORM, "code": "197657"}],
        },
        "ingredient": [{"itemCodeableConcept": {"text": "estradiol"}}],
    }
    if medication_meta is not None:
        med["meta"] = medication_meta
    use: Json = {
        "resourceType": kind,
        "id": "use",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "#est" if contained else "Medication/est"},
    }
    if kind == "MedicationStatement":
        use["effectivePeriod"] = {"start": "2023-01-01"}
    elif kind == "MedicationAdministration":
        use |= {"status": "in-progress", "effectivePeriod": {"start": "2023-01-01"}}
    else:
        use |= {"intent": "order", "authoredOn": "2023-01-01"}
    if contained:
        use["contained"] = [med]
    else:
        doc["entry"].append({"fullUrl": "Medication/est", "resource": med})
    doc["entry"].append({"fullUrl": f"{kind}/use", "resource": use})
    return doc


def _provenance(doc: Json) -> Json:
    return provenance_of(doc, "estrogen")


@pytest.mark.parametrize("kind", _KINDS)
def test_the_provenance_names_the_estrogen_medication(kind: str) -> None:
    prov = _provenance(_with_estrogen(kind, {"versionId": "3"}))
    named = [e["what"]["reference"] for e in prov["entity"]]
    assert "Medication/est/_history/3" in named, named
    assert f"{kind}/use" in named, named
    assert _security(prov) is None  # nothing labelled: nothing added


@pytest.mark.parametrize("kind", _KINDS)
def test_the_provenance_carries_the_estrogen_medications_labels(kind: str) -> None:
    prov = _provenance(_with_estrogen(kind, {"security": [R]}))
    assert "Medication/est" in [e["what"]["reference"] for e in prov["entity"]]
    assert {(c["system"], c["code"]) for c in _security(prov) or []} == {(CONF, "R")}


def test_a_contained_estrogen_medication_is_part_of_its_statement() -> None:
    prov = _provenance(_with_estrogen("MedicationStatement", {"security": [R]}, contained=True))
    named = [e["what"]["reference"] for e in prov["entity"]]
    assert not any(n.startswith("Medication/est") for n in named), named
    assert {(c["system"], c["code"]) for c in _security(prov) or []} == {(CONF, "R")}
