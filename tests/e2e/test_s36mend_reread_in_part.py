"""Whether a read was only part of the patient's data is said once, by the evaluation itself
(``read_in_part``, from the pull's ``PatientResources.read_in_part``), and ``settle`` holds the
withdrawals of the evaluation it plans: after a version conflict, of the fresh evaluation it
re-plans (clinical spec §7: what a read in part no longer shows is not taken as gone).

A derived Observation is stored; the run's first evaluation updates it and its ``If-Match`` is
answered 412 (another writer changed it). The patient read again derives nothing: where that
re-read was only in part, the Observation is left and reported not withdrawn; where it was
whole, it is withdrawn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.fhir.bundle import PatientResources
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.server import PatientRun, RunStatus, settle
from fhirtis.pipeline.settle import READ_IN_PART
from fhirtis.registry.evaluate import evaluate_resources
from fhirtis.settings import Settings
from tests.e2e._s29c_create_race import (
    Evaluated,
    RaceServer,
    conditional_create_statement,
    derived_observation,
)

BASE = "https://conflict.example.org/fhir"


class _ConflictOnce(RaceServer):
    """Holds the derived Observation (version 1, another value); the first update of it is
    answered 412, as another writer had changed it meanwhile."""

    def __init__(self) -> None:
        super().__init__(BASE, conditional_create_statement(delete=True))
        stored = derived_observation().resource
        self.stored = [{**stored, "id": "o1", "meta": {"versionId": "1"}, "valueQuantity": {}}]
        self.conflicts = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and not self.conflicts:
            self.conflicts += 1
            self.sent.append(request)
            return httpx.Response(412, json={"resourceType": "OperationOutcome", "issue": []})
        return super().__call__(request)


def _settle_after_conflict(
    httpx_mock: HTTPXMock, read_in_part: Sequence[str]
) -> tuple[_ConflictOnce, PatientRun]:
    server = _ConflictOnce()
    httpx_mock.add_callback(server, is_reusable=True)

    async def reevaluate() -> Evaluated:
        return Evaluated(derived=[], read_in_part=read_in_part)

    async def go() -> PatientRun:
        async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
            return await settle(client, "p1", Evaluated(), write=True, reevaluate=reevaluate)

    return server, asyncio.run(go())


def _withdrawals(server: _ConflictOnce) -> list[httpx.Request]:
    after = server.sent[[r.method for r in server.sent].index("PUT") + 1 :]
    return [r for r in after if r.method in ("PUT", "DELETE") and "/Observation" in str(r.url)]


def test_a_reread_in_part_after_a_conflict_withdraws_nothing(httpx_mock: HTTPXMock) -> None:
    server, run = _settle_after_conflict(httpx_mock, ("Observation",))
    assert server.conflicts == 1
    assert run.status is RunStatus.UNCHANGED, run.error
    assert not _withdrawals(server)
    assert [(n.resource_type, n.reason, n.verb) for n in run.not_written] == [
        ("Observation", READ_IN_PART, "withdrawn")
    ]


def test_a_whole_reread_after_a_conflict_withdraws(httpx_mock: HTTPXMock) -> None:
    server, run = _settle_after_conflict(httpx_mock, ())
    assert server.conflicts == 1
    assert run.status is RunStatus.WRITTEN, run.error
    assert _withdrawals(server)
    assert not run.not_written


@pytest.mark.parametrize("read_in_part", [(), ("Condition", "Observation")])
def test_both_evaluations_carry_the_reads_in_part(read_in_part: tuple[str, ...]) -> None:
    """The server path's ``PatientResult`` and the registry's ``EvaluatedPatient`` carry the
    same ``read_in_part``: the types the pull says the server answered in part."""
    resources = PatientResources("Patient/p1", [], {}, [], read_in_part)
    assert evaluate_patient_resources(resources, Settings()).read_in_part == read_in_part
    assert evaluate_resources(resources, "digest", Settings()).read_in_part == read_in_part
