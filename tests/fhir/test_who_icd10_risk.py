"""WHO ICD-10 (http://hl7.org/fhir/sid/icd-10, as international / IPS senders code a problem list)
on thrombosis risk factors: a WHO code of a concept the ICD-10-CM content of a risk-* ValueSet
holds is that risk factor, a WHO code of a concept the ICD-10-CM content leaves out is not (it
is reported as unclassified), and the ICD-10-CM codes still count (clinical spec §5.1, §6)."""

from __future__ import annotations

import re

import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.fhir.codes import ICD10, terminology
from fhirtis.fhir.extract import PatientData
from tests.fhir.builders import ICD, condition, patient
from tests.fhir.reading import extract as _extract
from tests.fhir.reading import unclassified as _unclassified

WHO = ICD10
K = RiskFactorKind


def _kinds(system: str, code: str) -> tuple[set[RiskFactorKind], PatientData]:
    data = _extract(patient(), condition("c", system, code, "2020-01-01"))
    assert data.events == []
    assert {e.source for e in data.evidence} <= {"Condition/c"}
    return {e.kind for e in data.evidence}, data


# each WHO code with the risk factors its ICD-10-CM counterpart gives (the counterpart in a comment)
WHO_RISK_FACTORS = [
    # risk-cardiovascular: hypertension (CM I10-I16, I1A)
    ("I10", {K.CARDIOVASCULAR}),  # I10
    ("I11.0", {K.CARDIOVASCULAR}),  # I11.0
    ("I11.9", {K.CARDIOVASCULAR}),  # I11.9
    ("I12.0", {K.CARDIOVASCULAR}),  # I12.0
    ("I13.2", {K.CARDIOVASCULAR}),  # I13.2
    ("I15.0", {K.CARDIOVASCULAR}),  # I15.0
    ("I15.9", {K.CARDIOVASCULAR}),  # I15.9
    # diabetes mellitus (CM E08-E13)
    ("E10.9", {K.CARDIOVASCULAR}),  # E10.9
    ("E11", {K.CARDIOVASCULAR}),  # E11 (category)
    ("E11.9", {K.CARDIOVASCULAR}),  # E11.9
    ("E11.5", {K.CARDIOVASCULAR}),  # E11.51/E11.52/E11.59
    ("E12.9", {K.CARDIOVASCULAR}),  # malnutrition-related diabetes: a diabetes (CM has none)
    ("E13.9", {K.CARDIOVASCULAR}),  # E13.9
    ("E14.9", {K.CARDIOVASCULAR}),  # unspecified diabetes (CM codes it E11.9)
    # dyslipidaemia (CM E78.0x-E78.5)
    ("E78.0", {K.CARDIOVASCULAR}),  # E78.00, E78.01
    ("E78.1", {K.CARDIOVASCULAR}),  # E78.1
    ("E78.2", {K.CARDIOVASCULAR}),  # E78.2
    ("E78.3", {K.CARDIOVASCULAR}),  # E78.3
    ("E78.4", {K.CARDIOVASCULAR}),  # E78.41, E78.49
    ("E78.5", {K.CARDIOVASCULAR}),  # E78.5
    # chronic ischaemic heart disease (CM I25)
    ("I25.1", {K.CARDIOVASCULAR}),  # I25.10
    ("I25.9", {K.CARDIOVASCULAR}),  # I25.9
    # old myocardial infarction: cardiovascular and a history of thrombosis, as CM I25.2
    ("I25.2", {K.CARDIOVASCULAR, K.THROMBOSIS_HISTORY}),
    # risk-malignancy (CM C00-C96)
    ("C00.0", {K.MALIGNANCY}),
    ("C18.7", {K.MALIGNANCY}),
    ("C34.9", {K.MALIGNANCY}),
    ("C50.9", {K.MALIGNANCY}),
    ("C61", {K.MALIGNANCY}),
    ("C71.9", {K.MALIGNANCY}),
    ("C80.0", {K.MALIGNANCY}),
    ("C91.0", {K.MALIGNANCY}),
    ("C96.9", {K.MALIGNANCY}),
    # risk-hyperviscosity (CM D47.2, D89.1, C88.0, C90.0x), the last two also malignancies
    ("D47.2", {K.HYPERVISCOSITY}),
    ("D89.1", {K.HYPERVISCOSITY}),
    ("C88.0", {K.HYPERVISCOSITY, K.MALIGNANCY}),
    ("C90.0", {K.HYPERVISCOSITY, K.MALIGNANCY}),
    # risk-hypercoagulable (CM D68.51, D68.52, D68.59, D68.61, D68.62, D68.69)
    ("D68.5", {K.HYPERCOAGULABLE}),
    ("D68.6", {K.HYPERCOAGULABLE}),
    # risk-immobilisation (CM Z74.01, Z74.09, M62.3)
    ("Z74.0", {K.IMMOBILISATION}),
    ("M62.3", {K.IMMOBILISATION}),
    # risk-central-venous-catheter (CM Z45.2)
    ("Z45.2", {K.CENTRAL_VENOUS_CATHETER}),
]


@pytest.mark.parametrize(("code", "kinds"), WHO_RISK_FACTORS)
def test_a_who_icd10_risk_factor_counts_as_its_icd10cm_counterpart(
    code: str, kinds: set[RiskFactorKind]
) -> None:
    found, data = _kinds(WHO, code)
    assert found == kinds
    assert _unclassified(data) == []


@pytest.mark.parametrize(
    "code",
    [
        "E78.6",  # lipoprotein deficiency: CM E78.6 is left out of dyslipidaemia
        "E78.9",  # disorder of lipoprotein metabolism, unspecified (CM E78.9)
        "C97",  # malignant neoplasms of independent (primary) multiple sites: outside C00-C96
        "D45",  # polycythaemia vera: CM D45 is in no risk ValueSet
        "D47.1",  # chronic myeloproliferative disease (CM D47.1)
        "D68.3",  # haemorrhagic disorder due to circulating anticoagulants (CM D68.3x)
        "D68.8",  # other specified coagulation defects (CM D68.8)
        "D89.0",  # polyclonal hypergammaglobulinaemia (CM D89.0)
        "C90.1",  # plasma cell leukaemia: a malignancy only, as CM C90.1x
        "F17.1",  # harmful use of tobacco: no CM nicotine dependence code
        "F17.2",  # dependence syndrome, abstinent states included: CM leaves out 'in remission'
        "Z72.0",  # tobacco use (CM Z72.0)
        "Z86.7",  # history of any circulatory disease: CM holds Z86.711, Z86.718, Z86.73 only
        "Z95.8",  # other cardiac and vascular implants: CM holds Z95.828 only
    ],
)
def test_a_who_code_the_icd10cm_content_leaves_out_is_not_that_risk_factor(code: str) -> None:
    found, data = _kinds(WHO, code)
    expected = {K.MALIGNANCY} if code == "C90.1" else set()
    assert found == expected
    if not expected:
        # in a range the risk ValueSets draw on: reported, never silently dropped
        [issue] = _unclassified(data)
        assert issue.resource == "Condition/c" and code in issue.diagnostics


@pytest.mark.parametrize(
    ("code", "kinds"),
    [
        ("I10", {K.CARDIOVASCULAR}),
        ("I16.0", {K.CARDIOVASCULAR}),
        ("E11.9", {K.CARDIOVASCULAR}),
        ("E78.5", {K.CARDIOVASCULAR}),
        ("F17.210", {K.CARDIOVASCULAR}),
        ("I25.10", {K.CARDIOVASCULAR}),
        ("I25.2", {K.CARDIOVASCULAR, K.THROMBOSIS_HISTORY}),
        ("Z86.711", {K.THROMBOSIS_HISTORY}),
        ("Z86.73", {K.THROMBOSIS_HISTORY}),
        ("C50.911", {K.MALIGNANCY}),
        ("C90.00", {K.HYPERVISCOSITY, K.MALIGNANCY}),
        ("D47.2", {K.HYPERVISCOSITY}),
        ("D89.1", {K.HYPERVISCOSITY}),
        ("D68.51", {K.HYPERCOAGULABLE}),
        ("D68.61", {K.HYPERCOAGULABLE}),
        ("Z74.01", {K.IMMOBILISATION}),
        ("M62.3", {K.IMMOBILISATION}),
        ("Z45.2", {K.CENTRAL_VENOUS_CATHETER}),
        ("Z95.828", {K.CENTRAL_VENOUS_CATHETER}),
    ],
)
def test_the_icd10cm_code_still_counts(code: str, kinds: set[RiskFactorKind]) -> None:
    found, data = _kinds(ICD, code)
    assert found == kinds
    assert _unclassified(data) == []


def test_a_cm_only_code_is_not_read_as_who_and_a_who_only_code_not_as_cm() -> None:
    t = terminology()
    cardiovascular = t.value_set("risk-cardiovascular")
    # E14 (unspecified diabetes) exists in WHO ICD-10 only, E08 and I1A in ICD-10-CM only
    assert cardiovascular.contains(WHO, "E14.9")
    assert not cardiovascular.contains(ICD, "E14.9")
    assert not cardiovascular.contains(WHO, "E08.9")
    assert not cardiovascular.contains(WHO, "I1A.0")
    # E78.4 is a WHO code; the CM content holds only E78.41 and E78.49 below it
    assert cardiovascular.contains(WHO, "E78.4")
    assert cardiovascular.contains(ICD, "E78.49")


WHO_FORM = re.compile(r"[A-Z][0-9]{2}(\.[0-9])?")


def test_the_risk_value_sets_list_who_codes_in_who_form_and_ship_them() -> None:
    t = terminology()
    risk = t.with_value_sets("risk-")
    holding_who: set[str] = set()
    for name, vs in risk.items():
        listed = {c for s, c in vs.codes if s == WHO}
        assert all(WHO_FORM.fullmatch(c) for c in listed), name
        patterns = [p for s, p in vs.patterns if s == WHO]
        # a WHO pattern never matches a code with two characters after the dot (CM form)
        for p in patterns:
            assert not p.fullmatch("C50.91") and not p.fullmatch("I25.10"), name
        if listed or patterns:
            holding_who.add(name)
    assert holding_who == {
        "cardiovascular",
        "malignancy",
        "obesity",
        "hyperviscosity",
        "hypercoagulable",
        "thrombosis-history",
        "immobilisation",
        "central-venous-catheter",
    }
