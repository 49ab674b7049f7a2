"""The ``fhirtis cohort`` command lines the registry tests run, and the Group read they refuse:
one place for what every Group and NDJSON test repeats (a ledger and a work folder under the
test's ``tmp_path``, no progress bar)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fhirtis.io import FhirClient, FhirServerError


def _common(tmp_path: Path) -> list[str]:
    return [
        "--ledger",
        str(tmp_path / "ledger.sqlite"),
        "--work-dir",
        str(tmp_path / "work"),
        "--no-progress",
    ]


def group_args(group: str, base: str, tmp_path: Path, *extra: str) -> list[str]:
    """``cohort --group`` on the server at ``base`` (``extra``: ``--write``, ``--dry-run``, …)."""
    return ["cohort", "--group", group, "--server", base, *_common(tmp_path), *extra]


def patients_args(patients: str, base: str, tmp_path: Path, *extra: str) -> list[str]:
    """``cohort --patients`` (ids joined by commas) on the server at ``base``."""
    return ["cohort", "--patients", patients, "--server", base, *_common(tmp_path), *extra]


def ndjson_args(folder: Path, tmp_path: Path, *extra: str) -> list[str]:
    """``cohort --ndjson`` of the export in ``folder``."""
    return ["cohort", "--ndjson", str(folder), *_common(tmp_path), *extra]


def refuse_group_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """``GET Group/[id]`` answers 403 from now on; every other read goes to the server."""
    read = FhirClient.read

    async def refuse_group(self: FhirClient, resource_type: str, resource_id: str) -> Any:
        if resource_type == "Group":
            raise FhirServerError("GET Group refused", status=403, url="Group")
        return await read(self, resource_type, resource_id)

    monkeypatch.setattr(FhirClient, "read", refuse_group)
