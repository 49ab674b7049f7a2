"""Registry throughput on many cores: one NDJSON export, the local engine and Dask with 1, 2,
4, … worker processes, beside the orjson parse of the same files, with parallel efficiency
(speed-up over Dask with 1 worker ÷ workers).

The export is generated first (``tests.synthetic.write_ndjson``, seeded). Each run is a full
offline ``fhirtis cohort`` run (ingest, partitioning, evaluation, ledger) with a fresh ledger and
work folder. The local cluster is started before the clock starts, its workers ready for fhirtis
(``fhirtis.registry.dask_worker`` preloaded: imports, UCUM registry, terminology), as a
long-lived cluster's workers are; the local engine's process is made ready the same way. Stops
adding worker counts when ``--time-limit`` would be exceeded.

    uv run --frozen python -m benchmarks.scale --workers 1,2 --patients 1000
    uv run --frozen python -m benchmarks.scale --workers 1,2,4,8,16 --patients 8000   # 16 cores
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

import orjson

from fhirtis.registry.cohort import CohortOptions, run_cohort
from fhirtis.registry.dask_worker import warm
from fhirtis.settings import Settings
from tests.synthetic import make_cohort, write_ndjson


def _parse_seconds(folder: Path) -> float:
    started = time.perf_counter()
    for file in sorted(folder.glob("*.ndjson")):
        with file.open("rb") as f:
            for line in f:
                orjson.loads(line)
    return time.perf_counter() - started


def _run(
    folder: Path, work: Path, engine: str, workers: int, scheduler: str | None
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process: the driver, and a local cluster's scheduler,
    which runs in it)."""
    shutil.rmtree(work, ignore_errors=True)
    options = CohortOptions(
        ledger=work / "ledger.sqlite",
        work_dir=work / "work",
        engine=engine,
        workers=workers,
        scheduler=scheduler,
        progress=False,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    result = asyncio.run(run_cohort(Settings(), options, None, ndjson=folder))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    assert result.statuses.get("evaluated") == result.patients and not result.failed
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--time-limit", type=float, default=450.0, help="seconds, all of it")
    parser.add_argument("--skip-local", action="store_true", help="no local-engine run")
    args = parser.parse_args()
    deadline = time.monotonic() + args.time_limit
    counts = [int(w) for w in args.workers.split(",")]
    root = Path(tempfile.mkdtemp(prefix="fhirtis-scale-"))
    try:
        folder = root / "export"
        t0 = time.perf_counter()
        write_ndjson(make_cohort(args.patients, seed=8000), folder)
        megabytes = sum(p.stat().st_size for p in folder.glob("*.ndjson")) / 1e6
        print(
            f"{args.patients} synthetic patients, {megabytes:.0f} MB of NDJSON "
            f"(generated in {time.perf_counter() - t0:.0f} s); {os.cpu_count()} CPUs"
        )
        parse = _parse_seconds(folder)
        rows: list[tuple[str, int | None, float]] = []
        print(
            f"{'':24}{'seconds':>9}{'patients/s':>12}{'× parse':>9}{'speed-up':>10}{'eff.':>7}"
            f"{'driver CPU s':>14}"
        )
        print(f"{'orjson parse, 1 core':24}{parse:>9.2f}{args.patients / parse:>12,.0f}")
        warm()  # the local engine's process, as the Dask workers are when they start
        if not args.skip_local:
            seconds, _ = _run(folder, root / "local", "local", 1, None)
            rows.append(("local engine", None, seconds))
            print(
                f"{'local engine':24}{seconds:>9.2f}{args.patients / seconds:>12,.0f}"
                f"{parse / seconds:>9.3f}"
            )
        from fhirtis.registry.dask_engine import local_cluster  # noqa: PLC0415

        base: float | None = None
        driver_per_patient: list[float] = []  # driver CPU seconds per patient, each Dask run
        for workers in counts:
            if time.monotonic() > deadline:
                print(f"dask, {workers} workers: skipped (time limit)")
                continue
            cluster = local_cluster(workers)
            try:
                seconds, cpu = _run(
                    folder, root / "dask", "dask", workers, cluster.scheduler_address
                )
            finally:
                cluster.close()
            rate = args.patients / seconds
            if base is None:
                base = seconds * counts[0]  # one worker's time, from the first count
            speedup = base / seconds
            print(
                f"{f'dask, {workers} workers':24}{seconds:>9.2f}{rate:>12,.0f}"
                f"{parse / seconds:>9.3f}{speedup:>10.2f}{speedup / workers:>7.2f}{cpu:>14.2f}"
            )
            driver_per_patient.append(cpu / args.patients)
        print("speed-up: over Dask with one worker; efficiency: speed-up ÷ workers")
        if base is not None and driver_per_patient:
            _print_ceiling(args.patients / base, max(driver_per_patient), counts)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _print_ceiling(worker_rate: float, driver_seconds: float, counts: list[int]) -> None:
    """The efficiency the driver's own work allows, from figures measured above: the driver (one
    process) coordinates, records outcomes and runs a local cluster's scheduler; at most
    ``1 / driver_seconds`` patients/s pass through it, so N workers of ``worker_rate`` each can
    reach at most ``min(1, 1 / (driver_seconds × worker_rate × N))`` efficiency. A ceiling
    computed from this machine's measurements (its workers share the cores with the driver),
    not a measurement on N cores."""
    ceiling_rate = 1 / driver_seconds
    print(
        f"driver CPU per patient (most of the Dask runs): {1000 * driver_seconds:.2f} ms, "
        f"so at most {ceiling_rate:,.0f} patients/s pass through the driver; "
        f"one worker evaluates {worker_rate:,.0f} patients/s"
    )
    shown = sorted({*counts, 4, 8, 16})
    ceilings = ", ".join(f"{n}: {min(1.0, ceiling_rate / (worker_rate * n)):.2f}" for n in shown)
    print(f"efficiency ceiling set by the driver alone (workers: ceiling): {ceilings}")


if __name__ == "__main__":
    main()
