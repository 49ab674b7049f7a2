"""The HTTP service under load, against the real FHIR engine of the tests.

Starts the test FHIR server and ``fhirtis serve`` (each its own process), loads synthetic
patients, then for concurrency 1 and 8 prints requests/second and p50/p95/p99 latency of
``$myositis-evaluate`` (dry run) and of the CDS Hooks ``order-sign`` call (with prefetch), beside
the FHIR server's own latency for the same reads (what fhirtis itself adds is the difference).

    uv run --frozen python benchmarks/service.py [--patients 20] [--requests 80]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from benchmarks.pull import load, start_server
from fhirtis.fhir.queries import patient_read_entries
from fhirtis.pipeline.offline import extractor_for
from fhirtis.settings import Settings
from tests.synthetic import make_cohort


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_service(fhir_base: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "FHIRTIS_FHIR__BASE_URL": fhir_base}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fhirtis", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/metadata").status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("fhirtis serve did not start")


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return qs[49] * 1000, qs[94] * 1000, qs[98] * 1000


async def measure(
    n: int, concurrency: int, call: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
) -> tuple[float, list[float]]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=120) as http:

        async def one(i: int) -> None:
            async with sem:
                t0 = time.perf_counter()
                r = await call(http, i)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise SystemExit(f"unexpected {r.status_code}: {r.text[:300]}")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0), latencies


def cds_request(fhir_base: str, bundle: dict[str, Any]) -> dict[str, Any]:
    resources = [e["resource"] for e in bundle["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    med = next(r for r in resources if r["resourceType"] == "Medication")

    def searchset(kinds: set[str]) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in resources if r["resourceType"] in kinds],
        }

    order = {
        "resourceType": "MedicationRequest",
        "id": "draft-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient['id']}"},
        "medicationReference": {"reference": f"Medication/{med['id']}"},
        "dosageInstruction": [
            {
                "doseAndRate": [
                    {
                        "rateQuantity": {
                            "value": 300,
                            "unit": "mL/h",
                            "system": "http://unitsofmeasure.org",
                            "code": "mL/h",
                        }
                    }
                ]
            }
        ],
    }
    return {
        "hook": "order-sign",
        "hookInstance": "bench",
        "fhirServer": fhir_base,
        "context": {
            "userId": "Practitioner/1",
            "patientId": patient["id"],
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": order}],
            },
        },
        "prefetch": {
            "patient": patient,
            "weights": searchset({"Observation"}),
            "height": None,
            "bmi": None,
            "measures": searchset({"Observation"}),
            "administrations": searchset({"MedicationAdministration", "Medication"}),
            "medicationStatements": None,
            "medicationRequests": None,
            "conditions": searchset({"Condition"}),
            "devices": None,
            "procedures": None,
            "adverseEvents": None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=80)
    args = parser.parse_args()
    fhir_proc, root = start_server()
    fhir_base = f"{root}/fhir"
    service_proc = None
    try:
        bundles = list(make_cohort(args.patients))
        ids = load(root, bundles)
        service_proc, service = start_service(fhir_base)
        terminology = extractor_for(Settings()).t
        discovery = httpx.get(f"{service}/cds-services").json()["services"]
        sign = next(s["id"] for s in discovery if s["hook"] == "order-sign")
        headers = {"Authorization": "Bearer bench"}

        async def evaluate(http: httpx.AsyncClient, i: int) -> httpx.Response:
            pid = ids[i % len(ids)]
            return await http.post(f"{service}/Patient/{pid}/$myositis-evaluate", headers=headers)

        async def bare(http: httpx.AsyncClient, i: int) -> httpx.Response:
            pid = ids[i % len(ids)]
            entries = patient_read_entries(pid, terminology, 100)
            return await http.post(
                fhir_base, json={"resourceType": "Bundle", "type": "batch", "entry": entries}
            )

        cds_bodies = [cds_request(fhir_base, b) for b in bundles]

        async def cds(http: httpx.AsyncClient, i: int) -> httpx.Response:
            return await http.post(
                f"{service}/cds-services/{sign}", json=cds_bodies[i % len(cds_bodies)]
            )

        print(
            f"fhirtis serve (uvicorn, 1 process) against the test FHIR server; "
            f"{args.patients} patients, {args.requests} requests per row"
        )
        print(f"{'':44}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
        for conc in (1, 8):
            for label, fn in (
                ("FHIR server: the evaluate's read batch", bare),
                ("fhirtis $myositis-evaluate (dry run)", evaluate),
                ("fhirtis CDS Hooks order-sign (prefetch)", cds),
            ):
                rate, lat = asyncio.run(measure(args.requests, conc, fn))
                p50, p95, p99 = percentiles(lat)
                print(f"{label + f', c={conc}':44}{rate:>8.1f}{p50:>9.1f}{p95:>9.1f}{p99:>9.1f}")
    finally:
        if service_proc is not None:
            service_proc.terminate()
            service_proc.wait(timeout=10)
        if fhir_proc.stdin:
            fhir_proc.stdin.close()
        fhir_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
