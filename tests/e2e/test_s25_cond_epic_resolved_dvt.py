"""A resolved DVT on an Epic-shaped server: Epic's Condition search returns only active
conditions when no clinical-status is given ("If no status is specified all active (confirmed)
conditions will be returned", condition.search, https://docs.nerve.run/functions/condition-search;
the test server's ``epic-like`` profile does the same, tests/fhir_server/README.md). A history of
venous thrombosis is a risk factor however old (DOMAIN.md §5): the maximum infusion rate is
3.3 mg/kg/min, not 4. fhirtis also searches the Conditions that are not active, so the resolved
DVT is read and the limit is 3.3 on epic-like as on the full profile."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.io._capabilities import CACHE
from tests.e2e.test_epic_like import EPIC_PATIENT, epic_shaped
from tests.e2e.test_run import load
from tests.fhir.builders import SCT, condition
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def _with_resolved_dvt() -> Json:
    """The responder (70 kg, 150 mL/h of 10 %: 3.57 mg/kg/min) with a DVT of 2019, resolved."""
    bundle = responder()
    dvt = condition(
        "old-dvt",
        SCT,
        "128053003",  # deep venous thrombosis
        "2019-03-01T10:00:00Z",
        clinicalStatus={"coding": [{"system": CLINICAL, "code": "resolved"}]},
        abatementDateTime="2019-06-01T10:00:00Z",
    )
    bundle["entry"].append({"fullUrl": "Condition/old-dvt", "resource": dvt})
    return epic_shaped(bundle)


def _thrombosis(base: str) -> Json:
    result = CliRunner().invoke(app, ["run", "--patient", EPIC_PATIENT, "--server", base, "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]
    thrombosis: Json = run["evaluation"]["thrombosis"]
    return thrombosis


@pytest.mark.parametrize("profile", ["full", "epic-like"])
@pytest.mark.parametrize("statement", ["truthful", "missing"])
def test_a_resolved_dvt_lowers_the_limit_to_3_3_on_epic_like(
    fhir_server: FhirTestServer, fhir_base: str, profile: str, statement: str
) -> None:
    load(fhir_base, _with_resolved_dvt())
    fhir_server.set_profile(profile, statement)
    CACHE.forget()
    thrombosis = _thrombosis(fhir_base)
    assert Decimal(str(thrombosis["max_rate_now"])) == Decimal("3.3"), thrombosis
    limits = {str(f["limit"]) for f in thrombosis["rate_findings"]}
    assert limits == {"3.3"}, thrombosis["rate_findings"]  # 3.57 > 3.3: every infusion flagged
    refused = {s for s in fhir_server.stats()["by_status"] if int(s) >= 400}
    if statement == "truthful":
        assert refused == set(), "a request shaped against the statement was refused"
    else:  # /metadata 404; on epic-like, a refused search learnt (as in test_epic_like.py)
        assert refused <= {"400", "404"}, refused
