"""Published FHIR R4 shapes that nobody on this team wrote, run through the offline pipeline
(fixtures in tests/data/s24_published, each source in its README): IVIG products named as on
their US labels, dermatomyositis coded in WHO ICD-10 (IPS senders), onsets recorded to the year
(the IPS Condition example), and Conditions coded only in a system fhirtis does not read (ICD-11,
as the IPS example codes beside SNOMED CT). Every resource that should count counts; every one
that cannot be read is reported."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhirtis.clinical.policy import Population
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import ICD10
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import (
    ICD,
    SCT,
    administration,
    bundle,
    condition,
    medication,
    patient,
    qty,
)
from tests.fhir.reading import extract
from tests.fhir.test_published_examples import (
    assert_two_infusions_of_70_g,
    check_fixture_folder,
    evaluate_fixture,
)

Json = dict[str, Any]
DATA = Path(__file__).parents[1] / "data" / "s24_published"
WHO = ICD10
ICD11 = "http://id.who.int/icd11/mms"
UCUM = "http://unitsofmeasure.org"


def _bundle(name: str) -> PatientResult:
    return evaluate_fixture(DATA / name)


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    check_fixture_folder(DATA, Path(__file__).read_text())


# -- IVIG products named as on their labels -------------------------------------------------------


def test_flebogamma_named_as_on_its_label_is_counted() -> None:
    """FLEBOGAMMA 10% DIF (the DailyMed title of Grifols' 10 % IVIG) in the R4
    medicationadministration0303 shape: a contained Medication named only by the product, 10 g /
    100 mL, route IV, 700 mL at 120 mL/h on two days, 70 kg: 2 x 700 mL x 100 mg/mL = 140 g;
    140 / 70 = 2.0 g/kg; 120 x 100 / (60 x 70) = 2.857 mg/kg/min. Before: the label's spelling
    ("10% DIF" between the words) matched no product name, and both infusions were passed over
    without a word (0 g)."""
    result = _bundle("ivig-flebogamma-label-name.json")
    assert_two_infusions_of_70_g(result, ("ivig-fleb-1", "ivig-fleb-2"), Decimal(12000) / 4200)
    assert result.issues == []


def _named_product(text: str, route: str | None = "47625008") -> Json:
    """An inline medicationCodeableConcept named ``text`` only (no code, no ingredient)."""
    ma = administration("a1", "2025-03-01T09:00:00Z", dose=qty(60, "g"), med="Medication/none")
    del ma["medicationReference"]
    ma["medicationCodeableConcept"] = {"text": text}
    if route is not None:
        ma["dosage"]["route"] = {"coding": [{"system": SCT, "code": route}]}
    return ma


@pytest.mark.parametrize(
    "text",
    [
        "Flebogamma 5% DIF",  # DailyMed: "FLEBOGAMMA 5% DIF [Immune Globulin Intravenous (Human)]"
        "FLEBOGAMMA 10% DIF 20 GRAM/200 ML IV SOLN",
        "Gammagard 10 % injection",  # Medscape: "Gammagard" beside "Gammagard S/D"
        "Carimune 6 g",  # "Carimune NF" on the label; "Carimune" in drug references
        "GAMUNEX 10 % SOLN",  # the product's name before it became Gamunex-C
    ],
)
def test_an_ivig_brand_as_order_catalogues_spell_it_is_counted(text: str) -> None:
    data = extract(patient(), _named_product(text))
    assert [(a.source, a.dose_g) for a in data.administrations] == [
        ("MedicationAdministration/a1", Decimal(60))
    ]


def test_a_bare_gamunex_without_route_is_counted_with_a_route_warning() -> None:
    """Gamunex(-C) is labelled for intravenous and subcutaneous use: without a route it counts,
    with the "route not recorded" warning (as Gamunex-C does)."""
    data = extract(patient(), _named_product("Gamunex 10%", route=None))
    assert [a.source for a in data.administrations] == ["MedicationAdministration/a1"]
    assert [i.resource for i in data.issues if "route not recorded" in i.diagnostics] == [
        "MedicationAdministration/a1"
    ]


def test_a_brand_given_under_the_skin_is_still_not_ivig() -> None:
    data = extract(patient(), _named_product("Gamunex 10%", route="34206005"))
    assert data.administrations == []
    assert [i.resource for i in data.issues] == ["MedicationAdministration/a1"]


# -- dermatomyositis in WHO ICD-10 ----------------------------------------------------------------


def test_ips_juvenile_dermatomyositis_in_who_icd10_decides_juvenile_criteria() -> None:
    """An IPS document (Composition first, urn:uuid references) whose problem list codes the
    child's disease WHO ICD-10 M33.0 "Juvenile dermatomyositis", without an onset: juvenile
    criteria (clinical spec §2.3: a Condition coding juvenile DM). Before: the WHO code was not
    read, the Condition was passed over silently and adult criteria were used."""
    result = _bundle("ips-who-icd10-juvenile-dermatomyositis.json")
    assert result.data.jdm_coded
    assert result.evaluation.population.population is Population.JUVENILE
    assert result.evaluation.population.reason == "jdm-coded"
    assert "Condition/0b5e2d6a-24a0-4c8e-9d7e-000000000003" in result.data.used


@pytest.mark.parametrize(("code", "jdm"), [("M33.0", True), ("M33.1", False), ("M33.9", False)])
def test_who_icd10_dermatomyositis_codes_are_read(code: str, jdm: bool) -> None:
    """WHO ICD-10 M33.0 juvenile DM, M33.1 other DM, M33.9 dermatopolymyositis unspecified:
    the DM onset is read (and M33.0 is juvenile)."""
    data = extract(patient(), condition("dm", WHO, code, "2024-03-05"))
    assert (data.jdm_coded, str(data.dm_onset)) == (jdm, "2024-03-05")
    assert data.issues == []


def test_who_icd10_polymyositis_is_not_dermatomyositis() -> None:
    data = extract(patient(), condition("pm", WHO, "M33.2", "2024-03-05"))
    assert (data.jdm_coded, data.dm_onset) == (False, None)


# -- onsets recorded to the year ------------------------------------------------------------------


@pytest.mark.parametrize("onset", ["2019", "2019-05"])
def test_juvenile_dermatomyositis_with_a_partial_onset_keeps_its_coding(onset: str) -> None:
    """The IPS Condition example (HL7/fhir-ips `input/examples/condition-39-07-1.xml`) records
    its onset as a year, `onsetDateTime "2014"`. A juvenile DM (ICD-10-CM M33.00) so recorded is
    still juvenile DM (clinical spec §2.3: the coding decides), its onset not used, with a
    warning at the onset. Before: the whole Condition was excluded for the partial date, and
    the patient was evaluated with adult criteria."""
    data = extract(patient(birth="2010-01-01"), condition("jdm", ICD, "M33.00", onset))
    assert (data.jdm_coded, data.dm_onset) == (True, None)
    assert "Condition/jdm" in data.used
    assert [(i.severity, i.expression, i.resource) for i in data.issues] == [
        ("warning", "Bundle.entry[1].resource.onsetDateTime", "Condition/jdm")
    ]
    assert "partial date" in data.issues[0].diagnostics


def test_dermatomyositis_with_a_partial_abatement_is_still_read() -> None:
    data = extract(
        patient(),
        condition("dm", ICD, "M33.10", "2019-05-02", abatementDateTime="2023"),
    )
    assert str(data.dm_onset) == "2019-05-02" and "Condition/dm" in data.used
    assert data.issues == []


def test_a_thromboembolism_with_a_year_only_onset_is_no_event_but_a_history() -> None:
    """An event needs its day (it is placed against infusions), so a year-only onset makes no
    event; but the thrombosis happened on or before the year's last day: a history of
    thrombosis from then, with a warning naming the onset (as a Condition with no onset is one
    from its recordedDate; session 27c, tests/fhir/test_s27c_pub_partial_onset.py). It used to
    be excluded with an error, and the maximum rate stayed 4 mg/kg/min."""
    data = extract(patient(), condition("dvt", SCT, "128053003", "2025"))
    assert data.events == []
    assert [(e.kind.value, e.start) for e in data.evidence] == [
        ("thrombosis-history", date(2025, 12, 31))
    ]
    assert [(i.severity, i.resource, i.expression) for i in data.issues] == [
        ("warning", "Condition/dvt", "Bundle.entry[1].resource.onsetDateTime")
    ]


# -- Conditions coded only in a system fhirtis does not read --------------------------------------


def _ips_condition(cid: str, codings: list[Json], text: str | None = None) -> Json:
    """A Condition in the shape of the IPS example condition-39-07-1 (SNOMED CT 54329005 "Acute
    myocardial infarction of anterior wall" beside ICD-11 MMS "BA41&XA7RE3")."""
    code: Json = {"coding": codings}
    if text is not None:
        code["text"] = text
    r = condition(
        cid,
        SCT,
        "0",
        "2025-03-05",
        category=[{"coding": [{"system": "http://loinc.org", "code": "75326-9"}]}],
    )
    r["code"] = code
    return r


def test_the_ips_example_myocardial_infarction_is_read_from_its_snomed_coding() -> None:
    mi = _ips_condition(
        "mi",
        [
            {"system": SCT, "code": "54329005"},
            {"system": ICD11, "code": "BA41&XA7RE3"},
        ],
    )
    data = extract(patient(), mi)
    assert [e.kind.value for e in data.events] == ["myocardial-infarction"]
    assert data.issues == []


def test_a_condition_coded_only_in_icd11_is_reported_not_dropped() -> None:
    """ICD-11 MMS (http://id.who.int/icd11/mms, as the IPS example codes beside SNOMED CT): a
    DVT coded only so cannot be classified by the shipped ValueSets (SNOMED CT, ICD-10-CM, WHO
    ICD-10). It is not counted, and a warning says so, naming the Condition and its code.
    Before: passed over without a word (a thromboembolism missed silently)."""
    dvt = _ips_condition("dvt", [{"system": ICD11, "code": "BD71.4"}], "DVT left leg")
    data = extract(patient(), dvt)
    assert data.events == [] and data.evidence == []
    (issue,) = data.issues
    assert (issue.severity, issue.resource, issue.expression) == (
        "warning",
        "Condition/dvt",
        "Bundle.entry[1].resource.code",
    )
    assert ICD11 in issue.diagnostics and "BD71.4" in issue.diagnostics
    assert "not counted" in issue.diagnostics


def test_a_text_only_condition_is_reported_not_dropped() -> None:
    dvt = _ips_condition("txt", [], "Deep vein thrombosis, left popliteal")
    data = extract(patient(), dvt)
    assert data.events == []
    assert [(i.severity, i.resource, i.expression) for i in data.issues] == [
        ("warning", "Condition/txt", "Bundle.entry[1].resource.code")
    ]
    assert "no coding" in data.issues[0].diagnostics


def test_a_refuted_condition_in_an_unread_system_is_not_reported() -> None:
    dvt = _ips_condition("ref", [{"system": ICD11, "code": "BD71.4"}])
    dvt["verificationStatus"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "code": "refuted",
            }
        ]
    }
    assert extract(patient(), dvt).issues == []


def test_a_condition_known_not_to_matter_stays_silent() -> None:
    """A code of a system fhirtis reads that no ValueSet holds (ICD-10-CM J45.909 asthma, outside
    the ranges it reviews) is known not to be a TEE or risk factor: no warning, as before."""
    data = extract(patient(), condition("asthma", ICD, "J45.909", "2020-01-01"))
    assert data.issues == [] and data.events == [] and data.evidence == []


def test_an_adverse_event_coded_only_in_icd11_is_reported() -> None:
    ae: Json = {
        "resourceType": "AdverseEvent",
        "id": "ae1",
        "actuality": "actual",
        "event": {"coding": [{"system": ICD11, "code": "BB00"}]},
        "subject": {"reference": "Patient/p1"},
        "date": "2025-03-05",
    }
    data = extract(patient(), ae)
    assert [(i.severity, i.resource, i.expression) for i in data.issues] == [
        ("warning", "AdverseEvent/ae1", "Bundle.entry[1].resource.event")
    ]


# -- a central line recorded as a CPT-coded Procedure ---------------------------------------------


def test_a_cpt_coded_central_line_insertion_is_a_risk_factor() -> None:
    """Oracle Health returns Procedures CPT-coded (`http://www.ama-assn.org/go/cpt`, with
    `userSelected`), as its documented Procedure search does. A non-tunneled central venous
    catheter inserted 2025-06-02 (CPT 36556) is the central venous catheter risk factor
    (clinical spec §5.1), so the infusions of 06-03 and 06-04 have the 3.3 mg/kg/min limit:
    700 mL x 100 mg/mL = 70 g each, 140 / 70 kg = 2.0 g/kg; 150 x 100 / (60 x 70) = 3.571 >
    3.3: a finding for both. Before: the CPT code was passed over without a word, limit 4, no
    finding."""
    result = _bundle("oracle-cpt-central-line-insertion.json")
    assert [(e.kind.value, e.source, str(e.start)) for e in result.data.evidence] == [
        ("central-venous-catheter", "Procedure/2572990201/_history/0", "2025-06-02")
    ]
    (cycle,) = result.evaluation.exposure.cycles
    assert (cycle.grams, cycle.g_per_kg) == (Decimal(140), Decimal(2))
    findings = result.evaluation.thrombosis.rate_findings
    assert len(findings) == 2
    assert {round(f.rate_mg_kg_min, 3) for f in findings} == {round(Decimal(15000) / 4200, 3)}
    assert {f.limit.limit_mg_kg_min for f in findings} == {Decimal("3.3")}


@pytest.mark.parametrize(
    "code",
    [
        *("36555", "36556", "36557", "36558", "36560", "36561", "36563", "36566"),
        *("36568", "36569", "36570", "36571", "36572", "36573"),
    ],
)
def test_each_cpt_central_venous_access_insertion_is_a_catheter(code: str) -> None:
    proc: Json = {
        "resourceType": "Procedure",
        "id": "cvc",
        "status": "completed",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "performedDateTime": "2025-06-02",
    }
    data = extract(patient(), proc)
    assert [e.kind.value for e in data.evidence] == ["central-venous-catheter"]


@pytest.mark.parametrize("code", ["36589", "36590", "44950"])
def test_removal_of_a_line_or_another_cpt_procedure_is_not_a_catheter(code: str) -> None:
    """36589/36590: removal of a tunneled catheter / port, not an insertion."""
    proc: Json = {
        "resourceType": "Procedure",
        "id": "other",
        "status": "completed",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "performedDateTime": "2025-06-02",
    }
    data = extract(patient(), proc)
    assert data.evidence == [] and data.issues == []


# -- body weight coded "Body weight Measured" -----------------------------------------------------


def _weight(oid: str, loinc: str, kg: int, day: str) -> Json:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": day,
        "valueQuantity": {"value": kg, "unit": "kg", "system": UCUM, "code": "kg"},
    }


def test_a_weight_coded_only_body_weight_measured_is_the_dosing_weight() -> None:
    """LOINC 3141-9 "Body weight Measured" is the measured body weight, the "more specific
    concept" the R4 vital-signs profile shows beside 29463-7
    (http://hl7.org/fhir/R4/observation-vitalsigns.html; R4 observation-example codes both);
    systems that send only it (e.g. athenahealth's vitals, clinical element VITALS.WEIGHT,
    "Body weight Measured", LOINC 3141-9) give the patient's current weight so. An older
    29463-7 weight of 60 kg and a newer 3141-9 weight of 80 kg: the dosing weight is 80 kg,
    2 x 80 g = 160 g, 160 / 80 = 2.0 g/kg. Before: the 3141-9 weight was passed over without a
    word and 160 / 60 = 2.667 g/kg was reported (33 % above target)."""

    resources = [
        patient(),
        _weight("old", "29463-7", 60, "2025-02-10"),
        _weight("new", "3141-9", 80, "2025-03-01"),
        medication(),
        administration("a1", "2025-03-03T09:00:00Z", dose=qty(80, "g")),
        administration("a2", "2025-03-04T09:00:00Z", dose=qty(80, "g")),
    ]
    result = evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(bundle(*resources))), Settings()
    )
    assert [(w.kg, w.source) for w in result.data.weights] == [
        (Decimal(60), "Observation/old"),
        (Decimal(80), "Observation/new"),
    ]
    (cycle,) = result.evaluation.exposure.cycles
    assert (cycle.grams, cycle.g_per_kg) == (Decimal(160), Decimal(2))


# -- a history Bundle: the newest entry of a resource is a delete ---------------------------------


def _history(*entries: Json) -> bytes:
    """A `history` Bundle as R4 http.html#history gives it: newest versions first, each entry
    with `request` and `response`; a deleted version is an entry with `request.method` DELETE
    and no resource (R4 bundle.html, Bundle.entry.request; the R4 history example
    http://hl7.org/fhir/R4/bundle-example.json.html shape of `fullUrl` + `request`)."""
    return orjson.dumps({"resourceType": "Bundle", "type": "history", "entry": list(entries)})


def _version(resource: Json, method: str, status: str) -> Json:
    key = f"{resource['resourceType']}/{resource['id']}"
    return {
        "fullUrl": f"https://example.org/fhir/{key}",
        "resource": resource,
        "request": {"method": method, "url": key if method == "PUT" else resource["resourceType"]},
        "response": {"status": status},
    }


def _deleted(key: str) -> Json:
    return {
        "fullUrl": f"https://example.org/fhir/{key}",
        "request": {"method": "DELETE", "url": key},
        "response": {"status": "200 OK"},
    }


def test_a_resource_deleted_in_a_history_bundle_is_not_read_from_an_older_version() -> None:
    """A weight of 60 kg whose newest history entry is its deletion: it is no longer in the
    record, so only the 80 kg weight is read, and an information issue says so. Before: the
    older version was read as if current (a deleted weight counted silently)."""
    data = read_patient_bundle(
        _history(
            _version(patient(), "PUT", "200 OK"),
            _deleted("Observation/w60"),
            _version(_weight("w80", "29463-7", 80, "2025-03-01"), "POST", "201 Created"),
            _version(_weight("w60", "29463-7", 60, "2025-02-20"), "POST", "201 Created"),
        )
    )
    assert [r.get("id") for _, r in data.resources] == ["p1", "w80"]
    assert [(i.severity, i.expression) for i in data.issues] == [
        ("information", "Bundle.entry[3].resource")
    ]
    assert "deleted" in data.issues[0].diagnostics


def test_versions_of_one_resource_in_a_history_bundle_read_the_newest_quietly() -> None:
    """In a history Bundle the versions of a resource differ by design: the newest (first) is
    read, with an information issue (not the "copies differ" warning of a search Bundle)."""
    new = _weight("w", "29463-7", 72, "2025-03-01")
    old = _weight("w", "29463-7", 70, "2025-03-01")
    data = read_patient_bundle(
        _history(
            _version(patient(), "PUT", "200 OK"),
            _version(new, "PUT", "200 OK"),
            _version(old, "POST", "201 Created"),
        )
    )
    assert [r["valueQuantity"]["value"] for _, r in data.resources if r.get("id") == "w"] == [72]
    assert [(i.severity, i.code) for i in data.issues] == [("information", "duplicate")]


def test_a_procedure_coded_only_in_icd10_pcs_is_reported() -> None:
    """US inpatient procedures are coded in ICD-10-PCS (`http://www.cms.gov/Medicare/Coding/
    ICD10`), which no shipped ValueSet uses: a line placement coded only so cannot be
    classified as a central venous catheter, and a warning says so (before: silence)."""
    proc: Json = {
        "resourceType": "Procedure",
        "id": "pcs",
        "status": "completed",
        "code": {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/ICD10", "code": "X"}]},
        "subject": {"reference": "Patient/p1"},
        "performedDateTime": "2025-06-02",
    }
    data = extract(patient(), proc)
    assert data.evidence == []
    (issue,) = data.issues
    assert (issue.severity, issue.resource, issue.expression) == (
        "warning",
        "Procedure/pcs",
        "Bundle.entry[1].resource.code",
    )
    assert "thrombosis risk factors" in issue.diagnostics
    assert "thromboembolic events" not in issue.diagnostics


# -- IVIG recorded as a MedicationStatement -------------------------------------------------------


def _statement(sid: str, status: str = "active") -> Json:
    """IVIG on an IPS medication list: a MedicationStatement as the IPS examples record one
    (HL7/fhir-ips `input/examples/bundle-minimal.json`: `status`, `medicationReference` or a
    coded medication, `subject`, `effectivePeriod`, `dosage` text and route)."""
    return {
        "resourceType": "MedicationStatement",
        "id": sid,
        "status": status,
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}],
            "text": "Privigen",
        },
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2025-01-01"},
        "dosage": [
            {
                "text": "2 g/kg every 4 weeks",
                "route": {"coding": [{"system": SCT, "code": "47625008"}]},
            }
        ],
    }


def test_ivig_recorded_only_as_a_statement_is_reported_not_counted() -> None:
    """Exposure is read from MedicationAdministrations (clinical spec §4): a statement gives no
    infusion, dose or rate. It is not counted, and an information issue says it was seen, so a
    patient whose IVIG is only on a medication list is not shown as never treated without a
    word (before: silence)."""
    data = extract(patient(), _statement("ms1"))
    assert data.administrations == []
    assert [(i.severity, i.resource, i.expression) for i in data.issues] == [
        ("information", "MedicationStatement/ms1", "Bundle.entry[1].resource")
    ]
    assert "MedicationAdministration" in data.issues[0].diagnostics


def test_a_voided_ivig_statement_or_another_medication_says_nothing() -> None:
    other = _statement("ms3")
    other["medicationCodeableConcept"] = {"text": "amoxicillin 500 mg capsule"}
    assert extract(patient(), _statement("ms2", "entered-in-error"), other).issues == []
