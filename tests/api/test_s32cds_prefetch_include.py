"""A prefetched search that lacks the resources its template's ``_include`` brings.

The service's templates for the risk-factor sources include what their references name:
``MedicationStatement?patient=…&_include=MedicationStatement:medication`` (an estrogen),
``DeviceUseStatement?patient=…&_include=DeviceUseStatement:device`` (a central venous
catheter), and the same for MedicationRequests and MedicationAdministrations. A CDS client's
FHIR server that does not support ``_include`` for a type ignores it (FHIR R4 search.html,
"Handling Errors": a server may ignore parameters it does not support unless the client asks
for strict handling), and ``_include`` is outside the prefetch subset CDS Hooks 2.0 recommends
clients support ("Prefetch query restrictions", https://cds-hooks.hl7.org/2.0/#prefetch-query-
restrictions): the client then sends the statements without the Medication or Device they name.

CDS Hooks 2.0 "Prefetch Template": "It is the CDS Service's responsibility to check prefetched
data against its template to determine what requests were satisfied (if any) and to
programmatically retrieve any additional necessary data" — with ``fhirServer`` and
``fhirAuthorization`` ("the CDS Service MAY use the FHIR server to obtain any FHIR resources for
which it's authorized, beyond those provided by the CDS Client as prefetched data"). The
service read neither: an estrogen taken and a catheter in place (clinical spec §5.1, thrombosis
risk factors) were silently not counted, the risk card said "no thrombosis risk factor found"
(info) and the maximum rate was 4 mg/kg/min instead of 3.3, so a 150 mL/h order (3.57
mg/kg/min for 70 kg of a 10% product) got no warning.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from pytest_httpx import HTTPXMock

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
from tests.e2e.test_run import load
from tests.fhir.builders import ATC, bundle, qty
from tests.fhir_test_server import FhirTestServer
from tests.io._s25_srv_fake import catheter, use_statement

Json = dict[str, Any]

ESTROGEN: Json = {
    "resourceType": "Medication",
    "id": "est",
    "code": {"coding": [{"system": ATC, "code": "G03AA01"}], "text": "ethinylestradiol"},
}
STATEMENT: Json = {
    "resourceType": "MedicationStatement",
    "id": "ms",
    "status": "active",
    "medicationReference": {"reference": "Medication/est"},
    "subject": {"reference": "Patient/p1"},
    "effectivePeriod": {"start": "2023-01-01"},
}
LINE = catheter()  # a central venous catheter with no patient of its own (R4 DeviceUseStatement)
USE = use_statement(timingPeriod={"start": "2024-01-05"})


def _searchset(matches: list[Json], included: list[Json]) -> Json:
    entries = [(r, "match") for r in matches] + [(r, "include") for r in included]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(matches),
        "entry": [
            {
                "fullUrl": f"{ALLOWED}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": mode},
            }
            for r, mode in entries
        ],
    }


def _prefetch(*, included: bool) -> Json:
    prefetch = full_prefetch(patient_70kg())
    prefetch["medicationStatements"] = _searchset([STATEMENT], [ESTROGEN] if included else [])
    prefetch["deviceUseStatements"] = _searchset([USE], [LINE] if included else [])
    return prefetch


RISK = "TEE risk with IVIG: 2 risk factor(s): Estrogen use, Indwelling central venous catheter"


async def test_with_the_included_resources_both_risk_factors_count() -> None:
    body = call([ivig_order(rate=qty(150, "mL/h"))], _prefetch(included=True))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    assert card_with(cards, "TEE risk")["summary"] == RISK
    assert "exceeds the max 3.3 mg/kg/min" in card_with(cards, "exceeds")["summary"]


async def test_what_the_include_would_have_brought_is_read_from_the_fhir_server(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    """The statements were prefetched, their Medication and Device were not: the service reads
    those two from ``fhirServer`` with the token, and the cards are those of a full prefetch."""
    load(fhir_base, bundle(*patient_70kg(), STATEMENT, ESTROGEN, USE, LINE))
    prefetch = _prefetch(included=False)
    body = call([ivig_order(rate=qty(150, "mL/h"))], prefetch, server=fhir_base, token="tok-s32")
    fhir_server.reset_stats()
    async with cds(fhir_base) as api:
        cards = cards_of(await api.post(SIGN, body))
        sent = list(api.sent)
    assert card_with(cards, "TEE risk")["summary"] == RISK
    assert card_with(cards, "Max IVIG rate")["summary"] == (
        "Max IVIG rate 3.3 mg/kg/min = 138 mL/h for 70 kg of 100 mg/mL"
    )
    assert "exceeds the max 3.3 mg/kg/min" in card_with(cards, "exceeds")["summary"]
    urls = [str(r.url) for r in sent]
    assert urls and all(u.startswith(fhir_base) for u in urls), urls
    assert all(r.headers["authorization"] == "Bearer tok-s32" for r in sent)
    # only what was missing: neither statement search is sent again
    assert not any("Statement" in u for u in urls), urls
    assert fhir_server.stats()["committed_writes"] == 0


async def test_without_a_fhir_server_the_risk_card_says_the_data_may_be_incomplete() -> None:
    """No ``fhirServer``: the Medication and Device cannot be read. The risk card must not say
    "no thrombosis risk factor found" as if the record had been read whole (clinical spec:
    "where data does not allow a rule to run, the result says so")."""
    body = call([ivig_order(rate=qty(150, "mL/h"))], _prefetch(included=False))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    risk = card_with(cards, "TEE risk")
    assert risk["indicator"] == "warning", risk
    assert risk["summary"] == (
        "TEE risk with IVIG: no thrombosis risk factor found (data may be incomplete)"
    )
    assert "Medication of MedicationStatement" in risk["detail"], risk["detail"]
    assert "Device of DeviceUseStatement" in risk["detail"], risk["detail"]


def _server_ignoring_include(seen: list[str], *, device_status: int = 200) -> Any:
    """A FHIR server at ALLOWED that takes searches in a batch and does not support
    ``_include``: it ignores it (R4 search.html), answering the matches only. ``_id`` searches
    (and reads) find the Medication and the Device; a Device read answers ``device_status``."""
    by_type: dict[str, list[Json]] = {
        "MedicationStatement": [STATEMENT],
        "DeviceUseStatement": [USE],
    }
    by_id = {"Medication": ESTROGEN, "Device": LINE}

    def answer(url: str) -> tuple[int, Json]:
        parts = urlsplit(url)
        rtype, _, rid = parts.path.strip("/").partition("/")
        ids = parse_qs(parts.query).get("_id", [rid] if rid else [])
        if rtype in by_id and ids:
            if rtype == "Device" and device_status != 200:
                issue = {"severity": "error", "code": "forbidden"}
                return device_status, {"resourceType": "OperationOutcome", "issue": [issue]}
            found = [by_id[rtype]] if by_id[rtype]["id"] in ",".join(ids).split(",") else []
            if rid:
                return (200, found[0]) if found else (404, {"resourceType": "OperationOutcome"})
        else:
            found = by_type.get(rtype, [])
        entries = [{"resource": r, "search": {"mode": "match"}} for r in found]
        page = {"resourceType": "Bundle", "type": "searchset", "total": len(found)}
        return 200, {**page, "entry": entries}

    def handle(request: httpx.Request) -> httpx.Response:
        path = str(request.url)[len(ALLOWED) :].lstrip("/")
        seen.append(f"{request.method} {path}")
        if path == "metadata":
            return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})
        if request.method == "POST" and path == "":
            entries = []
            for e in json.loads(request.content)["entry"]:
                status, resource = answer(e["request"]["url"])
                entries.append({"response": {"status": f"{status}"}, "resource": resource})
            batch = {"resourceType": "Bundle", "type": "batch-response", "entry": entries}
            return httpx.Response(200, json=batch)
        status, resource = answer(path)
        return httpx.Response(status, json=resource)

    return handle


async def test_a_server_that_ignores_include_has_the_rest_read_by_id(
    httpx_mock: HTTPXMock,
) -> None:
    """The statements are not prefetched and are read from ``fhirServer``, which ignores
    ``_include``: the Medication and the Device they name are read by id next."""
    seen: list[str] = []
    httpx_mock.add_callback(_server_ignoring_include(seen), is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch["medicationStatements"], prefetch["deviceUseStatements"]
    body = call([ivig_order(rate=qty(150, "mL/h"))], prefetch, server=ALLOWED, token="tok")
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    assert card_with(cards, "TEE risk")["summary"] == RISK, seen
    assert "exceeds the max 3.3 mg/kg/min" in card_with(cards, "exceeds")["summary"]
    assert any("Medication" in s and "est" in s for s in seen), seen


async def test_a_device_the_token_may_not_read_is_named(httpx_mock: HTTPXMock) -> None:
    """The Device a statement names is refused 403 (a token without Device): not a 412 (a
    risk-factor source the evaluation can go without), and the risk card says so."""
    seen: list[str] = []
    httpx_mock.add_callback(_server_ignoring_include(seen, device_status=403), is_reusable=True)
    body = call(
        [ivig_order(rate=qty(150, "mL/h"))], _prefetch(included=False), server=ALLOWED, token="t"
    )
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    risk = card_with(cards, "TEE risk")
    assert risk["summary"] == "TEE risk with IVIG: 1 risk factor(s): Estrogen use", seen
    assert "not allowed to read Device" in risk["detail"], risk["detail"]
    assert "Device of DeviceUseStatement" in risk["detail"], risk["detail"]
