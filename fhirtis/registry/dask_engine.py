"""The same evaluation on a Dask cluster, for registries that outgrow one core or one machine.

Dask distributed is used rather than Ray: it is pure Python (installs from PyPI in seconds, no
platform wheels of hundreds of MB), its ``LocalCluster`` starts in-process for tests, and its
``Client.map``/``as_completed`` fit two stages of independent tasks.

Ingest is parallel: the driver only cuts the NDJSON files into byte ranges; workers read their
ranges themselves and hash-partition the lines by patient into files (``partition``), then each
worker evaluates whole partitions and returns compact outcomes (summary bytes, and the derived
resources only when they are to be written). The driver coordinates, records outcomes in the
ledger in batches, and writes through the same idempotent path as the local engine. The set of
patients already done (patient → input digest) is scattered to the workers once, so unchanged
patients are skipped where they are read.

Point it at a real cluster with ``fhirtis cohort --engine dask --scheduler tcp://host:8786``:
the workers need fhirtis installed (the same version), started with ``--preload
fhirtis.registry.dask_worker`` (so that they are ready before their first task), and the NDJSON
folder and the work folder at the same path on every machine (a shared file system). Without
``--scheduler`` a local cluster of ``--workers`` processes is started for the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fhirtis.registry.evaluate import CohortJob, PartitionResult, evaluate_partition
from fhirtis.registry.partition import RangeResult, merge_stale, partition_range, stale_copies

PRELOAD = "fhirtis.registry.dask_worker"  # what every worker imports when it starts
QUIET = "fhirtis.registry.dask_quiet"  # the local cluster's workers print no task traceback


def local_cluster(workers: int) -> Any:
    """A local cluster of ``workers`` single-threaded worker processes, each made ready for
    fhirtis when it starts (``dask_worker``), not on its first task. A task that fails is not
    logged with its traceback on the run's terminal (``dask_quiet``): the driver says it."""
    from distributed import LocalCluster  # noqa: PLC0415 - the [registry] extra

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        # the scheduler serves HTTP even without a dashboard, by default on 8787 (a warning,
        # and another port, where that is taken): any free port, on the loopback only
        dashboard_address="127.0.0.1:0",
        preload=[PRELOAD, QUIET],
    )


async def evaluate_on_dask(
    job: CohortJob,
    *,
    scheduler: str | None,
    workers: int,
    problems: list[tuple[str, str, str]],
) -> AsyncIterator[PartitionResult]:
    from distributed import Client, as_completed  # noqa: PLC0415

    cluster: Any = None
    if scheduler is None:
        cluster = await asyncio.to_thread(local_cluster, workers)
        scheduler = cluster.scheduler_address
    client = await asyncio.to_thread(Client, scheduler)
    try:
        out_dir = str(job.out_dir)
        mapped = client.map(
            partition_range, job.ranges, out_dir=out_dir, partitions=job.partitions, pure=False
        )
        parts: list[RangeResult] = await asyncio.to_thread(client.gather, mapped)
        del mapped  # gathered: the workers need not hold them any longer
        for part in sorted(parts, key=lambda p: p.index):
            problems.extend(part.problems)
        buckets = range(job.partitions)
        found = client.map(stale_copies, [out_dir] * len(buckets), buckets, pure=False)
        stale = merge_stale(await asyncio.to_thread(client.gather, found))
        del found
        # a list of one: a dict given to scatter would be taken as many named values
        [done_on_workers, stale_on_workers, in_part_on_workers] = await asyncio.to_thread(
            client.scatter, [job.done, stale, job.read_in_part], broadcast=True
        )
        futures = [
            client.submit(
                evaluate_partition,
                out_dir,
                bucket,
                job.settings_json,
                done_on_workers,
                keep_derived=job.keep_derived,
                validate=job.validate,
                stale=stale_on_workers,
                read_in_part=in_part_on_workers,
                pure=False,
            )
            for bucket in range(job.partitions)
        ]
        # A worker keeps a task's result while the client holds its future: only
        # ``as_completed`` holds them, each until it is yielded, and the future is dropped once
        # its result is here, so a worker holds the partitions not yet received, not every
        # partition's outcomes (summaries, and the derived resources to write) until the run
        # ends (:func:`_released`).
        count = len(futures)
        pending = as_completed(futures)
        del futures
        for _ in range(count):
            result = await asyncio.to_thread(_released, pending)
            yield result
    finally:
        await asyncio.to_thread(client.close)
        if cluster is not None:
            await asyncio.to_thread(cluster.close)


def _released(pending: Any) -> PartitionResult:
    """The next partition's result to finish (``pending``: ``as_completed``), its future
    released: the worker that computed it frees it."""
    future = next(pending)
    try:
        result: PartitionResult = future.result()
    finally:
        future.release()
    return result
