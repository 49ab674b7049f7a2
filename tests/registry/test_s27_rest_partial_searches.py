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
from fhirtis.registry import cohort, group_export
from fhirtis.registry.ledger import Ledger
from fhirtis.registry.options import CohortOptions
from fhirtis.settings import Settings
from tests.io._support import BASE


async def _read_with_a_and_b_in_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rtype: str
) -> group_export.RestRead:
    """An export of Patients a, b and c (in ``tmp_path/export``) whose REST search of
    ``rtype`` the server answers in part for a and b, as its own OperationOutcome says."""
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
        return PulledTypes([], incomplete=[rtype], issues=[partial])

    monkeypatch.setattr(group_export, "pull_types", pull_types)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        return await group_export.read_over_rest(client, folder, [rtype], Settings(), 4)


async def test_searches_answered_in_part_are_said_with_their_types_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = await _read_with_a_and_b_in_part(tmp_path, monkeypatch, "MedicationAdministration")
    assert read.unread == {}
    assert read.partial == {"MedicationAdministration": 2}
    (note,) = group_export.partial_notes(read.partial)
    assert "MedicationAdministration" in note and "2 patient(s)" in note
    assert "may be incomplete" in note


async def test_the_patients_answered_in_part_are_named_for_their_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which patients' searches came back in part, by type (s35): their evaluation says so
    and their earlier output is not withdrawn (tests/e2e/test_s35reg_partial_read_cohort.py)."""
    read = await _read_with_a_and_b_in_part(tmp_path, monkeypatch, "Condition")
    folder = tmp_path / "export"
    assert read.partial_patients == {"Patient/a": ("Condition",), "Patient/b": ("Condition",)}

    # the evaluation of a patient answered in part: a warning, and its risk factors that
    # Conditions record are not assessable (not "none found")
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "w")
    result = await cohort.run_ndjson(folder, Settings(), options, None, read.partial_patients)
    assert result.patients == 3
    with Ledger(options.ledger) as ledger:
        summaries = {s["patient"]: s for s in map(orjson.loads, ledger.summaries(result.run))}
    for pid in ("Patient/a", "Patient/b"):
        unassessed = {u["factor"]: u["reason"] for u in summaries[pid]["thrombosis"]["unassessed"]}
        assert "only in part" in unassessed["thrombosis-history"], unassessed
        assert any("only in part" in i["diagnostics"] for i in summaries[pid]["issues"])
    unassessed_c = {u["factor"] for u in summaries["Patient/c"]["thrombosis"]["unassessed"]}
    assert "thrombosis-history" not in unassessed_c
