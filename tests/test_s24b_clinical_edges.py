"""Edges where hand arithmetic and code most often disagree, FHIR in (bundles built with the
case builder of tests/data/s24b_cases/make_cases.py), numbers out through the Python API.

Every expected value is worked by hand from docs/clinical-specification.md in the comments."""

from __future__ import annotations

import importlib.util
import json
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings

_MAKE = Path(__file__).resolve().parent / "data" / "s24b_cases" / "make_cases.py"


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("s24b_make_cases", _MAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


M = _load_builder()
SNOMED = M.SNOMED


def _evaluate(case: Any) -> dict[str, Any]:
    raw = json.dumps(case.bundle()).encode()
    result = evaluate_patient_resources(read_patient_bundle(raw, "case.json"), Settings())
    record = patient_summary(result.patient_ref, result.evaluation, result.issues)
    loaded: dict[str, Any] = json.loads(dumps(record))
    return loaded


def _codes(s: dict[str, Any]) -> list[str]:
    return [n["code"] for n in s["notes"]]


def _adult(prefix: str) -> Any:
    case = M.Case(prefix, "male", "1970-01-01")
    case.dermatomyositis("2023-06-01")
    return case


# --- §4 cycles: cut at calendar days, cycle_gap_days = 7 ----------------------------------------


@pytest.mark.parametrize(("second", "cycles"), [("2024-01-08", 1), ("2024-01-09", 2)])
def test_cycle_boundary_at_cycle_gap_days(second: str, cycles: int) -> None:
    # the first infusion spans midnight (2024-01-01 20:00 → 01-02 02:00); the gap is counted from
    # its start date: 01-08 is 7 days later (same cycle), 01-09 is 8 (a new cycle)
    case = _adult("gap")
    case.weight(70, "2024-01-01T08:00:00+01:00")
    med = case.medication()
    case.ivig(med, "2024-01-01T20:00:00+01:00", "2024-01-02T02:00:00+01:00", 70, 100)
    case.ivig(med, f"{second}T10:00:00+01:00", f"{second}T14:00:00+01:00", 70, 100)
    s = _evaluate(case)
    assert s["ivig"]["cycle_count"] == cycles
    if cycles == 1:
        (c,) = s["ivig"]["cycles"]
        # 140 g / 70 kg = 2 g/kg; spans 8 calendar days (> 5): warned
        assert (Decimal(str(c["g_per_kg"])), c["warnings"]) == (Decimal(2), ["cycle-span"])
        assert c["end"] == f"{second}T14:00:00+01:00"
    else:
        # 70 g / 70 kg = 1 g/kg each, 50 % under target; cumulative 2 g/kg
        assert [c["g_per_kg"] for c in s["ivig"]["cycles"]] == [1, 1]
        assert s["ivig"]["cumulative_g_per_kg"] == 2


# --- §4 dosing weight: the latest within 30 days, counted in calendar days -----------------------


@pytest.mark.parametrize(
    ("weighed", "stale"),
    [
        ("2024-01-31T08:00:00+01:00", False),  # 2024-03-01 − 30 days: not stale
        ("2024-01-31T00:30:00+01:00", False),  # the same calendar day, just after midnight
        ("2024-01-30T08:00:00+01:00", True),  # 31 days
    ],
)
def test_weight_thirty_days_old(weighed: str, stale: bool) -> None:
    case = _adult("wt")
    case.weight(70, weighed)
    med = case.medication()
    case.ivig(med, "2024-03-01T10:00:00+01:00", "2024-03-01T14:00:00+01:00", 70, 100)
    case.ivig(med, "2024-03-02T10:00:00+01:00", "2024-03-02T14:00:00+01:00", 70, 100)
    s = _evaluate(case)
    (c,) = s["ivig"]["cycles"]
    # used either way (an older weight is used with a warning): 140/70 = 2 g/kg
    assert (c["dosing_weight_kg"], c["g_per_kg"]) == (70, 2)
    assert ("stale-weight" in _codes(s)) is stale


# --- §4 units: a weight in pounds, a VAS in mm, an enzyme in µkat/L ------------------------------


def test_example_a_in_other_units() -> None:
    """Example A with PGA in mm (60 → 30 mm = 6 → 3 cm), CK in µkat/L (50 → 20 µkat/L =
    3000 → 1200 U/L, ULN 3.33 µkat/L), weight 154.3235835 lb: the same 62.5, major."""
    case = _adult("units")
    bl, fu = "2024-01-08T08:45:00+01:00", "2024-03-04T08:45:00+01:00"
    for key, base, follow in M.A_VALUES:
        if key != "pga":
            case.measure(key, base, bl)
            case.measure(key, follow, fu)
    for value, when in ((60, bl), (30, fu)):
        pga = case.measure("pga", value, when)
        pga["valueQuantity"].update({"unit": "mm", "code": "mm"})
    case.enzyme("ck", 50, "2024-01-08T08:20:00+01:00", 3.33, unit="ukat/L")
    case.enzyme("ck", 20, "2024-03-04T08:20:00+01:00", 3.33, unit="ukat/L")
    # 154.3235835 lb × 0.45359237 kg/lb = 70.00000… kg (to 7 places)
    case.weight(154.3235835, "2024-01-08T08:10:00+01:00", unit="[lb_av]")
    med = case.medication()
    case.ivig(med, "2024-01-08T10:00:00+01:00", "2024-01-08T14:00:00+01:00", 70, 100)
    case.ivig(med, "2024-01-09T10:00:00+01:00", "2024-01-09T14:00:00+01:00", 70, 100)
    s = _evaluate(case)
    (a,) = s["assessments"]
    assert (a["tis"], a["category"]) == (62.5, "major")
    assert a["measures"]["pga"] == {"percent_improvement": 30, "score": 17.5}
    assert a["measures"]["enzyme"] == {"percent_improvement": 60, "score": 7.5}
    (c,) = s["ivig"]["cycles"]
    assert Decimal(str(c["dosing_weight_kg"])).quantize(Decimal("0.0001")) == Decimal("70.0000")
    assert c["g_per_kg"] == 2


# --- §2.3 onset age -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("onset", "population"),
    [
        ({"onsetAge": {"value": 17.99, "unit": "a", "system": M.UCUM, "code": "a"}}, "juvenile"),
        ({"onsetAge": {"value": 18, "unit": "a", "system": M.UCUM, "code": "a"}}, "adult"),
        ({"onsetAge": {"value": 215, "unit": "mo", "system": M.UCUM, "code": "mo"}}, "juvenile"),
        ({"onsetAge": {"value": 216, "unit": "mo", "system": M.UCUM, "code": "mo"}}, "adult"),
        # born 1997-06-15: the day before the 18th birthday, in the record's own zone (it is
        # 2015-06-15 in UTC), and the birthday itself
        ({"onsetDateTime": "2015-06-14T23:30:00-05:00"}, "juvenile"),
        ({"onsetDateTime": "2015-06-15T00:30:00+02:00"}, "adult"),
    ],
)
def test_onset_age_at_eighteen(onset: dict[str, Any], population: str) -> None:
    case = M.Case("age", "female", "1997-06-15")
    case.condition("396230008", "Dermatomyositis (disorder)", onset)
    s = _evaluate(case)
    assert (s["population"], s["population_reason"]) == (population, "onset-age")


# --- §5.3 a date-only onset and "early" -----------------------------------------------------------


@pytest.mark.parametrize(
    ("onset", "early"),
    [
        # day 1 10:00–14:00 and day 2 10:00–14:00 (03-04, 03-05, +01:00): early runs from
        # 03-04 10:00 to 03-06 14:00
        ("2024-03-05", True),  # every instant of 03-05 is inside
        ("2024-03-06", None),  # the morning is, the evening is not: unknown
        ("2024-03-07", False),  # none is
        ("2024-03-06T13:59:00+01:00", True),
        ("2024-03-06T14:01:00+01:00", False),
    ],
)
def test_early_with_date_only_onsets(onset: str, early: bool | None) -> None:
    case = _adult("early")
    case.weight(70, "2024-03-04T08:00:00+01:00")
    med = case.medication()
    case.ivig(med, "2024-03-04T10:00:00+01:00", "2024-03-04T14:00:00+01:00", 70, 100)
    case.ivig(med, "2024-03-05T10:00:00+01:00", "2024-03-05T14:00:00+01:00", 70, 100)
    case.condition("22298006", "Myocardial infarction (disorder)", {"onsetDateTime": onset})
    s = _evaluate(case)
    (event,) = s["thrombosis"]["associated_events"]
    assert (event["early"], event["cycles"]) == (early, [1])
    assert ("tee-early-unknown" in _codes(s)) is (early is None)
