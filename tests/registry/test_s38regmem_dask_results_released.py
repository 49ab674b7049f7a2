"""A Dask worker keeps a task's result while the client holds its future. The Dask engine held
every partition's future until the run ended, so the workers held every partition's outcomes
(each patient's summary, and with ``--write`` its derived resources: about 11 KiB a patient
offline, 41 KiB writing) until the end: memory that grew with the cohort (a 100,000-patient
registry: over 4 GB across the workers when writing). Each future is now released once its
result has reached the driver: the workers hold only the partitions not yet received."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from fhirtis.registry.evaluate import CohortJob, evaluate_partition, settings_for_partitions
from fhirtis.registry.partition import byte_ranges, private_dir
from fhirtis.settings import Settings
from tests.synthetic import make_cohort, write_ndjson

PARTITIONS = 4


async def test_each_partition_future_is_released_once_its_result_is_received(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client  # noqa: PLC0415

    from fhirtis.registry.dask_engine import evaluate_on_dask  # noqa: PLC0415

    folder = tmp_path / "export"
    write_ndjson(make_cohort(8, seed=7), folder)
    out_dir = private_dir(tmp_path / "work" / "partitions")
    submitted: list[weakref.ref[Any]] = []
    submit = Client.submit

    def recording_submit(self: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
        future = submit(self, func, *args, **kwargs)
        if func is evaluate_partition:
            submitted.append(weakref.ref(future))
        return future

    monkeypatch.setattr(Client, "submit", recording_submit)
    job = CohortJob(
        byte_ranges(folder),
        out_dir,
        PARTITIONS,
        settings_for_partitions(Settings()),
        {},
        keep_derived=False,
        validate=False,
    )
    held: list[int] = []
    patients = 0
    async for part in evaluate_on_dask(job, scheduler=None, workers=1, problems=[]):
        patients += len(part.outcomes)
        gc.collect()
        held.append(sum(ref() is not None for ref in submitted))
    assert patients == 8 and len(submitted) == PARTITIONS
    # after the k-th result, at most the PARTITIONS - k futures not yet received are held
    assert held == [PARTITIONS - k for k in range(1, PARTITIONS + 1)], held
