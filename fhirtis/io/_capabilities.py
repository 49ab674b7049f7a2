"""What a FHIR server can do (pure): read from its CapabilityStatement, then from its refusals.

:func:`parse_statement` turns ``GET [base]/metadata`` into a :class:`Capabilities` value; it
never raises: a missing, malformed or partial statement gives a value that says so (``source``,
``notes``) and leaves what it does not know *unknown* (``None``), which the plans treat as "try
it". :meth:`Capabilities.learn` adds what a refusal taught (405/501, or 400/404 with issue code
``not-supported``): a statement that lies (declares batch, refuses it) is corrected the first
time, and the correction is remembered for that server (:class:`CapabilityCache`).

The decisions made from this value (which searches, batch or GETs, transaction or batch or
single writes) are in :mod:`fhirtis.io._plans`; the client only executes them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = [
    "BATCH_SEARCH_EXTENSION",
    "MAX_COUNT_EXTENSION",
    "SEARCH_MODE_EXTENSION",
    "Capabilities",
    "CapabilityCache",
    "Refused",
    "TypeSupport",
    "fhir_release",
    "is_refusal",
    "parse_statement",
    "r4_base_hint",
    "unknown",
]

#: ``_count`` limit of a resource type (an extension of ``rest.resource``; published by the
#: fhirtis test server, and by any server that wants fhirtis to respect its page limit).
MAX_COUNT_EXTENSION = "http://fhirtis.org/fhir/StructureDefinition/max-count"
#: ``valueBoolean false`` on ``rest.interaction`` batch/transaction: no searches inside Bundles.
BATCH_SEARCH_EXTENSION = "http://fhirtis.org/fhir/StructureDefinition/batch-search-supported"
#: ``valueCode`` GET | POST | both on ``rest.resource`` (FHIR Extensions Pack): how the server
#: takes searches of that type; POST: only ``POST [type]/_search``.
SEARCH_MODE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-mode"

Release = Literal["R4", "R4B", "other"]

#: The names of FHIR releases by major.minor version (R4 versions.html#versions; the
#: pre-releases between them are ballots, connectathon snapshots or previews).
RELEASE_NAMES = {
    "0.0": "DSTU1",
    "1.0": "DSTU2",
    "3.0": "STU3",
    "4.0": "R4",
    "4.3": "R4B",
    "5.0": "R5",
}
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?(?:-[0-9A-Za-z.-]+)?")


def fhir_release(version: str) -> Release | None:
    """A FHIR version code (``CapabilityStatement.fhirVersion``, R4 codesystem FHIR-version:
    ``4.0.1``; or the ``major.minor`` of the ``fhirVersion`` MIME-type parameter, R4 http.html
    #version-parameter: ``4.0``) → ``R4`` (4.0.x), ``R4B`` (4.3.x), ``other`` (any other
    release or pre-release); None where ``version`` is no version code."""
    text = version.strip()
    if text.upper() == "DSTU2":  # a DSTU2 Conformance resource that names no version
        return "other"
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    major_minor = f"{match[1]}.{match[2]}"
    return "R4" if major_minor == "4.0" else "R4B" if major_minor == "4.3" else "other"


def release_name(version: str) -> str:
    """``3.0.1`` → ``3.0.1 (STU3)``; a pre-release or unknown version as it is."""
    match = _VERSION.fullmatch(version.strip())
    name = RELEASE_NAMES.get(f"{match[1]}.{match[2]}") if match else None
    exact = match is not None and "-" not in version
    return f"{version} ({name})" if name and exact and name != version else version


#: Path segments that name another FHIR release than R4 in a base URL, and the R4 segment the
#: same vendor uses: Epic serves ``…/api/FHIR/DSTU2/``, ``…/api/FHIR/STU3/`` and
#: ``…/api/FHIR/R4/`` side by side; Oracle Health (Cerner) ``…/dstu2/{tenant}/`` beside
#: ``…/r4/{tenant}/``; HAPI's public servers ``baseDstu2``, ``baseDstu3``, ``baseR4B``, ``baseR5``
#: beside ``baseR4``.
_RELEASE_SEGMENT = re.compile(r"(?i)^(base)?(dstu1|dstu2|dstu3|stu3|r3|r4b|r5|r6)$")


def r4_base_hint(base_url: str) -> str | None:
    """``base_url`` with the path segment that names another release replaced by the R4 one
    (in the same case: ``DSTU2`` → ``R4``, ``dstu2`` → ``r4``, ``baseDstu3`` → ``baseR4``);
    None where no segment names a release."""
    head, sep, query = base_url.partition("?")
    parts = head.split("/")
    for i in range(len(parts) - 1, 2, -1):  # after scheme://host
        match = _RELEASE_SEGMENT.match(parts[i])
        if match is None:
            continue
        word = match[2]
        r4 = "r4" if word.islower() else "R4"
        parts[i] = (match[1] or "") + r4
        return "/".join(parts) + sep + query
    return None


RefusalKind = Literal[
    "batch",  # batch Bundles
    "transaction",  # transaction Bundles
    "batch-search",  # searches inside a batch
    "type",  # the resource type
    "interaction",  # an interaction (detail: create, update, delete, search-type) on a type
    "conditional-create",  # If-None-Exist on a type
    "search-param",  # a search parameter (detail) of a type
    "include",  # _include (detail) on a type
    "get-search",  # searches of a type by GET (it takes POST [type]/_search)
]


@dataclass(frozen=True, order=True)
class Refused:
    """One thing a server refused (learned from its answer, remembered for that server)."""

    kind: RefusalKind
    resource_type: str = ""
    detail: str = ""

    def describe(self) -> str:
        what = {
            "batch": "batch Bundles",
            "transaction": "transaction Bundles",
            "batch-search": "searches inside a batch",
            "type": f"the resource type {self.resource_type}",
            "interaction": f"{self.detail} of {self.resource_type}",
            "conditional-create": f"conditional create of {self.resource_type}",
            "search-param": f"search parameter {self.detail} of {self.resource_type}",
            "include": f"_include={self.detail}",
            "get-search": f"searches of {self.resource_type} by GET (it takes POST _search)",
        }[self.kind]
        return f"refused {what}"


@dataclass(frozen=True)
class TypeSupport:
    """What the statement says about one resource type; None: it does not say."""

    interactions: frozenset[str] | None = None
    search_params: frozenset[str] | None = None
    search_include: frozenset[str] | None = None
    conditional_create: bool | None = None
    conditional_update: bool | None = None
    max_count: int | None = None
    search_mode: str | None = None  # GET, POST or both (SEARCH_MODE_EXTENSION)


@dataclass(frozen=True)
class Capabilities:
    """What fhirtis knows a server can do. ``None`` anywhere means unknown: try, then learn."""

    source: Literal["statement", "missing", "malformed", "assumed"]
    batch: bool | None = None
    transaction: bool | None = None
    batch_search: bool | None = None
    types: Mapping[str, TypeSupport] | None = None  # None: the types are unknown
    refused: frozenset[Refused] = frozenset()
    notes: tuple[str, ...] = ()
    software: str | None = None
    #: the HTTP status ``GET [base]/metadata`` answered where it gave no statement (a 404 there
    #: and for the patient too: the base URL is likely wrong, not the patient id)
    metadata_status: int | None = None
    #: the FHIR version the server says it serves: its statement's ``fhirVersion``, else the
    #: ``fhirVersion`` parameter of the statement's ``Content-Type``; ``DSTU2`` for a DSTU2
    #: ``Conformance`` resource that names none; None: not said (R4 assumed)
    fhir_version: str | None = None

    @property
    def release(self) -> Release | None:
        """R4, R4B or another release (:func:`fhir_release`); None: not said or not a version."""
        return None if self.fhir_version is None else fhir_release(self.fhir_version)

    # -- learning --------------------------------------------------------------------------------

    def learn(self, refused: Refused) -> Capabilities:
        """This value plus one refusal (and a note saying what was learned)."""
        if refused in self.refused:
            return self
        note = f"learned: the server {refused.describe()}"
        declared = self._declared(refused)
        if declared:
            note += " (its CapabilityStatement declares it: the statement is wrong)"
        return replace(self, refused=self.refused | {refused}, notes=(*self.notes, note))

    def _declared(self, r: Refused) -> bool:
        if r.kind == "batch":
            return self.batch is True
        if r.kind == "transaction":
            return self.transaction is True
        support = self.type_support(r.resource_type)
        if r.kind == "interaction":
            return support is not None and r.detail in (support.interactions or ())
        if r.kind == "search-param":
            return support is not None and r.detail in (support.search_params or ())
        if r.kind == "include":
            return support is not None and r.detail in (support.search_include or ())
        if r.kind == "get-search":
            return support is not None and support.search_mode in ("GET", "both")
        return False

    def _has(self, kind: RefusalKind, resource_type: str = "", detail: str = "") -> bool:
        return Refused(kind, resource_type, detail) in self.refused

    # -- questions the plans ask -----------------------------------------------------------------

    def type_support(self, resource_type: str) -> TypeSupport | None:
        return None if self.types is None else self.types.get(resource_type)

    def has_type(self, resource_type: str) -> bool:
        if self._has("type", resource_type):
            return False
        return self.types is None or resource_type in self.types

    def allows(self, resource_type: str, interaction: str) -> bool:
        """The type exists and the interaction (read, search-type, create, update, …) is not
        known to be refused."""
        if not self.has_type(resource_type) or self._has("interaction", resource_type, interaction):
            return False
        support = self.type_support(resource_type)
        return (
            support is None or support.interactions is None or interaction in support.interactions
        )

    def supports_batch(self) -> bool:
        return self.batch is not False and not self._has("batch")

    def supports_batch_search(self) -> bool:
        return (
            self.supports_batch()
            and self.batch_search is not False
            and not self._has("batch-search")
        )

    def supports_transaction(self) -> bool:
        return self.transaction is not False and not self._has("transaction")

    def search_param(self, resource_type: str, candidates: Iterable[str]) -> str | None:
        """The first of ``candidates`` the server searches ``resource_type`` by (declared, or not
        known to be refused when the statement does not list parameters)."""
        support = self.type_support(resource_type)
        for name in candidates:
            if self._has("search-param", resource_type, name):
                continue
            if support is None or support.search_params is None or name in support.search_params:
                return name
        return None

    def supports_include(self, resource_type: str, include: str) -> bool:
        if self._has("include", resource_type, include):
            return False
        support = self.type_support(resource_type)
        return (
            support is None or support.search_include is None or include in support.search_include
        )

    def searches_by_post(self, resource_type: str) -> bool:
        """Whether searches of ``resource_type`` go as ``POST [type]/_search``: the statement
        says search-mode POST, or a GET search was refused and the POST taken."""
        if self._has("get-search", resource_type):
            return True
        support = self.type_support(resource_type)
        return support is not None and support.search_mode == "POST"

    def supports_conditional_create(self, resource_type: str) -> bool:
        if self._has("conditional-create", resource_type):
            return False
        support = self.type_support(resource_type)
        return support is None or support.conditional_create is not False

    def count(self, resource_type: str, wanted: int) -> int:
        """``wanted`` within the type's published ``_count`` limit."""
        support = self.type_support(resource_type)
        limit = None if support is None else support.max_count
        return wanted if limit is None else max(1, min(wanted, limit))


def unknown(
    source: Literal["missing", "malformed", "assumed"],
    note: str,
    metadata_status: int | None = None,
) -> Capabilities:
    """Nothing known: every capability is tried and learned from refusals."""
    return Capabilities(source=source, notes=(note,), metadata_status=metadata_status)


def is_refusal(status: int | None, outcome: Mapping[str, Any] | None) -> bool:
    """A permanent "this server does not do that": 405, 501, or 400/404/422 whose
    OperationOutcome has an issue with code ``not-supported``."""
    if status in (405, 501):
        return True
    if status not in (400, 404, 422) or not isinstance(outcome, Mapping):
        return False
    issues = outcome.get("issue")
    return isinstance(issues, list) and any(
        isinstance(i, dict) and i.get("code") == "not-supported" for i in issues
    )


def is_unsupported_type(caps: Capabilities, resource_type: str, status: int | None) -> bool:
    """A search of ``resource_type`` answered a plain 404 where the server's types are unknown, or
    are known without that type: the type is not supported (R4 http.html, search: "404 Not Found -
    resource type not supported"; HAPI answers a type it has no provider of 404 with issue code
    ``processing``). Where the statement lists the type, a 404 is the server's error. The one rule
    of ``fhirtis run``'s searches and of the CDS service's prefetch batch."""
    return status == 404 and (caps.types is None or not caps.has_type(resource_type))


# -- the statement ---------------------------------------------------------------------------


def _strings(items: Any, key: str) -> frozenset[str] | None:
    if not isinstance(items, list):
        return None
    return frozenset(
        str(i[key]) for i in items if isinstance(i, dict) and isinstance(i.get(key), str)
    )


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _extensions(resource: Mapping[str, Any], url: str) -> Iterable[Mapping[str, Any]]:
    """The extensions of ``resource`` with ``url`` (objects only)."""
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == url:
            yield ext


def _search_mode(resource: Mapping[str, Any]) -> str | None:
    for ext in _extensions(resource, SEARCH_MODE_EXTENSION):
        value = ext.get("valueCode")
        if value in ("GET", "POST", "both"):
            return str(value)
    return None


def _max_count(resource: Mapping[str, Any]) -> int | None:
    for ext in _extensions(resource, MAX_COUNT_EXTENSION):
        value = ext.get("valueUnsignedInt", ext.get("valuePositiveInt"))
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _type_support(resource: Mapping[str, Any]) -> TypeSupport:
    include = resource.get("searchInclude")
    return TypeSupport(
        interactions=_strings(resource.get("interaction"), "code"),
        search_params=_strings(resource.get("searchParam"), "name"),
        search_include=(
            frozenset(str(i) for i in include if isinstance(i, str))
            if isinstance(include, list)
            else None
        ),
        conditional_create=_bool(resource.get("conditionalCreate")),
        conditional_update=_bool(resource.get("conditionalUpdate")),
        max_count=_max_count(resource),
        search_mode=_search_mode(resource),
    )


def media_type_version(content_type: str | None) -> str | None:
    """The ``fhirVersion`` parameter of a media type (``application/fhir+json;
    fhirVersion=3.0``, R4 http.html#version-parameter), if any."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "fhirversion" and value.strip().strip('"'):
            return value.strip().strip('"')
    return None


def _fhir_version(data: Mapping[str, Any], content_type: str | None) -> tuple[str | None, str]:
    """The version a statement (or a DSTU2 Conformance) says, and a note where it says none."""
    version = data.get("fhirVersion")
    if isinstance(version, str) and version.strip():
        return version.strip(), ""
    said = media_type_version(content_type)
    if said is not None:
        return said, f"the statement gives no fhirVersion; its Content-Type says fhirVersion={said}"
    if data.get("resourceType") == "Conformance":
        return "DSTU2", ""
    return None, "the CapabilityStatement gives no fhirVersion: FHIR R4 assumed"


def parse_statement(data: Any, content_type: str | None = None) -> Capabilities:
    """A CapabilityStatement (any JSON value) → Capabilities; never raises. ``content_type``:
    the answer's ``Content-Type``, whose ``fhirVersion`` parameter is read where the statement
    gives no ``fhirVersion``. A DSTU2 ``Conformance`` (the resource's name before STU3) gives its
    version only (``DSTU2`` where it names none): fhirtis reads R4 (4.0.x) and R4B (4.3.x) only."""
    if isinstance(data, dict) and data.get("resourceType") == "Conformance":
        version, _ = _fhir_version(data, content_type)
        return replace(
            unknown("malformed", "the server's /metadata is a DSTU2 Conformance resource"),
            fhir_version=version,
        )
    if not isinstance(data, dict) or data.get("resourceType") != "CapabilityStatement":
        return unknown(
            "malformed", "the server's /metadata is not a CapabilityStatement: assumed nothing"
        )
    fhir_version, version_note = _fhir_version(data, content_type)
    release = None if fhir_version is None else fhir_release(fhir_version)
    if fhir_version is not None and release is None:
        version_note = f"its fhirVersion {fhir_version!r} is no FHIR version: FHIR R4 assumed"
    elif release == "R4B":
        version_note = (
            f"the server is FHIR {release_name(fhir_version or '')}: read as R4 (R4B changed no "
            "element of the resources fhirtis reads and writes)"
        )
    if fhir_version is not None and release == "other":  # refused by the client: nothing else
        return replace(
            unknown("malformed", f"the server is FHIR {release_name(fhir_version)}"),
            source="statement",
            fhir_version=fhir_version,
        )
    rests = data.get("rest")
    rest = (
        next(
            (r for r in rests if isinstance(r, dict) and r.get("mode", "server") == "server"), None
        )
        if isinstance(rests, list)
        else None
    )
    notes: list[str] = [version_note] if version_note else []
    if rest is None:
        return replace(
            unknown("malformed", "the CapabilityStatement has no rest entry for a server"),
            notes=(*notes, "the CapabilityStatement has no rest entry for a server"),
            fhir_version=fhir_version,
        )
    interactions = rest.get("interaction")
    codes: dict[str, dict[str, Any]] = {}
    if isinstance(interactions, list):
        codes = {str(i["code"]): i for i in interactions if isinstance(i, dict) and "code" in i}
    elif interactions is not None:
        notes.append("rest.interaction is malformed: batch and transaction unknown")
    batch = transaction = batch_search = None
    if interactions is None or isinstance(interactions, list):
        batch, transaction = "batch" in codes, "transaction" in codes
        flags = [
            ext.get("valueBoolean")
            for code in ("batch", "transaction")
            for ext in _extensions(codes.get(code, {}), BATCH_SEARCH_EXTENSION)
        ]
        batch_search = False if False in flags else None
    types: dict[str, TypeSupport] | None = None
    resources = rest.get("resource")
    if isinstance(resources, list):
        types = {}
        for r in resources:
            if isinstance(r, dict) and isinstance(r.get("type"), str):
                types[r["type"]] = _type_support(r)
    else:
        notes.append("the CapabilityStatement lists no resources: every type assumed")
    software = data.get("software")
    name = software.get("name") if isinstance(software, dict) else None
    return Capabilities(
        source="statement",
        batch=batch,
        transaction=transaction,
        batch_search=batch_search,
        types=types,
        notes=tuple(notes),
        software=name if isinstance(name, str) else None,
        fhir_version=fhir_version,
    )


# -- per server ------------------------------------------------------------------------------


@dataclass
class CapabilityCache:
    """Capabilities per FHIR base URL, with what each server refused, for ``ttl`` seconds
    (then the statement is read again; what was learned is kept on top of it)."""

    ttl: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, tuple[Capabilities, float]] = field(default_factory=dict)

    def get(self, base_url: str) -> Capabilities | None:
        entry = self._entries.get(base_url)
        if entry is None or self.clock() - entry[1] > self.ttl:
            return None
        return entry[0]

    def put(self, base_url: str, caps: Capabilities) -> Capabilities:
        """Store a freshly read statement, keeping what was learned before."""
        old = self._entries.get(base_url)
        if old is not None:
            for r in sorted(old[0].refused):
                caps = caps.learn(r)
        self._entries[base_url] = (caps, self.clock())
        return caps

    def learn(self, base_url: str, refused: Refused) -> Capabilities | None:
        entry = self._entries.get(base_url)
        if entry is None:
            return None
        caps = entry[0].learn(refused)
        self._entries[base_url] = (caps, entry[1])
        return caps

    def forget(self, base_url: str | None = None) -> None:
        """Forget one server (or all): the next use reads its statement again."""
        if base_url is None:
            self._entries.clear()
        else:
            self._entries.pop(base_url, None)


#: The process-wide cache shared by every client of a server.
CACHE = CapabilityCache()
