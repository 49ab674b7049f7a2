"""Estrogen use as a thrombosis risk factor (clinical spec §5.1) when the medication is coded in
RxNorm or named only, as US EHRs and Synthea record it, not by ATC."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import terminology
from fhirtis.fhir.extract import Extractor, PatientData
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import administration, bundle, medication, patient, qty

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
Json = dict[str, Any]


def _extract(*resources: Json) -> PatientData:
    pr = read_patient_bundle(orjson.dumps(bundle(*resources)))
    return Extractor(terminology()).extract(pr.patient_ref, pr.resources, pr.resolve)


def _estrogen_sources(data: PatientData) -> list[str]:
    return [e.source for e in data.evidence if e.kind is RiskFactorKind.ESTROGEN]


def _request(rid: str, medication: Json) -> Json:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2023-06-01",
        **medication,
    }


def _statement(concept: Json) -> Json:
    """An active MedicationStatement of ``concept`` (a medicationCodeableConcept)."""
    return {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "active",
        "medicationCodeableConcept": concept,
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2023-01-01"},
    }


def _coded(text: str | None, *codings: tuple[str, str, str]) -> Json:
    concept: Json = {
        "coding": [{"system": s, "code": c, "display": d} for s, c, d in codings],
    }
    if text is not None:
        concept["text"] = text
    return concept


def _epic_medication(mid: str, text: str, code: str, ingredients: list[str]) -> Json:
    """A Medication as Epic sends it: upper-case code.text, an RxNorm coding (no ATC), and the
    ingredient names as itemCodeableConcept texts."""
    return {
        "resourceType": "Medication",
        "id": mid,
        "code": {"text": text, "coding": [{"system": RXNORM, "code": code}]},
        "ingredient": [{"itemCodeableConcept": {"text": name}} for name in ingredients],
    }


def test_an_epic_medication_named_estradiol_is_estrogen_use() -> None:
    med = _epic_medication("e2", "ESTRADIOL 1 MG TABLET", "999999", ["ESTRADIOL"])
    req = _request("mr", {"medicationReference": {"reference": "Medication/e2"}})
    assert _estrogen_sources(_extract(patient(), med, req)) == ["MedicationRequest/mr"]


def test_an_estrogen_named_only_by_an_ingredient_is_estrogen_use() -> None:
    med = _epic_medication("coc", "JUNEL FE 1/20 TABLET", "999998", ["NORETHINDRONE ACETATE"])
    med["ingredient"].append(
        {"itemCodeableConcept": {"coding": [{"system": RXNORM, "display": "ethinyl estradiol"}]}}
    )
    req = _request("mr", {"medicationReference": {"reference": "Medication/coc"}})
    assert _estrogen_sources(_extract(patient(), med, req)) == ["MedicationRequest/mr"]


@pytest.mark.parametrize(
    "name",
    [
        "NORETHINDRONE-ETHINYL ESTRADIOL 1-20 MG-MCG TABLET",
        "estradiol valerate 20 MG/ML Injectable Solution",
        "Estradiol 0.01 MG Vaginal Tablet",  # a local estradiol product: ATC G03CA03
        "estrogens, conjugated (USP) 0.625 MG Oral Tablet",
        "synthetic conjugated estrogens, A 0.625 MG Oral Tablet",
        "esterified estrogens 0.3 MG Oral Tablet",
        "estropipate 0.75 MG Oral Tablet",
        "Mestranol / Norethynodrel",
        "ESTETROL-DROSPIRENONE 14.2-3 MG TABLET",
        "ethinylestradiol/levonorgestrel",
        "Estriol cream",
    ],
)
def test_an_estrogen_ingredient_in_the_name_is_estrogen_use(name: str) -> None:
    ms = _statement(_coded(None, (RXNORM, "999999", name)))
    assert _estrogen_sources(_extract(patient(), ms)) == ["MedicationStatement/ms"]


@pytest.mark.parametrize(
    "name",
    [
        "norethindrone 0.35 MG Oral Tablet",  # progestogen-only pill
        "Mirena 52 MG Intrauterine System",  # levonorgestrel IUD
        "levonorgestrel 52 MG Intrauterine System",
        "etonogestrel 68 MG Drug Implant",
        "Camila 28 Day Pack",  # norethindrone only (Synthea's minipill)
        "raloxifene hydrochloride 60 MG Oral Tablet",  # a SERM
        "tamoxifen 20 MG Oral Tablet",
        "bazedoxifene 20 MG Oral Tablet",
        "fulvestrant 250 MG/5ML (estrogen receptor antagonist)",
        "letrozole 2.5 MG Oral Tablet (for estrogen receptor positive breast cancer)",
        "testosterone cypionate 200 MG/ML",
        "prednisolone 5 MG Oral Tablet",
    ],
)
def test_other_hormones_and_look_alike_words_are_not_estrogen_use(name: str) -> None:
    ms = _statement(_coded(name, (RXNORM, "999999", name)))
    assert _estrogen_sources(_extract(patient(), ms)) == []


def test_a_synthea_brand_pack_is_estrogen_use_by_its_rxnorm_code() -> None:
    # Synthea's oral_contraceptive module: RxNorm 748856 "Yaz 28 Day Pack" names no ingredient
    req = _request(
        "yaz", {"medicationCodeableConcept": _coded("Yaz 28 Day Pack", (RXNORM, "748856", ""))}
    )
    req["medicationCodeableConcept"]["coding"][0]["display"] = "Yaz 28 Day Pack"
    assert _estrogen_sources(_extract(patient(), req)) == ["MedicationRequest/yaz"]


def test_a_progestogen_only_synthea_pack_is_not_estrogen_use() -> None:
    req = _request(
        "camila",
        {"medicationCodeableConcept": _coded("Camila 28 Day Pack", (RXNORM, "748962", "x"))},
    )
    assert _estrogen_sources(_extract(patient(), req)) == []


def test_the_estrogen_names_value_set_holds_ingredient_names_only() -> None:
    names = terminology().value_set("estrogen-names").names
    assert {"estradiol", "ethinyl estradiol", "estropipate", "mestranol"} <= set(names)
    assert "estrogen" not in names  # "estrogen receptor" is no medication


def test_estrogen_by_name_lowers_the_maximum_rate_to_3_3() -> None:
    pat = patient(birth="1985-03-01")
    weight = {
        "resourceType": "Observation",
        "id": "w",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-01",
        "valueQuantity": qty(60, "kg"),
    }
    hrt = _epic_medication("e2", "ESTRADIOL 1 MG TABLET", "999999", ["ESTRADIOL"])
    req = _request("mr", {"medicationReference": {"reference": "Medication/e2"}})
    req["authoredOn"] = "2023-12-01"
    ivig = administration(
        "a1",
        "2024-01-02T09:00:00Z",
        "2024-01-02T13:00:00Z",
        dose=qty(30, "g"),
        rate=qty(100, "mL/h"),
    )
    raw = bundle(pat, weight, medication(), hrt, req, ivig)
    resources = read_patient_bundle(orjson.dumps(raw))
    result = evaluate_patient_resources(resources, Settings())
    thrombosis = result.evaluation.thrombosis
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    estrogen = [f for f in thrombosis.risk_factors if f.kind is RiskFactorKind.ESTROGEN]
    assert [f.evidence for f in estrogen] == [("MedicationRequest/mr",)]
    assert "estrogen" in thrombosis.max_rate_now.reason


def test_the_estrogen_answer_by_name_is_not_shared_by_equal_codings() -> None:
    # two statements with the same (placeholder) coding, one naming estradiol: the per-codings
    # memo of the answer must not hand the first one's answer to the second
    def statement(sid: str, name: str) -> Json:
        return {
            "resourceType": "MedicationStatement",
            "id": sid,
            "status": "active",
            "medicationCodeableConcept": _coded(name, (RXNORM, "999999", name)),
            "subject": {"reference": "Patient/p1"},
            "effectivePeriod": {"start": "2023-01-01"},
        }

    data = _extract(patient(), statement("a", "ESTRADIOL 1 MG TABLET"), statement("b", "placebo"))
    assert _estrogen_sources(data) == ["MedicationStatement/a"]
    data = _extract(patient(), statement("b", "placebo"), statement("a", "ESTRADIOL 1 MG TABLET"))
    assert _estrogen_sources(data) == ["MedicationStatement/a"]


def test_an_estrogen_named_in_a_medication_administration_is_estrogen_use() -> None:
    med = _epic_medication("e2", "estradiol 0.1 MG/ML Injectable", "999999", [])
    ma = administration("ma", "2024-01-02", med="Medication/e2", status="completed")
    data = _extract(patient(), med, ma)
    assert _estrogen_sources(data) == ["MedicationAdministration/ma"]
    assert data.administrations == []
