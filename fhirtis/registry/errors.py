"""Why a registry run stopped: faults a user can act on, said plainly (no traceback)."""

from __future__ import annotations

import errno


class CohortError(Exception):
    """A run cannot go on: the input cannot be read, the disk is full, the server refused.
    What is in the ledger stays valid; running again after the fault is fixed resumes."""


def describe(exc: OSError, doing: str) -> CohortError:
    """An OSError as a CohortError that says what was being done, where, and why."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        reason = "no space left on the device"
    where = f" {exc.filename}" if exc.filename else ""
    return CohortError(f"{doing}{where}: {reason}")
