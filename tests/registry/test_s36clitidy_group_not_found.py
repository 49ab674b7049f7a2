"""``fhirtis cohort --group ID`` where the server has no such Group (session s36, helper clitidy).

The kick-off ``[base]/Group/ID/$export`` answered 404 (Bulk Data IG: the Group is the resource
the operation runs on; a missing one is a 404 like any read of it). The run said "the FHIR
server refused: …" and then "run the same command again to resume", which cannot help: the same
command asks for the same missing Group. Now it says the Group was not found on the server,
naming the id and the (redacted) base URL, and does not suggest resuming."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock
from typer.testing import CliRunner

from fhirtis.cli import app
from tests.registry.cohort_cli import group_args

runner = CliRunner()
HOST = "https://fhir.example.org/fhir"


def test_a_group_the_server_does_not_have_is_said_not_found_not_resumable(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    httpx_mock.add_response(
        url=f"{HOST}/metadata",
        json={"resourceType": "CapabilityStatement", "status": "active", "fhirVersion": "4.0.1"},
        is_optional=True,
    )
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{HOST}/Group/nosuch/$export") + r".*"),
        status_code=404,
        json={
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-found", "diagnostics": "no Group"}],
        },
        is_reusable=True,
    )
    result = runner.invoke(app, group_args("nosuch", HOST, tmp_path))
    assert result.exit_code == 1, result.output
    assert "Group/nosuch was not found" in result.stderr, result.stderr
    assert HOST in result.stderr, result.stderr
    assert "run the same command again" not in result.stderr, result.stderr
