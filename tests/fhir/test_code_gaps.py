"""Code classification gaps: WHO ICD-10 and upper-extremity DVT codes on thromboembolic events,
ICD-10 codes near the TEE and risk-factor ValueSets reported instead of dropped, and the
dual-route product Gammaked (clinical spec §4, §5.3, §6)."""

from __future__ import annotations

import pytest

from fhirtis.clinical.facts import RiskFactorKind, TeeKind
from fhirtis.fhir.codes import ICD10, terminology
from fhirtis.fhir.extract import PatientData
from fhirtis.fhir.outcome import Issue
from tests.fhir.builders import (
    ICD,
    SCT,
    administration,
    condition,
    medication,
    patient,
    qty,
)
from tests.fhir.reading import extract as _extract
from tests.fhir.reading import unclassified as _unclassified

WHO = ICD10


# -- gap 1a: WHO ICD-10 codes of thromboembolic events ------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("I80.1", TeeKind.DVT),
        ("I80.2", TeeKind.DVT),
        ("I80.3", TeeKind.DVT),
        ("I82.8", TeeKind.DVT),
        ("I26.0", TeeKind.PE),
        ("I26.9", TeeKind.PE),
        ("I21.0", TeeKind.MI),
        ("I21.4", TeeKind.MI),
        ("I22.9", TeeKind.MI),
        ("I63.3", TeeKind.ISCHAEMIC_STROKE),
        ("I63.9", TeeKind.ISCHAEMIC_STROKE),
        ("G45.9", TeeKind.TIA),
        ("I74.3", TeeKind.PERIPHERAL_ARTERIAL),
        ("I67.6", TeeKind.CVST),
        ("G08", TeeKind.CVST),
        ("I63.6", TeeKind.CVST),
        ("H34.1", TeeKind.RETINAL_OCCLUSION),
    ],
)
def test_a_who_icd10_event_counts_as_its_icd10cm_counterpart(code: str, kind: TeeKind) -> None:
    data = _extract(patient(), condition("e", WHO, code, "2025-03-06"))
    assert [(e.kind, e.coding) for e in data.events] == [(kind, (WHO, code))]
    assert _unclassified(data) == []


@pytest.mark.parametrize("code", ["I80.0", "G45.4", "I82.0"])
def test_who_codes_outside_the_event_definitions_are_not_events(code: str) -> None:
    # superficial thrombophlebitis, transient global amnesia, Budd-Chiari: the ICD-10-CM
    # counterparts are not in the TEE ValueSets either
    data = _extract(patient(), condition("e", WHO, code, "2025-03-06"))
    assert data.events == []


def test_the_tee_value_sets_hold_the_same_who_concepts_once() -> None:
    tee = terminology().with_value_sets("tee-")
    who = {kind: {c for s, c in vs.codes if s == WHO} for kind, vs in tee.items()}
    # I63.6 (cerebral infarction due to cerebral venous thrombosis) is a CVST only, as in CM
    assert "I63.6" in who["cerebral-venous-sinus-thrombosis"]
    assert "I63.6" not in who["ischaemic-stroke"]
    seen: set[str] = set()
    for codes in who.values():
        assert not (codes & seen)
        seen |= codes


# -- gap 1b: acute upper-extremity deep vein thrombosis (ICD-10-CM) ------------------------------


@pytest.mark.parametrize(
    "code",
    [
        *(f"I82.A1{c}" for c in "1239"),  # axillary vein
        *(f"I82.B1{c}" for c in "1239"),  # subclavian vein
        *(f"I82.C1{c}" for c in "1239"),  # internal jugular vein
    ],
)
def test_acute_upper_extremity_deep_vein_thrombosis_is_a_dvt(code: str) -> None:
    data = _extract(patient(), condition("e", ICD, code, "2025-03-06"))
    assert [(e.kind, e.coding) for e in data.events] == [(TeeKind.DVT, (ICD, code))]


@pytest.mark.parametrize("code", ["I82.A21", "I82.B22", "I82.C29"])
def test_chronic_upper_extremity_thrombosis_is_no_event_but_is_reported(code: str) -> None:
    # the DVT ValueSet holds acute thromboses only (as the VSAC source set does)
    data = _extract(patient(), condition("e", ICD, code, "2025-03-06"))
    assert data.events == []
    assert [i.resource for i in _unclassified(data)] == ["Condition/e"]


# -- gap 1c: ICD-10 codes near the ValueSets are reported, not dropped ---------------------------


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (ICD, "I82.811"),  # superficial vein thrombosis of the leg: not a DVT
        (ICD, "I26.01"),  # septic pulmonary embolism: left out of the PE set
        (ICD, "I81"),  # portal vein thrombosis
        (ICD, "D68.32"),  # a coagulation defect other than a thrombophilia
        (WHO, "I80.0"),
        (WHO, "I64"),  # stroke, not specified as haemorrhage or infarction
        (WHO, "O22.3"),  # deep phlebothrombosis in pregnancy
        (WHO, "C97"),  # malignant neoplasms of independent multiple sites
    ],
)
def test_an_icd10_code_in_a_range_the_value_sets_draw_on_is_reported(
    system: str, code: str
) -> None:
    data = _extract(patient(), condition("c", system, code, "2025-03-06"))
    assert data.events == [] and data.evidence == []
    [issue] = _unclassified(data)
    assert (issue.severity, issue.code, issue.resource) == ("warning", "incomplete", "Condition/c")
    assert code in issue.diagnostics
    assert "thromboembolic events" in issue.diagnostics and "risk factors" in issue.diagnostics
    assert "terminology server" not in issue.diagnostics  # ICD-10 needs none: say why instead
    assert "problem-list-review-icd10" in issue.diagnostics


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (ICD, "J45.909"),  # asthma
        (ICD, "M62.81"),  # muscle weakness (generalised): common in myositis, no risk factor
        (ICD, "D25.9"),  # a benign neoplasm
        (ICD, "M33.90"),  # dermatomyositis (not juvenile): recognised elsewhere, never reported
        (WHO, "K21.9"),
        (WHO, "I48"),  # atrial fibrillation: outside the ranges drawn on
    ],
)
def test_unrelated_icd10_codes_are_not_reported(system: str, code: str) -> None:
    data = _extract(patient(), condition("c", system, code, "2025-03-06"))
    assert _unclassified(data) == []


def test_a_recognised_code_is_not_reported_and_one_code_is_reported_once() -> None:
    data = _extract(
        patient(),
        condition("htn", ICD, "I10", "2015-01-01"),  # a risk factor, and in a reviewed range
        condition("sv1", ICD, "I82.811", "2025-03-06"),
        condition("sv2", ICD, "I82.811", "2025-04-06"),
    )
    assert [e.kind for e in data.evidence] == [RiskFactorKind.CARDIOVASCULAR]
    assert [(i.resource, i.expression) for i in _unclassified(data)] == [
        ("Condition/sv1", "Bundle.entry[2].resource.code")
    ]


def test_a_concept_with_a_recognised_snomed_coding_is_not_reported() -> None:
    dvt = condition("e", SCT, "128053003", "2025-03-06")
    dvt["code"]["coding"].append({"system": ICD, "code": "I82.811"})
    data = _extract(patient(), dvt)
    assert [e.kind for e in data.events] == [TeeKind.DVT]
    assert _unclassified(data) == []


# -- gap 2: Gammaked is labelled for intravenous and subcutaneous use ----------------------------


def _route_warnings(data: PatientData) -> list[Issue]:
    return [i for i in data.issues if "route not recorded" in i.diagnostics]


@pytest.mark.parametrize(
    "text",
    [
        "Gammaked 10% (immune globulin injection (human), 10% caprylate/chromatography purified)",
        "GAMMAKED",
        "Gamunex-C",
        "Gammagard Liquid ERC",
    ],
)
def test_a_dual_route_product_without_route_is_counted_with_a_warning(text: str) -> None:
    med = medication("ig", text=text)
    med["code"] = {"text": text}
    data = _extract(
        patient(), med, administration("a1", "2025-03-01", dose=qty(60, "g"), med="Medication/ig")
    )
    assert [a.source for a in data.administrations] == ["MedicationAdministration/a1"]
    assert [i.resource for i in _route_warnings(data)] == ["MedicationAdministration/a1"]


@pytest.mark.parametrize("text", ["Privigen 10%", "Gammagard S/D"])
def test_an_intravenous_only_product_without_route_needs_no_warning(text: str) -> None:
    med = medication("ig", text=text)
    data = _extract(
        patient(), med, administration("a1", "2025-03-01", dose=qty(60, "g"), med="Medication/ig")
    )
    assert [a.source for a in data.administrations] == ["MedicationAdministration/a1"]
    assert _route_warnings(data) == []


def test_gammaked_is_a_dual_route_product_by_name() -> None:
    dual = terminology().value_set("ivig-dual-route-products").names
    assert "gammaked" in dual
