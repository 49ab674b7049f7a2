"""What the clinician's page reads against what the service wrote: an event whose early onset
the service could not tell (clinical spec §5.3) is shown as unknown, never as "no"."""

from __future__ import annotations

from playwright.sync_api import Route, expect

from tests.e2e.test_run import load
from tests.fhir.builders import SCT, condition
from tests.fhir.patients import _day, responder
from tests.web.conftest import Stack
from tests.web.test_page import READY_TIMEOUT_MS, Browsing, browsing, launch, text

__all__ = ["browsing"]  # the fixture used here


def _with_dvt(onset: str) -> dict[str, object]:
    data = responder()
    entries = data["entry"]
    assert isinstance(entries, list)
    dvt = condition("dvt", SCT, "128053003", onset)
    entries.append({"fullUrl": "Condition/dvt", "resource": dvt})
    return data


def _early_cell(browsing: Browsing) -> str:
    page = browsing.page
    row = page.locator("table.events tbody tr").first
    expect(row).to_be_visible(timeout=READY_TIMEOUT_MS)
    cells = row.locator("td")
    return (cells.nth(1).text_content() or "").strip()


def test_a_date_only_onset_on_an_infusion_day_reads_early_unknown(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """A DVT recorded with the date of cycle 2's first infusion only (2024-02-05; the infusion
    ran 09:00-11:20+01:00): part of that day is within 24 h of the infusion and part (before
    09:00) is not, so early onset is unknown (spec §5.3: "otherwise unknown (said so)"). The
    service writes the AdverseEvent without its tee-early-onset extension and says "early
    (≤ 24 h) unknown: date-only onset" on the command line; the page's "Early onset" column
    said "no"."""
    load(fhir_base, _with_dvt(_day(28)))
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    early = _early_cell(browsing)
    assert early != "no", early
    assert "unknown" in early, early
    assert not browsing.console_errors


def test_an_onset_with_a_time_reads_early_or_not_as_written(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """The known cases are unchanged: an onset 5 days after cycle 2 (a time given) is not
    early: "no"."""
    load(fhir_base, _with_dvt(f"{_day(28 + 8)}T10:00:00Z"))
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    assert _early_cell(browsing) == "no"
    assert not browsing.console_errors


def test_risk_factors_not_assessable_are_said_as_the_flag_says_them(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """The test responder has a weight but no height or BMI: obesity cannot be assessed, and
    no factor was found. The tee-risk Flag says "none found, not assessable: obesity (no BMI,
    nor weight and height, on or before this date); maximum rate 4 mg/kg/min" (s31c); the page
    said "No thromboembolism risk factors found in the record" in the tone of a good result,
    and its summary card "No risk factors", as for a patient with every factor checked."""
    load(fhir_base, responder())
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    status = page.locator("#risk .risk-status")
    said = status.inner_text()
    assert "could not be assessed" in said, said
    assert "obesity (no BMI, nor weight and height, on or before this date)" in said, said
    assert "Maximum infusion rate now 4 mg/kg/min" in said, said
    assert "good" not in (status.get_attribute("class") or "")
    summary = text(page, "#summary")
    assert "No risk factors" not in summary, summary
    assert "not assessable" in summary, summary
    assert not browsing.console_errors


def test_no_event_says_the_window_the_service_used(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """The TEE window is a setting (clinical spec §5.3 [choice] ``tee_window_days``, every
    result says the value used: the derived Observations' policy note). With no associated
    event the page said "None recorded within 14 days of a cycle" whatever the window; here
    the service's answer says 21 (altered in transit, as a site would set it)."""
    load(fhir_base, responder())

    def altered(route: Route) -> None:
        response = route.fetch()
        body = response.text().replace("tee_window_days=14", "tee_window_days=21")
        route.fulfill(response=response, body=body)

    browsing.page.route("**/$myositis-evaluate*", altered)
    launch(browsing, stack)
    page = browsing.page
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    risk = text(page, "#risk")
    assert "within 21 days" in risk, risk
    assert "14 days" not in risk, risk
    assert not browsing.console_errors
