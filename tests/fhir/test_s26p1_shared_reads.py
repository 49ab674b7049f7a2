"""What the extraction works out once and shares (issue 13, one core): a Medication's parts by
its content, an Observation's kind by its coding, a medicationReference by its text. Each
patient is read as with nothing shared."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import terminology
from fhirtis.fhir.extract import Extractor, PatientData
from fhirtis.fhir.extract.medications import _content_key
from tests.fhir.builders import (
    CORE,
    administration,
    bundle,
    medication,
    obs,
    patient,
    qty,
)
from tests.synthetic import make_cohort

Json = dict[str, Any]


def _extract(reader: Extractor, raw: bytes) -> PatientData:
    read = read_patient_bundle(raw)
    return reader.extract(read.patient_ref, read.resources, read.resolve)


def _outcome(data: PatientData) -> tuple[Any, ...]:
    return (data.facts(), data.issues, list(data.used.items()), data.latest)


def _medication_bundles() -> list[bytes]:
    """Patients of one product with Medications that differ by id, meta, strength,
    modifierExtension and an ingredient named by reference only."""
    out: list[bytes] = []
    variants: list[Json] = [
        medication("a"),
        {**medication("b"), "meta": {"versionId": "3"}},
        medication("c", grams_per_100ml=5),
        {**medication("d"), "modifierExtension": [{"url": "http://x", "valueBoolean": True}]},
        {**medication("e"), "ingredient": [{"itemReference": {"reference": "#s"}}]},
        {
            **medication("f"),
            "contained": [{"resourceType": "Substance", "id": "s", "code": {"text": "IgG"}}],
            "ingredient": [
                {
                    "itemReference": {"reference": "#s"},
                    "strength": {"numerator": qty(10, "g"), "denominator": qty(100, "mL")},
                }
            ],
        },
        medication("g", grams_per_100ml=None, text="estradiol"),
    ]
    for med in variants:
        for _ in range(2):  # the second patient of a content finds what the first worked out
            resources = [
                patient(),
                med,
                administration(
                    "a1",
                    "2024-01-02T09:00:00Z",
                    "2024-01-02T13:00:00Z",
                    dose=qty(500, "mL"),
                    rate=qty(60, "mL/h"),
                    med=f"Medication/{med['id']}",
                ),
                obs("o1", "pga", 4.2, "cm", "2024-01-02", system=CORE),
            ]
            out.append(orjson.dumps(bundle(*resources)))
    return out


_BUNDLES = [*(orjson.dumps(b) for b in make_cohort(8)), *_medication_bundles()]


def test_patients_read_with_shared_answers_read_as_with_none() -> None:
    shared = Extractor(terminology())
    warm = [_outcome(_extract(shared, raw)) for raw in _BUNDLES]
    fresh = Extractor(terminology())
    cold = []
    for raw in _BUNDLES:
        for memo in fresh.t.memo.values():
            memo.clear()
        cold.append(_outcome(_extract(fresh, raw)))
    assert warm == cold


def test_a_medication_shared_by_content_is_still_its_own_source() -> None:
    reader = Extractor(terminology())
    used = []
    for raw in _medication_bundles()[:4]:  # Medication/a twice, then Medication/b (meta) twice
        data = _extract(reader, raw)
        used.append(sorted(v for v in data.used.values() if v.startswith("Medication/")))
    assert used == [
        ["Medication/a"],
        ["Medication/a"],
        ["Medication/b/_history/3"],
        ["Medication/b/_history/3"],
    ]


@pytest.mark.parametrize(
    ("med", "shared"),
    [
        (medication("a"), True),
        ({**medication("a"), "ingredient": [{"itemReference": {"reference": "#s"}}]}, False),
        (
            {
                **medication("a"),
                "ingredient": [
                    {"itemCodeableConcept": {"text": "IgG"}, "itemReference": {"reference": "#s"}}
                ],
            },
            True,  # the itemCodeableConcept is read, the reference is not
        ),
        ({**medication("a"), "code": {"text": 10**30}}, False),  # no JSON text
    ],
)
def test_which_medications_are_shared_by_content(med: Json, shared: bool) -> None:
    assert (_content_key(med) is not None) is shared


def test_a_medication_key_is_its_content_not_its_id() -> None:
    assert _content_key(medication("a")) == _content_key({**medication("b"), "meta": {"x": 1}})
    assert _content_key(medication("a")) != _content_key(medication("a", grams_per_100ml=5))


@pytest.mark.parametrize(
    "coding",
    [
        {"system": ["x"], "code": "pga"},
        {"system": CORE, "code": {"c": 1}},
        {"system": CORE, "code": 5},
        {"system": CORE, "code": "pga"},
    ],
)
def test_an_observation_coding_is_classified_as_before_warm_or_cold(coding: Json) -> None:
    resource = obs("o1", "pga", 4.2, "cm", "2024-01-02", system=CORE)
    resource["code"] = {"coding": [coding]}
    raw = orjson.dumps(bundle(patient(), resource))
    reader = Extractor(terminology())
    first = _outcome(_extract(reader, raw))
    assert _outcome(_extract(reader, raw)) == first
