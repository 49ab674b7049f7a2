"""The client never exceeds ``max_requests_per_second``."""

from __future__ import annotations

from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from tests.io._support import FakeTime, patient

BASE = "https://fhir.example.org/r4"


async def test_requests_are_paced(httpx_mock: HTTPXMock) -> None:
    clock = FakeTime()
    httpx_mock.add_response(json=patient(1), is_reusable=True)
    config = FhirClientConfig(base_url=BASE, max_requests_per_second=4)
    async with FhirClient(config, timing=clock.timing()) as client:
        for _ in range(5):
            await client.read("Patient", "p1")
    assert len(httpx_mock.get_requests()) == 5
    # 5 requests at 4/s: the 2nd..5th wait 0.25 s each after the one before.
    assert clock.sleeps == [0.25, 0.25, 0.25, 0.25]


async def test_no_pacing_without_a_limit(httpx_mock: HTTPXMock) -> None:
    clock = FakeTime()
    httpx_mock.add_response(json=patient(1), is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE), timing=clock.timing()) as client:
        for _ in range(3):
            await client.read("Patient", "p1")
    assert clock.sleeps == []
