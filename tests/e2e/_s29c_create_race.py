"""The conditional-create race harness of test_s27b_hapi_create_race.py (HAPI 6.6+: the loser
of the race answered 409 HAPI-0550) and test_s27j_conditional_create_race.py (HAPI 5.x, Azure:
both creates answered 201): one derived Observation planned as an evaluation plans its output,
the statement of a server with conditional create, and a server that stores what the writers
made, where what a create is answered is each test's (:meth:`RaceServer.create`,
:meth:`RaceServer.batch`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pytest_httpx import HTTPXMock

from fhirtis.fhir.codes import IDENTIFIER_SYSTEM
from fhirtis.fhir.derive import Derived
from fhirtis.fhir.plan import WritePlan, plan_writes
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.server import PatientRun, settle
from tests.io._s25_srv_fake import resource_entry

Json = dict[str, Any]
IDENT = "tis-0123456789abcdef01234567"
#: the ``If-None-Exist`` (``ifNoneExist`` in a batch) of the Observation's conditional create
IF_NONE_EXIST = f"identifier={IDENTIFIER_SYSTEM}|{IDENT}"
RECORDED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def derived_observation() -> Derived:
    resource = {
        "resourceType": "Observation",
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": IDENT}],
        "status": "final",
        "code": {
            "coding": [{"system": "http://fhirtis.org/fhir/CodeSystem/fhirtis", "code": "tis"}]
        },
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 62.5},
    }
    return Derived(resource, IDENT)


@dataclass
class Evaluated:
    """One derived Observation, planned as an evaluation plans its output."""

    derived: Sequence[Derived] = field(default_factory=lambda: [derived_observation()])
    read_in_part: Sequence[str] = ()  # read whole: what is no longer derived is withdrawn

    def plan(self, existing: Mapping[str, Json] | None = None) -> WritePlan:
        return plan_writes(self.derived, ["Observation/src"], RECORDED, existing)


def conditional_create_statement(*, batch: bool = False, delete: bool = False) -> Json:
    """HAPI's statement, as far as this write goes: Observation with conditional create and an
    identifier search (and ``delete``); Provenance created; no transaction; batch only with
    ``batch`` (else single requests)."""
    interactions = ("read", "search-type", "create", "update") + (("delete",) if delete else ())
    observation = resource_entry(
        "Observation", ("identifier", "subject", "patient"), interactions=interactions
    )
    observation["conditionalCreate"] = True
    provenance = resource_entry("Provenance", ("target",), interactions=("create",))
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "interaction": [{"code": "batch"}] if batch else [],
                "resource": [observation, provenance],
            }
        ],
    }


def searchset(found: Sequence[Json]) -> Json:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in found],
    }


class RaceServer:
    """A server at ``base`` answering ``statement``: a search of Observation finds what is
    stored (of Provenance, nothing), an update or a delete of an Observation changes it, a
    Provenance is created; a conditional create of the Observation (its ``If-None-Exist``
    checked) is answered by :meth:`create`, a batch by :meth:`batch`; anything else is 404.
    Every request is kept in ``sent``."""

    def __init__(self, base: str, statement: Json) -> None:
        self.base = base
        self.statement = statement
        self.stored: list[Json] = []
        self.sent: list[httpx.Request] = []

    def create(self, body: Json) -> httpx.Response:
        """The answer to ``POST Observation`` with ``body``."""
        raise NotImplementedError

    def batch(self, bundle: Json) -> httpx.Response:
        """The answer to a batch (none taken unless a test's server says otherwise)."""
        return _not_found()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        path = request.url.path.removeprefix(httpx.URL(self.base).path).strip("/")
        if path == "metadata":
            return httpx.Response(200, json=self.statement)
        if request.method == "GET" and path in ("Observation", "Provenance"):
            return httpx.Response(200, json=searchset(self.stored if path == "Observation" else []))
        if request.method == "POST" and path == "Observation":
            assert request.headers.get("If-None-Exist") == IF_NONE_EXIST
            return self.create(json.loads(request.content))
        if request.method == "POST" and path == "":
            return self.batch(json.loads(request.content))
        if request.method == "PUT" and path.startswith("Observation/"):
            rid = path.split("/")[1]
            updated = {**json.loads(request.content), "meta": {"versionId": "2"}}
            self.stored = [updated if r["id"] == rid else r for r in self.stored]
            return httpx.Response(
                200, json=updated, headers={"Location": f"{self.base}/Observation/{rid}/_history/2"}
            )
        if request.method == "DELETE" and path.startswith("Observation/"):
            rid = path.split("/")[1]
            self.stored = [r for r in self.stored if r["id"] != rid]
            return httpx.Response(204)
        if request.method == "POST" and path == "Provenance":
            return httpx.Response(
                201,
                json={**json.loads(request.content), "id": "prov"},
                headers={"Location": f"{self.base}/Provenance/prov/_history/1"},
            )
        return _not_found()

    def writes(self, method: str, path: str) -> list[httpx.Request]:
        prefix = httpx.URL(self.base).path.rstrip("/") + "/"
        return [
            r
            for r in self.sent
            if r.method == method and r.url.path.removeprefix(prefix).startswith(path)
        ]


def _not_found() -> httpx.Response:
    return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})


async def settle_on(server: RaceServer, httpx_mock: HTTPXMock) -> PatientRun:
    """Settle the :class:`Evaluated` output for ``Patient/p1`` on ``server``, writing."""
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=server.base)) as client:
        return await settle(client, "p1", Evaluated(), write=True)
