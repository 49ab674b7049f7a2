"""An entry whose ``resourceType`` is no FHIR resource type is said, not skipped in silence.

Found by mutating real-shaped Bundles (s39): an Observation whose ``resourceType`` was written
``OBSERVATION``, ``observation`` or ``Observation\\u0000`` was passed over as a resource of a
type the evaluation does not read (an Encounter), with no issue: the enzyme chosen, the TIS or
a risk factor changed while the result looked whole. Such an entry is no FHIR resource (R4
``Resource.resourceType`` names one of the resource types, case-sensitively): a warning naming
the entry (never its content). A real R4 type fhirtis does not read stays silent.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import orjson
import pytest
from fhir.resources import R4B
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.resource import Resource

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.resource_types import (
    KNOWN_RESOURCE_TYPES,
    R4_RESOURCE_TYPES,
    R4B_ADDED_RESOURCE_TYPES,
)

Json = dict[str, Any]

# FHIR R4B (4.3.0) withdrew these R4 types (R4B's "Changes from R4": the MedicinalProduct*
# and Substance* definitions were remodelled, the evidence syntheses replaced)
R4_WITHDRAWN_IN_R4B = frozenset(
    {
        "EffectEvidenceSynthesis",
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "RiskEvidenceSynthesis",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
    }
)


def _installed_r4b_types() -> set[str]:
    """The concrete resource classes of the installed ``fhir.resources`` R4B models."""
    out: set[str] = set()
    for info in pkgutil.iter_modules(R4B.__path__):
        module = importlib.import_module(f"{R4B.__name__}.{info.name}")
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and value.__module__ == module.__name__
                and issubclass(value, Resource)
                and value not in (Resource, DomainResource)
            ):
                out.add(name)
    return out


def test_the_type_lists_match_the_installed_models() -> None:
    assert len(R4_RESOURCE_TYPES) == 146
    assert R4_WITHDRAWN_IN_R4B <= R4_RESOURCE_TYPES
    assert not R4B_ADDED_RESOURCE_TYPES & R4_RESOURCE_TYPES
    installed = _installed_r4b_types()
    assert installed == (R4_RESOURCE_TYPES - R4_WITHDRAWN_IN_R4B) | R4B_ADDED_RESOURCE_TYPES
    assert KNOWN_RESOURCE_TYPES == R4_RESOURCE_TYPES | R4B_ADDED_RESOURCE_TYPES


def _bundle(*resources: Json) -> bytes:
    entries = [{"fullUrl": f"urn:uuid:e{i}", "resource": r} for i, r in enumerate(resources)]
    return orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})


PATIENT = {"resourceType": "Patient", "id": "p"}
SUBJECT = {"reference": "Patient/p"}


@pytest.mark.parametrize("written", ["OBSERVATION", "observation", "Observation\u0000", "Bogus"])
def test_an_entry_of_no_resource_type_is_a_warning(written: str) -> None:
    odd = {
        "resourceType": written,
        "id": "ck1",
        "subject": SUBJECT,
        "valueQuantity": {"value": 912},
    }
    read = read_patient_bundle(_bundle(PATIENT, odd))
    said = [i for i in read.issues if i.expression == "Bundle.entry[1].resource.resourceType"]
    assert len(said) == 1, read.issues
    assert said[0].severity == "warning"
    assert "no FHIR R4 resource type" in said[0].diagnostics
    assert "912" not in said[0].diagnostics and written not in said[0].diagnostics
    assert [r["resourceType"] for _, r in read.resources] == ["Patient"]


def test_a_nested_bundles_entry_of_no_resource_type_is_said_too() -> None:
    odd = {"resourceType": "observation", "id": "ck1", "subject": SUBJECT}
    inner = {
        "resourceType": "Bundle",
        "id": "b",
        "type": "collection",
        "entry": [{"resource": odd}],
    }
    read = read_patient_bundle(_bundle(PATIENT, inner))
    assert [i.expression for i in read.issues] == [
        "Bundle.entry[1].resource.entry[0].resource.resourceType"
    ]


@pytest.mark.parametrize("rtype", ["Encounter", "Citation", "MedicinalProduct"])
def test_a_real_type_not_read_stays_silent(rtype: str) -> None:
    read = read_patient_bundle(_bundle(PATIENT, {"resourceType": rtype, "id": "x"}))
    assert read.issues == []
