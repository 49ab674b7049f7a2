"""The Conditions not active (Epic returns only active ones without clinical-status:
https://docs.nerve.run/functions/condition-search) are one entry of needs.py, so the server
searches, the CDS Hooks prefetch templates and the Bulk export types agree on them."""

from __future__ import annotations

from fhirtis.api.cds_hooks import prefetch_templates
from fhirtis.fhir.codes import terminology
from fhirtis.fhir.needs import CONDITIONS_NOT_ACTIVE, export_types
from fhirtis.fhir.queries import SearchChoice, patient_read_urls

NOT_ACTIVE = "clinical-status=recurrence,relapse,inactive,remission,resolved"


def test_every_r4_clinical_status_but_active_is_searched() -> None:
    # R4 valueset-condition-clinical: active, recurrence, relapse, inactive, remission, resolved
    assert CONDITIONS_NOT_ACTIVE.query == NOT_ACTIVE


def test_the_reads_and_the_prefetch_both_ask_for_the_conditions_not_active() -> None:
    terms = terminology()
    urls = [url for _, url in patient_read_urls("p1", terms, 50)]
    assert [u for u in urls if u.startswith("Condition?")] == [
        "Condition?subject=Patient/p1&_count=50",
        f"Condition?{NOT_ACTIVE}&subject=Patient/p1&_count=50",
    ]
    templates = {t.key: t.query for t in prefetch_templates(terms)}
    assert templates["conditions"] == "Condition?patient={{context.patientId}}"
    assert templates["conditionsNotActive"] == (
        f"Condition?{NOT_ACTIVE}&patient={{{{context.patientId}}}}"
    )
    assert export_types().count("Condition") == 1  # $export has no status filter: one type


def test_a_server_without_the_parameter_gets_the_plain_search_only() -> None:
    choices = {"Condition": SearchChoice("patient", include=False, count=7, also=False)}
    urls = [url for _, url in patient_read_urls("p1", terminology(), 50, choices)]
    assert [u for u in urls if u.startswith("Condition?")] == [
        "Condition?patient=Patient/p1&_count=7"
    ]
