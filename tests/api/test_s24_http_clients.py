"""The service as real clients call it: an EHR's CDS Hooks 2.0 calls (order-select selections,
order-sign draft orders without ids, the feedback endpoint) and an integrator's
``$myositis-evaluate`` Parameters with a value of the wrong type.

Shapes follow the CDS Hooks 2.0 specification (https://cds-hooks.hl7.org/2.0/: "order-select"
``context.selections`` are references such as ``MedicationRequest/103`` to resources in
``draftOrders``; "Feedback": ``POST {baseUrl}/cds-services/{service.id}/feedback`` with
``{"feedback": [{"card", "outcome", "acceptedSuggestions", "overrideReason",
"outcomeTimestamp"}]}``) and the operation's OperationDefinition
(``profiles/OperationDefinition-myositis-evaluate.json``: the policy parameters are integer,
decimal or code).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from tests.api.test_cds_hooks import (
    ALLOWED,
    DVT,
    SELECT,
    SIGN,
    _service_clock,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    other_order,
    patient_70kg,
)
from tests.api.test_evaluate_api import AUTH, OP, api, service, token, validating
from tests.api.test_security import BASE, app_client, cds_jwt, validate_mode
from tests.fhir.builders import qty

__all__ = ["_service_clock", "api", "validating"]  # fixtures used here

Json = dict[str, object]


# -- $myositis-evaluate: a policy value of the wrong FHIR type ------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("juvenile_onset_age", False), ("cycle_gap_days", True), ("tee_window_days", True)],
)
async def test_a_boolean_is_not_a_number_of_days_or_years(
    api: httpx.AsyncClient, name: str, value: bool
) -> None:
    """``valueBoolean`` for an integer policy parameter is refused, not read as 0 or 1 (false
    for juvenile_onset_age would put every patient on the adult criteria)."""
    body = {"resourceType": "Parameters", "parameter": [{"name": name, "valueBoolean": value}]}
    r = await api.post(OP, headers=AUTH, json=body)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    (issue,) = r.json()["issue"]
    assert issue["severity"] == "error" and issue["code"] == "invalid"
    assert issue["expression"] == [name]


async def test_an_integer_policy_value_is_still_taken(api: httpx.AsyncClient) -> None:
    for value in ({"valueInteger": 18}, {"valueString": "18"}):
        body = {
            "resourceType": "Parameters",
            "parameter": [{"name": "juvenile_onset_age", **value}],
        }
        r = await api.post(OP, headers=AUTH, json=body)
        assert r.status_code == 200, r.text


# -- CDS Hooks order-select: selections must name draft orders ------------------------------------


@pytest.mark.parametrize(
    "selections",
    [
        ["rx1"],  # a bare id, not a reference such as MedicationRequest/rx1
        ["MedicationRequest/zzz"],  # an order that is not in draftOrders
        ["MedicationRequest/rx1", "MedicationRequest/zzz"],
    ],
)
async def test_a_selection_that_names_no_draft_order_is_400(selections: list[str]) -> None:
    """An IVIG order selected by a reference that matches nothing in draftOrders was answered
    ``{"cards": []}``: the clinician saw no rate warning, and the EHR no error."""
    order = ivig_order(rate=qty(300, "mL/h"))
    body = call(
        [order], full_prefetch(patient_70kg(DVT)), hook="order-select", selections=selections
    )
    async with cds() as api:
        r = await api.post(SELECT, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid-request"
    assert "context.selections" in r.json()["message"]


async def test_selections_by_reference_and_of_other_orders_are_taken() -> None:
    orders = [ivig_order(rate=qty(300, "mL/h")), other_order("rx9")]
    prefetch = full_prefetch(patient_70kg(DVT))
    async with cds() as api:
        only_other = await api.post(
            SELECT,
            call(orders, prefetch, hook="order-select", selections=["MedicationRequest/rx9"]),
        )
        assert cards_of(only_other) == []
        both = await api.post(
            SELECT,
            call(
                orders,
                prefetch,
                hook="order-select",
                selections=["MedicationRequest/rx1", "MedicationRequest/rx9"],
            ),
        )
        assert card_with(cards_of(both), "exceeds")


# -- CDS Hooks order-sign: a draft order with no id ---------------------------------------------


async def test_an_ivig_order_without_an_id_still_gets_its_warning() -> None:
    """A draft MedicationRequest with neither ``id`` nor ``fullUrl`` (an unsaved order; FHIR
    does not require ids in a collection Bundle) at 300 mL/h for 70 kg of 10 % with a DVT
    history: 300 × 100 / 60 / 70 = 7.14 mg/kg/min, above 3.3 (138 mL/h). It got no card."""
    order = ivig_order(rate=qty(300, "mL/h"))
    del order["id"]
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, call([order], full_prefetch(patient_70kg(DVT)))))
    assert "History of venous or arterial thrombosis" in card_with(cards, "TEE risk")["summary"]
    assert card_with(cards, "Max IVIG rate")["summary"] == (
        "Max IVIG rate 3.3 mg/kg/min = 138 mL/h for 70 kg of 100 mg/mL"
    )
    fast = card_with(cards, "exceeds")
    assert fast["indicator"] == "warning"
    assert "(7.14 mg/kg/min)" in fast["summary"]
    # an update action needs the order's id: none is offered for an order the EHR cannot match
    assert "suggestions" not in fast and "selectionBehavior" not in fast
    assert "no id" in fast["detail"]


# -- CDS Hooks feedback ---------------------------------------------------------------------------

FEEDBACK = SIGN + "/feedback"
CARD_UUID = "4d1ba1c9-0dd3-4d2f-8e6b-8c2b2b9a6f47"
SUGGESTION_UUID = "9f3b6b2e-0a39-4d8b-b3e5-2d1b6a4c8e11"
COMMENT = "Patient Jane Roe has a port; rate agreed with haematology"  # free text: never logged


def feedback(**one: object) -> Json:
    """The CDS Hooks 2.0 feedback body: the sandbox's shape (cds-hooks/sandbox, feedback)."""
    entry: Json = {
        "card": CARD_UUID,
        "outcome": "accepted",
        "outcomeTimestamp": "2026-12-05T10:00:00Z",
    }
    entry.update(one)
    return {"feedback": [entry]}


async def test_feedback_is_taken_and_its_free_text_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A CDS client SHOULD send feedback; the endpoint answered 404 (as an OperationOutcome)."""
    accepted = feedback(acceptedSuggestions=[{"id": SUGGESTION_UUID}])
    overridden = feedback(
        outcome="overridden",
        overrideReason={
            "reason": {"code": "patient-refused", "system": "http://ehr.test/reasons"},
            "userComment": COMMENT,
        },
    )
    caplog.set_level(logging.DEBUG)
    async with cds() as api:
        for body in (accepted, overridden, {"feedback": []}):
            r = await api.post(FEEDBACK, body)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("application/json")
        r = await api.post(SELECT + "/feedback", accepted)
        assert r.status_code == 200, r.text
    assert COMMENT not in caplog.text and "Jane" not in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"feedback": {}},
        {"feedback": ["x"]},
        feedback(card=None),
        feedback(card=""),
        feedback(outcome="ignored"),
        feedback(outcomeTimestamp=None),
        feedback(acceptedSuggestions={"id": SUGGESTION_UUID}),
        feedback(acceptedSuggestions=[{"uuid": SUGGESTION_UUID}]),
        feedback(overrideReason="because"),
    ],
)
async def test_malformed_feedback_is_400(body: object) -> None:
    async with cds() as api:
        r = await api.client.post(FEEDBACK, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid-request"


async def test_feedback_to_an_unknown_service_is_404() -> None:
    async with cds() as api:
        r = await api.post("/cds-services/nope/feedback", feedback())
    assert r.status_code == 404 and r.json()["error"] == "unknown-service"


async def test_feedback_needs_a_trusted_clients_jwt(fhir_base: str, tmp_path: Path) -> None:
    """Feedback is a service call like any other (CDS Hooks 2.0 "Trusting CDS Clients"): the
    JWT's ``aud`` is the endpoint called (the feedback URL; the service's URL is taken too)."""
    async with app_client(fhir_base, **validate_mode(tmp_path)) as client:
        r = await client.post(FEEDBACK, json=feedback())
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        other = {"Authorization": f"Bearer {cds_jwt(aud=BASE + SELECT + '/feedback')}"}
        assert (await client.post(FEEDBACK, json=feedback(), headers=other)).status_code == 401
        for aud in (BASE + FEEDBACK, BASE + SIGN):
            auth = {"Authorization": f"Bearer {cds_jwt(aud=aud)}"}
            r = await client.post(FEEDBACK, json=feedback(), headers=auth)
            assert r.status_code == 200, r.text
            replay = await client.post(FEEDBACK, json=feedback(), headers=auth)
            assert replay.status_code == 401


# -- FHIR answers say their encoding ------------------------------------------------------------


async def test_every_fhir_answer_says_it_is_utf_8(api: httpx.AsyncClient) -> None:
    """FHIR R4 http.html ("Content Types and encodings"): HTTP's default encoding being
    ISO-8859-1, "requests and responses SHALL explicitly set the character encoding to UTF-8
    using the charset parameter of the MIME-type in the Content-Type header". The answers hold
    non-ASCII text (the OperationOutcome's "≥", the narrative's "–")."""
    answers = {
        "metadata": await api.get("/metadata"),
        "definition": await api.get("/OperationDefinition/myositis-evaluate"),
        "evaluate": await api.post(OP, headers=AUTH),
        "get": await api.get(OP, headers=AUTH),
        "400": await api.get(OP + "?population=elderly", headers=AUTH),
        "401": await api.post(OP),
        "404": await api.post("/Patient/nobody/$myositis-evaluate", headers=AUTH),
        "405": await api.put(OP, headers=AUTH),
        "406": await api.get("/metadata", headers={"Accept": "application/fhir+xml"}),
        "415": await api.post(OP, headers={**AUTH, "Content-Type": "text/plain"}, content=b"x"),
    }
    for what, r in answers.items():
        media, _, params = r.headers["content-type"].partition(";")
        assert media == "application/fhir+json", (what, r.headers["content-type"])
        assert params.strip().lower() == "charset=utf-8", (what, r.headers["content-type"])
        r.content.decode("utf-8")


# -- CDS Hooks fhirAuthorization for another patient ----------------------------------------------


async def test_a_token_for_another_patient_is_400() -> None:
    """``fhirAuthorization.patient`` (CDS Hooks 2.0: the patient a patient-scoped token is
    restricted to) must be ``context.patientId``: reads with a token for another patient can come
    back empty, and "no risk factor found" would then be said of the wrong record."""
    order = ivig_order(rate=qty(300, "mL/h"))
    body = call([order], {}, server=ALLOWED, token="ehr-token")
    body["fhirAuthorization"]["patient"] = "p2"
    async with cds() as api:
        r = await api.post(SIGN, body)
        assert api.sent == []  # the FHIR server was never asked
    assert r.status_code == 400, r.text
    assert "fhirAuthorization.patient" in r.json()["message"]


async def test_a_token_for_the_patient_in_context_is_taken() -> None:
    order = ivig_order(rate=qty(300, "mL/h"))
    body = call([order], full_prefetch(patient_70kg(DVT)), server=ALLOWED, token="ehr-token")
    body["fhirAuthorization"]["patient"] = "p1"
    async with cds() as api:
        assert card_with(cards_of(await api.post(SIGN, body)), "exceeds")


# -- a 401 passed on from the FHIR server carries its challenge ---------------------------------


async def test_a_401_of_the_fhir_server_is_a_401_with_a_challenge(httpx_mock: HTTPXMock) -> None:
    """In pass-through mode the caller's token goes to the FHIR server; when that server refuses
    it (401), the caller gets 401 — which, by RFC 9110 §11.6.1, MUST carry WWW-Authenticate (the
    SMART page and OAuth clients read it to know they must get a new token)."""
    base = "http://fhir.test/fhir"
    httpx_mock.add_response(url=f"{base}/metadata", status_code=404, json={})
    httpx_mock.add_response(url=base, method="POST", status_code=401, json={})
    async with service(base) as client:
        r = await client.post(OP, headers=AUTH)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["resourceType"] == "OperationOutcome"
    assert "caller-token" not in r.text


# -- the CapabilityStatement claims no system-level operation ------------------------------------


async def test_the_capability_statement_offers_no_system_level_operation(
    api: httpx.AsyncClient,
) -> None:
    """FHIR R4 CapabilityStatement.rest.operation (its definition's comment): "Operations linked
    from CapabilityStatement.rest.operation must have OperationDefinition.system = true, or more
    than one Operation.resource". $myositis-evaluate is a Patient operation only (system false,
    resource [Patient]); listed at the system level, a client would call [base]/$myositis-evaluate,
    which the service does not serve."""
    cs = (await api.get("/metadata")).json()
    opdef = (await api.get("/OperationDefinition/myositis-evaluate")).json()
    assert opdef["system"] is False and opdef["resource"] == ["Patient"]
    (rest,) = cs["rest"]
    for op in rest.get("operation", []):
        assert op["definition"] != opdef["url"], op
    (patient,) = [r for r in rest["resource"] if r["type"] == "Patient"]
    assert [o["definition"] for o in patient["operation"]] == [opdef["url"]]
    r = await api.post("/$myositis-evaluate", headers=AUTH, json={"resourceType": "Parameters"})
    assert r.status_code in {404, 405}


# -- OAuth 2.0 bearer challenges say what is wrong (RFC 6750 §3) --------------------------------


@pytest.mark.parametrize(
    ("tok", "status", "error"),
    [
        (lambda: None, 401, None),  # no credentials: no error code (RFC 6750 §3.1)
        (lambda: token(exp=int(time.time()) - 10), 401, "invalid_token"),
        (lambda: "not-a-jwt", 401, "invalid_token"),
        (lambda: token(patient="p2"), 403, "insufficient_scope"),
        (lambda: token(scope="patient/Patient.read"), 403, "insufficient_scope"),
    ],
)
async def test_refusals_carry_the_bearer_challenge(
    validating: httpx.AsyncClient, tok: Any, status: int, error: str | None
) -> None:
    """RFC 6750 §3: a resource server MUST send WWW-Authenticate when the request has no token
    or "does not contain an access token that enables access" (a token lacking scopes, or for
    another patient, 403 included), with ``error="invalid_token"`` / ``"insufficient_scope"``
    where it is known, and no error code when no credentials were sent."""
    value = tok()
    headers = {"Authorization": f"Bearer {value}"} if value else {}
    r = await validating.post(OP, headers=headers)
    assert r.status_code == status, r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="fhirtis"')
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge
