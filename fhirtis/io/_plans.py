"""How to read and write one patient on a given server (pure: decided from its capabilities).

- :func:`read_plan`: one ``batch`` of searches when the server takes searches in a batch, else
  the same searches as individual GETs (bounded concurrency); per type the patient parameter the
  server declares (``subject`` or ``patient``), ``_include`` of the Medications (a
  DeviceUseStatement's Device) where supported (else one ``Medication?_id=a,b,…`` or
  ``Device?_id=…`` search, chunked), ``_count`` within the server's limit; a
  type the server lacks is left out. A need's narrowed second search (the Conditions not active,
  which Epic leaves out of a search without ``clinical-status``) is added where the server may
  search the type by its parameter.
- :func:`write_plan`: one ``transaction`` where supported (and conditional create with it);
  else one ``batch`` of (conditional) creates and ``If-Match`` updates; else single requests in a
  safe order (creates, updates, then the Provenance). Conditional create is used on a type
  whose statement declares it and does not leave ``identifier`` out of its search parameters
  (the If-None-Exist query is a search). Where conditional create is absent the
  create follows the search by identifier made just before (search-then-create; see
  :mod:`fhirtis.pipeline.write` for the race and how it is handled). A derived type the server
  lacks, or may not create, is not attempted: the plan says why, per type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from fhirtis.fhir.derive import NO_IDENTIFIER_SEARCH
from fhirtis.fhir.needs import NEEDS, PATIENT
from fhirtis.fhir.queries import SearchChoice
from fhirtis.io._capabilities import Capabilities

__all__ = [
    "ReadPlan",
    "WritePlanShape",
    "describe_reads",
    "describe_writes",
    "read_plan",
    "write_plan",
]

ReadMode = Literal["batch", "get"]
WriteMode = Literal["transaction", "batch", "single"]
PROVENANCE = "Provenance"


@dataclass(frozen=True)
class ReadPlan:
    mode: ReadMode
    choices: Mapping[str, SearchChoice | None]  # per needed type; None: not searched
    skipped: Mapping[str, str] = field(default_factory=dict)  # type → why it is not read
    medications_by_id: bool = False  # some Medications are resolved by Medication?_id=…
    patient_read: bool = True


@dataclass(frozen=True)
class WritePlanShape:
    mode: WriteMode
    conditional_create: Mapping[str, bool]  # per writable type
    not_written: Mapping[str, str]  # type → "the server does not support Flag", …
    provenance: bool  # a Provenance can be written


def read_plan(caps: Capabilities, page_size: int) -> ReadPlan:
    choices: dict[str, SearchChoice | None] = {}
    skipped: dict[str, str] = {}
    by_id = False
    for need in NEEDS:
        rtype = need.resource_type
        if not caps.has_type(rtype):
            choices[rtype], skipped[rtype] = None, f"the server does not support {rtype}"
            continue
        if not caps.allows(rtype, "search-type"):
            choices[rtype], skipped[rtype] = None, f"the server does not search {rtype}"
            continue
        param = caps.search_param(rtype, need.patient_params)
        if param is None:
            choices[rtype] = None
            skipped[rtype] = (
                f"the server searches {rtype} by none of {', '.join(need.patient_params)}"
            )
            continue
        include = need.include is not None and caps.supports_include(rtype, need.include)
        by_id = by_id or (need.included_type == "Medication" and not include)
        # the narrowed second search (the Conditions not active, which Epic leaves out of a
        # search without clinical-status) where the server declares its parameter, or does not
        # list its parameters (tried; a refusal is learned)
        also = need.also is not None and caps.search_param(rtype, (need.also.param,)) is not None
        choices[rtype] = SearchChoice(param, include, caps.count(rtype, page_size), also)
    mode: ReadMode = "batch" if caps.supports_batch_search() else "get"
    return ReadPlan(mode, choices, skipped, by_id)


def write_plan(caps: Capabilities, types: Iterable[str]) -> WritePlanShape:
    """The shape of writes for derived resources of ``types`` (a Provenance is added)."""
    not_written: dict[str, str] = {}
    conditional: dict[str, bool] = {}
    for rtype in sorted(set(types) | {PROVENANCE}):
        if not caps.has_type(rtype):
            not_written[rtype] = f"the server does not support {rtype}"
        elif not caps.allows(rtype, "create"):
            not_written[rtype] = f"the server does not allow creating {rtype}"
        else:
            # a derived resource's If-None-Exist query is a search (R4 http.html#ccreate): by
            # identifier, except for the types found by their own match query (the Provenance
            # is posted without one)
            conditional[rtype] = caps.supports_conditional_create(rtype) and (
                rtype in NO_IDENTIFIER_SEARCH
                or rtype == PROVENANCE
                or caps.search_param(rtype, ("identifier",)) is not None
            )
    mode: WriteMode
    derived_conditional = all(v for t, v in conditional.items() if t != PROVENANCE)
    if caps.supports_transaction() and derived_conditional:
        mode = "transaction"
    elif caps.supports_batch():
        mode = "batch"
    else:
        mode = "single"
    provenance = PROVENANCE in conditional
    return WritePlanShape(mode, conditional, not_written, provenance)


def describe_reads(caps: Capabilities, page_size: int) -> list[str]:
    """How fhirtis reads a patient on this server, in lines of text."""
    reads = read_plan(caps, page_size)
    source = f"capabilities: from {caps.source}"
    lines = [source + (f" ({caps.software})" if caps.software else "")]
    lines += [f"  note: {n}" for n in caps.notes]
    how = (
        "one batch of searches"
        if reads.mode == "batch"
        else "individual GETs (bounded concurrency)"
    )
    lines.append(f"read plan: {how}")
    lines.append(f"  {PATIENT}: read by id")
    for need in NEEDS:
        choice = reads.choices.get(need.resource_type)
        if choice is None:
            lines.append(f"  {need.resource_type}: not read ({reads.skipped[need.resource_type]})")
            continue
        extra = ""
        if need.include is not None:
            target = need.included_type
            extra = (
                f", _include={need.include}" if choice.include else f", {target}s by {target}?_id="
            )
        if need.also is not None and choice.also:
            extra += f"; also {need.also.query}"
        lines.append(
            f"  {need.resource_type}: by {choice.patient_param}, _count={choice.count}{extra}"
        )
    return lines


def describe_writes(caps: Capabilities, derived_types: Iterable[str]) -> list[str]:
    """How fhirtis writes derived resources to this server, and what it cannot write there."""
    writes = write_plan(caps, derived_types)
    mode = {
        "transaction": "one transaction (conditional creates, If-Match updates, one Provenance)",
        "batch": "one batch of creates and If-Match updates, then one Provenance",
        "single": "single requests: creates, If-Match updates, then one Provenance",
    }[writes.mode]
    lines = [f"write plan: {mode}"]
    for rtype, conditional in sorted(writes.conditional_create.items()):
        how_create = "conditional create" if conditional else "search-then-create"
        lines.append(f"  {rtype}: {how_create}")
    if writes.not_written:
        lines.append("cannot write:")
        lines += [f"  {t}: {why}" for t, why in sorted(writes.not_written.items())]
    return lines
