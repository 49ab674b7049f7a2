"""A FHIR server that serves another release than R4 (session s36, helper ver).

Epic serves DSTU2, STU3 and R4 side by side, each under its own base
(``…/interconnect-fhir-oauth/api/FHIR/DSTU2``, ``…/STU3``, ``…/R4``; open.epic.com
"Data Sharing Specifications": "support for a range of DSTU2, STU3, and R4 read, search, and
write resources"; Epic's DSTU2 ``/metadata`` is a ``Conformance`` resource, fhirVersion 1.0.2, its
STU3 one a CapabilityStatement with fhirVersion 3.0.1); Oracle Health (Cerner) had ``…/dstu2/
{tenant}`` beside ``…/r4/{tenant}``; HAPI's public servers ``baseDstu3``, ``baseR4``, ``baseR5``.
An integrator who pastes the wrong one gets resources in another release's shape: a DSTU2
MedicationAdministration's time is ``effectiveTimeDateTime`` and its dose ``dosage.quantity``, an
STU3 one not given is ``notGiven: true`` with status ``completed``, an R5 one's time is
``occurence[x]`` and its medication ``medication.concept``. fhirtis read them as R4 and said
nothing about the release: doses without a time or a dose, a dose not given counted.

R4 capabilitystatement-definitions.html: a CapabilityStatement "documents a set of capabilities
(behaviors) of a FHIR Server for a particular version of FHIR"; ``fhirVersion`` (1..1) is "the
version of the FHIR specification that this CapabilityStatement describes"; a server that
serves several versions has one statement per version. R4 http.html#version-parameter: the
``fhirVersion`` parameter of ``application/fhir+json`` names the version of a body
(``major.minor``: ``4.0``).

Now: a server whose statement says another release than R4 (``fhirVersion`` not 4.0.x) is
refused before any patient is read, by ``run``, ``capabilities``, ``cohort`` and the service's
reads of a ``fhirServer``, with the version found and, for a base that names a release, the R4
base. R4B (4.3.x) is read as R4, with a warning: R4B changed no element of the resources fhirtis
reads or writes (r4b-explanation.html: implementers "that do not use the specific portions where
changes have been made can continue to use either R4 or R4B without any functional difference";
its changes are the medication-definition, evidence and subscription resources). A statement
without a version, or none that can be read, keeps the behaviour before (logged)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from pytest_httpx import HTTPXMock
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.io import FhirClient, FhirClientConfig, UnsupportedFhirVersion
from fhirtis.io._capabilities import fhir_release, parse_statement, r4_base_hint
from tests.registry.cohort_cli import group_args, patients_args

runner = CliRunner()
EPIC = "https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR"
HOST = "https://fhir.example.org/fhir"

Json = dict[str, Any]


def statement(version: str | None, resource_type: str = "CapabilityStatement") -> Json:
    body: Json = {
        "resourceType": resource_type,
        "status": "active",
        "kind": "instance",
        "format": ["json"],
        "rest": [{"mode": "server", "interaction": [{"code": "batch"}]}],
    }
    if version is not None:
        body["fhirVersion"] = version
    return body


# -- the statement -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "release"),
    [
        ("1.0.2", "other"),  # DSTU2
        ("3.0.1", "other"),  # STU3 (Epic)
        ("3.0.2", "other"),  # STU3 technical correction
        ("4.0.0", "R4"),
        ("4.0.1", "R4"),
        ("4.0", "R4"),  # the MIME-type parameter's major.minor
        ("4.3.0", "R4B"),
        ("4.3.0-snapshot1", "R4B"),
        ("5.0.0", "other"),  # R5 (HAPI baseR5, Firely Server R5)
        ("4.5.0", "other"),  # an R5 ballot
        ("3.5.0", "other"),  # an R4 ballot
        ("6.0.0-ballot3", "other"),
        ("R4", None),  # not a version code: said in the log, R4 assumed
    ],
)
def test_the_release_of_a_version_code(version: str, release: str | None) -> None:
    assert fhir_release(version) == release


def test_a_statement_without_a_version_is_taken_as_before_and_says_so() -> None:
    caps = parse_statement(statement(None))
    assert caps.fhir_version is None and caps.release is None
    assert caps.source == "statement" and caps.batch is True
    assert any("no fhirVersion" in n for n in caps.notes)


def test_the_content_type_says_the_version_where_the_statement_does_not() -> None:
    caps = parse_statement(statement(None), "application/fhir+json; fhirVersion=3.0")
    assert caps.fhir_version == "3.0" and caps.release == "other"
    caps = parse_statement(statement(None), "application/fhir+json;fhirVersion=4.0")
    assert caps.release == "R4"
    # the statement's own fhirVersion wins over the header
    assert parse_statement(
        statement("4.0.1"), "application/fhir+json; fhirVersion=3.0"
    ).release == ("R4")


def test_a_dstu2_conformance_is_dstu2_whatever_it_names() -> None:
    """DSTU2 named the resource ``Conformance``; STU3 renamed it CapabilityStatement."""
    assert parse_statement(statement("1.0.2", "Conformance")).fhir_version == "1.0.2"
    assert parse_statement(statement(None, "Conformance")).release == "other"


@pytest.mark.parametrize(
    ("base", "hint"),
    [
        (f"{EPIC}/DSTU2", f"{EPIC}/R4"),
        (f"{EPIC}/STU3/", f"{EPIC}/R4/"),
        (
            "https://fhir-open.cerner.com/dstu2/ec2458f2-1e24-41c8-b71b-0e701af7583d",
            "https://fhir-open.cerner.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d",
        ),
        ("http://hapi.fhir.org/baseR5", "http://hapi.fhir.org/baseR4"),
        ("http://hapi.fhir.org/baseDstu3", "http://hapi.fhir.org/baseR4"),
        (HOST, None),
    ],
)
def test_the_r4_base_of_a_base_that_names_a_release(base: str, hint: str | None) -> None:
    assert r4_base_hint(base) == hint


# -- the client ----------------------------------------------------------------------------------


def _config(base: str) -> FhirClientConfig:
    return FhirClientConfig(base_url=base, retry_max_attempts=1, retry_budget_seconds=1)


@pytest.mark.parametrize("version", ["1.0.2", "3.0.1", "3.0.2", "5.0.0"])
async def test_the_client_refuses_another_release_every_time(
    httpx_mock: HTTPXMock, version: str
) -> None:
    httpx_mock.add_response(url=f"{HOST}/metadata", json=statement(version))
    async with FhirClient(_config(HOST)) as client:
        for _ in range(2):  # the second from the cache: refused all the same
            with pytest.raises(UnsupportedFhirVersion) as caught:
                await client.capabilities()
    assert caught.value.version == version
    assert f"FHIR {version}" in str(caught.value) and "R4 (4.0.x)" in str(caught.value)
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize("version", ["4.0.0", "4.0.1"])
async def test_r4_is_read(httpx_mock: HTTPXMock, version: str) -> None:
    httpx_mock.add_response(url=f"{HOST}/metadata", json=statement(version))
    async with FhirClient(_config(HOST)) as client:
        caps = await client.capabilities()
    assert caps.release == "R4" and caps.supports_batch()


async def test_r4b_is_read_as_r4_with_a_warning(
    httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture
) -> None:
    httpx_mock.add_response(url=f"{HOST}/metadata", json=statement("4.3.0"))
    with caplog.at_level(logging.INFO, logger="fhirtis.io"):
        async with FhirClient(_config(HOST)) as client:
            caps = await client.capabilities()
    assert caps.release == "R4B" and caps.supports_batch()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("4.3.0 (R4B)" in r.getMessage() for r in warned), caplog.text


async def test_a_statement_without_a_version_is_logged(
    httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture
) -> None:
    httpx_mock.add_response(url=f"{HOST}/metadata", json=statement(None))
    with caplog.at_level(logging.INFO, logger="fhirtis.io"):
        async with FhirClient(_config(HOST)) as client:
            caps = await client.capabilities()
    assert caps.fhir_version is None and caps.supports_batch()
    assert "no fhirVersion: FHIR R4 assumed" in caplog.text


async def test_the_version_in_the_content_type_is_refused_too(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{HOST}/metadata",
        content=json.dumps(statement(None)).encode(),
        headers={"Content-Type": "application/fhir+json; fhirVersion=3.0"},
    )
    async with FhirClient(_config(HOST)) as client:
        with pytest.raises(UnsupportedFhirVersion, match=r"FHIR 3\.0"):
            await client.capabilities()


async def test_a_statement_that_cannot_be_read_changes_nothing(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{HOST}/metadata", status_code=404, html="<h1>no</h1>")
    async with FhirClient(_config(HOST)) as client:
        caps = await client.capabilities()
    assert caps.source == "missing" and caps.fhir_version is None


# -- the commands --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_settings_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    monkeypatch.delenv("FHIRTIS_FHIR__BASE_URL", raising=False)


def test_run_on_epic_dstu2_reads_no_patient_and_names_the_r4_base(httpx_mock: HTTPXMock) -> None:
    """Epic's DSTU2 ``/metadata``: a Conformance resource, fhirVersion 1.0.2. Nothing but
    ``/metadata`` is asked (pytest-httpx fails the test on any other request)."""
    httpx_mock.add_response(
        url=f"{EPIC}/DSTU2/metadata", json=statement("1.0.2", "Conformance"), is_reusable=True
    )
    result = runner.invoke(
        app, ["run", "--server", f"{EPIC}/DSTU2", "--patient", "p1", "--patient", "p2", "--json"]
    )
    assert result.exit_code == 1, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [r["status"] for r in runs] == ["failed", "failed"], runs
    for r in runs:
        assert "FHIR 1.0.2 (DSTU2)" in r["error"], r
        assert f"{EPIC}/R4" in r["error"], r
    assert {str(r.url) for r in httpx_mock.get_requests()} == {f"{EPIC}/DSTU2/metadata"}


@pytest.mark.parametrize(("path", "version"), [("STU3", "3.0.1"), ("R5", "5.0.0")])
def test_capabilities_refuses_another_release(
    httpx_mock: HTTPXMock, path: str, version: str
) -> None:
    httpx_mock.add_response(url=f"{EPIC}/{path}/metadata", json=statement(version))
    result = runner.invoke(app, ["capabilities", "--server", f"{EPIC}/{path}"])
    assert result.exit_code == 1, result.output
    assert f"FHIR {version}" in result.stderr and f"{EPIC}/R4" in result.stderr


def test_capabilities_of_r4b_says_it_is_read_as_r4(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{HOST}/metadata", json=statement("4.3.0"))
    result = runner.invoke(app, ["capabilities", "--server", HOST, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["fhir_version"] == "4.3.0"
    assert any("read as R4" in n for n in record["notes"]), record


def test_cohort_of_patients_on_stu3_stops_before_any_read(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    httpx_mock.add_response(url=f"{EPIC}/STU3/metadata", json=statement("3.0.1"))
    result = runner.invoke(app, patients_args("p1,p2", f"{EPIC}/STU3", tmp_path))
    assert result.exit_code == 1, result.output
    assert "FHIR 3.0.1 (STU3)" in result.stderr and f"{EPIC}/R4" in result.stderr
    assert "run the same command again" not in result.stderr  # not resumable as it is
    assert len(httpx_mock.get_requests()) == 1


def test_cohort_group_export_on_r5_is_not_kicked_off(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    base = "http://hapi.fhir.org/baseR5"
    httpx_mock.add_response(url=f"{base}/metadata", json=statement("5.0.0"))
    result = runner.invoke(app, group_args("g1", base, tmp_path))
    assert result.exit_code == 1, result.output
    assert "FHIR 5.0.0 (R5)" in result.stderr and "http://hapi.fhir.org/baseR4" in result.stderr
    assert len(httpx_mock.get_requests()) == 1


# -- the service ---------------------------------------------------------------------------------


async def test_the_service_refuses_a_stu3_server_naming_the_version(
    httpx_mock: HTTPXMock,
) -> None:
    pytest.importorskip("fastapi")
    from tests.api.test_evaluate_api import AUTH, service  # noqa: PLC0415 - the [serve] extra

    httpx_mock.add_response(url=f"{EPIC}/STU3/metadata", json=statement("3.0.1"))
    async with service(f"{EPIC}/STU3") as api:
        answer = await api.get("/Patient/p1/$myositis-evaluate", headers=AUTH)
    assert answer.status_code == 502, answer.text
    text = json.dumps(answer.json())
    assert "FHIR 3.0.1 (STU3)" in text and f"{EPIC}/R4" in text
    assert "the FHIR server failed" not in text
    assert "caller-token" not in answer.text
    assert len(httpx_mock.get_requests()) == 1


async def test_a_cds_call_on_a_dstu2_fhir_server_is_412_before_any_read(
    httpx_mock: HTTPXMock,
) -> None:
    pytest.importorskip("fastapi")
    from tests.api.test_cds_hooks import SIGN, call, cds, ivig_order  # noqa: PLC0415
    from tests.fhir.builders import patient, qty  # noqa: PLC0415

    server = f"{EPIC}/DSTU2"
    httpx_mock.add_response(url=f"{server}/metadata", json=statement("1.0.2", "Conformance"))
    body = call(
        [ivig_order(rate=qty(300, "mL/h"))], {"patient": patient()}, server=server, token="t"
    )
    async with cds(server) as api:
        answer = await api.post(SIGN, body)
        sent = [str(r.url) for r in api.sent]
    assert answer.status_code == 412, answer.text
    assert "FHIR 1.0.2 (DSTU2)" in answer.text and f"{EPIC}/R4" in answer.text
    assert sent == [f"{server}/metadata"]


def test_an_r4_statement_still_reads(httpx_mock: HTTPXMock) -> None:
    """The check costs no request on an R4 server beyond the statement read before."""
    httpx_mock.add_response(url=f"{HOST}/metadata", json=statement("4.0.1"))
    result = runner.invoke(app, ["capabilities", "--server", HOST, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fhir_version"] == "4.0.1"


def test_a_write_server_of_another_release_is_refused_before_the_patient_is_read(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``FHIRTIS_FHIR__WRITE_BASE_URL`` on Epic's STU3 base: the read server is R4, the write
    server is not; nothing is read from either beyond their statements."""
    monkeypatch.setenv("FHIRTIS_FHIR__WRITE_BASE_URL", f"{EPIC}/STU3")
    httpx_mock.add_response(url=f"{HOST}/metadata", json=statement("4.0.1"), is_optional=True)
    httpx_mock.add_response(url=f"{EPIC}/STU3/metadata", json=statement("3.0.1"))
    result = runner.invoke(app, ["run", "--server", HOST, "--patient", "p1", "--json"])
    assert result.exit_code == 1, result.output
    (run,) = json.loads(result.stdout)["runs"]
    assert run["status"] == "failed" and "FHIR 3.0.1 (STU3)" in run["error"], run
    assert all(str(r.url).endswith("/metadata") for r in httpx_mock.get_requests())


@pytest.mark.parametrize(("version", "ready"), [("3.0.1", False), ("4.0.1", True), (None, True)])
async def test_readyz_says_the_fhir_server_serves_another_release(
    httpx_mock: HTTPXMock, version: str | None, ready: bool
) -> None:
    """A service configured with Epic's STU3 base would refuse every evaluation: not ready."""
    pytest.importorskip("fastapi")
    from tests.api.test_evaluate_api import service  # noqa: PLC0415 - the [serve] extra

    httpx_mock.add_response(url=f"{EPIC}/STU3/metadata", json=statement(version))
    async with service(f"{EPIC}/STU3") as api:
        answer = await api.get("/readyz")
    assert (answer.status_code == 200) is ready, answer.text
    if not ready:
        assert answer.json()["checks"]["fhir_server"] == "failed: FHIR 3.0.1, not R4 (4.0.x)"


def test_cohort_with_a_write_server_of_another_release_stops_before_any_read(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setenv("FHIRTIS_FHIR__WRITE_BASE_URL", f"{EPIC}/DSTU2")
    httpx_mock.add_response(url=f"{HOST}/metadata", json=statement("4.0.1"))
    httpx_mock.add_response(url=f"{EPIC}/DSTU2/metadata", json=statement("1.0.2", "Conformance"))
    result = runner.invoke(app, patients_args("p1", HOST, tmp_path))
    assert result.exit_code == 1, result.output
    assert "FHIR 1.0.2 (DSTU2)" in result.stderr and f"{EPIC}/R4" in result.stderr
    assert all(str(r.url).endswith("/metadata") for r in httpx_mock.get_requests())
