"""``fhirtis evaluate`` (Bundles on disk) and ``fhirtis run`` (patients on a FHIR server)."""

from __future__ import annotations

import asyncio
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from fhirtis.cli._common import (
    check_settings,
    err_console,
    fhir_config,
    output_folder,
    patient_ids,
    problem_text,
    report_console,
    settings_for_server,
    stopping_on_sigterm,
    usage_error,
    write_private,
)
from fhirtis.cli.render import print_failure, print_patient, print_run, run_record
from fhirtis.clinical.policy import Population
from fhirtis.fhir.outcome import InputError, Issue, operation_outcome
from fhirtis.fhir.validation import enable as enable_validation
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import Options, evaluate_bundle_bytes, evaluate_bundle_file
from fhirtis.pipeline.records import patient_summary
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings, load_settings

STDIN = Path("-")
"""The path that names standard input, as Unix tools take it."""


def _collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p == STDIN:
            files.append(p)
        elif p.is_dir():
            files.extend(sorted(p.glob("*.json")))
        else:
            files.append(p)
    return files


def _output_name(patient_ref: str, file: Path, taken: set[str]) -> str:
    """``Patient-<id>.transaction.json``; a second input of the same patient in one run gets
    its file's name too (``Patient-<id>.<file>.transaction.json``), so neither is lost."""
    stem = patient_ref.replace("/", "-")
    name = f"{stem}.transaction.json"
    n = 1
    while name in taken:
        name = f"{stem}.{file.stem}{'' if n == 1 else f'-{n}'}.transaction.json"
        n += 1
    return name


def evaluate(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Patient Bundle files (one patient each), or folders; - reads standard input."
        ),
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
    validate: Annotated[
        bool,
        typer.Option("--validate", help="Validate every derived resource with the R4B models."),
    ] = False,
) -> None:
    """Evaluate patient Bundles on disk (TIS, deterioration, IVIG, thromboembolism).

    TIS per assessment, deterioration, IVIG cycles and rates, thromboembolism risk and events.
    Exit 0 when all were evaluated, 1 when some inputs had errors (reported), 2 for bad
    usage."""
    try:
        settings = load_settings(settings_file)
        check_settings(settings)
    except (ValueError, FileNotFoundError) as exc:
        raise usage_error("evaluate", problem_text(exc)) from None
    try:
        baseline = date.fromisoformat(baseline_date) if baseline_date else None
    except ValueError:
        raise usage_error(
            "evaluate", f"--baseline-date: {baseline_date!r} is not a date (YYYY-MM-DD)"
        ) from None
    files = _collect(paths)
    if files.count(STDIN) > 1:
        raise usage_error("evaluate", "standard input (-) can be given once")
    missing = [f for f in files if f != STDIN and not f.is_file()]
    if missing:
        raise usage_error("evaluate", f"no such file: {missing[0]}")
    if not files:
        raise usage_error("evaluate", f"no *.json file in {', '.join(map(str, paths))}")
    if out is not None:
        try:
            output_folder(out)
        except ValueError as exc:
            raise usage_error("evaluate", f"--out {exc}") from None
    if validate:
        enable_validation()
    options = Options(population=population, baseline_day=baseline)
    summaries: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    written: set[str] = set()
    for file in files:
        try:
            if file == STDIN:
                result = evaluate_bundle_bytes(
                    sys.stdin.buffer.read(), "(stdin)", settings, options
                )
            else:
                result = evaluate_bundle_file(file, settings, options)
        except InputError as exc:
            failures.append({"file": str(file), "outcome": operation_outcome(exc.issues)})
            continue
        except OSError as exc:  # permission denied, an I/O error: this input, not the run
            why = f"cannot read the file: {exc.strerror or exc}"
            issue = Issue("fatal", "exception", why, file.name)
            failures.append({"file": str(file), "outcome": operation_outcome([issue])})
            continue
        summary = patient_summary(result.patient_ref, result.evaluation, result.issues)
        summary["file"] = str(file)
        if out is not None:
            plan = result.plan()
            name = _output_name(result.patient_ref, file, written)
            if plan.bundle is not None:
                written.add(name)
                data = orjson.dumps(plan.bundle, option=orjson.OPT_INDENT_2) + b"\n"
                try:
                    write_private(out / name, data)
                except OSError as exc:  # a full disk, the folder removed meanwhile
                    err_console().print(
                        f"fhirtis evaluate: cannot write {out / name}: {exc.strerror or exc}",
                        markup=False,
                        highlight=False,
                    )
                    raise typer.Exit(1) from None
                summary["output"] = str(out / name)
        summaries.append(summary)
    partial_inputs = any(
        i["severity"] in {"error", "fatal"} for s in summaries for i in s["issues"]
    )
    if as_json:
        sys.stdout.write(dumps({"results": summaries, "errors": failures}) + "\n")
    else:
        for summary in summaries:
            print_patient(report_console(), summary)
        for failure in failures:
            print_failure(report_console(), failure)
    if failures or partial_inputs:
        raise typer.Exit(1)


def run(
    patient: Annotated[
        list[str], typer.Option("--patient", help="Patient id or Patient/id (repeatable).")
    ],
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
    """Evaluate patients on a FHIR server (a dry run unless --write).

    Dry run by default: prints the plan (create / update / unchanged per derived resource).
    With --write, writes back idempotently. Exit 0 when every patient is done (a read the
    server said was partial is done, with an incomplete warning), 1 when some patient failed
    or was not found (reported), 2 for bad usage, 143 when stopped by SIGTERM."""
    try:
        ids = patient_ids(patient)
        settings = settings_for_server(settings_file, server)
        check_settings(settings)
        fhir = fhir_config(settings, server)
        if fhir is None:
            raise ValueError("no FHIR server: give --server or FHIRTIS_FHIR__BASE_URL")
    except (ValueError, FileNotFoundError) as exc:
        raise usage_error("run", problem_text(exc)) from None
    options = Options(population=population)
    with stopping_on_sigterm("run"):
        runs = asyncio.run(_run_all(fhir, ids, settings, options, write))
    records = [run_record(r) for r in runs]
    if as_json:
        sys.stdout.write(dumps({"runs": records}) + "\n")
    else:
        for record in records:
            print_run(report_console(), record)
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
