"""The terminology answers a process keeps (``ask_terminology``, shared by every patient and
request of the process, per server) are bounded: each distinct code of a patient's Conditions
that the shipped expansions do not list adds one remembered answer per SNOMED hierarchy, so a
long-running service (CDS Hooks, ``$myositis-evaluate``) or a long registry run would keep every
code it was ever shown (memory that grows with request input). Answers stay right after the
memory is emptied."""

from __future__ import annotations

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.fhir.bundle import PatientResources, read_patient_bundle
from fhirtis.pipeline import offline
from fhirtis.settings import Settings

BASE = "https://tx.example.org/fhir"
SCT = "http://snomed.info/sct"


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "outcome", "valueCode": "not-subsumed"}],
        },
    )


def _patient(n: int, codes: list[str]) -> PatientResources:
    pid = f"p{n}"
    entries = [{"resource": {"resourceType": "Patient", "id": pid}}]
    for i, code in enumerate(codes):
        entries.append(
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": f"c{n}-{i}",
                    "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": SCT, "code": code}]},
                    "onsetDateTime": "2024-01-01",
                }
            }
        )
    raw = orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})
    return read_patient_bundle(raw, f"p{n}.json")


@pytest.fixture
def fresh_caches(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    caches: dict[str, object] = {}
    monkeypatch.setattr(offline, "_TERMINOLOGY_CACHES", caches)
    return caches


async def test_answers_kept_per_server_are_bounded(
    httpx_mock: HTTPXMock, fresh_caches: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 200
    monkeypatch.setattr(offline, "TERMINOLOGY_CACHE_LIMIT", limit, raising=False)
    httpx_mock.add_callback(_answer, is_reusable=True)
    settings = Settings(terminology={"base_url": BASE})
    asked = 0
    for n in range(20):  # twenty patients (requests), each with codes never seen before
        codes = [f"9{n:03d}{i:03d}1000004103" for i in range(3)]
        answers = await offline.ask_terminology(_patient(n, codes), settings)
        assert answers is not None and answers and not any(answers.values())
        asked += len(answers)
    assert asked > 2 * limit  # the patients asked more than the memory may keep
    (cache,) = fresh_caches.values()
    assert isinstance(cache, dict) and len(cache) <= limit


async def test_an_answer_kept_is_not_asked_again(
    httpx_mock: HTTPXMock, fresh_caches: dict[str, object]
) -> None:
    httpx_mock.add_callback(_answer, is_reusable=True)
    settings = Settings(terminology={"base_url": BASE})
    first = await offline.ask_terminology(_patient(1, ["900000001000004103"]), settings)
    sent = len(httpx_mock.get_requests())
    again = await offline.ask_terminology(_patient(2, ["900000001000004103"]), settings)
    assert first == again and sent > 0
    assert len(httpx_mock.get_requests()) == sent  # from memory: the server is not asked again
