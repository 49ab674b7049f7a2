"""A Group ``$export`` from a server whose Bulk export lacks types the evaluation reads.

Oracle Health's Group export offers the US Core (USCDI v1) resource types; US Core has no
MedicationAdministration, so IVIG administrations are not in the export, and a Bulk Data IG v2
server refuses a ``_type`` it does not support ("SHOULD return details via an OperationOutcome
in an error response"). The test server's ``oracle-like`` profile does that
(tests/fhir_server/README.md). fhirtis then exports what the server offers and reads the other
types per patient over REST, as ``fhirtis run`` would: every IVIG result a full server gives is
written, and a change to a REST-read resource is seen on the next run (a ``_since`` export
would not list it, so such runs export in full).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import IDENTIFIER_SYSTEM
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.registry.group_export import refused_types
from fhirtis.settings import Settings
from tests.fhir_test_server import FhirTestServer
from tests.registry.cohort_cli import group_args
from tests.synthetic import make_cohort

runner = CliRunner()


def _load(base: str) -> tuple[str, list[dict]]:
    """PUT three synthetic patients (with IVIG administrations) and a Group of all three."""
    bundles = list(make_cohort(3, seed=5))
    entries = []
    patients = []
    for bundle in bundles:
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "Patient":
                patients.append(r["id"])
            entries.append(
                {
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
            )
    group = {
        "resourceType": "Group",
        "id": "ivig-3",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in patients],
    }
    entries.append({"resource": group, "request": {"method": "PUT", "url": "Group/ivig-3"}})
    response = httpx.post(
        base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries}, timeout=300
    )
    response.raise_for_status()
    return group["id"], bundles


def _expected_observations(bundles: list[dict]) -> set[str]:
    """The identifiers of the Observations the same data gives offline."""
    out = set()
    for bundle in bundles:
        result = evaluate_patient_resources(read_patient_bundle(orjson.dumps(bundle)), Settings())
        out |= {d.identifier for d in result.derived if d.resource_type == "Observation"}
    return out


def _written_observations(base: str) -> set[str]:
    found = set()
    url: str | None = f"{base}/Observation?identifier={IDENTIFIER_SYSTEM}|&_count=200"
    while url:
        page = httpx.get(url, timeout=60).json()
        for entry in page.get("entry", []):
            for ident in entry["resource"].get("identifier", []):
                if ident.get("system") == IDENTIFIER_SYSTEM:
                    found.add(ident["value"])
        url = next(
            (link["url"] for link in page.get("link", []) if link["relation"] == "next"), None
        )
    return found


def test_types_the_bulk_export_refuses_are_read_over_rest(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    group, bundles = _load(fhir_base)
    expected = _expected_observations(bundles)
    assert any(i.startswith("ivig-cycle-dose-") for i in expected)  # the data give IVIG results
    fhir_server.set_profile("oracle-like")
    first = runner.invoke(app, group_args(group, fhir_base, tmp_path, "--write"))
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("3 patients: written 3;"), first.stdout
    assert "MedicationAdministration" in first.output  # said: read over REST, not exported
    fhir_server.set_profile("full")  # oracle-like has no identifier search on Observation
    assert _written_observations(fhir_base) == expected
    fhir_server.set_profile("oracle-like")

    # Nothing changed: the re-run exports again in full (no _since: the export would not list
    # a new administration), finds every result stored and writes nothing.
    fhir_server.reset_stats()
    second = runner.invoke(app, group_args(group, fhir_base, tmp_path, "--write"))
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith("3 patients: unchanged 3;"), second.stdout
    assert fhir_server.stats()["committed_writes"] == 0

    # An administration is corrected at the source (REST-read only): the next run sees it.
    fhir_server.set_profile("full")
    administration = httpx.get(
        f"{fhir_base}/MedicationAdministration",
        params={"subject": f"Patient/{bundles[0]['entry'][0]['resource']['id']}", "_count": "1"},
        timeout=60,
    ).json()["entry"][0]["resource"]
    administration["dosage"]["dose"]["value"] = administration["dosage"]["dose"]["value"] + 100
    httpx.put(
        f"{fhir_base}/MedicationAdministration/{administration['id']}",
        json=administration,
        timeout=60,
    ).raise_for_status()
    fhir_server.set_profile("oracle-like")
    third = runner.invoke(app, group_args(group, fhir_base, tmp_path, "--write"))
    assert third.exit_code == 0, third.output
    assert third.stdout.startswith(
        "3 patients: written 1; skipped (unchanged since the ledger) 2;"
    ), third.stdout


def test_rest_types_given_on_the_command_line(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    """A server that leaves a type out of its export without a word (Bulk Data IG: with
    ``Prefer: handling=lenient`` it MAY): the user names the type, it is not asked for in the
    export and is read over REST; the results are those of a full export."""
    group, bundles = _load(fhir_base)
    expected = _expected_observations(bundles)
    args = [*group_args(group, fhir_base, tmp_path, "--write"), "--keep-work-dir"]
    result = runner.invoke(app, [*args, "--rest-types", "MedicationAdministration"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("3 patients: written 3;"), result.stdout
    files = sorted(p.name for p in (tmp_path / "work" / "export").glob("*.ndjson"))
    assert not any(name.startswith("MedicationAdministration.") for name in files), files
    assert "rest.MedicationAdministration.ndjson" in files
    assert _written_observations(fhir_base) == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ndjson", "."], "--rest-types needs --group"),
        (["--group", "g", "--server", "http://127.0.0.1:9/fhir"], "Encounter is not read"),
    ],
)
def test_rest_types_usage_errors(extra: list[str], message: str) -> None:
    types = "Encounter" if "--group" in extra else "MedicationAdministration"
    result = runner.invoke(app, ["cohort", *extra, "--rest-types", types])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("outcome", "refused"),
    [
        (  # as the test server's oracle-like profile says it
            {
                "issue": [
                    {
                        "severity": "error",
                        "code": "not-supported",
                        "details": {
                            "text": (
                                "Resource type(s) not supported by the bulk export: "
                                "MedicationAdministration, AdverseEvent"
                            )
                        },
                    }
                ]
            },
            {"MedicationAdministration", "AdverseEvent"},
        ),
        (  # diagnostics and expression; Patient is never dropped; a type not asked is ignored
            {
                "issue": [
                    {"severity": "error", "code": "invalid", "diagnostics": "_type=Device unknown"},
                    {"severity": "error", "code": "invalid", "expression": ["Patient", "Group"]},
                ]
            },
            {"Device"},
        ),
        ({"issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad _since"}]}, set()),
        (None, set()),
    ],
)
def test_refused_types(outcome: dict | None, refused: set[str]) -> None:
    asked = ["Patient", "Observation", "MedicationAdministration", "Device", "AdverseEvent"]
    assert refused_types(outcome, asked) == refused
