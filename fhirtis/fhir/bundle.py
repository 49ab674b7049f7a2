"""Reading a patient's resources from a Bundle (or a bare resource list), strictly.

A Bundle of any type (collection, transaction, batch, searchset) is accepted; what counts is its
entries' resources. Structural problems that make the file unusable (not JSON, not a Bundle,
no patient, two patients) raise :class:`InputError` listing every problem with its location.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fhirtis.fhir.extract import patient_refs
from fhirtis.fhir.outcome import InputError, Issue
from fhirtis.fhir.primitives import is_id

Json = dict[str, Any]


@dataclass(frozen=True)
class PatientResources:
    """One patient's resources: (location, resource) pairs, and every resource by reference."""

    patient_ref: str
    resources: Sequence[tuple[str, Json]]
    resolve: Mapping[str, Json]
    issues: Sequence[Issue]


def parse_json(raw: bytes | str, where: str = "(input)") -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError([Issue("fatal", "structure", f"not JSON: {exc}", where)]) from None


def bundle_entries(doc: Any) -> tuple[list[tuple[str, Json]], list[Issue]]:
    """The (location, resource) pairs of a Bundle, and the problems of its structure.

    Resources inside nested Bundles (a saved batch-response holding searchsets) are read too. A
    searchset entry with ``search.mode = outcome`` is an OperationOutcome about the search: it is
    surfaced as a warning (the data may be incomplete), never dropped silently.
    """
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        kind = doc.get("resourceType") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(
            [Issue("fatal", "structure", f"expected a FHIR Bundle, found {kind!s}", "Bundle")]
        )
    if not isinstance(doc.get("entry", []), list):
        raise InputError(
            [Issue("fatal", "structure", "Bundle.entry must be an array", "Bundle.entry")]
        )
    out: list[tuple[str, Json]] = []
    issues: list[Issue] = []
    _walk(doc, "Bundle", out, issues, None)
    return out, issues


def _walk(
    doc: Json,
    where: str,
    out: list[tuple[str, Json]],
    issues: list[Issue],
    table: dict[str, Json] | None,
) -> None:
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        issues.append(
            Issue("error", "structure", "Bundle.entry must be an array", f"{where}.entry")
        )
        return
    for i, entry in enumerate(entries):
        loc = f"{where}.entry[{i}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            if table is None:
                issues.append(
                    Issue("error", "structure", "entry has no resource", f"{loc}.resource")
                )
            continue
        if table is not None:
            if isinstance(resource.get("id"), str):
                table.setdefault(f"{resource['resourceType']}/{resource['id']}", resource)
            if isinstance(entry.get("fullUrl"), str):
                table[entry["fullUrl"]] = resource
            if resource["resourceType"] == "Bundle":
                _walk(resource, f"{loc}.resource", out, issues, table)
            continue
        if "id" in resource and not is_id(resource["id"]):
            issues.append(
                Issue("error", "value", "resource id is not a valid FHIR id", f"{loc}.resource.id")
            )
            continue
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            issues.append(_search_outcome(resource, f"{loc}.resource"))
            continue
        if resource["resourceType"] == "Bundle":
            _walk(resource, f"{loc}.resource", out, issues, None)
            continue
        out.append((f"{loc}.resource", resource))


def _search_outcome(resource: Json, loc: str) -> Issue:
    """A search's own OperationOutcome → a warning on the result (its diagnostics are the
    server's words and may name the patient: they are not copied)."""
    name = f"OperationOutcome {resource['id']}" if is_id(resource.get("id")) else "OperationOutcome"
    found = [
        f"severity {i.get('severity')}, code {i.get('code')}"
        for i in resource.get("issue", []) or []
        if isinstance(i, dict)
    ]
    detail = f" ({name}, {'; '.join(found)})" if found else f" ({name})"
    return Issue(
        "warning",
        "incomplete",
        f"search outcome: the server reported the data may be incomplete{detail}",
        loc,
    )


def resolver(entries: Sequence[tuple[str, Json]], doc: Any) -> dict[str, Json]:
    """Every resource by "Type/id" and by its entry's fullUrl (nested Bundles included)."""
    table: dict[str, Json] = {}
    for _, r in entries:
        if isinstance(r.get("id"), str):
            table[f"{r['resourceType']}/{r['id']}"] = r
    if isinstance(doc, dict):
        _walk(doc, "Bundle", [], [], table)
    return table


def read_patient_bundle(raw: bytes | str, where: str = "(input)") -> PatientResources:
    """One patient's Bundle → its resources; InputError when it is not one patient's Bundle."""
    doc = parse_json(raw, where)
    entries, issues = bundle_entries(doc)
    refs = patient_refs(r for _, r in entries)
    if not refs:
        raise InputError(
            [*issues, Issue("fatal", "required", "no Patient and no subject reference", "Bundle")]
        )
    if len(refs) > 1:
        raise InputError(
            [
                *issues,
                Issue(
                    "fatal",
                    "business-rule",
                    f"resources of {len(refs)} patients in one Bundle; give one patient per Bundle",
                    "Bundle.entry",
                ),
            ]
        )
    return PatientResources(refs.pop(), entries, resolver(entries, doc), issues)
