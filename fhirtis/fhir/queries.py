"""What to ask a FHIR server for one patient (pure: builds requests, sends nothing).

The searches come from :data:`fhirtis.fhir.needs.NEEDS`: the Patient read, then per needed type a
search by patient (the Observations by the codes fhirtis maps), with the ``_include`` of the
Medications (or Devices) they reference, and a need's narrowed second search (the Conditions not
active: :data:`fhirtis.fhir.needs.CONDITIONS_NOT_ACTIVE`). How each search is shaped on a given
server (which patient parameter, ``_include`` or not, which ``_count``, the narrowed search or
not, left out when the server lacks the type) is a :class:`SearchChoice` decided by the read plan
of :mod:`fhirtis.io` from the server's capabilities; without one, every search has the default
shape (the first patient parameter, ``_include``, ``count``, the narrowed search). A second set
of searches looks up fhirtis's own earlier output by business identifier.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhirtis.fhir.codes import FHIRTIS_SYSTEM, IDENTIFIER_SYSTEM, Terminology
from fhirtis.fhir.derive import NO_IDENTIFIER_SEARCH, Derived
from fhirtis.fhir.needs import (
    NEEDS,
    OBSERVATION_VALUE_SETS,
    PATIENT,
    Need,
    observation_codes,
    token,
)

Json = dict[str, Any]

__all__ = [
    "MAX_QUERY_VALUES",
    "OBSERVATION_VALUE_SETS",
    "SearchChoice",
    "by_id_urls",
    "existing_by_patient_urls",
    "existing_entries",
    "existing_urls",
    "identifier_of",
    "medication_urls",
    "observation_codes",
    "own_output_narrowing",
    "own_output_url",
    "patient_read_entries",
    "patient_read_urls",
]

MAX_QUERY_VALUES = 40  # values of one token parameter per search URL (keeps URLs short)
_token = token


@dataclass(frozen=True)
class SearchChoice:
    """How one needed search is sent to a given server."""

    patient_param: str
    include: bool
    count: int
    also: bool = True  # the need's narrowed second search is sent too (Need.also)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def default_choice(need: Need, count: int) -> SearchChoice:
    return SearchChoice(need.patient_params[0], need.include is not None, count)


def patient_read_urls(
    patient_id: str,
    terminology: Terminology,
    count: int,
    choices: Mapping[str, SearchChoice | None] | None = None,
    types: Collection[str] | None = None,
) -> list[tuple[Need | None, str]]:
    """(need, relative URL) of every read of one patient; the first is the Patient read (need
    None). ``choices``: per resource type, its shape on this server, or None to leave the type
    out (the server lacks it); types not in ``choices`` get the default shape. ``types``: only
    the searches of these resource types, without the Patient read (None: everything)."""
    urls: list[tuple[Need | None, str]] = (
        [] if types is not None else [(None, f"{PATIENT}/{patient_id}")]
    )
    for need in NEEDS:
        if types is not None and need.resource_type not in types:
            continue
        choice = (
            default_choice(need, count)
            if choices is None or need.resource_type not in choices
            else choices[need.resource_type]
        )
        if choice is None:
            continue
        who = f"{choice.patient_param}=Patient/{patient_id}"
        include = f"&_include={need.include}" if choice.include and need.include else ""
        if need.by_code:
            codes = [_token(s, c) for s, c in observation_codes(terminology)]
            for chunk in _chunks(codes, MAX_QUERY_VALUES):
                urls.append(
                    (
                        need,
                        f"{need.resource_type}?{who}&code={','.join(chunk)}{include}"
                        f"&_count={choice.count}",
                    )
                )
        else:
            urls.append((need, f"{need.resource_type}?{who}{include}&_count={choice.count}"))
        if need.also is not None and choice.also:
            # the narrowing first: a refusal of the search is read as a refusal of it
            urls.append(
                (
                    need,
                    f"{need.resource_type}?{need.also.query}&{who}{include}&_count={choice.count}",
                )
            )
    return urls


def patient_read_entries(patient_id: str, terminology: Terminology, count: int) -> list[Json]:
    """Batch entries reading one patient's data (default shapes). The first is the Patient
    read."""
    return [
        {"request": {"method": "GET", "url": url}}
        for _, url in patient_read_urls(patient_id, terminology, count)
    ]


def medication_urls(ids: Iterable[str], count: int) -> list[str]:
    """``Medication?_id=a,b,…`` searches (chunked) resolving referenced Medications."""
    return by_id_urls("Medication", ids, count)


def by_id_urls(resource_type: str, ids: Iterable[str], count: int) -> list[str]:
    """``Type?_id=a,b,…`` searches (chunked) resolving referenced resources of one type (the
    Medications, or a DeviceUseStatement's Devices, that no ``_include`` brought)."""
    unique = sorted(set(ids))
    return [
        f"{resource_type}?_id={','.join(chunk)}&_count={min(count, max(len(chunk), 1))}"
        for chunk in _chunks(unique, MAX_QUERY_VALUES)
    ]


def existing_urls(
    derived: Sequence[Derived], count: int, skip_types: Iterable[str] = ()
) -> list[str]:
    """Searches finding fhirtis's earlier output by business identifier, per type (types
    without an ``identifier`` search parameter by their own match query; the caller keeps only
    resources with the right identifier). ``skip_types``: types the server lacks."""
    skip = set(skip_types)
    by_type: dict[str, list[str]] = {}
    urls = []
    for d in derived:
        if d.resource_type in skip:
            continue
        if d.resource_type in NO_IDENTIFIER_SEARCH:
            urls.append(f"{d.resource_type}?{d.if_none_exist}&_count={count}")
            continue
        by_type.setdefault(d.resource_type, []).append(_token(IDENTIFIER_SYSTEM, d.identifier))
    for rtype in sorted(by_type):
        for chunk in _chunks(by_type[rtype], MAX_QUERY_VALUES):
            urls.append(f"{rtype}?identifier={','.join(chunk)}&_count={count}")
    return urls


def existing_by_patient_urls(
    derived: Sequence[Derived], patient_param: Callable[[str], str | None], count: int
) -> list[str]:
    """For servers without an ``identifier`` search on a type: one search per type by patient
    and the derived resources' codes (the caller keeps only resources with the right
    identifier). ``patient_param``: the parameter naming the patient for a type (None: the type
    cannot be searched, nothing is sent)."""
    by_type: dict[tuple[str, str], set[str]] = {}
    for d in derived:
        subject = d.resource.get("subject") or d.resource.get("patient") or {}
        ref = subject.get("reference") if isinstance(subject, dict) else None
        codings = (d.resource.get("code") or {}).get("coding") or []
        if not isinstance(ref, str) or not codings:
            continue
        by_type.setdefault((d.resource_type, ref), set()).add(
            _token(str(codings[0].get("system")), str(codings[0].get("code")))
        )
    urls = []
    for (rtype, ref), codes in sorted(by_type.items()):
        param = patient_param(rtype)
        if param is None:
            continue
        for chunk in _chunks(sorted(codes), MAX_QUERY_VALUES):
            urls.append(f"{rtype}?{param}={ref}&code={','.join(chunk)}&_count={count}")
    return urls


#: Per derived type, the search parameters naming the patient, best first.
OWN_OUTPUT_PATIENT_PARAMS: Mapping[str, tuple[str, ...]] = {
    "DetectedIssue": ("patient",),
    "AdverseEvent": ("subject",),
}
DEFAULT_PATIENT_PARAMS = ("patient", "subject")
#: Per derived type without an ``identifier`` search: the token every resource fhirtis derives
#: of the type carries (AdverseEvent: fhirtis's category; the others: a code of fhirtis's
#: system).
_OWN_TOKEN: Mapping[str, tuple[str, str]] = {
    "AdverseEvent": ("category", f"{FHIRTIS_SYSTEM}|tee-temporally-associated"),
}
_DEFAULT_OWN_TOKEN = ("code", f"{FHIRTIS_SYSTEM}|")


def own_output_narrowing(
    rtype: str, search_param: Callable[[str, tuple[str, ...]], str | None]
) -> tuple[str, str] | None:
    """How a search for all of fhirtis's earlier output of ``rtype`` for one patient is
    narrowed: by any value of fhirtis's identifier system (``identifier=<system>|``) where the
    server searches the type by identifier, else by fhirtis's code (or category) system, else
    (None) not at all. ``search_param(rtype, candidates)``: the first candidate the server
    searches the type by, or None."""
    if rtype not in NO_IDENTIFIER_SEARCH and search_param(rtype, ("identifier",)) is not None:
        return ("identifier", f"{IDENTIFIER_SYSTEM}|")
    param, value = _OWN_TOKEN.get(rtype, _DEFAULT_OWN_TOKEN)
    return (param, value) if search_param(rtype, (param,)) is not None else None


def own_output_url(
    rtype: str, patient_param: str, patient_ref: str, narrowing: tuple[str, str] | None, count: int
) -> str:
    """One search (paged) for all of fhirtis's earlier output of ``rtype`` for one patient (the
    caller keeps the resources with fhirtis's identifier that name the patient). The narrowing
    parameter comes first: a server that refuses the search is taken to refuse it."""
    first = f"{narrowing[0]}={narrowing[1]}&" if narrowing is not None else ""
    return f"{rtype}?{first}{patient_param}={patient_ref}&_count={count}"


def existing_entries(derived: Sequence[Derived], count: int) -> list[Json]:
    """:func:`existing_urls` as batch entries."""
    return [{"request": {"method": "GET", "url": url}} for url in existing_urls(derived, count)]


def identifier_of(resource: Json) -> str | None:
    """The fhirtis business identifier value of a stored resource, if it has one."""
    idents = resource.get("identifier")
    for ident in idents if isinstance(idents, list) else [idents]:
        if isinstance(ident, dict) and ident.get("system") == IDENTIFIER_SYSTEM:
            value = ident.get("value")
            return value if isinstance(value, str) else None
    return None
