"""``fhirtis capabilities``: what fhirtis will do with a FHIR server (read plan, write plan, what
it cannot write), decided from the server's CapabilityStatement."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from fhirtis.cli._common import (
    err_console,
    fhir_config,
    problem_text,
    report_console,
    settings_for_server,
    usage_error,
)
from fhirtis.fhir.derive import DERIVED_TYPES
from fhirtis.fhir.needs import NEEDS, export_types
from fhirtis.io import (
    Authorization,
    FhirClient,
    FhirClientConfig,
    FhirClientError,
    describe_reads,
    describe_writes,
    read_plan,
    write_plan,
)


def capabilities(
    server: Annotated[
        str | None, typer.Option("--server", help="FHIR base URL (else FHIRTIS_FHIR__BASE_URL).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="Settings file (TOML or JSON).")
    ] = None,
) -> None:
    """What fhirtis will do with a FHIR server, from its CapabilityStatement.

    How it reads a patient, how it writes derived resources, and what it cannot write there;
    with fhirtis's own credentials, the SMART scope syntax the server advertises and the
    scopes its token was granted.
    Exit 0, 1 when the server cannot be reached or serves another FHIR release than R4, 2 for
    bad usage."""
    try:
        config = fhir_config(settings_for_server(settings_file, server), server)
        if config is None:
            raise ValueError("no FHIR server: give --server or FHIRTIS_FHIR__BASE_URL")
    except (ValueError, FileNotFoundError) as exc:
        raise usage_error("capabilities", problem_text(exc)) from None
    try:
        lines, record = asyncio.run(_describe(config))
    except FhirClientError as exc:
        err_console().print(f"fhirtis capabilities: {exc}", markup=False)
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(orjson.dumps(record).decode() + "\n")
    else:
        for line in lines:
            report_console().print(line, markup=False, highlight=False)


async def _describe(config: FhirClientConfig) -> tuple[list[str], dict[str, object]]:
    async with FhirClient(config) as client:
        # asked now (never a statement cached by an earlier use in this process), so that the
        # token its request needs shows what the server grants today
        reader = await client.capabilities(refresh=True)
        writer = client.writer()
        caps = reader if writer is client else await writer.capabilities(refresh=True)
        read_auth = client.authorization()
        write_auth = read_auth if writer is client else writer.authorization()
    version = reader.fhir_version or "not said (FHIR R4 assumed)"
    lines = [f"FHIR version: {version}", *describe_reads(reader, config.page_size)]
    if writer is not client:
        lines.append(f"writes go to {config.write_base_url} (capabilities: from {caps.source})")
    lines += describe_writes(caps, DERIVED_TYPES)
    lines += _describe_authorization("reads", read_auth, _READ_TYPES, "rs")
    if writer is not client:
        lines += _describe_authorization("writes", write_auth, _WRITE_TYPES, "cud")
    reads = read_plan(reader, config.page_size)
    also = {n.resource_type: n.also.query for n in NEEDS if n.also is not None}
    writes = write_plan(caps, DERIVED_TYPES)
    record: dict[str, object] = {
        "server": config.base_url,
        "write_server": config.write_base_url or config.base_url,
        "source": reader.source,
        "fhir_version": reader.fhir_version,
        "notes": list(reader.notes),
        "read": {
            "mode": reads.mode,
            "searches": {
                t: None
                if c is None
                else {
                    "patient": c.patient_param,
                    "include": c.include,
                    "count": c.count,
                    # the second, narrowed search of the type (the Conditions not active)
                    "also": also[t] if c.also and also.get(t) else None,
                }
                for t, c in reads.choices.items()
            },
            "not_read": dict(reads.skipped),
        },
        "write": {
            "mode": writes.mode,
            "conditional_create": dict(writes.conditional_create),
            "not_written": dict(writes.not_written),
        },
        "authorization": _authorization_record(read_auth, _READ_TYPES, "rs"),
        "write_authorization": _authorization_record(write_auth, _WRITE_TYPES, "cud")
        if writer is not client
        else None,
    }
    return lines, record


#: What an evaluation reads (a patient's data, then fhirtis's earlier output and its
#: Provenances) and what writing back writes, by SMART resource type.
_READ_TYPES = tuple(dict.fromkeys([*export_types(), *DERIVED_TYPES, "Provenance"]))
_WRITE_TYPES = tuple(dict.fromkeys([*DERIVED_TYPES, "Provenance"]))


def _lacking(auth: Authorization, types: tuple[str, ...], letters: str) -> list[str]:
    """The types the token cannot read (``rs``) or write (``cud``; Provenance is only created
    and updated, ``cu``)."""
    if letters == "rs":
        return auth.types_not_granted(types, "rs")
    lacking = auth.types_not_granted([t for t in types if t != "Provenance"], "cud")
    return lacking + auth.types_not_granted(["Provenance"], "cu")


def _describe_authorization(
    what: str, auth: Authorization | None, types: tuple[str, ...], letters: str
) -> list[str]:
    if auth is None:
        return []
    advertised = {
        "v1": "SMART v1 only (permission-v1: system/Observation.read)",
        "v2": "SMART v2 only (permission-v2: system/Observation.rs)",
        "v1 and v2": "SMART v1 and v2 (permission-v1, permission-v2)",
        "not advertised": "neither permission-v1 nor permission-v2 advertised",
        "unknown": "not known (the SMART configuration was not read)",
    }[auth.scope_syntax]
    lines = [
        f"authorization for {what}: token endpoint from {auth.source}; scope syntax: {advertised}",
        f"  scopes asked: {auth.scopes_asked}",
    ]
    if auth.scopes_granted is None:
        lines.append("  scopes granted: not said by the token response")
    else:
        lines.append(f"  scopes granted: {auth.scopes_granted or '(none)'}")
    if auth.not_granted:
        lines.append(f"  asked, not granted: {' '.join(auth.not_granted)}")
    lacking = _lacking(auth, types, letters)
    if lacking:
        verb = "read" if letters == "rs" else "write"
        lines.append(f"  the token cannot {verb}: {', '.join(lacking)}")
    return lines


def _authorization_record(
    auth: Authorization | None, types: tuple[str, ...], letters: str
) -> dict[str, object] | None:
    if auth is None:
        return None
    return {
        "token_endpoint_from": auth.source,
        "scope_syntax": auth.scope_syntax,
        "scopes_supported": list(auth.scopes_supported)
        if auth.scopes_supported is not None
        else None,
        "scopes_asked": auth.scopes_asked,
        "scopes_granted": auth.scopes_granted,
        "not_granted": list(auth.not_granted),
        "types_not_granted": _lacking(auth, types, letters),
    }
