"""Latency of the test FHIR server (``tests/fhir_server``) as its store grows.

For each store size N (default 20, 200 and 1000 synthetic patients, ~50-80 resources each) a
fresh server is started, the cohort is loaded with one PUT ``transaction`` per patient (as
``benchmarks/pull.py`` does), and then, on a sample of patients spread over the cohort:

* load transaction      - the PUT transactions of the load (median over all; and of the last 10%)
* patient batch         - the read ``batch`` fhirtis sends per patient
                          (``patient_read_entries``: Patient read + ~9 patient-scoped searches)
* patient batch x8      - the same batches from 8 concurrent clients (latency per request)
* cond-create txn       - fhirtis's write-back ``transaction``: one ``POST`` with
                          ``ifNoneExist: identifier=system|value`` per derived resource, plus
                          one Provenance (first run: everything is created)
* cond-create txn again - the same Bundle re-posted: every conditional create matches
* identifier search, no match - ``GET Observation?identifier=system|value`` matching nothing
                          (what each conditional create of a first write-back looks up)
* identifier search     - ``GET Type?identifier=system|value`` for one derived resource
* identifier batch      - fhirtis's ``existing_entries`` batch (identifier searches per type)

    npm ci --prefix tests/fhir_server   # once
    uv run --frozen python -m benchmarks.fhir_server_load [--sizes 20,200,1000] [--samples 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from benchmarks.pull import start_server
from fhirtis.fhir.codes import IDENTIFIER_SYSTEM
from fhirtis.fhir.queries import existing_entries, patient_read_entries
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.offline import evaluate_patient_resources, extractor_for
from fhirtis.pipeline.server import pull_patient
from fhirtis.settings import Settings
from tests.synthetic import make_cohort

SERVER = Path(__file__).resolve().parent.parent / "tests" / "fhir_server"
Json = dict[str, Any]


def stop_server(proc: subprocess.Popen[str]) -> None:
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(timeout=10)


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux; NaN elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "nan")
    return float(kb) / 1024


def put_transaction(bundle: Json) -> Json:
    entries = [
        {
            "resource": e["resource"],
            "request": {
                "method": "PUT",
                "url": f"{e['resource']['resourceType']}/{e['resource']['id']}",
            },
        }
        for e in bundle["entry"]
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def post_ok(http: httpx.Client, url: str, body: Json) -> Json:
    response = http.post(url, json=body)
    response.raise_for_status()
    data: Json = response.json()
    return data


def timed_post(http: httpx.Client, url: str, body: Json) -> tuple[float, Json]:
    """POST a JSON body (raising on an HTTP error): milliseconds and the response body."""
    t0 = time.perf_counter()
    data = post_ok(http, url, body)
    return (time.perf_counter() - t0) * 1000, data


def timed_get(http: httpx.Client, url: str) -> tuple[float, Json]:
    """GET (raising on an HTTP error): milliseconds and the response body."""
    t0 = time.perf_counter()
    response = http.get(url)
    response.raise_for_status()
    data: Json = response.json()
    return (time.perf_counter() - t0) * 1000, data


def summary(ms: list[float]) -> str:
    if not ms:
        return "-"
    return f"median {statistics.median(ms):9.1f} ms   max {max(ms):9.1f} ms   (n={len(ms)})"


async def pull_all(base: str, ids: list[str]) -> dict[str, Any]:
    settings = Settings()
    async with FhirClient(FhirClientConfig(base_url=base)) as client:
        return {pid: await pull_patient(client, pid, settings, {}) for pid in ids}


async def concurrent_batches(base: str, bodies: list[Json], conc: int) -> list[float]:
    sem = asyncio.Semaphore(conc)
    async with httpx.AsyncClient(timeout=None) as http:

        async def one(body: Json) -> float:
            async with sem:
                t0 = time.perf_counter()
                (await http.post(base, json=body)).raise_for_status()
                return (time.perf_counter() - t0) * 1000

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def run_size(n: int, samples: int, cond_samples: int, server: Path) -> dict[str, list[float]]:
    proc, root = start_server(server)
    base = f"{root}/fhir"
    results: dict[str, list[float]] = {}
    settings = Settings()
    terminology = extractor_for(settings).t
    try:
        with httpx.Client(timeout=None) as http:
            ids: list[str] = []
            load_ms: list[float] = []
            t_load0 = time.perf_counter()
            for bundle in make_cohort(n):
                load_ms.append(timed_post(http, base, put_transaction(bundle))[0])
                ids.append(
                    next(
                        e["resource"]["id"]
                        for e in bundle["entry"]
                        if e["resource"]["resourceType"] == "Patient"
                    )
                )
            results["load total (s)"] = [time.perf_counter() - t_load0]
            results["load transaction"] = load_ms
            results["load transaction, last 10%"] = load_ms[-max(1, n // 10) :]
            stats = http.get(f"{root}/admin/stats").json()
            results["resources stored"] = [sum(stats["resources"].values())]
            results["server RSS after load (MB)"] = [rss_mb(proc.pid)]

            step = max(1, n // samples)
            sample = ids[::step][:samples]
            batches = {
                pid: {
                    "resourceType": "Bundle",
                    "type": "batch",
                    "entry": patient_read_entries(pid, terminology, 100),
                }
                for pid in sample
            }
            # warm-up (FHIRPath/JIT caches), not measured
            post_ok(http, base, batches[sample[0]])
            results["patient batch"] = [timed_post(http, base, batches[pid])[0] for pid in sample]
            results["patient batch x8 concurrent"] = asyncio.run(
                concurrent_batches(base, [batches[pid] for pid in sample] * 4, 8)
            )

            miss_url = f"{base}/Observation?identifier=" + quote(
                f"{IDENTIFIER_SYSTEM}|no-such-identifier", safe="|:/"
            )
            results["identifier search, no match"] = [
                timed_get(http, miss_url)[0] for _ in range(3)
            ]

            cond_sample = sample[:cond_samples]
            pulled = asyncio.run(pull_all(base, cond_sample))
            evaluated = {
                pid: evaluate_patient_resources(pulled[pid], settings) for pid in cond_sample
            }
            plans = {pid: evaluated[pid].plan().bundle for pid in cond_sample}
            first: list[float] = []
            again: list[float] = []
            ident: list[float] = []
            ident_batch: list[float] = []
            sizes: list[float] = []
            for pid in cond_sample:
                plan = plans[pid]
                if plan is None:
                    continue
                sizes.append(len(plan["entry"]))
                ms, response = timed_post(http, base, plan)
                statuses = [e["response"]["status"] for e in response["entry"]]
                assert all(s.startswith("201") for s in statuses), statuses
                first.append(ms)
                ms, response = timed_post(http, base, plan)
                statuses = [e["response"]["status"] for e in response["entry"]]
                assert statuses.count("201 Created") == 1, statuses  # only the Provenance
                again.append(ms)
                derived = evaluated[pid].derived
                d = derived[0]
                url = f"{base}/{d.resource_type}?identifier=" + quote(
                    f"{IDENTIFIER_SYSTEM}|{d.identifier}", safe="|:/"
                )
                ms, found = timed_get(http, url)
                assert found["total"] == 1
                ident.append(ms)
                body = {
                    "resourceType": "Bundle",
                    "type": "batch",
                    "entry": existing_entries(derived, 100),
                }
                ident_batch.append(timed_post(http, base, body)[0])
            results["cond-create txn (entries/bundle)"] = sizes
            results["cond-create txn"] = first
            results["cond-create txn again"] = again
            results["identifier search"] = ident
            results["identifier batch"] = ident_batch
    finally:
        stop_server(proc)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="20,200,1000", help="comma-separated patient counts")
    parser.add_argument("--samples", type=int, default=10, help="patients measured per size")
    parser.add_argument(
        "--cond-samples",
        type=int,
        help="patients for the conditional-create and identifier timings (default: --samples)",
    )
    parser.add_argument(
        "--server-dir", type=Path, default=SERVER, help="server directory (to compare versions)"
    )
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args()
    raw: dict[int, dict[str, list[float]]] = {}
    for n in (int(s) for s in args.sizes.split(",")):
        cond = args.samples if args.cond_samples is None else args.cond_samples
        results = run_size(n, args.samples, cond, args.server_dir)
        raw[n] = results
        print(f"\n== {n} patients, {int(results['resources stored'][0])} resources ==", flush=True)
        print(f"  {'load total':32}{results['load total (s)'][0]:9.1f} s")
        print(f"  {'server RSS after load':32}{results['server RSS after load (MB)'][0]:9.0f} MB")
        for key, values in results.items():
            if key in ("load total (s)", "resources stored", "server RSS after load (MB)"):
                continue
            if key.endswith("(entries/bundle)"):
                size = f"median {statistics.median(values):9.0f}" if values else "-"
                print(f"  {'cond-create txn entries':32}{size}")
                continue
            print(f"  {key:32}{summary(values)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
