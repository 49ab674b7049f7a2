"""Code-system aliases: one equivalence table in the terminology index instead of each ValueSet
listing its concepts a second time under another URI of the same code system.

The table (``fhirtis.fhir.codes.SYSTEM_ALIASES``, sources in profiles/TERMINOLOGY.md):

- ``http://fhir.de/CodeSystem/bfarm/atc`` is ATC as German senders give it (HL7 Deutschland basis
  profile "Coding ATC"; hl7germany/basisprofil-de-r4: resources/input/fsh/codesystems/Atc.fsh);
- ``urn:oid:2.16.840.1.113883.6.73`` is the OID of WHO ATC (HL7 Terminology NamingSystem
  ``v3-WC``, https://terminology.hl7.org/NamingSystem-v3-WC.html: OID 2.16.840.1.113883.6.73 and
  URI http://www.whocc.no/atc; ATC's identifier in CDA, so FHIR data converted from CDA
  carries it; ANS (France) CodeSystem https://smt.esante.gouv.fr/terminologie-atc has it as
  its identifier);
- ``urn:oid:0.4.0.127.0.16.1.1.2.1`` is EDQM Standard Terms (CH EMED codes routes and forms
  under it; HL7 Europe's terminology CodeSystem ``edqm`` carries it as its identifier).

Before, only the concepts copied under the German ATC URI and the EDQM OID were read; an ATC
code under its OID was not read as ATC: an estrogen coded so was no risk factor (clinical spec
§5.1) and a subcutaneous immune globulin (J06BA01) named generically was counted as IVIG (§4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.fhir.codes import (
    ICD10GM,
    SYSTEM_ALIASES,
    Membership,
    Terminology,
    canonical_system,
    index_concept_map,
    index_value_set,
    terminology,
)
from tests.fhir.builders import LOINC, administration, medication, obs, patient, qty
from tests.fhir.reading import extract

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
ATC = "http://www.whocc.no/atc"
ATC_DE = "http://fhir.de/CodeSystem/bfarm/atc"
ATC_OID = "urn:oid:2.16.840.1.113883.6.73"
EDQM = "http://standardterms.edqm.eu"
EDQM_OID = "urn:oid:0.4.0.127.0.16.1.1.2.1"
GENERIC = "normal immunoglobulin"  # a generic name (immune-globulin-names), no brand


def _vs(system: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "ValueSet",
        "id": "test",
        "url": "http://example.org/ValueSet/test",
        "compose": {"include": [{"system": system, "concept": [{"code": code}]}]},
    }


def test_the_table_names_the_aliases_and_their_canonical_systems() -> None:
    assert SYSTEM_ALIASES == {
        ATC_DE: ATC,
        ATC_OID: ATC,
        EDQM_OID: EDQM,
        "http://fhir.de/CodeSystem/dimdi/icd-10-gm": ICD10GM,
        # the OIDs of FHIR R4's terminologies (session 31, tests/fhir/test_s31g_oid_systems.py)
        "urn:oid:2.16.840.1.113883.6.96": "http://snomed.info/sct",
        "urn:oid:2.16.840.1.113883.6.1": "http://loinc.org",
        "urn:oid:2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "urn:oid:2.16.840.1.113883.6.90": "http://hl7.org/fhir/sid/icd-10-cm",
        "urn:oid:2.16.840.1.113883.6.3": "http://hl7.org/fhir/sid/icd-10",
    }
    assert canonical_system(ATC_OID) == ATC
    assert canonical_system(ATC) == ATC
    assert canonical_system("http://snomed.info/sct") == "http://snomed.info/sct"
    assert canonical_system(None) is None


@pytest.mark.parametrize("alias", [ATC_DE, ATC_OID])
def test_a_code_listed_once_is_found_under_each_alias(alias: str) -> None:
    index = index_value_set(_vs(ATC, "J06BA02"))
    assert index.contains(alias, "J06BA02")
    assert index.matches_any([(alias, "J06BA02")])
    assert index.classify(alias, "J06BA02") is Membership.MEMBER
    assert not index.contains(alias, "J06BA01")


def test_a_value_set_written_with_an_alias_matches_the_canonical_system() -> None:
    index = index_value_set(_vs(EDQM_OID, "20045000"))
    assert index.contains(EDQM, "20045000")
    assert index.contains(EDQM_OID, "20045000")


def test_an_excluded_code_is_excluded_under_each_alias() -> None:
    resource = _vs(ATC, "G03AA07")
    resource["compose"]["exclude"] = [{"system": ATC_DE, "concept": [{"code": "G03AA07"}]}]
    index = index_value_set(resource)
    assert not index.contains(ATC_OID, "G03AA07")
    assert index.excludes(ATC, "G03AA07")
    assert index.classify(ATC_OID, "G03AA07") is Membership.NOT_MEMBER


def test_a_site_concept_map_is_read_under_an_alias() -> None:
    cmap = {
        "resourceType": "ConceptMap",
        "group": [
            {
                "source": ATC_DE,
                "target": "http://example.org/local",
                "element": [
                    {"code": "J06BA02", "target": [{"code": "ivig", "equivalence": "equal"}]}
                ],
            }
        ],
    }
    t = Terminology({}, {}, index_concept_map(cmap))
    assert t.translate(ATC_OID, "J06BA02") == ("http://example.org/local", "ivig")


def test_every_shipped_value_set_lists_each_concept_once_and_reads_it_under_every_alias() -> None:
    """No ValueSet in profiles/ copies concepts under an alias any more; the index finds every
    concept of a canonical system under each of its aliases."""
    for path in sorted(PROFILES.glob("ValueSet-*.json")):
        resource = orjson.loads(path.read_bytes())
        used = {i["system"] for i in resource.get("compose", {}).get("include", [])}
        assert not used & set(SYSTEM_ALIASES), f"{path.name} includes an alias system"
    t = terminology()
    checked = dict.fromkeys(SYSTEM_ALIASES, 0)
    for index in t.value_sets.values():
        for system, code in index.codes:
            for alias, canonical in SYSTEM_ALIASES.items():
                if canonical == system:
                    assert index.contains(alias, code), (index.id, alias, code)
                    checked[alias] += 1
    # 82 ATC codes (under two aliases), 3 EDQM routes; the OIDs of SNOMED CT, LOINC, RxNorm,
    # ICD-10-CM and ICD-10 (session 31) each reach the codes listed under their system
    assert (checked[ATC_DE], checked[ATC_OID], checked[EDQM_OID]) == (82, 82, 3)
    for oid in ("6.96", "6.1", "6.88", "6.90", "6.3"):
        assert checked[f"urn:oid:2.16.840.1.113883.{oid}"] > 0, oid


def _statement(system: str, code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": "ms1",
        "status": "active",
        "medicationCodeableConcept": {"coding": [{"system": system, "code": code}], "text": text},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2025-01-02T08:00:00+01:00"},
    }


def test_an_estrogen_coded_under_the_atc_oid_is_the_risk_factor() -> None:
    """G03AA07 (levonorgestrel and ethinylestradiol) under the ATC OID, named by brand only."""
    data = extract(patient(), _statement(ATC_OID, "G03AA07", "Microgynon 21"))
    assert [(e.kind, e.source) for e in data.evidence] == [
        (RiskFactorKind.ESTROGEN, "MedicationStatement/ms1")
    ]


def test_a_subcutaneous_immune_globulin_under_the_atc_oid_is_not_ivig() -> None:
    """J06BA01 (extravascular) under the ATC OID, named generically, no route: not counted."""
    med = medication(code=(ATC_OID, "J06BA01"), text=GENERIC)
    ma = administration("a1", "2025-03-03T09:00:00Z", dose=qty(35, "g"))
    weight = obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC)
    data = extract(patient(), weight, med, ma)
    assert data.administrations == []
    (issue,) = data.issues
    assert "not counted" in issue.diagnostics
