"""CDS Hooks 2.0 for IVIG orders: discovery, cards, prefetch versus reading, errors."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.api.app import create_app
from fhirtis.api.cds_hooks import SERVICES, evaluate
from fhirtis.fhir.bundle import PatientResources
from fhirtis.io import FhirClientConfig
from fhirtis.pipeline.offline import Options, evaluate_patient_resources
from fhirtis.settings import ServiceSettings, Settings
from tests.api.app_setup import serving
from tests.e2e.test_run import load
from tests.fhir.builders import (
    LOINC,
    SCT,
    bundle,
    condition,
    medication,
    obs,
    patient,
    qty,
)
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
SIGN = "/cds-services/fhirtis-ivig-order-sign"
SELECT = "/cds-services/fhirtis-ivig-order-select"
ALLOWED = "http://fhir.test/fhir"
TODAY = datetime.now(UTC).date()


@pytest.fixture(autouse=True)
def _service_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's "now" is noon of :data:`TODAY`, the day the test data is dated from, so
    that "weighed 45 days ago" means 45 days even when the run crosses midnight (UTC)."""
    noon = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)
    monkeypatch.setattr("fhirtis.api.cds_hooks.service._now", lambda: noon)


def _day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


# -- building hook calls -------------------------------------------------------------------------


def ivig_order(
    oid: str = "rx1",
    rate: Json | None = None,
    *,
    grams_per_100ml: int | None = 10,
    rate_key: str = "rateQuantity",
    med: Json | None = None,
) -> Json:
    """A draft MedicationRequest of IVIG with a contained Medication (or ``med``)."""
    r: Json = {
        "resourceType": "MedicationRequest",
        "id": oid,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "dosageInstruction": [
            {"text": "IVIG 2 g/kg over 2 days", "doseAndRate": [{"doseQuantity": qty(70, "g")}]}
        ],
    }
    if med is None:
        r["contained"] = [medication("m", grams_per_100ml, text="Privigen")]
        r["medicationReference"] = {"reference": "#m"}
    else:
        r.update(med)
    if rate is not None:
        r["dosageInstruction"][0]["doseAndRate"][0][rate_key] = rate
    return r


def other_order(oid: str = "rx9") -> Json:
    return {
        "resourceType": "MedicationRequest",
        "id": oid,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "161"}],
            "text": "acetaminophen 500 MG",
        },
        "dosageInstruction": [{"doseAndRate": [{"doseQuantity": qty(500, "mg")}]}],
    }


def searchset(resources: list[Json]) -> Json | None:
    if not resources:
        return None  # CDS Hooks: null when there are no data
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"{ALLOWED}/{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ],
    }


_OBS_KEY = {"29463-7": "weights", "8302-2": "height", "39156-5": "bmi"}
_TYPE_KEY = {
    "MedicationAdministration": "administrations",
    "Medication": "administrations",
    "Condition": "conditions",
    "MedicationStatement": "medicationStatements",
    "Device": "devices",
    "DeviceUseStatement": "deviceUseStatements",
    "Procedure": "procedures",
    "AdverseEvent": "adverseEvents",
}
KEYS = (
    "patient",
    "weights",
    "height",
    "bmi",
    "measures",
    "administrations",
    "conditions",
    "conditionsNotActive",
    "medicationStatements",
    "medicationRequests",
    "devices",
    "deviceUseStatements",
    "procedures",
    "adverseEvents",
)


def full_prefetch(resources: list[Json]) -> Json:
    """What a CDS client sends for the service's templates, from the patient's resources."""
    groups: dict[str, list[Json]] = {k: [] for k in KEYS}
    found_patient: Json | None = None
    for r in resources:
        rtype = r["resourceType"]
        if rtype == "Patient":
            found_patient = r
        elif rtype == "Observation":
            code = r["code"]["coding"][0]["code"]
            groups[_OBS_KEY.get(code, "measures")].append(r)
        else:
            groups[_TYPE_KEY[rtype]].append(r)
    groups["weights"].sort(key=lambda o: o["effectiveDateTime"], reverse=True)
    out: Json = {k: searchset(v) for k, v in groups.items() if k != "patient"}
    out["patient"] = found_patient
    return out


def patient_70kg(*extra: Json, weighed_days_ago: int = 3) -> list[Json]:
    return [
        patient(),
        obs("w1", "29463-7", 70, "kg", _day(weighed_days_ago), system=LOINC),
        obs("w0", "29463-7", 74, "kg", _day(400), system=LOINC),
        *extra,
    ]


DVT = condition("dvt", SCT, "128053003", "2024-02-13T10:00:00Z")


def call(
    orders: list[Json],
    prefetch: Json | None,
    *,
    hook: str = "order-sign",
    server: str | None = None,
    token: str | None = None,
    selections: list[str] | None = None,
) -> Json:
    body: Json = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/dr1",
            "patientId": "p1",
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": o} for o in orders],
            },
        },
    }
    if selections is not None:
        body["context"]["selections"] = selections
    if prefetch is not None:
        body["prefetch"] = prefetch
    if server is not None:
        body["fhirServer"] = server
    if token is not None:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            # every type the service reads (a narrower scope is not asked beyond: s29b)
            "scope": "launch patient/*.read",
            "subject": "fhirtis-cds",
        }
    return body


# -- the app in-process --------------------------------------------------------------------------


@dataclass
class Api:
    client: httpx.AsyncClient
    sent: list[httpx.Request] = field(default_factory=list)  # the app's own outgoing requests

    async def post(self, url: str, body: Json) -> httpx.Response:
        return await self.client.post(url, json=body)


@asynccontextmanager
async def cds(
    base: str = ALLOWED, page_size: int = 100, terminology: str | None = None, **service: Any
) -> AsyncIterator[Api]:
    settings = Settings(
        terminology={"base_url": terminology} if terminology else None,
        fhir=FhirClientConfig(
            base_url=base,
            retry_max_attempts=2,
            retry_budget_seconds=2,
            read_timeout_seconds=5,
            page_size=page_size,
        ),
        service=ServiceSettings(**service),
    )
    app = create_app(settings)
    async with serving(app) as client:
        api = Api(client)

        async def record(request: httpx.Request) -> None:
            api.sent.append(request)

        state = app.state.fhirtis
        for http in [state.http, *(state.http_for(server) for server in state.allowed)]:
            http.event_hooks = {"request": [record], "response": []}
        yield api


def cards_of(r: httpx.Response) -> list[Json]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"cards"}
    for card in body["cards"]:
        assert len(card["summary"]) < 140
        assert card["indicator"] in {"info", "warning", "critical"}
        assert card["source"]["label"]
        assert card["uuid"]
    return list(body["cards"])


def card_with(cards: list[Json], text: str) -> Json:
    found = [c for c in cards if text in c["summary"]]
    assert len(found) == 1, [c["summary"] for c in cards]
    return found[0]


# -- discovery -----------------------------------------------------------------------------------


async def test_discovery_lists_one_service_per_hook() -> None:
    async with cds() as api:
        r = await api.client.get("/cds-services")
    assert r.status_code == 200
    services = r.json()["services"]
    assert {s["hook"]: s["id"] for s in services} == {
        "order-sign": "fhirtis-ivig-order-sign",
        "order-select": "fhirtis-ivig-order-select",
    }
    for s in services:
        assert s["title"] and s["description"] and s["usageRequirements"]
        prefetch = s["prefetch"]
        assert set(prefetch) == set(KEYS)
        assert prefetch["patient"] == "Patient/{{context.patientId}}"
        assert prefetch["weights"] == (
            "Observation?patient={{context.patientId}}"
            "&code=http://loinc.org|29463-7,http://loinc.org|3141-9&_sort=-date&_count=5"
        )
        assert "_include=MedicationAdministration:medication" in prefetch["administrations"]
        assert "myositis-core-set|pga" in prefetch["measures"]
        assert all("{{context.patientId}}" in q for q in prefetch.values())
    assert set(SERVICES) == {s["id"] for s in services}


# -- cards from prefetch -------------------------------------------------------------------------


async def test_dvt_history_fast_rate_warns_and_suggests_138_ml_h(httpx_mock: HTTPXMock) -> None:
    order = ivig_order(rate=qty(300, "mL/h"))
    body = call([order], full_prefetch(patient_70kg(DVT)), server=ALLOWED, token="must-not-be-used")
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
        assert api.sent == []
    assert httpx_mock.get_requests() == []  # nothing left the service

    risk = card_with(cards, "TEE risk")
    assert risk["indicator"] == "warning"
    assert "History of venous or arterial thrombosis" in risk["summary"]
    assert "`Condition/dvt`" in risk["detail"]
    assert "Obesity" in risk["detail"]  # not assessable: no BMI, no height

    limit = card_with(cards, "Max IVIG rate")
    assert limit["summary"] == "Max IVIG rate 3.3 mg/kg/min = 138 mL/h for 70 kg of 100 mg/mL"
    assert limit["indicator"] == "info"
    assert "7.14 mg/kg/min: above the maximum" in limit["detail"]

    fast = card_with(cards, "exceeds")
    assert fast["indicator"] == "warning"
    assert fast["summary"] == (
        "Ordered IVIG rate 300 mL/h (7.14 mg/kg/min) exceeds the max 3.3 mg/kg/min (138 mL/h)"
    )
    assert fast["selectionBehavior"] == "at-most-one"
    (suggestion,) = fast["suggestions"]
    assert suggestion["isRecommended"] is True
    (action,) = suggestion["actions"]
    assert action["type"] == "update"
    updated = action["resource"]
    assert updated["id"] == "rx1" and updated["resourceType"] == "MedicationRequest"
    dr = updated["dosageInstruction"][0]["doseAndRate"][0]
    assert dr["rateQuantity"] == {
        "value": 138,
        "unit": "mL/h",
        "system": "http://unitsofmeasure.org",
        "code": "mL/h",
    }
    assert dr["doseQuantity"] == order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert {k: v for k, v in updated.items() if k != "dosageInstruction"} == {
        k: v for k, v in order.items() if k != "dosageInstruction"
    }
    assert not any("TIS" in c["summary"] for c in cards)  # no core set measures


async def test_no_risk_factor_max_4_is_168_ml_h() -> None:
    body = call([ivig_order(rate=qty(300, "mL/h"))], full_prefetch(patient_70kg()))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    risk = card_with(cards, "TEE risk")
    assert risk["indicator"] == "info"
    assert "no thrombosis risk factor found" in risk["summary"]
    assert card_with(cards, "Max IVIG rate")["summary"].startswith(
        "Max IVIG rate 4 mg/kg/min = 168 mL/h"
    )
    fast = card_with(cards, "exceeds")
    action = fast["suggestions"][0]["actions"][0]
    assert (
        action["resource"]["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]["value"] == 168
    )


async def test_within_the_maximum_no_warning() -> None:
    body = call([ivig_order(rate=qty(150, "mL/h"))], full_prefetch(patient_70kg()))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    assert not any("exceeds" in c["summary"] for c in cards)
    assert "3.57 mg/kg/min: within the maximum" in card_with(cards, "Max IVIG rate")["detail"]


async def test_a_5_percent_product_doubles_the_ml_h() -> None:
    body = call(
        [ivig_order(rate=qty(300, "mL/h"), grams_per_100ml=5)],
        full_prefetch(patient_70kg(DVT)),
    )
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    # 3.3 × 70 × 60 / 50 = 277.2 (twice 138.6), rounded down
    assert card_with(cards, "Max IVIG rate")["summary"] == (
        "Max IVIG rate 3.3 mg/kg/min = 277 mL/h for 70 kg of 50 mg/mL"
    )
    fast = card_with(cards, "exceeds")  # 300 mL/h of 5% = 3.57 mg/kg/min
    assert "(3.57 mg/kg/min)" in fast["summary"]
    rate = fast["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"][0]["doseAndRate"]
    assert rate[0]["rateQuantity"]["value"] == 277


async def test_unknown_weight_says_ml_h_cannot_be_computed() -> None:
    body = call([ivig_order(rate=qty(300, "mL/h"))], full_prefetch([patient(), DVT]))
    assert body["prefetch"]["weights"] is None
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    limit = card_with(cards, "Max IVIG rate")
    assert limit["summary"] == (
        "Max IVIG rate 3.3 mg/kg/min; mL/h cannot be computed: no body weight"
    )
    assert limit["indicator"] == "warning"
    assert "**cannot be checked** — the dosing weight unknown" in limit["detail"]
    assert not any("exceeds" in c["summary"] for c in cards)  # not guessed


async def test_unknown_concentration_is_never_assumed() -> None:
    order = ivig_order(
        rate=qty(300, "mL/h"),
        med={
            "medicationCodeableConcept": {
                "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}],
                "text": "Octagam 10%",
            }
        },
    )
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, call([order], full_prefetch(patient_70kg()))))
    limit = card_with(cards, "Max IVIG rate")
    assert limit["summary"] == (
        "Max IVIG rate 4 mg/kg/min; mL/h cannot be computed: product concentration unknown"
    )
    assert "16.8 g/h" in limit["detail"]  # what can be said: 4 × 70 × 60 mg/h
    assert not any("exceeds" in c["summary"] for c in cards)


async def test_stale_weight_is_used_and_said() -> None:
    body = call(
        [ivig_order(rate=qty(100, "mL/h"))], full_prefetch(patient_70kg(weighed_days_ago=45))
    )
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    detail = card_with(cards, "Max IVIG rate")["detail"]
    assert "**stale**: 45 days" in detail and "`Observation/w1`" in detail


async def test_per_kg_and_mass_rates() -> None:
    # 5 mg/kg/min needs no weight nor concentration to be too fast; suggested 4 mg/kg/min
    per_kg = ivig_order("rx1", qty(5, "mg/kg/min"))
    # 12 g/h for 70 kg = 2.857 mg/kg/min: within
    mass = ivig_order(
        "rx2", {"numerator": qty(12, "g"), "denominator": qty(1, "h")}, rate_key="rateRatio"
    )
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, call([per_kg, mass], full_prefetch(patient_70kg()))))
    fast = card_with(cards, "exceeds")
    assert fast["summary"].startswith("Ordered IVIG rate 5 mg/kg/min (5 mg/kg/min) exceeds")
    rate = fast["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"][0]["doseAndRate"]
    assert rate[0]["rateQuantity"]["value"] == 4 and rate[0]["rateQuantity"]["unit"] == "mg/kg/min"
    limits = [c for c in cards if c["summary"].startswith("Max IVIG rate")]
    assert len(limits) == 2
    assert any("2.86 mg/kg/min: within the maximum" in c["detail"] for c in limits)


async def test_medication_by_reference_in_draft_orders() -> None:
    med = medication("priv", 10, text="Privigen")
    order = ivig_order(
        rate=qty(300, "mL/h"), med={"medicationReference": {"reference": "urn:uuid:1"}}
    )
    body = call([order], full_prefetch(patient_70kg()))
    body["context"]["draftOrders"]["entry"].append({"fullUrl": "urn:uuid:1", "resource": med})
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    assert "= 168 mL/h" in card_with(cards, "Max IVIG rate")["summary"]


async def test_latest_tis_card() -> None:
    resources = [e["resource"] for e in responder()["entry"]]
    async with cds() as api:
        cards = cards_of(
            await api.post(
                SIGN, call([ivig_order(rate=qty(150, "mL/h"))], full_prefetch(resources))
            )
        )
        tis = card_with(cards, "TIS")
        assert tis["summary"] == "Latest TIS 62.5 on 2024-03-31: major improvement"
        assert tis["indicator"] == "info"
        partial = [e["resource"] for e in responder(missing_haq_week=12)["entry"]]
        cards = cards_of(
            await api.post(SIGN, call([ivig_order(rate=qty(150, "mL/h"))], full_prefetch(partial)))
        )
    tis = card_with(cards, "TIS")
    assert "(partial)" in tis["summary"] and "–" in tis["summary"]
    assert "haq" in tis["detail"]


async def test_non_ivig_order_has_no_cards(httpx_mock: HTTPXMock) -> None:
    async with cds() as api:
        r = await api.post(SIGN, call([other_order()], None, server=ALLOWED, token="t"))
        assert cards_of(r) == []
        assert api.sent == []
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize(
    ("route", "cards"),
    [
        ({"coding": [{"system": "http://snomed.info/sct", "code": "34206005"}]}, False),
        ({"text": "Subcutaneous"}, False),
        ({"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]}, True),  # IV
    ],
)
async def test_an_order_given_under_the_skin_is_not_ivig(route: Json, cards: bool) -> None:
    """Spec §4: a subcutaneous route is not IVIG, whatever the product (Gamunex-C, Privigen's
    siblings labelled for both routes). An order so routed got the IVIG cards (an order is IVIG
    exactly when an administration of it would be)."""
    order = ivig_order(rate=qty(20, "mL/h"))
    order["dosageInstruction"][0]["route"] = route
    async with cds() as api:
        got = cards_of(await api.post(SIGN, call([order], full_prefetch(patient_70kg()))))
    assert bool(got) is cards


async def test_a_newer_weight_that_is_not_used_is_said() -> None:
    """Spec §1: an implausible weight is "excluded with the reason". A weight of 95 kg 3 days
    ago, 25 % off the 70 kg of 8 days ago, is not used; the card used the 70 kg and said
    nothing of the newer one. With only a 400 kg weight the summary said "no body weight"."""
    jump = [
        patient(),
        obs("w1", "29463-7", 95, "kg", _day(3), system=LOINC),
        obs("w0", "29463-7", 70, "kg", _day(8), system=LOINC),
    ]
    only_implausible = [patient(), obs("w1", "29463-7", 400, "kg", _day(3), system=LOINC)]
    order = ivig_order(rate=qty(300, "mL/h"))
    async with cds() as api:
        used = card_with(cards_of(await api.post(SIGN, call([order], full_prefetch(jump)))), "Max")
        none = card_with(
            cards_of(await api.post(SIGN, call([order], full_prefetch(only_implausible)))), "Max"
        )
    assert "70 kg" in used["summary"]
    assert "not used" in used["detail"] and "`Observation/w1`" in used["detail"]
    assert "no body weight" not in none["summary"]
    assert "implausible" in none["summary"]


async def test_order_select_uses_the_selections() -> None:
    orders = [ivig_order(rate=qty(300, "mL/h")), other_order()]
    prefetch = full_prefetch(patient_70kg())
    async with cds() as api:
        selected = cards_of(
            await api.post(
                SELECT,
                call(orders, prefetch, hook="order-select", selections=["MedicationRequest/rx1"]),
            )
        )
        assert card_with(selected, "exceeds")
        other = await api.post(
            SELECT,
            call(orders, prefetch, hook="order-select", selections=["MedicationRequest/rx9"]),
        )
        assert cards_of(other) == []


def test_evaluation_is_the_pipelines() -> None:
    """The CDS evaluation is the pipeline's, minus the derived resources."""
    resources_list = [e["resource"] for e in responder(dvt_after_cycle=2)["entry"]]
    listed = [(f"{r['resourceType']}/{r['id']}", r) for r in resources_list]
    resources = PatientResources("Patient/p1", listed, dict(listed), [])
    now = datetime.now(UTC)
    ours = evaluate(resources, Settings(), now)
    theirs = evaluate_patient_resources(resources, Settings(), Options(as_of=now))
    assert ours.evaluation == theirs.evaluation
    assert ours.weight.kg == 70 and ours.weight.stale


# -- reading what prefetch lacks -----------------------------------------------------------------


async def test_missing_prefetch_is_read_from_the_fhir_server(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    load(fhir_base, bundle(*patient_70kg(DVT), medication()))
    partial = {"patient": patient(), "weights": None}  # weights: null, yet the server has some
    body = call([ivig_order(rate=qty(300, "mL/h"))], partial, server=fhir_base, token="cds-token")
    fhir_server.reset_stats()
    async with cds(fhir_base) as api:
        cards = cards_of(await api.post(SIGN, body))
        sent = list(api.sent)
    assert "History of venous or arterial thrombosis" in card_with(cards, "TEE risk")["summary"]
    # weights were said to be none (null): not read again, so the mL/h is unknown
    assert "mL/h cannot be computed" in card_with(cards, "Max IVIG rate")["summary"]
    assert sent, "the service read from the FHIR server"
    assert all(str(r.url).startswith(fhir_base) for r in sent)
    assert all(r.headers["authorization"] == "Bearer cds-token" for r in sent)
    assert fhir_server.stats()["committed_writes"] == 0

    nothing = {"patient": patient()}  # everything else is read
    async with cds(fhir_base) as api:
        cards = cards_of(
            await api.post(
                SIGN,
                call([ivig_order(rate=qty(300, "mL/h"))], nothing, server=fhir_base, token="t2"),
            )
        )
        assert api.sent
        assert all(str(r.url).startswith(fhir_base) for r in api.sent)
        assert all(r.headers["authorization"] == "Bearer t2" for r in api.sent)
    assert card_with(cards, "exceeds")["suggestions"][0]["label"] == (
        "Lower the infusion rate to 138 mL/h"
    )


async def test_everything_read_page_by_page(
    fhir_base: str, fhir_server: FhirTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    body = call([ivig_order(rate=qty(150, "mL/h"))], None, server=fhir_base, token="tok-42")
    caplog.set_level(logging.DEBUG)
    async with cds(fhir_base, page_size=5) as api:
        cards = cards_of(await api.post(SIGN, body))
        pages = [r for r in api.sent if r.method == "GET"]
    assert pages, "later pages are followed"
    # the same cards as from a full prefetch: 24 measures and 16 administrations, in pages of 5
    assert card_with(cards, "TIS")["summary"] == "Latest TIS 62.5 on 2024-03-31: major improvement"
    assert "History of venous" in card_with(cards, "TEE risk")["summary"]
    assert card_with(cards, "exceeds")["suggestions"][0]["label"] == (
        "Lower the infusion rate to 138 mL/h"  # 150 mL/h = 3.57 > 3.3 mg/kg/min
    )
    # fhirtis's own log lines (httpx's INFO lines name every URL: a deployment's log config
    # keeps the "httpx" logger at WARNING)
    # The audit line (issue 12) is the one place a patient id is written: ids only.
    ours = [r for r in caplog.records if r.name.startswith("fhirtis") and r.name != "fhirtis.audit"]
    logged = "\n".join(r.getMessage() for r in ours)
    assert "fhirtis-ivig-order-sign" in logged
    for secret in ("tok-42", "p1", "dvt", "Condition/", "Observation/", "70 kg"):
        assert secret not in logged, secret
    # the suggested rate, as a number of its own: not a request's duration ("in 138 ms")
    assert not re.search(r"(?<![\d.])138(?![\d.]| ms\b)", logged), logged
    (audit,) = [r for r in caplog.records if r.name == "fhirtis.audit"]
    assert audit.audit["action"] == "cds" and audit.audit["patient"] == "p1"  # type: ignore[attr-defined]
    assert "tok-42" not in audit.getMessage() + json.dumps(audit.audit)  # type: ignore[attr-defined]


@pytest.mark.parametrize("profile", ["oracle-like", "google-like", "epic-like"])
async def test_what_prefetch_lacks_is_read_from_a_server_without_batch_searches(
    fhir_base: str, fhir_server: FhirTestServer, profile: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Oracle Health has no batch (and no _include), Google's batch takes no searches, Epic's
    searches have their own rules (tests/fhir_server/README.md): what prefetch lacks is read as
    the server allows, as ``fhirtis run`` reads it, and the cards are those of a full read."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)
    fhir_server.reset_stats()
    caplog.set_level(logging.DEBUG)
    body = call([ivig_order(rate=qty(150, "mL/h"))], None, server=fhir_base, token="tok-9")
    async with cds(fhir_base, page_size=5) as api:
        r = await api.post(SIGN, body)
        assert r.status_code == 200, r.text
        sent = list(api.sent)
    cards = cards_of(r)
    assert card_with(cards, "TIS")["summary"] == "Latest TIS 62.5 on 2024-03-31: major improvement"
    risk = card_with(cards, "TEE risk")
    assert "History of venous" in risk["summary"]
    assert card_with(cards, "exceeds")["suggestions"][0]["label"] == (
        "Lower the infusion rate to 138 mL/h"
    )
    # Oracle Health offers no AdverseEvent or MedicationStatement: said, not silently missed
    unread = "the FHIR server offers no search of AdverseEvent, MedicationStatement"
    assert (unread in risk["detail"]) is (profile == "oracle-like"), risk["detail"]
    assert all(r.headers["authorization"] == "Bearer tok-9" for r in sent)
    assert fhir_server.stats()["committed_writes"] == 0
    ours = [r for r in caplog.records if r.name.startswith("fhirtis") and r.name != "fhirtis.audit"]
    logged = "\n".join(r.getMessage() for r in ours)
    for secret in ("tok-9", "patient=p1", "subject=p1", "70 kg", "138"):  # resource ids only
        assert secret not in logged, secret


async def test_patient_not_on_the_fhir_server_is_412(fhir_base: str) -> None:
    body = call([ivig_order(rate=qty(150, "mL/h"))], None, server=fhir_base, token="t")
    async with cds(fhir_base) as api:
        r = await api.post(SIGN, body)
    assert r.status_code == 412, r.text


@pytest.mark.parametrize(
    ("failure", "status"),
    [(httpx.Response(500, json={}), 502), (httpx.ReadTimeout("slow"), 504)],
)
async def test_fhir_server_failures(
    httpx_mock: HTTPXMock, failure: httpx.Response | Exception, status: int
) -> None:
    if isinstance(failure, Exception):
        httpx_mock.add_exception(failure, is_reusable=True)
    else:  # its /metadata (read first, for the FHIR version) fails as well
        httpx_mock.add_response(
            url=f"{ALLOWED}/metadata", status_code=failure.status_code, json={}, is_reusable=True
        )
        httpx_mock.add_response(
            url=ALLOWED, method="POST", status_code=failure.status_code, json={}, is_reusable=True
        )
    body = call([ivig_order(rate=qty(150, "mL/h"))], None, server=ALLOWED, token="tok-7")
    async with cds() as api:
        r = await api.post(SIGN, body)
    assert r.status_code == status
    assert "tok-7" not in r.text and "resourceType" not in r.json()


async def test_a_server_off_the_allow_list_is_never_contacted(httpx_mock: HTTPXMock) -> None:
    order = ivig_order(rate=qty(300, "mL/h"))
    elsewhere = "http://evil.test/fhir"
    secret = "secret-token-1"
    async with cds() as api:
        r = await api.post(
            SIGN, call([order], {"patient": patient()}, server=elsewhere, token=secret)
        )
        assert r.status_code == 412
        assert r.headers["content-type"].startswith("application/json")
        assert "allow-list" in r.json()["message"]
        assert secret not in r.text
        # with every prefetch key, the same call is answered without reading anything
        full = call([order], full_prefetch(patient_70kg()), server=elsewhere, token=secret)
        assert card_with(cards_of(await api.post(SIGN, full)), "exceeds")
        assert api.sent == []
    assert httpx_mock.get_requests() == []


async def test_missing_prefetch_without_a_server_is_412() -> None:
    async with cds() as api:
        r = await api.post(SIGN, call([ivig_order(rate=qty(300, "mL/h"))], {"patient": patient()}))
    assert r.status_code == 412
    assert r.json()["error"] == "precondition-failed"
    assert "weights" in r.json()["message"]


async def test_a_failed_prefetch_counts_as_missing() -> None:
    """A prefetch the client failed (an OperationOutcome that is no refusal, CDS Hooks 2.0
    "Prefetch Template"), with no fhirServer: for data the evaluation needs (weights), 412
    saying so (s29b), not "prefetch lacks weights"; for a risk-factor type (Conditions, s30:
    as a key left out) the cards come, the risk card a warning naming it."""
    failed = {"resourceType": "OperationOutcome", "issue": []}
    prefetch = {**full_prefetch(patient_70kg()), "weights": failed}
    async with cds() as api:
        r = await api.post(SIGN, call([ivig_order(rate=qty(300, "mL/h"))], prefetch))
    assert r.status_code == 412
    assert "prefetch weights is an OperationOutcome" in r.json()["message"]

    prefetch = {**full_prefetch(patient_70kg()), "conditions": failed}
    async with cds() as api:
        r = await api.post(SIGN, call([ivig_order(rate=qty(300, "mL/h"))], prefetch))
    assert r.status_code == 200, r.text
    risk = card_with(cards_of(r), "TEE risk")
    assert risk["indicator"] == "warning", risk
    assert "data may be incomplete" in risk["summary"], risk
    assert "prefetch of Condition (its prefetch failed)" in risk["detail"], risk
    assert card_with(cards_of(r), "exceeds")  # the rate is still checked


def _first_page_of(base: str, resources: list[Json]) -> Json:
    """One page of a searchset whose ``next`` link says that more follow (CDS Hooks 2.0: a
    prefetch result may be a paged searchset Bundle)."""
    page = searchset(resources) or {"resourceType": "Bundle", "type": "searchset", "entry": []}
    page["link"] = [{"relation": "next", "url": f"{base}/Condition?patient=p1&_page=2"}]
    return page


async def test_a_prefetched_first_page_is_not_all_the_data(fhir_base: str) -> None:
    """The conditions prefetch holds page 1 of several; the DVT is on a later page. With a
    server to read from, the service reads the whole search (the DVT is found: 3.3 mg/kg/min,
    138 mL/h); without one (s30: a risk-factor key, not needed) the cards come, the risk card a
    warning that the conditions prefetch was only part of the data, never plain "no risk
    factor"."""
    load(fhir_base, bundle(*patient_70kg(DVT), medication()))
    prefetch = full_prefetch(patient_70kg())
    prefetch["conditions"] = _first_page_of(fhir_base, [])
    order = ivig_order(rate=qty(150, "mL/h"))
    async with cds(fhir_base) as api:
        read = cards_of(await api.post(SIGN, call([order], prefetch, server=fhir_base, token="t")))
        assert api.sent, "the conditions were read from the FHIR server"
        unread = await api.post(SIGN, call([order], prefetch))
    assert "History of venous" in card_with(read, "TEE risk")["summary"]
    assert card_with(read, "exceeds")["suggestions"][0]["label"] == (
        "Lower the infusion rate to 138 mL/h"
    )
    risk = card_with(cards_of(unread), "TEE risk")
    assert risk["indicator"] == "warning", risk
    assert "data may be incomplete" in risk["summary"], risk
    assert "prefetch of Condition was only part of the data" in risk["detail"], risk


async def test_a_latest_n_prefetch_with_a_next_link_is_complete() -> None:
    """A "latest n" template wants its first page only: a ``next`` link there is no gap."""
    prefetch = full_prefetch(patient_70kg())
    prefetch["weights"]["link"] = [{"relation": "next", "url": f"{ALLOWED}/Observation?p=2"}]
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, call([ivig_order(rate=qty(300, "mL/h"))], prefetch)))
        assert api.sent == []
    assert card_with(cards, "exceeds")


async def test_fhir_server_refusal_is_412(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{ALLOWED}/metadata", status_code=401, json={})
    httpx_mock.add_response(url=ALLOWED, method="POST", status_code=401, json={})
    async with cds() as api:
        r = await api.post(
            SIGN,
            call(
                [ivig_order(rate=qty(300, "mL/h"))],
                {"patient": patient()},
                server=ALLOWED,
                token="tok",
            ),
        )
    assert r.status_code == 412
    assert "tok" not in r.text
    sent = httpx_mock.get_requests()
    assert sent and all(req.headers["authorization"] == "Bearer tok" for req in sent)


# -- malformed requests --------------------------------------------------------------------------


def _without(body: Json, *path: str) -> Json:
    body = json.loads(json.dumps(body))
    where = body
    for key in path[:-1]:
        where = where[key]
    del where[path[-1]]
    return body


GOOD = call([ivig_order(rate=qty(300, "mL/h"))], {"patient": patient()})
_BAD_BUNDLE: Json = {"resourceType": "Bundle", "type": "searchset"}
_ORDER_SELECT = call(
    [ivig_order(rate=qty(300, "mL/h"))],
    {"patient": patient()},
    hook="order-select",
    selections=["MedicationRequest/rx1"],
)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (_without(GOOD, "hookInstance"), "hookInstance"),
        (_without(GOOD, "hook"), "hook"),
        ({**GOOD, "hook": "patient-view"}, "order-sign"),
        (_without(GOOD, "context", "patientId"), "patientId"),
        (_without(GOOD, "context", "draftOrders"), "draftOrders"),
        (
            {**GOOD, "fhirAuthorization": {"access_token": "x", "token_type": "Bearer"}},
            "fhirServer",
        ),
        ({**GOOD, "prefetch": {"patient": patient("p2")}}, "patient"),
        ({**GOOD, "prefetch": {"weights": ["not", "a", "resource"]}}, "prefetch.weights"),
        ({**GOOD, "prefetch": {"conditions": searchset([patient("p2")])}}, "another patient"),
        ({**GOOD, "prefetch": {"patient": {"resourceType": "Condition"}}}, "prefetch.patient"),
        ([1, 2], "JSON object"),
        (
            {**GOOD, "prefetch": {"conditions": {**_BAD_BUNDLE, "entry": {"resource": DVT}}}},
            "prefetch.conditions.entry",
        ),
        (
            {**GOOD, "prefetch": {"conditions": {**_BAD_BUNDLE, "entry": [{"resource": [DVT]}]}}},
            "prefetch.conditions.entry[0].resource",
        ),
        (
            {**GOOD, "prefetch": {"conditions": {**_BAD_BUNDLE, "entry": ["Condition/dvt"]}}},
            "prefetch.conditions.entry[0]",
        ),
        (_without(_ORDER_SELECT, "context", "selections"), "context.selections"),
    ],
)
async def test_malformed_requests_are_400(body: Any, says: str) -> None:
    hook = body.get("hook") if isinstance(body, dict) else None
    async with cds() as api:
        r = await api.post(SELECT if hook == "order-select" else SIGN, body)
    assert r.status_code == 400
    answer = r.json()
    assert "resourceType" not in answer
    assert answer["error"] == "invalid-request" and says in answer["message"]


async def test_not_json_and_unknown_service() -> None:
    async with cds() as api:
        r = await api.client.post(
            SIGN, content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and "not JSON" in r.json()["message"]
        r = await api.post("/cds-services/nope", GOOD)
        assert r.status_code == 404 and r.json()["error"] == "unknown-service"


async def test_a_problem_list_code_is_classified_by_the_terminology_server(fhir_base: str) -> None:
    """A primary malignant neoplasm of the right upper lobe (SNOMED CT 93993007, below 'malignant
    neoplastic disease', absent from the shipped expansion; tests/data/README.md [MAL-SCT]) is a
    risk factor when a terminology server says so."""
    cancer = condition("lungca", SCT, "93993007", "2024-01-10T10:00:00Z")
    body = call([ivig_order(rate=qty(300, "mL/h"))], full_prefetch(patient_70kg(cancer)))
    async with cds() as api:
        without = card_with(cards_of(await api.post(SIGN, body)), "TEE risk")
    async with cds(terminology=fhir_base) as api:
        with_server = card_with(cards_of(await api.post(SIGN, body)), "TEE risk")
    assert "malignancy" not in without["summary"].lower()
    assert "malignan" in (with_server["summary"] + with_server["detail"]).lower()
