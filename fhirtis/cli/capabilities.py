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
from fhirtis.fhir.needs import NEEDS
from fhirtis.io import (
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

    How it reads a patient, how it writes derived resources, and what it cannot write there.
    Exit 0, 1 when the server cannot be reached, 2 for bad usage."""
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
        reader = await client.capabilities()
        writer = client.writer()
        caps = reader if writer is client else await writer.capabilities()
    lines = describe_reads(reader, config.page_size)
    if writer is not client:
        lines.append(f"writes go to {config.write_base_url} (capabilities: from {caps.source})")
    lines += describe_writes(caps, DERIVED_TYPES)
    reads = read_plan(reader, config.page_size)
    also = {n.resource_type: n.also.query for n in NEEDS if n.also is not None}
    writes = write_plan(caps, DERIVED_TYPES)
    record: dict[str, object] = {
        "server": config.base_url,
        "write_server": config.write_base_url or config.base_url,
        "source": reader.source,
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
    }
    return lines, record
