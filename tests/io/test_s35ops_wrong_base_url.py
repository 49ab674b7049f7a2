"""An integrator's first FHIR base URL (session s35, helper ops), as vendors' pages and browsers
hand it out: the CapabilityStatement's address with ``/metadata`` (or the SMART configuration's)
pasted, or the host without the path prefix the vendor gives (Epic's
``…/interconnect-fhir-oauth/api/FHIR/R4``).

Every request then goes to an address the server does not serve, and every answer is 404: the
Patient read too. ``fhirtis run`` said "Patient/p1: not-found — patient not found" for each
patient (and the service 404 "Patient/p1 not found"), which sends the integrator to check the
patient ids, not the URL. A base ending in ``/metadata`` is refused with one line (exit 2); a
patient not found on a server whose ``[base]/metadata`` answered 404 too (R4 http.html
#capabilities: every server has one) says that the base URL is likely wrong."""

from __future__ import annotations

import json

import httpx
import pytest
from pytest_httpx import HTTPXMock
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.io import FhirClientConfig

runner = CliRunner()
HOST = "https://fhir.example.org"


@pytest.mark.parametrize(
    "url",
    [
        f"{HOST}/fhir/metadata",
        f"{HOST}/fhir/metadata/",
        f"{HOST}/fhir/.well-known/smart-configuration",
    ],
)
def test_a_base_url_with_an_address_under_it_pasted_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="must not end in /"):
        FhirClientConfig(base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        f"{HOST}/fhir/",
        "https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/R4/",
        f"{HOST}/metadata-store/fhir",  # a segment that only starts so is a base like any other
    ],
)
def test_real_bases_are_kept(url: str) -> None:
    assert FhirClientConfig(base_url=url).base_url == url.rstrip("/")


def test_run_with_metadata_pasted_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    result = runner.invoke(app, ["run", "--server", f"{HOST}/fhir/metadata", "--patient", "p1"])
    assert result.exit_code == 2, result.output
    assert "/metadata" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _html_404(request: httpx.Request) -> httpx.Response:
    """A web server's page for any address it does not serve (here: anything)."""
    return httpx.Response(404, html="<html><body><h1>Not Found</h1></body></html>")


def test_every_patient_not_found_where_metadata_is_not_found_names_the_base_url(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Epic's host without ``/interconnect-fhir-oauth/api/FHIR/R4``."""
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    httpx_mock.add_callback(_html_404, is_reusable=True)
    result = runner.invoke(app, ["run", "--server", HOST, "--patient", "p1", "--json"])
    assert result.exit_code == 1, result.output
    assert "base URL" in result.stdout, result.stdout
    assert f"{HOST}/metadata answered 404" in result.stdout


def test_a_patient_not_found_on_a_server_with_a_statement_is_only_not_found(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hint is only for a server whose /metadata is not found either."""
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server"}],
    }
    httpx_mock.add_response(url=f"{HOST}/fhir/metadata", json=statement, is_reusable=True)
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found"}],
    }
    httpx_mock.add_response(status_code=404, json=outcome, is_reusable=True)
    result = runner.invoke(app, ["run", "--server", f"{HOST}/fhir", "--patient", "p1", "--json"])
    assert result.exit_code == 1, result.output
    assert '"patient not found"' in result.stdout
    assert "base URL" not in result.stdout


async def test_the_service_answers_an_operation_outcome_naming_the_base_url(
    httpx_mock: HTTPXMock,
) -> None:
    """The service's configured FHIR server, Epic's host without its path: 404 (the patient is
    not found), an OperationOutcome that says to check the base URL."""
    pytest.importorskip("fastapi")
    from tests.api.test_evaluate_api import AUTH, service  # noqa: PLC0415 - the [serve] extra

    httpx_mock.add_callback(_html_404, is_reusable=True)
    async with service(HOST) as api:
        answer = await api.get("/Patient/p1/$myositis-evaluate", headers=AUTH)
    assert answer.status_code == 404, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "check the FHIR base URL" in json.dumps(outcome)
    assert "caller-token" not in answer.text
