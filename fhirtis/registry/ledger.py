"""The cohort ledger: per patient, what was evaluated and written, for which input.

An embedded SQLite database (the default; a file beside the run). A patient is recorded only
after its outcome is final (written, unchanged, evaluated offline, or failed), in a committed
transaction, so a run killed at any moment — even with SIGKILL mid-write — loses at most the
patients in flight; the next run redoes those and, because writes are idempotent (conditional
creates, identifiers, re-planning against what the server holds), never duplicates anything.
The input digest lets a later run skip patients whose data did not change.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

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
FINAL_OK = frozenset({"evaluated", "written", "unchanged"})


@dataclass(frozen=True)
class Entry:
    patient: str
    digest: str
    status: str
    error: str | None


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.executescript(_SCHEMA)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(self, patient: str) -> Entry | None:
        row = self._db.execute(
            "SELECT patient, digest, status, error FROM patient WHERE patient = ?", (patient,)
        ).fetchone()
        return None if row is None else Entry(*row)

    def is_done(self, patient: str, digest: str | None, *, write: bool) -> bool:
        """Done with this exact input: a final success, and written if writing was asked."""
        entry = self.get(patient)
        if entry is None or entry.status not in FINAL_OK:
            return False
        if digest is not None and entry.digest != digest:
            return False
        return not (write and entry.status == "evaluated")

    def record(
        self,
        patient: str,
        digest: str,
        status: str,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        body = orjson.dumps(summary, default=str) if summary is not None else None
        self._db.execute(
            "INSERT INTO patient VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(patient) DO UPDATE SET "
            "digest = excluded.digest, status = excluded.status, recorded = excluded.recorded, "
            "error = excluded.error, summary = excluded.summary",
            (patient, digest, status, time.time(), error, body),
        )
        self._db.commit()

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, count(*) FROM patient GROUP BY status"))

    def summaries(self) -> Iterator[dict[str, Any]]:
        for (body,) in self._db.execute(
            "SELECT summary FROM patient WHERE summary IS NOT NULL ORDER BY patient"
        ):
            yield orjson.loads(body)

    def failed(self) -> list[Entry]:
        rows = self._db.execute(
            "SELECT patient, digest, status, error FROM patient "
            "WHERE status NOT IN ('evaluated', 'written', 'unchanged') ORDER BY patient"
        )
        return [Entry(*r) for r in rows]

    def get_value(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM run WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_value(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO run VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
        self._db.commit()
