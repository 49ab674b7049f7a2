"""Why a registry run stopped: faults a user can act on, said plainly (no traceback)."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class CohortError(Exception):
    """A run cannot go on: the input cannot be read, the disk is full, the server refused.
    What is in the ledger stays valid; running again after the fault is fixed resumes.
    ``resumable`` False: running again cannot help as things are (the message says what
    does)."""

    def __init__(self, message: str, *, resumable: bool = True) -> None:
        super().__init__(message)
        self.resumable = resumable


_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
"""SQLite's codes for a file that is no sound database: "database disk image is malformed",
"file is not a database"."""


def describe(exc: OSError, doing: str) -> CohortError:
    """An OSError as a CohortError that says what was being done, where, and why."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        reason = "no space left on the device"
    where = f" {exc.filename}" if exc.filename else ""
    return CohortError(f"{doing}{where}: {reason}")


def describe_db(
    exc: sqlite3.Error, doing: str, path: Path | str, damaged: str | None = None
) -> CohortError:
    """A SQLite error (the ledger, the work folder's store) as a CohortError that says what was
    being done, on which file, and why. SQLite's errors are not OSErrors: a full disk is
    ``database or disk is full`` (SQLITE_FULL), a failed write ``disk I/O error``. ``damaged``:
    what to do when the file is no sound database (running again meets it again)."""
    reason = str(exc) or type(exc).__name__
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in reason:
        reason = f"no space left on the device ({reason})"
    if damaged is not None and code in _DAMAGED:
        return CohortError(f"{doing} {path}: {reason}: {damaged}", resumable=False)
    return CohortError(f"{doing} {path}: {reason}")


@contextmanager
def db_faults(doing: str, path: Path | str, damaged: str | None = None) -> Iterator[None]:
    """SQLite's errors within, raised as :func:`describe_db` says them."""
    try:
        yield
    except sqlite3.Error as exc:
        raise describe_db(exc, doing, path, damaged) from None
