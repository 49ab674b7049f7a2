"""Derived resources → a FHIR ``transaction`` Bundle (pure).

Offline (nothing known of a server's state) every derived resource is a conditional create:
``POST`` with ``ifNoneExist`` on its business identifier, so posting the Bundle twice creates
nothing the second time. With a server's current state (``existing``: identifier → the stored
resource), only what is new is created and only what changed is updated (``PUT`` with
``ifMatch`` on the version read); an unchanged resource is left out. One Provenance covers
exactly what is written; nothing to write → no Bundle at all.

fhirtis's stored output that a new derivation no longer produces is *withdrawn*
(:func:`withdrawal`, added to a plan by :func:`with_withdrawals`): marked ``entered-in-error``
where the type has that status, else (R4 AdverseEvent) deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from fhirtis.clinical.frozen import record
from fhirtis.fhir.derive import IF_NONE_EXIST_PREFIX, Derived, full_url_of, provenance
from fhirtis.fhir.security import Label, covers, kept_on_update, labels_of

Json = dict[str, Any]

# Elements a server adds or owns; they do not make a stored resource "different".
_SERVER_OWNED = frozenset({"id", "meta", "text"})

# Built once, shared by every Bundle's Provenance entry (read-only, as the derived resources).
_PROVENANCE_REQUEST: Json = {"method": "POST", "url": "Provenance"}


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    WITHDRAW = "withdraw"  # stored output that the derivation no longer produces


#: The status that says a stored resource is void (fhirtis's withdrawn output, a race's copy).
RETIRED = "entered-in-error"
#: Derived types whose ``status`` can say a resource is void (R4 AdverseEvent has no status:
#: withdrawn, it is deleted).
RETIRABLE = frozenset({"Observation", "Flag", "DetectedIssue"})

_CREATE = Action.CREATE  # (a module global: looking a member up on its enum class is slower)
_CREATED, _UPDATED, _UNCHANGED = Action.CREATE.value, Action.UPDATE.value, Action.UNCHANGED.value


@record
class PlannedWrite:
    derived: Derived
    action: Action
    existing_id: str | None = None
    existing_version: str | None = None


@dataclass(frozen=True)
class WritePlan:
    writes: Sequence[PlannedWrite]
    bundle: Json | None  # None when nothing is to be written
    summary: Mapping[str, int] = field(default_factory=dict)


def _comparable(resource: Mapping[str, Any]) -> Json:
    out = {k: v for k, v in resource.items() if k not in _SERVER_OWNED}
    meta = resource.get("meta")
    if isinstance(meta, dict) and "profile" in meta:
        out["meta.profile"] = meta["profile"]
    return out


def same_content(derived: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether ``stored`` holds what ``derived`` says: the same content, and (where ``derived``
    carries security labels) every label of it, or a higher confidentiality
    (:func:`fhirtis.fhir.security.covers`: the labels a server or a person added are not a
    difference, and fhirtis never lowers one)."""
    if _comparable(derived) != _comparable(stored):
        return False
    meta = derived.get("meta")
    if type(meta) is dict and "security" in meta:
        return covers(labels_of(stored.get("meta")), labels_of(meta))
    return True


def update_full_url(d: Derived, existing_id: str | None, base: str | None) -> str:
    """The ``fullUrl`` of a ``PUT`` entry (an update or a withdrawal) of ``d``, stored as
    ``existing_id``: R4 Bundle.entry.fullUrl "SHALL have a value" but on a POST, and "if the
    fullUrl is not a urn:uuid, the URL shall be version-independent URL consistent with the
    Resource.id". With the write server's ``base``, the resource's absolute URL
    ``[base]/Type/id``; without (a plan made without a server), ``d.full_url``, the
    ``urn:uuid:`` of its business identifier (unique in the Bundle, as bdl-7 requires)."""
    if base is None or existing_id is None:
        return d.full_url
    return f"{base.rstrip('/')}/{d.resource_type}/{existing_id}"


def plan_writes(
    derived: Sequence[Derived],
    sources: Sequence[str],
    recorded: datetime,
    existing: Mapping[str, Json] | None = None,
    *,
    base: str | None = None,
    labels: Mapping[str, frozenset[Label]] | None = None,
) -> WritePlan:
    """The minimal transaction for ``derived`` given what exists (None: unknown → all
    conditional creates); ``base``: the server it is for, naming its updates (their
    ``fullUrl``, see :func:`update_full_url`); ``labels``: the security labels of the labelled
    ``sources`` (by versioned reference), which the Provenance naming them carries. An update
    keeps the labels the stored resource has (:func:`fhirtis.fhir.security.kept_on_update`)."""
    writes: list[PlannedWrite] = []
    entries: list[Json] = []
    targets: list[str] = []
    created = updated = unchanged = 0
    for d in derived:
        stored = None if existing is None else existing.get(d.identifier)
        if stored is None:
            writes.append(PlannedWrite(d, _CREATE))
            created += 1
            identifier = d.identifier
            resource = d.resource
            # = d.full_url, d.resource_type and d.if_none_exist, without the three properties
            full_url = full_url_of(identifier)
            request = {
                "method": "POST",
                "url": resource["resourceType"],
                "ifNoneExist": d.match or IF_NONE_EXIST_PREFIX + identifier,
            }
            entries.append({"fullUrl": full_url, "resource": resource, "request": request})
            targets.append(full_url)
        elif same_content(d.resource, stored):
            writes.append(PlannedWrite(d, Action.UNCHANGED, stored.get("id")))
            unchanged += 1
        else:
            existing_id = stored.get("id")
            version = (stored.get("meta") or {}).get("versionId")
            body = kept_on_update(d.resource, stored)
            # the stored labels kept, in every way the PUT is sent (the plan's write too)
            sent = d if body is d.resource else replace(d, resource=body)
            writes.append(PlannedWrite(sent, Action.UPDATE, existing_id, version))
            updated += 1
            ref = f"{d.resource_type}/{existing_id}"
            request = {"method": "PUT", "url": ref}
            if version:
                request["ifMatch"] = f'W/"{version}"'
            entries.append(
                {
                    "fullUrl": update_full_url(d, existing_id, base),
                    "resource": {**body, "id": existing_id},
                    "request": request,
                }
            )
            targets.append(ref)
    summary = {_CREATED: created, _UPDATED: updated, _UNCHANGED: unchanged}
    if not entries:
        return WritePlan(writes, None, summary)
    entries.append(
        {
            "resource": provenance(targets, sources, recorded, labels),
            "request": _PROVENANCE_REQUEST,
        }
    )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return WritePlan(writes, bundle, summary)


def withdrawal(stored: Json, identifier: str) -> PlannedWrite:
    """Withdrawing ``stored`` (fhirtis's earlier output with business identifier ``identifier``,
    no longer derived): its ``derived`` is what it becomes, the stored resource marked
    ``entered-in-error`` (an If-Match update), or as stored for a type without that status
    (deleted)."""
    rtype = str(stored.get("resourceType"))
    resource = {**stored, "status": RETIRED} if rtype in RETIRABLE else dict(stored)
    version = (stored.get("meta") or {}).get("versionId")
    return PlannedWrite(
        Derived(resource, identifier),
        Action.WITHDRAW,
        str(stored.get("id")),
        version if isinstance(version, str) else None,
    )


def with_withdrawals(plan: WritePlan, withdrawals: Sequence[PlannedWrite]) -> WritePlan:
    """``plan`` with ``withdrawals`` after its writes and counted in its summary (``withdraw``);
    its Bundle (creates and updates) is left as it is."""
    if not withdrawals:
        return plan
    return replace(
        plan,
        writes=[*plan.writes, *withdrawals],
        summary={**plan.summary, Action.WITHDRAW.value: len(withdrawals)},
    )
