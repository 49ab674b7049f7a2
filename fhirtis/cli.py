"""The ``fhirtis`` command line."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from fhirtis import __version__
from fhirtis.calculator import CalculatorInputError, calculate, parse_input, result_record
from fhirtis.clinical.policy import Population
from fhirtis.fhir.outcome import InputError, operation_outcome
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.jsonout import dumps
from fhirtis.pipeline import Options, evaluate_bundle_file
from fhirtis.remote import PatientRun, RunStatus, run_patient
from fhirtis.report import print_failure, print_patient, print_run, run_record
from fhirtis.settings import Settings, load_settings
from fhirtis.summary import patient_summary

app = typer.Typer(
    name="fhirtis",
    help="Myositis Total Improvement Score and IVIG safety over HL7 FHIR R4.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fhirtis {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """fhirtis: measure response (TIS) and watch IVIG clot risk from FHIR data."""


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def _fmt(value: Decimal | None) -> str:
    return "—" if value is None else format(value.normalize(), "f")


@app.command()
def calc(
    path: Annotated[str, typer.Argument(help="JSON input file, or - for standard input.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Compute the ACR/EULAR Total Improvement Score from baseline and follow-up values,
    like the IMACS web calculators."""
    err = Console(stderr=True)
    try:
        raw = _read(path)
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
        score = _fmt(m["score"]) if m["score"] is not None else f"missing ({m['missing']})"
        table.add_row(
            name,
            m["instrument"] or "—",
            _fmt(m["baseline"]),
            _fmt(m["followup"]),
            _fmt(m["percent_improvement"]),
            score,
        )
    out.print(table)
    if record["partial"]:
        possible = " or ".join(record["possible_categories"])
        category = record["category"] or f"unknown ({possible})"
        out.print(
            f"TIS: partial [{_fmt(record['tis_lower'])}, {_fmt(record['tis_upper'])}] — "
            f"missing: {', '.join(record['missing_measures'])}; category: {category}",
            markup=False,
        )
    else:
        out.print(f"TIS: {_fmt(record['tis'])}; category: {record['category']}", markup=False)
    for note in record["notes"]:
        out.print(f"{note['severity']}: {note['message']}", markup=False)


def _collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.glob("*.json")))
        else:
            files.append(p)
    return files


@app.command()
def evaluate(
    paths: Annotated[
        list[Path], typer.Argument(help="Patient Bundle files (one patient each), or folders.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write each patient's transaction Bundle of derived resources here."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    population: Annotated[
        Population | None, typer.Option(help="Override adult/juvenile criteria.")
    ] = None,
    baseline_date: Annotated[
        str | None, typer.Option(help="Use the assessment on this date (YYYY-MM-DD) as baseline.")
    ] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="Settings file (TOML or JSON).")
    ] = None,
) -> None:
    """Evaluate patient Bundles offline: TIS per assessment, deterioration, IVIG cycles and
    rates, thromboembolism risk and events. Exit 0 when all were evaluated, 1 when some inputs
    had errors (reported), 2 for bad usage."""
    err = Console(stderr=True)
    try:
        settings = load_settings(settings_file)
        baseline = date.fromisoformat(baseline_date) if baseline_date else None
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"fhirtis evaluate: {exc}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    files = _collect(paths)
    missing = [f for f in files if not f.is_file()]
    if missing or not files:
        err.print(
            f"fhirtis evaluate: no such file: {missing[0] if missing else paths[0]}", markup=False
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    options = Options(population=population, baseline_day=baseline)
    summaries: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for file in files:
        try:
            result = evaluate_bundle_file(file, settings, options)
        except InputError as exc:
            failures.append({"file": str(file), "outcome": operation_outcome(exc.issues)})
            continue
        summary = patient_summary(result.patient_ref, result.evaluation, result.issues)
        summary["file"] = str(file)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            plan = result.plan()
            name = result.patient_ref.replace("/", "-") + ".transaction.json"
            if plan.bundle is not None:
                (out / name).write_bytes(
                    orjson.dumps(plan.bundle, option=orjson.OPT_INDENT_2) + b"\n"
                )
                summary["output"] = str(out / name)
        summaries.append(summary)
    partial_inputs = any(
        i["severity"] in {"error", "fatal"} for s in summaries for i in s["issues"]
    )
    if as_json:
        sys.stdout.write(dumps({"results": summaries, "errors": failures}) + "\n")
    else:
        for summary in summaries:
            print_patient(Console(), summary)
        for failure in failures:
            print_failure(Console(), failure)
    if failures or partial_inputs:
        raise typer.Exit(1)


@app.command()
def run(
    patient: Annotated[list[str], typer.Option("--patient", help="Patient id (repeatable).")],
    server: Annotated[
        str | None, typer.Option("--server", help="FHIR base URL (else FHIRTIS_FHIR__BASE_URL).")
    ] = None,
    write: Annotated[
        bool, typer.Option("--write/--dry-run", help="Write back, or only show the plan.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    population: Annotated[
        Population | None, typer.Option(help="Override adult/juvenile criteria.")
    ] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="Settings file (TOML or JSON).")
    ] = None,
) -> None:
    """Evaluate patients on a FHIR server. Dry run by default: prints the plan (create /
    update / unchanged per derived resource). With --write, writes back idempotently.
    Exit 0 when every patient is done, 1 when some are incomplete (reported)."""
    err = Console(stderr=True)
    try:
        settings = load_settings(settings_file)
        fhir = settings.fhir
        if server is not None:
            fhir = (
                FhirClientConfig(base_url=server)
                if fhir is None
                else fhir.model_copy(
                    update={"base_url": FhirClientConfig(base_url=server).base_url}
                )
            )
        if fhir is None:
            raise ValueError("no FHIR server: give --server or FHIRTIS_FHIR__BASE_URL")
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"fhirtis run: {exc}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    options = Options(population=population)
    runs = asyncio.run(_run_all(fhir, patient, settings, options, write))
    records = [run_record(r) for r in runs]
    if as_json:
        sys.stdout.write(dumps({"runs": records}) + "\n")
    else:
        for record in records:
            print_run(Console(), record)
    if any(r.status in {RunStatus.FAILED, RunStatus.NOT_FOUND} for r in runs):
        raise typer.Exit(1)


async def _run_all(
    fhir: FhirClientConfig, patients: list[str], settings: Settings, options: Options, write: bool
) -> list[PatientRun]:
    async with FhirClient(fhir) as client:
        return list(
            await asyncio.gather(
                *(run_patient(client, p, settings, options, write=write) for p in patients)
            )
        )


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface (default: settings, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings, 8080).")] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="Settings file (TOML or JSON).")
    ] = None,
) -> None:
    """Run the HTTP service: FHIR operations, CDS Hooks and the clinician's page (uvicorn)."""
    import uvicorn  # noqa: PLC0415 - only the service needs it

    from fhirtis.api.app import create_app  # noqa: PLC0415

    try:
        settings = load_settings(settings_file)
        application = create_app(settings)
    except (ValueError, FileNotFoundError) as exc:
        Console(stderr=True).print(f"fhirtis serve: {exc}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    uvicorn.run(
        application,
        host=host or settings.service.host,
        port=port or settings.service.port,
        log_level="info",
        access_log=False,  # access lines carry query strings; fhirtis logs ids and counts itself
    )


@app.command()
def cohort(
    ndjson: Annotated[
        Path | None, typer.Option("--ndjson", help="A folder of NDJSON files (a Bulk export).")
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="A FHIR Group id: export it with Bulk Data.")
    ] = None,
    patients: Annotated[
        str | None, typer.Option("--patients", help="Patient ids, comma-separated.")
    ] = None,
    patient_file: Annotated[
        Path | None, typer.Option("--patient-file", help="A file of patient ids, one a line.")
    ] = None,
    server: Annotated[str | None, typer.Option("--server", help="FHIR base URL.")] = None,
    write: Annotated[bool, typer.Option("--write/--dry-run", help="Write back.")] = False,
    ledger: Annotated[Path, typer.Option(help="The resumable ledger (SQLite).")] = Path(
        "fhirtis-ledger.sqlite"
    ),
    work_dir: Annotated[Path, typer.Option(help="Where NDJSON is grouped on disk.")] = Path(
        ".fhirtis-work"
    ),
    engine: Annotated[str, typer.Option(help="local, or dask (a Dask cluster).")] = "local",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a local cluster).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256)] = 8,
    max_rate: Annotated[
        float | None, typer.Option(help="Never send more than this many requests per second.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Bulk _since (default: the ledger's last run).")
    ] = None,
    summaries: Annotated[
        Path | None, typer.Option(help="Write every patient's summary (NDJSON) here.")
    ] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="Settings file (TOML or JSON).")
    ] = None,
) -> None:
    """Evaluate a cohort: resumable (a ledger), bounded concurrency, optional Dask engine.
    Exit 0 when every patient is done, 1 when some failed (listed), 2 for bad usage."""
    from fhirtis import cohort as cohort_mod  # noqa: PLC0415 - registry runs only

    err = Console(stderr=True)
    sources = [x for x in (ndjson, group, patients, patient_file) if x is not None]
    if len(sources) != 1 or engine not in {"local", "dask"}:
        err.print(
            "fhirtis cohort: give exactly one of --ndjson, --group, --patients, "
            "--patient-file; --engine local or dask"
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        settings = load_settings(settings_file)
        fhir = _fhir_config(settings, server)
        if (write or group or patients or patient_file) and fhir is None:
            raise ValueError("a FHIR server is needed: give --server or FHIRTIS_FHIR__BASE_URL")
        ids: list[str] = []
        if patients:
            ids = [p.strip() for p in patients.split(",") if p.strip()]
        if patient_file:
            ids = [line.strip() for line in patient_file.read_text().splitlines() if line.strip()]
        if ndjson is not None and not ndjson.is_dir():
            raise ValueError(f"{ndjson} is not a folder")
        if fhir is not None:
            fhir = fhir.model_copy(
                update={"concurrency": concurrency, "max_requests_per_second": max_rate}
            )
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"fhirtis cohort: {exc}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    options = cohort_mod.CohortOptions(
        write=write,
        concurrency=concurrency,
        ledger=ledger,
        work_dir=work_dir,
        engine=engine,
        scheduler=scheduler,
        progress=progress,
        since=since,
    )
    result = asyncio.run(
        cohort_mod.run_cohort(settings, options, fhir, ndjson=ndjson, group=group, ids=ids)
    )
    if summaries is not None:
        from fhirtis.ledger import Ledger  # noqa: PLC0415

        with Ledger(ledger) as book, summaries.open("wb") as out:
            for record in book.summaries():
                out.write(orjson.dumps(record) + b"\n")
    console = Console()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.statuses.items())) or "none"
    console.print(
        f"{result.patients} patients: {counts}; skipped (unchanged since the ledger) "
        f"{result.skipped}; input problems {result.problems}",
        markup=False,
    )
    for patient_ref, error in result.failed:
        console.print(f"  incomplete: {patient_ref}: {error}", markup=False)
    if result.failed:
        raise typer.Exit(1)


@app.command()
def report(
    path: Annotated[
        Path,
        typer.Argument(
            help="Summaries: `fhirtis evaluate --json` output, or the NDJSON of "
            "`fhirtis cohort --summaries`."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write patients.csv, summary.json and PNG plots.")
    ] = None,
    week: Annotated[
        int | None, typer.Option(help="Also report response at this week after baseline.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise a cohort like the ProDERM reports: response categories and responders, confirmed
    deteriorations, IVIG cycles and dose, TEEs per patient and per 100 cycles, TEE by maximum
    infusion rate, risk factors."""
    from fhirtis import cohort_report  # noqa: PLC0415 - reports only (matplotlib)

    err = Console(stderr=True)
    try:
        records = cohort_report.load_summaries(path)
        built = cohort_report.build_report(records, week=week)
    except (cohort_report.ReportInputError, OSError) as exc:
        err.print(f"fhirtis report: {exc}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        sys.stdout.write(dumps(built.as_record()) + "\n")
    else:
        cohort_report.print_report(Console(), built)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        cohort_report.write_csv(built, out / "patients.csv")
        cohort_report.write_json(built, out / "summary.json")
        for png in cohort_report.write_plots(built, out):
            Console(stderr=True).print(f"wrote {png}", markup=False)


def _fhir_config(settings: Settings, server: str | None) -> FhirClientConfig | None:
    fhir = settings.fhir
    if server is None:
        return fhir
    base = FhirClientConfig(base_url=server)
    return base if fhir is None else fhir.model_copy(update={"base_url": base.base_url})


def main() -> None:
    # httpx logs every request URL at INFO; fhirtis logs what it does itself (ids and counts).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app()
