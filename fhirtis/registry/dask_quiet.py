"""Keeps the workers of ``fhirtis cohort --engine dask``'s own local cluster from printing a
failed task's traceback (a Dask *preload* module, for that cluster only).

A task that raises (a vanished NDJSON file, a full work folder) is logged by its worker as a
``Compute Failed`` block with a ``Traceback:`` field, on the terminal the run shares with its
local cluster; the same exception reaches the driver, which says it in one plain line and exits
1 (an unexpected one keeps its traceback there). Only that block is dropped: every other worker
message stays. Workers of a cluster of machines log where their operator reads them and are
left alone.
"""

from __future__ import annotations

import logging
from typing import Any

WORKER_LOGGER = "distributed.worker"


class _NoTaskFailures(logging.Filter):
    """Drops the worker's record of a task that raised (``Compute Failed``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


def quiet() -> None:
    """Drop task-failure records of this process's Dask worker (once)."""
    logger = logging.getLogger(WORKER_LOGGER)
    if not any(isinstance(f, _NoTaskFailures) for f in logger.filters):
        logger.addFilter(_NoTaskFailures())


def dask_setup(worker: Any) -> None:
    """Called by Dask when a worker starts with this module preloaded."""
    quiet()
