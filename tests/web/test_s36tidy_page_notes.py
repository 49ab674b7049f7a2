"""The page's list of warnings says a note that every cycle's dose Observation carries once,
with the cycles it is said of (s36 tidy audit of what a clinician reads).

Each cycle's dose Observation says what its dosing weight rests on (the ivig-cycle-dose notes),
among it every body weight excluded on or before the cycle's start (clinical spec §1: "excluded
with the reason"). The page listed every cycle's notes, "Cycle 1: body weight 154 kg is
implausible …", "Cycle 2: …" and so on: the same exclusion once per cycle, 4 times."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.test_run import load
from tests.fhir.builders import LOINC, obs
from tests.fhir.patients import responder
from tests.web.conftest import Stack
from tests.web.test_page import READY_TIMEOUT_MS, Browsing, browsing, launch, text

__all__ = ["browsing"]  # the fixture used here


def test_an_exclusion_every_cycle_carries_is_listed_once(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    data = responder()
    w0 = next(e["resource"] for e in data["entry"] if e["resource"]["id"] == "w0")
    dup = obs("w0lb", "29463-7", 154, "kg", w0["effectiveDateTime"], system=LOINC)
    data["entry"].append({"fullUrl": "Observation/w0lb", "resource": dup})
    load(fhir_base, data)
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    items = page.locator("#warnings-body ul.issues li")
    expect(items.first).to_be_visible(timeout=READY_TIMEOUT_MS)
    said = [(t or "").strip() for t in items.all_text_contents()]
    jumps = [s for s in said if "154 kg is implausible" in s]
    assert len(jumps) == 1, said
    assert "Cycles 1, 2, 3, 4:" in jumps[0], jumps
    # a note of one cycle is said of that cycle, as before
    stale = "Cycle 3: latest body weight is 58 days"
    assert any(s.startswith("warning") and stale in s for s in said), said
    assert not browsing.console_errors
