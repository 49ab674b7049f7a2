"""The test FHIR server's vendor profiles (``--profile``, ``POST /admin/profile``).

Each profile publishes a CapabilityStatement at ``GET [base]/metadata`` that says what it supports;
these tests pin down the statements fhirtis will read (tests/fhir_server/README.md, "Server
profiles").
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fhir_test_server import (
    SERVER_DIR,
    SERVER_SCRIPT,
    STARTUP_TIMEOUT_S,
    FhirTestServer,
    _read_listening_line,
    _stop_process,
)

Json = dict[str, Any]
FHIR_JSON = "application/fhir+json"
DERIVED_TYPES = ("Flag", "DetectedIssue", "AdverseEvent", "Provenance")
ORACLE_ABSENT = ("Flag", "DetectedIssue", "AdverseEvent", "MedicationStatement")


def _set_profile(server: FhirTestServer, profile: str, statement: str = "truthful") -> None:
    response = httpx.post(
        f"{server.root_url}/admin/profile",
        json={"profile": profile, "capabilityStatement": statement},
        timeout=10.0,
    )
    response.raise_for_status()


def _metadata(base_url: str) -> Json:
    response = httpx.get(f"{base_url}/metadata", headers={"Accept": FHIR_JSON}, timeout=10.0)
    assert response.status_code == 200
    data: Json = response.json()
    assert data["resourceType"] == "CapabilityStatement"
    return data


def _rest_interactions(statement: Json) -> set[str]:
    return {i["code"] for i in statement["rest"][0].get("interaction", [])}


def _resources(statement: Json) -> dict[str, Json]:
    return {r["type"]: r for r in statement["rest"][0]["resource"]}


def _interactions(resource: Json) -> set[str]:
    return {i["code"] for i in resource["interaction"]}


@pytest.mark.parametrize(
    ("profile", "bundles"),
    [
        ("full", {"batch", "transaction"}),
        ("google-like", {"batch", "transaction"}),
        ("no-transaction", set()),
        ("read-only-for-derived-types", {"batch", "transaction"}),
        ("oracle-like", set()),
        ("epic-like", {"batch", "transaction"}),
    ],
)
def test_each_profile_declares_its_bundle_support(
    fhir_server: FhirTestServer, fhir_base: str, profile: str, bundles: set[str]
) -> None:
    _set_profile(fhir_server, profile)
    statement = _metadata(fhir_base)
    assert _rest_interactions(statement) & {"batch", "transaction"} == bundles
    if bundles:
        posted = httpx.post(
            fhir_base,
            json={"resourceType": "Bundle", "type": "batch", "entry": []},
            headers={"Content-Type": FHIR_JSON},
            timeout=10.0,
        )
        assert posted.status_code == 200
    else:
        refused = httpx.post(
            fhir_base,
            json={"resourceType": "Bundle", "type": "batch", "entry": []},
            headers={"Content-Type": FHIR_JSON},
            timeout=10.0,
        )
        assert refused.status_code == 405
        assert refused.json()["issue"][0]["code"] == "not-supported"


def test_read_only_profile_omits_writes_of_derived_types(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    _set_profile(fhir_server, "read-only-for-derived-types")
    resources = _resources(_metadata(fhir_base))
    for type_ in DERIVED_TYPES:
        assert "create" not in _interactions(resources[type_])
        assert "update" not in _interactions(resources[type_])
    assert {"create", "update"} <= _interactions(resources["Observation"])


def test_reset_restores_the_startup_profile(fhir_server: FhirTestServer, fhir_base: str) -> None:
    _set_profile(fhir_server, "oracle-like", "missing")
    assert httpx.get(f"{fhir_base}/metadata", timeout=10.0).status_code == 404
    fhir_server.reset()
    assert {"batch", "transaction"} <= _rest_interactions(_metadata(fhir_base))
    assert fhir_server.stats()["profile"] == "full"


@pytest.fixture(scope="module")
def oracle_server() -> Iterator[str]:
    """A second server process started with ``--profile oracle-like``; yields its FHIR base."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is required for the e2e tests but `node` is not on PATH.")
    process: subprocess.Popen[str] = subprocess.Popen(
        [node, str(SERVER_SCRIPT), "--port", "0", "--watch-stdin", "--profile", "oracle-like"],
        cwd=SERVER_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
    )
    try:
        address = _read_listening_line(process, time.monotonic() + STARTUP_TIMEOUT_S)
        assert address, "the oracle-like server did not start"
        yield f"http://{address}/fhir"
    finally:
        _stop_process(process)


def test_oracle_like_from_the_command_line(oracle_server: str) -> None:
    statement = _metadata(oracle_server)
    assert not _rest_interactions(statement) & {"batch", "transaction"}
    resources = _resources(statement)
    for type_ in ORACLE_ABSENT:
        assert type_ not in resources
    administration = resources["MedicationAdministration"]
    assert administration["searchInclude"] == []
    params = {p["name"] for p in administration["searchParam"]}
    assert "patient" in params and "subject" not in params
    observation = resources["Observation"]
    assert observation["extension"] == [
        {"url": "http://fhirtis.org/fhir/StructureDefinition/max-count", "valueUnsignedInt": 200}
    ]
    refused = httpx.get(
        f"{oracle_server}/MedicationAdministration",
        params={"subject": "Patient/1"},
        headers={"Accept": FHIR_JSON},
        timeout=10.0,
    )
    assert refused.status_code == 400
    assert refused.json()["issue"][0]["code"] == "not-supported"
