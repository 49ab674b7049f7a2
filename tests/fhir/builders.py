"""Terse builders of FHIR R4 resources for tests (plain dicts, as a server sends them)."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
UCUM = "http://unitsofmeasure.org"
CORE = "http://fhirtis.org/fhir/CodeSystem/myositis-core-set"
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
ATC = "http://www.whocc.no/atc"
PATIENT = "Patient/p1"


def qty(value: float | int | str, unit: str) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def patient(pid: str = "p1", birth: str = "1970-03-01", gender: str = "female") -> Json:
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": gender}


def obs(
    oid: str,
    code: str,
    value: float | int | str,
    unit: str,
    day: str,
    system: str = CORE,
    subject: str = PATIENT,
    **extra: Any,
) -> Json:
    r: Json = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": subject},
        "effectiveDateTime": day,
        "valueQuantity": qty(value, unit),
    }
    r.update(extra)
    return r


def enzyme(
    oid: str,
    loinc: str,
    value: float | int,
    day: str,
    uln: float | int | None = 200,
    unit: str = "U/L",
) -> Json:
    extra: Json = {}
    if uln is not None:
        extra["referenceRange"] = [{"high": qty(uln, unit)}]
    return obs(oid, loinc, value, unit, day, system=LOINC, **extra)


def visit(
    i: int,
    day: str,
    pga: float,
    ptga: float,
    mmt: int,
    haq: float,
    em: float,
    ck: int,
    mmt_code: str = "mmt8-150",
) -> list[Json]:
    return [
        obs(f"pga{i}", "pga", pga, "cm", day),
        obs(f"ptga{i}", "ptga", ptga, "cm", day),
        obs(f"mmt{i}", mmt_code, mmt, "{score}", day),
        obs(f"haq{i}", "haq-di", haq, "{score}", day),
        obs(f"em{i}", "extramuscular", em, "cm", day),
        enzyme(f"ck{i}", "2157-6", ck, day),
    ]


def medication(
    mid: str = "octa",
    grams_per_100ml: int | None = 10,
    code: tuple[str, str] = (ATC, "J06BA02"),
    text: str = "Octagam 10%",
) -> Json:
    r: Json = {
        "resourceType": "Medication",
        "id": mid,
        "code": {"coding": [{"system": code[0], "code": code[1]}], "text": text},
    }
    if grams_per_100ml is not None:
        r["ingredient"] = [
            {
                "itemCodeableConcept": {"text": "human normal immunoglobulin"},
                "strength": {"numerator": qty(grams_per_100ml, "g"), "denominator": qty(100, "mL")},
            }
        ]
    return r


def administration(
    aid: str,
    start: str,
    end: str | None = None,
    *,
    dose: Json | None = None,
    rate: Json | None = None,
    med: str = "Medication/octa",
    status: str = "completed",
    **extra: Any,
) -> Json:
    period: Json = {"start": start}
    if end:
        period["end"] = end
    dosage: Json = {}
    if dose is not None:
        dosage["dose"] = dose
    if rate is not None:
        dosage["rateQuantity"] = rate
    r: Json = {
        "resourceType": "MedicationAdministration",
        "id": aid,
        "status": status,
        "medicationReference": {"reference": med},
        "subject": {"reference": PATIENT},
        "effectivePeriod": period,
        "dosage": dosage,
    }
    r.update(extra)
    return r


def condition(cid: str, system: str, code: str, onset: str | None, **extra: Any) -> Json:
    r: Json = {
        "resourceType": "Condition",
        "id": cid,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": PATIENT},
    }
    if onset:
        r["onsetDateTime"] = onset
    r.update(extra)
    return r


def bundle(*resources: Json) -> Json:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in resources],
    }
