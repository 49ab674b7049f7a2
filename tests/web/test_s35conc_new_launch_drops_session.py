"""A new EHR launch in a tab ends the patient session the tab held before.

The page kept the last patient's session (token and patient) in sessionStorage until a later
launch's token exchange succeeded. An EHR that opens the app in the same tab or frame for the
next chart launches it again there; when that launch did not complete (the EHR refused it, the
token exchange failed, the sign-in expired), the tab still held the earlier patient's session,
and the page reloaded without the launch's query (which the page takes out of the address bar)
evaluated and drew the EARLIER patient, in the next patient's chart. A launch started in a tab
now drops what the tab held: the page shows a patient only from the launch it was last given."""

from __future__ import annotations

from urllib.parse import quote

from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.web.conftest import PATIENT, Stack
from tests.web.test_page import READY_TIMEOUT_MS, Browsing, browsing, launch, text

__all__ = ["browsing"]  # the fixture used here


def test_a_launch_that_fails_leaves_no_earlier_patient_to_show(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    load(fhir_base, responder())
    page = browsing.page
    launch(browsing, stack)  # patient p1, drawn
    assert page.locator("body").get_attribute("data-state") == "ready"
    assert text(page, "#ctx-patient") == PATIENT

    # the EHR opens the app for the next chart in the same tab; that launch is refused
    page.goto(f"{stack.fhirtis}/app/launch.html?iss={quote(stack.iss, safe='')}&launch=next-chart")
    page.wait_for_selector("body[data-state=error]", timeout=READY_TIMEOUT_MS)
    assert "unknown launch" in text(page, "#status")
    assert page.evaluate("sessionStorage.getItem('fhirtis.session')") is None

    # reloaded without a launch: no patient at all, never the earlier one
    page.goto(f"{stack.fhirtis}/app/")
    page.wait_for_selector("body[data-state]", timeout=READY_TIMEOUT_MS)
    assert page.locator("body").get_attribute("data-state") == "idle"
    assert "from a patient's chart in your EHR" in text(page, "#status")
    assert not page.locator("#ctx-patient").is_visible() or text(page, "#ctx-patient") != PATIENT


def test_a_launch_that_completes_still_draws_its_patient(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    load(fhir_base, responder())
    page = browsing.page
    launch(browsing, stack)
    launch(browsing, stack)  # the same chart opened again: drawn again
    assert page.locator("body").get_attribute("data-state") == "ready"
    assert text(page, "#ctx-patient") == PATIENT
    page.goto(f"{stack.fhirtis}/app/")  # a reload of a completed launch keeps it
    page.wait_for_selector("body[data-state=ready]", timeout=READY_TIMEOUT_MS)
    assert text(page, "#ctx-patient") == PATIENT
