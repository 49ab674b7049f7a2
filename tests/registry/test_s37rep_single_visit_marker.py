"""A patient with one complete TIS is visible in the TIS trajectory plot.

Audit s37 (the registry report's PNGs as an analyst reads them): ``tis_trajectories.png`` drew
every patient as a line with 1.5-point markers at 35 % opacity. A patient with only one
follow-up (or one complete TIS beside partial ones) has no line: it was a faint dot of the same
size as the joints of other patients' lines, lost among them or invisible on its own, so the
plot showed fewer patients than its legend's ``n=`` said. Such a patient is now drawn as an
open marker of its own, above the lines, and the legend says what it is."""

from __future__ import annotations

from typing import Any

from matplotlib.lines import Line2D

from fhirtis.registry.report import build_report, figures
from tests.test_cohort_report import record, visit


def _axes(fig: Any, gid: str) -> Any:
    return next(ax for ax in fig.axes if ax.get_gid() == gid)


def _lines_at(ax: Any, weeks: float, tis: float) -> list[Line2D]:
    return [
        ln
        for ln in ax.get_lines()
        if list(map(float, ln.get_xdata())) == [weeks] and list(map(float, ln.get_ydata())) == [tis]
    ]


def _visible(ln: Line2D) -> bool:
    alpha = ln.get_alpha()
    return (
        ln.get_marker() not in ("", " ", "None", None)
        and ln.get_markersize() >= 5
        and (alpha is None or alpha >= 0.6)
    )


def test_a_patient_with_one_follow_up_is_a_visible_marker() -> None:
    records = [record(f"m{i}", [visit(4, 10 + 5 * i), visit(8, 20 + 5 * i)]) for i in range(3)]
    records.append(record("single", [visit(12, 47.5)]))
    fig = figures(build_report(records))["tis_trajectories.png"]
    ax = _axes(fig, "trajectories-adult")
    drawn = _lines_at(ax, 12.0, 47.5)
    assert drawn, "the single-visit patient is not drawn"
    assert any(_visible(ln) for ln in drawn), [
        (ln.get_marker(), ln.get_markersize(), ln.get_alpha()) for ln in drawn
    ]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("one complete TIS" in t for t in labels), labels


def test_one_complete_tis_beside_a_partial_one_is_a_marker_too() -> None:
    records = [record("p", [visit(4, lower=10, upper=30), visit(8, 35)])]
    ax = _axes(figures(build_report(records))["tis_trajectories.png"], "trajectories-adult")
    assert any(_visible(ln) for ln in _lines_at(ax, 8.0, 35.0))


def test_lines_stay_lines_and_no_marker_legend_without_a_single_point() -> None:
    """Control: patients with two or more complete TIS are thin lines, as before."""
    records = [record(f"m{i}", [visit(4, 10 + 5 * i), visit(8, 20 + 5 * i)]) for i in range(3)]
    ax = _axes(figures(build_report(records))["tis_trajectories.png"], "trajectories-adult")
    paths = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 2]
    assert len(paths) == 3 and all(ln.get_linewidth() < 1 for ln in paths)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert not any("one complete TIS" in t for t in labels), labels
