"""``--rest-types``: every patient of a Group export gets the REST reads, also one whose Patient
resource is not in the export (a server that withholds it, a Patient filtered out): the export
holds that patient's other resources, and evaluating them without the REST-read types (IVIG
administrations) would report no IVIG at all."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import orjson
import pytest

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.pull import PulledTypes
from fhirtis.registry import group_export
from fhirtis.settings import Settings
from tests.io._support import BASE


async def test_a_member_without_its_patient_resource_is_read_over_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient.ndjson").write_bytes(
        orjson.dumps({"resourceType": "Patient", "id": "p1"}) + b"\n"
    )
    observations = [
        {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}},
        {"resourceType": "Observation", "id": "o2", "subject": {"reference": "Patient/p2"}},
        {"resourceType": "Condition", "id": "c3", "subject": {"reference": f"{BASE}/Patient/p3"}},
    ]
    (folder / "Observation.ndjson").write_bytes(
        b"".join(orjson.dumps(o) + b"\n" for o in observations[:2])
    )
    (folder / "Condition.ndjson").write_bytes(orjson.dumps(observations[2]) + b"\n")
    (folder / "Medication.ndjson").write_bytes(
        orjson.dumps({"resourceType": "Medication", "id": "m1"}) + b"\n"
    )
    read: list[str] = []

    async def pull_types(
        client: FhirClient, pid: str, settings: Settings, types: Collection[str]
    ) -> PulledTypes:
        read.append(pid)
        return PulledTypes([])

    monkeypatch.setattr(group_export, "pull_types", pull_types)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        await group_export.read_over_rest(
            client, folder, ["MedicationAdministration"], Settings(), 4
        )
    assert sorted(read) == ["p1", "p2", "p3"]
