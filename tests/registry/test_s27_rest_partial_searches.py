"""Types read over REST for a Group export (``--rest-types``, or refused by the export): a
search whose own OperationOutcome (``search.mode = outcome``, R4 search.html) says only part of
the matches came back left the patients' data incomplete without a word to the registry run
(the REST reader only logged it). The run now says which types were answered in part, and for
how many patients, as ``fhirtis run`` and the CDS service say it for one patient."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import orjson
import pytest

from fhirtis.fhir.outcome import Issue
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.pull import PulledTypes
from fhirtis.registry import group_export
from fhirtis.settings import Settings
from tests.io._support import BASE


async def test_searches_answered_in_part_are_said_with_their_types_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient.ndjson").write_bytes(
        b"".join(orjson.dumps({"resourceType": "Patient", "id": p}) + b"\n" for p in "abc")
    )

    async def pull_types(
        client: FhirClient, pid: str, settings: Settings, types: Collection[str]
    ) -> PulledTypes:
        if pid == "c":
            return PulledTypes([])
        partial = Issue("warning", "incomplete", "search outcome: … may be incomplete")
        return PulledTypes([], incomplete=["MedicationAdministration"], issues=[partial])

    monkeypatch.setattr(group_export, "pull_types", pull_types)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        read = await group_export.read_over_rest(
            client, folder, ["MedicationAdministration"], Settings(), 4
        )
    assert read.unread == {}
    assert read.partial == {"MedicationAdministration": 2}
    (note,) = group_export.partial_notes(read.partial)
    assert "MedicationAdministration" in note and "2 patient(s)" in note
    assert "may be incomplete" in note
