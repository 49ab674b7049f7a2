"""Registry runs: many patients, resumable, with bounded concurrency and a ledger.

Sources: a folder of NDJSON files (a Bulk Data export already on disk), a FHIR Group exported
with Bulk Data ``$export``, or a list of patient ids read from the server one by one. NDJSON is
grouped by patient with hash partitions on disk (``partition``), each partition is evaluated by
the pure pipeline (``evaluate``) — in this process, or on the workers of a Dask cluster
(``engine="dask"``, ``dask_engine``) — and the derived resources are written through the same
idempotent path as ``fhirtis run`` (``pipeline.server.settle``). The ledger records each
patient's final outcome with its input digest, the server, the policy digest and the algorithm
version, in batches: a killed run resumes where it stopped, and a later run skips exactly the
patients for which none of the four changed.

Everything a run writes holds patient data: files are created 0600 in 0700 folders, and the
work folder's partitions (and a Group export's files) are removed after a successful run unless
``keep_work_dir``.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fhirtis.fhir.queries import identifier_of
from fhirtis.fhir.validation import enabled as validation_enabled
from fhirtis.io import (
    FhirClient,
    FhirClientConfig,
    FhirClientError,
    FhirServerError,
    NotFound,
    UnsupportedFhirVersion,
)
from fhirtis.pipeline.offline import ask_terminology
from fhirtis.pipeline.server import RunStatus, not_found_text, pull_patient, settle
from fhirtis.registry.errors import CohortError, describe
from fhirtis.registry.evaluate import (
    CohortJob,
    EvaluatedPatient,
    Outcome,
    PartitionResult,
    evaluate_partition,
    evaluate_resources,
    settings_for_partitions,
)
from fhirtis.registry.group_export import (
    current_members,
    export_group,
    export_key,
    record_export_time,
    recorded_members,
)
from fhirtis.registry.ledger import Ledger, RunKey
from fhirtis.registry.ndjson_store import NdjsonStore, is_ndjson
from fhirtis.registry.options import CohortOptions
from fhirtis.registry.partition import (
    PRIVATE_FILE,
    RangeResult,
    byte_ranges,
    merge_stale,
    partition_count,
    partition_range,
    private_dir,
    private_files,
    stale_copies,
    total_bytes,
)
from fhirtis.registry.run_key import run_key
from fhirtis.settings import Settings

if TYPE_CHECKING:
    from fhirtis.fhir.bundle import PatientResources

log = logging.getLogger("fhirtis.registry.cohort")


@dataclass
class CohortResult:
    patients: int = 0
    skipped: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # file, where, why
    run: int = 0  # the ledger's number for this run (``Ledger.summaries(run)``)
    worker_pids: set[int] = field(default_factory=set)  # processes that evaluated partitions
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # said after the counts (no patient data)

    def count(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


def show_progress(option: bool | None) -> bool:
    if option is not None:
        return option
    return sys.stderr.isatty() and not os.environ.get("CI")


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


Reread = Callable[[str], Awaitable[EvaluatedPatient]]
"""Reads a patient (its id) from the server again and evaluates it (:class:`_Recorder`)."""


class _Recorder:
    """Settles evaluated patients with the server (bounded concurrency) and records outcomes in
    the ledger (batched commits)."""

    def __init__(
        self,
        client: FhirClient | None,
        ledger: Ledger,
        key: RunKey,
        options: CohortOptions,
        result: CohortResult,
        reread: Reread | None = None,
    ) -> None:
        self.client, self.ledger, self.key = client, ledger, key
        self.options, self.result = options, result
        # patients read over REST can be read again after a version conflict (see _settle); a
        # Bulk export's snapshot cannot
        self.reread = reread
        self._slots = asyncio.Semaphore(options.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def add(self, outcomes: Sequence[Outcome]) -> None:
        skipped = [o.patient for o in outcomes if o.skipped]
        if skipped:
            self.ledger.seen(skipped)
            self.result.skipped += len(skipped)
        for o in outcomes:
            if o.error is not None:
                self.ledger.record(o.patient, o.digest, "failed", self.key, None, o.error)
                self.result.count("failed")
                self.result.failed.append((o.patient, o.error))
            elif o.evaluated is not None:
                if self.client is None:
                    self.ledger.record(
                        o.patient, o.digest, "evaluated", self.key, o.evaluated.summary
                    )
                    self.result.count("evaluated")
                    continue
                await self._slots.acquire()
                task = asyncio.create_task(self._settle(self.client, o.evaluated))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _settle(self, client: FhirClient, evaluated: EvaluatedPatient) -> None:
        reread = self.reread

        async def reevaluate() -> EvaluatedPatient:
            """After a version conflict (another writer, maybe of newer data): the patient
            read and evaluated again, whose evaluation the ledger then records."""
            nonlocal evaluated
            if reread is not None:
                evaluated = await reread(evaluated.patient.removeprefix("Patient/"))
            return evaluated

        try:
            run = await settle(
                client,
                evaluated.patient.removeprefix("Patient/"),
                evaluated,
                write=self.options.write,
                reevaluate=reevaluate if reread is not None else None,
            )
            status = {RunStatus.DRY_RUN: "evaluated"}.get(run.status, run.status.value)
            if run.status is RunStatus.FAILED:
                error = run.error or "failed"
                self.ledger.record(
                    evaluated.patient, evaluated.digest, "failed", self.key, None, error
                )
                self.result.failed.append((evaluated.patient, error))
            else:
                self.ledger.record(
                    evaluated.patient, evaluated.digest, status, self.key, evaluated.summary
                )
            self.result.count(status)
        finally:
            self._slots.release()

    async def drain(self) -> None:
        """Wait for every settle in flight. The finished ones are taken out here, not only by
        their done callbacks: gather of tasks that are all done returns without yielding to the
        loop (Python 3.12+), so a callback scheduled but not yet run would never run, and the
        drain would spin for ever."""
        while self._tasks:
            tasks = list(self._tasks)
            await asyncio.gather(*tasks)
            self._tasks.difference_update(tasks)


async def _local_partitions(
    job: CohortJob, problems: list[tuple[str, str, str]]
) -> AsyncIterator[PartitionResult]:
    """The local engine: the same two steps as on Dask, in this process, one after the other
    (in a thread, so that writes in flight progress meanwhile)."""
    out_dir = str(job.out_dir)
    for r in job.ranges:
        part: RangeResult = await asyncio.to_thread(partition_range, r, out_dir, job.partitions)
        problems.extend(part.problems)
    stale = merge_stale(
        [await asyncio.to_thread(stale_copies, out_dir, b) for b in range(job.partitions)]
    )
    for bucket in range(job.partitions):
        yield await asyncio.to_thread(
            evaluate_partition,
            out_dir,
            bucket,
            job.settings_json,
            job.done,
            keep_derived=job.keep_derived,
            validate=job.validate,
            stale=stale,
            read_in_part=job.read_in_part,
        )


async def run_ndjson(
    folder: Path,
    settings: Settings,
    options: CohortOptions,
    client: FhirClient | None,
    read_in_part: Mapping[str, tuple[str, ...]] | None = None,
) -> CohortResult:
    """Evaluate every patient of an NDJSON export (and write back, with a client).
    ``read_in_part``: by patient, the types read over REST that the server answered in part."""
    started = time.perf_counter()
    ranges = byte_ranges(folder)
    key = run_key(settings, "" if client is None else written_to(client))
    workers = options.workers or os.cpu_count() or 1
    if options.engine == "dask" and len(ranges) < 4 * workers:  # enough reading tasks for all
        ranges = byte_ranges(folder, max(1 << 20, total_bytes(ranges) // (4 * workers)))
    partitions = options.partitions or partition_count(total_bytes(ranges), workers)
    out_dir = options.work_dir / "partitions"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    private_dir(out_dir)
    result = CohortResult()
    validate = options.validate or validation_enabled()
    with Ledger(options.ledger) as ledger, _progress(show_progress(options.progress)) as bar:
        result.run = ledger.start_run()
        done = ledger.done(key, write=options.write)
        recorder = _Recorder(client, ledger, key, options, result)
        task = bar.add_task("partitions", total=partitions, rate="")
        job = CohortJob(
            ranges,
            out_dir,
            partitions,
            settings_for_partitions(settings),
            done,
            keep_derived=client is not None,
            validate=validate,
            read_in_part=dict(read_in_part or {}),
        )
        if options.engine == "dask":
            from fhirtis.registry.dask_engine import evaluate_on_dask  # noqa: PLC0415

            stream = evaluate_on_dask(
                job, scheduler=options.scheduler, workers=workers, problems=result.problems
            )
        else:
            stream = _local_partitions(job, result.problems)
        without_patient = 0
        async for part in stream:
            result.worker_pids.add(part.pid)
            result.patients += len(part.outcomes)
            without_patient += sum(not o.has_patient for o in part.outcomes)
            await recorder.add(part.outcomes)
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.update(task, advance=1, rate=f"{result.patients / elapsed:,.1f} patients/s")
        await recorder.drain()
    if without_patient:
        result.notes.append(
            f"{without_patient} patient(s) evaluated with no Patient resource in the input "
            "(no birth date or sex: adult criteria unless the onset age is known)"
        )
    result.seconds = time.perf_counter() - started
    return result


def written_to(client: FhirClient) -> str:
    """The server a run's derived resources go to (``write_base_url`` when set: a registry's
    own store), the ledger's :attr:`RunKey.server`: a patient done on one server is not done
    on another."""
    return str(client.config.for_writes().base_url)


def _has_source_data(store: NdjsonStore, patient: str) -> bool:
    """Whether a patient's exported resources include source data, not only fhirtis's own
    derived resources and Provenance (which change whenever fhirtis writes)."""
    for key, body in store.resources_of(patient):
        if key.startswith("Provenance/"):
            continue
        if identifier_of(orjson.loads(body)) is None:
            return True
    return False


async def run_patient_list(
    ids: Sequence[str],
    settings: Settings,
    options: CohortOptions,
    client: FhirClient,
    unchanged: Sequence[str] = (),
) -> CohortResult:
    """Patients read from the server one by one (bounded concurrency), evaluated, written;
    a patient listed twice is read once (and counted once). ``unchanged``: patients (``Patient/
    id``) known to be done and unchanged, not read: counted as skipped and stamped with this
    run (their stored summaries are this run's), as a skipped patient of an NDJSON run is."""
    ids = list(dict.fromkeys(ids))
    listed = set(ids)
    held = [p for p in dict.fromkeys(unchanged) if p.removeprefix("Patient/") not in listed]
    result = CohortResult(patients=len(ids) + len(held), skipped=len(held))
    key = run_key(settings, written_to(client))
    sem = asyncio.Semaphore(options.concurrency)
    with Ledger(options.ledger) as ledger, _progress(show_progress(options.progress)) as bar:
        result.run = ledger.start_run()
        if held:
            ledger.seen(held)

        async def read_and_evaluate(pid: str, *, first: bool = False) -> EvaluatedPatient:
            """The patient read from the server and evaluated: ``first`` by :func:`one`, and
            again after a version conflict (the recorder's ``reread``). A first read of input
            the ledger holds done raises :class:`_Done`, before the terminology server is
            asked anything."""
            resources = await pull_patient(client, pid, settings, {})
            digest = _resources_digest(resources)
            if first and ledger.is_done(f"Patient/{pid}", digest, key, write=options.write):
                raise _Done
            answers = await ask_terminology(resources, settings)
            return evaluate_resources(resources, digest, settings, answers=answers)

        recorder = _Recorder(client, ledger, key, options, result, read_and_evaluate)
        task = bar.add_task("patients", total=len(ids), rate="")

        async def one(pid: str) -> None:
            async with sem:
                ref = f"Patient/{pid}"
                try:
                    evaluated = await read_and_evaluate(pid, first=True)
                except _Done:
                    ledger.seen([ref])
                    result.skipped += 1
                    return
                except NotFound:
                    why = not_found_text(client)
                    ledger.record(ref, "", "not-found", key, None, why)
                    result.count("not-found")
                    result.failed.append((ref, why.removeprefix("patient ")))
                    return
                except FhirClientError as exc:
                    ledger.record(ref, "", "failed", key, None, str(exc))
                    result.count("failed")
                    result.failed.append((ref, str(exc)))
                    return
                # the read's slot is held until a write slot takes the patient: while the
                # writes lag, at most ``concurrency`` evaluated patients (their derived
                # resources) wait in memory, not the rest of the list
                await recorder.add([Outcome(ref, evaluated.digest, evaluated)])

        async def tracked(pid: str) -> None:
            try:
                await one(pid)
            finally:
                bar.advance(task)

        await asyncio.gather(*(tracked(p) for p in ids))
        await recorder.drain()
    return result


class _Done(Exception):  # noqa: N818 - a signal, not an error
    """A patient read whose input the ledger holds done (:func:`run_patient_list`)."""


def _resources_digest(resources: PatientResources) -> str:
    h = hashlib.sha256()
    for key, r in sorted(
        (f"{r.get('resourceType')}/{r.get('id')}", r) for _, r in resources.resources
    ):
        h.update(key.encode())
        h.update(orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def load_store(folder: Path, work_dir: Path) -> NdjsonStore:
    private_dir(work_dir)
    path = work_dir / "store.sqlite"
    if path.exists():
        path.unlink()
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    store = NdjsonStore(path)
    try:
        store.load_folder(folder)
    except BaseException:
        store.close()  # the run stops on this fault: its connection is not left open
        raise
    return store


LOCK_NAME = ".lock"  # in the work folder: held by the run that uses it


def _remove_work(work_dir: Path, *, group_export: bool) -> None:
    """Remove what a run put in the work folder (patient data), and the folder when empty.
    ``export`` is fhirtis's only in a Group run: in another it may be the user's own export,
    the run's input."""
    for name in ("partitions", "export") if group_export else ("partitions",):
        shutil.rmtree(work_dir / name, ignore_errors=True)
    for name in ("store.sqlite", "store.sqlite-wal", "store.sqlite-shm", LOCK_NAME):
        (work_dir / name).unlink(missing_ok=True)  # the lock: still held until the run ends
    with suppress(OSError):  # not empty: something else lives there
        work_dir.rmdir()


@contextmanager
def work_folder_lock(work_dir: Path) -> Iterator[None]:
    """The work folder for this run alone: each run empties its ``partitions`` when it starts
    and removes them when it ends, so a second run on the same folder (a scheduled run and a
    manual one of one feed) would take the first one's partitions, and the first would report
    fewer patients without a word. A second run stops at once (CohortError); the lock (``flock``
    on ``.lock``) goes with the process, so a killed run never blocks the next one."""
    path = work_dir / LOCK_NAME
    while True:
        private_dir(work_dir)  # again after a run that ended meanwhile removed it
        fd = os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CohortError(
                f"the work folder {work_dir} is in use by another fhirtis cohort run: wait for "
                "it to end, or give this run another --work-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        with suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break  # not removed by a run that ended meanwhile: this run holds it
        os.close(fd)
    try:
        yield
    finally:
        with suppress(OSError):
            path.unlink()  # still held: no run can take it between the unlink and the close
        os.close(fd)


def check_input_folder(ndjson: Path, work_dir: Path) -> None:
    """CohortError when the NDJSON folder is the work folder's ``partitions`` or inside it
    (each run empties that folder before it reads its input), or when it is the download of a
    ``_since`` export (:func:`since_export_mark`)."""
    if ndjson.resolve().is_relative_to((work_dir / "partitions").resolve()):
        raise CohortError(
            f"the NDJSON folder {ndjson} is inside the work folder's partitions, which each run "
            "empties: give another --work-dir"
        )
    mark = since_export_mark(ndjson)
    if mark is not None:
        raise CohortError(
            f"the NDJSON folder {ndjson} is an incremental (_since) Bulk export: {mark}. It "
            "holds only the resources changed since, not each patient's whole record, which "
            "the evaluation needs: give a full export (or use --group, which exports changes "
            "and reads the changed patients whole)"
        )


DELETED_FOLDER = "deleted"
"""Where a Bulk Data client keeps the manifest's ``deleted`` files (smart-on-fhir/
bulk-data-client, the IG's reference client)."""


def since_export_mark(ndjson: Path) -> str | None:
    """What shows that a folder holds a ``_since`` export, or None: a ``deleted`` folder of
    NDJSON files (the Bulk Data IG lists deleted resources only for a ``_since`` export), or a
    saved ``manifest.json`` whose ``request`` (the kick-off it answers) has ``_since``. A
    manifest that cannot be read says nothing."""
    deleted = ndjson / DELETED_FOLDER
    if deleted.is_dir() and any(is_ndjson(p) for p in deleted.iterdir()):
        return (
            f"it holds {DELETED_FOLDER}/, files of deleted resources, which a Bulk Data server "
            "lists only for an export _since a time"
        )
    try:
        manifest = orjson.loads((ndjson / "manifest.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    request = manifest.get("request") if isinstance(manifest, dict) else None
    if isinstance(request, str) and "_since" in parse_qs(urlsplit(request).query):
        return "its manifest.json answers a kick-off with _since"
    return None


async def run_cohort(
    settings: Settings,
    options: CohortOptions,
    fhir: FhirClientConfig | None,
    *,
    ndjson: Path | None = None,
    group: str | None = None,
    ids: Sequence[str] = (),
) -> CohortResult:
    """The whole run, from whichever source was given. Raises CohortError for a fault that
    stops the run (unreadable input, full disk, a refused export): the ledger stays valid."""
    if ndjson is not None:
        check_input_folder(ndjson, options.work_dir)
    client = FhirClient(fhir) if fhir is not None else None
    try:
        if client is not None and (group is not None or ids or options.write):
            await _check_fhir_version(client)
        with private_files():
            if ndjson is None and group is None:  # a list of patients uses no work folder
                result = await _run(settings, options, client, ndjson, group, ids)
            else:
                with work_folder_lock(options.work_dir):
                    result = await _run(settings, options, client, ndjson, group, ids)
                    if not options.keep_work_dir and not result.failed:
                        _remove_work(options.work_dir, group_export=group is not None)
    except OSError as exc:
        raise describe(exc, "cannot go on") from None
    except sqlite3.Error as exc:  # the ledger and the store say which file; this is a backstop
        raise CohortError(f"cannot go on: {exc}") from None
    except FhirServerError as exc:
        raise CohortError(f"the FHIR server refused: {exc}") from None
    except FhirClientError as exc:  # refused here (a foreign URL), timed out, unreachable
        raise CohortError(f"cannot go on: {exc}") from None
    finally:
        if client is not None:
            await client.aclose()
    return result


async def _check_fhir_version(client: FhirClient) -> None:
    """Refuse a server whose CapabilityStatement says another FHIR release than R4 before
    anything is exported, read or written (:class:`UnsupportedFhirVersion`: not resumable, the
    base URL must change). A statement that cannot be read changes nothing here: the run goes on
    as before, and what the server cannot do is learned from its answers."""
    writer = client.writer()
    for server in (client,) if writer is client else (client, writer):  # write_base_url too
        try:
            await server.capabilities()
        except UnsupportedFhirVersion as exc:
            raise CohortError(str(exc), resumable=False) from None
        except FhirClientError as exc:
            log.info("cohort: a CapabilityStatement was not read: %s", type(exc).__name__)


async def _run(
    settings: Settings,
    options: CohortOptions,
    client: FhirClient | None,
    ndjson: Path | None,
    group: str | None,
    ids: Sequence[str],
) -> CohortResult:
    if ndjson is not None:
        return await run_ndjson(ndjson, settings, options, client)
    assert client is not None
    if group is None:
        return await run_patient_list(ids, settings, options, client)
    key = run_key(settings, written_to(client))
    export = await export_group(client, group, options, settings)
    if not export.incremental:
        result = await run_ndjson(export.folder, settings, options, client, export.read_in_part)
    else:
        # A _since export holds only what changed: the patients it names are read whole from
        # the server. The Group's other current members are unchanged: skipped (and in this
        # run's summaries) when the ledger holds them done under this key, else read whole too.
        store = load_store(export.folder, options.work_dir)
        try:
            problems = [(file, f"line {line}", why) for file, line, why in store.problems()]
            changed = [
                p.removeprefix("Patient/") for p in store.patients() if _has_source_data(store, p)
            ]
        finally:
            store.close()
        members = await current_members(client, group)
        known, held, new, notes = _unchanged_members(
            members, changed, str(client.config.base_url), group, key, options
        )
        result = await run_patient_list(changed + new, settings, options, client, held)
        result.problems[:0] = problems
        result.notes.extend(notes)
    result.problems[:0] = export.problems
    result.notes.extend(export.notes)
    if not export.incremental:
        with Ledger(options.ledger) as ledger:  # the full export's patients: its members
            known = [p.removeprefix("Patient/") for p in ledger.patients_of_run(result.run)]
    if export.transaction_time is not None and not result.problems and not result.failed:
        # Only now, every patient evaluated or skipped and no input lost: the next run asks
        # for what changed since this export. After a bad line, a failed patient or a run
        # that stopped, the same command exports the same data again (_since the export
        # before, or in full), so nothing is lost for good.
        with Ledger(options.ledger) as ledger:
            record_export_time(
                ledger,
                str(client.config.base_url),
                group,
                export.transaction_time,
                export_key(key, write=options.write),
                known,
            )
    return result


def _unchanged_members(
    members: list[str] | None,
    changed: Sequence[str],
    base: str,
    group: str,
    key: RunKey,
    options: CohortOptions,
) -> tuple[list[str] | None, list[str], list[str], list[str]]:
    """Of a ``_since`` run, the Group's members not in the export: ``members`` (the Group's
    current ones, :func:`current_members`), or when unknown those the ledger recorded for the
    Group on ``base`` (the server read; ``key.server`` is the one written to). Returns the
    members to keep for the next run (None: the Group was not read), those the ledger holds
    done under ``key`` (``Patient/id``: skipped), those it does not (ids: read whole and
    evaluated, as a changed patient is: a ``_since`` export need not hold an added member's
    older data) and the notes to say."""
    notes: list[str] = []
    with Ledger(options.ledger) as ledger:
        cohort = members
        if cohort is None:
            cohort = recorded_members(ledger, base, group)
            notes.append(
                f"the Group's members could not be read (or it lists none, or one by an "
                f"identifier no single Patient has): the {len(cohort)} "
                "member(s) the ledger recorded at the last clean run of this Group (its last "
                "full export, or Group read) are reported"
                if cohort is not None
                else "the Group's members could not be read (or it lists none, or one by an "
                "identifier no single Patient has) and the ledger recorded none: only the "
                "members whose data changed are reported"
            )
        done = ledger.done(key, write=options.write)
    exported = set(changed)
    rest = [m for m in cohort or () if m not in exported]
    held = [f"Patient/{m}" for m in rest if f"Patient/{m}" in done]
    new = [m for m in rest if f"Patient/{m}" not in done]
    if new:
        notes.append(
            f"{len(new)} member(s) not in the ledger under this run key and not in the _since "
            "export (added to the Group, or not done before): read whole and evaluated"
        )
    return members, held, new, notes
