"""ICD-10 codes written without their dot (clinical spec §4 "real EHRs code … in many ways, and
all of them must be recognised", §5.1/§5.3 "a TEE is a Condition … coded as one of", §6
problem-list codes).

Claims-derived data (the X12 837 and the CMS claim files carry ICD-10-CM codes without the dot)
and EHR exports built from them send ``M3310``, ``I2699``, ``C3490`` under
``http://hl7.org/fhir/sid/icd-10-cm``; every ValueSet in ``profiles/`` holds the dotted form HL7
uses (``M33.10``). Such a Condition was passed over in silence: a juvenile dermatomyositis
scored with the adult thresholds, a pulmonary embolism during IVIG not reported, an active cancer
not lowering the maximum rate to 3.3 mg/kg/min. An ICD-10 code is a letter, two characters, then
optionally a dot and up to four more: the undotted form (four to seven characters) is read with
the dot after the third. Only ICD-10 systems are read so; SNOMED CT, ATC, LOINC … codes are
matched exactly as sent."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from fhirtis.fhir.codes import ATC, ICD10, ICD10CM, ICD10GM, LOINC, SNOMED, matching_code
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import Options, PatientResult, evaluate_bundle_bytes
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import condition, patient
from tests.fhir.patients import responder
from tests.fhir.reading import unclassified

Json = dict[str, Any]


def _evaluate(*conditions: Json, birth: str = "1970-03-01", drop_dm: bool = False) -> PatientResult:
    """The ProDERM-like responder (tests/fhir/patients.py: 4 cycles at 3.57 mg/kg/min, worked
    example A at week 12) with ``conditions`` added to its problem list."""
    b = responder()
    entries = [
        e
        for e in b["entry"]
        if not (drop_dm and e["resource"]["resourceType"] == "Condition")
        and e["resource"]["resourceType"] != "Patient"
    ]
    extra = [patient(birth=birth), *conditions]
    b["entry"] = [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in extra]
    b["entry"] += entries
    raw = json.dumps(b).encode()
    return evaluate_bundle_bytes(raw, "s33codes.json", Settings(), Options())


def _summary(result: PatientResult) -> Json:
    summary = patient_summary(result.patient_ref, result.evaluation, result.issues)
    return json.loads(dumps(summary))


def _same_as_dotted(system: str, dotted: str, undotted: str, **kw: Any) -> PatientResult:
    """Evaluate with the code dotted and undotted: the two summaries are identical."""
    onset = kw.pop("onset", "2024-02-13T10:00:00Z")
    with_dot = _evaluate(condition("c1", system, dotted, onset), **kw)
    without = _evaluate(condition("c1", system, undotted, onset), **kw)
    assert _summary(without) == _summary(with_dot)
    return without


# -- diagnosis: the population (clinical spec §2.3) ----------------------------------------


@pytest.mark.parametrize("code", ["M3300", "M3301", "M3309", "m3300", " M3300 "])
def test_undotted_juvenile_dermatomyositis_gives_the_juvenile_criteria(code: str) -> None:
    dotted = {"M3300": "M33.00", "M3301": "M33.01", "M3309": "M33.09"}.get(
        code.strip().upper(), "M33.00"
    )
    result = _same_as_dotted(ICD10CM, dotted, code, onset="2023-06-01", drop_dm=True)
    assert result.evaluation.population.population.value == "juvenile"
    assert result.evaluation.population.reason == "jdm-coded"
    # worked example C: 62.5 is moderate under the juvenile thresholds
    last = result.evaluation.course.followups[-1].tis
    assert last.lower == Decimal("62.5")
    assert last.category is not None and last.category.value == "moderate"


def test_undotted_who_icd10_juvenile_dermatomyositis_gives_the_juvenile_criteria() -> None:
    result = _same_as_dotted(ICD10, "M33.0", "M330", onset="2023-06-01", drop_dm=True)
    assert result.evaluation.population.reason == "jdm-coded"


@pytest.mark.parametrize(
    ("system", "dotted", "undotted"), [(ICD10CM, "M33.10", "M3310"), (ICD10, "M33.1", "M331")]
)
def test_undotted_dermatomyositis_onset_decides_the_population(
    system: str, dotted: str, undotted: str
) -> None:
    """Born 2010, dermatomyositis since 2023 (aged 13): juvenile by the age at onset, which
    only a recognised dermatomyositis Condition gives."""
    result = _same_as_dotted(
        system, dotted, undotted, onset="2023-06-01", birth="2010-01-01", drop_dm=True
    )
    assert result.data.dm_onset == date(2023, 6, 1)
    assert result.evaluation.population.reason == "onset-age"
    assert result.evaluation.population.population.value == "juvenile"


@pytest.mark.parametrize(
    ("system", "dotted", "undotted"), [(ICD10CM, "M33.20", "M3320"), (ICD10, "M33.2", "M332")]
)
def test_undotted_polymyositis_is_read(system: str, dotted: str, undotted: str) -> None:
    result = _same_as_dotted(system, dotted, undotted, drop_dm=True)
    assert result.data.pm_coded
    assert result.evaluation.population.reason == "polymyositis"


# -- thromboembolic events (clinical spec §5.3) ---------------------------------------------


@pytest.mark.parametrize(
    ("system", "dotted", "undotted", "kind"),
    [
        (ICD10CM, "I26.99", "I2699", "pulmonary-embolism"),
        (ICD10CM, "I82.401", "I82401", "deep-vein-thrombosis"),
        (ICD10CM, "I63.9", "I639", "ischaemic-stroke"),
        (ICD10CM, "I74.3", "I743", "peripheral-arterial-thrombosis"),  # a regex range
        (ICD10CM, "I21.A1", "I21A1", "myocardial-infarction"),  # a letter after the dot
        (ICD10CM, "O22.30", "O2230", "deep-vein-thrombosis"),  # pregnancy
        (ICD10, "I26.9", "I269", "pulmonary-embolism"),
        (ICD10, "I80.2", "I802", "deep-vein-thrombosis"),
        (ICD10GM, "I80.20", "I8020", "deep-vein-thrombosis"),  # GM subdivision of WHO I80.2
        ("urn:oid:2.16.840.1.113883.6.90", "I26.99", "I2699", "pulmonary-embolism"),  # alias
    ],
)
def test_undotted_thromboembolism_during_ivig_is_a_temporally_associated_event(
    system: str, dotted: str, undotted: str, kind: str
) -> None:
    # 2024-02-13 10:00Z: the day after cycle 2's last administration (2024-02-05 … 08)
    result = _same_as_dotted(system, dotted, undotted)
    (event,) = result.evaluation.thrombosis.associated_events
    assert (event.event.source, event.event.kind.value) == ("Condition/c1", kind)
    adverse = [d.resource for d in result.derived if d.resource["resourceType"] == "AdverseEvent"]
    assert len(adverse) == 1
    # the AdverseEvent carries the event's own coding, as the sender wrote it
    assert adverse[0]["event"]["coding"] == [{"system": system, "code": undotted}]


# -- risk factors (clinical spec §5.1, §5.2) ------------------------------------------------


@pytest.mark.parametrize(
    ("system", "dotted", "undotted", "factor"),
    [
        (ICD10CM, "C34.90", "C3490", "malignancy"),  # regex range C00-C96
        (ICD10CM, "C7A.1", "C7A1", "malignancy"),  # alphanumeric category
        (ICD10CM, "Z86.718", "Z86718", "thrombosis-history"),
        (ICD10CM, "D68.61", "D6861", "hypercoagulable"),
        (ICD10CM, "E66.01", "E6601", "obesity"),
        (ICD10CM, "Z95.828", "Z95828", "central-venous-catheter"),
        (ICD10, "C34.9", "C349", "malignancy"),
    ],
)
def test_undotted_risk_factor_lowers_the_maximum_rate(
    system: str, dotted: str, undotted: str, factor: str
) -> None:
    result = _same_as_dotted(system, dotted, undotted, onset="2023-01-01")
    thrombosis = result.evaluation.thrombosis
    assert [f.kind.value for f in thrombosis.risk_factors] == [factor]
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    # 150 mL/h of a 10 % product on 70 kg = 3.57 mg/kg/min > 3.3: every administration
    assert len(thrombosis.rate_findings) == 16


def test_undotted_code_in_a_review_range_is_reported_as_the_dotted_one_is() -> None:
    """ICD-10-CM has no I80.2 (only I80.20x-I80.29x): in a range the ValueSets draw on, it is
    reported as unclassified, never passed over. Undotted, it was passed over in silence."""
    with_dot = _evaluate(condition("c1", ICD10CM, "I80.2", "2024-02-13"))
    without = _evaluate(condition("c1", ICD10CM, "I802", "2024-02-13"))
    said = [i.diagnostics for i in unclassified(with_dot.data)]
    assert len(said) == 1
    assert [i.diagnostics for i in unclassified(without.data)] == [said[0].replace("I80.2", "I802")]


# -- other code systems are matched as sent ------------------------------------------------


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (ATC, "J06BA02"),  # letter, two digits, then more: the ICD-10 shape, never dotted
        (SNOMED, "22298006"),
        (LOINC, "2157-6"),
        ("http://example.org/local-problems", "I2699"),
        (SNOMED, " 22298006"),
        ("http://fhirtis.org/fhir/CodeSystem/myositis-core-set", "pga"),
    ],
)
def test_codes_of_other_systems_are_matched_exactly_as_sent(system: str, code: str) -> None:
    assert matching_code(system, code) == code


@pytest.mark.parametrize(
    ("code", "read"),
    [
        ("M3310", "M33.10"),
        ("M33.10", "M33.10"),
        ("I10", "I10"),
        ("I2699", "I26.99"),
        ("H348110", "H34.8110"),
        ("i21a1", "I21.A1"),
        (" Z86718 ", "Z86.718"),
    ],
)
def test_icd10_codes_are_read_in_their_dotted_form(code: str, read: str) -> None:
    for system in (ICD10CM, ICD10, ICD10GM, "urn:oid:2.16.840.1.113883.6.90"):
        assert matching_code(system, code) == read


def test_an_undotted_code_is_read_as_icd10_under_an_icd10_system_only() -> None:
    """The same text, I2699, is a pulmonary embolism under ICD-10-CM and nothing fhirtis reads
    under a local system; the IVIG product (ATC J06BA02, the ICD-10 shape) is still counted."""
    icd = _evaluate(condition("c1", ICD10CM, "I2699", "2024-02-13T10:00:00Z"))
    assert [a.event.source for a in icd.evaluation.thrombosis.associated_events] == ["Condition/c1"]
    local = _evaluate(condition("c1", "http://example.org/local-problems", "I2699", "2024-02-13"))
    assert local.evaluation.thrombosis.associated_events == ()
    assert local.evaluation.exposure.cumulative_grams == 560
    assert any("http://example.org/local-problems|I2699" in i.diagnostics for i in local.issues)
