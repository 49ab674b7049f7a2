"""Numbers no measurement fhirtis reads can have (a dose of 10^308 mL, a CK of 10^-300 U/L) are
data errors, refused where they are read and said where they are: a measure so recorded is
excluded; an administration's dose or rate so recorded is unknown, as for any unreadable value
(clinical spec §4: the administration still counts). The rest of the patient is evaluated,
derived and summarised. Found by damaging corpus Bundles at random: such values made the exact
decimal arithmetic overflow when the results were written (InvalidOperation)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir import builders as b

ABSURD: list[float | int] = [1e308, -1e300, 10**30, 10**12, -(10**9), 1e20, 1e-300, -2e-10]


def _evaluate(*resources: dict[str, Any]) -> tuple[Any, str]:
    raw = json.dumps(b.bundle(*resources)).encode()  # (orjson writes no integer of 10^30)
    result = evaluate_patient_resources(read_patient_bundle(raw), Settings())
    plan = result.plan()
    assert plan.bundle is not None
    json.dumps(plan.bundle, allow_nan=False)
    return result, dumps(patient_summary(result.patient_ref, result.evaluation, result.issues))


def _course(**changes: Any) -> list[dict[str, Any]]:
    """A weight, a 10 % product and two infusions (the second one changed as given)."""
    second = b.administration(
        "a2", "2024-03-05T09:00:00Z", "2024-03-05T13:00:00Z", dose=b.qty(700, "mL")
    )
    second["dosage"]["rateQuantity"] = b.qty(150, "mL/h")
    for key, value in changes.items():
        second["dosage"][key] = value
    return [
        b.patient(),
        b.medication(),
        b.obs("w", "29463-7", 70, "kg", "2024-03-01", system=b.LOINC),
        b.administration(
            "a1", "2024-03-04T09:00:00Z", "2024-03-04T13:00:00Z", dose=b.qty(700, "mL")
        ),
        second,
    ]


@pytest.mark.parametrize("value", ABSURD)
@pytest.mark.parametrize("element", ["dose", "rateQuantity"])
def test_an_absurd_dose_or_rate_is_unknown(value: float | int, element: str) -> None:
    unit = "mL" if element == "dose" else "mL/h"
    result, _ = _evaluate(*_course(**{element: b.qty(value, unit)}))
    [issue] = [i for i in result.issues if i.resource == "MedicationAdministration/a2"]
    assert issue.expression is not None and issue.expression.endswith(f".dosage.{element}.value")
    assert "beyond the magnitude of any value fhirtis reads" in issue.diagnostics
    [_, second] = result.data.administrations
    doses = (second.dose_g, second.dose_ml, second.dose_g_per_kg)
    rates = (second.rate_ml_per_h, second.rate_mg_per_h, second.rate_mg_per_kg_per_h)
    unknown, known = (doses, rates) if element == "dose" else (rates, doses)
    assert set(unknown) == {None} and set(known) != {None}


@pytest.mark.parametrize("value", ABSURD)
def test_an_absurd_enzyme_excludes_that_observation(value: float | int) -> None:
    result, _ = _evaluate(
        b.patient(),
        b.enzyme("ck0", "2157-6", 900, "2024-01-02", uln=200),
        b.obs("ck1", "2157-6", value, "U/L", "2024-02-02", system=b.LOINC),
    )
    assert [m.source for m in result.data.measures] == ["Observation/ck0"]
    [error] = [i for i in result.issues if i.resource == "Observation/ck1"]
    assert error.expression is not None and error.expression.endswith(".valueQuantity.value")


def test_the_largest_plausible_values_are_still_read() -> None:
    """A CK of 500,000 U/L (rhabdomyolysis) and a dose of 300,000 mg are large but real."""
    result, _ = _evaluate(
        b.patient(),
        b.enzyme("ck", "2157-6", 500_000, "2024-01-02", uln=200),
        *_course(dose=b.qty(300_000, "mg"))[1:],
    )
    assert [m.source for m in result.data.measures] == ["Observation/ck"]
    assert len(result.data.administrations) == 2
    assert [i for i in result.issues if i.severity == "error"] == []
