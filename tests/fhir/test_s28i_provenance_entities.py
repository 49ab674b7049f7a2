"""Every Provenance entity names a resource the server holds, never one contained in another.

R4 references.html (Contained Resources): a contained resource "SHALL only be included in a
resource if something in that resource refers to it" and has no independent existence: it has
no ``[type]/[id]`` on the server. Oracle Health (Cerner) R4 MedicationAdministrations carry their
Medication contained (``medicationReference: {"reference": "#..."}``; the shipped example
``examples/bundles/us-ehr-ivig-course.json`` and
``tests/data/cerner-contained-multi-ingredient.json`` follow that shape). fhirtis named such a
Medication ``Medication/<contained id>`` as an entity of its Provenance: a reference to nothing
on the server. R4 Provenance has the ``entity`` search
parameter (Provenance.entity.what), so HAPI FHIR's referential integrity on write (on by default;
hapifhir/hapi-fhir#6162: checked for every element with a search parameter, #6218: a missing
target is refused, HAPI-1095) refuses the Provenance, and with it the whole transaction. The
administration that contains the Medication is an entity already, and stays one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from fhirtis.pipeline.offline import evaluate_bundle_file
from fhirtis.settings import Settings

Json = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
CONTAINED = [
    REPO / "examples" / "bundles" / "us-ehr-ivig-course.json",
    REPO / "tests" / "data" / "cerner-contained-multi-ingredient.json",
]
EVERY_EXAMPLE = sorted((REPO / "examples" / "bundles").glob("*.json"))


def _entries(path: Path) -> set[str]:
    """``Type/id`` of every resource the Bundle holds as an entry (nested Bundles included)."""
    out: set[str] = set()

    def walk(bundle: Json) -> None:
        for entry in bundle.get("entry", []):
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "Bundle":
                walk(resource)
            elif "id" in resource:
                out.add(f"{resource['resourceType']}/{resource['id']}")

    walk(orjson.loads(path.read_bytes()))
    return out


def _entities(path: Path) -> list[str]:
    bundle = evaluate_bundle_file(path, Settings()).plan().bundle
    assert bundle is not None
    (provenance,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"
    ]
    return [e["what"]["reference"].split("/_history/")[0] for e in provenance["entity"]]


@pytest.mark.parametrize("path", CONTAINED, ids=[p.name for p in CONTAINED])
def test_a_contained_medication_is_not_an_entity_its_administration_is(path: Path) -> None:
    entities = _entities(path)
    held = _entries(path)
    contained = [e for e in entities if e not in held]
    assert not contained, f"entities that are no resource of the Bundle: {contained}"
    administrations = {e for e in held if e.startswith("MedicationAdministration/")}
    assert administrations and administrations <= set(entities)


@pytest.mark.parametrize("path", EVERY_EXAMPLE, ids=[p.name for p in EVERY_EXAMPLE])
def test_every_example_provenance_entity_is_a_resource_of_its_bundle(path: Path) -> None:
    missing = [e for e in _entities(path) if e not in _entries(path)]
    assert not missing, missing
