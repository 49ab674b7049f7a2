"""Offline evaluation throughput on one core, beside the JSON parsing floor.

A seeded synthetic cohort (``tests.synthetic``) is serialised to bytes once; then, on the same
bytes, this measures ``json.loads`` alone, ``orjson.loads`` alone, and the full evaluation (parse,
extract facts, compute, derive the resources, plan the transaction), and the time spent in each
stage. Each measurement is repeated, in turns, and the fastest run kept (as ``timeit`` does: on a
shared machine the slower runs measure the neighbours). The line that matters is the ratio of the
orjson parse time to fhirtis's time on the same bytes (issue 13's goal: at least 0.1). All of it
runs under :func:`fhirtis.pipeline.batch_gc.batch_gc`, the collector settings of a registry
partition; ``--default-gc`` measures under CPython's defaults instead.

    uv run --frozen python -m benchmarks.evaluate [--patients 300] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from contextlib import nullcontext

import orjson

from fhirtis.clinical.patient import evaluate_patient
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.derive import derive_resources
from fhirtis.fhir.plan import plan_writes
from fhirtis.fhir.units import check_registry
from fhirtis.pipeline.batch_gc import batch_gc
from fhirtis.pipeline.offline import as_of_for, extractor_for
from fhirtis.settings import Settings
from tests.synthetic import make_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; best kept")
    parser.add_argument(
        "--default-gc", action="store_true", help="CPython's collector settings, not batch_gc's"
    )
    args = parser.parse_args()
    blobs = [orjson.dumps(b) for b in make_cohort(args.patients)]
    n_resources = sum(len(orjson.loads(b)["entry"]) for b in blobs)
    megabytes = sum(len(b) for b in blobs) / 1e6
    settings = Settings()
    extractor = extractor_for(settings)
    # warm up: the UCUM registry and the grammar are built once per process, not per patient
    check_registry()
    warm = read_patient_bundle(blobs[0])
    extractor.extract(warm.patient_ref, warm.resources, warm.resolve)

    def parse(loads: Callable[[bytes], object]) -> float:
        t0 = time.perf_counter()
        for b in blobs:
            loads(b)
        return time.perf_counter() - t0

    def evaluate_all() -> tuple[float, dict[str, float], int]:
        stages = dict.fromkeys(("read bundle", "extract", "compute", "derive", "plan"), 0.0)
        derived_count = 0
        t0 = time.perf_counter()
        for b in blobs:
            s = time.perf_counter()
            resources = read_patient_bundle(b)
            s1 = time.perf_counter()
            data = extractor.extract(resources.patient_ref, resources.resources, resources.resolve)
            s2 = time.perf_counter()
            facts = data.facts()
            evaluation = evaluate_patient(facts, settings.policy, as_of=as_of_for(data))
            s3 = time.perf_counter()
            derived = derive_resources(evaluation, data.patient_ref)
            s4 = time.perf_counter()
            plan_writes(derived, sorted(data.used.values()), evaluation.as_of)
            s5 = time.perf_counter()
            derived_count += len(derived)
            for name, (a, z) in zip(
                stages, ((s, s1), (s1, s2), (s2, s3), (s3, s4), (s4, s5)), strict=True
            ):
                stages[name] += z - a
        return time.perf_counter() - t0, stages, derived_count

    # The three measurements take turns, so that a busy minute slows each of them alike.
    t_json = t_orjson = float("inf")
    runs = []
    # as a registry partition runs (on either engine); the parses run under the same settings
    with nullcontext() if args.default_gc else batch_gc():
        for _ in range(args.repeat):
            t_json = min(t_json, parse(json.loads))
            t_orjson = min(t_orjson, parse(orjson.loads))
            runs.append(evaluate_all())
    t_full, stages, derived_count = min(runs, key=lambda run: run[0])

    print(
        f"offline evaluation, one core, {'default' if args.default_gc else 'batch'} GC: "
        f"{args.patients} synthetic patients, "
        f"{n_resources:,} input resources ({megabytes:.1f} MB), {derived_count:,} derived"
    )
    print(f"{'':28}{'seconds':>10}{'patients/s':>12}{'resources/s':>14}{'× json.loads':>14}")
    for label, t in (
        ("json.loads only", t_json),
        ("orjson.loads only", t_orjson),
        ("fhirtis evaluate", t_full),
    ):
        print(
            f"{label:28}{t:>10.3f}{args.patients / t:>12,.0f}"
            f"{n_resources / t:>14,.0f}{t / t_json:>14.1f}"
        )
    print(
        f"ratio of the orjson parse to fhirtis evaluate: {t_orjson / t_full:.3f} "
        f"(issue 13's goal: at least 0.1; best of {args.repeat} runs each)"
    )
    print("where the time goes (fhirtis evaluate):")
    for name, t in stages.items():
        print(f"  {name:26}{t:>10.3f}  {100 * t / t_full:5.1f} %")


if __name__ == "__main__":
    main()
