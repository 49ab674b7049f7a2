"""A cohort's FHIR Group, exported with Bulk Data ``Group/[id]/$export`` into the work folder.

The export asks for the resource types a patient's evaluation reads (:data:`EXPORT_TYPES`).
A server's Bulk export may offer fewer: Oracle Health's Group export offers the US Core (USCDI
v1) types, and US Core has no MedicationAdministration, the IVIG record. The Bulk Data IG v2
advises a server to refuse an unsupported ``_type`` with an OperationOutcome. Such types (named
by the refusal, or given as ``rest_types``) are left out of the export and read per patient
over REST, with the searches ``fhirtis run`` sends, into NDJSON files beside the export's: the
cohort is evaluated on the same data as a patient read one by one. A ``_since`` export would not
list a change to those types, so while some are read over REST every export is a full one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from fhirtis.fhir.bundle import substance_refs_of
from fhirtis.fhir.needs import export_types
from fhirtis.fhir.outcome import issue_texts
from fhirtis.fhir.primitives import instant_or_none
from fhirtis.io import (
    BulkExportFailed,
    BulkExportTimeout,
    FhirClient,
    FhirClientError,
    FhirServerError,
    MalformedNdjson,
    NotFound,
)
from fhirtis.pipeline.server import pull_types, read_by_id
from fhirtis.registry.errors import CohortError, describe
from fhirtis.registry.ledger import Ledger, RunKey
from fhirtis.registry.ndjson_store import (
    GZIP_ERRORS,
    SHARED_ELEMENTS,
    UTF8_BOM,
    BadLineError,
    is_ndjson,
    not_gzip,
    open_ndjson,
    patient_of,
    shared_refs_of,
)
from fhirtis.registry.partition import open_private, private_dir
from fhirtis.registry.run_key import run_key
from fhirtis.settings import Settings

if TYPE_CHECKING:
    from fhirtis.io import BulkExportClient, Manifest
    from fhirtis.registry.options import CohortOptions

log = logging.getLogger("fhirtis.registry.group_export")

EXPORT_TYPES = export_types()  # fhirtis.fhir.needs: what a patient's evaluation reads
_SHARED_TYPES = frozenset(target for _, target in SHARED_ELEMENTS.values())
#: The resources of no patient an export may hold: those :data:`SHARED_ELEMENTS` name, and the
#: Substances a Medication names as an ingredient (R4 ``ingredient.itemReference``).
_HELD_TYPES = _SHARED_TYPES | {"Substance"}
REST_FILE_PREFIX = "rest."  # rest.<Type>.ndjson: resources read over REST (sorted after exports)


@dataclass(frozen=True)
class GroupExport:
    folder: Path  # the NDJSON files: the export's and those read over REST
    incremental: bool  # a ``_since`` export: only what changed
    notes: tuple[str, ...]  # what the run should say (no patient data)
    # the export's transactionTime: recorded as the next run's ``_since`` by the run, once
    # every patient is evaluated or skipped and the input had no problem (not before)
    transaction_time: str | None = None
    # what the export lost on the way (file, where, why): bad lines, files shorter than the
    # manifest's count; the run lists them with the input problems
    problems: tuple[tuple[str, str, str], ...] = ()
    # by patient ("Patient/id"), the types read over REST that the server answered in part
    read_in_part: dict[str, tuple[str, ...]] = field(default_factory=dict)


async def export_group(
    client: FhirClient, group: str, options: CohortOptions, settings: Settings | None = None
) -> GroupExport:
    """Bulk Data ``Group/[id]/$export`` into ``work_dir/export``, ``_since`` the transaction
    time of the last run of this Group on this server that completed cleanly
    (:func:`last_export_time`; the run records the returned ``transaction_time`` with
    :func:`record_export_time` once it has, so that the next run asks only for what changed
    since, and a run that did not complete is exported again).

    - An export a stopped run started and did not read is polled again (:class:`_Pending`),
      unless ``options.since`` asks for another ``_since`` than it did: then it is released
      (DELETE) before the new kick-off; one the server no longer knows is started anew.
    - A ``_since`` export that lists deleted resources, or holds a Medication (or a Device of
      no patient) changed since (it names no patient: those whose administrations or
      DeviceUseStatements use it are not in the export), is followed by a full one.
    - Bad lines are left out and, with files shorter than the manifest's ``count``, returned
      as ``problems`` (the run lists them, exits non-zero and keeps the transaction time).
    - Types the export refuses (or ``options.rest_types``) are read over REST for each
      exported Patient.
    - With ``settings``, the last export's time serves as ``_since`` only when that run had
      the same policy digest and version (and wrote, if this one writes): a ``_since`` export
      lists changed data only, so a patient whose data did not change would keep the results
      of another policy or version, or never be written."""
    from fhirtis.io import BulkExportClient  # noqa: PLC0415

    rest_types = tuple(t for t in EXPORT_TYPES if t in set(options.rest_types))
    base = str(client.config.base_url)
    key = None if settings is None else run_key(settings, base)
    pending = _Pending(options.ledger, base, group)
    with Ledger(options.ledger) as ledger:
        since = options.since or last_export_time(
            ledger, base, group, export_key(key, write=options.write)
        )
    resumed = pending.get()
    bulk = BulkExportClient(client)
    if resumed is not None and options.since and resumed[1] != options.since:
        # another _since than the pending export's: not that export, which is released (the
        # server drops its files; Oracle Health allows one export a client at a time and
        # refuses a second kick-off with 429 while it runs) and forgotten
        log.info("releasing the pending export: this run asks for another _since")
        await _release(bulk, resumed[0])
        pending.clear()
        resumed = None
    folder = options.work_dir / "export"
    while True:
        if resumed is not None:  # an export a stopped run started: poll it again
            status_url, job_since, job_rest = resumed
            resumed = None
            try:
                manifest = await bulk.poll(status_url, on_progress=options.on_export_progress)
            except FhirServerError as exc:  # expired, cancelled, failed, no longer ours
                log.warning("the export a stopped run started is gone (%s)", type(exc).__name__)
                pending.clear()
                continue
            except BulkExportTimeout as exc:
                # a second run's whole budget and still not complete: HAPI and Medplum answer
                # 202 for ever for a cancelled or failed job; released and forgotten, so that
                # the next run does not poll it again but starts a new export
                await _release(bulk, status_url)
                pending.clear()
                raise CohortError(
                    f"{exc}; the export a stopped run started is still not complete after "
                    "this run's polling budget too: released, and the next run starts a new "
                    "export"
                ) from None
            since, rest_types = job_since, job_rest
            log.info("resumed the export a stopped run started")
        else:
            try:
                status_url, rest_types, since = await _kick_off(bulk, group, rest_types, since)
            except NotFound as exc:  # running again asks for the same Group: not resumable
                raise CohortError(
                    f"Group/{group} was not found on the FHIR server ({exc.url} answered "
                    "404): check --group, and that this server offers Group export",
                    resumable=False,
                ) from None
            pending.set(status_url, since, rest_types)
            manifest = await bulk.poll(status_url, on_progress=options.on_export_progress)
        if since is not None and manifest.deleted:
            # deleted files name ``Type/id`` only, not whose it was: a patient who only lost a
            # resource would keep a stale result, so every member is exported and evaluated
            log.warning(
                "the _since export lists deleted resources (%d file(s)); exporting the whole "
                "Group again",
                len(manifest.deleted),
            )
            await _release(bulk, status_url)
            pending.clear()
            since = None
            continue
        try:
            paths, problems = await _download(bulk, manifest, folder)
        except (FhirServerError, CohortError):  # refused, expired, or its data incomplete
            await _release(bulk, status_url)
            pending.clear()
            raise
        # any other fault (the network, the disk, a kill) keeps the job: the next run reads
        # the same export's files again
        await _release(bulk, status_url)
        pending.clear()
        if since is not None and (changed := _changed_shared(manifest, paths, since)):
            # a Medication (a Device of no patient) names no patient: those whose resources
            # reference it are not in this export, and would keep results from the old one
            log.warning(
                "the _since export holds %d changed %s; exporting the whole Group again",
                len(changed),
                ", ".join(sorted(set(changed))),
            )
            since = None
            continue
        break
    notes: list[str] = []
    next_since: str | None = manifest.transaction_time
    try:
        BulkExportClient.since_value(manifest.transaction_time)
    except ValueError:
        next_since = None  # it could not be sent back as _since: the next export is whole
        notes.append(
            "the server's transactionTime is not a FHIR instant with a time zone: the next "
            "run exports the whole Group again"
        )
    in_part: dict[str, tuple[str, ...]] = {}
    if rest_types:
        notes.append(
            f"read over REST, patient by patient (not in the server's Bulk export): "
            f"{', '.join(rest_types)}"
        )
        read = await read_over_rest(
            client, folder, rest_types, settings or Settings(), options.concurrency
        )
        notes.extend(
            f"{rtype}: neither exported nor read over REST ({why}); evaluated without it"
            for rtype, why in sorted(read.unread.items())
        )
        notes.extend(partial_notes(read.partial))
        in_part = read.partial_patients
    if since is None:  # a _since run reads its changed patients whole over REST instead
        files = [(f.type, p) for f, p in zip(manifest.output, paths, strict=True)]
        files += [(p.name[len(REST_FILE_PREFIX) : -len(".ndjson")], p) for p in _rest_files(folder)]
        notes.extend(await _read_missing_shared(client, folder, files))
    return GroupExport(
        folder, since is not None, tuple(notes), next_since, tuple(problems), in_part
    )


_SINCE_KEY = "bulk_transaction_time"  # the last clean export's time (of the scope below)
_SCOPE_KEY = "bulk_export_scope"  # its server and Group (absent in ledgers written before)
_RUN_KEY = "bulk_export_key"  # that run's policy digest, version and mode (per scope)
_MEMBERS_KEY = "bulk_export_members"  # the Group's members at that run (JSON ids, per scope)


def export_key(key: RunKey | None, *, write: bool) -> str | None:
    """What an export's run depended on besides the data: the policy digest, the version and
    whether it wrote (None: not checked)."""
    if key is None:
        return None
    return f"{key.policy} {key.version} {'write' if write else 'dry-run'}"


def _export_scope(base: str, group: str) -> str:
    return f"{base.rstrip('/')} Group/{group}"


def last_export_time(ledger: Ledger, base: str, group: str, key: str | None = None) -> str | None:
    """The transaction time of the last export of ``group`` on the server at ``base`` whose run
    completed cleanly, or None (a full export). One ledger may serve several cohorts: another
    Group's time (or the same Group id on another server) would make a ``_since`` export leave
    out every member unchanged since then, never evaluated. With ``key`` (:func:`export_key`),
    only the time of a run under the same policy and version is used, and a writing run does
    not use a dry run's."""
    from fhirtis.io import BulkExportClient  # noqa: PLC0415

    scope = _export_scope(base, group)
    if key is not None:
        accepted = {key}
        if key.endswith(" dry-run"):  # a dry run may follow a writing run
            accepted.add(key.removesuffix(" dry-run") + " write")
        if ledger.get_value(f"{_RUN_KEY} {scope}") not in accepted:
            return None
    time = ledger.get_value(f"{_SINCE_KEY} {scope}")
    if time is None:
        recorded = ledger.get_value(_SCOPE_KEY)
        if recorded is not None and recorded != scope:
            return None
        time = ledger.get_value(_SINCE_KEY)  # a ledger that names no scope: its one cohort's
    if time is None:
        return None
    try:  # an earlier fhirtis kept a server's transactionTime whatever its form
        return BulkExportClient.since_value(time)
    except ValueError:
        return None


def record_export_time(
    ledger: Ledger,
    base: str,
    group: str,
    time: str,
    key: str | None = None,
    members: Sequence[str] | None = None,
) -> None:
    """Keep ``time`` as the next ``_since`` of ``group`` on ``base`` (and as the latest export's,
    with its scope, under the keys ledgers have always had), with the run's :func:`export_key`,
    and ``members`` (patient ids; None: left as they are) as the Group's members for
    :func:`recorded_members`. All in one commit."""
    scope = _export_scope(base, group)
    values = {
        f"{_RUN_KEY} {scope}": key or "",
        f"{_SINCE_KEY} {scope}": time,
        _SINCE_KEY: time,
        _SCOPE_KEY: scope,
    }
    if members is not None:
        values[f"{_MEMBERS_KEY} {scope}"] = orjson.dumps(sorted(set(members))).decode()
    ledger.set_values(values)


def recorded_members(ledger: Ledger, base: str, group: str) -> list[str] | None:
    """The patient ids :func:`record_export_time` kept for ``group`` on ``base`` (the members
    of its last full export, or of the last clean run that read the Group), or None."""
    text = ledger.get_value(f"{_MEMBERS_KEY} {_export_scope(base, group)}")
    if not text:
        return None
    try:
        ids = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(ids, list):
        return None
    return [i for i in ids if isinstance(i, str)]


async def current_members(
    client: FhirClient, group: str, now: datetime | None = None
) -> list[str] | None:
    """The ids of the Group's current Patient members (``GET Group/[id]``): R4 ``Group.member``
    entries whose ``entity`` references a Patient on this server, less those ``inactive`` or
    whose ``period.end`` is past; a member named by identifier only (a logical reference) is
    the one Patient the server finds with it. None when the read fails, the Group lists no
    member (some servers leave ``member`` out of a large Group) or such an identifier finds no
    single Patient: the caller falls back to :func:`recorded_members`."""
    try:
        resource = await client.read("Group", group)
    except FhirClientError as exc:
        log.warning("the Group could not be read (%s)", type(exc).__name__)
        return None
    entries = resource.get("member")
    if not isinstance(entries, list) or not entries:
        return None
    now = now or datetime.now(UTC)
    base = str(client.config.base_url).rstrip("/") + "/"
    ids: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("inactive") is True:
            continue
        period = entry.get("period")
        end = period.get("end") if isinstance(period, dict) else None
        if isinstance(end, str) and _ended(end, now):
            continue
        entity = entry.get("entity")
        ref = entity.get("reference") if isinstance(entity, dict) else None
        if not isinstance(ref, str):
            token = _patient_identifier(entity)
            if token is None:
                continue
            try:
                found = await _patient_by_identifier(client, token)
            except FhirClientError as exc:
                log.warning("a Group member could not be looked up (%s)", type(exc).__name__)
                return None
            if found is None:
                # no Patient, or several, has it: the member list is not known
                log.warning("a Group member named by identifier matches no single Patient")
                return None
            ids.append(found)
            continue
        ref = ref.removeprefix(base)
        if match := _PATIENT_REF.fullmatch(ref):
            ids.append(match[1])
    return list(dict.fromkeys(ids))


def _patient_identifier(entity: object) -> str | None:
    """A member named by a logical reference only (R4 references.html: ``identifier``, no
    ``reference``), of a Patient (its ``type``, when given): the ``system|value`` token."""
    if not isinstance(entity, dict) or entity.get("type", "Patient") != "Patient":
        return None
    identifier = entity.get("identifier")
    if not isinstance(identifier, dict):
        return None
    system, value = identifier.get("system"), identifier.get("value")
    if not isinstance(value, str) or not value:
        return None
    return f"{system}|{value}" if isinstance(system, str) and system else value


async def _patient_by_identifier(client: FhirClient, token: str) -> str | None:
    """The id of the one Patient with this identifier (``Patient?identifier=``); None when
    none, or several, match."""
    ids: list[str] = []
    async for entry in client.search("Patient", {"identifier": token}):
        resource = entry.get("resource")
        search = entry.get("search")
        mode = search.get("mode") if isinstance(search, dict) else "match"
        if (
            isinstance(resource, dict)
            and resource.get("resourceType") == "Patient"
            and mode == "match"
            and isinstance(resource.get("id"), str)
        ):
            ids.append(resource["id"])
    unique = list(dict.fromkeys(ids))
    return unique[0] if len(unique) == 1 else None


_PATIENT_REF = re.compile(r"Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?")


def _ended(end: str, now: datetime) -> bool:
    """Whether a FHIR dateTime ``period.end`` is past: a date (or year, year-month) ends with
    its last day; a dateTime without a time zone is taken as UTC."""
    text = end.strip()
    if "T" not in text:  # YYYY, YYYY-MM or YYYY-MM-DD: compare at its own precision
        return now.astimezone(UTC).strftime("%Y-%m-%d")[: len(text)] > text
    when = instant_or_none(text)
    if when is None:
        try:
            when = datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            return False  # not a dateTime: the member is kept
    return when < now


class _Pending:
    """The export a run started and has not yet read, kept in the ledger (per server and
    Group): a run that stops while the server is still exporting (its polling budget spent,
    the network gone, killed) is resumed by polling the same export, not by starting another
    (which would throw the server's work away, or be refused while one is running)."""

    def __init__(self, path: Path, base: str, group: str) -> None:
        self._path = path
        self._key = f"bulk_pending_export {_export_scope(base, group)}"

    def get(self) -> tuple[str, str | None, tuple[str, ...]] | None:
        with Ledger(self._path) as ledger:
            text = ledger.get_value(self._key)
        if not text:
            return None
        try:
            job = orjson.loads(text)
            url, since, rest = job["url"], job["since"], tuple(job["rest_types"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        if not isinstance(url, str) or not (since is None or isinstance(since, str)):
            return None
        return url, since, tuple(t for t in EXPORT_TYPES if t in rest)

    def set(self, status_url: str, since: str | None, rest_types: tuple[str, ...]) -> None:
        job = {"url": status_url, "since": since, "rest_types": list(rest_types)}
        with Ledger(self._path) as ledger:
            ledger.set_value(self._key, orjson.dumps(job).decode())

    def clear(self) -> None:
        with Ledger(self._path) as ledger:
            ledger.set_value(self._key, "")


async def _kick_off(
    bulk: BulkExportClient, group: str, rest_types: tuple[str, ...], since: str | None
) -> tuple[str, tuple[str, ...], str | None]:
    """Start the export of every type not read over REST. A refusal naming types that were
    asked for moves them to REST and asks again (each type at most once). Returns the status
    URL, the types read over REST and the ``_since`` sent (None while any type is read over
    REST: a ``_since`` export would not list their changes)."""
    while True:
        if rest_types and since is not None:
            log.info("full export (not _since): %s are read over REST", ", ".join(rest_types))
            since = None
        types = [t for t in EXPORT_TYPES if t not in rest_types]
        try:
            url = await bulk.kick_off("group", group, types=types, since=since, type_filters=None)
        except BulkExportFailed as exc:
            refused = refused_types(exc.operation_outcome, types)
            if exc.status not in (400, 422) or not refused:
                raise
            log.warning(
                "the bulk export refused %s: read over REST instead", ", ".join(sorted(refused))
            )
            rest_types = tuple(t for t in EXPORT_TYPES if t in refused or t in rest_types)
            continue
        return url, rest_types, since


def refused_types(outcome: dict[str, Any] | None, asked: Collection[str]) -> set[str]:
    """The asked-for resource types that a kick-off refusal's OperationOutcome names (as whole
    words in an issue's details text, diagnostics or expression): the ones the server's export
    does not offer. ``Patient`` is never among them (without Patients there is no cohort)."""
    texts: list[str] = []
    for issue in (outcome or {}).get("issue") or []:
        if not isinstance(issue, dict):
            continue
        texts.extend(issue_texts(issue))
        texts.extend(e for e in issue.get("expression") or [] if isinstance(e, str))
    words = set(re.findall(r"[A-Za-z]+", " ".join(texts)))
    return {t for t in asked if t in words and t != "Patient"}


@dataclass(frozen=True)
class RestRead:
    """What :func:`read_over_rest` could not read: the types the server cannot search either
    (each with why), and the types whose search said, in its own OperationOutcome
    (``search.mode = outcome``), that only part of the matches came back, each with the number
    of patients it said so for."""

    unread: dict[str, str]
    partial: dict[str, int]
    # by patient ("Patient/id"): the types its search answered in part
    partial_patients: dict[str, tuple[str, ...]] = field(default_factory=dict)


def partial_notes(partial: dict[str, int]) -> list[str]:
    """What the run says of :attr:`RestRead.partial` (types and counts, no patient)."""
    return [
        f"{rtype}: the server answered the REST search in part for {count} patient(s) (its "
        "own OperationOutcome says matches may be missing): their results may be incomplete"
        for rtype, count in sorted(partial.items())
    ]


async def read_over_rest(
    client: FhirClient,
    folder: Path,
    types: Sequence[str],
    settings: Settings,
    concurrency: int,
) -> RestRead:
    """Each exported Patient's resources of ``types`` (and the Medications they reference),
    searched over REST, into ``rest.<Type>.ndjson`` files (0600) in ``folder``. A read that
    fails stops the run (its patient's data would be incomplete); a search answered in part is
    counted (:class:`RestRead`)."""
    patients = exported_patients(folder)
    sem = asyncio.Semaphore(max(1, concurrency))
    files: dict[str, BinaryIO] = {}
    written: dict[str, int] = dict.fromkeys(types, 0)
    seen: set[str] = set()  # "Type/id" written (a Medication is shared by patients)
    unread: dict[str, str] = {}
    partial: dict[str, int] = {}
    partial_patients: dict[str, tuple[str, ...]] = {}

    def write(resource: dict[str, Any]) -> None:
        rtype = resource.get("resourceType")
        key = f"{rtype}/{resource.get('id')}"
        if not isinstance(rtype, str) or key in seen:
            return
        seen.add(key)
        out = files.get(rtype)
        if out is None:
            path = folder / f"{REST_FILE_PREFIX}{rtype}.ndjson"
            fd = open_private(path)
            out = files[rtype] = os.fdopen(fd, "wb")
        out.write(orjson.dumps(resource) + b"\n")
        written[rtype] = written.get(rtype, 0) + 1

    async def one(pid: str) -> None:
        async with sem:
            try:
                pulled = await pull_types(client, pid, settings, types)
            except FhirClientError as exc:
                raise CohortError(
                    f"Patient/{pid}: reading {', '.join(types)} over REST failed "
                    f"({type(exc).__name__}: {exc}); nothing was evaluated"
                ) from None
        unread.update(pulled.skipped)
        for rtype in dict.fromkeys(pulled.incomplete):
            partial[rtype] = partial.get(rtype, 0) + 1
        if pulled.incomplete:
            partial_patients[f"Patient/{pid}"] = tuple(dict.fromkeys(pulled.incomplete))
        for resource in pulled.resources:
            write(resource)

    try:  # the first failure cancels the other reads
        async with asyncio.TaskGroup() as group:
            for pid in patients:
                group.create_task(one(pid))
    except* CohortError as failed:
        raise failed.exceptions[0] from None
    except* OSError as failed:
        first = failed.exceptions[0]
        if isinstance(first, OSError):
            raise describe(first, "cannot write the work folder") from None
        raise CohortError("cannot write the work folder") from None
    finally:
        for out in files.values():
            out.close()
    log.info(
        "read over REST for %d patient(s): %s",
        len(patients),
        ", ".join(f"{t} {written.get(t, 0)}" for t in types),
    )
    return RestRead(unread, partial, partial_patients)


SHARED_FILE = f"{REST_FILE_PREFIX}shared.ndjson"
"""The resources of no patient the export named but lacked, read over REST by id."""


def _rest_files(folder: Path) -> list[Path]:
    """The ``rest.<Type>.ndjson`` files :func:`read_over_rest` wrote."""
    return sorted(p for p in folder.glob(f"{REST_FILE_PREFIX}*.ndjson") if p.name != SHARED_FILE)


def missing_shared(files: Sequence[tuple[str, Path]]) -> dict[str, list[str]]:
    """The resources of no patient (a Medication, a Device: :data:`SHARED_ELEMENTS`; a
    Substance a Medication names as an ingredient) that the resources of ``files`` (each with
    its resource type) name, whatever the reference form, and that no file holds: their ids by
    type, in the order first named."""
    named, held = _named_and_held(files)
    missing: dict[str, list[str]] = {}
    for key in named:
        if key not in held:
            rtype, _, rid = key.partition("/")
            missing.setdefault(rtype, []).append(rid)
    return missing


def _named_and_held(files: Sequence[tuple[str, Path]]) -> tuple[dict[str, None], set[str]]:
    """What :func:`missing_shared` finds: the keys named, in order, and the keys held."""
    named: dict[str, None] = {}
    held: set[str] = set()
    try:
        for rtype, path in files:
            if rtype not in _HELD_TYPES and rtype not in SHARED_ELEMENTS:
                continue
            with open_ndjson(path) as f:
                for line in f:
                    try:
                        resource = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue  # blank, or left out and listed by the download
                    if not isinstance(resource, dict):
                        continue
                    if rtype in _HELD_TYPES:
                        held.add(f"{resource.get('resourceType')}/{resource.get('id')}")
                        named.update(dict.fromkeys(k for _, k in substance_refs_of(resource)))
                    else:
                        named.update(dict.fromkeys(key for _, key in shared_refs_of(resource)))
    except GZIP_ERRORS as exc:
        raise not_gzip(exc, path) from None
    except OSError as exc:
        raise describe(exc, "cannot read the NDJSON file") from None
    return named, held


async def _read_missing_shared(
    client: FhirClient, folder: Path, files: Sequence[tuple[str, Path]]
) -> list[str]:
    """Read over REST by id the resources of no patient that the export's resources name but
    it lacks (:func:`missing_shared`: a server may leave Medications out of a Group export:
    they are in no patient's compartment), into :data:`SHARED_FILE` (0600), as ``fhirtis
    run`` reads the ones a search did not include. Those the server does not hold either stay
    missing: the evaluation reports them for each patient that uses one. A read that fails
    stops the run (the patients' data would be incomplete). Returns what the run should say."""
    missing = missing_shared(files)
    if not missing:
        return []
    requests: dict[str, int] = {}
    found: list[dict[str, Any]] = []
    try:
        for rtype, ids in missing.items():
            found += await read_by_id(client, rtype, ids, requests)
        # the Substances that the Medications just read name as an ingredient
        substances = {f"Substance/{rid}" for rid in missing.get("Substance", ())}
        more = dict.fromkeys(key for r in found for _, key in substance_refs_of(r))
        wanted = [key for key in more if key not in substances]
        if wanted:
            held = _named_and_held(files)[1]
            ids = [key.partition("/")[2] for key in wanted if key not in held]
            if ids:
                missing.setdefault("Substance", []).extend(ids)
                found += await read_by_id(client, "Substance", ids, requests)
    except FhirClientError as exc:
        raise CohortError(
            f"reading the {', '.join(missing)} the export names but lacks over REST failed "
            f"({type(exc).__name__}: {exc}); nothing was evaluated"
        ) from None
    try:
        fd = open_private(folder / SHARED_FILE)
        with os.fdopen(fd, "wb") as out:
            for resource in found:
                out.write(orjson.dumps(resource) + b"\n")
    except OSError as exc:
        raise describe(exc, "cannot write the work folder") from None
    asked = sum(len(ids) for ids in missing.values())
    log.info("read %d of %d resource(s) the export named but lacked by id", len(found), asked)
    return [
        f"read over REST by id: {len(found)} of the {asked} {', '.join(missing)} resource(s) "
        "the export's resources name but it does not hold"
        + ("" if len(found) == asked else " (the others are reported for each patient)")
    ]


def exported_patients(folder: Path) -> list[str]:
    """The ids of the export's patients: those of its Patients, and those its other resources
    belong to (a member whose Patient resource the export lacks still has its data there, and
    needs the REST-read types as much as any other). Lines that are not resources, or name no
    patient by a FHIR id, are skipped here (reported when the file is partitioned)."""
    ids: set[str] = set()
    try:
        for path in sorted(p for p in folder.iterdir() if is_ndjson(p)):
            if path.name.startswith(REST_FILE_PREFIX):
                continue
            with open_ndjson(path) as f:
                for raw in f:
                    line = raw.strip().removeprefix(UTF8_BOM)
                    if not line:
                        continue
                    try:
                        resource = orjson.loads(line)
                        patient = patient_of(resource) if isinstance(resource, dict) else None
                    except (orjson.JSONDecodeError, BadLineError):
                        continue
                    if patient is not None:
                        ids.add(patient.removeprefix("Patient/"))
    except GZIP_ERRORS as exc:
        raise not_gzip(exc, path) from None
    except OSError as exc:
        raise describe(exc, "cannot read the NDJSON file") from None
    return sorted(ids)


async def _download(
    bulk: BulkExportClient, manifest: Manifest, folder: Path
) -> tuple[list[Path], list[tuple[str, str, str]]]:
    """The manifest's output files into ``folder`` (emptied first), its error files checked.
    Returns the files and what was lost on the way (bad lines, left out; files shorter than
    their count)."""
    if folder.exists():
        for old in folder.glob("*.ndjson"):
            old.unlink()
    private_dir(folder)
    problems: list[tuple[str, str, str]] = []

    def bad_line(exc: MalformedNdjson) -> None:  # the line is left out; the run lists it
        why = str(exc).rpartition(f"line {exc.line}: ")[2]
        problems.append((f"{exc.url} ({exc.resource_type})", f"line {exc.line}", why))

    paths = await bulk.download_to(manifest, folder, on_bad_line=bad_line)
    await _check_export_errors(bulk, manifest)
    problems.extend(_short_files(manifest, paths))
    return paths, problems


def _changed_shared(manifest: Manifest, paths: Sequence[Path], since: str) -> list[str]:
    """The types of the resources of no patient (a Medication, a Device that names no patient:
    :data:`SHARED_ELEMENTS`) in a ``_since`` export that changed after ``since``:
    ``meta.lastUpdated`` later, or not given. One sent only because a changed resource
    references it (unchanged since) is not counted, nor a Device of a patient (its patient is
    in the export)."""
    cutoff = instant_or_none(since)
    changed: list[str] = []
    for file, path in zip(manifest.output, paths, strict=True):
        if file.type not in _SHARED_TYPES:
            continue
        try:
            with path.open("rb") as f:
                for line in f:
                    resource = orjson.loads(line)
                    try:
                        if patient_of(resource) is not None:
                            continue
                    except BadLineError:
                        continue  # named by no literal reference: listed when partitioned
                    meta = resource.get("meta")
                    updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
                    when = instant_or_none(updated) if isinstance(updated, str) else None
                    if when is None or cutoff is None or when > cutoff:
                        changed.append(file.type)
        except OSError as exc:
            raise describe(exc, "cannot read the NDJSON file") from None
    return changed


def _short_files(manifest: Manifest, paths: Sequence[Path]) -> list[tuple[str, str, str]]:
    """Output files holding fewer resources than the manifest's ``count`` (a download closed
    early by a proxy; bad lines, left out, are listed on their own as well): resources lost.
    ``paths`` are ``download_to``'s, one resource a line, in the order of the output."""
    lost: list[tuple[str, str, str]] = []
    for file, path in zip(manifest.output, paths, strict=True):
        if file.count is None:
            continue
        try:
            with path.open("rb") as f:
                read = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except OSError as exc:
            raise describe(exc, "cannot read the NDJSON file") from None
        if read < file.count:
            lost.append(
                (
                    f"{file.url.partition('?')[0]} ({file.type})",  # no signed query
                    "whole file",
                    f"the manifest announced {file.count} resource(s), {read} read",
                )
            )
    return lost


async def _release(bulk: BulkExportClient, status_url: str) -> None:
    """``DELETE`` the export job once its files are read, so that the server removes them
    (patient data; Oracle Health asks for it, the IG allows it). Best effort: a server that
    refuses or fails it leaves the files to expire."""
    try:
        await bulk.cancel(status_url)
    except FhirClientError as exc:
        log.info("the bulk export's files were not released (%s)", type(exc).__name__)


async def _check_export_errors(bulk: BulkExportClient, manifest: Manifest) -> None:
    """Read the manifest's error files (NDJSON OperationOutcomes, Bulk Data IG v2): an issue
    of severity error or fatal means some data was not exported, so the run stops before
    anything is evaluated and the transaction time is not recorded (the next run exports the
    same data again). Information and warnings are logged as counts. Only severities and issue
    codes are reported: diagnostics may name a patient."""
    if not manifest.error:
        return
    failed: dict[str, int] = {}
    other = 0
    async for _, outcome in bulk.download(manifest, manifest.error):
        for issue in outcome.get("issue") or []:
            if not isinstance(issue, dict):
                continue
            if issue.get("severity") in ("error", "fatal"):
                code = str(issue.get("code") or "unknown")
                failed[code] = failed.get(code, 0) + 1
            else:
                other += 1
    if other:
        log.warning("the bulk export reported %d warning or information issue(s)", other)
    if failed:
        count = sum(failed.values())
        codes = ", ".join(f"{code} {n}" for code, n in sorted(failed.items()))
        raise CohortError(
            f"the bulk export reported {count} error(s) ({codes}): some data was not exported, "
            "so nothing was evaluated; the next run exports the same data again"
        )
