"""Codings whose system is the code system's OID, as FHIR converted from CDA carries them.

HL7 FHIR R4 names each terminology by a URI and an OID (R4 namingsystem-terminologies.html:
SNOMED CT http://snomed.info/sct 2.16.840.1.113883.6.96, RxNorm 2.16.840.1.113883.6.88, LOINC
http://loinc.org 2.16.840.1.113883.6.1; R4 terminologies-systems.html: ICD-10-CM
http://hl7.org/fhir/sid/icd-10-cm 2.16.840.1.113883.6.90, ICD-10 http://hl7.org/fhir/sid/icd-10
2.16.840.1.113883.6.3). CDA codes by OID (``codeSystem="2.16.840.1.113883.6.96"``), and FHIR
converted from it (C-CDA on FHIR pipelines, some vendors' document services) writes the system
as ``urn:oid:…``, the form R4 datatypes.html allows for a ``uri``. Before, only ATC's OID was
an alias (session 27): a DVT coded under SNOMED CT's OID was no thromboembolic event, a body
weight under LOINC's OID no weight, an IVIG coded under RxNorm's OID no IVIG, and a juvenile
dermatomyositis under ICD-10-CM's OID no juvenile diagnosis, each reported as unclassified at
best."""

from __future__ import annotations

from decimal import Decimal

from fhirtis.fhir.codes import SYSTEM_ALIASES, canonical_system
from tests.fhir.builders import administration, condition, medication, obs, patient, qty
from tests.fhir.reading import extract

SNOMED_OID = "urn:oid:2.16.840.1.113883.6.96"
LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"
RXNORM_OID = "urn:oid:2.16.840.1.113883.6.88"
ICD10CM_OID = "urn:oid:2.16.840.1.113883.6.90"
ICD10_OID = "urn:oid:2.16.840.1.113883.6.3"


def test_the_oids_name_their_code_systems() -> None:
    assert canonical_system(SNOMED_OID) == "http://snomed.info/sct"
    assert canonical_system(LOINC_OID) == "http://loinc.org"
    assert canonical_system(RXNORM_OID) == "http://www.nlm.nih.gov/research/umls/rxnorm"
    assert canonical_system(ICD10CM_OID) == "http://hl7.org/fhir/sid/icd-10-cm"
    assert canonical_system(ICD10_OID) == "http://hl7.org/fhir/sid/icd-10"
    assert all(alias != canonical for alias, canonical in SYSTEM_ALIASES.items())


def test_a_weight_under_the_loinc_oid_is_a_weight() -> None:
    data = extract(patient(), obs("w1", "29463-7", 70, "kg", "2025-03-01", system=LOINC_OID))
    assert [w.kg for w in data.weights] == [Decimal(70)]


def test_a_dvt_under_the_snomed_oid_is_a_thromboembolic_event() -> None:
    data = extract(patient(), condition("dvt", SNOMED_OID, "128053003", "2025-03-05"))
    assert [e.source for e in data.events] == ["Condition/dvt"]


def test_ivig_under_the_rxnorm_oid_is_ivig() -> None:
    data = extract(
        patient(),
        obs("w1", "29463-7", 70, "kg", "2025-03-01", system="http://loinc.org"),
        # no ingredient: the RxNorm code alone says what it is
        medication(code=(RXNORM_OID, "1809671"), text="", grams_per_100ml=None),
        administration("a1", "2025-03-02T09:00:00Z", dose=qty(140, "g"), med="Medication/octa"),
    )
    assert [a.dose_g for a in data.administrations] == [Decimal(140)]


def test_juvenile_dermatomyositis_under_the_icd10cm_oid_is_coded_juvenile() -> None:
    data = extract(patient(), condition("jdm", ICD10CM_OID, "M33.00", "2015-03-01"))
    assert data.jdm_coded
