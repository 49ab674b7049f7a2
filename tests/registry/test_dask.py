"""The same cohort evaluated on a Dask cluster (a local cluster started by the test)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fhirtis.registry.cohort import CohortOptions, run_cohort
from fhirtis.registry.ledger import Ledger
from fhirtis.settings import Settings
from tests.synthetic import make_cohort, write_ndjson


def test_dask_engine_matches_the_local_engine(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    write_ndjson(make_cohort(8, seed=5), folder)
    results = {}
    for engine in ("local", "dask"):
        options = CohortOptions(
            ledger=tmp_path / f"{engine}.sqlite",
            work_dir=tmp_path / engine,
            engine=engine,
            partition_size=3,
            progress=False,
        )
        result = asyncio.run(run_cohort(Settings(), options, None, ndjson=folder))
        assert result.statuses == {"evaluated": 8}
        with Ledger(options.ledger) as ledger:
            results[engine] = {s["patient"]: s for s in ledger.summaries()}
    assert results["dask"] == results["local"]
