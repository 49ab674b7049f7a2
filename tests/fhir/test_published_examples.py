"""Published FHIR R4 examples (tests/data/published, sources and licences in its README): fhirtis
never crashes on them, never drops one silently, and reads the values they carry as read by hand.

Each single resource example is evaluated in a one-patient Bundle: the example, with its
``subject``/``patient`` reference retargeted to a Patient added beside it (everything else kept),
plus the Medication example it references by ``Medication/<id>``, if any. Each whole published
Bundle is evaluated as it is.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.extract.patient import patient_ref_in
from fhirtis.fhir.outcome import InputError, operation_outcome
from fhirtis.fhir.validation import validate
from fhirtis.pipeline.offline import PatientResult, evaluate_bundle_file, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.test_corpus_schema import _resources, _schema_errors

Json = dict[str, Any]
PUBLISHED = Path(__file__).parents[1] / "data" / "published"
SETS = ("r4", "us-core")  # folders of single resource examples
PATIENT = "Patient/pt-published"
HOST: Json = {"resourceType": "Patient", "id": "pt-published", "gender": "female"}
UNCLASSIFIED = "could not be classified"  # the warning on a code no shipped ValueSet lists

# The types fhirtis reads (fhirtis/fhir/extract/__init__.py); a Medication is read through the
# administration that references it.
READ_TYPES = {
    "Patient",
    "Observation",
    "MedicationAdministration",
    "Condition",
    "AdverseEvent",
    "MedicationStatement",
    "MedicationRequest",
    "Device",
    "DeviceUseStatement",
    "Procedure",
}

# Examples of types fhirtis does not read (a Medication is read through an administration).
NOT_READ = {"Medication", "MedicationDispense"}

# Every example fhirtis reads (uses as a source), with what it reads, worked by hand from the
# file. Every other example must be passed over (a code fhirtis does not use, a type it does not
# read) or excluded with an error naming it: none is.
READ: dict[str, str] = {
    # 185 [lb_av] x 0.45359237 kg/[lb_av] (UCUM) = 83.91458845 kg, dated 2016-03-28
    "r4/observation-example.json": "weight 83.91458845 2016-03-28",
    # 66.899999999999991 [in_i] x 2.54 cm/[in_i]. JSON numbers are parsed as binary floats, so
    # this 17-digit decimal is read as 66.89999999999999 (1e-15 less): x 2.54 = 169.9259999999999746
    "r4/observation-example-body-height.json": "height 169.9259999999999746 1999-07-02",
    "r4/observation-example-body-length.json": "height 25 1999-07-02",  # 8306-3, 25 cm
    "r4/observation-example-bmi.json": "bmi 16.2 1999-07-02",
    "r4/observation-example-bmi-using-related.json": "bmi 16.2 1999-07-02",
    "us-core/weight.json": "weight 20.09414 1999-07-02",
    "us-core/height.json": "height 111.506 1999-07-02",
    "us-core/length.json": "height 25 1999-07-02",
    "us-core/bmi.json": "bmi 16.2 1999-07-02",
    # SNOMED CT 422504002 "Ischemic stroke (disorder)", active, onset 2010-07-18
    "r4/condition-example-stroke.json": "event ischaemic-stroke 2010-07-18",
    # an active "NSCLC - Non-small cell lung cancer" (SNOMED CT 254637007, in VSAC "Malignant
    # Neoplasms"): the malignancy risk factor from its onset
    "r4/condition-example-f002-lung.json": "risk malignancy 2011-05-05",
    # US Core smoking status (LOINC 72166-2), SNOMED CT 428041000124106 "Current some day
    # smoker", effectivePeriod.start 2016-03-18: a cardiovascular risk factor from that day
    "us-core/some-day-smoker.json": "risk cardiovascular 2016-03-18",
}
# Examples passed over with a warning naming them, other than an unclassified code: the part of
# the warning's text and the element it is at.
WARNED: dict[str, tuple[str, str]] = {
    # SNOMED CT 363346000 "Malignant neoplastic disease", resolved, onsetAge 52 a, abatementAge
    # 54 a: active for two years of the patient's life, which fhirtis cannot date (it reads
    # abatementDateTime), so it is not counted, and says so (it was passed over silently).
    "r4/condition-example-f202-malignancy.json": (
        "malignancy risk factor is not counted",
        "Bundle.entry[1].resource.abatementAge",
    ),
    # deceased (deceasedDateTime, or deceasedBoolean true): evaluated as the record, and said
    # (it was silent)
    "r4/patient-example-c.json": ("recorded deceased on 2015-02-14", "Patient.deceased[x]"),
    "r4/patient-example-d.json": ("recorded deceased", "Patient.deceased[x]"),
    "us-core/patient-deceased-example.json": (
        "recorded deceased on 2022-07-22",
        "Patient.deceased[x]",
    ),
}
# Patients: every Patient example is read (its sex and birth date, when given).
PATIENTS: dict[str, tuple[str, date | None]] = {
    "r4/patient-example.json": ("male", date(1974, 12, 25)),
    "us-core/patient-example.json": ("unknown", date(1987, 2, 20)),  # US Core: no gender given
}


def _examples() -> list[str]:
    out = []
    for folder in SETS:
        for path in sorted((PUBLISHED / folder).glob("*.json")):
            if json.loads(path.read_text()).get("resourceType") != "Bundle":
                out.append(f"{folder}/{path.name}")
    return out


EXAMPLES = _examples()


@cache
def _medications(folder: str) -> dict[str, Json]:
    """The Medication examples of a folder by "Medication/<id>"."""
    out = {}
    for path in (PUBLISHED / folder).glob("*.json"):
        r = json.loads(path.read_text())
        if r.get("resourceType") == "Medication":
            out[f"Medication/{r['id']}"] = r
    return out


def _retarget(resource: Json) -> Json:
    """The example with its subject/patient reference (when it names a Patient) retargeted to
    the host Patient; everything else kept."""
    out = copy.deepcopy(resource)
    for key in ("subject", "patient"):
        value = out.get(key)
        reference = value.get("reference") if isinstance(value, dict) else None
        if isinstance(reference, str) and patient_ref_in(reference) is not None:
            value["reference"] = PATIENT  # type: ignore[index]
    return out


def one_patient_bundle(name: str) -> Json:
    folder = name.split("/", maxsplit=1)[0]
    example = json.loads((PUBLISHED / name).read_text())
    if example["resourceType"] == "Patient":
        entries = [example]
    else:
        entries = [HOST, _retarget(example)]
        ref = (example.get("medicationReference") or {}).get("reference")
        if ref in _medications(folder):
            entries.append(_medications(folder)[ref])
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in entries],
    }


def evaluate(bundle: Json, where: str = "(test)") -> PatientResult:
    return evaluate_patient_resources(read_patient_bundle(orjson.dumps(bundle), where), Settings())


def evaluate_fixture(path: Path) -> PatientResult:
    """A fixture Bundle evaluated with the default settings, its output checked."""
    result = evaluate_bundle_file(path, Settings())
    check_output(result)
    return result


def assert_two_infusions_of_70_g(
    result: PatientResult, ids: tuple[str, str], max_rate_mg_kg_min: Decimal
) -> None:
    """The MedicationAdministrations ``ids`` are counted, as one cycle of 140 g = 2 g/kg (at
    70 kg) whose fastest rate is ``max_rate_mg_kg_min`` (to 3 decimals)."""
    assert [a.source for a in result.data.administrations] == [
        f"MedicationAdministration/{i}" for i in ids
    ]
    (cycle,) = result.evaluation.exposure.cycles
    assert cycle.grams == Decimal(140)
    assert cycle.g_per_kg == Decimal(2)
    assert round(cycle.max_rate_mg_kg_min or 0, 3) == round(max_rate_mg_kg_min, 3)


def check_fixture_folder(folder: Path, sources: str) -> None:
    """Every fixture in ``folder`` is listed in its README, named in ``sources`` (the text of
    the tests that use it) and valid R4 (the official JSON schema)."""
    names = sorted(p.name for p in folder.glob("*.json"))
    readme = (folder / "README.md").read_text()
    assert names and all(f"`{n}`" in readme and n in sources for n in names), names
    for name in names:
        doc = json.loads((folder / name).read_text())
        assert [e for r in _resources(doc) for e in _schema_errors(r)] == [], name


def check_output(result: PatientResult) -> None:
    """Everything written validates; the OperationOutcome is well formed."""
    for derived in result.derived:
        validate(derived.resource)
    plan = result.plan()
    for entry in (plan.bundle or {}).get("entry", []):
        validate(entry["resource"])
    outcome = operation_outcome(result.issues)
    OperationOutcome.model_validate(outcome)
    for issue in result.issues:
        assert issue.severity in {"fatal", "error", "warning", "information"}
        assert issue.diagnostics.strip()


def _read_facts(result: PatientResult) -> list[str]:
    data = result.data
    return (
        [f"weight {w.kg} {w.when.date()}" for w in data.weights]
        + [f"height {h.cm} {h.when.date()}" for h in data.heights]
        + [f"bmi {b.kg_per_m2} {b.when.date()}" for b in data.bmis]
        + [f"event {e.kind.value} {e.onset.day}" for e in data.events]
        + [f"risk {e.kind.value} {e.start}" for e in data.evidence]
        + [f"measure {m.instrument.value} {m.value}" for m in data.measures]
        + [f"administration {a.source}" for a in data.administrations]
    )


def test_the_examples_are_there() -> None:
    kinds = {json.loads((PUBLISHED / n).read_text())["resourceType"] for n in EXAMPLES}
    assert kinds == READ_TYPES | NOT_READ
    assert len(EXAMPLES) > 300
    assert set(READ) | set(PATIENTS) <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_is_read_passed_over_or_excluded_by_name(name: str) -> None:
    example = json.loads((PUBLISHED / name).read_text())
    ref = f"{example['resourceType']}/{example['id']}"
    result = evaluate(one_patient_bundle(name), name)
    check_output(result)
    errors = [i for i in result.issues if i.severity in {"fatal", "error"}]
    excluded = [i for i in errors if i.resource == ref]
    assert errors == excluded  # nothing else is wrong with the Bundle
    # the only warnings: a code the shipped ValueSets do not list (a terminology server would
    # classify it), naming the resource
    warned = [
        i for i in result.issues if i.severity == "warning" and UNCLASSIFIED not in i.diagnostics
    ]
    assert [(i.resource, i.expression) for i in warned] == (
        [(ref, WARNED[name][1])] if name in WARNED else []
    )
    assert all(WARNED[name][0] in i.diagnostics for i in warned)
    for issue in result.issues:
        if issue.severity == "warning":
            assert issue.resource == ref, issue
    facts = _read_facts(result)
    if example["resourceType"] == "Patient":
        assert list(result.data.used) == [ref] and result.patient_ref == ref
        sex, birth = PATIENTS.get(name, (None, None))
        if sex is not None:
            assert (result.data.patient.sex.value, result.data.patient.birth_date) == (sex, birth)
        return
    if name in READ:
        assert ref in result.data.used and not excluded
        assert facts == [READ[name]]
    else:
        # passed over (not a code, a type or a product fhirtis uses), or excluded, saying so
        assert ref not in result.data.used and facts == []
        assert example["resourceType"] in READ_TYPES | NOT_READ
    assert not excluded  # no published example is malformed for fhirtis


# -- the published dosage shapes through the IVIG path ------------------------------------------
# The R4 MedicationAdministration examples (antibiotics, electrolytes, TPN …) are not IVIG, so
# fhirtis passes them over (above). To read their dosage shapes (dose in g, mg, mg/kg, meq, mL,
# TAB; rateQuantity in "min"; rateRatio mL/h and ml/min; a period without an end; routes IV,
# oral, subcutaneous, none) as it would an IVIG's, each is evaluated again with its medication
# replaced by an IVIG product (ATC J06BA02, 10 g/100 mL) and a 70 kg weight the day before:
# everything else as published.

IVIG: Json = {
    "resourceType": "Medication",
    "id": "ivig-10",
    "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]},
    "ingredient": [
        {
            "itemCodeableConcept": {"text": "immunoglobulin G, human"},
            "isActive": True,
            "strength": {
                "numerator": {"value": 10, "system": "http://unitsofmeasure.org", "code": "g"},
                "denominator": {"value": 100, "system": "http://unitsofmeasure.org", "code": "mL"},
            },
        }
    ],
}
WEIGHT: Json = {
    "resourceType": "Observation",
    "id": "weight-70",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
    "subject": {"reference": PATIENT},
    "effectiveDateTime": "2015-01-14",
    "valueQuantity": {"value": 70, "system": "http://unitsofmeasure.org", "code": "kg"},
}
CET = timezone(timedelta(hours=1))


@dataclass(frozen=True)
class Dosage:
    """What fhirtis reads of one administration, by hand from the example's dosage."""

    start: datetime
    dose_g: str | None = None
    dose_ml: str | None = None
    dose_g_per_kg: str | None = None
    rate_ml_per_h: str | None = None
    in_progress: bool = False
    warning: str | None = None  # a part of the warning's text (a dose or rate unknown)


DOSAGES: dict[str, Dosage | str] = {
    # in-progress, effectivePeriod.start only, IV push 500 mg
    "0301": Dosage(datetime(2015, 1, 15, 14, 30, tzinfo=CET), dose_g="0.5", in_progress=True),
    # 20 meq (not a mass or a volume): dose unknown; rateRatio 100 mL / 1 h
    "0302": Dosage(
        datetime(2015, 1, 15, 4, 30, tzinfo=CET), rate_ml_per_h="100", warning="unit 'meq'"
    ),
    "0303": "status entered-in-error",
    "0304": Dosage(datetime(2015, 1, 15, 4, 30, tzinfo=CET), dose_g="0.003"),  # 3 mg
    # 1.8 mg/kg = 0.0018 g/kg; rateQuantity {20, "min"} is not a rate: unknown
    "0305": Dosage(
        datetime(2015, 1, 15, 4, 30, tzinfo=CET), dose_g_per_kg="0.0018", warning="unit 'min'"
    ),
    "0306": "route recorded is not intravenous",  # oral route
    "0307": Dosage(datetime(2015, 1, 15, 4, 30, tzinfo=CET), dose_g="0.007", warning="unit 'min'"),
    "0308": "route subcutaneous",
    # 1000 mL, rateRatio 50 mL / 1 h: 1000 mL x 100 mg/mL = 100 g; 50 x 100 / (60 x 70)
    "0309": Dosage(datetime(2015, 1, 15, 22, 3, tzinfo=CET), dose_ml="1000", rate_ml_per_h="50"),
    "0310": "route recorded is not intravenous",
    "0311": "route recorded is not intravenous",
    # 1 "patch" in v3-orderableDrugForm (not UCUM): dose unknown; no route recorded
    "0312": Dosage(datetime(2015, 1, 15, 22, 3, tzinfo=CET), warning="not a UCUM unit"),
    "0313": Dosage(datetime(2015, 1, 15, 22, 3, tzinfo=CET), dose_g="0.24"),  # 240 mg
}


def _as_ivig(number: str) -> tuple[str, Json]:
    example = json.loads((PUBLISHED / f"r4/medicationadministration{number}.json").read_text())
    administration = _retarget(example)
    administration.pop("medicationCodeableConcept", None)
    contained = [
        c for c in administration.get("contained", []) if c["resourceType"] != "Medication"
    ]
    administration["contained"] = [*contained, IVIG]
    administration["medicationReference"] = {"reference": "#ivig-10"}
    ref = f"MedicationAdministration/{example['id']}"
    entries = [HOST, WEIGHT, administration]
    return ref, {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in entries],
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@pytest.mark.parametrize("number", sorted(DOSAGES))
def test_published_dosage_shapes_read_as_an_ivig_administration(number: str) -> None:
    ref, bundle = _as_ivig(number)
    result = evaluate(bundle)
    check_output(result)
    want = DOSAGES[number]
    about = [i for i in result.issues if i.resource == ref or ref in i.diagnostics]
    if isinstance(want, str):  # not counted, saying why
        assert result.data.administrations == []
        assert [want in i.diagnostics for i in about] == [True]
        return
    (got,) = result.data.administrations
    assert (got.source, got.start.instant, got.in_progress) == (ref, want.start, want.in_progress)
    assert (_text(got.dose_g), _text(got.dose_ml), _text(got.dose_g_per_kg)) == (
        want.dose_g,
        want.dose_ml,
        want.dose_g_per_kg,
    )
    assert _text(got.rate_ml_per_h) == want.rate_ml_per_h and got.rate_mg_per_h is None
    assert got.concentration_mg_per_ml == Decimal(100)
    if want.warning is None:
        assert about == []
    else:
        assert [want.warning in i.diagnostics for i in about] == [True]


def test_the_published_infusion_as_ivig_gives_its_cycle() -> None:
    """medadmin0309 (1000 mL at 50 mL/h over 4 h) as IVIG 10%, 70 kg: 100 g, 100/70 =
    1.429 g/kg, 50 x 100 / (60 x 70) = 1.190 mg/kg/min, under the 4 mg/kg/min limit."""
    result = evaluate(_as_ivig("0309")[1])
    (cycle,) = result.evaluation.exposure.cycles
    assert cycle.grams == Decimal(100)
    assert round(float(cycle.g_per_kg or 0), 3) == 1.429
    assert round(float(cycle.max_rate_mg_kg_min or 0), 3) == 1.190
    assert not result.evaluation.thrombosis.rate_findings


# -- whole published Bundles ----------------------------------------------------------------------


def _bundle(name: str) -> PatientResult:
    result = evaluate_bundle_file(PUBLISHED / name, Settings())
    check_output(result)
    return result


def test_r4_searchset_page_warns_it_is_one_page() -> None:
    """bundle-example.json: a page (next link) of MedicationRequests of Patient/347."""
    result = _bundle("r4/bundle-example.json")
    assert result.patient_ref == "Patient/347" and result.data.used == {}
    assert [(i.severity, i.code, i.expression) for i in result.issues] == [
        ("warning", "incomplete", "Bundle.link[1]")
    ]


def test_r4_transaction_response_has_no_errors() -> None:
    """bundle-response.json: a transaction-response, its entries but the Patient carry only a
    ``response``: nothing is missing."""
    result = _bundle("r4/bundle-response.json")
    assert (result.patient_ref, list(result.data.used), result.issues) == (
        "Patient/12423",
        ["Patient/12423"],
        [],
    )


def test_r4_batch_responses_read_their_nested_searchsets() -> None:
    meds = _bundle("r4/bundle-response-medsallergies.json")
    assert list(meds.data.used) == ["Patient/example"] and meds.issues == []
    summary = _bundle("r4/bundle-response-simplesummary.json")
    assert sorted(summary.data.used) == ["Condition/stroke", "Patient/example"]
    assert _read_facts(summary) == ["event ischaemic-stroke 2010-07-18"]
    assert sorted((i.severity, str(i.resource)) for i in summary.issues) == [
        ("warning", "Condition/example"),  # SNOMED CT 39065001 "Burn of ear"
        ("warning", "Condition/example2"),  # code text only: "Asthma", cannot be classified
        ("warning", "Condition/family-history"),  # 312824007 "Family history of cancer of colon"
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("r4/bundle-references.json", "resources of 3 patients in one Bundle"),
        ("r4/bundle-transaction.json", "resources of 2 patients in one Bundle"),
    ],
)
def test_r4_bundles_of_several_patients_are_refused(name: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        evaluate_bundle_file(PUBLISHED / name, Settings())
    fatal = [i for i in caught.value.issues if i.severity == "fatal"]
    assert [i.diagnostics.split(";")[0] for i in fatal] == [reason]
    OperationOutcome.model_validate(operation_outcome(caught.value.issues))


def test_synthea_patient_everything_unclassified_is_said() -> None:
    """Synthea 3af3708d: Conditions, a Device, MedicationRequests and Procedures, none of whose
    codes the shipped ValueSets list: only the Patient is used, and each code not classified is
    reported once (never silently dropped)."""
    result = _bundle("synthea/patient-3af3708d.json")
    assert list(result.data.used) == ["Patient/3af3708d-41f1-cd80-f3dd-ec5ac76072bf"]
    assert (result.data.patient.sex.value, result.data.patient.birth_date) == (
        "male",
        date(1960, 4, 13),
    )
    # the patient died (deceasedDateTime 1971-10-01): said once; every other issue is a code
    # not classified, each reported once
    deceased = [i for i in result.issues if "recorded deceased" in i.diagnostics]
    assert [(i.severity, i.resource) for i in deceased] == [
        ("warning", "Patient/3af3708d-41f1-cd80-f3dd-ec5ac76072bf")
    ]
    codes = [i for i in result.issues if i not in deceased]
    assert codes and all(i.severity == "warning" and UNCLASSIFIED in i.diagnostics for i in codes)
    assert len({i.diagnostics.split(" could")[0] for i in codes}) == len(codes)


def test_synthea_breast_cancer_is_an_active_malignancy() -> None:
    """Synthea 129c6ac7: SNOMED CT 254837009 "Malignant neoplasm of breast (disorder)", active,
    onset 1989-04-10, is the malignancy risk factor from its onset; Synthea's 162864005 "Body
    mass index 30+ - obesity (finding)", active from 1955-07-30, the obesity risk factor. Its
    active lung cancers (254637007 "Non-small cell lung cancer", 424132000 "Non-small cell
    carcinoma of lung, TNM stage 1": VSAC "Malignant Neoplasms") are the malignancy too; its
    414545008 "Ischemic heart disease (disorder)", active from 1977-05-21, is coronary disease,
    the cardiovascular risk factor (session s36)."""
    result = _bundle("synthea/patient-129c6ac7-conditions-devices.json")
    assert [(e.kind.value, e.source, e.start, e.end) for e in result.data.evidence] == [
        ("malignancy", "Condition/0c46bc9f-a5e2-193f-9d7c-cb66c9cd5ef6", date(1984, 10, 31), None),
        (
            "cardiovascular",
            "Condition/1201ae3d-b3fd-4773-1c39-aca32d9b9cd8",
            date(1977, 5, 21),
            None,
        ),
        ("obesity", "Condition/5450f9df-f4fe-4855-f745-59cb986d0cf5", date(1955, 7, 30), None),
        ("malignancy", "Condition/864227c1-ef70-0af7-711a-32e2d6bdbf1d", date(1984, 11, 1), None),
        ("malignancy", "Condition/fa940569-110a-5f84-6bfa-5f86c3da4fbc", date(1989, 4, 10), None),
    ]
    assert all(
        i.severity == "warning" and (UNCLASSIFIED in i.diagnostics or DECEASED in i.diagnostics)
        for i in result.issues
    )


DECEASED = "recorded deceased"


def test_fhirtis_evaluate_runs_the_published_bundles() -> None:
    """`fhirtis evaluate --json` over the Synthea folder and the R4 Bundles: the one-patient
    Bundles are evaluated, the two of several patients reported as errors (exit 1)."""
    runner = CliRunner()
    bundles = sorted(str(p) for p in (PUBLISHED / "r4").glob("bundle-*.json"))
    result = runner.invoke(app, ["evaluate", "--json", str(PUBLISHED / "synthea"), *bundles])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert sorted(r["patient"] for r in doc["results"]) == [
        "Patient/12423",
        "Patient/129c6ac7-8d06-89de-ad63-0204a93e76c3",
        "Patient/347",
        "Patient/3af3708d-41f1-cd80-f3dd-ec5ac76072bf",
        "Patient/example",
        "Patient/example",
    ]
    assert sorted(Path(e["file"]).name for e in doc["errors"]) == [
        "bundle-references.json",
        "bundle-transaction.json",
    ]
    for r in doc["results"]:
        assert r["ivig"]["cycle_count"] == 0 and r["thrombosis"]["rate_findings"] == []
