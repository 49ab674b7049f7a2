"""Group a cohort's NDJSON by patient, in parallel: byte ranges in, hash partitions out.

A Bulk Data export is one NDJSON file per resource type; evaluating a patient needs all of that
patient's resources together. The files are cut into byte ranges (:func:`byte_ranges`, cut at
line ends); each range is read by one task (:func:`partition_range`), which writes every line,
tagged with its patient, to the partition ``crc32(patient) mod N`` — one file per range and
partition, so that tasks never share a file and need no lock. Resources that belong to no
patient (Medication) go to a ``shared`` partition that every patient may reference. Then each
partition is read whole (:func:`partition_patients`): memory holds one partition (the cohort ÷
N), never the cohort.

Hash partitioning to files, rather than a Dask bag or dataframe shuffle: the grouping needs no
scheduler-side shuffle (each range task writes its own files in one pass, each partition task
reads its own folder), the partitions survive the workers, and the same two functions are the
local engine (in one process, in order) and the Dask engine (on workers). The folder must be a
path every worker can read and write: a local path for a local cluster, a shared file system
(NFS, a cluster volume) for a cluster of machines.

Files are created 0600 in 0700 folders: they hold patient data.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from fhirtis.pipeline.pull import newer_version
from fhirtis.registry.errors import CohortError, describe
from fhirtis.registry.ndjson_store import (
    DELETED_MARK,
    ERROR_FOLDER,
    GZIP_ERRORS,
    SUBSETTED_NOTE,
    UTF8_BOM,
    is_gzip,
    is_ndjson,
    is_soft_deleted,
    not_gzip,
    open_ndjson,
    read_export_line,
    version_meta,
)

RANGE_BYTES = 32 * 1024 * 1024
SHARED = "shared"
VERSIONS = "versions"  # versions/<crc32(key) mod N>/: each patient's resource, its version
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
Rows = list[tuple[str, bytes]]  # ("Type/id", the resource's NDJSON line), sorted by key


@dataclass(frozen=True)
class ByteRange:
    path: str
    start: int
    end: int
    index: int  # the range's place: a later range wins for a repeated key of no newer version
    name: str = ""  # the file as input problems name it (``error/…`` for an error file)

    @property
    def label(self) -> str:
        return self.name or os.path.basename(self.path)


@dataclass
class RangeResult:
    index: int
    resources: int = 0
    bytes: int = 0
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # file, where, message


def byte_ranges(folder: Path, target: int = RANGE_BYTES) -> list[ByteRange]:
    """The NDJSON files of ``folder`` (sorted by name), then those of its ``error`` folder (an
    export's error files, as the Bulk Data reference client saves them: their OperationOutcomes
    are input problems, never data), cut into ranges of about ``target`` bytes; a gzip file
    (:func:`is_gzip`) is one range (a compressed stream cannot be entered in the middle).
    Raises CohortError when the folder or a file cannot be read."""
    errors = folder / ERROR_FOLDER
    try:
        files = [(p, "") for p in sorted(folder.iterdir()) if is_ndjson(p)]
        if errors.is_dir():
            files += [
                (p, f"{ERROR_FOLDER}/{p.name}") for p in sorted(errors.iterdir()) if is_ndjson(p)
            ]
        sizes = [(p, name, p.stat().st_size) for p, name in files]
    except OSError as exc:
        raise describe(exc, "cannot read the NDJSON folder") from None
    out: list[ByteRange] = []
    for path, name, size in sizes:
        if _gzip(path):
            out.append(ByteRange(str(path), 0, size, len(out), name))
            continue
        for start in range(0, max(size, 1), target):
            out.append(ByteRange(str(path), start, min(size, start + target), len(out), name))
    return out


def _gzip(path: Path) -> bool:
    """:func:`is_gzip`; a file that cannot be read is left to the task that reads it (whose
    fault names the file, on whichever worker)."""
    try:
        return is_gzip(path)
    except OSError:
        return False


def private_tree(path: Path) -> Path:
    """``path`` and every missing folder above it created 0700, whatever the umask (``mkdir
    -p`` would make the upper ones with the default mode); folders that exist are left as
    they are."""
    missing: list[Path] = []
    folder = path
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # made meanwhile by another process
            continue
        os.chmod(folder, PRIVATE_DIR)
    return path


def private_dir(path: Path) -> Path:
    """A folder for patient data, 0700 (and the missing folders above it)."""
    private_tree(path)
    os.chmod(path, PRIVATE_DIR)
    return path


@contextmanager
def private_files() -> Iterator[None]:
    """Files and folders created meanwhile (SQLite's journals, downloads, plots) are 0600 /
    0700: the process's umask is 077 until the block ends."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def open_private(path: Path) -> int:
    """A file descriptor of ``path`` created (or emptied) 0600 for writing."""
    return os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, PRIVATE_FILE)


def bucket_of(patient: str, partitions: int) -> int:
    return zlib.crc32(patient.encode()) % partitions


def partition_range(r: ByteRange, out_dir: str, partitions: int) -> RangeResult:
    """One range of one NDJSON file → its lines, tagged ``patient\\tkey\\tline``, appended to
    one file per partition. A bad line is a problem (file, byte offset, why), not fatal, and so
    are an export's OperationOutcome that reports an error and a Bulk ``deleted`` file's Bundle
    (neither is data, nor is the header of a patient's block: :func:`read_export_line`), and
    resources marked SUBSETTED (kept, one problem per range). A file that
    cannot be read, or a work folder that cannot be written, stops the run (CohortError)."""
    result = RangeResult(r.index)
    name = r.label
    buffers: dict[str, list[bytes]] = {}
    targets = [str(b) for b in range(partitions)]
    version_targets = [f"{VERSIONS}/{b}" for b in range(partitions)]
    subset_count = first_subsetted = 0
    try:
        with open_ndjson(r.path) as f:
            # a gzip file is one range, read to its end (its positions are those of the
            # decompressed bytes, so a byte offset in a message is an offset in the NDJSON text)
            end = float("inf") if isinstance(f, gzip.GzipFile) else r.end
            if r.start > 0:
                f.seek(r.start - 1)
                f.readline()  # the line that began before this range belongs to the previous one
            pos = f.tell()
            while pos < end:
                line = f.readline()
                if not line:
                    break
                offset, pos = pos, pos + len(line)
                line = line.strip()
                if offset == 0:  # a file written with a UTF-8 byte order mark (Windows tools)
                    line = line.removeprefix(UTF8_BOM).strip()
                if not line:
                    continue
                read = read_export_line(line)
                if not isinstance(read, tuple):
                    if read is not None:
                        result.problems.append((name, f"byte {offset}", read))
                    continue
                key, patient, subsetted, version = read
                if subsetted:
                    first_subsetted = offset if not subset_count else first_subsetted
                    subset_count += 1
                key_bytes = key.encode()
                if patient is None:
                    buffers.setdefault(SHARED, []).append(b"\t".join((b"", key_bytes, line)))
                else:  # bucket_of(patient), and the line that finds a copy under another one
                    patient_bytes = patient.encode()
                    target = targets[zlib.crc32(patient_bytes) % partitions]
                    buffers.setdefault(target, []).append(
                        b"\t".join((patient_bytes, key_bytes, line))
                    )
                    buffers.setdefault(
                        version_targets[zlib.crc32(key_bytes) % partitions], []
                    ).append(b"\t".join((key_bytes, patient_bytes, version)))
                result.resources += 1
                result.bytes += len(line)
    except GZIP_ERRORS as exc:
        raise not_gzip(exc, r.path) from None
    except OSError as exc:
        raise describe(exc, "cannot read the NDJSON file") from None
    if subset_count:  # one problem per range: an _elements export marks every resource
        where = f"{subset_count} resource(s) from byte {first_subsetted}"
        result.problems.append((name, where, SUBSETTED_NOTE))
    root = Path(out_dir)
    try:
        for target, lines in buffers.items():
            folder = private_dir(root / target)
            fd = open_private(folder / f"r{r.index:06d}.tsv")
            with os.fdopen(fd, "wb") as out:
                out.write(b"\n".join(lines) + b"\n")
    except OSError as exc:
        raise describe(exc, "cannot write the work folder") from None
    return result


def _lines(folder: Path) -> Iterator[bytes]:
    if not folder.is_dir():
        return
    for file in sorted(folder.iterdir()):  # in range order (see :func:`_keep`)
        with file.open("rb") as f:
            for line in f:
                if line.strip():
                    yield line.rstrip(b"\n")


def _keep(rows: dict[str, bytes], key: str, body: bytes) -> None:
    """``body`` as the copy of ``key`` in ``rows``, unless the copy there is a newer version.
    An export may hold a resource more than once (a type split over files whose names do not
    sort in the manifest's order, a patient block's repeated Medication, the Microsoft FHIR
    server's ``includeAssociatedData=_history``): as ``fhirtis run`` reads a resource returned
    twice, the newest copy is read (``meta.lastUpdated``, else an integer ``meta.versionId``:
    :func:`~fhirtis.pipeline.pull.newer_version`); where neither says, the later range's."""
    kept = rows.get(key)  # both copies are resources (objects): read_export_line read them
    if kept is not None and kept != body and newer_version(orjson.loads(kept), orjson.loads(body)):
        return
    rows[key] = body


def shared_resources(out_dir: str) -> dict[str, bytes]:
    """The resources that belong to no patient (Medications), by "Type/id"."""
    out: dict[str, bytes] = {}
    for line in _lines(Path(out_dir) / SHARED):
        _, key, body = line.split(b"\t", 2)
        _keep(out, key.decode(), body)
    return {key: body for key, body in out.items() if not is_soft_deleted(body)}


Stale = dict[str, set[str]]
"""By patient (``Patient/id``), the keys of the resources that are not read for it
(:func:`stale_copies`)."""


def stale_copies(out_dir: str, bucket: int) -> Stale:
    """Of the resources whose key falls in ``bucket``, the copies that name another patient
    than the copy :func:`_keep` reads (the newest): a resource charted on one patient and
    then moved to another, both versions exported, belongs to the one its newest version
    names, and is not read for the other (each copy is grouped with the patient it names, in
    another partition, so that only this pass over every key sees both)."""
    # one pass, in bytes; a set of patients only for a key that more than one names (rare)
    newest: dict[bytes, tuple[bytes, bytes]] = {}
    named: dict[bytes, set[bytes]] = {}
    try:
        for line in _lines(Path(out_dir) / VERSIONS / str(bucket)):
            key, patient, version = line.split(b"\t", 2)
            kept = newest.get(key)
            if kept is None:
                newest[key] = (patient, version)
                continue
            if patient != kept[0]:  # every copy before named kept[0], else the set exists
                named.setdefault(key, {kept[0]}).add(patient)
            if not newer_version(version_meta(kept[1]), version_meta(version)):
                newest[key] = (patient, version)
    except OSError as exc:
        raise describe(exc, "cannot read the work folder") from None
    stale: Stale = {}
    for key, patients in named.items():
        for patient in patients - {newest[key][0]}:
            stale.setdefault(patient.decode(), set()).add(key.decode())
    return stale


def merge_stale(found: Iterable[Stale]) -> Stale:
    """:func:`stale_copies` of every bucket, as one."""
    stale: Stale = {}
    for part in found:
        for patient, keys in part.items():
            stale.setdefault(patient, set()).update(keys)
    return stale


def partition_patients(out_dir: str, bucket: int) -> Iterator[tuple[str, Rows]]:
    """The patients of one partition, each with its resources sorted by key, patients in order:
    of a resource held more than once its newest copy (:func:`_keep`), and none that the export
    marks deleted (:func:`~fhirtis.registry.ndjson_store.is_soft_deleted`)."""
    grouped: dict[str, dict[str, bytes]] = {}
    try:
        for line in _lines(Path(out_dir) / str(bucket)):
            ref, raw_key, body = line.split(b"\t", 2)
            copies, key = grouped.setdefault(ref.decode(), {}), raw_key.decode()
            if key in copies:  # the usual key is met once: _keep only for a repeated one
                _keep(copies, key, body)
            else:
                copies[key] = body
    except OSError as exc:
        raise describe(exc, "cannot read the work folder") from None
    for patient in sorted(grouped):
        rows = [
            (key, body)
            for key, body in grouped.pop(patient).items()
            if DELETED_MARK not in body or not is_soft_deleted(body)
        ]
        if rows:  # a patient whose every resource is deleted is none of the export's
            yield patient, sorted(rows)


def partition_count(total_bytes: int, workers: int) -> int:
    """Enough partitions to spread the work (4 per worker) and to keep each one small (≤ 16 MB
    of NDJSON in memory at once)."""
    return max(4 * workers, -(-total_bytes // (16 * 1024 * 1024)), 1)


def total_bytes(ranges: list[ByteRange]) -> int:
    return sum(r.end - r.start for r in ranges)


def ensure_readable(ranges: list[ByteRange]) -> None:
    """Every file still there and readable before anything is evaluated."""
    for path in sorted({r.path for r in ranges}):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise describe(exc, "cannot read the NDJSON file") from None


__all__ = [
    "ByteRange",
    "CohortError",
    "RangeResult",
    "byte_ranges",
    "merge_stale",
    "partition_count",
    "partition_patients",
    "partition_range",
    "private_dir",
    "private_files",
    "private_tree",
    "shared_resources",
    "stale_copies",
]
