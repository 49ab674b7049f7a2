"""A UCUM ``Quantity.code`` written in capitals. UCUM codes in FHIR are the case-sensitive
symbols (R4 datatypes.html#Quantity: "the code SHALL be ... from UCUM"; UCUM §4 and the FHIR
ValueSet ucum-units: "UCUM codes are case sensitive"): ``ML`` is the megalitre (prefix ``M``
mega, ``L`` litre), while UCUM's case-insensitive symbol of the millilitre is the same ``ML``
(prefix ``M`` milli, ``L`` litre; mega is ``MA``). HL7 v2 units are sent in capitals (ISO+ /
ANSI ``ML``, ``MG``), and systems bridged from v2 put them in FHIR (clinical spec, units: a unit
*text* all in capitals is read as its lower-case symbol). As a *code* such a unit may mean
either reading; fhirtis must not guess, and never silently read 700 mL as 700 megalitres.

Before: an IVIG dose ``{"value": 700, "system": UCUM, "code": "ML"}`` was read as 7 × 10^11 mL:
140,000,000,000 g, 2,000,000,000 g/kg per cycle, reported with only a "% off target" warning
and exit status 0; a rate ``ML/H`` likewise × 10^9 (a rate finding on 10^9 mg/kg/min, or none
where the dose was in grams). Now the value is unknown (the administration still counts, §4)
with a warning that names the case-sensitive code meant. A code whose two readings agree
(``L``, ``U/L``) and valid lower-case codes (``ml``, as German MII examples write it) are read
as before."""

from __future__ import annotations

from decimal import Decimal

from fhirtis.fhir.extract import PatientData
from tests.fhir.builders import LOINC, UCUM, administration, enzyme, medication, obs, patient
from tests.fhir.reading import extract

Json = dict[str, object]
WEIGHT = obs("w1", "29463-7", 70, "kg", "2025-03-01", system=LOINC)


def _code(value: float | int, code: str, unit: str | None = None) -> Json:
    return {"value": value, "unit": unit or code, "system": UCUM, "code": code}


def _ma(dose: Json | None = None, rate: Json | None = None) -> Json:
    return administration(
        "a1", "2025-03-03T09:00:00Z", "2025-03-03T15:00:00Z", dose=dose, rate=rate
    )


def _read(dose: Json | None = None, rate: Json | None = None) -> PatientData:
    return extract(patient(), WEIGHT, medication(), _ma(dose, rate))


def _warnings(data: PatientData) -> list[str]:
    return [i.diagnostics for i in data.issues if i.severity == "warning"]


def test_a_dose_coded_in_capital_ml_is_unknown_never_megalitres() -> None:
    data = _read(dose=_code(700, "ML", "milliliter"))
    (a,) = data.administrations
    assert a.dose_ml is None and a.dose_g is None
    (said,) = _warnings(data)
    assert "'ML'" in said and "'mL'" in said and "case-sensitive" in said
    assert "administration still counts" in said


def test_a_rate_coded_in_capital_ml_per_h_is_unknown_never_megalitres() -> None:
    data = _read(dose=_code(70, "g"), rate=_code(150, "ML/H", "ML/HR"))
    (a,) = data.administrations
    assert a.dose_g == Decimal(70)
    assert a.rate_ml_per_h is None and a.rate_mg_per_h is None
    (said,) = _warnings(data)
    assert "'ML/H'" in said and "'mL/h'" in said and "case-sensitive" in said


def test_a_dose_coded_in_capital_mg_names_the_milligram_it_is_not() -> None:
    """``MG`` is no mass in case-sensitive UCUM (``G`` is the gauss): it was excluded as
    "unknown"; the warning now says which case-sensitive code would be read."""
    data = _read(dose=_code(70000, "MG"))
    (a,) = data.administrations
    assert a.dose_g is None
    (said,) = _warnings(data)
    assert "'mg'" in said and "case-sensitive" in said


def test_a_weight_coded_in_capital_kg_is_excluded_naming_kg() -> None:
    data = extract(patient(), obs("w2", "29463-7", 70, "KG", "2025-03-01", system=LOINC))
    assert data.weights == []
    (issue,) = data.issues
    assert "'kg'" in issue.diagnostics and "case-sensitive" in issue.diagnostics


def test_codes_whose_readings_agree_and_lower_case_codes_are_read() -> None:
    data = _read(dose=_code(0.7, "L"), rate=_code(150, "ml/h"))
    (a,) = data.administrations
    assert a.dose_ml == Decimal(700) and a.rate_ml_per_h == Decimal(150)
    assert _warnings(data) == []
    ck = enzyme("ck1", "2157-6", 1840, "2025-03-01", uln=192)
    (m,) = extract(patient(), ck).measures
    assert m.value == Decimal(1840) and m.uln == Decimal(192)
