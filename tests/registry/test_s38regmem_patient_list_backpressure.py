"""``fhirtis cohort --patients/--patient-file`` (and a ``_since`` Group run's REST reads): a
patient's read was bounded by ``--concurrency``, but the read's slot was freed before the
evaluated patient was handed to the writes, whose own slots were taken: while the writes lag
(several requests a patient against one read), every other patient of the list was read and
evaluated and waited in memory with its derived resources (about 41 KiB a patient: over 4 GB for
a list of 100,000). A read's slot is now held until its patient is taken by a write slot: at most
``--concurrency`` patients are read ahead of the writes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.patient_run import PatientRun, RunStatus
from fhirtis.registry import cohort
from fhirtis.registry.cohort import CohortOptions, run_patient_list
from fhirtis.registry.evaluate import EvaluatedPatient
from fhirtis.settings import Settings

CONCURRENCY = 2
PATIENTS = 40


async def test_patients_are_not_read_far_ahead_of_their_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = 0
    ahead: list[int] = []  # patients read but not yet settled, whenever a settle starts
    settled = 0
    gate = asyncio.Event()

    async def pull(client: Any, pid: str, settings: Any, cache: Any) -> str:
        nonlocal reads
        reads += 1
        return pid

    async def no_terminology(resources: Any, settings: Any) -> None:
        return None

    def evaluate(resources: Any, digest: str, settings: Any, **kwargs: Any) -> EvaluatedPatient:
        return EvaluatedPatient(f"Patient/{resources}", digest, b"{}", (), (), None)  # type: ignore[arg-type]

    async def settle(client: Any, pid: str, evaluated: Any, **kwargs: Any) -> PatientRun:
        nonlocal settled
        ahead.append(reads - settled)
        await gate.wait()  # the writes lag behind the reads
        settled += 1
        return PatientRun(pid, RunStatus.UNCHANGED)

    monkeypatch.setattr(cohort, "pull_patient", pull)
    monkeypatch.setattr(cohort, "ask_terminology", no_terminology)
    monkeypatch.setattr(cohort, "evaluate_resources", evaluate)
    monkeypatch.setattr(cohort, "_resources_digest", lambda resources: f"d-{resources}")
    monkeypatch.setattr(cohort, "settle", settle)

    async def open_gate_when_idle() -> None:
        for _ in range(500):  # every task that can run without a write has run
            await asyncio.sleep(0)
        ahead.append(reads - settled)
        gate.set()

    options = CohortOptions(
        write=True,
        concurrency=CONCURRENCY,
        ledger=tmp_path / "ledger.sqlite",
        work_dir=tmp_path / "work",
        progress=False,
    )
    client = FhirClient(FhirClientConfig(base_url="http://fhir.invalid/fhir"))
    try:
        opener = asyncio.create_task(open_gate_when_idle())
        ids = [f"p{i:03d}" for i in range(PATIENTS)]
        result = await run_patient_list(ids, Settings(), options, client)
        await opener
    finally:
        await client.aclose()
    assert result.statuses == {"unchanged": PATIENTS}
    # settling: CONCURRENCY; read and waiting for a write slot: at most CONCURRENCY more
    assert max(ahead) <= 2 * CONCURRENCY, ahead
