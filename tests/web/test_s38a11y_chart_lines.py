"""The lines the clinician's charts draw, against what they are drawn on (WCAG 2.1 SC 1.4.11:
a graphical object needed to understand the content stands 3:1 from its neighbours).

The s37 audit measured every text and bar; the TIS chart's dashed category thresholds (the
lines where "minimal", "moderate" and "major" begin) were left at #9aa5b1, 2.5:1 on the white
chart and 2.2:1 on the "none" band: on a projector or to a reader with low vision the edges of
the categories faded into the bands. Every stroked line of the three charts (thresholds,
trend, baseline, axes, dose and rate references) is measured here against the chart, and
those drawn over the TIS chart's category bands against every band (the white grid and the
cycle strip's rail are guides, not content)."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import Stack
from tests.web.test_page import Browsing, browsing
from tests.web.test_s37a11y_contrast import _COLOUR_JS, off_target_page

__all__ = ["browsing"]  # the fixture used here

LINE_CONTRAST = (
    "() => {"
    + _COLOUR_JS
    + r"""
  const out = [];
  const lines = "line, polyline, path.trend";
  for (const chart of ["#tis-chart", "#dose-chart", "#rate-chart"]) {
    const svg = document.querySelector(chart);
    if (!svg) continue;
    const bg = htmlBackground(svg);
    const bands = [...svg.querySelectorAll("rect.band")].map((b) => {
      const c = parse(getComputedStyle(b).fill);
      c[3] *= Number(getComputedStyle(b).fillOpacity);
      return [b.getAttribute("class"), over(c, bg)];
    });
    for (const el of svg.querySelectorAll(lines)) {
      if (el.closest("defs")) continue;
      const cs = getComputedStyle(el);
      const stroke = parse(cs.stroke);
      if (!stroke || cs.stroke === "none" || parseFloat(cs.strokeWidth) === 0) continue;
      const cls = el.getAttribute("class") || "";
      // the white grid is a texture and the cycle strip's rail a guide, not content
      if (cls.includes("grid") || cls.includes("track")) continue;
      stroke[3] *= Number(cs.strokeOpacity) * opacity(el);
      // the plot's own lines are drawn over the category bands
      const plotted = /threshold|trend|baseline/.test(cls);
      const on = [["chart", bg]].concat(plotted ? bands : []);
      for (const [name, colour] of on) {
        out.push({
          chart, line: `${el.tagName}.${cls}`, on: name,
          ratio: Math.round(ratio(over(stroke, colour), colour) * 100) / 100,
        });
      }
    }
  }
  return out;
}"""
)


def test_every_chart_line_stands_3_to_1_from_what_it_is_drawn_on(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    page = off_target_page(stack, fhir_base, browsing)
    found: list[dict[str, Any]] = page.evaluate(LINE_CONTRAST)
    thresholds = [f for f in found if f["line"] == "line.threshold"]
    # three thresholds, each on the chart and on the four bands: measured
    assert len(thresholds) == 3 * 5, thresholds
    assert {f["chart"] for f in found} == {"#tis-chart", "#dose-chart", "#rate-chart"}, found
    low = [f for f in found if f["ratio"] < 3]
    assert not low, low
    assert not browsing.console_errors
