"""Observations without a value that say why (R4 ``Observation.dataAbsentReason``,
http://hl7.org/fhir/R4/observation.html: "Provides a reason why the expected value in the
element Observation.value[x] is missing"; invariant obs-6: present only when value[x] is not;
the R4 vital-signs profile's vs-2 and US Core ask for one whenever there is no value). Fixtures
and sources in tests/data/s28c-pub: the reason coded as US Core's ``bp-data-absent`` codes it
(data-absent-reason ``unknown``), and a lab cancelled with the SNOMED CT reason of the R4
example ``observation-example-unsat``.

Such an Observation is honest missing data, not a malformed resource: it is kept out of the
computation (it has no value), and said as information, never as an error. Before, each was an
``error`` issue ("excluded: dataAbsentReason given"), so ``fhirtis evaluate`` exited 1 for a
well-formed record ("1 when some inputs had errors", README). A cancelled or entered-in-error
Observation is never used (clinical spec §2.5), with a value or without one."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from fhirtis.fhir.outcome import Issue
from tests.fhir.builders import LOINC, obs, patient
from tests.fhir.reading import extract
from tests.fhir.test_published_examples import check_fixture_folder, evaluate_fixture

DATA = Path(__file__).parents[1] / "data" / "s28c-pub"
UNKNOWN = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
            "code": "unknown",
            "display": "Unknown",
        }
    ],
    "text": "Unknown",
}


def _no_value(oid: str, code: str, **extra: object) -> dict[str, object]:
    r = obs(oid, code, 1, "kg", "2025-03-02", system=LOINC)
    del r["valueQuantity"]
    r.update(extra)
    return r


def _about(issues: list[Issue], ref: str) -> list[Issue]:
    return [i for i in issues if i.resource == ref]


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    check_fixture_folder(
        DATA, "".join(p.read_text() for p in Path(__file__).parent.glob("test_s28c_*.py"))
    )


def test_data_absent_weight_and_ck_are_missing_data_not_errors() -> None:
    """``data-absent-weight-and-ck.json``: a weight of 70 kg (2025-03-01); a weight the next
    day with dataAbsentReason ``unknown``; a CK cancelled with "Specimen unsatisfactory"
    (R4 ``unsat``) and a final CK with dataAbsentReason ``error``. The one weight is read,
    neither CK is a measure; no error: the weight without value and the final CK are each one
    information issue naming the reason; the cancelled CK is silent, as cancelled results are."""
    result = evaluate_fixture(DATA / "data-absent-weight-and-ck.json")
    assert [i for i in result.issues if i.severity in {"error", "fatal"}] == []
    assert [(w.kg, w.when.date().isoformat()) for w in result.data.weights] == [
        (Decimal(70), "2025-03-01")
    ]
    assert result.data.measures == []
    assert _about(result.issues, "Observation/ck-s28c-unsat") == []
    for ref, reason in (
        ("Observation/weight-s28c-2", "unknown"),
        ("Observation/ck-s28c-error", "error"),
    ):
        (issue,) = _about(result.issues, ref)
        assert issue.severity == "information"
        assert "dataAbsentReason" in issue.diagnostics and f"'{reason}'" in issue.diagnostics
        assert issue.expression is not None
        assert issue.expression.endswith(".dataAbsentReason")


def test_a_core_set_measure_with_a_data_absent_reason_is_information() -> None:
    """An HAQ-DI (a score without a unit, which may be a ``valueInteger``) recorded as not
    asked: information, no error, no measure."""
    core = "http://fhirtis.org/fhir/CodeSystem/myositis-core-set"
    r = _no_value("haq1", "haq-di", dataAbsentReason=UNKNOWN)
    r["code"] = {"coding": [{"system": core, "code": "haq-di"}]}
    data = extract(patient(), r)
    assert data.measures == []
    assert [i.severity for i in data.issues] == ["information"]


def test_an_entered_in_error_weight_without_value_is_silent() -> None:
    data = extract(patient(), _no_value("w9", "29463-7", status="entered-in-error"))
    assert data.weights == [] and data.issues == []


def test_a_final_weight_without_value_or_reason_is_still_an_error() -> None:
    """No value and no reason: vs-2 broken, the resource malformed; excluded with an error."""
    data = extract(patient(), _no_value("w8", "29463-7"))
    assert [(i.severity, i.code) for i in data.issues] == [("error", "required")]


def test_a_cancelled_lab_without_value_or_time_is_silent() -> None:
    """A cancelled CK that never got a value nor a collection time (R4 ``effective[x]`` is
    0..1): nothing to read and nothing wrong; it was an error ("no effectiveDateTime")."""
    r = _no_value("ck9", "2157-6", status="cancelled", dataAbsentReason=UNKNOWN)
    del r["effectiveDateTime"]
    data = extract(patient(), r)
    assert data.measures == [] and data.issues == []


def test_a_registered_lab_without_a_result_yet_is_information() -> None:
    """R4 observation-status ``registered``: "The existence of the observation is registered,
    but there is no result yet available" (http://hl7.org/fhir/R4/valueset-observation-status.html):
    a CK ordered and not yet resulted, read while the patient is evaluated. Honest missing data,
    not an error (it was "excluded: no valueQuantity", exit status 1)."""
    data = extract(patient(), _no_value("ck10", "2157-6", status="registered"))
    assert data.measures == []
    (issue,) = data.issues
    assert issue.severity == "information" and "registered" in issue.diagnostics
