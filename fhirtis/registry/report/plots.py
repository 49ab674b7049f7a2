"""The cohort report's plots (matplotlib, Agg, no pyplot and no display)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from fhirtis.clinical.policy import Population
from fhirtis.clinical.tis import THRESHOLDS
from fhirtis.registry.report.model import CATEGORIES, CATEGORY_COLUMNS, UNDETERMINED, Report
from fhirtis.registry.report.stats import number_text, rate_text

COLOURS: Mapping[str, str] = {
    "none": "#b8b8b8",
    "minimal": "#9ecae1",
    "moderate": "#4292c6",
    "major": "#08306b",
    UNDETERMINED: "#fdd49e",
}
_POP_COLOURS = {"adult": "#2b2b2b", "juvenile": "#d95f02"}
_BIN = 5


def _plot_categories(report: Report, path: Path) -> None:
    fig = Figure(figsize=(12, 5.2), layout="constrained")
    ax, bx = fig.subplots(1, 2, width_ratios=(2.3, 1))
    n_bins = 100 // _BIN
    counts = {c: [0] * n_bins for c in CATEGORIES}
    complete = partial = 0
    for row in report.rows:
        if row.last_tis is None or row.last_category not in counts:
            partial += row.last_partial is True
            continue
        complete += 1
        i = min(int(row.last_tis // _BIN), n_bins - 1)
        counts[row.last_category][i] += 1
    lefts = [i * _BIN for i in range(n_bins)]
    bottom = [0] * n_bins
    for c in CATEGORIES:
        ax.bar(
            lefts,
            counts[c],
            width=_BIN,
            bottom=bottom,
            align="edge",
            color=COLOURS[c],
            edgecolor="white",
            linewidth=0.6,
            label=c,
        )
        bottom = [b + h for b, h in zip(bottom, counts[c], strict=True)]
    top = max(bottom, default=0) or 1
    ax.set_ylim(0, top * 1.2)
    handles: list[Any] = [Patch(color=COLOURS[c], label=c) for c in CATEGORIES]
    for t, name in zip(THRESHOLDS[Population.ADULT], ("minimal", "moderate", "major"), strict=True):
        ax.axvline(float(t), color="black", linestyle="--", linewidth=1.2)
        ax.text(
            float(t) + 0.8,
            top * 1.17,
            f"adult {name}\n≥ {number_text(t)}",
            fontsize=8,
            va="top",
            ha="left",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.5},
        )
    handles.append(Line2D([], [], color="black", linestyle="--", label="adult thresholds"))
    if report.juvenile:
        for t in THRESHOLDS[Population.JUVENILE]:
            ax.axvline(float(t), color=_POP_COLOURS["juvenile"], linestyle=":", linewidth=1.2)
        handles.append(
            Line2D(
                [],
                [],
                color=_POP_COLOURS["juvenile"],
                linestyle=":",
                label="juvenile thresholds (30/45/70)",
            )
        )
    ax.set_xlim(0, 100)
    ax.set_xticks(range(0, 101, 10))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Total Improvement Score at last follow-up (bins of 5; left edge included)")
    ax.set_ylabel("patients")
    ax.set_title(
        f"Last-visit TIS, coloured by each patient's category (n={complete} complete; "
        f"{partial} partial TIS not shown as a number)",
        fontsize=10,
    )
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncol=len(handles),
        fontsize=8,
        frameon=False,
    )

    pops = [("adult", report.adult), ("juvenile", report.juvenile)]
    pops = [(name, n) for name, n in pops if n]
    labels = [f"{name}\n(n={n})" for name, n in pops]
    base = [0] * len(pops)
    for c in CATEGORY_COLUMNS:
        heights = [
            sum(1 for r in report.rows if r.population == name and r.last_category == c)
            for name, _ in pops
        ]
        bars = bx.bar(
            labels,
            heights,
            bottom=base,
            color=COLOURS[c],
            edgecolor="white",
            label=c,
            hatch="//" if c == UNDETERMINED else None,
        )
        for rect, h, b in zip(bars, heights, base, strict=True):
            if h >= 0.035 * max(n for _, n in pops):
                bx.text(
                    rect.get_x() + rect.get_width() / 2,
                    b + h / 2,
                    str(h),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if c in {"moderate", "major"} else "black",
                )
        base = [b + h for b, h in zip(base, heights, strict=True)]
    bx.yaxis.set_major_locator(MaxNLocator(integer=True))
    bx.set_ylabel("patients")
    bx.set_title(
        f"Category at last follow-up\n(own thresholds; partial: {report.options.partial_policy})",
        fontsize=10,
    )
    bx.legend(
        handles=[
            Patch(
                facecolor=COLOURS[c],
                edgecolor="white",
                hatch="//" if c == UNDETERMINED else None,
                label=c,
            )
            for c in CATEGORY_COLUMNS
        ],
        fontsize=8,
        loc="upper right",
        framealpha=0.9,
    )
    bx.set_ylim(0, (max(base, default=0) or 1) * 1.3)
    if not pops:
        bx.set_xticks([])
        bx.text(0.5, 0.5, "no patients", transform=bx.transAxes, ha="center", va="center")
    fig.savefig(path, dpi=110)


def _plot_trajectories(report: Report, path: Path) -> None:
    fig = Figure(figsize=(11, 6), layout="constrained")
    ax: Axes = fig.subplots()
    minimal, moderate, major = (float(t) for t in THRESHOLDS[Population.ADULT])
    bands = (
        (0.0, minimal, "none", f"none (<{minimal:g})"),
        (minimal, moderate, "minimal", f"minimal ({minimal:g}–<{moderate:g})"),
        (moderate, major, "moderate", f"moderate ({moderate:g}–<{major:g})"),
        (major, 100.0, "major", f"major (≥{major:g})"),
    )
    max_weeks = max((float(pt.weeks) for t in report.trajectories for pt in t.points), default=1.0)
    for low, high, c, label in bands:
        ax.axhspan(low, high, color=COLOURS[c], alpha=0.22, linewidth=0)
        ax.text(max_weeks * 1.025, (low + high) / 2, label, fontsize=8, va="center", ha="left")
    counts = Counter(t.population for t in report.trajectories)
    for t in report.trajectories:
        colour = _POP_COLOURS.get(t.population, "black")
        xs = [float(pt.weeks) for pt in t.points if not pt.partial]
        ys = [float(pt.lower) for pt in t.points if not pt.partial]
        ax.plot(xs, ys, color=colour, linewidth=0.6, alpha=0.35, marker="o", markersize=1.5)
        for pt in t.points:
            if pt.partial:
                ax.vlines(
                    float(pt.weeks),
                    float(pt.lower),
                    float(pt.upper),
                    color=colour,
                    linewidth=0.8,
                    alpha=0.3,
                )
    handles: list[Any] = [
        Line2D([], [], color=_POP_COLOURS[p], linewidth=1.2, label=f"{p} (n={counts[p]})")
        for p in ("adult", "juvenile")
        if counts[p]
    ]
    handles.append(
        Line2D(
            [],
            [],
            color="grey",
            linewidth=0,
            marker="|",
            markersize=12,
            label="partial TIS: interval [lower, upper]",
        )
    )
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    ax.set_xlim(0, max_weeks * 1.2)
    ax.set_ylim(0, 100)
    ax.set_xlabel("weeks since baseline")
    ax.set_ylabel("Total Improvement Score")
    ax.set_title(
        "TIS trajectories per patient (bands: adult thresholds 20/40/60; juvenile criteria "
        "use 30/45/70)",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)


def _plot_tee(report: Report, path: Path) -> None:
    fig = Figure(figsize=(8, 5.4), layout="constrained")
    ax: Axes = fig.subplots()
    tee = report.tee
    strata = tee.strata
    labels = [s.label for s in strata]
    heights = [float(s.per_100_cycles) if s.per_100_cycles is not None else 0.0 for s in strata]
    colours = ["#4292c6", "#cb181d", "#969696"][: len(strata)]
    bars = ax.bar(labels, heights, color=colours, width=0.55)
    highs = [heights[i] for i in range(len(strata))]
    for i, (rect, s) in enumerate(zip(bars, strata, strict=True)):
        ci = s.ci95_per_100
        if ci is None:
            continue
        x = rect.get_x() + rect.get_width() / 2
        ax.errorbar(
            x,
            heights[i],
            yerr=[[heights[i] - ci[0]], [ci[1] - heights[i]]],
            color="black",
            capsize=6,
            linewidth=1.2,
        )
        highs[i] = ci[1]
    top = max(highs, default=0.0) or 1.0
    for rect, s, h in zip(bars, strata, highs, strict=True):
        ci = s.ci95_per_100
        text = (
            "no cycles"
            if s.per_100_cycles is None
            else f"{s.events} TEE / {s.cycles} cycle{'' if s.cycles == 1 else 's'}\n"
            f"= {rate_text(s.per_100_cycles)} per 100"
            + ("" if ci is None else f"\n95% CI {ci[0]:.2f}–{ci[1]:.2f}")
        )
        ax.text(
            rect.get_x() + rect.get_width() / 2,
            h + top * 0.02,
            text,
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_ylim(0, top * 1.3)
    ax.set_ylabel("temporally associated TEE per 100 infusion cycles")
    ax.set_xlabel("maximum infusion rate of the cycle (error bars: Wilson 95% CI)")
    ax.set_title(
        f"TEE by infusion rate: {tee.events} events in {report.ivig.total_cycles} cycles "
        f"({rate_text(tee.per_100_cycles)} per 100)",
        fontsize=10,
    )
    if tee.events_in_several_strata:
        ax.text(
            0.99,
            0.98,
            f"{tee.events_in_several_strata} event(s) counted in two strata",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
        )
    fig.savefig(path, dpi=110)


PLOT_FILES: tuple[str, ...] = (
    "tis_by_category.png",
    "tis_trajectories.png",
    "tee_by_infusion_rate.png",
)


def write_plots(report: Report, directory: str | Path) -> list[Path]:
    """Write the three PNGs (:data:`PLOT_FILES`) into ``directory``; returns their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / name for name in PLOT_FILES]
    _plot_categories(report, paths[0])
    _plot_trajectories(report, paths[1])
    _plot_tee(report, paths[2])
    return paths
