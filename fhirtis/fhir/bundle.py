"""Reading a patient's resources from a Bundle (or a bare resource list), strictly.

A Bundle of any type (collection, transaction, batch, searchset) is accepted; what counts is its
entries' resources. Structural problems that make the file unusable (not JSON, not a Bundle,
no patient, two patients) raise :class:`InputError` listing every problem with its location.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from fhirtis.fhir.extract.common import unversioned
from fhirtis.fhir.extract.patient import merged_message, patient_ref_in, replaced_by
from fhirtis.fhir.outcome import InputError, Issue
from fhirtis.fhir.primitives import ID_FULLMATCH, instant_or_none, is_id
from fhirtis.fhir.resource_types import KNOWN_RESOURCE_TYPES, NOT_A_RESOURCE_TYPE

Json = dict[str, Any]

_SUBJECT_KEYS = ("subject", "patient")  # the references that name the patient


@dataclass(frozen=True)
class PatientResources:
    """One patient's resources: (location, resource) pairs, and every resource by reference."""

    patient_ref: str
    resources: Sequence[tuple[str, Json]]
    resolve: Mapping[str, Json]
    issues: Sequence[Issue]
    # the resource types a server returned only in part (its search said matches were
    # withheld, or ended before its Bundle.total): a server read's, never a Bundle's
    read_in_part: Sequence[str] = ()


def on_base(reference: str, base: str | None) -> str | None:
    """The ``Type/id`` (version included) of an absolute reference on the FHIR base ``base``,
    ``[base]/Type/id`` (R4 references.html: an absolute URL names that server's resource, as
    the relative ``Type/id`` does), else None."""
    if not base:
        return None
    prefix = base.rstrip("/") + "/"
    return reference.removeprefix(prefix) if reference.startswith(prefix) else None


def names_elsewhere(reference: str, base: str | None) -> bool:
    """Whether ``reference`` is absolute (``scheme://…``) but not on the FHIR base ``base``
    (:func:`on_base`; any absolute reference where ``base`` is None): it names another server's
    resource, nothing that ``base`` holds under its ``Type/id``."""
    return "://" in reference and on_base(reference, base) is None


def substance_refs_of(medication: Json, base: str | None = None) -> list[tuple[str, str]]:
    """The Substances a Medication's ingredients name by a reference to a resource outside it
    (R4 ``Medication.ingredient.item[x]``: ``itemReference``, Reference(Substance |
    Medication)), each as written and as its ``Substance/id`` key: relative or absolute,
    version specific or not. A contained ``#id`` is the Medication's own and names none here;
    so does a malformed reference (the evaluation reads the ingredient by its display). Given
    the FHIR ``base`` the Medication was read from, a reference on another server's base
    (:func:`names_elsewhere`) names none there either; without one, every base's is kept."""
    out: list[tuple[str, str]] = []
    if medication.get("resourceType") != "Medication":
        return out
    ingredients = medication.get("ingredient")
    for ing in ingredients if isinstance(ingredients, list) else ():
        ref = ing.get("itemReference") if isinstance(ing, dict) else None
        target = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(target, str) or target.startswith("#"):
            continue
        if base is not None and names_elsewhere(target, base):
            continue
        key = _key_naming(target.strip(), "Substance")
        if key is not None:
            out.append((target, key))
    return out


def _key_naming(reference: str, type_: str) -> str | None:
    """The ``Type/id`` key of a literal reference (relative or absolute, version specific or
    not) that names a resource of ``type_``; None for one that names another type or is
    malformed."""
    parts = unversioned(reference).rsplit("/", 2)
    if len(parts) >= 2 and parts[-2] == type_ and is_id(parts[-1]):
        return f"{type_}/{parts[-1]}"
    return None


def absolute_step_refs(resource: Json) -> list[tuple[str, str]]:
    """The absolute references (``scheme://…``) by which a MedicationAdministration's
    ``partOf`` names another MedicationAdministration (a titration step's bag, followed by the
    extraction), each without its version and as its ``Type/id`` key. A server's read and a
    Bulk export (Bulk Data IG v2: references may be absolute) name the bag so; the evaluation
    resolves a reference by its text (:func:`alias_references`)."""
    out: list[tuple[str, str]] = []
    if resource.get("resourceType") != "MedicationAdministration":
        return out
    parts = resource.get("partOf")
    for part in parts if isinstance(parts, list) else ():
        target = part.get("reference") if isinstance(part, dict) else None
        if not isinstance(target, str) or "://" not in target:
            continue
        key = _key_naming(target, "MedicationAdministration")
        if key is not None:
            out.append((unversioned(target), key))
    return out


def alias_steps_by_id(resolve: dict[str, Json], resources: Iterable[Json]) -> None:
    """Let each absolute ``partOf`` reference of ``resources`` (:func:`absolute_step_refs`)
    resolve to what its ``Type/id`` does in ``resolve``, whatever its base (a Bulk export's
    references are resolved by type and id within its files), in place."""
    alias_references(
        resolve, {written: key for r in resources for written, key in absolute_step_refs(r)}
    )


def alias_references(resolve: dict[str, Json], aliases: Mapping[str, str]) -> None:
    """Let each reference of ``aliases`` (absolute, :func:`on_base`) resolve to what its
    ``Type/id`` does in ``resolve``, where it does not resolve already (in place)."""
    for ref, local in aliases.items():
        if ref not in resolve and local in resolve:
            resolve[ref] = resolve[local]


def parse_json(raw: bytes | str, where: str = "(input)") -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        why = _not_json(raw, exc)
        raise InputError([Issue("fatal", "structure", why, where)]) from None


def _not_json(raw: bytes | str, exc: orjson.JSONDecodeError) -> str:
    """Why ``raw`` is no JSON document, said as what users hand over instead of a Bundle: a
    gzip file, text in another encoding than UTF-8, NDJSON (one resource a line)."""
    if isinstance(raw, bytes) and raw[:2] == b"\x1f\x8b":
        return "not JSON: the file is gzip-compressed; decompress it first"
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return "not JSON: the text is not UTF-8 (FHIR JSON is UTF-8)"
    if "unexpected content after document" in str(exc) and raw.lstrip()[:1] in (b"{", "{"):
        return (
            f"not JSON: {exc}; one resource a line (NDJSON, a Bulk export)? "
            "`fhirtis cohort --ndjson DIR` reads those"
        )
    return f"not JSON: {exc}"


@dataclass
class _Found:
    """What one pass over a Bundle finds: the listed resources and the structure's problems,
    the reference table (:meth:`resolve`) and the patient references (:meth:`patient_refs`).

    One pass does what three did (the entries, then the reference table, then the patients):
    each entry is looked at once, and a location is formatted only for a listed resource or an
    issue."""

    resources: list[tuple[str, Json]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    listed_by_ref: dict[str, Json] = field(default_factory=dict)  # "Type/id": the first listed
    other_by_ref: dict[str, Json] = field(default_factory=dict)  # "Type/id": the first other
    by_full_url: dict[str, Json] = field(default_factory=dict)  # entry.fullUrl: the last
    patients: set[str] = field(default_factory=set)  # "Patient/id" of the listed Patients
    patients_without_id: list[str] = field(default_factory=list)  # where a listed one is
    references: set[str] = field(default_factory=set)  # listed subject/patient references
    named_by_uuid: int = 0  # listed resources without an id, named by their urn:uuid fullUrl
    deleted: set[str] = field(default_factory=set)  # "Type/id" whose newest history entry deletes

    def resolve(self) -> dict[str, Json]:
        """Every resource by "Type/id" and by its entry's fullUrl (nested Bundles included).

        The precedence is the one of filling a single table in turn (the listed resources, then
        every resource in document order without replacing a key, then every fullUrl): a fullUrl
        (the last entry giving it) wins over a listed resource's "Type/id" (the first listed,
        the copy that is read), which wins over another resource's (the first in document
        order: a nested Bundle, a resource excluded for its id, a search outcome)."""
        table = dict(self.listed_by_ref)
        for key, resource in self.other_by_ref.items():
            table.setdefault(key, resource)
        table.update(self.by_full_url)
        return table

    def patient_refs(self) -> set[str]:
        """:func:`~fhirtis.fhir.extract.patient_refs` of the listed resources: the Patients'
        ids and the patients their subject/patient references name (each distinct text once)."""
        refs = set(self.patients)
        for reference in self.references:
            patient = patient_ref_in(reference)
            if patient is not None:
                refs.add(patient)
        return refs


# not named by a urn:uuid fullUrl: a Patient without an id is refused (read_patient_bundle:
# fhirtis names the patient by its id); a Bundle, Parameters or OperationOutcome (an operation's
# answer in a transaction-response) is no record of the patient's
_NAMED_BY_OWN_ID = frozenset({"Patient", "Bundle", "Parameters", "OperationOutcome"})


def _read_entries(doc: Any) -> _Found:
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        kind = doc.get("resourceType") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(
            [Issue("fatal", "structure", f"expected a FHIR Bundle, found {kind!s}", "Bundle")]
        )
    if not isinstance(doc.get("entry", []), list):
        raise InputError(
            [Issue("fatal", "structure", "Bundle.entry must be an array", "Bundle.entry")]
        )
    found = _Found()
    _collect(doc, "Bundle", found, listed=True)
    if found.named_by_uuid:
        found.issues.append(
            Issue(
                "information",
                "informational",
                f"{found.named_by_uuid} resource(s) without an id are named by the uuid of their "
                "urn:uuid fullUrl (Type/<uuid>)",
                "Bundle.entry",
            )
        )
    return found


def _collect(doc: Json, where: str, found: _Found, *, listed: bool) -> None:
    """Record the entries of ``doc`` (at ``where``) in ``found``. ``listed``: its resources are
    the patient's (else only referable: the entries of a nested Bundle that is itself excluded,
    whose problems are not reported)."""
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        if listed:
            found.issues.append(
                Issue("error", "structure", "Bundle.entry must be an array", f"{where}.entry")
            )
        return
    if listed and doc.get("type") == "searchset":
        page = _next_page(doc, where)
        if page is not None:
            found.issues.append(page)
    # a history lists each resource's versions newest first (R4 http.html#history): the first
    # entry of a resource is its current state, a DELETE entry without resource included
    history = listed and doc.get("type") == "history"
    # the top Bundle's resource locations are made once per process, not per entry
    top_paths = (
        _top_entry_paths(len(entries))
        if where == "Bundle" and len(entries) <= _TOP_ENTRY_PATHS_LIMIT
        else None
    )
    # bound once: the loop below runs once per entry
    resources, by_full_url, listed_by_ref = found.resources, found.by_full_url, found.listed_by_ref
    references, issues = found.references, found.issues
    for i in _newest_first(entries) if history else range(len(entries)):
        entry = entries[i]
        resource: Any = entry.get("resource") if isinstance(entry, dict) else None
        resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(resource_type, str):
            _no_resource(entry, i, where, found, listed=listed, history=history)
            continue
        if resource_type not in KNOWN_RESOURCE_TYPES:  # OBSERVATION: no resource of a type
            if listed:  # not read, as a type not needed is not, but said: it may be data
                issues.append(_not_a_resource_type(i, where))
            continue
        resource_id = resource.get("id")
        full_url = entry.get("fullUrl")
        if (
            listed
            and "id" not in resource
            and resource_type not in _NAMED_BY_OWN_ID
            and isinstance(full_url, str)
            and full_url.startswith("urn:uuid:")
            and is_id(full_url[9:])
        ):
            # R4 documents and transactions list resources by a urn:uuid fullUrl with no id
            # (HL7 R4 document-example-dischargesummary.json, bundle-transaction.json): the
            # resource is named by that uuid, as a server names what it stores
            resource_id = full_url[9:]
            resource = {**resource, "id": resource_id}
            found.named_by_uuid += 1
        if isinstance(full_url, str):
            by_full_url[full_url] = resource
        keep = listed
        # is_id(resource_id), inlined; the usual id first
        if (
            keep
            and not (isinstance(resource_id, str) and ID_FULLMATCH(resource_id) is not None)
            and "id" in resource
        ):
            issues.append(
                Issue(
                    "error",
                    "value",
                    "resource id is not a valid FHIR id",
                    f"{where}.entry[{i}].resource.id",
                )
            )
            keep = False
        if keep and "search" in entry:
            search = entry["search"]
            if isinstance(search, dict) and search.get("mode") == "outcome":
                issues.append(_search_outcome(resource, f"{where}.entry[{i}].resource"))
                keep = False
        if resource_type == "Bundle":
            if isinstance(resource_id, str):
                found.other_by_ref.setdefault(f"Bundle/{resource_id}", resource)
            _collect(resource, f"{where}.entry[{i}].resource", found, listed=keep)
            continue
        if not keep:
            if isinstance(resource_id, str):
                found.other_by_ref.setdefault(f"{resource_type}/{resource_id}", resource)
            continue
        location = top_paths[i] if top_paths is not None else f"{where}.entry[{i}].resource"
        if isinstance(resource_id, str):
            key = f"{resource_type}/{resource_id}"
            if history and key in found.deleted:
                found.other_by_ref.setdefault(key, resource)
                issues.append(_deleted(key, location))
                continue
            first = listed_by_ref.setdefault(key, resource)
            if first is not resource:  # two searches (or pages) returned it: read once
                issues.append(_duplicate(key, first == resource or history, location))
                continue
            resources.append((location, resource))
            if resource_type == "Patient":
                found.patients.add(f"Patient/{resource_id}")
                continue
        else:
            resources.append((location, resource))
            if resource_type == "Patient":  # e.g. a transaction's POST with a urn:uuid fullUrl
                found.patients_without_id.append(location)
                continue
        # the subject/patient references (_SUBJECT_KEYS), the usual subject first
        value = resource.get("subject")
        if isinstance(value, dict):
            reference = value.get("reference")
            if isinstance(reference, str):
                references.add(reference)
        if "patient" in resource:
            value = resource["patient"]
            if isinstance(value, dict):
                reference = value.get("reference")
                if isinstance(reference, str):
                    references.add(reference)


def _no_resource(
    entry: object, i: int, where: str, found: _Found, *, listed: bool, history: bool
) -> None:
    """An entry (at index ``i``) without a resource: an issue where one is missing (a listed
    entry that should hold one), or, in a history, the record of a DELETE."""
    # a transaction's DELETE or search request, a transaction-response's status: such an
    # entry holds no resource by design (R4 bundle-response.json), so nothing is missing
    holds_none = (
        isinstance(entry, dict)
        and "resource" not in entry
        and ("response" in entry or _request_method(entry) in _NO_RESOURCE_METHODS)
    )
    if listed and not holds_none:
        found.issues.append(
            Issue(
                "error",
                "structure",
                "entry has no resource",
                f"{where}.entry[{i}].resource",
            )
        )
    elif history and isinstance(entry, dict) and _request_method(entry) == "DELETE":
        key = _deleted_key(entry)
        if key is not None and key not in found.listed_by_ref:
            found.deleted.add(key)


def _not_a_resource_type(i: int, where: str) -> Issue:
    """A listed entry whose ``resourceType`` names no FHIR resource type (``OBSERVATION``):
    not read, as a resource of a type the evaluation does not read is not, but said (it may
    hold a measurement or a risk factor, spelt wrong). Its content is not repeated."""
    return Issue(
        "warning",
        "value",
        f"entry {i} has {NOT_A_RESOURCE_TYPE}: it is not read",
        f"{where}.entry[{i}].resource.resourceType",
    )


_NO_RESOURCE_METHODS = frozenset({"GET", "HEAD", "DELETE"})
"""R4 Bundle.entry.request.method values whose entry has no resource (a POST, PUT or PATCH has)."""


def _newest_first(entries: list[Any]) -> list[int]:
    """The indexes of a history Bundle's ``entries`` in the order to read them: each resource's
    versions newest first. R4 (http.html#history) lists them newest first, and the first entry
    of a resource is read as its current state; some servers list them oldest first. Where every
    entry of a resource carries an integer version (``meta.versionId``, a DELETE's
    ``response.etag`` W/"n"), else an instant (``meta.lastUpdated``, a DELETE's
    ``response.lastModified``), its entries are read by it, newest first, in the places they
    hold; otherwise, and for every other entry, in the order listed."""
    order = list(range(len(entries)))
    groups: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        key = _history_key(entry)
        if key is not None:
            groups.setdefault(key, []).append(i)
    for places in groups.values():
        if len(places) < 2:
            continue
        marks = [_version_marks(entries[i]) for i in places]
        versions = [(v, i) for (v, _), i in zip(marks, places, strict=True) if v is not None]
        times = [(t, i) for (_, t), i in zip(marks, places, strict=True) if t is not None]
        ranked: list[int]
        if len(versions) == len(places):
            ranked = [i for _, i in sorted(versions, key=lambda m: -m[0])]  # stable: ties listed
        elif len(times) == len(places):
            ranked = [i for _, i in sorted(times, key=lambda m: m[0], reverse=True)]
        else:
            continue  # not every version says when: as listed
        for place, i in zip(places, ranked, strict=True):
            order[place] = i
    return order


def _history_key(entry: object) -> str | None:
    """The "Type/id" of a history Bundle's entry: its resource's, or the one a DELETE deletes."""
    if not isinstance(entry, dict):
        return None
    resource = entry.get("resource")
    if isinstance(resource, dict):
        rtype, rid = resource.get("resourceType"), resource.get("id")
        return f"{rtype}/{rid}" if isinstance(rtype, str) and isinstance(rid, str) else None
    return _deleted_key(entry) if _request_method(entry) == "DELETE" else None


def _version_marks(entry: Json) -> tuple[int | None, datetime | None]:
    """An entry's integer version and instant: its resource's ``meta.versionId`` and
    ``meta.lastUpdated``, else (a DELETE, no resource) its ``response.etag`` and
    ``response.lastModified``."""
    resource = entry.get("resource")
    if isinstance(resource, dict):
        meta = resource.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        return _integer_version(meta.get("versionId")), instant_or_none(meta.get("lastUpdated"))
    response = entry.get("response")
    response = response if isinstance(response, dict) else {}
    etag = response.get("etag")
    if isinstance(etag, str):  # W/"3" (R4 http.html#versioning)
        etag = etag.removeprefix("W/").strip('"')
    return _integer_version(etag), instant_or_none(response.get("lastModified"))


def _integer_version(value: object) -> int | None:
    """A version id that is a decimal integer (at most 18 digits), or None."""
    if isinstance(value, str) and 0 < len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)
    return None


def _request_method(entry: Json) -> str | None:
    request = entry.get("request")
    method = request.get("method") if isinstance(request, dict) else None
    return method if isinstance(method, str) else None  # a malformed one is no method


def _deleted_key(entry: Json) -> str | None:
    """The "Type/id" a history's DELETE entry deletes: from its ``request.url`` (``Type/id``,
    perhaps absolute, versioned or with a query), else its ``fullUrl``; None if neither names
    one."""
    request = entry.get("request")
    for url in (request.get("url") if isinstance(request, dict) else None, entry.get("fullUrl")):
        if not isinstance(url, str):
            continue
        parts = url.split("?", 1)[0].partition("/_history/")[0].rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2][:1].isupper() and is_id(parts[-1]):
            return f"{parts[-2]}/{parts[-1]}"
    return None


def _deleted(key: str, location: str) -> Issue:
    """An older version of a resource whose newest history entry deletes it: not read."""
    return Issue(
        "information",
        "deleted",
        f"{key} is deleted (its newest entry in the history Bundle is a DELETE): its older "
        "versions are not read",
        location,
        key,
    )


_TOP_ENTRY_PATHS: list[str] = []
"""``Bundle.entry[i].resource`` by i, made once per process and shared by every Bundle read
(a str is immutable, so sharing the texts is invisible)."""
_TOP_ENTRY_PATHS_LIMIT = 100_000  # a larger Bundle formats the locations past this itself


_TOP_ENTRY_PATHS_LOCK = threading.Lock()


def _top_entry_paths(count: int) -> list[str]:
    """:data:`_TOP_ENTRY_PATHS`, holding at least ``min(count, limit)`` locations. Grown under a
    lock: two threads growing it at once would each append from the length they saw, and the
    text at an index would name another entry."""
    paths = _TOP_ENTRY_PATHS
    wanted = min(count, _TOP_ENTRY_PATHS_LIMIT)
    if len(paths) < wanted:
        with _TOP_ENTRY_PATHS_LOCK:
            for i in range(len(paths), wanted):
                paths.append(f"Bundle.entry[{i}].resource")
    return paths


def _duplicate(key: str, same: bool, location: str) -> Issue:
    """A resource listed again (two searches of a batch-response, two pages): only its first
    copy is read (the server read path keeps the newest of differing versions); counting it
    twice would double a dose. ``same`` also for an older version in a history Bundle (its
    versions differ by design; the first, the newest, is read)."""
    if same:
        return Issue(
            "information",
            "duplicate",
            f"{key} is listed more than once in the Bundle: read once",
            location,
            key,
        )
    return Issue(
        "warning",
        "duplicate",
        f"{key} is listed more than once in the Bundle and the copies differ: the first copy "
        "is read",
        location,
        key,
    )


def _next_page(doc: Json, where: str) -> Issue | None:
    """A searchset with a ``next`` link is one page of the results: the rest of the patient's
    data are on the next pages. A warning at the link (its URL is not copied: its query may name
    the patient); None on a last page."""
    links = doc.get("link")
    for i, link in enumerate(links if isinstance(links, list) else []):
        if isinstance(link, dict) and link.get("relation") == "next":
            return Issue(
                "warning",
                "incomplete",
                "the Bundle is one page of a search (it has a next link): the rest of the "
                "patient's data is not in it and the results may be incomplete",
                f"{where}.link[{i}]",
            )
    return None


def _search_outcome(resource: Json, loc: str) -> Issue:
    """A search's own OperationOutcome → a warning on the result (its diagnostics are the
    server's words and may name the patient: they are not copied)."""
    name = f"OperationOutcome {resource['id']}" if is_id(resource.get("id")) else "OperationOutcome"
    issues = resource.get("issue")
    found = [
        f"severity {i.get('severity')}, code {i.get('code')}"
        for i in (issues if isinstance(issues, list) else ())
        if isinstance(i, dict)
    ]
    detail = f" ({name}, {'; '.join(found)})" if found else f" ({name})"
    return Issue(
        "warning",
        "incomplete",
        f"search outcome: the server reported the data may be incomplete{detail}",
        loc,
    )


def read_patient_bundle(raw: bytes | str, where: str = "(input)") -> PatientResources:
    """One patient's Bundle → its resources; InputError when it is not one patient's Bundle."""
    found = _read_entries(parse_json(raw, where))
    entries, issues = found.resources, found.issues
    refs = found.patient_refs()
    if not refs:
        if found.patients_without_id:  # fhirtis names the patient by its id: it cannot here
            raise InputError(
                [
                    *issues,
                    Issue(
                        "fatal",
                        "required",
                        "the Patient has no id: fhirtis names the patient by its id "
                        "(Patient/<id>); give the Patient an id",
                        f"{found.patients_without_id[0]}.id",
                    ),
                ]
            )
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
    ref = refs.pop()
    successor = replaced_by(found.listed_by_ref.get(ref))
    if successor is not None:  # as a server's read of it fails (``fhirtis run``, the service)
        raise InputError(
            [
                *issues,
                Issue("fatal", "business-rule", merged_message(ref, successor), "Patient.link"),
            ]
        )
    return PatientResources(ref, entries, found.resolve(), issues)
