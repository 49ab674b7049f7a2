"""``fhirtis cohort`` and ``fhirtis report``: registry runs (need the ``[registry]`` extra)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from fhirtis.cli._common import (
    EXIT_BAD_INPUT,
    check_settings,
    err_console,
    fhir_config,
    part_path,
    patient_ids,
    problem_text,
    report_console,
    require_extra,
    resource_id,
    settings_for_server,
    stopping_on_sigterm,
)
from fhirtis.fhir.validation import enable as enable_validation
from fhirtis.pipeline.jsonout import dumps

if TYPE_CHECKING:
    from fhirtis.registry.report import Report


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
    work_dir: Annotated[
        Path, typer.Option(help="Where NDJSON is grouped by patient (removed after a run).")
    ] = Path(".fhirtis-work"),
    keep_work_dir: Annotated[
        bool, typer.Option("--keep-work-dir", help="Keep the work folder after the run.")
    ] = False,
    engine: Annotated[str, typer.Option(help="local, or dask (a Dask cluster).")] = "local",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a local cluster).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes of the local Dask cluster (default: CPUs)."),
    ] = None,
    validate: Annotated[
        bool,
        typer.Option("--validate", help="Validate every written resource with the R4B models."),
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=256,
            help="Requests to the FHIR server at once (default: FHIRTIS_FHIR__CONCURRENCY, 8).",
        ),
    ] = None,
    max_rate: Annotated[
        float | None,
        typer.Option(
            help="Never send more than this many requests per second (default: "
            "FHIRTIS_FHIR__MAX_REQUESTS_PER_SECOND, none)."
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Bulk _since (default: the ledger's last run).")
    ] = None,
    rest_types: Annotated[
        str | None,
        typer.Option(
            "--rest-types",
            help="With --group: resource types read per patient over REST, not exported "
            "(comma-separated; for a server whose Bulk export lacks them, e.g. "
            "MedicationAdministration). Types the export refuses are added by themselves.",
        ),
    ] = None,
    summaries: Annotated[
        Path | None, typer.Option(help="Write this run's patients' summaries (NDJSON) here.")
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Show a progress bar (default: when standard error is a terminal and CI is "
            "not set).",
        ),
    ] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="Settings file (TOML or JSON).")
    ] = None,
) -> None:
    """Evaluate a cohort: resumable (a ledger), bounded concurrency, optional Dask engine.

    Exit 0 when every patient is done, 1 when some failed or the input had problems (listed) or
    the run stopped on a fault (said plainly; run again to resume), 2 for bad usage, 143 when
    stopped by SIGTERM (run again to resume)."""
    require_extra("cohort", "registry")
    from fhirtis.registry import cohort as cohort_mod  # noqa: PLC0415 - the [registry] extra
    from fhirtis.registry.errors import CohortError  # noqa: PLC0415
    from fhirtis.registry.group_export import EXPORT_TYPES  # noqa: PLC0415
    from fhirtis.registry.ndjson_store import is_ndjson  # noqa: PLC0415
    from fhirtis.registry.options import CohortOptions  # noqa: PLC0415

    err = err_console()  # one line a message, whatever the width; never highlighted
    sources = [x for x in (ndjson, group, patients, patient_file) if x is not None]
    if len(sources) != 1 or engine not in {"local", "dask"}:
        err.print(
            "fhirtis cohort: give exactly one of --ndjson, --group, --patients, "
            "--patient-file; --engine local or dask"
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        settings = settings_for_server(settings_file, server)
        check_settings(settings)  # a concept map that cannot be used: before the ledger is made
        fhir = fhir_config(settings, server)
        if (write or group or patients or patient_file) and fhir is None:
            raise ValueError("a FHIR server is needed: give --server or FHIRTIS_FHIR__BASE_URL")
        ids: list[str] = []
        if patients:
            ids = patient_ids(patients.split(","), "patient id")
        if patient_file:
            ids = patient_ids(
                patient_file.read_text(encoding="utf-8-sig").splitlines(), "patient id"
            )
        if max_rate is not None and not max_rate > 0:  # the setting's own bound (nan too)
            raise ValueError("--max-rate must be more than 0 (requests per second)")
        rest = tuple(t.strip() for t in (rest_types or "").split(",") if t.strip())
        if rest and group is None:
            raise ValueError("--rest-types needs --group (a Bulk export)")
        unknown = sorted(set(rest) - set(EXPORT_TYPES))
        if unknown:
            raise ValueError(
                f"--rest-types: {', '.join(unknown)} is not read by the evaluation "
                f"(it reads {', '.join(EXPORT_TYPES)})"
            )
        if group is not None:
            group = resource_id(group, "Group", "--group")
        if since is not None:
            from fhirtis.io import BulkExportClient  # noqa: PLC0415

            try:
                since = BulkExportClient.since_value(since)
            except ValueError as exc:
                raise ValueError(f"--since: {exc}") from None
        if summaries is not None and summaries.is_dir():  # found after the run otherwise
            raise ValueError(
                f"--summaries {summaries} is a folder: give the file to write "
                f"(e.g. {summaries / 'summaries.ndjson'})"
            )
        if ndjson is not None and not ndjson.is_dir():
            raise ValueError(f"{ndjson} is not a folder")
        if ndjson is not None and not any(is_ndjson(p) for p in ndjson.iterdir()):
            raise ValueError(f"{ndjson} holds no NDJSON file (*.ndjson or *.ndjson.gz)")
        if ndjson is not None:
            cohort_mod.check_input_folder(ndjson, work_dir)
        if fhir is not None:  # an option given wins; else the FHIR settings' own values
            update: dict[str, object] = {}
            if concurrency is not None:
                update["concurrency"] = concurrency
            if max_rate is not None:
                update["max_requests_per_second"] = max_rate
            fhir = fhir.model_copy(update=update)
            concurrency = fhir.concurrency
    except (ValueError, OSError, CohortError) as exc:  # OSError: a file or folder unreadable
        err.print(f"fhirtis cohort: {problem_text(exc)}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    options = CohortOptions(
        write=write,
        concurrency=concurrency or CohortOptions.concurrency,
        ledger=ledger,
        work_dir=work_dir,
        keep_work_dir=keep_work_dir,
        engine=engine,
        scheduler=scheduler,
        workers=workers,
        progress=progress,
        since=since,
        validate=validate,
        rest_types=rest,
    )
    if group is not None and cohort_mod.show_progress(progress):
        options.on_export_progress = lambda text: err.print(
            f"fhirtis cohort: bulk export: {_printable(text)}", markup=False
        )
    if validate:
        enable_validation()
    try:
        with stopping_on_sigterm("cohort"):
            result = asyncio.run(
                cohort_mod.run_cohort(settings, options, fhir, ndjson=ndjson, group=group, ids=ids)
            )
            if summaries is not None:
                _write_summaries(ledger, summaries, result.run)
    except CohortError as exc:
        err.print(f"fhirtis cohort: {exc}", markup=False)
        if exc.resumable:
            err.print("fhirtis cohort: stopped; run the same command again to resume", markup=False)
        else:
            err.print("fhirtis cohort: stopped", markup=False)
        raise typer.Exit(1) from None
    console = report_console()  # plain text: input problems echo the input
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.statuses.items())) or "none"
    console.print(
        f"{result.patients} patients: {counts}; skipped (unchanged since the ledger) "
        f"{result.skipped}; input problems {len(result.problems)}",
        markup=False,
    )
    for file, where, why in result.problems[:20]:
        console.print(f"  input problem: {file} {where}: {why}", markup=False)
    for note in result.notes:
        console.print(f"  note: {note}", markup=False)
    for patient_ref, error in result.failed:
        console.print(f"  incomplete: {patient_ref}: {error}", markup=False)
    if result.failed and not keep_work_dir and (ndjson is not None or group is not None):
        # removed only after a successful run (its partitions show what failed): say so, it
        # holds every patient's data
        console.print(
            f"  work folder kept: {work_dir} (patient data, readable only by you; the next "
            "run replaces it, or remove it)",
            markup=False,
        )
    if result.failed or result.problems:
        raise typer.Exit(1)


def _printable(text: str, limit: int = 200) -> str:
    """A server's text for the terminal: printable characters only (no escape sequences)."""
    return "".join(c for c in text if c.isprintable())[:limit]


def _write_summaries(ledger: Path, path: Path, run: int) -> None:
    """This run's patients' summary records, one a line, in a file only the user can read;
    whole or not at all (written beside it and renamed): a disk that fills part-way leaves the
    last run's file, not a cut one that a report would take for the whole cohort. A path
    through a symbolic link writes the link's target (the link is kept); a named pipe or a
    device (``/dev/stdout``) is written in place: nothing may be renamed over it."""
    from fhirtis.registry.errors import describe  # noqa: PLC0415
    from fhirtis.registry.ledger import Ledger  # noqa: PLC0415
    from fhirtis.registry.partition import private_tree  # noqa: PLC0415

    try:
        if path.exists() and not path.is_file():  # a pipe, a terminal, a device
            with open(path, "wb") as out, Ledger(ledger) as book:
                for body in book.summaries(run):
                    out.write(body + b"\n")
            return
        path = Path(os.path.realpath(path))
    except OSError as exc:
        exc.filename = exc.filename or str(path)  # a failed write names no file
        raise describe(exc, "cannot write the summaries") from None
    try:
        private_tree(path.parent)
        part = part_path(path)  # a killed run's part of this file removed
        fd = os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "wb") as out, Ledger(ledger) as book:
                os.fchmod(out.fileno(), 0o600)
                for body in book.summaries(run):
                    out.write(body + b"\n")
            os.replace(part, path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise describe(exc, "cannot write the summaries") from None


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
        int | None,
        typer.Option(min=0, help="Also report response at this week after baseline."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise a cohort like the ProDERM reports: response categories and responders, confirmed
    deteriorations, IVIG cycles and dose, TEEs per patient and per 100 cycles, TEE by maximum
    infusion rate, risk factors."""
    require_extra("report", "registry")
    from fhirtis.registry import report as cohort_report  # noqa: PLC0415 - [registry]

    err = err_console()  # one line a message, whatever the width; never highlighted
    try:
        records = cohort_report.iter_summaries(path)  # one at a time: never the whole file
        built = cohort_report.build_report(records, week=week)
    except (cohort_report.ReportInputError, OSError) as exc:
        err.print(f"fhirtis report: {exc}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        sys.stdout.write(dumps(built.as_record()) + "\n")
    else:
        cohort_report.print_report(Console(), built)
    if out is not None:
        try:
            for png in _write_report(built, out):
                err.print(f"wrote {png}", markup=False)
        except OSError as exc:
            where = exc.filename or out
            err.print(f"fhirtis report: cannot write {where}: {exc.strerror or exc}", markup=False)
            raise typer.Exit(1) from None


def _write_report(built: Report, out: Path) -> list[Path]:
    """patients.csv, summary.json and the plots, in ``out``: patient data (ids, dates, scores,
    risk factors), so the folders made are 0700 and the files 0600 (a file of an earlier
    report made more open is made private too). Returns the plots' paths."""
    from fhirtis.registry import report as cohort_report  # noqa: PLC0415 - [registry]
    from fhirtis.registry.partition import (  # noqa: PLC0415
        PRIVATE_FILE,
        private_files,
        private_tree,
    )

    with private_files():
        private_tree(out)
        written = [
            cohort_report.write_csv(built, out / "patients.csv"),
            cohort_report.write_json(built, out / "summary.json"),
        ]
        plots = list(cohort_report.write_plots(built, out))
        for path in [*written, *plots]:
            os.chmod(path, PRIVATE_FILE)
    return plots
