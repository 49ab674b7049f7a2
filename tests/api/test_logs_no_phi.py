"""No log line carries a patient's name, identifier, birth date, clinical value or a token.

A full run over every bundled example — loaded into the FHIR server, evaluated and written back
through the HTTP service, checked by CDS Hooks with a fetch, run as a cohort, and evaluated
offline by the CLI — with every logger at DEBUG. Then every captured line is scanned.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from tests.api.test_cds_hooks import ivig_order, qty
from tests.api.test_evaluate_api import service
from tests.e2e.test_run import load

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOKEN = "secret-token-of-the-caller-7f3a"


def _sensitive(bundles: list[dict[str, Any]]) -> set[str]:
    """Names, identifiers, birth dates and distinctive clinical values of the examples."""
    out: set[str] = {TOKEN}
    for b in bundles:
        for e in b["entry"]:
            r = e["resource"]
            for name in r.get("name", []) if r["resourceType"] == "Patient" else []:
                out.add(name.get("family", ""))
            for ident in r.get("identifier", []) if isinstance(r.get("identifier"), list) else []:
                # Synthea repeats the resource id as an identifier: ids are logged by design
                if str(ident.get("value")) != r.get("id"):
                    out.add(str(ident.get("value")))
            if r["resourceType"] == "Patient" and r.get("birthDate"):
                out.add(r["birthDate"])
            value = (r.get("valueQuantity") or {}).get("value")
            if isinstance(value, float) and len(repr(value)) >= 4:
                out.add(repr(value))  # e.g. a VAS of 6.2 or a HAQ of 1.375
    return {s for s in out if s and len(s) >= 3}


def test_full_run_logs_no_patient_data(
    fhir_base: str, fhir_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = sorted((EXAMPLES / "bundles").glob("*.json"))
    bundles = [json.loads(f.read_text()) for f in files]
    sensitive = _sensitive(bundles)
    assert "Responder" in sensitive and "EX-0001" in sensitive and "1975-03-14" in sensitive
    caplog.set_level(logging.DEBUG)
    for b in bundles:
        load(fhir_base, b)
    patients = [
        next(e["resource"]["id"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient")
        for b in bundles
    ]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    write = {"resourceType": "Parameters", "parameter": [{"name": "write", "valueBoolean": True}]}

    draft = ivig_order(rate=qty(300, "mL/h"))
    draft["subject"] = {"reference": f"Patient/{patients[0]}"}

    async def through_the_service() -> None:
        async with service(fhir_base) as api:
            for pid in patients:
                r = await api.post(f"/Patient/{pid}/$myositis-evaluate", headers=auth, json=write)
                assert r.status_code in {200, 422}, r.text
            discovery = (await api.get("/cds-services")).json()["services"]
            sign = next(s["id"] for s in discovery if s["hook"] == "order-sign")
            hook = {
                "hook": "order-sign",
                "hookInstance": "log-test",
                "fhirServer": fhir_base,
                "fhirAuthorization": {
                    "access_token": TOKEN,
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": "patient/*.read",
                    "subject": "app",
                },
                "context": {
                    "userId": "Practitioner/1",
                    "patientId": patients[0],
                    "draftOrders": {
                        "resourceType": "Bundle",
                        "type": "collection",
                        "entry": [{"resource": draft}],
                    },
                },
            }
            # no prefetch: the service must read the patient's data from the FHIR server
            fhir_server.reset_stats()
            answer = await api.post(f"/cds-services/{sign}", json=hook)
            assert answer.status_code == 200, answer.text
            assert answer.json()["cards"], "an IVIG draft order gets cards"
            assert fhir_server.stats()["requests"] > 0, "the CDS fetch was not reached"

    asyncio.run(through_the_service())
    runner = CliRunner()
    ids = ",".join(patients)
    cohort = runner.invoke(
        app,
        [
            "cohort",
            "--patients",
            ids,
            "--server",
            fhir_base,
            "--write",
            "--ledger",
            str(tmp_path / "l.sqlite"),
        ],
    )
    assert cohort.exit_code == 0, cohort.output
    assert f"{len(patients)} patients" in cohort.output
    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            str(EXAMPLES / "bundles"),
            "--settings",
            str(EXAMPLES / "settings.toml"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert len(list((tmp_path / "out").glob("*.transaction.json"))) == len(patients)
    lines = [f"{rec.name} {rec.getMessage()}" for rec in caplog.records]
    assert lines, "the run logged nothing: the scan would prove nothing"
    leaks = [(s, line) for line in lines for s in sensitive if s in line]
    assert not leaks, leaks[:5]
