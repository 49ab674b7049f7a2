"""What prefetch lacked, read from ``fhirServer`` with a token whose scope does not cover every
type (fhirtis/api/cds_hooks/fetch.py, service.py).

A search the FHIR server refuses 403 (the CDS client's registration lacks
``DeviceUseStatement.read`` or ``Procedure.read``) of a type the evaluation can do without (a
risk-factor source: ``fhirtis.fhir.needs.CAN_GO_WITHOUT``) no longer makes the whole call 412:
the cards come, and the risk card names the type as not read, as it names a type the server
offers no search of. A 403 on what the evaluation needs (the Patient, the Observations that
hold the weight, the MedicationAdministrations) stays 412: CDS Hooks 2.0, "HTTP Status Codes":
"412 Precondition Failed — The CDS Service is unable to retrieve the necessary FHIR data to
execute its decision support, either through a prefetch request or directly calling the FHIR
server" (cds-hooks/docs docs/specification/current.md). And ``fhirAuthorization.scope`` (CDS
Hooks 2.0: REQUIRED, "The scopes the access token grants the CDS Service", SMART scopes) is
read: a type it clearly does not grant is not asked for.

Shapes: Oracle Health's 403 is an OperationOutcome with issue ``forbidden`` and diagnostics
``Bearer realm="…", error="insufficient_scope"`` (Cerner FHIR Developers group,
https://groups.google.com/g/cerner-fhir-developers/c/_BwA1emaDPc), or a plain JSON object
``{"code": 403, "message": "… insufficient_scope …"}`` (Oracle Health developer forum,
"SMART Launch Successful but patient/*.read Scope Not Granted … (403 insufficient_scope)");
a batch entry refused 403 carries ``response.status`` "403 Forbidden" (R4 bundle.html,
batch-response). The CDS Hooks sandbox sends ``scope: "patient/*.* user/*.* launch openid
profile online_access"`` (cds-hooks/sandbox src/config/fhir-config.js); SMART v1 and v2 scope
syntax: http://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.api.access import read_not_granted
from fhirtis.fhir.needs import CAN_GO_WITHOUT, NEEDS
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
from tests.api.test_s26sc_cds_partial_search import empty_searchset
from tests.fhir.builders import qty
from tests.fhir.patients import responder
from tests.io._s25_srv_fake import statement

Json = dict[str, Any]

ORACLE_403: Json = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "forbidden",
            "diagnostics": 'Bearer realm="fhir-ehr.test", error="insufficient_scope"',
            "expression": ["http.Authorization"],
        }
    ],
}
PLAIN_403: Json = {
    "code": 403,
    "message": 'code="urn:cerner:error:oauth2:resource-access:insufficient-scopes", '
    'error="insufficient_scope", subcode="no_scope_for_resource_path"',
}


def _server(
    forbidden: Collection[str],
    seen: list[str],
    *,
    batch: bool,
    body: Json = ORACLE_403,
    found: dict[str, list[Json]] | None = None,
) -> Callable[[httpx.Request], httpx.Response]:
    """A FHIR server at ALLOWED whose token may not read the types ``forbidden`` (403 with
    ``body``). ``batch``: it takes searches in one batch (no CapabilityStatement, as HAPI with
    its AuthorizationInterceptor answers each refused entry 403), else it lists no batch (as
    Oracle Health) and every search is a GET. Every other search answers an empty page."""

    def answer(url: str) -> tuple[int, Json]:
        rtype = url.split("?", 1)[0].split("/", 1)[0]
        if rtype in forbidden:
            return 403, body
        page = empty_searchset()
        for r in (found or {}).get(rtype, []):
            page["entry"].append({"resource": r, "search": {"mode": "match"}})
        page["total"] = len(page["entry"])
        return 200, page

    def handle(request: httpx.Request) -> httpx.Response:
        path = str(request.url)[len(ALLOWED) :].lstrip("/")
        seen.append(f"{request.method} {path.split('?', 1)[0]}")
        if path == "metadata":
            if batch:
                return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})
            return httpx.Response(200, json=statement(batch=False))
        if request.method == "POST" and path == "" and batch:
            entries = []
            for e in json.loads(request.content)["entry"]:
                status, resource = answer(e["request"]["url"])
                seen.append(f"batch {e['request']['url'].split('?', 1)[0]}")
                reason = "Forbidden" if status == 403 else "OK"
                entry: Json = {"response": {"status": f"{status} {reason}"}}
                if resource.get("resourceType"):
                    entry["resource"] = resource
                entries.append(entry)
            return httpx.Response(
                200, json={"resourceType": "Bundle", "type": "batch-response", "entry": entries}
            )
        if request.method == "POST" and path == "":  # Oracle Health: no batch
            refused = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
            refused["issue"][0]["code"] = "not-supported"
            return httpx.Response(405, json=refused)
        status, resource = answer(path)
        return httpx.Response(status, json=resource)

    return handle


def _prefetch_without(*keys: str) -> Json:
    prefetch = full_prefetch(patient_70kg())
    for key in keys:
        del prefetch[key]
    return prefetch


async def _sign(prefetch: Json, scope: str | None = None) -> httpx.Response:
    body = call([ivig_order(rate=qty(150, "mL/h"))], prefetch, server=ALLOWED, token="tok")
    if scope is not None:
        body["fhirAuthorization"]["scope"] = scope
    async with cds() as api:
        return await api.post(SIGN, body)


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("refusal", [ORACLE_403, PLAIN_403])
async def test_a_risk_factor_source_refused_403_is_named_and_the_cards_come(
    httpx_mock: HTTPXMock, batch: bool, refusal: Json, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    forbidden = {"DeviceUseStatement", "Procedure"}
    httpx_mock.add_callback(_server(forbidden, seen, batch=batch, body=refusal), is_reusable=True)
    r = await _sign(_prefetch_without("deviceUseStatements", "procedures", "conditions"))
    cards = cards_of(r)  # 200, not 412
    assert any("Procedure" in s for s in seen), seen  # asked, refused
    assert any("Condition" in s for s in seen), seen  # the others are read
    # 150 mL/h of 100 mg/mL at 70 kg = 3.57 mg/kg/min: within 4 (no risk factor found)
    assert card_with(cards, "Max IVIG rate")
    risk = card_with(cards, "TEE risk")
    assert "DeviceUseStatement, Procedure" in risk["detail"], risk["detail"]
    assert "not allowed" in risk["detail"], risk["detail"]
    # the patient's data were not all read: said in the summary, as a warning
    assert risk["indicator"] == "warning", risk
    assert "data may be incomplete" in risk["summary"], risk["summary"]
    # the operator is told which types the token lacks (types only: no token, no patient)
    logged = [r.getMessage() for r in caplog.records if r.name == "fhirtis.api.cds"]
    assert any("DeviceUseStatement" in m and "Procedure" in m for m in logged), logged
    assert not any("tok" in m.split() or "p1" in m for m in logged), logged


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize(
    ("key", "rtype"),
    [("weights", "Observation"), ("administrations", "MedicationAdministration")],
)
async def test_a_needed_type_refused_403_is_412_naming_it(
    httpx_mock: HTTPXMock, batch: bool, key: str, rtype: str
) -> None:
    seen: list[str] = []
    httpx_mock.add_callback(_server({rtype}, seen, batch=batch), is_reusable=True)
    r = await _sign(_prefetch_without(key, "procedures"))
    assert r.status_code == 412, r.text
    body = r.json()
    assert body["error"] == "precondition-failed"
    assert rtype in body["message"], body
    assert "tok" not in r.text


async def test_the_patient_read_refused_403_is_412(httpx_mock: HTTPXMock) -> None:
    seen: list[str] = []
    httpx_mock.add_callback(_server({"Patient"}, seen, batch=False), is_reusable=True)
    r = await _sign(_prefetch_without("patient"))
    assert r.status_code == 412, r.text
    assert "Patient" in r.json()["message"]


V1_NARROW = (
    "launch openid fhirUser patient/Patient.read patient/Observation.read "
    "patient/MedicationAdministration.read patient/Medication.read patient/Condition.read"
)
V2_NARROW = (
    "launch/patient patient/Patient.rs patient/Observation.rs patient/MedicationAdministration.rs "
    "patient/Medication.r patient/Condition.rs patient/Procedure.c"
)


@pytest.mark.parametrize("scope", [V1_NARROW, V2_NARROW])
async def test_a_type_the_scope_does_not_grant_is_not_asked_for(
    httpx_mock: HTTPXMock, scope: str
) -> None:
    seen: list[str] = []
    httpx_mock.add_callback(_server(set(), seen, batch=False), is_reusable=True)
    r = await _sign(_prefetch_without("procedures", "deviceUseStatements", "conditions"), scope)
    cards = cards_of(r)
    assert not any("Procedure" in s or "DeviceUseStatement" in s for s in seen), seen
    assert any("Condition" in s for s in seen), seen  # granted: read
    risk = card_with(cards, "TEE risk")
    assert "DeviceUseStatement, Procedure" in risk["detail"], risk["detail"]
    assert "scope" in risk["detail"], risk["detail"]


@pytest.mark.parametrize(
    "scope",
    [
        "patient/*.* user/*.* launch openid profile online_access",  # the CDS Hooks sandbox
        "patient/*.read",
        "user/*.rs",
        "system/Procedure.read patient/Patient.read",
        # a granular scope (part of the type) is asked too, and said to be part of the type:
        # tests/api/test_s34proto_cds_granular_scope.py
        "launch openid fhirUser",  # no resource scope at all: nothing can be concluded
        "",
    ],
)
async def test_a_scope_that_may_grant_the_read_is_asked(httpx_mock: HTTPXMock, scope: str) -> None:
    seen: list[str] = []
    httpx_mock.add_callback(_server(set(), seen, batch=False), is_reusable=True)
    r = await _sign(_prefetch_without("procedures"), scope)
    risk = card_with(cards_of(r), "TEE risk")
    assert any(s.startswith("GET Procedure") for s in seen), seen
    assert "Procedure" not in risk["detail"], risk["detail"]


@pytest.mark.parametrize(
    ("scope", "denied"),
    [
        ("patient/Observation.read", True),
        ("patient/Procedure.write", True),  # v1 write only
        ("patient/Procedure.cud", True),  # v2 without r or s
        ("patient/Procedure.read", False),
        ("user/Procedure.*", False),
        ("patient/Procedure.s", False),
        ("patient/*.rs", False),
        ("patient/Procedure.rs?category=x", False),
        ("openid launch", False),
        ("patient/Procedure.Read", False),  # not SMART's spelling: not clearly denied
    ],
)
def test_read_not_granted(scope: str, denied: bool) -> None:
    assert read_not_granted(scope, "Procedure") is denied


def test_what_the_evaluation_can_go_without_is_only_risk_factor_sources() -> None:
    searched = {n.resource_type for n in NEEDS}
    assert searched >= CAN_GO_WITHOUT
    assert not CAN_GO_WITHOUT & {"Patient", "Observation", "MedicationAdministration", "Medication"}


CVC_STATEMENT: Json = {  # R4 deviceusestatement-example shape, naming a Device by reference
    "resourceType": "DeviceUseStatement",
    "id": "dus1",
    "status": "active",
    "subject": {"reference": "Patient/p1"},
    "timingPeriod": {"start": "2024-01-01"},
    "device": {"reference": "Device/cvc1"},
}


async def test_a_device_refused_403_leaves_its_statements_unread_too(httpx_mock: HTTPXMock) -> None:
    """A token that may read DeviceUseStatements but not Devices: the statement's Device is
    read by id and refused; the statement cannot show a catheter without it (clinical spec
    §5.1: "A statement whose Device cannot be resolved ... shows nothing"), so both are named."""
    seen: list[str] = []
    found = {"DeviceUseStatement": [CVC_STATEMENT]}
    httpx_mock.add_callback(_server({"Device"}, seen, batch=False, found=found), is_reusable=True)
    r = await _sign(_prefetch_without("deviceUseStatements"))
    risk = card_with(cards_of(r), "TEE risk")
    assert any(s.startswith("GET Device") and "Use" not in s for s in seen), seen
    assert "read Device, DeviceUseStatement" in risk["detail"], risk["detail"]


async def test_the_tis_card_says_when_the_conditions_were_not_read(httpx_mock: HTTPXMock) -> None:
    """The Conditions say whether the juvenile criteria apply (clinical spec §2.3)."""
    seen: list[str] = []
    httpx_mock.add_callback(_server({"Condition"}, seen, batch=False), is_reusable=True)
    prefetch = full_prefetch([e["resource"] for e in responder()["entry"]])
    del prefetch["conditions"], prefetch["conditionsNotActive"]
    r = await _sign(prefetch)
    cards = cards_of(r)
    tis = card_with(cards, "TIS")
    assert "Conditions could not all be read" in tis["detail"], tis["detail"]
    assert "read Condition" in card_with(cards, "TEE risk")["detail"]


# -- a prefetch the CDS client was refused -------------------------------------------------------
# CDS Hooks 2.0 "Prefetch Template": "If the CDS Client encounters errors prefetching the
# requested data, OperationOutcome(s) SHOULD be used to communicate those errors to prevent the
# CDS Service from incurring an unneeded follow-up query" (cds-hooks/docs
# docs/specification/current.md; PR #600, FHIR-34274: "to avoid the CDS Service calling the FHIR
# server again merely to receive the same" error). HAPI FHIR's CDS Hooks module passes such
# OperationOutcomes on (hapifhir/hapi-fhir PR #6837, prefetch failureMode OPERATION_OUTCOME).


async def test_a_refused_prefetch_of_a_risk_factor_source_is_named_without_a_server() -> None:
    prefetch = full_prefetch(patient_70kg())
    prefetch["procedures"] = ORACLE_403  # the FHIR server's answer to the client's prefetch
    body = call([ivig_order(rate=qty(150, "mL/h"))], prefetch)  # no fhirServer
    async with cds() as api:
        r = await api.post(SIGN, body)
    risk = card_with(cards_of(r), "TEE risk")  # 200, not 412
    assert "not allowed to read Procedure" in risk["detail"], risk["detail"]
    assert risk["indicator"] == "warning"


async def test_a_refused_prefetch_is_not_asked_again(httpx_mock: HTTPXMock) -> None:
    seen: list[str] = []
    httpx_mock.add_callback(_server(set(), seen, batch=False), is_reusable=True)
    prefetch = _prefetch_without("conditions")
    prefetch["deviceUseStatements"] = ORACLE_403
    risk = card_with(cards_of(await _sign(prefetch)), "TEE risk")
    assert any("Condition" in s for s in seen), seen
    assert not any("DeviceUseStatement" in s for s in seen), seen
    assert "not allowed to read DeviceUseStatement" in risk["detail"], risk["detail"]


async def test_a_needed_failed_prefetch_without_a_server_stays_412() -> None:
    prefetch = full_prefetch(patient_70kg())
    prefetch["weights"] = ORACLE_403  # needed: the dosing weight
    async with cds() as api:
        r = await api.post(SIGN, call([ivig_order(rate=qty(150, "mL/h"))], prefetch))
    assert r.status_code == 412, r.text
    # the key was sent: the message says what was wrong with it, not that it was left out
    assert "prefetch weights is an OperationOutcome" in r.json()["message"], r.json()


async def test_a_risk_factor_failed_prefetch_without_a_server_is_named_in_the_risk_card() -> None:
    """A failed prefetch (an OperationOutcome that is no refusal) of a type the evaluation can
    go without, with no fhirServer: the cards come (s30, as for a key left out: CDS Hooks 2.0
    412 is for data the service cannot do without), the risk card a warning naming it."""
    prefetch = full_prefetch(patient_70kg())
    prefetch["procedures"] = {**ORACLE_403, "issue": [{"severity": "error", "code": "exception"}]}
    async with cds() as api:
        r = await api.post(SIGN, call([ivig_order(rate=qty(150, "mL/h"))], prefetch))
    assert r.status_code == 200, r.text
    risk = card_with(cards_of(r), "TEE risk")
    assert risk["indicator"] == "warning", risk
    assert "no usable prefetch of Procedure (its prefetch failed)" in risk["detail"], risk


# -- a batch refused 403 as a whole ------------------------------------------------------------
# HAPI FHIR's AuthorizationInterceptor refuses a whole batch 403 (OperationOutcome ``processing``,
# "HAPI-0334: Access denied by default policy (no applicable rules)") without a transaction rule,
# or when an entry is denied (hapifhir/hapi-fhir issues #727, #4612; AuthorizationInterceptor
# handleDeny). The searches are then read one by one, where each refusal is weighed on its own.

HAPI_403: Json = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "processing",
            "diagnostics": "HAPI-0334: Access denied by default policy (no applicable rules)",
        }
    ],
}


async def test_a_batch_refused_403_is_read_one_search_at_a_time(httpx_mock: HTTPXMock) -> None:
    seen: list[str] = []
    one_by_one = _server({"Procedure"}, seen, batch=False, body=HAPI_403)

    def handle(request: httpx.Request) -> httpx.Response:
        path = str(request.url)[len(ALLOWED) :].lstrip("/")
        if path == "metadata":
            seen.append("GET metadata")
            return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})
        if request.method == "POST" and path == "":
            seen.append("POST batch")
            return httpx.Response(403, json=HAPI_403)
        return one_by_one(request)

    httpx_mock.add_callback(handle, is_reusable=True)
    r = await _sign(_prefetch_without("procedures", "conditions"))
    risk = card_with(cards_of(r), "TEE risk")
    assert "POST batch" in seen and any(s.startswith("GET Condition") for s in seen), seen
    assert "not allowed to read Procedure" in risk["detail"], risk["detail"]


# -- what the token must grant, in discovery ------------------------------------------------------
# CDS Hooks 2.0 "Discovery": ``usageRequirements``, "Human-friendly description of any
# preconditions for the use of this CDS Service"; "Security and Safety": the CDS Service is
# pre-registered with the authorization server, "agreeing upon the scope of FHIR access that is
# minimally necessary" (cds-hooks/docs docs/specification/current.md). The registration needs
# to know which types, and which of them the service cannot answer without.


async def test_discovery_says_which_types_the_token_must_read() -> None:
    async with cds() as api:
        services = (await api.client.get("/cds-services")).json()["services"]
    for s in services:
        text = s["usageRequirements"]
        needed, _, optional = text.partition("the answer is 412")
        for rtype in ("Patient", "Observation", "MedicationAdministration", "Medication"):
            assert f"{rtype}," in needed or f"{rtype} " in needed, text
        for rtype in sorted(CAN_GO_WITHOUT):
            assert rtype in optional, text
