"""Dates the FHIR regex lets through but the calendar has not, found by damaging corpus Bundles:
a day that month lacks (2023-02-29, 2024-04-31) and the calendar's end years (0001, 9999, the
"no end" placeholder 9999-12-31 among them). Each is refused where it is read, with an issue
naming the element; the patient is still evaluated. They escaped as ValueError or OverflowError
(day out of range, year 10000, a UTC time or a TEE window past 9999-12-31) and lost the patient:
``fhirtis evaluate`` printed a traceback."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.primitives import PrimitiveError, parse_date_bounds, parse_date_time
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir import builders as b

Json = dict[str, Any]


def _evaluate(*resources: Json, birth: str = "1970-03-01") -> PatientResult:
    raw = orjson.dumps(b.bundle(b.patient(birth=birth), *resources))
    result = evaluate_patient_resources(read_patient_bundle(raw), Settings())
    result.plan()
    dumps(patient_summary(result.patient_ref, result.evaluation, result.issues))
    return result


def _course(**period: str) -> list[Json]:
    """A 2 g/kg course over two days (70 kg, 10 %): the first administration's period
    ``period``, the second's a plain one."""
    first = b.administration(
        "a1", "2024-03-04T09:00:00Z", "2024-03-04T13:00:00Z", dose=b.qty(70, "g")
    )
    first["effectivePeriod"] = period
    second = b.administration(
        "a2", "2024-03-05T09:00:00Z", "2024-03-05T13:00:00Z", dose=b.qty(70, "g")
    )
    weight = b.obs("w", "29463-7", 70, "kg", "2024-03-01", system=b.LOINC)
    return [b.medication(), weight, first, second]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2023-02-29", "not a valid date"),
        ("2024-04-31", "not a valid date"),
        ("9999-12-31", "end of the calendar"),
        ("9999-12-31T23:59:59-12:00", "end of the calendar"),
        ("0001-01-01T00:00:00+14:00", "end of the calendar"),
        ("0001-01-01", "end of the calendar"),
    ],
)
def test_dates_the_calendar_lacks_are_refused(text: str, says: str) -> None:
    with pytest.raises(PrimitiveError) as info:
        parse_date_time(text)
    assert says in str(info.value)


@pytest.mark.parametrize("text", ["9999-12", "9999", "0001", "2023-02-29"])
def test_partial_dates_at_the_calendar_ends_are_refused(text: str) -> None:
    with pytest.raises(PrimitiveError):
        parse_date_bounds(text)


def test_the_years_between_are_read() -> None:
    assert parse_date_time("9998-12-31T23:59:59-12:00")[0].year == 9998
    assert parse_date_time("0002-01-01")[0].year == 2
    assert parse_date_bounds("9998-12") == (
        parse_date_time("9998-12-01")[0].date(),
        parse_date_time("9998-12-31")[0].date(),
    )


@pytest.mark.parametrize(
    "period",
    [
        {"start": "2024-02-30T09:00:00Z"},  # a day February lacks (the regex allows 30)
        {"start": "2023-02-29"},
        {"start": "9999-12-31"},  # the day's last instant is past the calendar
        {"start": "2024-03-04T09:00:00Z", "end": "9999-12-31T23:59:59-12:00"},  # UTC: year 10000
        {"start": "0001-01-01T00:00:00+14:00"},  # UTC: year 0
        {"start": "2024-03-04T09:00:00Z", "end": "9999-12-31"},  # a TEE window past 9999
    ],
    ids=str,
)
def test_an_administration_dated_off_the_calendar_is_excluded(period: dict[str, str]) -> None:
    result = _evaluate(*_course(**period))
    refused = [i for i in result.issues if i.resource == "MedicationAdministration/a1"]
    assert refused and refused[0].severity == "error"
    assert "effectivePeriod" in refused[0].diagnostics
    # the other administration still counts: 70 g of 70 kg
    (cycle,) = result.evaluation.exposure.cycles
    assert cycle.grams == 70


@pytest.mark.parametrize("birth", ["9999-12", "2023-02-29", "0001"])
def test_a_birth_date_off_the_calendar_is_an_unknown_age(birth: str) -> None:
    result = _evaluate(*_course(start="2024-03-04T09:00:00Z"), birth=birth)
    assert any("birthDate" in i.diagnostics for i in result.issues)
    assert len(result.evaluation.exposure.cycles) == 1


def test_an_observation_on_a_day_the_month_lacks_is_excluded() -> None:
    pga = b.obs("pga1", "pga", 6, "cm", "2023-02-29")
    result = _evaluate(pga)
    assert any(
        i.resource == "Observation/pga1" and "not a valid date" in i.diagnostics
        for i in result.issues
    )
