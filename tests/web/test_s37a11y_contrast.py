"""The clinician's page against WCAG 2.1 AA (s37 accessibility audit): what hospitals buy under
(Section 508, EN 301 549) and what a clinician with low vision, a screen reader or a keyboard
needs.

Contrast is computed from the colours the browser applies (``getComputedStyle``), each text
against what is painted behind it: the HTML backgrounds of its ancestors, or, for a chart's
text, the SVG shape under it (a bar) or its own halo. Two texts failed SC 1.4.3 (4.5:1 for
normal text): the grey second line under the time axes ("week 4" under the TIS chart, each
cycle's start date under the dose and rate charts), #7b8794 on white, 3.66:1; and the value
written inside an off-target dose bar, white on #d08700, 2.94:1, a bar that also stood only
2.94:1 from the white chart behind it (SC 1.4.11 asks 3:1 of a graphical object). And the
status live region went silent when the results came (see the last test)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from playwright.sync_api import Page

from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.web.conftest import PATIENT, Stack
from tests.web.test_page import Browsing, browsing, launch, text

__all__ = ["browsing"]  # the fixture used here

# WCAG 2.1 relative luminance and contrast ratio, and what is painted behind an element.
_COLOUR_JS = r"""
const parse = (c) => {
  const m = /rgba?\(([^)]+)\)/.exec(c || "");
  if (!m) return null;
  const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const over = (fg, bg) => [0, 1, 2].map((i) => fg[i] * fg[3] + bg[i] * (1 - fg[3])).concat(1);
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
};
const ratio = (a, b) => {
  const [x, y] = [lum(a), lum(b)];
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
};
const opacity = (el) => {
  let o = 1;
  for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
  return o;
};
// the HTML backgrounds behind an element, composed from the page down
const htmlBackground = (el) => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c[3] > 0) layers.push(c);
    if (c && c[3] === 1) break;
  }
  return layers.reverse().reduce((bg, c) => over(c, bg), [255, 255, 255, 1]);
};
const shapes = "rect, circle, path, polygon, ellipse";
// the SVG shape painted last, before the text, under the text's centre (a bar, a band)
const svgBackground = (text) => {
  const svg = text.ownerSVGElement;
  const t = text.getBoundingClientRect();
  const [cx, cy] = [t.left + t.width / 2, t.top + t.height / 2];
  let bg = htmlBackground(svg);
  for (const s of svg.querySelectorAll(shapes)) {
    const before = s.compareDocumentPosition(text) & Node.DOCUMENT_POSITION_FOLLOWING;
    if (s.closest("defs") || !before) continue;
    const b = s.getBoundingClientRect();
    if (cx < b.left || cx > b.right || cy < b.top || cy > b.bottom) continue;
    const cs = getComputedStyle(s);
    const fill = parse(cs.fill);
    if (!fill) continue;
    fill[3] *= Number(cs.fillOpacity) * opacity(s);
    bg = over(fill, htmlBackground(svg));
  }
  return bg;
};
"""

# Every text on the page a sighted reader sees, with its contrast against what is behind it.
TEXT_CONTRAST = (
    "() => {"
    + _COLOUR_JS
    + r"""
  const out = [];
  const seen = new Set();
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const node = walk.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || seen.has(el)) continue;
    seen.add(el);
    if (el.closest("title, desc, noscript, .visually-hidden, [hidden]")) continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || !el.checkVisibility({ visibilityProperty: true })) continue;
    const cs = getComputedStyle(el);
    const svg = el instanceof SVGElement;
    let fg = parse(svg ? cs.fill : cs.color);
    if (!fg) continue;
    fg[3] *= opacity(el);
    let bg;
    const halo = parse(cs.stroke);
    if (svg && halo && parseFloat(cs.strokeWidth) >= 2 && cs.paintOrder.startsWith("stroke")) {
      bg = over(halo, htmlBackground(el.ownerSVGElement));
    } else {
      bg = svg ? svgBackground(el.closest("text")) : htmlBackground(el);
    }
    const px = parseFloat(cs.fontSize);
    const bold = Number(cs.fontWeight) >= 700;
    out.push({
      text: node.textContent.trim().slice(0, 40),
      where: `${el.tagName.toLowerCase()}.${(el.getAttribute("class") || "").replace(/ /g, ".")}`,
      ratio: Math.round(ratio(over(fg, bg), bg) * 100) / 100,
      large: px >= 24 || (bold && px >= 18.66),
    });
  }
  return out;
}"""
)

# Each bar of the IVIG charts against the chart behind it (SC 1.4.11, 3:1).
BAR_CONTRAST = (
    "() => {"
    + _COLOUR_JS
    + r"""
  return [...document.querySelectorAll(".bar-chart .bar rect")].map((rect) => {
    const fill = parse(getComputedStyle(rect).fill);
    const bg = htmlBackground(rect.ownerSVGElement);
    return {
      bar: `${rect.ownerSVGElement.id} ${rect.parentElement.getAttribute("class")}`,
      ratio: Math.round(ratio(over(fill, bg), bg) * 100) / 100,
    };
  });
}"""
)


def _off_target_patient() -> dict[str, Any]:
    """The page with most to draw: a DVT after cycle 2, rates above the maximum, a partial TIS,
    a risk factor, and cycle 2 off its dose target (4 × 314.98 mL: 1.7999 g/kg)."""
    data = responder(dvt_after_cycle=2, fast_admin=True, missing_haq_week=8, hypertension=True)
    for entry in data["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "MedicationAdministration" and r["id"].startswith("ma1"):
            r["dosage"]["dose"]["value"] = 314.98
    return data


def off_target_page(stack: Stack, fhir_base: str, browsing: Browsing) -> Page:
    """The page of :func:`_off_target_patient`, launched and drawn."""
    load(fhir_base, _off_target_patient())
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    return page


def test_every_text_and_bar_has_aa_contrast(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    page = off_target_page(stack, fhir_base, browsing)
    assert page.locator("#dose-chart .bar.off-target").count() == 1  # the case is drawn
    assert page.locator("#dose-chart .bar.off-target .value-inside").count() == 1

    texts: list[dict[str, Any]] = page.evaluate(TEXT_CONTRAST)
    assert len(texts) > 200, len(texts)  # the whole page was measured
    low = [t for t in texts if t["ratio"] < (3 if t["large"] else 4.5)]
    assert not low, low
    # the texts that failed before, by name: measured, and readable
    measured = {(t["where"], t["text"]) for t in texts}
    assert ("text.tick.muted", "week 4") in measured, sorted(measured)
    assert ("text.value-inside", "1.7999") in measured, sorted(measured)

    bars: list[dict[str, Any]] = page.evaluate(BAR_CONTRAST)
    assert len(bars) == 8, bars
    assert all(b["ratio"] >= 3 for b in bars), bars
    assert not browsing.console_errors


def test_structure_a_screen_reader_relies_on(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """What passed the audit, kept: the page's language and title, one h1 and headings in
    order, one main landmark the skip link reaches, every table with a caption and its header
    cells scoped, each chart an image named by its own text description (and the TIS chart's
    data as a table too), the status a polite live region."""
    load(fhir_base, _off_target_patient())
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.title() == "Myositis response and IVIG safety · fhirtis"
    levels: list[int] = page.evaluate(
        """() => [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")]
        .filter((h) => !h.closest("[hidden]")).map((h) => Number(h.tagName[1]))"""
    )
    assert levels.count(1) == 1 and levels[0] == 1, levels
    assert all(b - a <= 1 for a, b in pairwise(levels)), levels
    assert page.locator("main").count() == 1
    assert page.locator("a.skip-link").get_attribute("href") == "#main"
    tables = page.locator("table")
    assert tables.count() >= 5
    for i in range(tables.count()):
        table = tables.nth(i)
        assert (table.locator("caption").text_content() or "").strip(), i
        assert table.locator("th:not([scope])").count() == 0, i
        assert table.locator("thead th").count() == table.locator("thead th[scope=col]").count()
    for chart in ("#tis-chart", "#dose-chart", "#rate-chart"):
        svg = page.locator(chart)
        assert svg.get_attribute("role") == "img", chart
        ids = (svg.get_attribute("aria-labelledby") or "").split()
        assert len(ids) == 2, chart
        assert page.locator(f"{chart} title#{ids[0]}").count() == 1, chart
        assert (page.locator(f"{chart} desc#{ids[1]}").text_content() or "").strip(), chart
    assert page.get_by_role("table", name="Total Improvement Score by follow-up").count() == 1
    ids: list[str] = page.evaluate("() => [...document.querySelectorAll('[id]')].map((e) => e.id)")
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    status = page.locator("#status")
    assert status.get_attribute("role") == "status"
    assert status.get_attribute("aria-live") == "polite"
    assert not browsing.console_errors


def test_the_live_region_says_the_results_are_shown(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    """The status live region said "Evaluating patient p1…" (announced) and was then hidden
    when the results were drawn: a screen reader said nothing more, and its user, who cannot
    see the page fill, did not learn that the results had come (SC 4.1.3 asks status messages
    to reach assistive technology without focus). The region now says so, out of sight."""
    load(fhir_base, responder())
    page = browsing.page
    launch(browsing, stack)
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    region = page.get_by_role("status")
    assert region.count() == 1  # still in the accessibility tree
    assert (region.text_content() or "").strip() == f"The results for patient {PATIENT} are shown."
    box = region.bounding_box()
    assert box is not None and box["width"] <= 1 and box["height"] <= 1, box  # out of sight
    assert page.locator("#results").is_visible()
    assert not browsing.console_errors
