"""A myositis diagnosis recorded as suspected chooses the criteria, and the result says so
(clinical spec §2.3 population; the preamble: "never guess silently").

§2.3 makes the patient juvenile "when a Condition codes juvenile dermatomyositis" and does not
set aside a diagnosis by its verification status, so a juvenile dermatomyositis recorded as
``provisional``, ``differential`` or ``unconfirmed`` (R4 condition-ver-status), or an ICD-10-GM
M33.0 carrying the certainty "V" (Verdacht, suspected: the HL7 Deutschland
``icd-10-gm-diagnosesicherheit`` extension the MII KDS diagnosis profile uses) still chooses the
juvenile thresholds. Before session 34 it did so without a word, while a suspected
thromboembolic event got a warning: the summary now carries a ``diagnosis-unconfirmed`` warning
naming the criteria chosen and the status, whenever every diagnosis the population decision
rests on (the juvenile dermatomyositis; the dermatomyositis whose onset age decided; the
polymyositis) is recorded as suspected. A confirmed diagnosis beside it, or a caller's
population, leaves no such warning."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from fhirtis.clinical.policy import Population
from fhirtis.fhir.codes import ICD10, ICD10CM, ICD10GM, SNOMED
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import Options, PatientResult, evaluate_bundle_bytes
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import condition, patient
from tests.fhir.patients import responder

Json = dict[str, Any]
VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
GM_CERTAINTY = "http://fhir.de/StructureDefinition/icd-10-gm-diagnosesicherheit"
KBV_CERTAINTY = "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_ICD_DIAGNOSESICHERHEIT"
CODE = "diagnosis-unconfirmed"


def _status(code: str) -> Json:
    return {"verificationStatus": {"coding": [{"system": VER, "code": code}]}}


def _gm(cid: str, code: str, certainty: str, onset: str = "2023-06-01") -> Json:
    ext = {"url": GM_CERTAINTY, "valueCoding": {"system": KBV_CERTAINTY, "code": certainty}}
    r = condition(cid, ICD10GM, code, onset)
    r["code"]["coding"][0].update({"version": "2023", "extension": [ext]})
    return r


def _evaluate(
    *conditions: Json, birth: str = "1970-03-01", population: Population | None = None
) -> PatientResult:
    """The ProDERM-like responder (tests/fhir/patients.py; worked example A at week 12) with
    its problem list replaced by ``conditions``."""
    b = responder()
    kept = [e for e in b["entry"] if e["resource"]["resourceType"] not in ("Patient", "Condition")]
    extra = [patient(birth=birth), *conditions]
    b["entry"] = [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in extra]
    b["entry"] += kept
    raw = json.dumps(b).encode()
    return evaluate_bundle_bytes(raw, "s34jdm.json", Settings(), Options(population=population))


def _notes(result: PatientResult) -> list[Json]:
    summary = json.loads(dumps(patient_summary(result.patient_ref, result.evaluation, [])))
    return [n for n in summary["notes"] if n["code"] == CODE]


@pytest.mark.parametrize(
    "jdm",
    [
        condition("c1", ICD10CM, "M33.00", "2023-06-01", **_status("provisional")),
        condition("c1", ICD10CM, "M33.02", "2023-06-01", **_status("differential")),
        condition("c1", ICD10, "M33.0", "2023-06-01", **_status("unconfirmed")),
        _gm("c1", "M33.0", "V"),
    ],
    ids=["cm-provisional", "cm-differential", "who-unconfirmed", "gm-verdacht"],
)
def test_suspected_juvenile_dermatomyositis_says_the_juvenile_criteria_rest_on_it(
    jdm: Json,
) -> None:
    result = _evaluate(jdm)
    decision = result.evaluation.population
    assert decision.population is Population.JUVENILE  # §2.3: a Condition codes it
    assert decision.reason == "jdm-coded"
    # worked example C: 62.5 is moderate under the juvenile thresholds
    assert result.evaluation.course.followups[-1].tis.lower == Decimal("62.5")
    [note] = _notes(result)
    assert note["severity"] == "warning"
    assert note["source"] == "Condition/c1"
    assert note["message"].startswith("juvenile criteria chosen on a juvenile dermatomyositis")
    status = (jdm.get("verificationStatus") or {"coding": [{"code": "provisional"}]})["coding"][0]
    assert f"recorded as {status['code']}" in note["message"]


@pytest.mark.parametrize(
    "conditions",
    [
        [condition("c1", ICD10CM, "M33.00", "2023-06-01")],
        [condition("c1", ICD10CM, "M33.00", "2023-06-01", **_status("confirmed"))],
        [_gm("c1", "M33.0", "G")],
        # a confirmed juvenile dermatomyositis beside a suspected one: no guess rests on it
        [
            condition("c1", ICD10CM, "M33.00", "2023-06-01", **_status("provisional")),
            condition("c2", ICD10CM, "M33.09", "2023-07-01", **_status("confirmed")),
        ],
    ],
    ids=["no-status", "confirmed", "gm-gesichert", "one-confirmed"],
)
def test_confirmed_juvenile_dermatomyositis_has_no_such_warning(conditions: list[Json]) -> None:
    result = _evaluate(*conditions)
    assert result.evaluation.population.population is Population.JUVENILE
    assert _notes(result) == []


def test_a_refuted_or_ruled_out_diagnosis_still_chooses_nothing() -> None:
    refuted = condition("c1", ICD10CM, "M33.00", "2023-06-01", **_status("refuted"))
    for jdm in (refuted, _gm("c1", "M33.0", "A")):
        result = _evaluate(jdm, birth="1970-03-01")
        assert result.evaluation.population.population is Population.ADULT
        assert _notes(result) == []


@pytest.mark.parametrize(
    ("birth", "expected"), [("2012-03-01", Population.JUVENILE), ("1970-03-01", Population.ADULT)]
)
def test_onset_age_of_a_suspected_dermatomyositis_says_so(birth: str, expected: Population) -> None:
    dm = condition("c1", SNOMED, "396230008", "2023-06-01", **_status("provisional"))
    result = _evaluate(dm, birth=birth)
    decision = result.evaluation.population
    assert (decision.population, decision.reason) == (expected, "onset-age")
    [note] = _notes(result)
    assert note["message"].startswith(
        f"{expected.value} criteria chosen on the age at onset of a dermatomyositis diagnosis "
        "recorded as provisional"
    )
    confirmed = condition("c1", SNOMED, "396230008", "2023-06-01")
    assert _notes(_evaluate(confirmed, birth=birth)) == []


def test_suspected_polymyositis_says_so() -> None:
    pm = _gm("c1", "M33.2", "V")
    result = _evaluate(pm)
    assert result.evaluation.population.reason == "polymyositis"
    [note] = _notes(result)
    assert note["message"].startswith("adult criteria chosen on a polymyositis diagnosis")


def test_a_population_given_by_the_caller_has_no_such_warning() -> None:
    jdm = condition("c1", ICD10CM, "M33.00", "2023-06-01", **_status("provisional"))
    result = _evaluate(jdm, population=Population.ADULT)
    assert result.evaluation.population.reason == "override"
    assert _notes(result) == []
