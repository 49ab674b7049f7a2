"""Registry memory as the cohort grows: the peak resident memory of `fhirtis cohort` (the driver
and each Dask worker) and `fhirtis report`, on synthetic NDJSON exports of increasing size, with
the growth per 1,000 patients and what it would be at 100,000.

Each run is the CLI in its own process (a fresh ledger and work folder), sampled with psutil
every 50 ms with its child processes (a local Dask cluster's workers); peaks are resident set
sizes in MB. Runs: the local engine with ``--summaries``, the same command again (every patient
skipped: the ledger's done set), Dask with each ``--workers`` count, and ``fhirtis report`` over
the summaries (``--json``; with ``--plots`` also ``--out``, which draws every trajectory). The
work folder's size (``--keep-work-dir``) is printed against the export's.

``--per-partition N`` cuts each cohort into patients ÷ N partitions (fhirtis's own choice grows
them with the export up to 16 MB of NDJSON each), so that what grows beside the partition shows;
growth is taken between the last two sizes. Run-to-run noise is about ±20 MB.

    uv run --frozen python -m benchmarks.memory --patients 1000,3000,6000 --workers 1,2
    uv run --frozen python -m benchmarks.memory --workers 1 --per-partition 125
    uv run --frozen python -m benchmarks.memory --code ../fhirtis-before   # the same, older code
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1 << 20


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ``fhirtis ARGV…`` with the cohort cut into PARTITIONS hash partitions (0: as fhirtis chooses)
_CLI = (
    "import sys\n"
    "import fhirtis.registry.cohort as cohort\n"
    "from fhirtis.cli import main\n"
    "parts = int(sys.argv[1])\n"
    "if parts:\n"
    "    cohort.partition_count = lambda total, workers: parts\n"
    "sys.argv = ['fhirtis', *sys.argv[2:]]\n"
    "main()\n"
)


def peak_rss(args: list[str], code: str, partitions: int = 0) -> dict[str, float]:
    """Run ``fhirtis ARGS`` (from the checkout ``code``; a cohort cut into ``partitions``);
    the peak RSS (MB) of its process and of its largest child."""
    import psutil  # noqa: PLC0415 - with distributed, the [registry] extra

    env = {**os.environ, "PYTHONPATH": code}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLI, str(partitions), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=code,  # ``-m`` puts the working folder first on the path
    )
    root = psutil.Process(proc.pid)
    driver = 0
    children: dict[int, int] = {}
    while proc.poll() is None:
        try:
            driver = max(driver, root.memory_info().rss)
            for child in root.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                children[child.pid] = max(children.get(child.pid, 0), rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"fhirtis {' '.join(args)}: exit status {proc.returncode}")
    # a local cluster's worker processes (its nanny and semaphore tracker are small)
    workers = sorted(children.values(), reverse=True)
    return {
        "seconds": time.perf_counter() - started,
        "driver": driver / MB,
        "worker": (workers[0] / MB) if workers else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", default="1000,3000,6000")
    parser.add_argument("--workers", default="1,2", help="Dask worker counts ('' for none)")
    parser.add_argument("--plots", action="store_true", help="also `fhirtis report --out`")
    parser.add_argument(
        "--code", default=os.getcwd(), help="the fhirtis checkout to run (another to compare)"
    )
    parser.add_argument(
        "--per-partition",
        type=int,
        default=0,
        help="patients per hash partition (0: as fhirtis chooses, up to 16 MB of NDJSON each, "
        "so that partitions grow with small exports: give e.g. 125 to see what else grows)",
    )
    args = parser.parse_args()
    from tests.synthetic import make_cohort, write_ndjson  # noqa: PLC0415

    sizes = [int(n) for n in args.patients.split(",")]
    workers = [int(w) for w in args.workers.split(",") if w]
    rows: dict[str, list[tuple[int, dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in sizes:
            export = root / f"export{n}"
            write_ndjson(make_cohort(n, seed=1), export)
            runs: list[tuple[str, list[str]]] = []
            base = ["cohort", "--ndjson", str(export), "--no-progress"]
            summaries = root / f"summaries{n}.ndjson"
            local = [*base, "--ledger", str(root / f"l{n}.sqlite"), "--work-dir"]
            runs.append(
                (
                    "local",
                    [*local, str(root / f"w{n}"), "--summaries", str(summaries), "--keep-work-dir"],
                )
            )
            runs.append(("local, resumed", [*local, str(root / f"w{n}")]))
            for w in workers:
                ledger, work = root / f"d{w}-{n}.sqlite", root / f"dw{w}-{n}"
                runs.append(
                    (
                        f"dask, {w} worker(s)",
                        [
                            *base,
                            "--ledger",
                            str(ledger),
                            "--work-dir",
                            str(work),
                            "--engine",
                            "dask",
                            "--workers",
                            str(w),
                        ],
                    )
                )
            runs.append(("report --json", ["report", str(summaries), "--json"]))
            if args.plots:
                runs.append(
                    ("report --out", ["report", str(summaries), "--out", str(root / f"out{n}")])
                )
            for name, cli in runs:
                parts = -(-n // args.per_partition) if args.per_partition else 0
                rows.setdefault(name, []).append((n, peak_rss(cli, args.code, parts)))
                if name == "local":
                    work = _size(root / f"w{n}")
                    print(
                        f"{n:>7,} patients: export {_size(export) / MB:,.0f} MB, work folder "
                        f"{work / MB:,.0f} MB, ledger {_size(root / f'l{n}.sqlite') / MB:,.0f} "
                        f"MB, summaries {_size(summaries) / MB:,.0f} MB",
                        flush=True,
                    )
            shutil.rmtree(export)
    # the last two sizes: from about 1,300 patients every NDJSON range is cut at 32 MB, and
    # from 16 MB × 4 × workers of NDJSON every partition is 16 MB, as at 100,000
    first = sizes[-2] if len(sizes) > 1 else sizes[0]
    print(
        f"\npeak RSS, MB (growth per 1,000 patients between {first:,} and {sizes[-1]:,}; "
        "at 100,000 patients by that growth)"
    )
    for name, points in rows.items():
        for part in ("driver", "worker"):
            if part == "worker" and not name.startswith("dask"):
                continue
            peaks = "  ".join(f"{n:>6,}: {r[part]:6.0f}" for n, r in points)
            (n0, r0), (n1, r1) = points[-2:] if len(points) > 1 else points * 2
            slope = (r1[part] - r0[part]) / max(n1 - n0, 1) * 1000
            at = r1[part] + slope * (100_000 - n1) / 1000
            label = f"{name} ({part})"
            print(f"  {label:<30} {peaks}   +{slope:6.1f} MB/1,000   100,000: {at:8,.0f} MB")
    print(json.dumps({k: [(n, r) for n, r in v] for k, v in rows.items()}))


if __name__ == "__main__":
    main()
