"""The page shows the ProDERM responder status (clinical spec §3: TIS ≥ the minimal threshold and
no confirmed deterioration at or before the assessment) of every follow-up, read from the TIS
Observations' ``responder`` component of the service's Bundle, in words — yes, no, or unknown
with the service's reason — never by colour only."""

from __future__ import annotations

from typing import Any

from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.web.conftest import Stack
from tests.web.test_page import Browsing, browsing, launch, text

__all__ = ["browsing"]  # the fixture used here

Json = dict[str, Any]

BASELINE = {"pga": 6, "ptga": 7, "mmt": 100, "haq": 1.5, "em": 4, "ck": 3000}


def _yes_no_unknown() -> Json:
    """The adult responder of ``tests.fhir.patients`` changed so that week 4 is the baseline
    again (TIS 0: not a responder), week 8 too but without MMT-8 and HAQ (a partial TIS of
    0–42.5, either side of the adult minimal threshold 20: unknown), week 12 as it was (62.5,
    no confirmed deterioration: a responder)."""
    data = responder()
    entries = []
    for entry in data["entry"]:
        r = entry["resource"]
        rid = str(r.get("id", ""))
        if rid[:-1] in BASELINE and rid[-1:] in ("1", "2"):
            if rid in ("mmt2", "haq2"):
                continue
            r["valueQuantity"]["value"] = BASELINE[rid[:-1]]
        entries.append(entry)
    data["entry"] = entries
    return data


def test_each_follow_up_says_its_responder_status_in_words(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    load(fhir_base, _yes_no_unknown())
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    table = page.locator("#tis-table table")
    # (the text as written: the headers are upper-cased by the style sheet only)
    headers = [h.strip() for h in table.locator("thead th").all_text_contents()]
    column = headers.index("Responder (ProDERM)")
    rows = table.locator("tbody tr")
    assert rows.count() == 3
    said = []
    for i in range(3):
        # the row header is the first cell: the data cells follow it
        cell = rows.nth(i).locator("th, td").nth(column)
        said.append(" ".join((cell.inner_text() or "").split()))
    assert said[0] == "No", said
    assert said[1].startswith("Unknown ("), said
    assert "minimal improvement threshold" in said[1], said  # the service's reason
    assert said[2] == "Yes", said
    assert not browsing.console_errors
