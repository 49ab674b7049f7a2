"""The clinician's page, end to end: an EHR launch in headless Chromium through the test SMART
authorization server, fhirtis evaluating the patient from the test FHIR server, the page drawn."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, Route, ViewportSize, sync_playwright

from fhirtis.api.web import DEFAULT_CLIENT_ID
from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.web.auth_server import s256
from tests.web.conftest import CHROMIUM_ARGS, LAUNCH, PATIENT, Stack

VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
READY_TIMEOUT_MS = 60_000


# -- a tiny PNG reader (8-bit RGB/RGBA, not interlaced: what Chromium writes) -------------------


@dataclass
class Png:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixels(self) -> Iterator[bytes]:
        c = self.channels
        for row in self.rows:
            for i in range(0, len(row), c):
                yield row[i : i + 3]


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(data: bytes) -> Png:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, bytearray()
    header: tuple[int, ...] = ()
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind_ = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if kind_ == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind_ == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind_ == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind_ == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                upleft = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, prev[i], upleft)) & 0xFF
        rows.append(bytes(line))
        prev = rows[-1]
    return Png(width, height, bpp, rows)


# -- the browser ----------------------------------------------------------------------------------


@dataclass
class Browsing:
    page: Page
    console_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)


@pytest.fixture
def browsing(chromium: Path, stack: Stack) -> Iterator[Browsing]:
    """A fresh headless Chromium page that may only talk to the test's own servers."""
    allowed = {urlsplit(stack.fhirtis).netloc, urlsplit(stack.auth.root_url).netloc}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
            page = context.new_page()
            out = Browsing(page)

            def gate(route: Route, request: Request) -> None:
                if urlsplit(request.url).netloc in allowed:
                    route.continue_()
                else:
                    out.foreign_requests.append(request.url)
                    route.abort()

            context.route("**/*", gate)
            page.on(
                "console",
                lambda m: out.console_errors.append(m.text) if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: out.console_errors.append(str(e)))
            yield out
            context.close()
        finally:
            browser.close()


def launch(b: Browsing, stack: Stack, iss: str | None = None) -> None:
    b.page.goto(
        f"{stack.fhirtis}/app/launch.html?iss={quote(iss or stack.iss, safe='')}&launch={LAUNCH}"
    )
    b.page.wait_for_selector("body[data-state]", timeout=READY_TIMEOUT_MS)


def text(page: Page, selector: str) -> str:
    return page.locator(selector).inner_text()


# -- the tests ----------------------------------------------------------------------------------


def test_ehr_launch_draws_the_patient(
    stack: Stack, fhir_base: str, browsing: Browsing, tmp_path: Path
) -> None:
    load(fhir_base, responder())
    page = browsing.page
    launch(browsing, stack)
    state = page.locator("body").get_attribute("data-state")
    assert state == "ready", f"page state {state}: {text(page, '#status')}"

    # The SMART dance happened as it should: one authorization with PKCE, one exchange.
    record = stack.auth.record
    (auth_q,) = record.authorize_requests
    assert auth_q["client_id"] == DEFAULT_CLIENT_ID
    assert auth_q["redirect_uri"] == f"{stack.fhirtis}/app/"
    assert auth_q["aud"] == stack.iss and auth_q["launch"] == LAUNCH
    assert auth_q["scope"] == "launch openid fhirUser patient/*.read"
    assert auth_q["code_challenge_method"] == "S256"
    (token_q,) = record.token_requests
    assert s256(token_q["code_verifier"]) == auth_q["code_challenge"]
    (token,) = record.issued_tokens
    # fhirtis read the FHIR server with the browser's token, and only with it.
    assert record.fhir_requests and all(t == token for _, _, t in record.fhir_requests)
    assert record.refused_fhir_requests == 0
    # The token and patient are kept for this tab only; the code left the address bar.
    session = page.evaluate("JSON.parse(sessionStorage.getItem('fhirtis.session'))")
    assert session["accessToken"] == token and session["patient"] == PATIENT
    assert session["iss"] == stack.iss
    assert page.url == f"{stack.fhirtis}/app/"

    # What the clinician sees.
    assert text(page, "#ctx-patient") == PATIENT
    latest = text(page, "#summary")
    assert "62.5" in text(page, "#tis-latest")
    assert "major" in latest.lower()
    chart = page.locator("#tis-chart")
    assert chart.get_attribute("role") == "img"
    assert page.locator("#tis-chart .point").count() == 3
    assert page.locator("#tis-chart .point.cat-major").count() == 2
    assert page.locator("#tis-chart .band").count() == 4
    assert "62.5" in (page.locator("#tis-chart desc").text_content() or "")
    measures = page.locator("table.measures tbody tr")
    assert measures.count() == 6
    assert "Total Improvement Score" in text(page, "table.measures tfoot")
    assert text(page, "#ivig-count") == "4 cycles"
    assert page.locator("table.cycles tbody tr").count() == 4
    assert page.locator("#dose-chart .bar rect").count() == 4
    assert page.locator("#rate-chart .bar rect").count() == 4
    assert page.locator("#risk h2").inner_text() == "Thromboembolism risk"
    assert "No thromboembolism risk factors" in text(page, "#risk")
    assert "No infusion ran above" in text(page, "#alerts")
    for section in ("summary", "tis", "measures", "ivig", "risk", "alerts", "warnings"):
        assert page.locator(f"#{section}").is_visible(), section
    for caption in page.locator("table caption").all():
        assert (caption.text_content() or "").strip()
    assert not browsing.console_errors
    assert not browsing.foreign_requests

    # A screenshot for people, and a check that it shows something.
    shot = tmp_path / "fhirtis-page.png"
    page.screenshot(path=str(shot), full_page=True)
    png = read_png(shot.read_bytes())
    assert png.width == VIEWPORT["width"] and png.height >= VIEWPORT["height"]
    sample = png.rows[:: max(1, png.height // 200)]
    colours = {row[i : i + 3] for row in sample for i in range(0, len(row), png.channels * 4)}
    assert len(colours) > 50, "the screenshot is (nearly) blank"
    # The chart itself: mostly drawn, and the four category bands are shaded in their colours.
    pixels = list(read_png(chart.screenshot()).pixels())
    background = max(set(pixels), key=pixels.count)
    assert sum(p != background for p in pixels) > len(pixels) // 4
    fills = page.eval_on_selector_all(
        "#tis-chart .band", "els => els.map(e => getComputedStyle(e).fill)"
    )
    present = set(pixels)
    for fill in fills:
        rgb = bytes(int(v) for v in fill.removeprefix("rgb(").removesuffix(")").split(","))
        assert rgb in present, f"band colour {fill} not drawn"
    print(f"screenshot: {shot}")


def test_alerts_events_and_partial_tis(
    stack: Stack, fhir_base: str, browsing: Browsing, tmp_path: Path
) -> None:
    load(
        fhir_base,
        responder(dvt_after_cycle=2, fast_admin=True, missing_haq_week=8, hypertension=True),
    )
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    assert page.locator("#tis-chart .point .interval").count() == 1  # the partial TIS
    assert "55–65 (partial)" in (page.locator("#tis-chart").text_content() or "")
    assert "Category undetermined: moderate or major" in text(page, "#tis-table")
    assert page.locator("#tis-chart .event").count() == 1
    risk = text(page, "#risk")
    assert "History of venous or arterial thrombosis" in risk
    assert "Cardiovascular risk factors" in risk
    assert "Deep vein thrombosis" in risk
    alerts = page.locator("table.alerts")
    assert "16 infusions above the applicable maximum rate" in (
        alerts.locator("caption").text_content() or ""
    )
    assert alerts.locator("tbody tr").count() == 5  # alike findings of a cycle share a row
    assert page.locator("#rate-chart .bar.over").count() == 4
    assert not browsing.console_errors
    page.screenshot(path=str(tmp_path / "fhirtis-page-alerts.png"), full_page=True)


def test_unknown_iss_never_leaves_for_its_authorization_server(
    stack: Stack, browsing: Browsing
) -> None:
    launch(browsing, stack, iss="https://evil.example.org/fhir")
    page = browsing.page
    assert page.locator("body").get_attribute("data-state") == "error"
    assert "not set up for the FHIR server https://evil.example.org/fhir" in text(page, "#status")
    assert not stack.auth.record.authorize_requests
    assert not browsing.foreign_requests


def test_a_smart_v2_only_server_is_asked_for_v2_scopes(
    stack: Stack, browsing: Browsing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An authorization server that advertises ``permission-v2`` and not ``permission-v1`` (SMART
    App Launch 2.0, capabilities: https://hl7.org/fhir/smart-app-launch/STU2/conformance.html
    #permissions; v2 scope syntax ``patient/*.rs``:
    https://hl7.org/fhir/smart-app-launch/STU2/scopes-and-launch-context.html) is asked for v2
    scopes; one that supports v1 keeps getting the v1 request (see the EHR launch test)."""
    v2_only = stack.auth.smart_configuration()
    v2_only["capabilities"] = [c for c in v2_only["capabilities"] if c != "permission-v1"] + [
        "permission-v2"
    ]
    monkeypatch.setattr(stack.auth, "smart_configuration", lambda: v2_only)
    launch(browsing, stack)
    (auth_q,) = stack.auth.record.authorize_requests
    assert auth_q["scope"] == "launch openid fhirUser patient/*.rs"


def test_without_a_launch_the_page_says_how_to_open_it(stack: Stack, browsing: Browsing) -> None:
    browsing.page.goto(f"{stack.fhirtis}/app/")
    browsing.page.wait_for_selector("body[data-state=idle]", timeout=READY_TIMEOUT_MS)
    assert "from a patient's chart in your EHR" in text(browsing.page, "#status")


def test_clinical_numbers_on_the_page_come_from_the_service(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """The page draws the thresholds and maxima the service gives it (config.json), so that
    they have one home (fhirtis.clinical); altered in transit, the page shows the altered ones."""
    load(fhir_base, responder())

    def altered(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body["clinical"]["category_thresholds"]["adult"] = {
            "minimal": 21,
            "moderate": 41,
            "major": 61,
        }
        body["clinical"]["measure_max"]["pga"] = 19
        route.fulfill(response=response, json=body)

    browsing.page.route("**/app/config.json", altered)
    launch(browsing, stack)
    page = browsing.page
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    desc = page.locator("#tis-chart desc").text_content() or ""
    assert "Category thresholds: minimal 21, moderate 41, major 61." in desc
    pga = page.locator("table.measures tbody tr").first
    assert "/ 19" in pga.inner_text()
    assert not browsing.console_errors


def test_page_files_and_config(stack: Stack) -> None:
    with httpx.Client(base_url=stack.fhirtis) as client:
        config = client.get("/app/config.json").json()
        assert config["client_id"] == DEFAULT_CLIENT_ID
        assert config["fhir_servers"] == [stack.iss]
        clinical = config["clinical"]
        assert clinical["category_thresholds"] == {
            "adult": {"minimal": 20, "moderate": 40, "major": 60},
            "juvenile": {"minimal": 30, "moderate": 45, "major": 70},
        }
        assert clinical["measure_max"] == {
            "pga": 20,
            "ptga": 10,
            "mmt8": 32.5,
            "haq": 10,
            "enzyme": 7.5,
            "extramuscular": 20,
        }
        assert clinical["policy"]["max_rate_mg_kg_min"] == 4
        assert clinical["policy"]["max_rate_with_risk_mg_kg_min"] == 3.3
        page = client.get("/app/")
        assert page.status_code == 200 and "<h1>" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        for name in ("app.js", "app.css", "launch.html"):
            assert client.get(f"/app/{name}").status_code == 200, name
        assert client.get("/app", follow_redirects=True).url.path == "/app/"
        assert client.get("/app/nothing.js").status_code == 404


def test_the_authorization_server_is_honest(stack: Stack) -> None:
    auth = stack.auth
    verifier = "v" * 50
    good: dict[str, Any] = {
        "response_type": "code",
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": f"{stack.fhirtis}/app/",
        "launch": LAUNCH,
        "scope": "launch patient/*.read",
        "state": "s1",
        "aud": auth.iss,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    with httpx.Client(base_url=auth.root_url) as client:
        assert client.get("/authorize", params={**good, "client_id": "other"}).status_code == 400
        bad_uri = client.get("/authorize", params={**good, "redirect_uri": "http://x/"})
        assert bad_uri.status_code == 400
        wrong_aud = client.get("/authorize", params={**good, "aud": "http://x/fhir"})
        assert "error=invalid_request" in wrong_aud.headers["location"]

        def code() -> str:
            r = client.get("/authorize", params=good)
            assert r.status_code == 302 and "state=s1" in r.headers["location"]
            return r.headers["location"].split("code=")[1].split("&")[0]

        form = {
            "grant_type": "authorization_code",
            "redirect_uri": good["redirect_uri"],
            "client_id": DEFAULT_CLIENT_ID,
            "code_verifier": verifier,
        }
        assert (
            client.post("/token", data={**form, "code": code(), "code_verifier": "w" * 50}).json()[
                "error"
            ]
            == "invalid_grant"
        )
        assert (
            client.post(
                "/token", data={**form, "code": code(), "redirect_uri": "http://x/"}
            ).json()["error"]
            == "invalid_grant"
        )
        assert (
            client.post("/token", data={**form, "code": code(), "client_id": "other"}).status_code
            == 401
        )
        first = code()
        ok = client.post("/token", data={**form, "code": first})
        assert ok.status_code == 200 and ok.json()["patient"] == PATIENT
        assert ok.json()["scope"] == "launch patient/*.read"
        assert client.post("/token", data={**form, "code": first}).status_code == 400  # single use
        assert client.get("/fhir/metadata").status_code == 401
        headers = {"Authorization": f"Bearer {ok.json()['access_token']}"}
        assert client.get("/fhir/metadata", headers=headers).status_code == 200


def test_edges_are_drawn_as_the_service_judges_them(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """Cycle 2 at exactly 2.2 g/kg (4 × 385 mL of 10 % at 70 kg: +10 %, within the tolerance,
    spec §4 "more than 10 % off") and cycle 3 with one infusion at 168.17 mL/h (4.0040 mg/kg/min,
    above 4). The page's float arithmetic coloured the 2.2 g/kg bar off target (|2.2 − 2| > 0.2
    in binary), and showed the rate to 2 places as 4 beside the maximum 4 ("+0 %")."""
    data = responder()
    for entry in data["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "MedicationAdministration":
            if r["id"].startswith("ma1"):
                r["dosage"]["dose"]["value"] = 385
            if r["id"] == "ma20":
                r["dosage"]["rateQuantity"]["value"] = 168.17
    load(fhir_base, data)
    page = browsing.page
    launch(browsing, stack)
    bars = page.eval_on_selector_all(
        "#dose-chart .bar", "els => els.map(e => e.getAttribute('class'))"
    )
    assert "off-target" not in bars[1], bars
    alerts = text(page, "#alerts")
    # the service's words, as its resources write the rate (beside: 4 places, never the limit)
    assert "rate 4.004 mg/kg/min is above the maximum 4" in alerts, alerts
    assert "+0 %" not in alerts, alerts
    cycle3 = next(line for line in text(page, "table.cycles").splitlines() if "Cycle 3" in line)
    assert "4.004\tabove 4" in cycle3, cycle3  # the cycle's highest rate, as written (4 places)
