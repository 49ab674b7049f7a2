"""The cohort report's plots (matplotlib, Agg, no pyplot and no display)."""

from __future__ import annotations

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
_SINGLE: dict[str, Any] = {
    "marker": "o",
    "markersize": 5.5,
    "markerfacecolor": "white",
    "markeredgewidth": 1.2,
    "alpha": 0.85,
}
_BIN = 5


def _populations(report: Report) -> list[Population]:
    present = [p for p in (Population.ADULT, Population.JUVENILE) if report.population_count(p)]
    return present or [Population.ADULT]


NO_FOLLOWUP = "no patient has a follow-up assessment"


def _without_followup(report: Report, population: str) -> int:
    """Patients of the population with no follow-up assessment (no baseline, or no visit after
    it): not evaluable, in no category, drawn nowhere; each figure says how many."""
    return sum(1 for r in report.rows if r.population == population and r.last_date is None)


def _without_text(n: int) -> str:
    return f"{n} without a follow-up"


def _histogram(ax: Axes, report: Report, population: Population) -> None:
    """Last-visit TIS of one population, coloured by category, against its own thresholds."""
    n_bins = 100 // _BIN
    counts = {c: [0] * n_bins for c in CATEGORIES}
    complete = partial = 0
    for row in report.rows:
        if row.population != population.value:
            continue
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
    ax.set_ylim(0, top * 1.25)
    colour = _POP_COLOURS[population.value]
    for t, name in zip(THRESHOLDS[population], ("minimal", "moderate", "major"), strict=True):
        ax.axvline(float(t), color=colour, linestyle="--", linewidth=1.2, gid=f"threshold-{name}")
        ax.text(
            float(t) + 0.8,
            top * 1.22,
            f"{name}\n≥ {number_text(t)}",
            fontsize=8,
            va="top",
            ha="left",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.5},
        )
    ax.set_xlim(0, 100)
    ax.set_xticks(range(0, 101, 10))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("TIS at last follow-up (bins of 5; left edge included)")
    ax.set_ylabel("patients")
    limits = "/".join(number_text(t) for t in THRESHOLDS[population])
    without = _without_followup(report, population.value)
    ax.set_title(
        f"{population.value} (thresholds {limits}): n={complete} complete, "
        f"{partial} partial TIS not shown as a number"
        + (f", {_without_text(without)}" if without else ""),
        fontsize=10,
    )


def _plot_categories(report: Report) -> Figure:
    pops_present = _populations(report)
    fig = Figure(figsize=(12, 4.2 * len(pops_present) + 1), layout="constrained")
    grid = fig.add_gridspec(len(pops_present), 2, width_ratios=(2.3, 1))
    for i, population in enumerate(pops_present):
        ax = fig.add_subplot(grid[i, 0])
        ax.set_gid(f"tis-{population.value}")
        _histogram(ax, report, population)
    bx = fig.add_subplot(grid[:, 1])
    bx.set_gid("categories")
    handles: list[Any] = [Patch(color=COLOURS[c], label=c) for c in CATEGORIES]
    handles += [
        Line2D([], [], color=_POP_COLOURS[p.value], linestyle="--", label=f"{p.value} thresholds")
        for p in pops_present
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    _category_shares(bx, report)
    return fig


def _category_shares(bx: Axes, report: Report) -> None:
    """Each population's last-visit categories as shares of its evaluable patients (100 % a
    bar, each segment labelled with its count), so that a small population beside a large one
    stays readable; the tick label says how many are evaluable and how many have no follow-up."""
    pops = [(name, n) for name, n in (("adult", report.adult), ("juvenile", report.juvenile)) if n]
    counts = {
        name: [
            sum(1 for r in report.rows if r.population == name and r.last_category == c)
            for c in CATEGORY_COLUMNS
        ]
        for name, _ in pops
    }
    labels = []
    for name, n in pops:
        evaluable, without = sum(counts[name]), _without_followup(report, name)
        text = f"{name}\nn={evaluable} evaluable" if without else f"{name}\n(n={n})"
        labels.append(text + (f"\n{_without_text(without)}" if without else ""))
    base = [0.0] * len(pops)
    for k, c in enumerate(CATEGORY_COLUMNS):
        heights = [
            100 * counts[name][k] / sum(counts[name]) if sum(counts[name]) else 0.0
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
        for rect, h, b, (name, _) in zip(bars, heights, base, pops, strict=True):
            if counts[name][k] and h >= 3:
                bx.text(
                    rect.get_x() + rect.get_width() / 2,
                    b + h / 2,
                    str(counts[name][k]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if c in {"moderate", "major"} else "black",
                )
        base = [b + h for b, h in zip(base, heights, strict=True)]
    bx.set_ylabel("% of evaluable patients (count in each segment)")
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
    bx.set_ylim(0, 130)
    bx.set_yticks(range(0, 101, 20))
    if not pops:
        bx.set_xticks([])
        bx.text(0.5, 0.5, "no patients", transform=bx.transAxes, ha="center", va="center")
    elif not any(sum(v) for v in counts.values()):
        bx.text(0.5, 0.5, NO_FOLLOWUP, transform=bx.transAxes, ha="center", va="center",
                fontsize=9)  # fmt: skip


def _trajectories(ax: Axes, report: Report, population: Population, max_weeks: float) -> None:
    """One population's TIS over time, on the category bands of its own thresholds."""
    minimal, moderate, major = (float(t) for t in THRESHOLDS[population])
    bands = (
        (0.0, minimal, "none", f"none (<{minimal:g})"),
        (minimal, moderate, "minimal", f"minimal ({minimal:g}–<{moderate:g})"),
        (moderate, major, "moderate", f"moderate ({moderate:g}–<{major:g})"),
        (major, 100.0, "major", f"major (≥{major:g})"),
    )
    for low, high, c, label in bands:
        ax.axhspan(low, high, color=COLOURS[c], alpha=0.22, linewidth=0, gid=f"band-{c}")
        ax.text(max_weeks * 1.025, (low + high) / 2, label, fontsize=8, va="center", ha="left")
    colour = _POP_COLOURS[population.value]
    mine = [t for t in report.trajectories if t.population == population.value]
    singles = 0
    for t in mine:
        xs = [float(pt.weeks) for pt in t.points if not pt.partial]
        ys = [float(pt.lower) for pt in t.points if not pt.partial]
        if len(xs) == 1:
            # one complete TIS: no line to draw, so a marker of its own (a 1.5-point dot at 35 %
            # was lost among the lines' joints, or invisible alone), above the lines
            singles += 1
            ax.plot(xs, ys, linestyle="none", **_SINGLE, markeredgecolor=colour, zorder=3,
                    clip_on=False)  # fmt: skip
            continue
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
    without = _without_followup(report, population.value)
    n_text = f"n={len(mine)}" + (f"; {_without_text(without)}" if without else "")
    handles: list[Any] = [
        Line2D([], [], color=colour, linewidth=1.2, label=f"{population.value} ({n_text})"),
        Line2D([], [], color="grey", linewidth=0, marker="|", markersize=12,
               label="partial TIS: interval [lower, upper]"),
    ]  # fmt: skip
    if singles:
        handles.append(
            Line2D([], [], linestyle="none", **_SINGLE, markeredgecolor=colour,
                   label=f"one complete TIS, no line ({count_text(singles, 'patient')})"),
        )  # fmt: skip
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    if not mine:
        ax.text(0.5, 0.5, NO_FOLLOWUP, transform=ax.transAxes, ha="center", va="center",
                fontsize=9)  # fmt: skip
    ax.set_xlim(0, max_weeks * 1.2)
    ax.set_ylim(0, 100)
    ax.set_xlabel("weeks since baseline")
    ax.set_ylabel("Total Improvement Score")
    limits = "/".join(f"{float(t):g}" for t in THRESHOLDS[population])
    ax.set_title(f"TIS trajectories, {population.value} (bands: {limits})", fontsize=10)


def _plot_trajectories(report: Report) -> Figure:
    pops = _populations(report)
    fig = Figure(figsize=(11, 4.6 * len(pops)), layout="constrained")
    axes = fig.subplots(len(pops), 1, squeeze=False)
    max_weeks = max((float(pt.weeks) for t in report.trajectories for pt in t.points), default=1.0)
    for ax, population in zip(axes[:, 0], pops, strict=True):
        ax.set_gid(f"trajectories-{population.value}")
        _trajectories(ax, report, population, max_weeks or 1.0)
    return fig


def _plot_tee(report: Report) -> Figure:
    """TEE per 100 cycles by rate stratum. Readable when one stratum holds nearly all cycles:
    each stratum's counts are in its tick label (not floating above a bar of any height), the
    y axis is set by the confidence intervals, and a second panel shows the cycles themselves
    on a log scale, so a stratum of 10 cycles beside one of 10,000 stays visible."""
    fig = Figure(figsize=(11, 5.4), layout="constrained")
    ax, cx = fig.subplots(1, 2, width_ratios=(1.6, 1))
    ax.set_gid("tee-rate")
    cx.set_gid("tee-cycles")
    tee = report.tee
    strata = tee.strata
    colours = ["#4292c6", "#cb181d", "#969696"][: len(strata)]
    labels = [
        f"{s.label}\n{s.events} TEE / {s.cycles} cycle{'' if s.cycles == 1 else 's'}"
        for s in strata
    ]
    heights = [float(s.per_100_cycles) if s.per_100_cycles is not None else 0.0 for s in strata]
    bars = ax.bar(labels, heights, color=colours, width=0.55)
    tops = list(heights)
    for i, (rect, s) in enumerate(zip(bars, strata, strict=True)):
        ci = s.ci95_per_100
        x = rect.get_x() + rect.get_width() / 2
        if ci is not None:
            ax.errorbar(
                x,
                heights[i],
                yerr=[[max(0.0, heights[i] - ci[0])], [max(0.0, ci[1] - heights[i])]],
                color="black",
                capsize=6,
                linewidth=1.2,
            )
            tops[i] = ci[1]
        text = "no cycles" if s.per_100_cycles is None else f"{rate_text(s.per_100_cycles)}"
        if ci is not None:
            text += f"\n({ci[0]:.2f}–{ci[1]:.2f})"
        ax.annotate(
            text,
            (x, tops[i]),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=9,
        )
    top = max(tops, default=0.0) or 1.0
    ax.set_ylim(0, top * 1.35)
    ax.set_ylabel("temporally associated TEE per 100 infusion cycles")
    ax.set_xlabel("maximum infusion rate of the cycle (error bars: Wilson 95% CI)")
    ax.set_title(
        f"TEE by infusion rate: {count_text(tee.events, 'event')} in "
        f"{count_text(report.ivig.total_cycles, 'cycle')} "
        f"({rate_text(tee.per_100_cycles)} per 100)",
        fontsize=10,
    )
    if tee.events_in_several_strata:
        ax.text(0.99, 0.98, f"{tee.events_in_several_strata} event(s) counted in two strata",
                transform=ax.transAxes, ha="right", va="top", fontsize=8)  # fmt: skip
    cycles = [s.cycles for s in strata]
    cx.barh([s.label for s in strata], cycles, color=colours)
    if any(cycles):
        cx.set_xscale("log")
        cx.set_xlim(0.8, max(cycles) * 3)
    for y, n in enumerate(cycles):
        cx.annotate(f"{n}", (max(n, 1), y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=9)  # fmt: skip
    cx.invert_yaxis()
    cx.set_xlabel("cycles (log scale)" if any(cycles) else "cycles")
    if not any(cycles):
        cx.set_xticks([])
        cx.text(0.5, 0.5, "no infusion cycles", transform=cx.transAxes, ha="center",
                va="center", fontsize=9)  # fmt: skip
    cx.set_title("cycles per stratum", fontsize=10)
    return fig


def figures(report: Report) -> dict[str, Figure]:
    """The report's figures by file name (:data:`PLOT_FILES`), not yet written."""
    return {
        "tis_by_category.png": _plot_categories(report),
        "tis_trajectories.png": _plot_trajectories(report),
        "tee_by_infusion_rate.png": _plot_tee(report),
    }


PLOT_FILES: tuple[str, ...] = (
    "tis_by_category.png",
    "tis_trajectories.png",
    "tee_by_infusion_rate.png",
)


def write_plots(report: Report, directory: str | Path) -> list[Path]:
    """Write the three PNGs (:data:`PLOT_FILES`) into ``directory``; returns their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures(report).items():
        fig.savefig(d / name, dpi=110)
        paths.append(d / name)
    return paths


def count_text(n: int, noun: str) -> str:
    """``n`` and ``noun``, in the plural unless ``n`` is 1 ("1 event", "0 events")."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
