"""Two rate steps of one titrated bag above the maximum are one infusion on the page (s37).

A MAR that charts a titration writes the bag's MedicationAdministration and each rate change as
a MedicationAdministration ``partOf`` it (R4: "a component or step"; s35mar, s36tidy). fhirtis
writes one DetectedIssue per record above the maximum (clinical spec §5.2, ``implicated`` 1..1),
so two steps of one bag that ran too fast are two DetectedIssues. The page counted them as
"2 infusions above the maximum rate", where a clinician reads infusions as bags: one bag ran too
fast. The DetectedIssue of a step now names the bag in ``evidence.detail`` (profile
fhirtis-infusion-rate-above-max), and the page counts infusions by it."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.test_run import load
from tests.fhir.test_s37page_step_issue_names_bag import titrated_too_fast
from tests.web.conftest import Stack
from tests.web.test_page import READY_TIMEOUT_MS, Browsing, browsing, launch, text

__all__ = ["browsing"]  # the fixture used here


def test_two_fast_steps_of_one_bag_are_one_infusion(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    load(fhir_base, titrated_too_fast())
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    alerts = page.locator("table.alerts")
    expect(alerts).to_be_visible(timeout=READY_TIMEOUT_MS)
    caption = alerts.locator("caption").text_content() or ""
    assert "1 infusion above the applicable maximum rate" in caption, caption
    rows = text(page, "table.alerts tbody")
    assert "1 (1 rate step)" in rows, rows
    cards = text(page, ".card-row")
    assert "1 infusion above the maximum rate" in cards, cards
    assert "2 rate alerts" in cards, cards  # one DetectedIssue per record, said as alerts
    assert "2 infusions" not in cards + caption
    assert not browsing.console_errors
