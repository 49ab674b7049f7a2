"""A CDS call whose ``fhirAuthorization.scope`` grants a type only through SMART v2 granular
scopes (fhirtis/api/cds_hooks/service.py, fhirtis/api/access.py).

CDS Hooks 2.0 "Passing the Access Token": ``scope`` (REQUIRED) is "The scopes the access token
grants the CDS Service", as the SMART App Launch defines them (cds-hooks/docs
docs/specification/current.md). SMART App Launch 2.x, "Finer-grained resource constraints using
search parameters": ``patient/Observation.rs?category=…|laboratory`` grants "read and search
access to laboratory observations but not other observations"; and, on what a search then
answers: "a client may receive: `200 OK` response to a search interaction that appears to be
allowed by the granted scopes, but where results have been omitted from the response Bundle"
(HL7/smart-app-launch input/pages/scopes-and-launch-context.md). US Core 6+ servers support
such scopes for Condition and Observation categories (problem-list-item, encounter-diagnosis,
health-concern; laboratory, vital-signs, …).

fhirtis asked for such a type (right: the scope grants part of it), but then took the answer
for the whole record: a DVT recorded as an encounter diagnosis, left out of a search that the
token may make only for problem-list items, gave the risk card "no thrombosis risk factor
found", indicator ``info``, and the maximum rate of a patient without risk factors (4 rather
than 3.3 mg/kg/min). Clinical specification: "Never guess silently: where data does not allow a
rule to run, the result says so (missing, partial, …)". Now the risk card says which types the
token's scope grants only in part, as a warning ("data may be incomplete"), as it says so for a
type the scope does not grant at all (s29b).
"""

from __future__ import annotations

from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from fhirtis.api.access import read_limited
from tests.api.test_cds_hooks import (
    ALLOWED,
    SIGN,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.api.test_s29b_cds_forbidden_types import _prefetch_without, _server, _sign
from tests.fhir.builders import qty

Json = dict[str, Any]

CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
#: every type the service reads granted whole, less the one each test restricts
WHOLE = {
    t: f"patient/{t}.rs"
    for t in (
        "Patient",
        "Observation",
        "MedicationAdministration",
        "Medication",
        "Condition",
        "MedicationStatement",
        "MedicationRequest",
        "Device",
        "DeviceUseStatement",
        "Procedure",
        "AdverseEvent",
    )
}


def scope_with(**restricted: list[str]) -> str:
    """SMART v2 scopes granting every type whole, except each type named, which is granted only
    through the granular scopes given."""
    scopes = ["launch/patient", "openid", "fhirUser"]
    for rtype, whole in WHOLE.items():
        scopes += restricted.get(rtype, [whole])
    return " ".join(scopes)


US_CORE_PROBLEMS = f"patient/Condition.rs?category={CATEGORY}|problem-list-item"
US_CORE_VITALS_AND_LABS = [
    f"patient/Observation.rs?category={OBS_CATEGORY}|vital-signs",
    f"patient/Observation.rs?category={OBS_CATEGORY}|laboratory",
]


async def test_conditions_granted_only_in_part_make_the_risk_card_a_warning(
    httpx_mock: HTTPXMock,
) -> None:
    """The token may search problem-list Conditions only: the server's answer (here none: the
    encounter-diagnosis DVT left out) is not all the patient's Conditions."""
    seen: list[str] = []
    httpx_mock.add_callback(_server(set(), seen, batch=False), is_reusable=True)
    scope = scope_with(Condition=[US_CORE_PROBLEMS])
    r = await _sign(_prefetch_without("conditions", "conditionsNotActive"), scope)
    cards = cards_of(r)
    assert any(s.startswith("GET Condition") for s in seen), seen  # asked: part is granted
    risk = card_with(cards, "TEE risk")
    assert risk["indicator"] == "warning", risk
    assert "data may be incomplete" in risk["summary"], risk["summary"]
    assert "Condition" in risk["detail"] and "scope" in risk["detail"], risk["detail"]
    assert "problem-list-item" in risk["detail"], risk["detail"]


async def test_observations_granted_only_by_category_are_said(httpx_mock: HTTPXMock) -> None:
    """US Core's vital-signs and laboratory categories: the weight and the enzymes, but not the
    core set measures (whose PGA ≥ 7 cm is a risk factor, clinical spec §5.1) nor a BMI of
    another category."""
    seen: list[str] = []
    httpx_mock.add_callback(_server(set(), seen, batch=False), is_reusable=True)
    r = await _sign(_prefetch_without("measures"), scope_with(Observation=US_CORE_VITALS_AND_LABS))
    risk = card_with(cards_of(r), "TEE risk")
    assert risk["indicator"] == "warning", risk
    assert "Observation" in risk["detail"] and "vital-signs" in risk["detail"], risk["detail"]


async def test_prefetched_data_under_a_granular_scope_are_said_too() -> None:
    """The prefetch "MUST be equivalent to the data the CDS Service would receive if it were
    making its own call" (CDS Hooks 2.0, "Prefetch Template"): with this token, part of the
    Conditions. No FHIR server is read."""
    body = call(
        [ivig_order(rate=qty(150, "mL/h"))],
        full_prefetch(patient_70kg()),
        server=ALLOWED,
        token="tok",
    )
    body["fhirAuthorization"]["scope"] = scope_with(Condition=[US_CORE_PROBLEMS])
    async with cds() as api:
        r = await api.post(SIGN, body)
        assert api.sent == []
    risk = card_with(cards_of(r), "TEE risk")
    assert risk["indicator"] == "warning", risk
    assert "Condition" in risk["detail"], risk["detail"]


@pytest.mark.parametrize(
    "scope",
    [
        scope_with(),  # every type whole
        # a whole grant beside a granular one: the whole type
        scope_with(Condition=[US_CORE_PROBLEMS, "patient/Condition.rs"]),
        scope_with(Condition=[US_CORE_PROBLEMS, "user/Condition.read"]),
        scope_with(Condition=[US_CORE_PROBLEMS]) + " patient/*.rs",
        "patient/*.* user/*.* launch openid profile online_access",  # the CDS Hooks sandbox
    ],
)
async def test_a_whole_grant_is_not_said_to_be_partial(httpx_mock: HTTPXMock, scope: str) -> None:
    seen: list[str] = []
    httpx_mock.add_callback(_server(set(), seen, batch=False), is_reusable=True)
    r = await _sign(_prefetch_without("conditions"), scope)
    risk = card_with(cards_of(r), "TEE risk")
    assert risk["indicator"] == "info", risk
    assert "scope" not in risk["detail"], risk["detail"]


async def test_a_granular_procedure_scope_is_asked_and_said(httpx_mock: HTTPXMock) -> None:
    """s29b's case: a granular Procedure scope may grant the search (it is made), and the risk
    card now says the token's scope grants Procedure only in part."""
    seen: list[str] = []
    httpx_mock.add_callback(_server(set(), seen, batch=False), is_reusable=True)
    scope = "patient/Procedure.rs?category=http://snomed.info/sct|387713003"
    r = await _sign(_prefetch_without("procedures"), scope)
    risk = card_with(cards_of(r), "TEE risk")
    assert any(s.startswith("GET Procedure") for s in seen), seen
    assert "only part of Procedure" in risk["detail"], risk["detail"]


_R = "patient/Condition.r?category=x"
_S = "patient/Condition.s?category=x"


@pytest.mark.parametrize(
    ("scope", "limited"),
    [
        (US_CORE_PROBLEMS, [US_CORE_PROBLEMS]),
        (f"{_R} {_S}", [_R, _S]),
        ("patient/*.rs?category=x", ["patient/*.rs?category=x"]),
        ("patient/Condition.rs?category=x patient/Condition.read", []),
        ("patient/Condition.rs?category=x user/*.rs", []),
        ("patient/Condition.rs", []),
        ("patient/Condition.cud?category=x", []),  # no read at all: read_not_granted's
        ("patient/Observation.rs?category=x", []),  # another type
        ("launch openid fhirUser", []),
        ("", []),
        # a spelling SMART does not define may grant the whole type (read_not_granted's rule)
        ("patient/Condition.rs?category=x patient/Condition.Read", []),
    ],
)
def test_read_limited(scope: str, limited: list[str]) -> None:
    assert read_limited(scope, "Condition") == limited
