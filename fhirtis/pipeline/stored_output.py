"""fhirtis's earlier output on the write server for one patient: one search per derived type, by
patient and fhirtis's identifier system, matched against what is derived now: what each derived
resource updates, and what is no longer derived and is to be withdrawn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fhirtis.fhir.derive import DERIVED_TYPES, Derived
from fhirtis.fhir.plan import RETIRED, PlannedWrite, withdrawal
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
    withdrawn one, updated back), what is no longer derived (``withdraw``: every live copy), and
    the types whose earlier output could not be searched for (``unchecked``)."""

    existing: dict[str, Json]
    withdraw: list[PlannedWrite]
    unchecked: list[NotWritten]


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
    existing: dict[str, Json] = {}
    withdraw: list[PlannedWrite] = []
    for ident, copies in sorted(by_ident.items()):
        copies.sort(key=lambda r: str(r.get("id")))  # every writer keeps the same copy
        live = [c for c in copies if c.get("status") != RETIRED]
        if ident in wanted:
            if len(live) > 1:
                log.warning(
                    "two stored resources share a derived identifier (%s)",
                    live[0].get("resourceType"),
                )
            # a race's retired copy is not it; a withdrawn one derived again is updated back
            existing[ident] = live[0] if live else copies[0]
        else:
            withdraw += [withdrawal(c, ident) for c in live]
    return StoredOutput(existing, withdraw, unchecked)
