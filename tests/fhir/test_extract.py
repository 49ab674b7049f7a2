"""FHIR resources → facts: every mapping path, and how bad input is reported."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from fhirtis.clinical.facts import FhirTime, Instrument, Measure, RiskFactorKind, Sex, TeeKind
from fhirtis.fhir.bundle import PatientResources, read_patient_bundle
from fhirtis.fhir.codes import terminology
from fhirtis.fhir.extract import Extractor, ExtractSettings, PatientData
from fhirtis.fhir.outcome import InputError, Issue
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import (
    ATC,
    CORE,
    ICD,
    LOINC,
    SCT,
    administration,
    bundle,
    condition,
    enzyme,
    medication,
    obs,
    patient,
    qty,
)

D = Decimal


def _extract(
    *resources: dict[str, Any],
    concept_map: dict[str, Any] | None = None,
    ulns: dict[Instrument, Decimal] | None = None,
) -> PatientData:
    pr = read_patient_bundle(orjson.dumps(bundle(*resources)))
    t = terminology().with_concept_map(concept_map)
    ex = Extractor(t, ExtractSettings(default_uln_u_per_l=ulns or {}))
    return ex.extract(pr.patient_ref, pr.resources, pr.resolve)


def test_core_set_measures_and_units() -> None:
    data = _extract(
        patient(),
        obs("a", "pga", 45, "mm", "2024-01-02"),
        obs("b", "mmt8-80", 70, "{score}", "2024-01-02T10:00:00+01:00"),
        obs("c", "haq-di", 1.25, "{score}", "2024-01-02"),
        obs("d", "cmas", 40, "{score}", "2024-01-02"),
        obs("e", "extramuscular", "3.5", "cm", "2024-01-02"),
    )
    by = {m.source: m for m in data.measures}
    assert by["Observation/a"].value == D("4.5")
    assert by["Observation/a"].instrument is Instrument.VAS
    assert by["Observation/b"].instrument is Instrument.MMT8_80
    assert by["Observation/b"].day == date(2024, 1, 2)
    assert by["Observation/c"].value == D("1.25")
    assert by["Observation/d"].measure is Measure.MMT8
    # A decimal string is not a JSON number: excluded with its location.
    assert "Observation/e" not in by
    assert [(i.resource, i.expression) for i in data.issues] == [
        ("Observation/e", "Bundle.entry[5].resource.valueQuantity.value")
    ]


def test_a_score_recorded_as_value_integer() -> None:
    """R4 Observation.value[x] allows ``valueInteger``, and systems record whole-number scores so
    (an MMT-8 total, a CMAS, a Likert PGA, a DAS). For a measure on a scale without a unit (unit
    1) the integer is the score; a VAS needs its unit (cm or mm) and an enzyme or a weight its
    unit, so a bare integer there stays excluded, saying so. A boolean is not an integer."""

    def integer(oid: str, code: str, value: object, **extra: Any) -> dict[str, Any]:
        r = obs(oid, code, 0, "1", "2024-01-02", **extra)
        del r["valueQuantity"]
        r["valueInteger"] = value
        return r

    data = _extract(
        patient(),
        integer("mmt", "mmt8-150", 120),
        integer("cmas", "cmas", 40),
        integer("lik", "pga-likert", 2),
        integer("vas", "pga", 5),  # cm or mm? not read
        integer("bool", "das", True),
    )
    by = {m.source: m for m in data.measures}
    assert by["Observation/mmt"].value == D(120)
    assert by["Observation/mmt"].instrument is Instrument.MMT8_150
    assert by["Observation/cmas"].value == D(40)
    assert by["Observation/lik"].instrument is Instrument.LIKERT
    assert set(by) == {"Observation/mmt", "Observation/cmas", "Observation/lik"}
    where = {i.resource: i.expression for i in data.issues}
    assert where["Observation/vas"] == "Bundle.entry[4].resource.valueQuantity"
    assert where["Observation/bool"] == "Bundle.entry[5].resource.valueInteger"


def test_a_panel_component_score_recorded_as_value_integer() -> None:
    """A myositis assessment recorded as one panel whose components are the scores: a
    component's ``valueInteger`` is read as the score, as an Observation's is (it was passed
    over silently); a component with a quantity still reads as before."""
    panel = obs("visit", "assessment-panel", 0, "1", "2024-01-02", system="urn:example:panel")
    del panel["valueQuantity"]
    panel["component"] = [
        {"code": {"coding": [{"system": CORE, "code": "mmt8-150"}]}, "valueInteger": 131},
        {"code": {"coding": [{"system": CORE, "code": "pga"}]}, "valueQuantity": qty(3, "cm")},
    ]
    data = _extract(patient(), panel)
    assert sorted((m.instrument, m.value, m.source) for m in data.measures) == [
        (Instrument.MMT8_150, D(131), "Observation/visit"),
        (Instrument.VAS, D(3), "Observation/visit"),
    ]
    assert data.issues == []


def test_versioned_sources_and_latest() -> None:
    o = obs("a", "pga", 5, "cm", "2024-03-01T08:00:00Z", meta={"versionId": "3"})
    data = _extract(patient(), o)
    assert data.measures[0].source == "Observation/a/_history/3"
    assert data.used["Observation/a"] == "Observation/a/_history/3"
    assert data.latest == datetime(2024, 3, 1, 8, tzinfo=UTC)


def test_enzymes_ukat_and_uln() -> None:
    data = _extract(
        patient(),
        enzyme("ck", "2157-6", 50, "2024-01-02", uln=3.3, unit="ukat/L"),
        enzyme("ald", "1761-6", 12, "2024-01-02", uln=None),
        ulns={Instrument.ALDOLASE: D("7.7")},
    )
    by = {m.instrument: m for m in data.measures}
    assert by[Instrument.CK].value == D(3000)
    assert by[Instrument.CK].uln == D(198)
    assert by[Instrument.ALDOLASE].uln == D("7.7")  # the configured default


def test_unknown_and_incompatible_units_are_excluded() -> None:
    data = _extract(
        patient(),
        obs("a", "pga", 5, "furlong", "2024-01-02"),
        obs("b", "mmt8-150", 100, "cm", "2024-01-02"),
        enzyme("c", "2157-6", 300, "2024-01-02", unit="mg"),
    )
    assert data.measures == []
    assert {i.resource for i in data.issues} == {"Observation/a", "Observation/b", "Observation/c"}
    assert all("valueQuantity" in (i.expression or "") for i in data.issues)


def test_a_quantity_with_a_comparator_is_not_an_exact_value() -> None:
    # R4 Quantity.comparator (observation-example-f205-egfr: ">60"): a censored value, "above
    # 1200", is not 1200. The Observation is excluded; a dose or rate only is made unknown.
    def censored(q: dict[str, Any], comparator: str) -> dict[str, Any]:
        return q | {"comparator": comparator}

    ck = enzyme("ck", "2157-6", 1200, "2024-01-02", uln=170)
    ck["valueQuantity"] = censored(ck["valueQuantity"], ">")
    wt = obs("wt", "29463-7", 70, "kg", "2024-01-02", system=LOINC)
    wt["valueQuantity"] = censored(wt["valueQuantity"], "<")
    data = _extract(
        patient(),
        ck,
        wt,
        medication(),
        administration(
            "a1",
            "2024-01-03T09:00:00+01:00",
            dose=censored(qty(35, "g"), "<="),
            rate=censored(qty(150, "mL/h"), ">="),
        ),
    )
    assert data.measures == [] and data.weights == []
    (a1,) = data.administrations
    assert (a1.dose_g, a1.rate_ml_per_h) == (None, None)
    where = {i.resource: (i.expression or "", i.diagnostics) for i in data.issues}
    assert where["Observation/ck"][0].endswith("valueQuantity.comparator")
    assert "comparator '>'" in where["Observation/ck"][1]
    assert where["Observation/wt"][0].endswith("valueQuantity.comparator")
    messages = [i.diagnostics for i in data.issues if i.resource == "MedicationAdministration/a1"]
    assert len(messages) == 2
    assert all("not an exact value" in m and "still counts" in m for m in messages)
    # a comparator R4 does not define is not echoed (it is the sender's free text)
    odd = enzyme("odd", "2157-6", 1200, "2024-01-02", uln=170)
    odd["valueQuantity"] = censored(odd["valueQuantity"], "about, per Dr Smith")
    (issue,) = _extract(patient(), odd).issues
    assert "not an exact value" in issue.diagnostics and "Smith" not in issue.diagnostics
    odd["valueQuantity"]["comparator"] = [">"]  # not even a string: refused all the same
    (issue,) = _extract(patient(), odd).issues
    assert "not an exact value" in issue.diagnostics


def test_local_codes_through_concept_map() -> None:
    cmap = {
        "resourceType": "ConceptMap",
        "group": [
            {
                "source": "http://hospital.example.org/codes",
                "target": "http://fhirtis.org/fhir/CodeSystem/myositis-core-set",
                "element": [
                    {"code": "PGA-VAS", "target": [{"code": "pga", "equivalence": "equivalent"}]},
                    {"code": "MMT", "target": [{"code": "mmt8-150", "equivalence": "wider"}]},
                ],
            }
        ],
    }
    local = "http://hospital.example.org/codes"
    data = _extract(
        patient(),
        obs("a", "PGA-VAS", 60, "mm", "2024-01-02", system=local),
        obs("b", "MMT", 100, "{score}", "2024-01-02", system=local),
        concept_map=cmap,
    )
    assert [(m.measure, m.value) for m in data.measures] == [(Measure.PGA, D(6))]  # "wider" unused


def test_unrelated_observations_are_ignored_silently() -> None:
    bp = obs("bp", "8480-6", 120, "mm[Hg]", "2024-01-02", system=LOINC)
    data = _extract(patient(), bp)
    assert data.measures == [] and data.issues == []


def test_subject_missing_or_another_patient() -> None:
    o1 = obs("a", "pga", 5, "cm", "2024-01-02")
    del o1["subject"]
    o2 = obs("b", "pga", 5, "cm", "2024-01-02", subject="Patient/p1")
    data = _extract(patient(), o1, o2)
    assert [m.source for m in data.measures] == ["Observation/b"]
    assert data.issues[0].resource == "Observation/a"
    assert data.issues[0].expression == "Bundle.entry[1].resource.subject"


def test_weight_height_and_patient() -> None:
    data = _extract(
        patient(gender="male", birth="1950-06-15"),
        obs("w", "29463-7", 154, "[lb_av]", "2024-01-01", system=LOINC),
        obs("h", "8302-2", 70, "[in_i]", "2024-01-01", system=LOINC),
        obs("bmi", "39156-5", 31, "kg/m2", "2024-01-01", system=LOINC),
    )
    assert data.weights[0].kg == D("69.85322498")
    assert data.heights[0].cm == D("177.8")
    assert data.bmis[0].kg_per_m2 == D(31)
    assert data.patient.sex is Sex.MALE
    assert data.patient.birth_date == date(1950, 6, 15)
    assert data.patient_source == "Patient/p1"


def test_ivig_administrations_dose_and_rates() -> None:
    data = _extract(
        patient(),
        medication(),
        administration(
            "a1",
            "2024-01-03T09:00:00+01:00",
            "2024-01-03T11:20:00+01:00",
            dose=qty(350, "mL"),
            rate=qty(150, "mL/h"),
        ),
        administration(
            "a2",
            "2024-01-04T09:00:00+01:00",
            dose=qty(35, "g"),
            rate=qty(5, "mL/min"),
            status="in-progress",
        ),
        administration(
            "a3",
            "2024-01-05T09:00:00+01:00",
            dose=qty(35000, "mg"),
            dosage={
                "dose": qty(35000, "mg"),
                "rateRatio": {"numerator": qty(16.8, "g"), "denominator": qty(1, "h")},
            },
        ),
        administration("a4", "2024-01-06T09:00:00+01:00", status="not-done", dose=qty(35, "g")),
    )
    by = {a.source: a for a in data.administrations}
    a1, a2, a3 = (
        by["MedicationAdministration/a1"],
        by["MedicationAdministration/a2"],
        by["MedicationAdministration/a3"],
    )
    assert (a1.dose_ml, a1.concentration_mg_per_ml, a1.rate_ml_per_h) == (D(350), D(100), D(150))
    assert a1.end is not None and a1.product == "Octagam 10%"
    assert (a2.dose_g, a2.rate_ml_per_h, a2.in_progress) == (D(35), D(300), True)
    assert (a3.dose_g, a3.rate_mg_per_h) == (D(35), D(16800))
    assert "MedicationAdministration/a4" not in by
    assert data.used["Medication/octa"] == "Medication/octa"


def test_contained_medication_scig_and_unresolvable() -> None:
    contained = medication("m1")
    a1 = administration("a1", "2024-01-03", med="#m1", dose=qty(35, "g"), contained=[contained])
    scig = medication("hiz", code=(ATC, "J06BA01"), text="Hizentra 20%")
    a2 = administration("a2", "2024-01-03", med="Medication/hiz", dose=qty(10, "g"))
    a3 = administration("a3", "2024-01-03", med="Medication/nowhere", dose=qty(10, "g"))
    a3["medicationReference"]["display"] = "Octagam 10%"  # looks like an immune globulin
    named = medication(
        "txt",
        code=("http://www.nlm.nih.gov/research/umls/rxnorm", "000"),
        text="Privigen 10% infusion",
    )
    a4 = administration("a4", "2024-01-04", med="Medication/txt", dose=qty(10, "g"))
    data = _extract(patient(), scig, named, a1, a2, a3, a4)
    assert sorted(a.source for a in data.administrations) == [
        "MedicationAdministration/a1",
        "MedicationAdministration/a4",
    ]
    # the subcutaneous product is reported, never passed over silently (clinical spec §4)
    assert [(i.resource, i.code) for i in data.issues] == [
        ("MedicationAdministration/a2", "business-rule"),
        ("MedicationAdministration/a3", "not-found"),
    ]
    assert "subcutaneous immune globulin product" in data.issues[0].diagnostics
    assert data.issues[1].severity == "error" and "immune globulin" in data.issues[1].diagnostics
    a1_fact = next(a for a in data.administrations if a.source.endswith("a1"))
    assert a1_fact.start == FhirTime(date(2024, 1, 3))  # a date alone stays a date (spec §5.3)


def test_unresolvable_medication_is_not_ivig_unless_it_looks_like_one() -> None:
    # issue 11 (extractor side): an unresolvable medicationReference is "not IVIG", no error,
    # unless its display or the reference's text names an immune globulin: then one error.
    # (s32: the others get an information issue, as on the registry's and the server's paths.)
    plain = administration("p1", "2024-01-03", med="Medication/gone", dose=qty(1, "g"))
    plain["medicationReference"]["display"] = "Paracetamol 1 g"
    bare = administration("p2", "2024-01-03", med="Medication/gone2", dose=qty(1, "g"))
    igiv = administration("p3", "2024-01-03", med="Medication/gone3", dose=qty(1, "g"))
    igiv["medicationReference"]["display"] = "immune globulin intravenous (human) 10%"
    data = _extract(patient(), plain, bare, igiv)
    assert data.administrations == []
    # the others are said too, as information (as `fhirtis cohort` and `fhirtis run` say a
    # Medication not in their input): an IVIG recorded so would otherwise vanish without a word
    assert [(i.severity, i.code, i.resource) for i in data.issues] == [
        ("information", "not-found", "MedicationAdministration/p1"),
        ("information", "not-found", "MedicationAdministration/p2"),
        ("error", "not-found", "MedicationAdministration/p3"),
    ]


def test_a_medication_the_server_could_not_fetch_is_reported_once() -> None:
    igiv = administration("p3", "2024-01-03", med="Medication/gone3", dose=qty(1, "g"))
    igiv["medicationReference"]["display"] = "Gamunex-C"
    # as pipeline/pull.py marks a Medication it could not read
    server = Issue(
        "error",
        "not-found",
        "MedicationAdministration/p3: its Medication (Medication/gone3) could not be read from "
        "the server, and it looks like an immune globulin",
        "medicationReference",
        "MedicationAdministration/p3",
    )
    pat = patient()
    resources = PatientResources(
        "Patient/p1",
        [("Bundle.entry[0].resource", pat), ("Bundle.entry[1].resource", igiv)],
        {"Patient/p1": pat, "MedicationAdministration/p3": igiv},
        [server],
    )
    result = evaluate_patient_resources(resources, Settings())
    assert [i for i in result.issues if i.resource == "MedicationAdministration/p3"] == [server]


def test_conditions_events_and_risk_factors() -> None:
    data = _extract(
        patient(),
        condition("dm", SCT, "396230008", "2023-05-01"),
        condition("dvt", SCT, "128053003", "2024-02-10T08:00:00Z"),
        condition("htn", ICD, "I10", "2015-01-01"),
        condition(
            "ca", ICD, "C50.911", "2019-01-01", clinicalStatus={"coding": [{"code": "resolved"}]}
        ),
        condition(
            "ref", ICD, "I26.99", "2024-01-01", verificationStatus={"coding": [{"code": "refuted"}]}
        ),
        condition("jdm", ICD, "M33.01", "2010-01-01"),
    )
    assert data.dm_onset == date(2010, 1, 1)  # the earliest DM onset (the JDM code counts)
    assert data.jdm_coded is True
    assert [(e.kind, e.source) for e in data.events] == [(TeeKind.DVT, "Condition/dvt")]
    kinds = {e.kind for e in data.evidence}
    assert RiskFactorKind.CARDIOVASCULAR in kinds
    assert RiskFactorKind.MALIGNANCY not in kinds  # resolved, no abatement date


@pytest.mark.parametrize("status", ["provisional", "differential", "unconfirmed"])
def test_an_unconfirmed_thromboembolic_event_counts_and_says_it_is_unconfirmed(status: str) -> None:
    """A DVT recorded as provisional (a working diagnosis), differential or unconfirmed
    (condition-ver-status) is still an event: a suspected clot during IVIG is not dropped from a
    safety watch. But the result must not present it as confirmed: a warning names the record
    and its verification status (only refuted and entered-in-error are not events)."""
    ver = {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": status}
        ]
    }
    data = _extract(
        patient(),
        condition("dvt", SCT, "128053003", "2024-02-10T08:00:00Z", verificationStatus=ver),
        condition("htn", ICD, "I10", "2015-01-01", verificationStatus=ver),
    )
    assert [(e.kind, e.source) for e in data.events] == [(TeeKind.DVT, "Condition/dvt")]
    warnings = [i for i in data.issues if i.resource == "Condition/dvt"]
    assert [(i.severity, i.code, i.expression) for i in warnings] == [
        ("warning", "informational", "Bundle.entry[1].resource.verificationStatus")
    ]
    assert f"recorded as {status}" in warnings[0].diagnostics
    assert "not confirmed" in warnings[0].diagnostics
    # a risk factor is counted as recorded, with no warning (the stricter limit is the safe side)
    assert not [i for i in data.issues if i.resource == "Condition/htn"]


def test_own_adverse_events_are_not_read_back() -> None:
    own = {
        "resourceType": "AdverseEvent",
        "id": "x",
        "actuality": "actual",
        "identifier": {"system": "http://fhirtis.org/fhir/identifier/derived", "value": "v"},
        "event": {"coding": [{"system": SCT, "code": "128053003"}]},
        "subject": {"reference": "Patient/p1"},
        "date": "2024-01-01",
    }
    theirs = {**own, "id": "y", "identifier": {"system": "urn:other", "value": "1"}}
    data = _extract(patient(), own, theirs)
    assert [e.source for e in data.events] == ["AdverseEvent/y"]
    assert [r["id"] for r in data.existing_derived] == ["x"]


def test_estrogen_statement_and_cvc_device() -> None:
    ms = {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "active",
        "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "G03AA01"}]},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2023-01-01"},
    }
    dev = {
        "resourceType": "Device",
        "id": "cvc",
        "status": "active",
        "type": {"coding": [{"system": SCT, "code": "52124006"}]},
        "patient": {"reference": "Patient/p1"},
    }
    data = _extract(patient(), ms, dev)
    assert {(e.kind, e.source) for e in data.evidence} == {
        (RiskFactorKind.ESTROGEN, "MedicationStatement/ms"),
        (RiskFactorKind.CENTRAL_VENOUS_CATHETER, "Device/cvc"),
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "not JSON"),
        # what users hand over instead of a Bundle: said as what it is, not as a parse error
        (gzip.compress(b'{"resourceType": "Bundle"}'), "gzip-compressed"),
        ('{"resourceType": "Bundle", "id": "é"}'.encode("latin-1"), "not UTF-8"),
        (
            b'{"resourceType": "Patient", "id": "a"}\n{"resourceType": "Patient", "id": "b"}\n',
            "NDJSON",
        ),
        (b"[1, 2, 3]", "expected a FHIR Bundle"),
        (orjson.dumps({"resourceType": "Patient", "id": "x"}), "expected a FHIR Bundle"),
        (
            orjson.dumps(
                bundle(
                    obs("a", "pga", 1, "cm", "2024-01-01", subject="Patient/p1"),
                    obs("b", "pga", 1, "cm", "2024-01-01", subject="Patient/p2"),
                )
            ),
            "2 patients",
        ),
        (orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": []}), "no Patient"),
    ],
)
def test_unusable_bundles(raw: bytes, expected: str) -> None:
    with pytest.raises(InputError) as info:
        read_patient_bundle(raw)
    assert any(expected in i.diagnostics for i in info.value.issues)


@pytest.mark.parametrize(
    ("resource", "element"),
    [
        ({**obs("x", "pga", 45, "mm", "2024-01-02"), "status": ["final"]}, "status"),
        ({**obs("x", "pga", 45, "mm", "2024-01-02"), "status": {"code": "final"}}, "status"),
        ({**obs("x", "pga", 45, "mm", "2024-01-02"), "meta": "v1"}, "meta"),
        (
            {**administration("x", "2024-01-02T10:00:00Z", dose=qty(140, "g")), "status": ["x"]},
            "status",
        ),
        ({**condition("x", SCT, "128053003", "2024-01-02"), "meta": ["v"]}, "meta"),
    ],
)
def test_a_malformed_element_excludes_the_resource_with_an_error(
    resource: dict[str, Any], element: str
) -> None:
    """A status that is not a code, or a meta that is not an object (found by damaging real
    Bundles at random): the resource is excluded with an error naming the element, never a
    crash, and the rest of the patient still counts."""
    data = _extract(patient(), medication(), resource, obs("ok", "pga", 30, "mm", "2024-01-03"))
    ref = f"{resource['resourceType']}/x"
    errors = [i for i in data.issues if i.severity == "error" and i.resource == ref]
    assert len(errors) == 1, data.issues
    assert errors[0].expression is not None and errors[0].expression.endswith(f".{element}")
    assert ref not in data.used
    assert [m.source for m in data.measures] == ["Observation/ok"]


def test_a_modifier_extension_excludes_the_resource() -> None:
    """R4 (extensibility.html#modifierExtension): a modifierExtension may change the meaning of
    the element that holds it, so an application that does not know it SHALL NOT process the
    element as if it were absent. fhirtis knows none: the resource (an Observation, or an
    administration whose dosage carries one) is excluded with an error naming where, and the
    rest of the record still counts."""
    refuted = {"url": "http://example.org/fhir/StructureDefinition/refuted", "valueBoolean": True}
    flagged = obs("a", "pga", 5, "cm", "2024-01-02")
    flagged["modifierExtension"] = [refuted]
    infusion = administration("a1", "2024-01-03T09:00:00+01:00", dose=qty(35, "g"))
    infusion["dosage"]["modifierExtension"] = [refuted]
    data = _extract(
        patient(), flagged, obs("b", "pga", 4, "cm", "2024-01-02"), medication(), infusion
    )
    assert [m.source for m in data.measures] == ["Observation/b"]
    assert data.administrations == []
    by_resource = {i.resource: i for i in data.issues}
    assert by_resource["Observation/a"].severity == "error"
    assert by_resource["Observation/a"].expression == "Bundle.entry[1].resource.modifierExtension"
    assert by_resource["MedicationAdministration/a1"].expression == (
        "Bundle.entry[4].resource.dosage.modifierExtension"
    )
    assert "modifierExtension" in by_resource["Observation/a"].diagnostics


def test_a_modifier_extension_on_the_reference_range_read_excludes_the_enzyme() -> None:
    ck = enzyme("ck1", "2157-6", 900, "2024-01-02", uln=200)
    ck["referenceRange"][0]["modifierExtension"] = [
        {"url": "http://example.org/fhir/StructureDefinition/range-kind", "valueCode": "x"}
    ]
    data = _extract(patient(), ck)
    assert data.measures == []
    assert data.issues[0].expression == (
        "Bundle.entry[1].resource.referenceRange[0].modifierExtension"
    )


@pytest.mark.parametrize(
    ("birth", "first", "last"),
    [
        ("1950", date(1950, 1, 1), date(1950, 12, 31)),
        ("1952-02", date(1952, 2, 1), date(1952, 2, 29)),
        ("1950-06-15", date(1950, 6, 15), None),
    ],
)
def test_a_birth_date_to_the_year_or_month_bounds_the_age(
    birth: str, first: date, last: date | None
) -> None:
    """R4 date allows YYYY and YYYY-MM (de-identified exports give the year only): the birth
    date is read as the first and last day it may be, without a warning."""
    data = _extract(patient(birth=birth))
    assert (data.patient.birth_date, data.patient.birth_date_latest) == (first, last)
    assert data.issues == []


def test_a_birth_date_that_is_no_fhir_date_leaves_the_age_unknown() -> None:
    data = _extract(patient(birth="1950-13"))
    assert data.patient.birth_date is None
    assert [i.expression for i in data.issues] == ["Bundle.entry[0].resource.birthDate"]


def test_a_modifier_extension_on_the_ivig_medication_or_a_panel_component_is_refused() -> None:
    """The Medication an IVIG administration references (its product, its strength) and a
    panel component read as an Observation are read elements too: a modifierExtension on them
    excludes what they would give, with an error naming where."""
    mark = [{"url": "http://example.org/fhir/StructureDefinition/not-this", "valueBoolean": True}]
    med = medication()
    med["modifierExtension"] = mark
    panel = obs("vs", "85353-1", 0, "1", "2024-01-02", system=LOINC)
    del panel["valueQuantity"]
    panel["component"] = [
        {
            "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
            "valueQuantity": qty(70, "kg"),
            "modifierExtension": mark,
        }
    ]
    infusion = administration("a1", "2024-01-03T09:00:00+01:00", dose=qty(35, "g"))
    data = _extract(patient(), med, infusion, panel)
    assert data.administrations == [] and data.weights == []
    by_resource = {i.resource: i for i in data.issues}
    assert by_resource["MedicationAdministration/a1"].expression == (
        "Bundle.entry[2].resource.medicationReference"
    )
    assert "modifierExtension" in by_resource["MedicationAdministration/a1"].diagnostics
    assert by_resource["Observation/vs"].expression == (
        "Bundle.entry[3].resource.component[0].modifierExtension"
    )


def test_a_resolved_condition_ends_at_its_abatement_period_end() -> None:
    """R4 Condition.abatement[x] may be a Period: its end is when the condition resolved, read
    as an abatementDateTime is (the malignancy counts as a risk factor up to that day)."""
    resolved = {"coding": [{"code": "resolved"}]}
    data = _extract(
        patient(),
        condition(
            "ca",
            ICD,
            "C50.911",
            "2019-01-01",
            clinicalStatus=resolved,
            abatementPeriod={"start": "2023-03-01", "end": "2023-06-30T10:00:00+02:00"},
        ),
        condition("ca2", ICD, "C50.912", "2019-01-01", clinicalStatus=resolved, abatementPeriod={}),
    )
    assert [(e.kind, e.source, e.start, e.end) for e in data.evidence] == [
        (RiskFactorKind.MALIGNANCY, "Condition/ca", date(2019, 1, 1), date(2023, 6, 30))
    ]
    # without an end the resolution cannot be dated: not counted, and said at the element
    assert [(i.severity, i.expression) for i in data.issues if i.resource == "Condition/ca2"] == [
        ("warning", "Bundle.entry[2].resource.abatementPeriod")
    ]


@pytest.mark.parametrize("issue", [7, "incomplete", {"severity": "warning"}, None])
def test_a_search_outcome_with_malformed_issues_is_still_a_warning(issue: object) -> None:
    """A searchset's OperationOutcome (search.mode outcome) whose ``issue`` is not an array is
    malformed: the warning that the data may be incomplete is still given, never a crash."""
    doc = bundle(patient(), obs("a", "pga", 5, "cm", "2024-01-02"))
    doc["type"] = "searchset"
    doc["entry"].append(
        {
            "resource": {"resourceType": "OperationOutcome", "id": "oo", "issue": issue},
            "search": {"mode": "outcome"},
        }
    )
    read = read_patient_bundle(orjson.dumps(doc))
    assert [i.severity for i in read.issues] == ["warning"]
    assert "may be incomplete (OperationOutcome oo)" in read.issues[0].diagnostics


def _cvc_device(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "id": "cvc",
        "type": {"coding": [{"system": SCT, "code": "52124006"}]},
        "patient": {"reference": "Patient/p1"},
        **extra,
    }


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        # R4 Device.status is 0..1 and a modifier only for what invalidates the record: a Device
        # with no status (the QI-Core / NHSN dQM central line example has none) is present
        (None, True),
        ("active", True),
        ("unknown", True),
        ("inactive", False),  # no longer in use
        ("entered-in-error", False),
    ],
)
def test_cvc_device_status(status: str | None, counts: bool) -> None:
    dev = _cvc_device() if status is None else _cvc_device(status=status)
    data = _extract(patient(), dev)
    found = [(e.kind, e.source) for e in data.evidence]
    assert found == ([(RiskFactorKind.CENTRAL_VENOUS_CATHETER, "Device/cvc")] if counts else [])
    assert not [i for i in data.issues if i.severity in ("error", "fatal")]


# -- DeviceUseStatement (R4): a catheter recorded as in use by the patient, the Device itself
# often carrying no patient (IPS, the R4 deviceusestatement-example) -------------------------


def _line(**extra: Any) -> dict[str, Any]:
    """A central venous catheter with no patient of its own (only the statement names one)."""
    return {
        "resourceType": "Device",
        "id": "line",
        "type": {"coding": [{"system": SCT, "code": "52124006"}], "text": "CVC"},
        **extra,
    }


def _use_statement(status: str = "active", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "DeviceUseStatement",
        "id": "dus",
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "device": {"reference": "Device/line"},
        **extra,
    }


def test_device_use_statement_shows_a_catheter_from_its_timing() -> None:
    data = _extract(
        patient(), _use_statement(timingPeriod={"start": "2024-01-05T10:00:00Z"}), _line()
    )
    assert [(e.kind, e.source, e.start, e.end, e.display) for e in data.evidence] == [
        (
            RiskFactorKind.CENTRAL_VENOUS_CATHETER,
            "DeviceUseStatement/dus",
            date(2024, 1, 5),
            None,
            "CVC",
        )
    ]
    # the Device has no patient: it is read through the statement, not refused as unowned
    assert not [i for i in data.issues if i.severity in ("error", "fatal")], data.issues
    assert "DeviceUseStatement/dus" in data.used


def test_device_use_statement_contained_device() -> None:
    contained = {**_line(), "id": "d1"}
    dus = _use_statement(device={"reference": "#d1"}, contained=[contained])
    data = _extract(patient(), dus)
    assert [(e.kind, e.source) for e in data.evidence] == [
        (RiskFactorKind.CENTRAL_VENOUS_CATHETER, "DeviceUseStatement/dus")
    ]


@pytest.mark.parametrize("status", ["completed", "stopped"])
def test_a_finished_device_use_counts_over_its_period(status: str) -> None:
    period = {"start": "2024-01-05", "end": "2024-02-20"}
    data = _extract(patient(), _use_statement(status, timingPeriod=period), _line())
    assert [(e.start, e.end) for e in data.evidence] == [(date(2024, 1, 5), date(2024, 2, 20))]


def test_a_finished_device_use_without_an_end_is_not_counted_and_said() -> None:
    data = _extract(patient(), _use_statement("completed"), _line())
    assert data.evidence == []
    [warning] = [i for i in data.issues if i.severity == "warning"]
    assert "DeviceUseStatement/dus" in warning.diagnostics
    assert "cannot be dated" in warning.diagnostics


@pytest.mark.parametrize("status", ["entered-in-error", "intended"])
def test_a_device_use_not_in_place_is_not_counted(status: str) -> None:
    data = _extract(patient(), _use_statement(status), _line())
    assert data.evidence == []


def test_a_device_entered_in_error_is_not_counted_through_a_statement() -> None:
    data = _extract(patient(), _use_statement(), _line(status="entered-in-error"))
    assert data.evidence == []


@pytest.mark.parametrize(
    "device",
    [
        {"reference": "Device/elsewhere"},  # not in the Bundle
        {"display": "central line"},  # nothing to resolve
        {"reference": "Device/other"},  # a device that is no catheter
    ],
)
def test_a_device_use_of_an_unknown_or_other_device_shows_nothing(device: Any) -> None:
    other = {**_line(), "id": "other", "type": {"coding": [{"system": SCT, "code": "14106009"}]}}
    data = _extract(patient(), _use_statement(device=device), other)
    assert data.evidence == []
    assert not [i for i in data.issues if i.severity in ("error", "fatal")], data.issues


def test_a_device_use_of_another_patient_is_excluded() -> None:
    theirs = _use_statement(subject={"reference": "Patient/p2"})
    pr = read_patient_bundle(orjson.dumps(bundle(patient(), _line())))
    ex = Extractor(terminology(), ExtractSettings(default_uln_u_per_l={}))
    data = ex.extract(
        pr.patient_ref, [*pr.resources, ("Bundle.entry[9].resource", theirs)], {**pr.resolve}
    )
    assert data.evidence == []
    assert [(i.severity, i.expression) for i in data.issues] == [
        ("error", "Bundle.entry[9].resource.subject")
    ]


def test_a_device_with_no_patient_and_no_statement_is_still_refused() -> None:
    data = _extract(patient(), _line())
    assert data.evidence == []
    assert [i.expression for i in data.issues if i.severity == "error"] == [
        "Bundle.entry[1].resource.patient"
    ]


def test_a_finished_device_use_at_one_time_counts_on_that_day() -> None:
    dus = _use_statement("completed", timingDateTime="2024-02-01T10:00:00+01:00")
    data = _extract(patient(), dus, _line())
    assert [(e.start, e.end) for e in data.evidence] == [(date(2024, 2, 1), date(2024, 2, 1))]


def test_a_device_use_with_a_malformed_period_is_refused_naming_it() -> None:
    data = _extract(patient(), _use_statement(timingPeriod="2024-01-05"), _line())
    assert data.evidence == []
    assert [i.expression for i in data.issues if i.severity == "error"] == [
        "Bundle.entry[1].resource.timingPeriod"
    ]
