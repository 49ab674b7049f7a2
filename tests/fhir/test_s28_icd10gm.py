"""Diagnoses coded in ICD-10-GM, the German modification of WHO ICD-10 (clinical spec §5, §6).

German hospitals code every diagnosis in ICD-10-GM (SGB V §295/§301); the Medizininformatik-
Initiative's Diagnose profile and HL7 Deutschland's basis profile carry it as
``http://fhir.de/CodeSystem/bfarm/icd-10-gm`` (formerly ``.../dimdi/icd-10-gm``), with the
diagnosis's certainty in the coding's extension ``icd-10-gm-diagnosesicherheit`` (KBV code
system: G gesichert, V Verdacht, A ausgeschlossen, Z Zustand nach). fhirtis read none of it: a
pelvic vein thrombosis coded I80.20 was "not in a code system the ValueSets use", and no risk
factor or event counted. The shapes follow tests/data/s28-pub/README.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhirtis.clinical.facts import RiskFactorKind, TeeKind
from tests.fhir.builders import condition, patient
from tests.fhir.reading import extract, unclassified

GM = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"
GM_DIMDI = "http://fhir.de/CodeSystem/dimdi/icd-10-gm"
SICHERHEIT = "http://fhir.de/StructureDefinition/icd-10-gm-diagnosesicherheit"
KBV = "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_ICD_DIAGNOSESICHERHEIT"

Json = dict[str, Any]
DATA = Path(__file__).parent.parent / "data" / "s28-pub"


def mii_diagnosis(
    cid: str, code: str, onset: str, certainty: str | None = "G", system: str = GM, **extra: Any
) -> Json:
    """A Condition as the MII Diagnose profile's examples code it: one ICD-10-GM coding with
    its version and German display, the certainty as a valueCoding extension on the coding."""
    r = condition(cid, system, code, onset, **extra)
    coding = r["code"]["coding"][0]
    coding["version"] = "2024"
    if certainty is not None:
        coding["extension"] = [
            {"url": SICHERHEIT, "valueCoding": {"system": KBV, "code": certainty}}
        ]
    return r


@pytest.mark.parametrize(
    ("system", "code", "kind"),
    [
        (GM, "I80.20", TeeKind.DVT),  # Beckenvenenthrombose: a GM subdivision of WHO I80.2
        (GM, "I80.2", TeeKind.DVT),
        (GM, "I26.9", TeeKind.PE),
        (GM, "I21.40", TeeKind.MI),  # GM subdivision of WHO I21.4 (type 1 NSTEMI)
        (GM, "I63.3", TeeKind.ISCHAEMIC_STROKE),
        (GM_DIMDI, "I26.0", TeeKind.PE),  # the URI before DIMDI became part of BfArM (2020)
    ],
)
def test_an_icd10gm_event_is_read_as_its_who_icd10_category(
    system: str, code: str, kind: TeeKind
) -> None:
    data = extract(patient(), mii_diagnosis("e", code, "2025-03-06", system=system))
    assert [(e.kind, e.coding) for e in data.events] == [(kind, (system, code))]
    assert unclassified(data) == []


def test_icd10gm_risk_factors_count() -> None:
    data = extract(
        patient(),
        mii_diagnosis("dm2", "E11.90", "2015-01-01"),  # type 2 diabetes (GM 5th character)
        mii_diagnosis("ca", "C34.1", "2024-06-01"),  # lung cancer, upper lobe
    )
    kinds = {e.kind for e in data.evidence}
    assert kinds == {RiskFactorKind.CARDIOVASCULAR, RiskFactorKind.MALIGNANCY}
    assert unclassified(data) == []


def test_a_ruled_out_diagnosis_counts_for_nothing() -> None:
    # A (ausgeschlossen): the thrombosis was ruled out; no event, no history, no warning
    data = extract(
        patient(),
        mii_diagnosis("e", "I80.20", "2025-03-06", certainty="A"),
        mii_diagnosis("htn", "I10.90", "2015-01-01", certainty="A"),
    )
    assert data.events == [] and data.evidence == []
    assert unclassified(data) == []


def test_a_suspected_event_counts_and_is_said_to_be_unconfirmed() -> None:
    data = extract(patient(), mii_diagnosis("e", "I26.9", "2025-03-06", certainty="V"))
    assert [e.kind for e in data.events] == [TeeKind.PE]
    assert any("not confirmed" in i.diagnostics for i in data.issues)


def test_a_status_post_risk_factor_is_no_longer_active() -> None:
    # Z (Zustand nach): the condition is past, as clinicalStatus resolved says; a status post
    # thrombosis stays a history of thrombosis (an event before the IVIG)
    data = extract(
        patient(),
        mii_diagnosis("ca", "C50.9", "2010-01-01", certainty="Z"),
        mii_diagnosis("dvt", "I80.28", "2012-05-01", certainty="Z"),
    )
    assert [e.kind for e in data.evidence] == []
    assert [e.kind for e in data.events] == [TeeKind.DVT]


@pytest.mark.parametrize(("certainty", "events"), [("G", [TeeKind.DVT]), ("A", [])])
def test_a_valuecode_certainty_is_read_too(certainty: str, events: list[TeeKind]) -> None:
    r = mii_diagnosis("e", "I80.20", "2025-03-06", certainty=None)
    r["code"]["coding"][0]["extension"] = [{"url": SICHERHEIT, "valueCode": certainty}]
    assert [e.kind for e in extract(patient(), r).events] == events


def test_a_gm_code_near_the_value_sets_is_reported_not_dropped() -> None:
    # I80.81: thrombosis at another site (GM subdivision of WHO I80.8, no event definition)
    data = extract(patient(), mii_diagnosis("e", "I80.81", "2025-03-06"))
    assert data.events == []
    assert [i.diagnostics for i in unclassified(data)] != []


def test_the_mii_kardio_diagnosis_is_a_history_of_thrombosis() -> None:
    # a transmural MI of 2020, coded in ICD-10-GM only, resolved: an event before any IVIG,
    # so a history of thrombosis (clinical spec §5.3)
    r = json.loads((DATA / "mii-kardio-diagnose-icd10gm.json").read_text())
    data = extract(patient(), r)
    assert [(e.kind, e.coding) for e in data.events] == [(TeeKind.MI, (GM, "I21.0"))]
    assert unclassified(data) == []
