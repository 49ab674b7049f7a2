"""``fhirtis calc``: the IMACS calculator on a JSON document, without FHIR."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fhirtis.cli._common import EXIT_BAD_INPUT, fmt, read_input
from fhirtis.pipeline.calculator import CalculatorInputError, calculate, parse_input, result_record
from fhirtis.pipeline.jsonout import dumps


def calc(
    path: Annotated[str, typer.Argument(help="JSON input file, or - for standard input.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Compute the ACR/EULAR Total Improvement Score from baseline and follow-up values,
    like the IMACS web calculators."""
    err = Console(stderr=True)
    try:
        raw = read_input(path)
    except OSError as exc:
        err.print(f"fhirtis calc: cannot read {path}: {exc.strerror}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    try:
        result = calculate(parse_input(raw))
    except CalculatorInputError as exc:
        err.print("fhirtis calc: invalid input", markup=False)
        for where, what in exc.problems:
            err.print(f"  {where}: {what}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    record = result_record(result)
    if as_json:
        sys.stdout.write(dumps(record) + "\n")
        return
    _print_table(record)


def _print_table(record: dict[str, Any]) -> None:
    out = Console()
    table = Table(title=f"Total Improvement Score — {record['population']} criteria")
    for col in ("measure", "instrument", "baseline", "follow-up", "% improvement", "score"):
        table.add_column(col, justify="left" if col in {"measure", "instrument"} else "right")
    for name, m in record["measures"].items():
        score = fmt(m["score"]) if m["score"] is not None else f"missing ({m['missing']})"
        table.add_row(
            name,
            m["instrument"] or "—",
            fmt(m["baseline"]),
            fmt(m["followup"]),
            fmt(m["percent_improvement"]),
            score,
        )
    out.print(table)
    if record["partial"]:
        possible = " or ".join(record["possible_categories"])
        category = record["category"] or f"unknown ({possible})"
        out.print(
            f"TIS: partial [{fmt(record['tis_lower'])}, {fmt(record['tis_upper'])}] — "
            f"missing: {', '.join(record['missing_measures'])}; category: {category}",
            markup=False,
        )
    else:
        out.print(f"TIS: {fmt(record['tis'])}; category: {record['category']}", markup=False)
    for note in record["notes"]:
        out.print(f"{note['severity']}: {note['message']}", markup=False)
