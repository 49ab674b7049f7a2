"""The patient banner SMART App Launch asks for.

SMART App Launch 2.x, launch context: ``need_patient_banner`` — "Boolean value indicating
whether the app was launched in a UX context where a patient banner is required (when true)
or may not be required (when false)". An app opened outside the EHR's own chart (the EHR says
true, or says nothing) must show who the record is; the page showed only the Patient's id.
It now reads the Patient from the EHR with its own token (as any SMART app does) and shows the
name, sex and birth date; an EHR that shows its own banner (false) gets no second one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer
from tests.web.conftest import PATIENT, Stack, serving_stack
from tests.web.test_page import Browsing, browsing, launch, text

__all__ = ["browsing"]  # the fixture used here


@pytest.fixture(params=[True, False, None], ids=["banner", "no-banner", "not-said"])
def stack(request: pytest.FixtureRequest, fhir_server: FhirTestServer) -> Iterator[Stack]:
    """The test stack, its EHR saying ``need_patient_banner`` as the param."""
    with serving_stack(fhir_server, need_patient_banner=request.param) as served:
        yield served


def _named_responder() -> dict[str, object]:
    data = responder()
    (patient,) = [
        e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    patient["name"] = [
        {"use": "old", "family": "Gabler", "given": ["Erika"]},
        {"use": "official", "family": "Mustermann", "given": ["Erika", "Maria"]},
    ]
    return data


def test_the_banner_shows_who_the_record_is_when_the_ehr_asks(
    stack: Stack, fhir_base: str, browsing: Browsing
) -> None:
    load(fhir_base, _named_responder())
    launch(browsing, stack)
    page = browsing.page
    assert page.locator("body").get_attribute("data-state") == "ready", text(page, "#status")
    assert text(page, "#ctx-patient") == PATIENT
    banner = page.locator("#ctx-who")
    if stack.auth.need_patient_banner is False:  # the EHR shows its own
        assert not banner.is_visible()
    else:
        page.wait_for_function(
            "document.getElementById('ctx-name').textContent.length > 0", timeout=10_000
        )
        assert banner.is_visible()
        assert text(page, "#ctx-name") == "Erika Maria Mustermann · female · born 1970-03-01"
    # the Patient read went to the EHR with the app's token, as every other read
    (token,) = stack.auth.record.issued_tokens
    assert all(t == token for _, _, t in stack.auth.record.fhir_requests)
    assert not browsing.console_errors and not browsing.foreign_requests
