"""``fhirtis calc``: the IMACS calculator on a JSON document, without FHIR."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from fhirtis.cli._common import EXIT_BAD_INPUT, err_console, fmt, read_input, report_console
from fhirtis.cli.render import print_table
from fhirtis.pipeline.calculator import CalculatorInputError, calculate, parse_input, result_record
from fhirtis.pipeline.jsonout import dumps


def calc(
    path: Annotated[str, typer.Argument(help="JSON input file, or - for standard input.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The ACR/EULAR Total Improvement Score of a JSON document (the IMACS calculators).

    Reads baseline and follow-up values from FILE (or standard input with -) and prints the
    TIS per measure, or one JSON object with --json. Exit 0, or 2 for bad input (each problem
    named with its field)."""
    err = err_console()
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
    out = report_console()
    rows = [
        [
            name,
            m["instrument"] or "—",
            fmt(m["baseline"]),
            fmt(m["followup"]),
            fmt(m["percent_improvement"]),
            "missing" if m["score"] is None else fmt(m["score"]),
        ]
        for name, m in record["measures"].items()
    ]
    columns = [("measure", False), ("instrument", False), ("baseline", True)]
    columns += [("follow-up", True), ("% improvement", True), ("score", True)]
    title = f"Total Improvement Score — {record['population']} criteria"
    print_table(out, title, columns, rows, left=False)
    for m in record["measures"].values():
        if m["score"] is None:
            out.print(f"{m['reason']} ({m['missing']})", markup=False, highlight=False)
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
