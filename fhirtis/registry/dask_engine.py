"""The same evaluation on a Dask cluster, for registries that outgrow one machine.

Dask distributed is used rather than Ray: it is pure Python (installs from PyPI in seconds, no
platform wheels of hundreds of MB), its ``LocalCluster`` starts in-process for tests, and its
``Client.submit``/``as_completed`` fit a stream of independent partitions. The driver reads
partitions of patients from the on-disk store and ships their raw rows to workers, so workers
need no shared file system; workers run only the pure evaluation; every write goes back through
the driver's idempotent path (``remote.settle``) and the ledger.

Point it at a real cluster with ``fhirtis cohort --engine dask --scheduler tcp://host:8786``
(the workers need fhirtis installed, the same version); without ``--scheduler`` a local cluster
of worker processes is started for the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fhirtis.registry.cohort import EvaluatedPatient, Row

MAX_IN_FLIGHT = 8  # partitions submitted ahead of the results consumed (bounds driver memory)


async def evaluate_on_dask(
    partitions: Iterator[list[Row]], settings_json: str, scheduler: str | None
) -> AsyncIterator[EvaluatedPatient]:
    from distributed import Client, LocalCluster, as_completed  # noqa: PLC0415

    from fhirtis.registry.cohort import evaluate_rows  # noqa: PLC0415

    cluster: Any = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        scheduler = cluster.scheduler_address
    client = Client(scheduler)
    try:
        pending = as_completed()
        in_flight = 0
        exhausted = False
        while True:
            while not exhausted and in_flight < MAX_IN_FLIGHT:
                chunk = next(partitions, None)
                if chunk is None:
                    exhausted = True
                    break
                pending.add(client.submit(evaluate_rows, chunk, settings_json, pure=False))
                in_flight += 1
            if in_flight == 0:
                return
            future = await asyncio.to_thread(next, pending)
            in_flight -= 1
            for evaluated in future.result():
                yield evaluated
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
