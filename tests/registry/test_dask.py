"""The same cohort evaluated on a Dask cluster (a local cluster of worker processes started by
the test): the same summaries as the local engine, and evaluated by the workers, not by a
fallback in the driver."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from fhirtis.registry.cohort import CohortOptions, run_cohort
from fhirtis.registry.ledger import Ledger
from fhirtis.settings import Settings
from tests.synthetic import make_cohort, write_ndjson


def test_dask_engine_matches_the_local_engine(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    write_ndjson(make_cohort(8, seed=5), folder)
    with (folder / "Observation.ndjson").open("ab") as f:
        f.write(b"{broken\n")
    results = {}
    pids = {}
    problems = {}
    for engine in ("local", "dask"):
        options = CohortOptions(
            ledger=tmp_path / f"{engine}.sqlite",
            work_dir=tmp_path / engine,
            engine=engine,
            workers=2,
            partitions=3,
            progress=False,
        )
        result = asyncio.run(run_cohort(Settings(), options, None, ndjson=folder))
        assert result.statuses == {"evaluated": 8}
        pids[engine] = result.worker_pids
        problems[engine] = result.problems
        with Ledger(options.ledger) as ledger:
            results[engine] = list(ledger.summaries())
    assert len(results["local"]) == 8 and results["dask"] == results["local"]
    assert problems["dask"] == problems["local"] and len(problems["local"]) == 1
    assert pids["local"] == {os.getpid()}
    assert pids["dask"] and os.getpid() not in pids["dask"]  # evaluated by worker processes


def _ready() -> dict[str, bool]:
    """What a worker has loaded, seen from inside it (runs on the worker)."""
    import sys  # noqa: PLC0415

    from fhirtis.fhir.codes import terminology  # noqa: PLC0415

    return {
        "evaluation code": "fhirtis.registry.evaluate" in sys.modules,
        # ucumvert is imported only when the UCUM unit registry is built (~1 s a process)
        "unit registry": "ucumvert" in sys.modules,
        "terminology": terminology.cache_info().currsize > 0,  # type: ignore[attr-defined]
    }


def test_local_cluster_workers_are_ready_before_their_first_task() -> None:
    """Each worker process of the local cluster preloads the evaluation code, the unit registry
    and the shipped terminology when it starts, not on its first partition: with many workers,
    that start-up (seconds) would otherwise be paid inside the run, by every worker at once."""
    from distributed import Client  # noqa: PLC0415

    from fhirtis.registry.dask_engine import local_cluster  # noqa: PLC0415

    with local_cluster(2) as cluster, Client(cluster) as client:
        states = client.run(_ready)
    assert len(states) == 2
    for state in states.values():
        assert state == {"evaluation code": True, "unit registry": True, "terminology": True}
