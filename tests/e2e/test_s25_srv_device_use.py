"""A central venous catheter recorded as a DeviceUseStatement (IPS / R4 deviceusestatement-example
shape: the statement names the patient, its Device no one) is found on a server pull against
the Medplum-based test server: with ``_include=DeviceUseStatement:device`` where the server
takes it (profile ``full``), else with the Device read by ``_id`` (``oracle-like``: no
``_include``)."""

from __future__ import annotations

from typing import Any

import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_run import load, run
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer
from tests.io._s25_srv_fake import catheter, use_statement

Json = dict[str, Any]
LINE = catheter()
USE = use_statement(timingPeriod={"start": "2023-06-01T10:00:00Z"})


@pytest.mark.parametrize("profile", ["full", "oracle-like"])
def test_a_catheter_in_a_device_use_statement_is_found_on_the_server(
    fhir_server: FhirTestServer, fhir_base: str, profile: str
) -> None:
    bundle = responder()
    load(fhir_base, bundle)  # loaded under the start-up profile (oracle-like takes no transaction)
    fhir_server.set_profile(profile)
    before = run(fhir_base, write=False)
    assert before.status is RunStatus.DRY_RUN, before.error
    assert before.result is not None
    assert not [e for e in before.result.data.evidence if "DeviceUseStatement" in e.source]

    fhir_server.set_profile("full")
    load(fhir_base, {"entry": [{"resource": LINE}, {"resource": USE}]})
    fhir_server.set_profile(profile)
    after = run(fhir_base, write=False)
    assert after.status is RunStatus.DRY_RUN, after.error
    assert after.result is not None
    found = [
        e.kind for e in after.result.data.evidence if e.source.startswith("DeviceUseStatement/dus")
    ]
    assert found == [RiskFactorKind.CENTRAL_VENOUS_CATHETER]
    assert not [i for i in after.result.issues if "Device" in i.diagnostics], after.result.issues
