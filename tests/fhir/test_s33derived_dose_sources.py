"""What the IVIG cycle dose Observation cites as ``derivedFrom`` (audit s33derived).

Clinical spec §4 "Dosing weight": the basis ``actual`` (the default) is the body weight itself;
``ideal`` (Devine) needs the height and sex, not the weight; ``adjusted`` = ideal + 0.4 ×
(actual − ideal) needs both. ``derivedFrom`` names the Observations the value was derived
from: the cycle dose cited the patient's latest height on every basis, so every patient with a
height had it cited for a g/kg that the height played no part in (and, on the ideal basis, the
weight, which plays none there). Now it cites the dosing weight's own inputs: the weight on the
actual basis, the height on the ideal basis, both on the adjusted basis.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fhirtis.clinical.policy import Policy
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, administration, bundle, medication, obs, patient, qty

Json = dict[str, Any]
WEIGHT = obs("w", "29463-7", 90, "kg", "2024-01-06T08:00:00Z", system=LOINC)
HEIGHT = obs("h", "8302-2", 180, "cm", "2024-01-05T08:00:00Z", system=LOINC)
COURSE = (
    administration("a1", "2024-01-08T09:00:00+01:00", dose=qty(90, "g")),
    administration("a2", "2024-01-09T09:00:00+01:00", dose=qty(90, "g")),
)


def _dose_observations(basis: str | None, *body: Json) -> tuple[Json, Json]:
    settings = Settings() if basis is None else Settings(policy=Policy(dosing_weight=basis))
    doc = bundle(patient(gender="male"), *body, medication(), *COURSE)
    result = evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), settings)
    by_code: dict[str, list[Json]] = {}
    for d in result.derived:
        code = d.resource.get("code", {}).get("coding", [{}])[0].get("code", "")
        by_code.setdefault(code, []).append(d.resource)
    (cycle,) = by_code["ivig-cycle-dose"]
    (cumulative,) = by_code["ivig-cumulative-dose"]
    return cycle, cumulative


def _cited(resource: Json) -> list[str]:
    return [r["reference"] for r in resource.get("derivedFrom", [])]


def _basis(cycle: Json) -> str:
    (basis,) = (
        c["valueCodeableConcept"]["coding"][0]["code"]
        for c in cycle["component"]
        if "valueCodeableConcept" in c
    )
    return str(basis)


def test_default_actual_basis_cites_the_weight_and_not_the_height() -> None:
    cycle, cumulative = _dose_observations(None, WEIGHT, HEIGHT)
    assert _basis(cycle) == "actual"
    assert cycle["valueQuantity"]["value"] == 2  # 180 g / 90 kg: the height plays no part
    assert _cited(cycle) == ["Observation/w"]
    assert "derivedFrom" not in cumulative  # the cumulative dose cites no body measurement


def test_actual_basis_with_only_a_height_cites_nothing() -> None:
    cycle, _ = _dose_observations("actual", HEIGHT)
    assert "valueQuantity" not in cycle  # no weight: g/kg unknown
    assert "derivedFrom" not in cycle


def test_adjusted_basis_cites_the_weight_and_the_height() -> None:
    cycle, cumulative = _dose_observations("adjusted", WEIGHT, HEIGHT)
    assert _basis(cycle) == "adjusted"
    assert _cited(cycle) == ["Observation/h", "Observation/w"]
    assert "derivedFrom" not in cumulative


@pytest.mark.parametrize("body", [(WEIGHT, HEIGHT), (HEIGHT,)], ids=["weighed", "unweighed"])
def test_ideal_basis_cites_the_height_only(body: tuple[Json, ...]) -> None:
    cycle, _ = _dose_observations("ideal", *body)
    assert _basis(cycle) == "ideal"
    assert "valueQuantity" in cycle  # Devine ideal weight: height and sex, no weight needed
    assert _cited(cycle) == ["Observation/h"]
