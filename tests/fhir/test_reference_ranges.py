"""The upper limit of normal (ULN) of an enzyme from ``Observation.referenceRange`` (clinical spec
§1): the range that applies to this patient (R4: several ranges are an "OR", each for the
population its ``appliesTo``, ``age`` and ``type`` say); a range whose ULN cannot be used makes
the ULN unknown, never the value."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from fhirtis.clinical.facts import Instrument
from fhirtis.fhir.codes import SNOMED
from fhirtis.fhir.extract import PatientData
from tests.fhir.builders import LOINC, enzyme, obs, patient, qty
from tests.fhir.test_extract import _extract

D = Decimal
GENDER = "http://hl7.org/fhir/administrative-gender"
MEANING = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"
SEX_CODES = {
    "snomed": {"male": (SNOMED, "248153007"), "female": (SNOMED, "248152002")},
    "referencerange-meaning": {"male": (MEANING, "male"), "female": (MEANING, "female")},
    "administrative-gender": {"male": (GENDER, "male"), "female": (GENDER, "female")},
}
DEFAULT = {Instrument.CK: D(170)}  # a site's configured default ULN


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _ck(*ranges: dict[str, Any], day: str = "2024-01-02") -> dict[str, Any]:
    return obs("ck", "2157-6", 900, "U/L", day, system=LOINC, referenceRange=list(ranges))


def _range(high: float | int, **extra: Any) -> dict[str, Any]:
    return {"high": qty(high, "U/L"), **extra}


def _for_sex(high: int, sex: str, system: str = "administrative-gender") -> dict[str, Any]:
    return _range(high, appliesTo=[_concept(*SEX_CODES[system][sex])])


def _years(low: int | None, high: int | None) -> dict[str, Any]:
    age: dict[str, Any] = {}
    if low is not None:
        age["low"] = qty(low, "a")
    if high is not None:
        age["high"] = qty(high, "a")
    return age


def _ck_value(data: PatientData) -> tuple[Decimal, Decimal | None]:
    (m,) = [m for m in data.measures if m.instrument is Instrument.CK]
    return m.value, m.uln


def _warnings(data: PatientData) -> list[str]:
    return [f"{i.resource} {i.expression}: {i.diagnostics}" for i in data.issues]


# -- several ranges: the one for this patient's sex -------------------------------------------


@pytest.mark.parametrize("system", sorted(SEX_CODES))
@pytest.mark.parametrize(("sex", "uln"), [("female", D(150)), ("male", D(400))])
def test_the_range_for_the_patients_sex_is_the_uln(system: str, sex: str, uln: Decimal) -> None:
    ck = _ck(_for_sex(400, "male", system), _for_sex(150, "female", system))
    data = _extract(patient(gender=sex), ck, ulns=DEFAULT)
    assert _ck_value(data) == (D(900), uln)
    assert data.issues == []


def test_the_patient_read_after_the_observation_still_chooses_the_range() -> None:
    ck = _ck(_for_sex(400, "male"), _for_sex(150, "female"))
    data = _extract(ck, patient(gender="female"), ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(150))
    assert data.issues == []


@pytest.mark.parametrize("gender", [None, "unknown", "other"])
def test_sex_unknown_and_the_ranges_differ_the_uln_is_not_guessed(gender: str | None) -> None:
    p = patient()
    if gender is None:
        del p["gender"]
    else:
        p["gender"] = gender
    data = _extract(p, _ck(_for_sex(400, "male"), _for_sex(150, "female")), ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(170))  # the configured default, not 400 nor 150
    (issue,) = data.issues
    assert issue.severity == "warning"
    assert issue.resource == "Observation/ck"
    assert issue.expression == "Bundle.entry[1].resource.referenceRange"
    assert not any(n in issue.diagnostics for n in ("150", "400", "900", "female", "1970"))


def test_sex_unknown_without_a_default_leaves_the_uln_unknown() -> None:
    p = patient()
    del p["gender"]
    data = _extract(p, _ck(_for_sex(400, "male"), _for_sex(150, "female")))
    assert _ck_value(data) == (D(900), None)
    assert len(data.issues) == 1


def test_sex_unknown_but_the_ranges_agree_is_that_uln() -> None:
    p = patient()
    del p["gender"]
    data = _extract(p, _ck(_for_sex(200, "male"), _for_sex(200, "female")), ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(200))
    assert data.issues == []


def test_several_ranges_that_all_apply_with_different_ulns_are_not_guessed() -> None:
    data = _extract(patient(), _ck(_range(400), _range(150)), ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(170))
    (issue,) = data.issues
    assert issue.severity == "warning"
    assert issue.expression == "Bundle.entry[1].resource.referenceRange"


def test_a_range_only_for_the_other_sex_is_no_uln_for_this_patient() -> None:
    data = _extract(patient(gender="female"), _ck(_for_sex(400, "male")), ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(170))
    assert [i.severity for i in data.issues] == ["warning"]


# -- type: only a normal range is a ULN ---------------------------------------------------------


def test_a_treatment_range_is_not_the_uln() -> None:
    ck = _ck(
        _range(5000, type=_concept(MEANING, "treatment")),
        _range(200, type=_concept(MEANING, "normal")),
    )
    data = _extract(patient(), ck, ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(200))
    assert data.issues == []


def test_a_range_without_a_type_is_normal() -> None:
    ck = _ck(_range(5000, type=_concept(MEANING, "therapeutic")), _range(200))
    assert _ck_value(_extract(patient(), ck, ulns=DEFAULT)) == (D(900), D(200))


# -- age: the range for the patient's age on the Observation's date -----------------------------


@pytest.mark.parametrize(
    ("birth", "uln"),
    [
        ("1970-03-01", D(150)),  # 53 on 2024-01-02
        ("2015-06-01", D(400)),  # 8
        ("2006-01-02", D(150)),  # 18 that very day
        ("2006-01-03", D(400)),  # 17, 18 the day after
    ],
)
def test_the_range_for_the_patients_age_is_the_uln(birth: str, uln: Decimal) -> None:
    ck = _ck(_range(400, age=_years(0, 17)), _range(150, age=_years(18, None)))
    data = _extract(patient(birth=birth), ck, ulns=DEFAULT)
    assert _ck_value(data) == (D(900), uln)
    assert data.issues == []


def test_an_age_range_in_months() -> None:
    months = {"low": qty(0, "mo"), "high": qty(23, "mo")}
    ck = _ck(_range(400, age=months), _range(150, age=_years(2, None)))
    assert _ck_value(_extract(patient(birth="2023-03-01"), ck)) == (D(900), D(400))
    assert _ck_value(_extract(patient(birth="2021-03-01"), ck)) == (D(900), D(150))


def test_birth_date_unknown_and_the_age_ranges_differ_the_uln_is_not_guessed() -> None:
    p = patient()
    del p["birthDate"]
    ck = _ck(_range(400, age=_years(0, 17)), _range(150, age=_years(18, None)))
    data = _extract(p, ck, ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(170))
    (issue,) = data.issues
    assert issue.severity == "warning"
    assert "1970" not in issue.diagnostics


def test_a_birth_year_that_decides_the_age_range_is_enough() -> None:
    # born in 1970 (day unknown): 53 or 54 on 2024-01-02, an adult either way
    ck = _ck(_range(400, age=_years(0, 17)), _range(150, age=_years(18, None)))
    data = _extract(patient(birth="1970"), ck, ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(150))
    assert data.issues == []


def test_sex_and_age_together() -> None:
    ck = _ck(
        _for_sex(400, "male") | {"age": _years(18, None)},
        _for_sex(150, "female") | {"age": _years(18, None)},
        _range(300, age=_years(0, 17)),
    )
    data = _extract(patient(gender="female"), ck, ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(150))
    assert data.issues == []


# -- a ULN that cannot be used makes the ULN unknown, never the value ---------------------------


def test_a_high_without_a_unit_is_read_in_the_unit_of_the_value() -> None:
    # R4 SimpleQuantity.unit is optional (observation-example-f204-creatinine: {"value": 104})
    ck = _ck({"low": {"value": 30}, "high": {"value": 200}, "text": "30-200"})
    data = _extract(patient(), ck, ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(200))
    (issue,) = data.issues
    assert issue.severity == "warning"
    assert issue.expression == "Bundle.entry[1].resource.referenceRange[0].high"
    assert "200" not in issue.diagnostics and "900" not in issue.diagnostics


def test_a_high_without_a_unit_takes_the_values_unit_before_conversion() -> None:
    ck = enzyme("ck", "2157-6", 50, "2024-01-02", uln=None, unit="ukat/L")
    ck["referenceRange"] = [{"high": {"value": 3.3}}]
    data = _extract(patient(), ck)
    assert _ck_value(data) == (D(3000), D(198))
    assert [i.severity for i in data.issues] == ["warning"]


@pytest.mark.parametrize(
    "high",
    [
        qty(200, "furlong"),  # unknown unit
        qty(200, "mg"),  # not convertible to U/L
        {"value": 200, "unit": "U/L", "system": "http://example.org/units", "code": "U/L"},
        {"unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"},  # no value
    ],
    ids=["unknown-unit", "mass-unit", "not-ucum", "no-value"],
)
def test_a_high_that_cannot_be_read_leaves_the_value_and_uses_the_default(
    high: dict[str, Any],
) -> None:
    data = _extract(patient(), _ck({"high": high}), ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(170))
    (issue,) = data.issues
    assert issue.severity == "warning"
    assert issue.resource == "Observation/ck"
    assert (issue.expression or "").startswith("Bundle.entry[1].resource.referenceRange[0].high")


def test_a_high_that_cannot_be_read_without_a_default_leaves_the_uln_unknown() -> None:
    data = _extract(patient(), _ck({"high": qty(200, "furlong")}))
    assert _ck_value(data) == (D(900), None)


def test_a_single_range_in_u_per_l_is_read_as_before() -> None:
    data = _extract(patient(), _ck(_range(200)), ulns=DEFAULT)
    assert _ck_value(data) == (D(900), D(200))
    assert data.issues == []
