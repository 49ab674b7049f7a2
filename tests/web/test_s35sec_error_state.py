"""The SMART page shows an authorization error's words only for a sign-in it started.

The page showed ``error_description`` from its own address whenever ``?error=`` was there,
whatever the ``state``: any link (``/app/?error=x&error_description=Your session expired, call
…``) put text of its author's on the hospital's page as the EHR's. The state binds an answer to
the request this tab sent (RFC 6749 §4.1.2.1, §10.12); without it the page now says only that
this sign-in was not started here, as it does for a code with a foreign state."""

from __future__ import annotations

import json
import time

from tests.web.conftest import Stack
from tests.web.test_page import READY_TIMEOUT_MS, Browsing, browsing, text

__all__ = ["browsing", "started_here"]  # the fixture used here; the helper for other tests

FORGED = "Your session expired, call 555-0100"


def started_here(browsing: Browsing, stack: Stack, state: str) -> None:
    """A launch this tab started under ``state``, as the page keeps it in sessionStorage."""
    page = browsing.page
    page.goto(f"{stack.fhirtis}/app/")
    page.wait_for_selector("body[data-state]", timeout=READY_TIMEOUT_MS)
    saved = json.dumps({"created": int(time.time() * 1000)})
    page.evaluate(
        "([key, value]) => sessionStorage.setItem(key, value)",
        [f"fhirtis.launch.{state}", saved],
    )


def test_an_error_link_of_no_launch_of_this_tab_shows_none_of_its_words(
    stack: Stack, browsing: Browsing
) -> None:
    page = browsing.page
    page.goto(f"{stack.fhirtis}/app/?error=access_denied&error_description={FORGED}&state=s9")
    page.wait_for_selector("body[data-state=error]", timeout=READY_TIMEOUT_MS)
    status = text(page, "#status")
    assert FORGED not in status and "555" not in status
    assert "not started here" in status
    assert page.url == f"{stack.fhirtis}/app/"


def test_an_error_link_without_state_shows_none_of_its_words(
    stack: Stack, browsing: Browsing
) -> None:
    page = browsing.page
    page.goto(f"{stack.fhirtis}/app/?error=access_denied&error_description={FORGED}")
    page.wait_for_selector("body[data-state=error]", timeout=READY_TIMEOUT_MS)
    assert "555" not in text(page, "#status")


def test_the_refusal_of_a_launch_of_this_tab_is_shown_once(
    stack: Stack, browsing: Browsing
) -> None:
    page = browsing.page
    started_here(browsing, stack, "s2")
    page.goto(f"{stack.fhirtis}/app/?error=access_denied&error_description=denied&state=s2")
    page.wait_for_selector("body[data-state=error]", timeout=READY_TIMEOUT_MS)
    assert "The EHR did not authorize the app: denied." in text(page, "#status")
    # the launch is spent: the same answer again is no longer this tab's
    page.goto(f"{stack.fhirtis}/app/?error=access_denied&error_description=denied&state=s2")
    page.wait_for_selector("body[data-state=error]", timeout=READY_TIMEOUT_MS)
    assert "not started here" in text(page, "#status")
