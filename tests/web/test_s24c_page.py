"""The clinician's page against the service's own answer: numbers beside a limit or tolerance
edge as the service wrote them, off-target and above-limit told in words (not colour only), and
a spent authorization code never left in the address bar."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Route

from tests.e2e.test_run import load
from tests.fhir.builders import administration
from tests.fhir.patients import _day, responder
from tests.web.conftest import Stack
from tests.web.test_page import READY_TIMEOUT_MS, Browsing, browsing, launch, text
from tests.web.test_s35sec_error_state import started_here

__all__ = ["browsing"]  # the fixture used here

# The pairs of an SVG's texts drawn over one another.
OVERLAPPING_TEXT = """svg => {
  const boxes = [...svg.querySelectorAll("text")]
    .filter((t) => t.textContent.trim())
    .map((t) => [t.textContent, t.getBoundingClientRect()]);
  const out = [];
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++) {
      const [ta, a] = boxes[i];
      const [tb, b] = boxes[j];
      const across = a.left < b.right - 1 && b.left < a.right - 1;
      if (across && a.top < b.bottom - 1 && b.top < a.bottom - 1) out.push([ta, tb]);
    }
  return out;
}"""


def _cycle_row(page_text: str, n: int) -> str:
    return next(line for line in page_text.splitlines() if line.startswith(f"Cycle {n}\t"))


def test_a_dose_beside_the_tolerance_edge_is_shown_as_the_service_wrote_it(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """Cycle 2 of 4 × 314.98 mL of 10 % at 70 kg: 125.992 g, 1.79989 g/kg, 10.006 % under the
    target 2 g/kg (tolerance 10 %, edge 1.8): off target (spec §4). The service's cycle
    Observation carries it with the places that tell it from the edge (1.7999); to 2 places the
    page showed "1.8", the edge itself, in the row whose note says it is off target, and marked
    it off target only by a bar's colour."""
    data = responder()
    for entry in data["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "MedicationAdministration" and r["id"].startswith("ma1"):
            r["dosage"]["dose"]["value"] = 314.98
    load(fhir_base, data)
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    cells = page.locator("table.cycles tbody tr").nth(1).locator("td")
    g_per_kg = (cells.nth(4).text_content() or "").strip()
    assert g_per_kg.split()[0] == "1.7999", g_per_kg  # the Observation's value (< 1.8, the edge)
    assert "off target" in g_per_kg, g_per_kg  # said in words, not only by colour
    ok = page.locator("table.cycles tbody tr").nth(0).locator("td").nth(4).text_content() or ""
    assert ok.strip() == "2", ok  # an on-target cycle carries no mark
    desc = page.locator("#dose-chart desc").text_content() or ""
    assert "cycle 2: 1.7999 g/kg, off target" in desc, desc
    assert "cycle 1: 2 g/kg;" in desc, desc
    note = (cells.nth(-1).text_content() or "").strip()
    assert "off the target" in note, note
    assert not browsing.console_errors


def test_a_rate_above_its_maximum_reads_above_it_in_the_chart_too(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """One infusion of cycle 3 at 168.17 mL/h (4.0040 mg/kg/min, above 4): the table shows 4.004,
    but the rate chart's label, tooltip and text description (what a screen reader reads)
    said "4 mg/kg/min, above the applicable maximum 4"."""
    data = responder()
    for entry in data["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "MedicationAdministration" and r["id"] == "ma20":
            r["dosage"]["rateQuantity"]["value"] = 168.17
    load(fhir_base, data)
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    desc = page.locator("#rate-chart desc").text_content() or ""
    assert "cycle 3: 4.004 mg/kg/min, above the applicable maximum 4" in desc, desc
    bar = page.locator("#rate-chart .bar").nth(2)
    assert "4.004" in (bar.locator("title").text_content() or "")
    labels = [t for t in bar.locator("text").all_text_contents() if t.strip()]
    assert labels == ["4.004"], labels


def test_a_failed_sign_in_leaves_no_code_in_the_address_bar(
    stack: Stack, browsing: Browsing
) -> None:
    """A redirect back with a code whose state this tab never sent (state mismatch): the page
    says so, and the code and state leave the address bar as after a good exchange, so that a
    reload or a copied link does not carry the code."""
    page = browsing.page
    page.goto(f"{stack.fhirtis}/app/?code=spent-code&state=not-ours")
    page.wait_for_selector("body[data-state=error]", timeout=READY_TIMEOUT_MS)
    assert "not started here" in text(page, "#status")
    assert "code=" not in page.url and "state=" not in page.url, page.url
    assert page.url == f"{stack.fhirtis}/app/"
    assert not stack.auth.record.token_requests


def test_a_refused_authorization_leaves_no_state_in_the_address_bar(
    stack: Stack, browsing: Browsing
) -> None:
    page = browsing.page
    started_here(browsing, stack, "s1")
    page.goto(
        f"{stack.fhirtis}/app/?error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E&state=s1"
    )
    page.wait_for_selector("body[data-state=error]", timeout=READY_TIMEOUT_MS)
    assert "The EHR did not authorize the app: <b>no</b>." in text(page, "#status")
    assert page.locator("#status b").count() == 0  # server text is never HTML
    assert page.url == f"{stack.fhirtis}/app/"


def test_an_improvement_just_above_a_band_edge_is_not_shown_on_the_edge(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """PGA 6 → 5.496 cm on 0-10: improvement exactly 5.04 %, band >5–15, 7.5 points (adult,
    spec §2.2: 5 is included in ≤5, 0 points). The service writes 5.04; to 1 place the page
    showed "5 %" beside 7.5 points, which the band ≤5 (0 points) contradicts."""
    data = responder()
    for entry in data["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "Observation" and r["id"] == "pga3":
            r["valueQuantity"]["value"] = 5.496
    load(fhir_base, data)
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    pga = page.locator("table.measures tbody tr").nth(0)
    cells = [(c or "").strip() for c in pga.locator("td").all_text_contents()]
    assert cells[0] == "5.04 %", cells
    assert cells[1].startswith("7.5"), cells


def test_a_token_error_is_told_as_text_and_the_code_is_gone(
    stack: Stack, browsing: Browsing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token endpoint refuses the code (RFC 6749 §5.2 error body) with markup in its
    description: the page says the EHR did not grant access, as text."""
    monkeypatch.setattr(
        stack.auth,
        "exchange",
        lambda form: (400, {"error": "invalid_grant", "error_description": "<i>used</i> code"}),
    )
    launch(browsing, stack)
    page = browsing.page
    assert page.locator("body").get_attribute("data-state") == "error"
    assert "The EHR did not grant access: <i>used</i> code" in text(page, "#status")
    assert page.locator("#status i").count() == 0
    assert "Open the app again from the patient's chart" in text(page, "#status")
    assert page.url == f"{stack.fhirtis}/app/"


def test_a_token_without_a_patient_is_told(
    stack: Stack, browsing: Browsing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token response without ``patient`` (SMART App Launch: the launch context the app asked
    for with ``launch`` was not given): no evaluation of nobody, a message."""
    exchange = stack.auth.exchange

    def no_patient(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        status, body = exchange(form)
        body.pop("patient", None)
        return status, body

    monkeypatch.setattr(stack.auth, "exchange", no_patient)
    launch(browsing, stack)
    page = browsing.page
    assert page.locator("body").get_attribute("data-state") == "error"
    assert "did not say which patient is open" in text(page, "#status")
    assert page.url == f"{stack.fhirtis}/app/"
    assert page.evaluate("sessionStorage.getItem('fhirtis.session')") is None


def test_only_a_baseline_and_no_ivig(stack: Stack, fhir_base: str, browsing: Browsing) -> None:
    """A patient seen once (a baseline, no follow-up) and never given IVIG: every panel says what
    is missing, none shows a 0 for it."""
    data = responder()
    data["entry"] = [
        e
        for e in data["entry"]
        if e["resource"]["resourceType"] != "MedicationAdministration"
        and not (
            e["resource"]["resourceType"] == "Observation"
            and e["resource"]["id"][-1:] in {"1", "2", "3"}
        )
    ]
    load(fhir_base, data)
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    assert not browsing.console_errors, browsing.console_errors
    summary = text(page, "#summary")
    assert "No follow-up assessment" in summary, summary
    assert "0 cycles" in summary and "No IVIG administrations found" in summary, summary
    assert "No TIS yet" in text(page, "#tis")
    assert "No IVIG administrations" in text(page, "#ivig")
    assert "No follow-up assessment yet" in text(page, "#measures")


def test_markup_and_unicode_in_record_text_stay_text(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """A DVT recorded with free text holding markup and non-Latin script after cycle 2: shown
    as written, never parsed as HTML (no element, no script run)."""
    data = responder(dvt_after_cycle=2)
    evil = 'Тромбоз <img src=x onerror="window.pwned=1"> 深静脉 <b>DVT</b>'
    for entry in data["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "Condition" and r["id"] == "dvt":
            r["code"]["text"] = evil
    load(fhir_base, data)
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img, main b").count() == 0
    risk = text(page, "#risk")
    assert evil in risk, risk  # the event row and the factor's detail, as written
    assert text(page, "table.events tbody th") == evil


def test_print_keeps_the_tis_table(stack: Stack, fhir_base: str, browsing: Browsing) -> None:
    """Printed (for the notes or a referral), the page kept the charts but hid every <details>,
    the open "TIS at each follow-up" table among them: the TIS values, categories and a partial
    TIS's missing measures were lost from the paper."""
    load(fhir_base, responder(missing_haq_week=8))
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    page.emulate_media(media="print")
    table = page.locator("#tis-table table")
    assert table.is_visible()
    assert "HAQ" in table.inner_text()


def test_a_phone_width_never_scrolls_the_page_sideways(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """At 360 CSS px (a small phone) wide tables scroll inside their panel; the page itself does
    not get wider than the screen."""
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True, missing_haq_week=8))
    page = browsing.page
    page.set_viewport_size({"width": 360, "height": 740})
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, width
    for chart in ("#dose-chart", "#rate-chart", "#tis-chart"):
        overlaps = page.eval_on_selector(chart, OVERLAPPING_TEXT)
        assert not overlaps, (chart, overlaps[:5])


def test_a_deceased_patient_is_said_at_the_top(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """Patient.deceasedDateTime set (FHIR R4 Patient): the service warns that "now" (risk
    factors, maximum rate) describes the record, not future care. The page put that warning
    only at the foot of the page, under "Maximum rate now 3.3 mg/kg/min" in the summary."""
    data = responder()
    for entry in data["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "Patient":
            r["deceasedDateTime"] = "2024-06-01"
    load(fhir_base, data)
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    summary = text(page, "#summary")
    assert "recorded deceased on 2024-06-01" in summary, summary
    first = page.locator("#summary .record-note").first
    assert first.get_attribute("role") == "note"


def test_an_ehr_that_offers_only_plain_pkce_is_not_sent_to(
    stack: Stack, browsing: Browsing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SMART App Launch 2 (conformance: code_challenge_methods_supported "SHALL include S256
    and SHALL NOT include plain"): an EHR advertising only ``plain`` gets no authorization
    request, and the page says why. (One that does not advertise the field at all, as SMART v1
    servers do not, still gets S256: they ignore what they do not know.)"""
    config = stack.auth.smart_configuration()
    config["code_challenge_methods_supported"] = ["plain"]
    monkeypatch.setattr(stack.auth, "smart_configuration", lambda: config)
    launch(browsing, stack)
    page = browsing.page
    assert page.locator("body").get_attribute("data-state") == "error"
    assert "does not support PKCE (S256)" in text(page, "#status")
    assert not stack.auth.record.authorize_requests


def test_years_of_monthly_cycles(stack: Stack, fhir_base: str, browsing: Browsing) -> None:
    """Four years of monthly IVIG (52 cycles of 4 infusions, 208 administrations): every cycle
    is listed, the charts draw one bar each, and the page stays within the screen."""
    data = responder()
    template = next(
        e["resource"]
        for e in data["entry"]
        if e["resource"]["resourceType"] == "MedicationAdministration"
    )
    data["entry"] = [
        e for e in data["entry"] if e["resource"]["resourceType"] != "MedicationAdministration"
    ]
    for c in range(52):
        for k in range(4):
            day = _day(28 * c + k)
            data["entry"].append(
                {
                    "resource": administration(
                        f"m{c}x{k}",
                        f"{day}T09:00:00+01:00",
                        f"{day}T11:20:00+01:00",
                        dose=template["dosage"]["dose"],
                        rate=template["dosage"]["rateQuantity"],
                    )
                }
            )
    load(fhir_base, data)
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    assert text(page, "#ivig-count") == "52 cycles"
    assert page.locator("table.cycles tbody tr").count() == 52
    assert page.locator("#dose-chart .bar rect").count() == 52
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert not browsing.console_errors
    # No label of a chart is drawn over another (52 "C1".."C52" and dates ran into a smear).
    for chart in ("#dose-chart", "#rate-chart", "#tis-chart"):
        overlaps = page.eval_on_selector(chart, OVERLAPPING_TEXT)
        assert not overlaps, (chart, overlaps[:5])


def test_results_the_service_calls_incomplete_are_marked_at_the_top(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """The FHIR server said in a searchset outcome that it returned only part of the matches
    (fhirtis: a warning of code ``incomplete``), and an IVIG-looking Medication could not be read
    (an error): the numbers above may be short. The page put both only at its foot."""
    load(fhir_base, responder())
    page = browsing.page
    incomplete = (
        "search outcome: the server reported that some of the patient's data may not have "
        "been returned (severity error, code throttled); the results may be incomplete"
    )
    missing = "MedicationAdministration/x: its Medication (Medication/m) could not be read"

    def add_issues(route: Route) -> None:
        response = route.fetch()
        bundle = response.json()
        for entry in bundle["entry"]:
            if entry["resource"]["resourceType"] == "OperationOutcome":
                entry["resource"]["issue"] += [
                    {"severity": "warning", "code": "incomplete", "diagnostics": incomplete},
                    {"severity": "error", "code": "not-found", "diagnostics": missing},
                ]
        route.fulfill(response=response, json=bundle)

    page.route("**/$myositis-evaluate", add_issues)
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    notes = page.locator("#summary .record-note").all_inner_texts()
    assert any(incomplete[1:] in n for n in notes), notes  # (capitalised)
    assert any(missing in n for n in notes), notes
    assert incomplete in text(page, "#warnings")  # and still among the data warnings
