"""fhirtis's earlier output on the write server for one patient: one search per derived type, by
patient and fhirtis's identifier system, matched against what is derived now: what each derived
resource updates, and what is no longer derived and is to be withdrawn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from fhirtis.fhir.derive import DERIVED_TYPES, Derived
from fhirtis.fhir.plan import RETIRABLE, RETIRED, PlannedWrite, withdrawal
from fhirtis.fhir.primitives import instant_or_none, json_array
from fhirtis.fhir.queries import (
    DEFAULT_PATIENT_PARAMS,
    OWN_OUTPUT_PATIENT_PARAMS,
    identifier_of,
    own_output_narrowing,
    own_output_url,
)
from fhirtis.io import FhirClient
from fhirtis.pipeline.answers import Learned, PullError, location_reference
from fhirtis.pipeline.patient_run import NotWritten
from fhirtis.pipeline.pull import EXISTING_NEED, MAX_LEARN, find_existing, read_urls

Json = dict[str, Any]
log = logging.getLogger("fhirtis.pipeline.stored_output")


WITHDRAW_CHECK = "checked for output to withdraw"


@dataclass
class StoredOutput:
    """fhirtis's earlier output on the write server for one patient: ``existing`` (business
    identifier → the stored resource a write updates: the live copy with the lowest id, else a
    withdrawn one, updated back), what is to be withdrawn (``withdraw``: every live copy of what
    is no longer derived, and the live copies beside the one kept of what is), the types
    whose earlier output could not be searched for (``unchecked``), and the withdrawn copies
    of what is no longer derived (``retired``: their withdrawal's Provenance is checked for)."""

    existing: dict[str, Json]
    withdraw: list[PlannedWrite]
    unchecked: list[NotWritten]
    retired: list[Json] = field(default_factory=list)


def _names_patient(resource: Json, patient_ref: str) -> bool:
    """Whether ``resource``'s subject (or patient) is ``patient_ref`` (``Patient/id``)."""
    for key in ("subject", "patient"):
        ref = resource.get(key)
        target = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(target, str):
            return location_reference(target, target) == patient_ref
    return False


async def _find_own_output(
    client: FhirClient, patient_ref: str, derived: Sequence[Derived], requests: dict[str, int]
) -> tuple[list[Json], list[NotWritten]]:
    """All of fhirtis's earlier output for the patient: one search per derived type (paged), by
    patient and any value of fhirtis's identifier system, or (no identifier search) fhirtis's
    code or category system; only resources with fhirtis's identifier naming the patient are
    kept. A type the server lacks is not searched; one it cannot search by patient is looked up
    by the identifiers of ``derived`` only, and said to be unchecked."""
    for _ in range(MAX_LEARN):
        caps = await client.capabilities()
        urls: list[str] = []
        unchecked: list[NotWritten] = []
        by_identifier: list[Derived] = []
        for rtype in DERIVED_TYPES:
            if not caps.has_type(rtype):
                continue
            param = caps.search_param(
                rtype, OWN_OUTPUT_PATIENT_PARAMS.get(rtype, DEFAULT_PATIENT_PARAMS)
            )
            if not caps.allows(rtype, "search-type") or param is None:
                why = f"the server cannot search {rtype} by patient"
                unchecked.append(NotWritten(rtype, "", why, WITHDRAW_CHECK))
                by_identifier += [d for d in derived if d.resource_type == rtype]
                continue
            narrowing = own_output_narrowing(rtype, caps.search_param)
            urls.append(
                own_output_url(rtype, param, patient_ref, narrowing, client.config.page_size)
            )
        try:
            found = (
                await read_urls(client, [(EXISTING_NEED, u) for u in urls], requests)
                if urls
                else []
            )
        except Learned as learned:
            client.learn(learned.refused)
            continue
        own = [
            r
            for r in found
            if r.get("resourceType") in DERIVED_TYPES
            and identifier_of(r) is not None
            and _names_patient(r, patient_ref)
        ]
        if by_identifier:
            own += await find_existing(client, by_identifier, requests)
        return own, unchecked
    raise PullError("the server kept refusing the searches for fhirtis's earlier output")


#: the elements that the search parameters of a derived resource's conditional create
#: (:attr:`Derived.match`, R4 AdverseEvent's subject, category, date, event and
#: resultingcondition search parameters) search
_MATCHED_ELEMENTS = {
    "subject": "subject",
    "category": "category",
    "date": "date",
    "event": "event",
    "resultingcondition": "resultingCondition",
}


def _found_by_condition(d: Derived, stored: Json) -> bool:
    """Whether ``d``'s conditional create would find ``stored``: the same type, and every
    element its condition searches equal as the search compares it (:func:`_same_for_search`;
    a ``resultingCondition`` naming any Condition of the event);
    False for a condition naming another parameter (never guessed)."""
    if d.match is None or stored.get("resourceType") != d.resource_type:
        return False
    names = [unquote(part.split("=", 1)[0]) for part in d.match.split("&")]
    elements = [_MATCHED_ELEMENTS.get(name) for name in names]
    return all(
        e is not None and _same_for_search(e, d.resource.get(e), stored.get(e)) for e in elements
    )


def _same_for_search(element: str, ours: object, stored: object) -> bool:
    """Whether the stored value of ``element`` is the one fhirtis sent, as a server's search
    compares it, though the server may hold it in another form: a dateTime as its instant
    (``Z`` or ``+00:00``: R4 datatypes.html#dateTime), a CodeableConcept by its codings'
    system and code (a token search, R4 search.html#token: a ``display`` added is the same
    concept); references as written."""
    if ours == stored:
        return True
    if element == "date":
        when = instant_or_none(ours)
        return when is not None and when == instant_or_none(stored)
    if element in ("category", "event"):
        tokens = _tokens(ours)
        return bool(tokens) and tokens == _tokens(stored)
    if element == "resultingCondition" and isinstance(ours, list) and isinstance(stored, list):
        # the condition searches the first Condition of the event (derive._adverse_event: the
        # AdverseEvent of one event recorded as several names each), which a stored one of the
        # event may not name: the event's Condition recorded later under an id that sorts
        # first (HAPI's Condition/10 before Condition/9) changes the event's identifier, and
        # its AdverseEvent naming an earlier record of the event is still the event's, updated
        # in place (_successor), never deleted and made again beside it (clinical spec §7)
        return bool(_referenced(ours) & _referenced(stored))
    return False


def _referenced(references: list[object]) -> set[str]:
    """The resources (``Type/id``, any version) a list of References names."""
    return {
        r["reference"].partition("/_history/")[0]
        for r in references
        if isinstance(r, dict) and isinstance(r.get("reference"), str)
    }


def _tokens(concepts: object) -> frozenset[tuple[object, object]]:
    """The (system, code) of every coding of a CodeableConcept or a list of them."""
    found: set[tuple[object, object]] = set()
    for concept in concepts if isinstance(concepts, list) else [concepts]:
        if isinstance(concept, dict):
            for coding in json_array(concept.get("coding")):
                if isinstance(coding, dict):
                    found.add((coding.get("system"), coding.get("code")))
    return frozenset(found)


def _successor(copy: Json, ident: str, unstored: list[Derived], wanted: set[str]) -> Derived | None:
    """The derived resource, not stored yet, whose conditional create would find ``copy``
    (earlier output no longer derived, of a type withdrawn by delete): the same event
    re-recorded by the EHR under a new id (fhirtis's identifier names its source). ``copy`` is
    updated in place to it (R4 http.html#update keeps the logical id) rather than deleted and
    created again: HAPI FHIR refuses that delete (409, referential integrity on delete: an
    earlier Provenance names it), and the create is then answered "exists" by it (R4
    http.html#ccreate), on every run."""
    if ident in wanted or copy.get("resourceType") in RETIRABLE:
        return None
    return next((d for d in unstored if _found_by_condition(d, copy)), None)


async def stored_output(
    client: FhirClient, patient_ref: str, derived: Sequence[Derived], requests: dict[str, int]
) -> StoredOutput:
    """fhirtis's earlier output for the patient, matched against ``derived`` (its business
    identifiers): what each derived resource updates, and what is to be withdrawn."""
    found, unchecked = await _find_own_output(client, patient_ref, derived, requests)
    by_ident: dict[str, list[Json]] = {}
    seen: set[str] = set()
    for r in found:
        ident = identifier_of(r)
        key = f"{r.get('resourceType')}/{r.get('id')}"
        if ident is None or key in seen:
            continue
        seen.add(key)
        by_ident.setdefault(ident, []).append(r)
    wanted = {d.identifier for d in derived}
    unstored = [d for d in derived if d.match is not None and d.identifier not in by_ident]
    existing: dict[str, Json] = {}
    withdraw: list[PlannedWrite] = []
    retired: list[Json] = []
    for ident, copies in sorted(by_ident.items()):
        copies.sort(key=lambda r: str(r.get("id")))  # every writer keeps the same copy
        live = [c for c in copies if c.get("status") != RETIRED]
        successor = _successor(live[0], ident, unstored, wanted) if live else None
        if successor is not None:  # updated in place: see _successor
            unstored.remove(successor)
            existing[successor.identifier] = live[0]
            withdraw += [withdrawal(c, ident) for c in live[1:]]
            continue
        if ident in wanted:
            if len(live) > 1:
                # copies a create made that no check after it saw (a search index that lags,
                # AWS HealthLake's default; a run stopped before its check): the others are
                # withdrawn, as the check does, so none keeps an old value beside the update
                log.warning(
                    "%d stored %s resources share a derived identifier: the others withdrawn",
                    len(live),
                    live[0].get("resourceType"),
                )
                withdraw += [withdrawal(c, ident) for c in live[1:]]
            # a race's retired copy is not it; a withdrawn one derived again is updated back
            existing[ident] = live[0] if live else copies[0]
        else:
            withdraw += [withdrawal(c, ident) for c in live]
            retired += [c for c in copies if c.get("status") == RETIRED]
    return StoredOutput(existing, withdraw, unchecked, retired)
