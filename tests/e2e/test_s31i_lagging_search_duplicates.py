"""A derived resource stored twice under one business identifier, found by a later run.

AWS HealthLake's search index is eventually consistent by default: "if there is a pending search
index update for a resource, the search results exclude version N-1 of the resource until the
index update completes" (docs.aws.amazon.com/healthlake/latest/devguide/
searching-fhir-consistency-levels.html, "FHIR Search Consistency Levels"; the default unless a
request sends ``x-amz-fhir-history-consistency-level: strong``). On a server without conditional
create (search-then-create: Oracle Health Millennium, the test server's ``oracle-like``
profile), a run soon after another one's writes does not find them, creates its own copies, and
its check for duplicates after the creates (fhirtis/pipeline/write.py ``_check_duplicates``)
cannot see the other copies either. The same happens whenever that check missed a copy (a
second writer's create indexed after the check, a run stopped between its creates and the
check).

Later runs, once the index has caught up, found two live copies per identifier, logged it,
updated only the copy with the lowest id and reported "unchanged": the other copy stayed
``final`` for good, and once the inputs changed it kept the old value -- two TIS Observations of
one assessment, one of them wrong, in the EHR, and nothing in the result said so. Clinical
specification §7: "changed inputs update in place"; the race handling in write.py marks such
extra copies ``entered-in-error`` (or deletes them) as soon as it sees them. A later run now
does the same: the copy with the lowest id is kept and updated, the others are withdrawn (named
by the run's Provenance), and the run after that writes nothing.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import orjson

from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_faults import Forwarding
from tests.e2e.test_run import load, search
from tests.e2e.test_vendor_shapes import _run
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
DERIVED = "http://fhirtis.org/fhir/identifier/derived"


class LaggingIndex(Forwarding):
    """Searchsets (alone or in a batch response) leave out ``hidden`` ("Type/id"): resources
    whose search index update is still pending."""

    def __init__(self, hidden: set[str] | None = None) -> None:
        super().__init__()
        self.hidden = hidden or set()
        self.written: set[str] = set()  # what creates and updates through this transport made
        self.left_out = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        data = orjson.loads(body) if body else None
        if not isinstance(data, dict):
            return httpx.Response(response.status_code, headers=response.headers, content=body)
        if request.method in {"POST", "PUT"} and data.get("resourceType") not in {
            "Bundle",
            "OperationOutcome",
        }:
            self.written.add(f"{data['resourceType']}/{data['id']}")
        if data.get("resourceType") != "Bundle":
            return httpx.Response(response.status_code, headers=response.headers, content=body)
        self._leave_out(data)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, content=orjson.dumps(data))

    def _leave_out(self, bundle: Json) -> None:
        entries = bundle.get("entry") or []
        if bundle.get("type") == "searchset":
            kept = [e for e in entries if _key(e.get("resource") or {}) not in self.hidden]
            self.left_out += len(entries) - len(kept)
            bundle["entry"] = entries = kept
        for entry in entries:
            inner = entry.get("resource")
            if isinstance(inner, dict) and inner.get("resourceType") == "Bundle":
                self._leave_out(inner)


def _key(resource: Json) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _ident(resource: Json) -> str | None:
    for i in resource.get("identifier") or []:
        if isinstance(i, dict) and i.get("system") == DERIVED:
            return str(i.get("value"))
    return None


def _live_derived(base: str) -> dict[str, list[Json]]:
    """The stored derived Observations that are not withdrawn, by business identifier."""
    out: dict[str, list[Json]] = {}
    for o in search(base, "Observation"):
        ident = _ident(o)
        if ident is not None and o.get("status") != "entered-in-error":
            out.setdefault(ident, []).append(o)
    return out


def _raise_follow_up_pga(base: str, doc: Json) -> None:
    """Every follow-up PGA (weeks 4, 8, 12) becomes 1 cm: every TIS changes."""
    for e in doc["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Observation" and r["id"] in {"pga1", "pga2", "pga3"}:
            r = {**r, "valueQuantity": {**r["valueQuantity"], "value": 1}}
            httpx.put(f"{base}/Observation/{r['id']}", json=r).raise_for_status()


def test_copies_made_while_the_index_lagged_are_withdrawn_by_the_next_run(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    doc = responder(dvt_after_cycle=2)
    load(fhir_base, doc)
    fhir_server.set_profile("oracle-like")  # no conditional create: search, then create
    try:
        first = LaggingIndex()
        assert _run(fhir_base, first).status is RunStatus.WRITTEN
        # a second run while the first one's writes are not yet in the search index
        lagging = LaggingIndex(set(first.written))
        assert _run(fhir_base, lagging).status is RunStatus.WRITTEN
        assert lagging.left_out > 0
        twice = {i: c for i, c in _live_derived(fhir_base).items() if len(c) > 1}
        assert twice, "the lagging index made no second copy"
        # the index has caught up: the next run leaves one live copy per identifier
        caught_up = _run(fhir_base, Forwarding())
        assert caught_up.status is RunStatus.WRITTEN, caught_up.error
        live = _live_derived(fhir_base)
        assert all(len(c) == 1 for c in live.values()), {i: len(c) for i, c in live.items()}
        for ident, copies in twice.items():  # the lowest id kept, as every writer keeps it
            assert live[ident][0]["id"] == min(c["id"] for c in copies)
        assert _run(fhir_base, Forwarding()).status is RunStatus.UNCHANGED
        # changed inputs update in place: no copy keeps the old value
        _raise_follow_up_pga(fhir_base, doc)
        assert _run(fhir_base, Forwarding()).status is RunStatus.WRITTEN
        live = _live_derived(fhir_base)
        assert all(len(c) == 1 for c in live.values())
    finally:
        fhir_server.set_profile("full")


def test_a_stale_second_copy_never_outlives_a_change(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """The smallest case: one TIS Observation stored twice (a create the duplicate check never
    saw), then an input changes. Before: the copy with the higher id stayed ``final`` with the
    old score beside the updated one."""
    doc = responder(dvt_after_cycle=2)
    load(fhir_base, doc)
    fhir_server.set_profile("oracle-like")
    try:
        assert _run(fhir_base, Forwarding()).status is RunStatus.WRITTEN
        tis = next(o for o in search(fhir_base, "Observation") if str(_ident(o)).startswith("tis-"))
        second = copy.deepcopy(tis)
        second.pop("id")
        second.pop("meta", None)
        httpx.post(f"{fhir_base}/Observation", json=second).raise_for_status()
        _raise_follow_up_pga(fhir_base, doc)
        changed = _run(fhir_base, Forwarding())
        assert changed.status is RunStatus.WRITTEN, changed.error
        ident = _ident(tis)
        assert ident is not None
        copies = [o for o in search(fhir_base, "Observation") if _ident(o) == ident]
        assert len(copies) == 2
        live = [o for o in copies if o["status"] != "entered-in-error"]
        assert len(live) == 1, [(o["id"], o["status"], o.get("valueQuantity")) for o in copies]
        assert live[0]["valueQuantity"] != tis["valueQuantity"]  # the new score
        provenances = search(fhir_base, "Provenance")
        named = {t["reference"].split("/_history")[0] for p in provenances for t in p["target"]}
        withdrawn = next(o for o in copies if o["status"] == "entered-in-error")
        assert f"Observation/{withdrawn['id']}" in named
        assert _run(fhir_base, Forwarding()).status is RunStatus.UNCHANGED
    finally:
        fhir_server.set_profile("full")
