"""A registry run at scale: (a) a cohort from NDJSON files, (b) through the test FHIR server.

Prints patients/second, requests per patient and peak memory (each phase in its own process,
so peaks do not mix), beside the raw ceilings measured in the same run: the same NDJSON parsed
by ``orjson`` alone, and the same reads done by a bare httpx loop.

    uv run --frozen python -m benchmarks.cohort [--patients 10000] [--server-patients 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from tests.synthetic import make_cohort, write_ndjson


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_parse(folder: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    n = 0
    for file in sorted(folder.glob("*.ndjson")):
        with file.open("rb") as handle:
            for line in handle:
                orjson.loads(line)
                n += 1
    return {"seconds": time.perf_counter() - t0, "resources": n, "peak_mb": peak_mb()}


def phase_ndjson(folder: Path, work: Path) -> dict[str, float]:
    from fhirtis.registry.cohort import CohortOptions, run_cohort  # noqa: PLC0415
    from fhirtis.settings import Settings  # noqa: PLC0415

    options = CohortOptions(ledger=work / "ledger.sqlite", work_dir=work, progress=False)
    t0 = time.perf_counter()
    result = asyncio.run(run_cohort(Settings(), options, None, ndjson=folder))
    return {
        "seconds": time.perf_counter() - t0,
        "patients": result.patients,
        "evaluated": result.statuses.get("evaluated", 0),
        "peak_mb": peak_mb(),
    }


def phase_server(folder: Path, work: Path, base: str) -> dict[str, float]:
    from fhirtis.io import FhirClientConfig  # noqa: PLC0415
    from fhirtis.registry.cohort import CohortOptions, run_cohort  # noqa: PLC0415
    from fhirtis.settings import Settings  # noqa: PLC0415

    ids = []
    with (folder / "Patient.ndjson").open("rb") as handle:
        ids = [orjson.loads(line)["id"] for line in handle]
    root = base.removesuffix("/fhir")
    httpx.post(f"{root}/admin/reset-stats").raise_for_status()
    options = CohortOptions(
        write=True, concurrency=8, ledger=work / "ledger.sqlite", work_dir=work, progress=False
    )
    t0 = time.perf_counter()
    result = asyncio.run(run_cohort(Settings(), options, FhirClientConfig(base_url=base), ids=ids))
    seconds = time.perf_counter() - t0
    stats = httpx.get(f"{root}/admin/stats").json()
    return {
        "seconds": seconds,
        "patients": result.patients,
        "written": result.statuses.get("written", 0),
        "requests": stats["requests"],
        "peak_mb": peak_mb(),
    }


def phase_bare(folder: Path, base: str) -> dict[str, float]:
    from fhirtis.fhir.queries import patient_read_entries  # noqa: PLC0415
    from fhirtis.pipeline.offline import extractor_for  # noqa: PLC0415
    from fhirtis.settings import Settings  # noqa: PLC0415

    terminology = extractor_for(Settings()).t
    with (folder / "Patient.ndjson").open("rb") as handle:
        ids = [orjson.loads(line)["id"] for line in handle]

    async def go() -> None:
        sem = asyncio.Semaphore(8)
        async with httpx.AsyncClient(timeout=300) as http:

            async def one(pid: str) -> None:
                async with sem:
                    entries = patient_read_entries(pid, terminology, 100)
                    bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
                    (await http.post(base, json=bundle)).raise_for_status()

            await asyncio.gather(*(one(p) for p in ids))

    t0 = time.perf_counter()
    asyncio.run(go())
    return {"seconds": time.perf_counter() - t0, "patients": len(ids), "peak_mb": peak_mb()}


def run_phase(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.cohort", "--phase", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--server-patients", type=int, default=1_000)
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        fn = {
            "parse": phase_parse,
            "ndjson": phase_ndjson,
            "server": phase_server,
            "bare": phase_bare,
        }[name]
        paths = [Path(r) if not r.startswith("http") else r for r in rest]
        print(json.dumps(fn(*paths)))  # type: ignore[operator]
        return
    from benchmarks.pull import start_server  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        big = tmp_path / "big"
        write_ndjson(make_cohort(args.patients, seed=1), big)
        size_mb = sum(f.stat().st_size for f in big.glob("*.ndjson")) / 1e6
        parse = run_phase("parse", str(big))
        nd = run_phase("ndjson", str(big), str(tmp_path / "w1"))
        print(
            f"(a) {args.patients:,} patients from NDJSON ({parse['resources']:,.0f} resources, "
            f"{size_mb:,.0f} MB), one process"
        )
        print(
            f"    orjson parse only:   {parse['seconds']:8.1f} s  "
            f"{args.patients / parse['seconds']:10,.0f} patients/s  peak {parse['peak_mb']:6.0f} MB"
        )
        print(
            f"    fhirtis cohort:      {nd['seconds']:8.1f} s  "
            f"{nd['patients'] / nd['seconds']:10,.1f} patients/s  peak {nd['peak_mb']:6.0f} MB"
            f"  ({nd['seconds'] / parse['seconds']:.0f}× the parse)"
        )
        small = tmp_path / "small"
        write_ndjson(make_cohort(args.server_patients, seed=2), small)
        proc, root = start_server()
        try:
            base = f"{root}/fhir"
            entries = []
            for file in sorted(small.glob("*.ndjson")):
                for line in file.read_bytes().splitlines():
                    r = orjson.loads(line)
                    entries.append(
                        {
                            "resource": r,
                            "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                        }
                    )
            with httpx.Client(timeout=600) as http:
                for i in range(0, len(entries), 1000):
                    http.post(
                        base,
                        json={
                            "resourceType": "Bundle",
                            "type": "transaction",
                            "entry": entries[i : i + 1000],
                        },
                    ).raise_for_status()
            bare = run_phase("bare", str(small), base)
            srv = run_phase("server", str(small), str(tmp_path / "w2"), base)
        finally:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=30)
        n = args.server_patients
        print(f"(b) {n:,} patients through the test FHIR server, concurrency 8, --write")
        print(
            f"    bare httpx reads:    {bare['seconds']:8.1f} s  {n / bare['seconds']:10,.1f} "
            f"patients/s  peak {bare['peak_mb']:6.0f} MB  (1 request/patient)"
        )
        print(
            f"    fhirtis cohort:      {srv['seconds']:8.1f} s  {n / srv['seconds']:10,.1f} "
            f"patients/s  peak {srv['peak_mb']:6.0f} MB  "
            f"({srv['requests'] / n:.1f} requests/patient; {srv['written']:.0f} written)"
        )


if __name__ == "__main__":
    main()
