"""``fhirtis evaluate`` (Bundles on disk) and ``fhirtis run`` (patients on a FHIR server)."""

from __future__ import annotations

import asyncio
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from fhirtis.cli._common import EXIT_BAD_INPUT
from fhirtis.cli.render import print_failure, print_patient, print_run, run_record
from fhirtis.clinical.policy import Population
from fhirtis.fhir.outcome import InputError, operation_outcome
from fhirtis.fhir.validation import enable as enable_validation
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import Options, evaluate_bundle_file
from fhirtis.pipeline.records import patient_summary
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings, load_settings


def _collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.glob("*.json")))
        else:
            files.append(p)
    return files


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
    validate: Annotated[
        bool,
        typer.Option("--validate", help="Validate every derived resource with the R4B models."),
    ] = False,
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
    if validate:
        enable_validation()
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
