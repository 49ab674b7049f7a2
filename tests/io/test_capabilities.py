"""Capabilities (pure): the statement, refusals learned, and the plans decided from them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fhirtis.io import ForeignNextLink
from fhirtis.io._capabilities import (
    MAX_COUNT_EXTENSION,
    SEARCH_MODE_EXTENSION,
    CapabilityCache,
    Refused,
    is_refusal,
    parse_statement,
)
from fhirtis.io._paging import resolve_next
from fhirtis.io._plans import read_plan, write_plan

Json = dict[str, Any]


def statement(*, interactions: tuple[str, ...] = (), resources: list[Json] | None = None) -> Json:
    rest: Json = {"mode": "server", "resource": resources or []}
    if interactions:
        rest["interaction"] = [{"code": c} for c in interactions]
    return {"resourceType": "CapabilityStatement", "rest": [rest]}


def resource(rtype: str, *codes: str, params: tuple[str, ...] = (), **more: Any) -> Json:
    return {
        "type": rtype,
        "interaction": [{"code": c} for c in codes],
        "searchParam": [{"name": p} for p in params],
        **more,
    }


@pytest.mark.parametrize(
    "data", [None, [], "x", {"resourceType": "Patient"}, {"resourceType": "CapabilityStatement"}]
)
def test_a_malformed_statement_never_raises_and_assumes_nothing(data: Any) -> None:
    caps = parse_statement(data)
    assert caps.source == "malformed" and caps.notes
    assert caps.supports_batch_search() and caps.supports_transaction()
    assert read_plan(caps, 100).mode == "batch"


def test_oracle_like_statement_gives_gets_patient_and_single_writes() -> None:
    caps = parse_statement(
        statement(
            resources=[
                resource(
                    "Observation",
                    "read",
                    "search-type",
                    "create",
                    "update",
                    params=("patient", "subject", "code"),
                    conditionalCreate=False,
                    extension=[{"url": MAX_COUNT_EXTENSION, "valueUnsignedInt": 200}],
                ),
                resource(
                    "MedicationAdministration",
                    "read",
                    "search-type",
                    params=("patient",),
                    searchInclude=[],
                ),
                resource("Provenance", "read", "create", conditionalCreate=False),
            ]
        )
    )
    reads = read_plan(caps, 500)
    assert reads.mode == "get"
    obs, ma = reads.choices["Observation"], reads.choices["MedicationAdministration"]
    assert obs is not None and obs.count == 200 and obs.patient_param == "subject"
    assert ma is not None and ma.patient_param == "patient" and not ma.include
    assert reads.medications_by_id
    assert reads.skipped["AdverseEvent"] == "the server does not support AdverseEvent"
    writes = write_plan(caps, ["Observation", "Flag"])
    assert writes.mode == "single"
    assert writes.conditional_create == {"Observation": False, "Provenance": False}
    assert writes.not_written == {"Flag": "the server does not support Flag"}


def test_no_conditional_create_by_identifier_where_identifier_is_not_searchable() -> None:
    """An If-None-Exist query is a search (R4 http.html#ccreate): where the statement lists the
    search parameters of a type without ``identifier`` (Epic's Observation), fhirtis's
    ``identifier=…`` criteria cannot be evaluated, so that type is search-then-create (and, a
    transaction being used only with conditional creates, the writes go in a batch)."""
    caps = parse_statement(
        statement(
            interactions=("batch", "transaction"),
            resources=[
                resource(
                    "Observation", "create", "search-type", params=("patient", "code"),
                    conditionalCreate=True,
                ),
                resource("Flag", "create", "search-type", params=("patient", "identifier"),
                         conditionalCreate=True),
                resource("AdverseEvent", "create", "search-type", params=("subject",),
                         conditionalCreate=True),
                resource("Provenance", "create", params=("target",), conditionalCreate=True),
            ],
        )
    )  # fmt: skip
    writes = write_plan(caps, ["Observation", "Flag", "AdverseEvent"])
    assert writes.conditional_create == {
        "Observation": False,
        "Flag": True,
        "AdverseEvent": True,  # found by its own match query, not by identifier
        "Provenance": True,  # posted without If-None-Exist: as declared
    }
    assert writes.mode == "batch"


def test_a_lying_statement_is_corrected_by_the_refusal_and_remembered() -> None:
    caps = parse_statement(statement(interactions=("batch", "transaction")))
    assert read_plan(caps, 100).mode == "batch"
    learned = caps.learn(Refused("batch"))
    assert read_plan(learned, 100).mode == "get"
    assert "statement is wrong" in learned.notes[-1]
    cache = CapabilityCache()
    cache.put("http://s/fhir", caps)
    cache.learn("http://s/fhir", Refused("batch"))
    refreshed = cache.put("http://s/fhir", caps)  # the statement read again still lies
    assert not refreshed.supports_batch()


def test_search_mode_post_is_read_from_the_statement_and_a_refused_get_is_learned() -> None:
    """``capabilitystatement-search-mode`` on ``rest.resource`` (GET | POST | both; FHIR
    Extensions Pack): POST means searches of that type go as ``POST [type]/_search``."""

    def mode(code: str) -> list[Json]:
        return [{"url": SEARCH_MODE_EXTENSION, "valueCode": code}]

    caps = parse_statement(
        statement(
            resources=[
                resource("Observation", "search-type", extension=mode("POST")),
                resource("Condition", "search-type", extension=mode("both")),
                resource("Patient", "read", extension=mode("SOMETIMES")),
                resource("Device", "search-type"),
            ]
        )
    )
    assert caps.searches_by_post("Observation")
    assert not any(caps.searches_by_post(t) for t in ("Condition", "Patient", "Device", "Flag"))
    learned = caps.learn(Refused("get-search", "Condition"))
    assert learned.searches_by_post("Condition") and not learned.searches_by_post("Device")
    assert "searches of Condition by GET" in learned.notes[-1]
    assert "the statement is wrong" in learned.notes[-1]  # it said both
    assert "the statement is wrong" not in caps.learn(Refused("get-search", "Device")).notes[-1]


def test_cache_expires() -> None:
    now = [0.0]
    cache = CapabilityCache(ttl=10, clock=lambda: now[0])
    cache.put("b", parse_statement(statement()))
    assert cache.get("b") is not None
    now[0] = 11
    assert cache.get("b") is None


@pytest.mark.parametrize(
    ("status", "code", "refusal"),
    [
        (405, None, True),
        (501, None, True),
        (400, "not-supported", True),
        (400, "invalid", False),
        (404, "not-found", False),
        (500, "not-supported", False),
    ],
)
def test_what_counts_as_a_permanent_refusal(status: int, code: str | None, refusal: bool) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"code": code}]} if code else None
    assert is_refusal(status, outcome) is refusal


def test_next_link_on_an_equivalent_origin_stays_on_the_base() -> None:
    base = httpx.URL("http://localhost:8080/fhir")
    link = "http://127.0.0.1:8080/fhir/Observation?page=2"
    with pytest.raises(ForeignNextLink, match="FHIRTIS_FHIR__EQUIVALENT_ORIGINS"):
        resolve_next(base, base, link)
    moved = resolve_next(base, base, link, [httpx.URL("http://127.0.0.1:8080")])
    assert str(moved) == "http://localhost:8080/fhir/Observation?page=2"
