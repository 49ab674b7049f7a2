"""Registry runs: many patients, resumable, with bounded concurrency and a ledger.

Sources: a folder of NDJSON files (a Bulk Data export already on disk), a FHIR Group exported
with Bulk Data ``$export``, or a list of patient ids read from the server one by one. The NDJSON
is grouped by patient on disk (``NdjsonStore``); each patient is evaluated by the pure pipeline
— in this process, or on the workers of a Dask cluster (``engine="dask"``) — and its derived
resources are written through the same idempotent path as ``fhirtis run`` (``remote.settle``).
The ledger records each patient's final outcome and input digest: a killed run resumes where it
stopped, and a later run skips patients whose data did not change.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fhirtis.fhir.bundle import PatientResources
from fhirtis.fhir.derive import Derived
from fhirtis.fhir.needs import export_types
from fhirtis.fhir.plan import WritePlan, plan_writes
from fhirtis.fhir.queries import identifier_of
from fhirtis.io import FhirClient, FhirClientConfig, FhirClientError, NotFound
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.pipeline.server import RunStatus, pull_patient, settle
from fhirtis.registry.ledger import Ledger
from fhirtis.registry.ndjson_store import NdjsonStore, input_digest
from fhirtis.settings import Settings

log = logging.getLogger("fhirtis.registry.cohort")
Json = dict[str, Any]
Row = tuple[str, list[tuple[str, bytes]], dict[str, bytes], str]  # patient, own, shared, digest


@dataclass(frozen=True)
class EvaluatedPatient:
    """One patient's evaluation, in a form that crosses process boundaries (Dask workers)."""

    patient: str
    digest: str
    summary: Json
    derived: Sequence[Derived]
    sources: Sequence[str]
    as_of: datetime

    def plan(self, existing: Mapping[str, Json] | None = None) -> WritePlan:
        return plan_writes(self.derived, self.sources, self.as_of, existing)


def evaluate_resources(
    resources: PatientResources, digest: str, settings: Settings
) -> EvaluatedPatient:
    """Pure: one patient's resources → its evaluation (what runs on a worker)."""
    result = evaluate_patient_resources(resources, settings)
    summary = orjson.loads(
        dumps(patient_summary(result.patient_ref, result.evaluation, result.issues))
    )
    return EvaluatedPatient(
        resources.patient_ref,
        digest,
        summary,
        tuple(result.derived),
        tuple(sorted(result.data.used.values())),
        result.evaluation.as_of,
    )


def evaluate_rows(rows: Sequence[Row], settings_json: str) -> list[EvaluatedPatient]:
    """A partition of patients, as raw rows (so a worker needs no access to the store)."""
    settings = Settings.model_validate_json(settings_json)
    out = []
    for patient, own, shared, digest in rows:
        listed = [(key, orjson.loads(body)) for key, body in own]
        resolve = {key: r for key, r in listed}
        resolve.update({key: orjson.loads(body) for key, body in shared.items()})
        out.append(
            evaluate_resources(PatientResources(patient, listed, resolve, ()), digest, settings)
        )
    return out


@dataclass
class CohortOptions:
    write: bool = False
    concurrency: int = 8
    ledger: Path = Path("fhirtis-ledger.sqlite")
    work_dir: Path = Path(".fhirtis-work")
    engine: str = "local"  # local | dask
    scheduler: str | None = None  # a Dask scheduler address; None: a local cluster
    partition_size: int = 50
    progress: bool | None = None  # None: on a TTY and not in CI
    since: str | None = None


@dataclass
class CohortResult:
    patients: int = 0
    skipped: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)
    problems: int = 0

    def count(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


def _show_progress(option: bool | None) -> bool:
    if option is not None:
        return option
    return sys.stderr.isatty() and not os.environ.get("CI")


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]patients"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


async def _settle_and_record(
    client: FhirClient | None,
    evaluated: EvaluatedPatient,
    ledger: Ledger,
    options: CohortOptions,
    result: CohortResult,
) -> None:
    pid = evaluated.patient.removeprefix("Patient/")
    if client is None:
        ledger.record(evaluated.patient, evaluated.digest, "evaluated", evaluated.summary)
        result.count("evaluated")
        return
    run = await settle(client, pid, evaluated, write=options.write)
    status = {RunStatus.DRY_RUN: "evaluated"}.get(run.status, run.status.value)
    if run.status is RunStatus.FAILED:
        ledger.record(evaluated.patient, evaluated.digest, "failed", None, run.error)
        result.failed.append((evaluated.patient, run.error or "failed"))
    else:
        ledger.record(evaluated.patient, evaluated.digest, status, evaluated.summary)
    result.count(status)


async def run_store(
    store: NdjsonStore,
    settings: Settings,
    options: CohortOptions,
    client: FhirClient | None,
) -> CohortResult:
    """Evaluate every patient of an NDJSON store (and write back, with a client)."""
    result = CohortResult(problems=len(store.problems()))
    patients = store.patients()
    result.patients = len(patients)
    with Ledger(options.ledger) as ledger, _progress(_show_progress(options.progress)) as bar:
        task = bar.add_task("evaluate", total=len(patients), rate="")

        def partitions() -> Iterator[list[Row]]:
            """Patients still to do, a partition at a time: memory holds one partition."""
            chunk: list[Row] = []
            for patient in patients:
                own = store.resources_of(patient)
                shared = {
                    k: orjson.dumps(v) for k, v in store.shared(_medication_refs(own)).items()
                }
                digest = input_digest(own, shared)
                if ledger.is_done(patient, digest, write=options.write):
                    result.skipped += 1
                    bar.advance(task)
                    continue
                chunk.append((patient, own, shared, digest))
                if len(chunk) >= options.partition_size:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

        started = time.monotonic()
        done = 0
        async for evaluated in _evaluate(partitions(), settings, options):
            await _settle_and_record(client, evaluated, ledger, options, result)
            done += 1
            elapsed = max(time.monotonic() - started, 1e-9)
            bar.update(task, advance=1, rate=f"{done / elapsed:,.1f}/s")
    return result


async def _evaluate(
    partitions: Iterator[list[Row]], settings: Settings, options: CohortOptions
) -> AsyncIterator[EvaluatedPatient]:
    settings_json = settings.model_dump_json()
    if options.engine == "dask":
        from fhirtis.registry.dask_engine import evaluate_on_dask  # noqa: PLC0415 - optional engine

        async for evaluated in evaluate_on_dask(partitions, settings_json, options.scheduler):
            yield evaluated
        return
    for chunk in partitions:
        for evaluated in evaluate_rows(chunk, settings_json):
            yield evaluated
        await asyncio.sleep(0)  # let writes in flight progress


def _has_source_data(store: NdjsonStore, patient: str) -> bool:
    """Whether a patient's exported resources include source data, not only fhirtis's own
    derived resources and Provenance (which change whenever fhirtis writes)."""
    for key, body in store.resources_of(patient):
        if key.startswith("Provenance/"):
            continue
        if identifier_of(orjson.loads(body)) is None:
            return True
    return False


def _medication_refs(own: Iterable[tuple[str, bytes]]) -> list[str]:
    refs = []
    for key, body in own:
        if key.startswith(
            ("MedicationAdministration/", "MedicationStatement/", "MedicationRequest/")
        ):
            r = orjson.loads(body)
            ref = (r.get("medicationReference") or {}).get("reference")
            if isinstance(ref, str) and ref.startswith("Medication/"):
                refs.append(ref)
    return refs


async def run_patient_list(
    ids: Sequence[str],
    settings: Settings,
    options: CohortOptions,
    client: FhirClient,
) -> CohortResult:
    """Patients read from the server one by one (bounded concurrency), evaluated, written."""
    result = CohortResult(patients=len(ids))
    sem = asyncio.Semaphore(options.concurrency)
    with Ledger(options.ledger) as ledger, _progress(_show_progress(options.progress)) as bar:
        task = bar.add_task("evaluate", total=len(ids), rate="")

        async def one(pid: str) -> None:
            async with sem:
                ref = f"Patient/{pid}"
                try:
                    resources = await pull_patient(client, pid, settings, {})
                except NotFound:
                    ledger.record(ref, "", "not-found", None, "patient not found")
                    result.count("not-found")
                    result.failed.append((ref, "not found"))
                    return
                except FhirClientError as exc:
                    ledger.record(ref, "", "failed", None, str(exc))
                    result.count("failed")
                    result.failed.append((ref, str(exc)))
                    return
                digest = _resources_digest(resources)
                if ledger.is_done(ref, digest, write=options.write):
                    result.skipped += 1
                    return
                evaluated = evaluate_resources(resources, digest, settings)
                await _settle_and_record(client, evaluated, ledger, options, result)

        async def tracked(pid: str) -> None:
            try:
                await one(pid)
            finally:
                bar.advance(task)

        await asyncio.gather(*(tracked(p) for p in ids))
    return result


def _resources_digest(resources: PatientResources) -> str:
    h = hashlib.sha256()
    for key, r in sorted(
        (f"{r.get('resourceType')}/{r.get('id')}", r) for _, r in resources.resources
    ):
        h.update(key.encode())
        h.update(orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def load_store(folder: Path, work_dir: Path) -> NdjsonStore:
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "store.sqlite"
    if path.exists():
        path.unlink()
    store = NdjsonStore(path)
    store.load_folder(folder)
    return store


async def run_cohort(
    settings: Settings,
    options: CohortOptions,
    fhir: FhirClientConfig | None,
    *,
    ndjson: Path | None = None,
    group: str | None = None,
    ids: Sequence[str] = (),
) -> CohortResult:
    """The whole run, from whichever source was given."""
    client = FhirClient(fhir) if fhir is not None else None
    try:
        if ndjson is not None or group is not None:
            folder, incremental = ndjson, False
            if group is not None:
                assert client is not None
                folder, incremental = await export_group(client, group, options)
            assert folder is not None
            store = load_store(folder, options.work_dir)
            try:
                if incremental:
                    # A _since export holds only what changed: the patients it names are read
                    # whole from the server; every other patient is unchanged.
                    assert client is not None
                    changed = [
                        p.removeprefix("Patient/")
                        for p in store.patients()
                        if _has_source_data(store, p)
                    ]
                    return await run_patient_list(changed, settings, options, client)
                return await run_store(store, settings, options, client)
            finally:
                store.close()
        assert client is not None
        return await run_patient_list(ids, settings, options, client)
    finally:
        if client is not None:
            await client.aclose()


async def export_group(client: FhirClient, group: str, options: CohortOptions) -> tuple[Path, bool]:
    """Bulk Data ``Group/[id]/$export`` into ``work_dir/export``; remembers the transaction
    time so that the next run asks only for what changed since (``_since``). Returns the folder
    and whether the export was incremental."""
    from fhirtis.io import BulkExportClient  # noqa: PLC0415

    with Ledger(options.ledger) as ledger:
        since = options.since or ledger.get_value("bulk_transaction_time")
    bulk = BulkExportClient(client)
    status_url = await bulk.kick_off(
        "group", group, types=EXPORT_TYPES, since=since, type_filters=None
    )
    manifest = await bulk.poll(status_url)
    folder = options.work_dir / "export"
    if folder.exists():
        for old in folder.glob("*.ndjson"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    await bulk.download_to(manifest, folder)
    with Ledger(options.ledger) as ledger:
        ledger.set_value("bulk_transaction_time", str(manifest.transaction_time))
    return folder, since is not None


EXPORT_TYPES = export_types()  # fhirtis.fhir.needs: what a patient's evaluation reads
