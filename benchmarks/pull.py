"""Pull, evaluate and write back against the real FHIR engine of the tests.

Loads N synthetic patients into ``tests/fhir_server`` (Medplum's router), then prints, for
concurrency 1 and 8: HTTP requests per patient (read and write, counted by the server),
patients/second for a dry run (pull + evaluate + plan) and for the first writing run, and beside
them a bare httpx loop sending the same reads (the ceiling the server allows).

    npm ci --prefix tests/fhir_server   # once
    uv run --frozen python benchmarks/pull.py [--patients 100]
    uv run --frozen python benchmarks/pull.py --patients 30 --profile full --profile oracle-like

With ``--profile NAME`` (repeatable; ``all`` for every profile) it measures instead, per server
profile of the test server: requests per patient and patients/s of a fhirtis dry run
(concurrency 8) beside a bare httpx loop sending the same reads the profile allows (one batch,
or the same searches as GETs at concurrency 8 per patient).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from fhirtis.fhir.queries import (
    existing_by_patient_urls,
    existing_entries,
    existing_urls,
    patient_read_entries,
    patient_read_urls,
)
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.io._capabilities import CACHE
from fhirtis.io._plans import read_plan
from fhirtis.pipeline.offline import evaluate_patient_resources, extractor_for
from fhirtis.pipeline.server import PatientRun, RunStatus, pull_patient, run_patient
from fhirtis.settings import Settings
from tests.synthetic import make_cohort

SERVER = Path(__file__).resolve().parent.parent / "tests" / "fhir_server"


def start_server(server: Path = SERVER) -> tuple[subprocess.Popen[str], str]:
    """Start ``server.mjs`` of the test FHIR server (or of a copy of it) on a free port."""
    node = shutil.which("node")
    if node is None or not (server / "node_modules").is_dir():
        raise SystemExit("needs node and `npm ci --prefix tests/fhir_server`")
    proc = subprocess.Popen(
        [node, "server.mjs", "--port", "0", "--watch-stdin"],
        cwd=server,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("LISTENING "):
        raise SystemExit(f"server did not start: {line!r}")
    return proc, f"http://{line.split()[1]}"


def load(root: str, bundles: list[dict[str, Any]]) -> list[str]:
    ids = []
    with httpx.Client(timeout=60) as http:
        for b in bundles:
            entries = [
                {
                    "resource": e["resource"],
                    "request": {
                        "method": "PUT",
                        "url": f"{e['resource']['resourceType']}/{e['resource']['id']}",
                    },
                }
                for e in b["entry"]
            ]
            http.post(
                f"{root}/fhir",
                json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
            ).raise_for_status()
            ids.append(
                next(
                    e["resource"]["id"]
                    for e in b["entry"]
                    if e["resource"]["resourceType"] == "Patient"
                )
            )
    return ids


def stats(root: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{root}/admin/stats").json()
    return data


def reset_stats(root: str) -> None:
    httpx.post(f"{root}/admin/reset-stats").raise_for_status()


async def bounded(n: int, items: list[str], fn: Callable[[str], Awaitable[Any]]) -> list[Any]:
    sem = asyncio.Semaphore(n)

    async def one(item: str) -> Any:
        async with sem:
            return await fn(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


async def fhirtis_pass(base: str, ids: list[str], conc: int, write: bool) -> list[PatientRun]:
    settings = Settings()
    async with FhirClient(FhirClientConfig(base_url=base, concurrency=conc)) as client:
        return await bounded(conc, ids, lambda p: run_patient(client, p, settings, write=write))


async def bare_pass(base: str, ids: list[str], conc: int, existing: dict[str, list[Any]]) -> None:
    """The same reads fhirtis makes, with nothing else: two batch POSTs per patient."""
    terminology = extractor_for(Settings()).t
    async with httpx.AsyncClient(timeout=60) as http:

        async def one(pid: str) -> None:
            for entries in (patient_read_entries(pid, terminology, 100), existing[pid]):
                bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
                (await http.post(base, json=bundle)).raise_for_status()

        await bounded(conc, ids, one)


async def existing_requests(base: str, ids: list[str]) -> dict[str, list[Any]]:
    settings = Settings()
    out = {}
    async with FhirClient(FhirClientConfig(base_url=base)) as client:
        for pid in ids:
            res = evaluate_patient_resources(
                await pull_patient(client, pid, settings, {}), settings
            )
            out[pid] = existing_entries(res.derived, 100)
    return out


def timed(coro_fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = asyncio.run(coro_fn())  # type: ignore[arg-type]
    return time.perf_counter() - t0, result


PROFILES = ("full", "google-like", "no-transaction", "read-only-for-derived-types", "oracle-like")


async def prepare_bare(base: str, ids: list[str]) -> tuple[Any, dict[str, list[str]]]:
    """The profile's read plan and, per patient, the lookups of earlier output (as fhirtis
    would send them), computed before the bare pass is timed."""
    settings = Settings()
    async with FhirClient(FhirClientConfig(base_url=base)) as client:
        caps = await client.capabilities()
        existing_by_id = {}
        for pid in ids:
            res = evaluate_patient_resources(
                await pull_patient(client, pid, settings, {}), settings
            )
            absent = {d.resource_type for d in res.derived if not caps.has_type(d.resource_type)}
            no_ident = {
                d.resource_type
                for d in res.derived
                if d.resource_type != "AdverseEvent"
                and caps.search_param(d.resource_type, ("identifier",)) is None
            }
            existing_by_id[pid] = existing_urls(res.derived, 100, absent | no_ident)
            existing_by_id[pid] += existing_by_patient_urls(
                [d for d in res.derived if d.resource_type in no_ident - absent],
                lambda t, c=caps: c.search_param(t, ("patient", "subject")),
                100,
            )
    return read_plan(caps, 100), existing_by_id


async def bare_profile_pass(
    base: str, ids: list[str], conc: int, plan: Any, existing_by_id: dict[str, list[str]]
) -> None:
    """What the profile allows, without fhirtis: the same searches (its read plan), as one
    batch where searches in a batch work, else as GETs; plus the lookup of earlier output."""
    terminology = extractor_for(Settings()).t
    async with httpx.AsyncClient(timeout=60) as http:

        async def one(pid: str) -> None:
            reads = [u for _, u in patient_read_urls(pid, terminology, 100, plan.choices)]
            for urls in (reads, existing_by_id[pid]):
                if plan.mode == "batch":
                    entries = [{"request": {"method": "GET", "url": u}} for u in urls]
                    bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
                    (await http.post(base, json=bundle)).raise_for_status()
                else:
                    got = await asyncio.gather(*(http.get(f"{base}/{u}") for u in urls))
                    for r in got:
                        if r.status_code != 200:
                            raise SystemExit(f"bare GET refused: {r.status_code}")

        await bounded(conc, ids, one)


def profile_main(root: str, ids: list[str], profiles: list[str]) -> None:
    base = f"{root}/fhir"
    n = len(ids)
    print(f"{n} synthetic patients, concurrency 8, dry runs (pull + evaluate + plan)")
    print(f"{'profile':30}{'bare req/pt':>12}{'bare pt/s':>10}{'fhirtis req/pt':>16}{'pt/s':>8}")
    for profile in profiles:
        httpx.post(f"{root}/admin/profile", json={"profile": profile}).raise_for_status()
        CACHE.forget()
        plan, existing_by_id = asyncio.run(prepare_bare(base, ids))
        reset_stats(root)
        t_bare, _ = timed(lambda p=plan, e=existing_by_id: bare_profile_pass(base, ids, 8, p, e))
        bare_requests = stats(root)["requests"]
        reset_stats(root)
        t_dry, runs = timed(lambda: fhirtis_pass(base, ids, 8, False))
        assert all(r.status is RunStatus.DRY_RUN for r in runs), {r.status for r in runs}
        dry_requests = stats(root)["requests"]
        print(
            f"{profile:30}{bare_requests / n:>12.1f}{n / t_bare:>10.1f}"
            f"{dry_requests / n:>16.1f}{n / t_dry:>8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--profile", action="append", default=[], help="server profile(s)")
    args = parser.parse_args()
    proc, root = start_server()
    if args.profile:
        profiles = list(PROFILES) if "all" in args.profile else args.profile
        try:
            profile_main(root, load(root, list(make_cohort(args.patients))), profiles)
        finally:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=10)
        return
    base = f"{root}/fhir"
    try:
        ids = load(root, list(make_cohort(args.patients)))
        existing = asyncio.run(existing_requests(base, ids))
        rows = []
        for conc in (1, 8):
            reset_stats(root)
            t_bare, _ = timed(lambda c=conc: bare_pass(base, ids, c, existing))
            bare_requests = stats(root)["requests"]
            reset_stats(root)
            t_dry, runs = timed(lambda c=conc: fhirtis_pass(base, ids, c, False))
            assert all(r.status is RunStatus.DRY_RUN for r in runs), {r.status for r in runs}
            dry_requests = stats(root)["requests"]
            rows.append((conc, t_bare, bare_requests, t_dry, dry_requests))
        reset_stats(root)
        t_write, runs = timed(lambda: fhirtis_pass(base, ids, 8, True))
        assert all(r.status is RunStatus.WRITTEN for r in runs), {r.status for r in runs}
        write_stats = stats(root)
        reset_stats(root)
        t_again, runs = timed(lambda: fhirtis_pass(base, ids, 8, True))
        assert all(r.status is RunStatus.UNCHANGED for r in runs)
        again_stats = stats(root)
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)
    n = len(ids)
    print(
        f"{n} synthetic patients on the test FHIR server (Medplum router 4.5.2, one Node process)"
    )
    print(f"{'':36}{'requests/patient':>17}{'patients/s':>12}")
    for conc, t_bare, bare_req, t_dry, dry_req in rows:
        print(f"bare httpx reads, concurrency {conc:<6}{bare_req / n:>17.1f}{n / t_bare:>12.1f}")
        print(
            f"fhirtis dry run, concurrency {conc:<7}{dry_req / n:>17.1f}{n / t_dry:>12.1f}"
            f"   ({t_dry / t_bare:.2f}× the bare time)"
        )
    writes = write_stats["requests"] / n
    print(
        f"fhirtis first write, concurrency 8   {writes:>17.1f}{n / t_write:>12.1f}"
        f"   (committed writes: {write_stats['committed_writes']})"
    )
    print(
        f"fhirtis re-run, concurrency 8        {again_stats['requests'] / n:>17.1f}"
        f"{n / t_again:>12.1f}   (committed writes: {again_stats['committed_writes']})"
    )


if __name__ == "__main__":
    main()
