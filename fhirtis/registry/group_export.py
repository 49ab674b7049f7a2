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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from fhirtis.fhir.needs import export_types
from fhirtis.io import BulkExportFailed, FhirClient, FhirClientError
from fhirtis.pipeline.server import pull_types
from fhirtis.registry.errors import CohortError, describe
from fhirtis.registry.ledger import Ledger
from fhirtis.registry.partition import PRIVATE_FILE, private_dir
from fhirtis.settings import Settings

if TYPE_CHECKING:
    from fhirtis.io import BulkExportClient, Manifest
    from fhirtis.registry.options import CohortOptions

log = logging.getLogger("fhirtis.registry.group_export")

EXPORT_TYPES = export_types()  # fhirtis.fhir.needs: what a patient's evaluation reads
REST_FILE_PREFIX = "rest."  # rest.<Type>.ndjson: resources read over REST (sorted after exports)


@dataclass(frozen=True)
class GroupExport:
    folder: Path  # the NDJSON files: the export's and those read over REST
    incremental: bool  # a ``_since`` export: only what changed
    notes: tuple[str, ...]  # what the run should say (no patient data)
    # the export's transactionTime: recorded as the next run's ``_since`` by the run, once
    # every patient is evaluated or skipped and the input had no problem (not before)
    transaction_time: str | None = None


async def export_group(
    client: FhirClient, group: str, options: CohortOptions, settings: Settings | None = None
) -> GroupExport:
    """Bulk Data ``Group/[id]/$export`` into ``work_dir/export``, ``_since`` the transaction
    time of the last run that completed cleanly (the ledger's ``bulk_transaction_time``; the
    run records the returned ``transaction_time`` there once it has, so that the next run asks
    only for what changed since, and a run that did not complete is exported again). A ``_since``
    export that lists deleted resources is followed by a full one. Types the export refuses
    (or ``options.rest_types``) are read over REST for each exported Patient."""
    from fhirtis.io import BulkExportClient  # noqa: PLC0415

    rest_types = tuple(t for t in EXPORT_TYPES if t in set(options.rest_types))
    with Ledger(options.ledger) as ledger:
        since = options.since or ledger.get_value("bulk_transaction_time")
    bulk = BulkExportClient(client)
    status_url, rest_types, since = await _kick_off(bulk, group, rest_types, since)
    manifest = await bulk.poll(status_url)
    if since is not None and manifest.deleted:
        # deleted files name ``Type/id`` only, not whose it was: a patient who only lost a
        # resource would keep a stale result, so every member is exported and evaluated
        log.warning(
            "the _since export lists deleted resources (%d file(s)); exporting the whole "
            "Group again",
            len(manifest.deleted),
        )
        await _release(bulk, status_url)
        status_url, rest_types, since = await _kick_off(bulk, group, rest_types, None)
        manifest = await bulk.poll(status_url)
    folder = options.work_dir / "export"
    if folder.exists():
        for old in folder.glob("*.ndjson"):
            old.unlink()
    private_dir(folder)
    try:
        await bulk.download_to(manifest, folder)
        await _check_export_errors(bulk, manifest)
    finally:
        await _release(bulk, status_url)
    notes: list[str] = []
    if rest_types:
        notes.append(
            f"read over REST, patient by patient (not in the server's Bulk export): "
            f"{', '.join(rest_types)}"
        )
        unread = await read_over_rest(
            client, folder, rest_types, settings or Settings(), options.concurrency
        )
        notes.extend(
            f"{rtype}: neither exported nor read over REST ({why}); evaluated without it"
            for rtype, why in sorted(unread.items())
        )
    return GroupExport(folder, since is not None, tuple(notes), str(manifest.transaction_time))


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
        details = issue.get("details")
        if isinstance(details, dict) and isinstance(details.get("text"), str):
            texts.append(details["text"])
        if isinstance(issue.get("diagnostics"), str):
            texts.append(issue["diagnostics"])
        texts.extend(e for e in issue.get("expression") or [] if isinstance(e, str))
    words = set(re.findall(r"[A-Za-z]+", " ".join(texts)))
    return {t for t in asked if t in words and t != "Patient"}


async def read_over_rest(
    client: FhirClient,
    folder: Path,
    types: Sequence[str],
    settings: Settings,
    concurrency: int,
) -> dict[str, str]:
    """Each exported Patient's resources of ``types`` (and the Medications they reference),
    searched over REST, into ``rest.<Type>.ndjson`` files (0600) in ``folder``. A read that
    fails stops the run (its patient's data would be incomplete). Returns the types the server
    cannot search either, each with why."""
    patients = exported_patients(folder)
    sem = asyncio.Semaphore(max(1, concurrency))
    files: dict[str, BinaryIO] = {}
    written: dict[str, int] = dict.fromkeys(types, 0)
    seen: set[str] = set()  # "Type/id" written (a Medication is shared by patients)
    unread: dict[str, str] = {}

    def write(resource: dict[str, Any]) -> None:
        rtype = resource.get("resourceType")
        key = f"{rtype}/{resource.get('id')}"
        if not isinstance(rtype, str) or key in seen:
            return
        seen.add(key)
        out = files.get(rtype)
        if out is None:
            path = folder / f"{REST_FILE_PREFIX}{rtype}.ndjson"
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, PRIVATE_FILE)
            out = files[rtype] = os.fdopen(fd, "wb")
        out.write(orjson.dumps(resource) + b"\n")
        written[rtype] = written.get(rtype, 0) + 1

    async def one(pid: str) -> None:
        async with sem:
            try:
                resources, skipped = await pull_types(client, pid, settings, types)
            except FhirClientError as exc:
                raise CohortError(
                    f"Patient/{pid}: reading {', '.join(types)} over REST failed "
                    f"({type(exc).__name__}: {exc}); nothing was evaluated"
                ) from None
        unread.update(skipped)
        for resource in resources:
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
    return unread


def exported_patients(folder: Path) -> list[str]:
    """The ids of the Patients in the export's Patient files (``Patient.*.ndjson``)."""
    ids: set[str] = set()
    try:
        for path in sorted(folder.glob("Patient.*.ndjson")):
            with path.open("rb") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        resource = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue  # reported when the file is partitioned
                    pid = resource.get("id") if isinstance(resource, dict) else None
                    if resource.get("resourceType") == "Patient" and isinstance(pid, str):
                        ids.add(pid)
    except OSError as exc:
        raise describe(exc, "cannot read the NDJSON file") from None
    return sorted(ids)


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
