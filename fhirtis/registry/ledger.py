"""The cohort ledger: per patient, what was evaluated and written, for which input, where, under
which clinical policy and by which fhirtis.

An embedded SQLite database (the default; a file beside the run, created 0600). A patient is
recorded only after its outcome is final (written, unchanged, evaluated offline, or failed).
Records are committed in batches (every :data:`BATCH` records or :data:`BATCH_SECONDS`, and at
the end), so a run killed at any moment — even with SIGKILL mid-write — loses at most the
patients in flight and the last uncommitted batch; the next run redoes those and, because writes
are idempotent (conditional creates, identifiers, re-planning against what the server holds),
never duplicates anything. A batch is held in memory and written in one short transaction, so
that no write lock is held between commits: runs of other cohorts may share the ledger.

A later run skips a patient only when all four of its :class:`RunKey` are unchanged: the input
digest, the server written to, the digest of the clinical policy in force and the fhirtis
algorithm version. Every patient a run sees (evaluated or skipped) is stamped with the run's
number, so that ``summaries(run)`` gives exactly the patients of one run; a run's number is
taken in one write transaction, so two runs sharing a ledger never get the same one.

SQLite's errors (a full disk: ``database or disk is full``; ``disk I/O error``; a file that is
no database) are raised as :class:`~fhirtis.registry.errors.CohortError` naming the ledger: the
run stops with a plain message, and what was committed stays valid (the batch that was not is
done again by the next run).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fhirtis.registry.errors import CohortError, db_faults
from fhirtis.registry.partition import private_tree

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patient (
    patient TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    status TEXT NOT NULL,      -- evaluated | written | unchanged | failed | not-found
    recorded REAL NOT NULL,    -- unix time
    error TEXT,
    summary BLOB               -- the patient's summary record (JSON), when evaluated
);
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT);
"""
# Columns added after the first release: an older ledger gains them (empty), so that none of its
# patients matches a run key and every one is done again.
_ADDED = (
    ("server", "TEXT NOT NULL DEFAULT ''"),
    ("policy", "TEXT NOT NULL DEFAULT ''"),
    ("version", "TEXT NOT NULL DEFAULT ''"),
    ("run", "INTEGER NOT NULL DEFAULT 0"),
)
_UPSERT = (
    "INSERT INTO patient (patient, digest, status, recorded, error, summary, server, "
    "policy, version, run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(patient) DO UPDATE SET digest = excluded.digest, "
    "status = excluded.status, recorded = excluded.recorded, error = excluded.error, "
    "summary = excluded.summary, server = excluded.server, policy = excluded.policy, "
    "version = excluded.version, run = excluded.run"
)
_SEEN = "UPDATE patient SET run = ? WHERE patient = ?"
FINAL_OK = frozenset({"evaluated", "written", "unchanged"})
BATCH = 500
BATCH_SECONDS = 2.0
PRIVATE_FILE = 0o600
DAMAGED = (
    "the ledger is damaged: restore it from a backup or give a new --ledger (its patients "
    "are then evaluated again; writes stay idempotent)"
)


@dataclass(frozen=True)
class RunKey:
    """What a patient's result depends on besides its input: where it is written ('' offline),
    the clinical policy (a digest of every value) and the fhirtis algorithm version."""

    server: str
    policy: str
    version: str


@dataclass(frozen=True)
class Entry:
    patient: str
    digest: str
    status: str
    error: str | None


def _private(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if p.exists():
            os.chmod(p, PRIVATE_FILE)


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        private_tree(path.parent)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE))
        with self._fault("cannot open the ledger"):
            self._db = sqlite3.connect(path)
            try:
                self._db.executescript(_SCHEMA)
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(patient)")}
                for name, kind in _ADDED:
                    if name not in columns:
                        self._db.execute(f"ALTER TABLE patient ADD COLUMN {name} {kind}")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.commit()
            except BaseException:
                self._db.close()
                raise
        _private(path)
        # a batch's statements, kept here until its commit: a transaction left open between
        # records would hold SQLite's write lock while the run waits (for a partition, for the
        # server), and another run on the ledger would stop on "database is locked"
        self._batch: list[tuple[str, list[tuple[Any, ...]]]] = []
        self._pending = 0
        self._last_commit = time.monotonic()
        self.run = 0

    def _fault(self, doing: str = "cannot write the ledger") -> AbstractContextManager[None]:
        return db_faults(doing, self.path, DAMAGED)

    def close(self) -> None:
        """Commit what is recorded and close; the connection is closed even when the commit
        fails (its batch is then lost, and done again by the next run)."""
        try:
            self.commit()
        finally:
            self._db.close()
            _private(self.path)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
            return
        # the run is stopping already: its own fault is the one to say (a commit that fails
        # too, on the same full disk, would hide it)
        with suppress(CohortError, OSError):
            self.close()

    def commit(self) -> None:
        """Write the batch in one short transaction. A batch that fails is dropped (the run
        stops on the fault, and the next run does those patients again)."""
        batch, self._batch = self._batch, []
        with self._fault():
            try:
                for sql, rows in batch:
                    self._db.executemany(sql, rows)
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise
        self._pending = 0
        self._last_commit = time.monotonic()

    def _read(self, doing: str = "cannot read the ledger") -> AbstractContextManager[None]:
        """Reads see this run's records: a batch still held is committed first."""
        if self._batch:
            self.commit()
        return self._fault(doing)

    def _written(self, n: int = 1) -> None:
        self._pending += n
        if self._pending >= BATCH or time.monotonic() - self._last_commit >= BATCH_SECONDS:
            self.commit()

    def start_run(self) -> int:
        """A new run number: the patients this run sees are stamped with it. Read and written
        in one write transaction (``BEGIN IMMEDIATE``): a second run starting meanwhile on the
        same ledger waits for it, and takes the next number."""
        self.commit()  # nothing of this connection's may be in the transaction
        with self._fault():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                last = int(self.get_value("last_run") or 0)
                self._db.execute(
                    "INSERT INTO run VALUES ('last_run', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (str(last + 1),),
                )
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise
        self.run = last + 1
        return self.run

    def get(self, patient: str) -> Entry | None:
        with self._read():
            row = self._db.execute(
                "SELECT patient, digest, status, error FROM patient WHERE patient = ?", (patient,)
            ).fetchone()
        return None if row is None else Entry(*row)

    def done(self, key: RunKey, *, write: bool) -> dict[str, str]:
        """patient → input digest, for every patient whose final outcome under ``key`` needs no
        new run (a success, and written if writing is asked)."""
        statuses = ("written", "unchanged") if write else tuple(FINAL_OK)
        marks = ",".join("?" * len(statuses))
        with self._read():
            rows = self._db.execute(
                f"SELECT patient, digest FROM patient WHERE status IN ({marks}) "
                "AND server = ? AND policy = ? AND version = ?",
                (*statuses, key.server, key.policy, key.version),
            )
            return dict(rows)

    def is_done(self, patient: str, digest: str, key: RunKey, *, write: bool) -> bool:
        """Done with this exact input, server, policy and version: a final success, and
        written if writing was asked."""
        with self._read():
            row = self._db.execute(
                "SELECT digest, status, server, policy, version FROM patient WHERE patient = ?",
                (patient,),
            ).fetchone()
        if row is None:
            return False
        d, status, server, policy, version = row
        if status not in FINAL_OK or (d, server, policy, version) != (
            digest,
            key.server,
            key.policy,
            key.version,
        ):
            return False
        return not (write and status == "evaluated")

    def record(
        self,
        patient: str,
        digest: str,
        status: str,
        key: RunKey,
        summary: bytes | dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """One patient's final outcome (committed with its batch). ``summary``: the record as
        JSON bytes, or as a dict."""
        body = summary if isinstance(summary, bytes | None) else orjson.dumps(summary, default=str)
        row = (patient, digest, status, time.time(), error, body, *_key_of(key), self.run)
        self._batch.append((_UPSERT, [row]))
        self._written()

    def seen(self, patients: list[str]) -> None:
        """Stamp patients skipped as unchanged with this run (their summary stays valid)."""
        self._batch.append((_SEEN, [(self.run, p) for p in patients]))
        self._written(len(patients))

    def counts(self) -> dict[str, int]:
        with self._read():
            return dict(self._db.execute("SELECT status, count(*) FROM patient GROUP BY status"))

    def summaries(self, run: int | None = None) -> Iterator[bytes]:
        """The summary records (JSON bytes), of one run's patients or (None) of all."""
        sql = "SELECT summary FROM patient WHERE summary IS NOT NULL"
        args: tuple[int, ...] = ()
        if run is not None:
            sql += " AND run = ?"
            args = (run,)
        with self._read():
            for (body,) in self._db.execute(sql + " ORDER BY patient", args):
                yield bytes(body)

    def failed(self) -> list[Entry]:
        with self._read():
            rows = self._db.execute(
                "SELECT patient, digest, status, error FROM patient "
                "WHERE status NOT IN ('evaluated', 'written', 'unchanged') ORDER BY patient"
            )
            return [Entry(*r) for r in rows]

    def get_value(self, key: str) -> str | None:
        with self._read():
            row = self._db.execute("SELECT value FROM run WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_value(self, key: str, value: str) -> None:
        self.set_values({key: value})

    def set_values(self, values: dict[str, str]) -> None:
        """Keep every value, committed together (a run killed meanwhile keeps none of them)."""
        with self._read("cannot write the ledger"):
            self._db.executemany(
                "INSERT INTO run VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )
        self.commit()

    def patients_of_run(self, run: int) -> list[str]:
        """The patients a run saw (evaluated, failed or skipped), as recorded so far."""
        with self._read():
            rows = self._db.execute(
                "SELECT patient FROM patient WHERE run = ? ORDER BY patient", (run,)
            )
            return [str(r[0]) for r in rows]


def _key_of(key: RunKey) -> tuple[str, str, str]:
    return key.server, key.policy, key.version
