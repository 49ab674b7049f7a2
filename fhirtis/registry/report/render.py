"""The cohort report as terminal tables, a CSV of one row per patient, and JSON."""

from __future__ import annotations

import csv
from dataclasses import astuple, fields
from datetime import date
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fhirtis.pipeline.jsonout import dumps
from fhirtis.registry.report.model import (
    CATEGORIES,
    OWN_TEE_HISTORY,
    UNDETERMINED,
    PatientRow,
    Report,
    ResponseSummary,
)
from fhirtis.registry.report.stats import Proportion, Spread, number_text, rate_text, round_half_up


def _pct(p: Proportion, *, ci: bool = False) -> str:
    return p.text(1, ci=ci)


def _response_table(r: ResponseSummary) -> Table:
    table = Table(title=f"Response at {r.label}", title_justify="left")
    table.add_column("")
    table.add_column("patients", justify="right")
    table.add_row("evaluable", str(r.evaluable))
    for reason, n in r.not_evaluable.items():
        table.add_row(f"not evaluable: {reason}", str(n))
    for c in CATEGORIES:
        table.add_row(f"  {c}", _pct(r.share(c)))
    table.add_row(f"  {UNDETERMINED} (partial TIS)", _pct(r.share(UNDETERMINED)))
    table.add_row(
        "partial TIS (all)",
        f"{r.partial} ({r.partial_categorised} in one category by their interval)",
    )
    table.add_row("responders (ProDERM)", _pct(r.responders, ci=True))
    table.add_row("non-responders", str(r.non_responders))
    table.add_row("responder status undetermined", str(r.responder_undetermined))
    table.add_row("confirmed deterioration by then", str(r.confirmed_deterioration))
    return table


def print_report(console: Console, report: Report) -> None:
    """The report as terminal tables."""
    console.rule("Cohort report")
    console.print(
        f"Patients: {report.patients} (adult {report.adult}, juvenile {report.juvenile}); "
        f"categories by each patient's own thresholds (adult 20/40/60, juvenile 30/45/70); "
        f"partial TIS: {report.options.partial_policy}",
        markup=False,
    )
    console.print(_response_table(report.last))
    if report.week is not None:
        console.print(_response_table(report.week))
    console.print(
        f"Confirmed deterioration (at any time): {_pct(report.confirmed_deterioration)}",
        markup=False,
    )

    ivig = report.ivig
    table = Table(title="IVIG exposure", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("patients exposed", _pct(ivig.exposed))
    table.add_row("cycles, total", str(ivig.total_cycles))
    table.add_row("cycles per patient, median (IQR)", _spread_text(ivig.cycles_per_patient))
    table.add_row("cumulative g, median (IQR)", _spread_text(ivig.cumulative_grams))
    table.add_row("  partial, excluded", str(ivig.cumulative_grams_partial))
    table.add_row("cumulative g/kg, median (IQR)", _spread_text(ivig.cumulative_g_per_kg))
    table.add_row("  partial, excluded", str(ivig.cumulative_g_per_kg_partial))
    console.print(table)

    tee = report.tee
    mean = tee.mean_events_per_exposed_patient
    table = Table(title="Thromboembolic events (temporally associated)", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("patients with ≥1 TEE", _pct(tee.patients_with_event, ci=True))
    unknown = f", {tee.early_unknown_events} unknown" if tee.early_unknown_events else ""
    table.add_row("events (early, ≤24 h)", f"{tee.events} ({tee.early_events}{unknown})")
    table.add_row(
        "events per exposed patient",
        "—" if mean is None else format(round_half_up(mean, 3), "f"),
    )
    table.add_row("events per 100 infusion cycles", rate_text(tee.per_100_cycles))
    for kind, n in tee.events_by_kind.items():
        table.add_row(f"  {kind}", str(n))
    table.add_row("rate findings (DetectedIssue)", str(tee.rate_findings))
    table.add_row("patients with a rate finding", _pct(tee.patients_with_rate_findings))
    table.add_row(
        "patients with ≥1 risk factor (at the last record)", _pct(tee.patients_with_risk_factor)
    )
    for factor, n in tee.risk_factors.items():
        if factor != OWN_TEE_HISTORY:
            table.add_row(f"  {factor}", str(n))
    own = tee.risk_factors.get(OWN_TEE_HISTORY)
    if own:
        table.add_row(
            "thrombosis history only from own associated TEE (not above)",
            str(own),
        )
    if tee.risk_factors_unassessed:
        table.add_row(
            "none found but not all assessable",
            str(tee.patients_none_found_some_unassessed),
        )
        for factor, n in tee.risk_factors_unassessed.items():
            table.add_row(f"  not assessable: {factor}", str(n))
    console.print(table)

    table = Table(title="TEE by maximum infusion rate of the cycle", title_justify="left")
    for col in ("stratum", "cycles", "events", "per 100 cycles", "95% CI (Wilson)"):
        table.add_column(col, justify="left" if col == "stratum" else "right")
    for s in tee.strata:
        ci = s.ci95_per_100
        table.add_row(
            s.label,
            str(s.cycles),
            str(s.events),
            rate_text(s.per_100_cycles),
            "—" if ci is None else f"{ci[0]:.2f}–{ci[1]:.2f}",
        )
    console.print(table)
    if tee.events_in_several_strata:
        console.print(
            f"{tee.events_in_several_strata} event(s) associated with cycles of two strata "
            "count in each.",
            markup=False,
        )
    if report.warnings:
        console.print(f"{len(report.warnings)} warning(s):", markup=False)
        for w in report.warnings[:20]:
            console.print(f"  {w}", markup=False)


def _spread_text(s: Spread | None) -> str:
    return "—" if s is None else s.text()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return number_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


CSV_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(PatientRow))


def write_csv(report: Report, path: str | Path) -> Path:
    """One row per patient (columns :data:`CSV_COLUMNS`); empty cell = none / unknown."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in report.rows:
            writer.writerow([_cell(v) for v in astuple(row)])
    return p


def write_json(report: Report, path: str | Path) -> Path:
    """The summary (:meth:`Report.as_record`) as JSON; rounded figures are marked by name."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(dumps(report.as_record()) + "\n", encoding="utf-8")
    return p
