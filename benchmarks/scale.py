"""Registry throughput on many cores: one NDJSON export, the local engine and Dask with 1, 2,
4, … worker processes, beside the orjson parse of the same files, with parallel efficiency
(speed-up over Dask with 1 worker ÷ workers).

The export is generated first (``tests.synthetic.write_ndjson``, seeded). Each run is a full
offline ``fhirtis cohort`` run (ingest, partitioning, evaluation, ledger) with a fresh ledger and
work folder. The local cluster is started before the clock starts, its workers ready for fhirtis
(``fhirtis.registry.dask_worker`` preloaded: imports, UCUM registry, terminology), as a
long-lived cluster's workers are; the local engine's process is made ready the same way. Stops
adding worker counts when ``--time-limit`` would be exceeded.

The driver (one process: it coordinates, records outcomes, and runs a local cluster's scheduler)
caps what any number of workers can reach. Its CPU is three parts: a fixed cost per run (the
client's connection, the ledger), a background cost per second that grows with the workers (the
scheduler's heartbeats and periodic callbacks, measured with the cluster idle), and a cost per
patient (results received, outcomes recorded). The last one is measured as the slope between the
full export and a small one on the same cluster, after taking out the background; the efficiency
ceiling at N workers is what the driver's remaining second of CPU per second allows, with the
background measured for N workers (idle clusters of 4, 8 and 16 processes start on any machine).

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


def idle_driver_load(scheduler: str, seconds: float = 2.0) -> float:
    """CPU seconds per second that this process spends while a client is connected to the
    cluster at ``scheduler`` and nothing runs (the scheduler's background, when it runs here)."""
    from distributed import Client  # noqa: PLC0415

    client = Client(scheduler)
    try:
        time.sleep(0.5)  # the connection settles
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        return (time.process_time() - cpu) / (time.perf_counter() - wall)
    finally:
        client.close()


def per_patient_cpu(
    full: tuple[int, float, float], small: tuple[int, float, float], load: float
) -> float:
    """The driver's CPU seconds per patient: the slope between two runs (patients, wall
    seconds, CPU seconds) on the same cluster, after the background ``load`` (CPU seconds per
    second) of each run's wall time is taken out; the fixed cost per run cancels."""
    (n, wall, cpu), (n_small, wall_small, cpu_small) = full, small
    return max(0.0, (cpu - cpu_small - load * (wall - wall_small)) / (n - n_small))


def driver_ceiling(worker_rate: float, per_patient: float, load: float, workers: int) -> float:
    """The efficiency that the driver allows ``workers`` workers of ``worker_rate`` patients/s
    each: the driver has one core (its threads share one interpreter lock), ``load`` of it goes
    to the background, and each patient costs ``per_patient`` seconds of the rest."""
    if per_patient <= 0:
        return 1.0
    capacity = max(0.0, 1.0 - load) / per_patient  # patients/s through the driver
    return min(1.0, capacity / (worker_rate * workers))


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

        small_folder = root / "export-small"
        small = max(10, args.patients // 40)
        write_ndjson(make_cohort(small, seed=8001), small_folder)
        base: float | None = None
        per_patient: list[float] = []  # the driver's CPU seconds per patient, each Dask run
        loads: dict[int, float] = {}  # the driver's background with the cluster idle, by workers
        for workers in counts:
            if time.monotonic() > deadline:
                print(f"dask, {workers} workers: skipped (time limit)")
                continue
            cluster = local_cluster(workers)
            try:
                loads[workers] = idle_driver_load(cluster.scheduler_address)
                small_run = _run(
                    small_folder, root / "dask", "dask", workers, cluster.scheduler_address
                )
                seconds, cpu = _run(
                    folder, root / "dask", "dask", workers, cluster.scheduler_address
                )
            finally:
                cluster.close()
            per_patient.append(
                per_patient_cpu((args.patients, seconds, cpu), (small, *small_run), loads[workers])
            )
            rate = args.patients / seconds
            if base is None:
                base = seconds * counts[0]  # one worker's time, from the first count
            speedup = base / seconds
            print(
                f"{f'dask, {workers} workers':24}{seconds:>9.2f}{rate:>12,.0f}"
                f"{parse / seconds:>9.3f}{speedup:>10.2f}{speedup / workers:>7.2f}{cpu:>14.2f}"
            )
        print("speed-up: over Dask with one worker; efficiency: speed-up ÷ workers")
        if base is not None and per_patient:
            shown = sorted({*counts, 4, 8, 16})
            for workers in shown:
                if workers not in loads and time.monotonic() < deadline:
                    cluster = local_cluster(workers)  # idle: only its background is measured
                    try:
                        loads[workers] = idle_driver_load(cluster.scheduler_address)
                    finally:
                        cluster.close()
            _print_ceiling(args.patients / base, max(per_patient), loads, shown)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _print_ceiling(
    worker_rate: float, per_patient: float, loads: dict[int, float], shown: list[int]
) -> None:
    """The efficiency the driver's own work allows (:func:`driver_ceiling`), from figures
    measured above: a ceiling computed from this machine's measurements (its workers share the
    cores with the driver), not a measurement on N cores."""
    print(
        f"driver CPU per patient, beyond its fixed cost and background (most of the Dask runs): "
        f"{1000 * per_patient:.3f} ms; one worker evaluates {worker_rate:,.0f} patients/s"
    )
    print(
        "driver background with the cluster idle (workers: ms of CPU per second): "
        + ", ".join(f"{n}: {1000 * loads[n]:.0f}" for n in shown if n in loads)
    )
    ceilings = ", ".join(
        f"{n}: {driver_ceiling(worker_rate, per_patient, loads[n], n):.2f}"
        for n in shown
        if n in loads
    )
    print(f"efficiency ceiling set by the driver alone (workers: ceiling): {ceilings}")


if __name__ == "__main__":
    main()
