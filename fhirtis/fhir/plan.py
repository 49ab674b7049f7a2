"""Derived resources → a FHIR ``transaction`` Bundle (pure).

Offline (nothing known of a server's state) every derived resource is a conditional create:
``POST`` with ``ifNoneExist`` on its business identifier, so posting the Bundle twice creates
nothing the second time. With a server's current state (``existing``: identifier → the stored
resource), only what is new is created and only what changed is updated (``PUT`` with
``ifMatch`` on the version read); an unchanged resource is left out. One Provenance covers
exactly what is written; nothing to write → no Bundle at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from fhirtis.fhir.derive import Derived, provenance

Json = dict[str, Any]

# Elements a server adds or owns; they do not make a stored resource "different".
_SERVER_OWNED = frozenset({"id", "meta", "text"})


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
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
    return _comparable(derived) == _comparable(stored)


def plan_writes(
    derived: Sequence[Derived],
    sources: Sequence[str],
    recorded: datetime,
    existing: Mapping[str, Json] | None = None,
) -> WritePlan:
    """The minimal transaction for ``derived`` given what exists (None: unknown → all
    conditional creates)."""
    writes: list[PlannedWrite] = []
    for d in derived:
        stored = None if existing is None else existing.get(d.identifier)
        if stored is None:
            writes.append(PlannedWrite(d, Action.CREATE))
        elif same_content(d.resource, stored):
            writes.append(PlannedWrite(d, Action.UNCHANGED, stored.get("id")))
        else:
            version = (stored.get("meta") or {}).get("versionId")
            writes.append(PlannedWrite(d, Action.UPDATE, stored.get("id"), version))
    summary = {a.value: sum(1 for w in writes if w.action is a) for a in Action}
    changed = [w for w in writes if w.action is not Action.UNCHANGED]
    if not changed:
        return WritePlan(writes, None, summary)
    entries: list[Json] = []
    targets: list[str] = []
    for w in changed:
        d = w.derived
        if w.action is Action.CREATE:
            entries.append(
                {
                    "fullUrl": d.full_url,
                    "resource": d.resource,
                    "request": {
                        "method": "POST",
                        "url": d.resource_type,
                        "ifNoneExist": d.if_none_exist,
                    },
                }
            )
            targets.append(d.full_url)
        else:
            ref = f"{d.resource_type}/{w.existing_id}"
            request: Json = {"method": "PUT", "url": ref}
            if w.existing_version:
                request["ifMatch"] = f'W/"{w.existing_version}"'
            entries.append({"resource": {**d.resource, "id": w.existing_id}, "request": request})
            targets.append(ref)
    entries.append(
        {
            "resource": provenance(targets, sources, recorded),
            "request": {"method": "POST", "url": "Provenance"},
        }
    )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return WritePlan(writes, bundle, summary)
