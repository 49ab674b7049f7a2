"""A write server (``FHIRTIS_FHIR__WRITE_BASE_URL``) that enforces referential integrity on
write, and holds neither the patient nor the sources the derived resources reference.

Stock HAPI FHIR JPA (and Smile CDR) enforce it by default (``JpaStorageSettings``
``setEnforceReferentialIntegrityOnWrite``, default true; hapifhir/hapi-fhir-jpaserver-starter
``enforce_referential_integrity_on_write``): a create or update whose indexed reference names a
resource the server does not hold is refused with ``InvalidRequestException`` (HTTP 400)
"HAPI-1094: Resource Patient/p1 not found, specified in path: Observation.subject"
(hapifhir/hapi-fhir, hapi-fhir-storage ``ca/uhn/fhir/jpa/dao/index/DaoResourceLinkResolver
.java``, ``findTargetResource``; test ``FhirResourceDaoR4Test.testCreateWithIllegalReference``);
a deleted one "HAPI-1096: Resource X/y is deleted, specified in path: …" (400), one of another
type "HAPI-1095: Resource contains reference to unknown resource ID …" (422, issue #6218). In a
transaction the whole transaction fails with it, in a batch the entry (``400 Bad Request``).
Every reference with a search parameter is checked: ``Observation.subject`` and
``Observation.derivedFrom``, ``Provenance.entity.what``, ``DetectedIssue.implicated``,
``AdverseEvent.suspectEntity.instance`` (issue #6162: only indexed paths), so the sources read
on the EHR (``Observation/…``, ``MedicationAdministration/…``) are refused the same way as the
Patient.

fhirtis must say so, naming only ``Type/id`` (the diagnostics are never logged or shown:
servers echo data there), as a permanent failure (never ``transient``), for a transaction, a
batch and single requests, and must not drop a reference to get the write through.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
import orjson
import pytest

from fhirtis.io import FhirClient, FhirClientConfig, FhirServerError, Refused
from fhirtis.pipeline.server import PatientRun, RunStatus, code_for, describe, run_patient
from fhirtis.settings import Settings
from tests.e2e.test_faults import Forwarding
from tests.e2e.test_run import load
from tests.e2e.test_s24_hapi_conflicts import forward_entries
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/.*)?$")


def _refused(diagnostics: str) -> Json:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": diagnostics}],
    }


class EnforcesReferences(Forwarding):
    """Forwards to the test servers; writes to ``write_base`` are checked as HAPI JPA checks
    them: the first relative reference to a resource the write server does not hold refuses
    the create or update (400, HAPI-1094), the whole transaction, or the batch entry."""

    def __init__(self, write_base: str, status: int = 400) -> None:
        super().__init__()
        self.status = status  # HAPI: 400; other servers 404, 409 or 422
        self.base = httpx.URL(write_base.rstrip("/") + "/")
        self.refused: list[str] = []  # the Type/id refused, each time
        self.sent: list[Json] = []  # the resources fhirtis asked to write
        self.writes = 0  # write requests to the write server

    def _writes_here(self, request: httpx.Request) -> bool:
        url = str(request.url).split("?")[0].rstrip("/")
        return (
            request.method in ("POST", "PUT")
            and (url + "/").startswith(str(self.base))
            and not url.endswith("/_search")
        )

    async def _holds(self, ref: str) -> bool:
        request = httpx.Request("GET", self.base.join(ref))
        response = await self.inner.handle_async_request(request)
        await response.aread()
        return response.status_code == 200

    async def _missing(self, resource: Json) -> str | None:
        """HAPI-1094's text for the first reference ``resource`` makes to something the server
        does not hold, or None."""
        self.sent.append(resource)
        rtype = str(resource.get("resourceType"))
        found: list[tuple[str, str]] = []

        def walk(node: Any, path: str) -> None:
            if isinstance(node, dict):
                ref = node.get("reference")
                if isinstance(ref, str) and _RELATIVE.match(ref):
                    found.append((ref, path))
                for key, value in node.items():
                    if key not in ("reference", "contained"):
                        walk(value, f"{path}.{key}")
            elif isinstance(node, list):
                for item in node:
                    walk(item, path)

        walk({k: v for k, v in resource.items() if k != "contained"}, rtype)
        for ref, path in found:
            match = _RELATIVE.match(ref)
            assert match is not None
            target = f"{match[1]}/{match[2]}"
            if not await self._holds(target):
                self.refused.append(target)
                return f"HAPI-1094: Resource {target} not found, specified in path: {path}"
        return None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self._writes_here(request):
            return await self.inner.handle_async_request(request)
        body = orjson.loads(request.content) if request.content else {}
        if body.get("resourceType") == "Bundle" and body.get("type") in ("transaction", "batch"):
            if not any(isinstance(e.get("resource"), dict) for e in body.get("entry") or []):
                return await self.inner.handle_async_request(request)  # reads only
            self.writes += 1
            return await self._bundle(request, body)
        self.writes += 1
        missing = await self._missing(body)
        if missing is not None:
            return _answer(self.status, _refused(missing))
        return await self.inner.handle_async_request(request)

    async def _bundle(self, request: httpx.Request, body: Json) -> httpx.Response:
        entries = body.get("entry") or []
        missing = [
            await self._missing(e["resource"]) if isinstance(e.get("resource"), dict) else None
            for e in entries
        ]
        if body["type"] == "transaction":
            first = next((m for m in missing if m is not None), None)
            if first is not None:
                return _answer(self.status, _refused(first))
            return await self.inner.handle_async_request(request)
        kept = [e for e, m in zip(entries, missing, strict=True) if m is None]
        response, answer = await forward_entries(self.inner, request, body, kept)
        answers = iter(answer.get("entry") or [])
        out = [
            next(answers)
            if m is None
            else {"response": {"status": f"{self.status} Refused", "outcome": _refused(m)}}
            for m in missing
        ]
        return _answer(response.status_code, {**answer, "entry": out})


def _answer(status: int, body: Json) -> httpx.Response:
    return httpx.Response(
        status, content=orjson.dumps(body), headers={"Content-Type": "application/fhir+json"}
    )


def _run(
    base: str, write_base: str, transport: httpx.AsyncBaseTransport, learn: tuple[Refused, ...]
) -> PatientRun:
    """``run_patient`` of Patient/p1 read on ``base``, written to ``write_base``, the write
    server's client having learnt ``learn``."""

    async def go() -> PatientRun:
        config = FhirClientConfig(base_url=base, write_base_url=write_base)
        async with (
            httpx.AsyncClient(transport=transport) as http,
            FhirClient(config, http=http) as client,
        ):
            writer = client.writer()
            await writer.capabilities()
            for refused in learn:
                writer.learn(refused)
            return await run_patient(client, "p1", Settings(), write=True)

    return asyncio.run(go())


@pytest.fixture
def registry(registry_server: FhirTestServer) -> FhirTestServer:
    registry_server.reset()
    registry_server.reset_stats()
    return registry_server


# case → (write-server profile, what the client learnt first: a batch where no transaction)
CASES: dict[str, tuple[str, tuple[Refused, ...]]] = {
    "transaction": ("full", ()),
    "batch": ("full", (Refused("transaction"),)),
    "single requests": ("no-transaction", ()),
}


@pytest.mark.parametrize("status", [400, 404, 409, 422])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_write_server_without_the_patient_is_named(
    fhir_base: str,
    registry: FhirTestServer,
    case: str,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    profile, learn = CASES[case]
    load(fhir_base, responder(dvt_after_cycle=2))
    registry.set_profile(profile)
    transport = EnforcesReferences(registry.base_url, status)
    with caplog.at_level(logging.DEBUG):
        run = _run(fhir_base, registry.base_url, transport, learn)
    assert transport.refused, "the write server refused nothing"
    assert run.status is RunStatus.FAILED
    assert run.result is not None and run.result.derived  # the result stands
    assert registry.stats()["committed_writes"] == 0
    error = run.error or ""
    # what the integrator must do, naming the resource the server lacks
    assert "Patient/p1" in error, error
    assert "write server" in error and "does not hold" in error, error
    assert "referential integrity" in error, error
    assert "HAPI-1094" not in error and "specified in path" not in error  # no diagnostics
    assert run.error_code not in (None, "transient", "exception"), run.error_code
    # refused once, never sent again as if transient or a conflict to re-plan
    assert transport.writes == 1, transport.writes
    assert "specified in path" not in caplog.text
    # nothing dropped to get through: every derived resource still names the patient
    assert all("Patient/p1" in orjson.dumps(r).decode() for r in transport.sent)


def test_a_source_the_write_server_lacks_is_named(fhir_base: str, registry: FhirTestServer) -> None:
    """The Patient copied to the write server: the sources read on the EHR (the lab and IVIG
    resources the Observations are derived from, the Provenance's entities) are refused
    the same way, and named."""
    load(fhir_base, responder(dvt_after_cycle=2))
    load(registry.base_url, {"entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}]})
    registry.set_profile("no-transaction")
    transport = EnforcesReferences(registry.base_url)
    run = _run(fhir_base, registry.base_url, transport, ())
    assert transport.refused and "Patient/p1" not in transport.refused
    assert run.status is RunStatus.FAILED
    error = run.error or ""
    assert transport.refused[0] in error, error
    assert "does not hold" in error and "referential integrity" in error, error
    assert run.error_code not in (None, "transient", "exception")


@pytest.mark.parametrize(
    ("status", "diagnostics", "named"),
    [
        (
            400,
            "HAPI-1094: Resource Patient/p1 not found, specified in path: Flag.subject",
            "Patient/p1",
        ),
        (
            400,
            "HAPI-1096: Resource Observation/o-2 is deleted, specified in path: X.y",
            "Observation/o-2",
        ),
        (
            422,
            "HAPI-1095: Resource contains reference to unknown resource ID Patient/12",
            "Patient/12",
        ),
        (400, "HAPI-0450: Failed to parse request body as JSON resource", None),
        (500, "HAPI-1094: Resource Patient/p1 not found, specified in path: Flag.subject", None),
    ],
)
def test_only_an_unheld_reference_is_described_so(
    status: int, diagnostics: str, named: str | None
) -> None:
    """The ``Type/id`` only, from HAPI's words; anything else the server says stays out (a
    name it echoes), and other failures are described as before."""
    outcome = _refused(diagnostics + " (Doe, Jane)")
    exc = FhirServerError(
        f"HTTP {status} for POST Flag", status=status, url="Flag", operation_outcome=outcome
    )
    text = describe(exc)
    assert "Doe" not in text and "HAPI-" not in text and "specified in path" not in text
    if named is None:
        assert "does not hold" not in text
        assert code_for(exc) != "not-found"
    else:
        assert f"does not hold {named}, which" in text, text
        assert code_for(exc) == "not-found"
