"""Group a cohort's NDJSON resources by patient, on disk, in bounded memory.

A Bulk Data export is one NDJSON file per resource type; evaluating a patient needs all of that
patient's resources together. Loading the cohort into memory does not scale, so the resources
are streamed line by line into an embedded SQLite database (one table, indexed by patient), and
read back one patient at a time. SQLite is chosen over an external sort because it is in the
standard library, survives a crash (the store is reusable by a resumed run), and answers "every
resource of patient X" and "resource Type/id" (for Medications, which belong to no patient)
with an index look-up. Memory stays bounded by the largest patient, not the cohort.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import orjson

from fhirtis.fhir.bundle import PatientResources, alias_steps_by_id
from fhirtis.fhir.extract.common import unversioned
from fhirtis.fhir.extract.patient import patient_ref_in
from fhirtis.fhir.needs import NEEDS
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.primitives import is_id
from fhirtis.fhir.resource_types import KNOWN_RESOURCE_TYPES, NOT_A_RESOURCE_TYPE
from fhirtis.registry.errors import CohortError, db_faults

Json = dict[str, Any]
_PATIENT_KEYS = ("subject", "patient")
GZIP_SUFFIX = ".ndjson.gz"
UTF8_BOM = b"\xef\xbb\xbf"  # opens a file written by some Windows tools; not JSON (orjson)


def is_ndjson(path: Path) -> bool:
    """An NDJSON file of an export: ``*.ndjson``, or ``*.ndjson.gz`` (an export kept
    compressed, as Bulk Data clients often store it)."""
    return path.name.endswith((".ndjson", GZIP_SUFFIX))


GZIP_MAGIC = b"\x1f\x8b"  # a gzip stream's first bytes; no NDJSON line begins so (not JSON)


def is_gzip(path: Path | str) -> bool:
    """A ``.ndjson.gz`` file, or an ``.ndjson`` one that holds a gzip stream: the body of a
    Bulk Data output file served with ``Content-Encoding: gzip`` (which a client SHOULD ask
    for: Bulk Data IG, Output File Request) saved as it came. OSError if it cannot be read."""
    if str(path).endswith(GZIP_SUFFIX):
        return True
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_ndjson(path: Path | str) -> IO[bytes]:
    """The file's NDJSON bytes (a gzip file, :func:`is_gzip`, decompressed as it is read)."""
    if is_gzip(path):
        return cast(IO[bytes], gzip.open(path, "rb"))  # a GzipFile reads bytes
    return open(path, "rb")


GZIP_ERRORS = (gzip.BadGzipFile, EOFError)
"""What reading a ``.ndjson.gz`` file that is not a complete gzip stream raises."""


def not_gzip(exc: Exception, path: Path | str) -> CohortError:
    """A file named ``.ndjson.gz`` that is not a complete gzip stream: the run stops, naming it."""
    return CohortError(f"cannot read the NDJSON file {path}: not a complete gzip file ({exc})")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS resource (
    key TEXT PRIMARY KEY,          -- "Type/id"
    patient TEXT,                  -- "Patient/id", or NULL for shared resources (Medication)
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS resource_patient ON resource (patient);
CREATE TABLE IF NOT EXISTS problem (file TEXT, line INTEGER, message TEXT);
"""


def _without_bom(line: bytes | str) -> bytes | str:
    """The first line of a file without the UTF-8 byte order mark some tools write."""
    if isinstance(line, bytes):
        return line.removeprefix(UTF8_BOM)
    return line.removeprefix("\ufeff")


class BadLineError(ValueError):
    """An NDJSON line that is not a FHIR resource (the message says why, without its content)."""


_KEY = re.compile(r"[A-Za-z]+/[A-Za-z0-9\-\.]{1,64}").fullmatch
"""A "Type/id" key of a resource type (letters) and a FHIR id: one match per line checks both."""


def read_line(line: bytes | str) -> tuple[dict[str, Any], str]:
    """One NDJSON line as a resource and its ``Type/id`` key, or :class:`BadLineError`. The id
    must be a FHIR id (a tab or a newline in it would also cut the work folder's lines apart)."""
    try:
        resource = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise BadLineError("not a FHIR resource: not valid JSON") from None
    if not isinstance(resource, dict):
        raise BadLineError("not a FHIR resource: not a JSON object")
    if "resourceType" not in resource:
        raise BadLineError("not a FHIR resource: no resourceType")
    if "id" not in resource:
        raise BadLineError("not a FHIR resource: no id")
    kind, rid = resource["resourceType"], resource["id"]
    key = f"{kind}/{rid}"
    if type(kind) is not str or type(rid) is not str or _KEY(key) is None:
        if not (isinstance(kind, str) and kind.isascii() and kind.isalpha()):
            raise BadLineError("not a FHIR resource: the resourceType is not a resource type")
        raise BadLineError("not a FHIR resource: the id is not a FHIR id")
    if kind not in KNOWN_RESOURCE_TYPES:  # OBSERVATION: stored, it would be read by no one
        raise BadLineError(f"not a FHIR resource: it has {NOT_A_RESOURCE_TYPE}")
    return resource, key


OUTCOME_TYPE = "OperationOutcome"
ERROR_FOLDER = "error"
"""Where a Bulk Data client keeps the manifest's ``error`` files (NDJSON OperationOutcomes):
smart-on-fhir/bulk-data-client, the IG's reference client, saves them in ``error/``."""


def export_framing(line: bytes | str) -> Json | None:
    """A line without an ``id`` (which :func:`read_line` requires of a resource) that an export
    writes beside its resources, or None: an OperationOutcome (an error file's, Bulk Data IG:
    what the server could not export), a ``deleted`` file's Bundle (:func:`is_deletion_bundle`;
    smart-on-fhir/bulk-data-server writes them without an id), or the ``Parameters`` header
    that opens each patient's block of an export ``organizeOutputBy`` Patient (IG 3.0.0; every
    parameter a ``header`` naming the patient by ``valueReference``)."""
    try:
        resource = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(resource, dict):
        return None
    kind = resource.get("resourceType")
    if kind == OUTCOME_TYPE or is_deletion_bundle(resource):
        return resource
    parameters = resource.get("parameter")
    if (
        kind == "Parameters"
        and isinstance(parameters, list)
        and bool(parameters)
        and all(
            isinstance(p, dict) and p.get("name") == "header" and "valueReference" in p
            for p in parameters
        )
    ):
        return resource
    return None


_LOG_EVENT_KEYS = ("exportId", "timestamp", "eventId")


def is_export_log_event(line: bytes | str) -> bool:
    """A line of a Bulk Export log, which smart-on-fhir's Bulk Data clients write into the
    folder they download an export to (``log.ndjson``: smart-on-fhir/smart-fetch,
    smart-on-fhir/sample-bulk-fhir-datasets): a JSON object with ``exportId``, ``timestamp``
    and ``eventId`` (``kickoff``, ``download_complete``, ``export_complete``, ...) and no
    ``resourceType``. The client's account of its work, not the export's data: passed over."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(event, dict)
        and "resourceType" not in event
        and all(isinstance(event.get(k), str) for k in _LOG_EVENT_KEYS)
    )


def export_error(outcome: Json) -> str | None:
    """Why an export's OperationOutcome means lost data (an issue of severity ``error`` or
    ``fatal``: the server could not export something), by severity and issue code only (its
    text and diagnostics may name a patient); None for one that only informs or warns (IG
    v2.0.0: error files may hold informational outcomes)."""
    issues = outcome.get("issue")
    found: dict[str, int] = {}
    for issue in issues if isinstance(issues, list) else ():
        if isinstance(issue, dict) and issue.get("severity") in ("error", "fatal"):
            code = issue.get("code")
            name = f"{issue['severity']}: {code if isinstance(code, str) else 'no code'}"
            found[name] = found.get(name, 0) + 1
    if not found:
        return None
    said = ", ".join(f"{name}" + (f" ×{n}" if n > 1 else "") for name, n in sorted(found.items()))
    return (
        f"the export's OperationOutcome says the server could not export some data ({said}); "
        "the patients it concerns are evaluated without it"
    )


DELETED_NOTE = (
    "a Bundle of deleted resources (a Bulk Data deleted file, listed only for an export _since "
    "a time): this input looks like an incremental export, which holds only what changed since, "
    "not each patient's whole record"
)


def is_deletion_bundle(resource: Json) -> bool:
    """A Bulk Data ``deleted`` file's line: a ``transaction`` Bundle whose entries are all
    ``DELETE`` requests (Bulk Data IG, "Response - Output Manifest")."""
    if resource.get("resourceType") != "Bundle" or resource.get("type") != "transaction":
        return False
    entries = resource.get("entry")
    return (
        isinstance(entries, list)
        and bool(entries)
        and all(
            isinstance(e, dict)
            and isinstance(e.get("request"), dict)
            and e["request"].get("method") == "DELETE"
            for e in entries
        )
    )


SUBSETTED = b"SUBSETTED"
SUBSETTED_NOTE = (
    "marked SUBSETTED (meta.tag: exported with _elements, elements left out; R4 search.html "
    "_elements, Bulk Data IG): what the left-out elements held (a dose, a rate, a value) is "
    "missing from these patients' results"
)


def is_subsetted(resource: Json) -> bool:
    """Whether ``meta.tag`` holds v3-ObservationValue ``SUBSETTED``: a server left elements out
    (``_elements``, ``_summary``), so the resource is not the whole record."""
    meta = resource.get("meta")
    tags = meta.get("tag") if isinstance(meta, dict) else None
    return isinstance(tags, list) and any(
        isinstance(t, dict)
        and t.get("code") == "SUBSETTED"
        and t.get("system") in (None, "http://terminology.hl7.org/CodeSystem/v3-ObservationValue")
        for t in tags
    )


ExportLine = tuple[str, str | None, bool, bytes]
"""A resource line of an export: its ``Type/id``, its ``Patient/id`` (None: of no patient),
whether it is subsetted (:func:`is_subsetted`) and its version (:func:`version_of`)."""


def version_of(resource: Json) -> bytes:
    """The resource's ``meta.lastUpdated`` and ``meta.versionId`` as one JSON line (no tab, no
    newline), which :func:`version_meta` reads back: what tells its copies apart by version."""
    meta = resource.get("meta")
    if type(meta) is not dict:
        return _NO_VERSION
    updated, version_id = meta.get("lastUpdated"), meta.get("versionId")
    if updated is None and version_id is None:
        return _NO_VERSION
    return orjson.dumps([updated, version_id])


_NO_VERSION = b"[null,null]"


SOFT_DELETED_URL = "http://azurehealthcareapis.com/data-extensions/deleted-state"
"""The ``meta.extension`` by which the Microsoft FHIR server's export with
``includeAssociatedData=_deleted`` marks a deleted resource (``valueString`` ``soft-deleted``;
microsoft/fhir-server, KnownFhirPaths.AzureSoftDeletedExtensionUrl)."""


DELETED_MARK = b"deleted-state"
"""Bytes every line that :func:`is_soft_deleted` holds contains (checked before parsing it)."""


def is_soft_deleted(body: bytes) -> bool:
    """Whether a resource's NDJSON line is a deleted one (:data:`SOFT_DELETED_URL`): no longer
    part of the patient's record, as a server no longer returns it."""
    if DELETED_MARK not in body:
        return False
    meta = orjson.loads(body).get("meta")
    extensions = meta.get("extension") if isinstance(meta, dict) else None
    return isinstance(extensions, list) and any(
        isinstance(e, dict)
        and e.get("url") == SOFT_DELETED_URL
        and e.get("valueString") == "soft-deleted"
        for e in extensions
    )


def version_meta(version: bytes) -> Json:
    """A ``meta`` of :func:`version_of`'s line (what ``newer_version`` compares)."""
    updated, version_id = orjson.loads(version)
    return {"meta": {"lastUpdated": updated, "versionId": version_id}}


def read_export_line(line: bytes) -> ExportLine | str | None:
    """One NDJSON line of an export: a resource (:data:`ExportLine`), an input problem (why,
    without the line's content: a line that is no FHIR resource, an OperationOutcome reporting
    an error, a ``deleted`` file's Bundle), or None for a line that is neither data nor a
    problem (an informational OperationOutcome, an ``organizeOutputBy`` header)."""
    try:
        resource, key = read_line(line)
    except BadLineError as exc:
        framing = export_framing(line)
        if framing is None:
            return None if is_export_log_event(line) else str(exc)
        resource, key = framing, ""
    if resource["resourceType"] == OUTCOME_TYPE:
        return export_error(resource)
    if is_deletion_bundle(resource):
        return DELETED_NOTE
    if not key:
        return None  # a patient block's header (organizeOutputBy): the export's framing
    try:
        patient = patient_of(resource)
    except BadLineError as exc:
        return str(exc)
    return key, patient, SUBSETTED in line and is_subsetted(resource), version_of(resource)


_PATIENTS: dict[str, str | None] = {}
""":func:`patient_of`'s reading of a reference text (every resource of a patient names it
again): "Patient/id", None when it names no patient (a literal reference to a resource of
another type), "" when it names one by no FHIR id, "#" when it is no literal reference."""
_PATIENTS_LIMIT = 65_536
_NOT_LITERAL = "#"
_LITERAL = re.compile(
    r"(?:https?://\S+/)?[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?"
).fullmatch
"""A literal reference (relative or absolute, version specific or not): ``Group/g1``."""


def _patient_named(reference: str) -> str | None:
    patient = _PATIENTS.get(reference, _PATIENTS)  # the dict itself: not read yet
    if patient is _PATIENTS:
        patient = patient_ref_in(reference)
        if patient is not None and not is_id(patient.removeprefix("Patient/")):
            patient = ""
        elif patient is None and _LITERAL(reference.strip()) is None:
            patient = _NOT_LITERAL  # urn:uuid:…, a contained "#id": it may name a patient
        if len(_PATIENTS) >= _PATIENTS_LIMIT:
            _PATIENTS.clear()
        _PATIENTS[reference] = patient
    return patient  # type: ignore[return-value]


def patient_of(resource: Json) -> str | None:
    """The "Patient/id" a resource belongs to (a Patient itself, or the patient its subject or
    patient reference names, relative or absolute, version specific or not); None for a
    resource of no patient (a Medication). :class:`BadLineError` when the reference names a
    patient by something that is not a FHIR id (the text is not repeated: it names a patient),
    and when a resource of a type that always belongs to a patient (:data:`_OF_A_PATIENT`)
    names none by a reference (no ``subject``/``patient``, or one that is no Reference), or,
    of a type whose subject is required (:data:`_SUBJECT_REQUIRED`), names by it no Patient
    (``Group/g1``, ``Medication/m1``, a reference with spaces around it)."""
    kind = resource.get("resourceType")
    if kind == "Patient" and isinstance(resource.get("id"), str):
        return f"Patient/{resource['id']}"
    of_a_patient = kind in _OF_A_PATIENT
    for key in _PATIENT_KEYS:
        value = resource.get(key)
        if not isinstance(value, dict):
            if value is not None and of_a_patient:  # a string, a list: no Reference
                raise BadLineError(f"the {key} is not a Reference: {_UNGROUPED}")
            continue
        ref = value.get("reference")
        if not isinstance(ref, str):
            if value.get("identifier") is not None:
                raise BadLineError(
                    f"the {key} names its patient by identifier only, not by a reference "
                    "to a Patient: the resource cannot be grouped with its patient"
                )
            if of_a_patient:  # no reference, or one that is no string
                raise BadLineError(f"the {key} has no reference text: {_UNGROUPED}")
            continue
        patient = _patient_named(ref)
        if patient == "":
            raise BadLineError("the patient reference Patient/… does not name a FHIR id")
        if patient == _NOT_LITERAL:
            raise BadLineError(
                f"the {key} reference is not a literal reference (a urn:uuid: or a contained "
                "'#' reference): the resource cannot be grouped with its patient"
            )
        if patient is not None:
            return patient
        if kind in _SUBJECT_REQUIRED:  # Medication/…, Group/…: the offline path excludes it
            raise BadLineError(f"the {key} reference names no Patient: {_UNGROUPED}")
    if kind in _SUBJECT_REQUIRED and all(resource.get(key) is None for key in _PATIENT_KEYS):
        raise BadLineError(f"the {kind} names no subject or patient: {_UNGROUPED}")
    return None


_OF_A_PATIENT = frozenset(need.resource_type for need in NEEDS) - {"Device"}
"""The types the evaluation reads that always belong to a patient (a Device may be no one's,
as a Medication is): one whose ``subject``/``patient`` is absent or no Reference with a
reference text cannot be grouped with its patient, and is an input problem rather than a
resource of no patient, which no patient would read (a dropped IVIG administration, a dropped
risk factor: a result that looks whole and is not)."""
_SUBJECT_REQUIRED = _OF_A_PATIENT - {"Observation"}
"""Of those, the types whose R4 ``subject`` is required (1..1): one without is malformed. An
Observation's is optional (0..1: one of a device or a location in a system-level export), so
an Observation without one stays a resource of no patient."""
_UNGROUPED = "the resource cannot be grouped with its patient"


@dataclass(frozen=True)
class LoadStats:
    files: int
    resources: int
    patients: int
    problems: int


class NdjsonStore:
    """An on-disk store of a cohort's resources, grouped by patient. SQLite's errors (a full
    work folder: ``database or disk is full``) are raised as CohortError naming the store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._fault():
            self._db = sqlite3.connect(path)
            try:
                self._db.executescript(_SCHEMA)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            except BaseException:
                self._db.close()
                raise

    def _fault(self, doing: str = "cannot write the work folder") -> AbstractContextManager[None]:
        return db_faults(doing, self.path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> NdjsonStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def load_lines(self, name: str, lines: Iterable[bytes | str], batch: int = 2000) -> int:
        """Stream one NDJSON source in; a bad line is recorded (file and line), not fatal."""
        with self._fault():
            return self._load_lines(name, lines, batch)

    def _load_lines(self, name: str, lines: Iterable[bytes | str], batch: int) -> int:
        rows: list[tuple[str, str | None, bytes]] = []
        count = 0
        for number, text in enumerate(lines, start=1):
            line = _without_bom(text) if number == 1 else text
            if not line.strip():
                continue
            try:
                resource, key = read_line(line)
                patient = patient_of(resource)
            except BadLineError as exc:
                if not is_export_log_event(line):
                    self._db.execute(
                        "INSERT INTO problem VALUES (?, ?, ?)", (name, number, str(exc))
                    )
                continue
            rows.append((key, patient, orjson.dumps(resource)))
            count += 1
            if len(rows) >= batch:
                self._insert(rows)
                rows = []
        if rows:
            self._insert(rows)
        self._db.commit()
        return count

    def _insert(self, rows: list[tuple[str, str | None, bytes]]) -> None:
        self._db.executemany(
            "INSERT INTO resource (key, patient, body) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET patient = excluded.patient, body = excluded.body",
            rows,
        )

    def load_folder(self, folder: Path) -> LoadStats:
        files = sorted(p for p in folder.iterdir() if is_ndjson(p))
        total = 0
        for file in files:
            try:
                with open_ndjson(file) as handle:
                    total += self.load_lines(file.name, handle)
            except GZIP_ERRORS as exc:
                raise not_gzip(exc, file) from None
        return LoadStats(len(files), total, len(self.patients()), len(self.problems()))

    def patients(self) -> list[str]:
        with self._fault("cannot read the work folder"):
            rows = self._db.execute(
                "SELECT DISTINCT patient FROM resource WHERE patient IS NOT NULL ORDER BY patient"
            )
            return [r[0] for r in rows]

    def problems(self) -> list[tuple[str, int, str]]:
        with self._fault("cannot read the work folder"):
            rows = self._db.execute("SELECT file, line, message FROM problem ORDER BY rowid")
            return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]

    def resources_of(self, patient: str) -> list[tuple[str, bytes]]:
        with self._fault("cannot read the work folder"):
            rows = self._db.execute(
                "SELECT key, body FROM resource WHERE patient = ? ORDER BY key", (patient,)
            )
            return [(r[0], r[1]) for r in rows]

    def shared(self, keys: Iterable[str]) -> dict[str, Json]:
        """Resources by "Type/id" (the Medications and Devices of no patient that a patient's
        resources reference)."""
        wanted = list(dict.fromkeys(keys))
        out: dict[str, Json] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            with self._fault("cannot read the work folder"):
                rows = self._db.execute(
                    f"SELECT key, body FROM resource WHERE key IN ({marks})", chunk
                ).fetchall()
            for key, body in rows:
                out[key] = orjson.loads(body)
        return out

    def patient_resources(self, patient: str) -> tuple[PatientResources, str]:
        """One patient's resources ready for the pipeline, and a digest of exactly that input."""
        rows = self.resources_of(patient)
        listed = [(key, orjson.loads(body)) for key, body in rows]
        refs = [ref for _, r in listed for ref in shared_refs_of(r)]
        shared = self.shared(shared_keys(refs))
        digest = input_digest(rows, {k: orjson.dumps(v) for k, v in shared.items()})
        resolve = {key: r for key, r in listed}
        resolve_shared(resolve, refs, shared)
        alias_steps_by_id(resolve, (r for _, r in listed))
        issues: list[Issue] = []
        return PatientResources(patient, listed, resolve, issues), digest

    def iter_patients(self) -> Iterator[str]:
        yield from self.patients()


def input_digest(own: Iterable[tuple[str, bytes]], shared: dict[str, bytes]) -> str:
    """A digest of exactly one patient's input: its resources and the shared ones it names."""
    h = hashlib.sha256()
    for key, body in own:
        h.update(key.encode())
        h.update(body)
    for key in sorted(shared):
        h.update(key.encode())
        h.update(shared[key])
    return h.hexdigest()


SHARED_ELEMENTS: dict[str, tuple[str, str]] = {
    n.resource_type: (n.reference_element, n.included_type)
    for n in NEEDS
    if n.reference_element is not None and n.included_type is not None
}
"""The element of a patient's resource that names a resource of no patient, and that type, by
the resource's type: a medication's ``medicationReference`` (Medication), a
DeviceUseStatement's ``device`` (a Device that names no patient, R4's example)."""


def shared_refs_of(resource: Json) -> Iterator[tuple[str, str]]:
    """The resource of no patient that ``resource`` names (:data:`SHARED_ELEMENTS`), as the
    reference is written and as its ``Type/id`` key: relative or absolute, version specific or
    not (Bulk Data IG v2, export: references are resolved by type and id within the file set).
    A malformed reference names none (the evaluation excludes its resource, saying why)."""
    element = SHARED_ELEMENTS.get(str(resource.get("resourceType")))
    if element is None:
        return
    name, target_type = element
    ref = resource.get(name)
    target = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(target, str) or _LITERAL(target.strip()) is None:
        return
    parts = unversioned(target.strip()).rsplit("/", 2)
    if len(parts) >= 2 and parts[-2] == target_type:
        yield target, f"{target_type}/{parts[-1]}"


def shared_keys(references: Iterable[tuple[str, str]]) -> list[str]:
    """The ``Type/id`` keys of :func:`shared_refs_of`'s references, each once, in order."""
    return list(dict.fromkeys(key for _, key in references))


def resolve_shared(
    resolve: dict[str, Json], references: Iterable[tuple[str, str]], shared: dict[str, Json]
) -> None:
    """Add the shared resources to ``resolve`` by key, and them or the patient's own (a Device
    of the patient) by the reference text that names them (an absolute or version-specific
    reference is looked up as written)."""
    for text, key in references:
        found = shared.get(key) or resolve.get(key)
        if found is not None:
            resolve[key] = found
            resolve.setdefault(text, found)
