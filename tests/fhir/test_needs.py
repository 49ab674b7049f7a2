"""needs.py is the single list of a patient's reads: the searches, the CDS prefetch templates and
the Bulk export types all derive from it."""

from __future__ import annotations

from fhirtis.api.cds_hooks import prefetch_templates
from fhirtis.fhir.codes import terminology
from fhirtis.fhir.needs import NEEDS, export_types, observation_code_groups, observation_codes
from fhirtis.fhir.queries import SearchChoice, patient_read_urls
from fhirtis.registry.group_export import EXPORT_TYPES

SEARCHED = {n.resource_type for n in NEEDS}


def test_the_three_lists_name_the_same_types() -> None:
    terms = terminology()
    read_types = {url.split("?")[0].split("/")[0] for _, url in patient_read_urls("p1", terms, 50)}
    prefetch_types = {t.resource_type for t in prefetch_templates(terms)}
    assert read_types == prefetch_types == SEARCHED | {"Patient"}
    assert export_types() == EXPORT_TYPES
    assert set(EXPORT_TYPES) == SEARCHED | {"Patient", "Medication"}


def test_every_include_is_in_the_reads_and_the_prefetch() -> None:
    terms = terminology()
    includes = {n.include for n in NEEDS if n.include}
    assert includes == {
        "MedicationAdministration:medication",
        "MedicationStatement:medication",
        "MedicationRequest:medication",
        "DeviceUseStatement:device",
    }
    reads = " ".join(url for _, url in patient_read_urls("p1", terms, 50))
    prefetch = " ".join(t.query for t in prefetch_templates(terms))
    for inc in includes:
        assert f"_include={inc}" in reads
        assert f"_include={inc}" in prefetch


def test_a_search_choice_shapes_the_search() -> None:
    terms = terminology()
    choices = {
        "MedicationAdministration": SearchChoice("patient", include=False, count=7),
        "AdverseEvent": None,  # the server lacks it
    }
    urls = [url for _, url in patient_read_urls("p1", terms, 50, choices)]
    ma = [u for u in urls if u.startswith("MedicationAdministration?")]
    assert ma == ["MedicationAdministration?patient=Patient/p1&_count=7"]
    assert not [u for u in urls if u.startswith("AdverseEvent")]
    assert "Condition?subject=Patient/p1&_count=50" in urls


def test_the_prefetch_asks_for_every_observation_code_the_reads_ask_for() -> None:
    """A CDS Hooks client that prefetches gives the service what a server read would fetch:
    every Observation code (smoking status included, a risk factor) is in some prefetch group."""
    terms = terminology()
    grouped = set().union(*observation_code_groups(terms).values())
    assert grouped == set(observation_codes(terms))
    assert ("http://loinc.org", "72166-2") in grouped
