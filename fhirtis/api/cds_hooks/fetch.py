"""Reading what prefetch lacked from the caller's FHIR server (only one on the allow-list)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import Request

from fhirtis.api.cds_hooks.request import CdsError, HookCall
from fhirtis.api.errors import ApiError
from fhirtis.io import BearerTokenAuth, FhirClient, FhirClientError
from fhirtis.pipeline.server import status_for

log = logging.getLogger("fhirtis.api.cds")
Json = dict[str, Any]

FETCH_BUDGET_SECONDS = 10.0  # reading what prefetch lacked; a CDS client will not wait longer

# --------------------------------------------------------------------------------------------
# reading what prefetch lacked


def reader(request: Request, call: HookCall) -> tuple[str, str] | str:
    """(allowed FHIR base, access token) to read with, or why the service cannot read."""
    if call.fhir_server is None or call.access_token is None:
        return "the request has no fhirServer with fhirAuthorization to read them"
    try:
        server: str = request.app.state.fhirtis.server_for(call.fhir_server)
    except ApiError:
        return "fhirServer is not a FHIR server this service may read (not on its allow-list)"
    return server, call.access_token


async def fetch_missing(
    request: Request, server: str, token: str, urls: Sequence[tuple[str, bool]]
) -> list[tuple[str, Json | None]]:
    """GET each URL (one batch) with the caller's token; per URL its result (a resource, a
    searchset with every wanted page merged into ``entry``, or None for a 404 read)."""
    state = request.app.state.fhirtis
    client = FhirClient(
        state.config_for(server), http=state.http, auth=BearerTokenAuth(token, base_url=server)
    )
    out: list[tuple[str, Json | None]] = []
    try:
        async with asyncio.timeout(FETCH_BUDGET_SECONDS):
            entries = [{"request": {"method": "GET", "url": url}} for url, _ in urls]
            batch = await client.batch(entries)
            responses = batch.get("entry") or []
            if batch.get("resourceType") != "Bundle" or len(responses) != len(entries):
                raise CdsError(502, "fhir-server-failed", "the FHIR server's batch is incomplete")
            for (url, all_pages), entry in zip(urls, responses, strict=True):
                status = str((entry.get("response") or {}).get("status", ""))
                resource = entry.get("resource")
                if status.startswith("404") and url.startswith("Medication/"):
                    out.append((url, None))  # the order's medication stays unidentified
                    continue
                if not status.startswith("2") or not isinstance(resource, dict):
                    code = int(status[:3]) if status[:3].isdigit() else 502
                    raise CdsError(
                        502 if code >= 500 else 412,
                        "fhir-server-failed" if code >= 500 else "precondition-failed",
                        f"the FHIR server answered {status or 'nothing'} to a read the service "
                        "needs",
                    )
                if all_pages and resource.get("resourceType") == "Bundle":
                    merged = list(resource.get("entry") or [])
                    async for page in client.following_pages(resource):
                        merged.extend(page.get("entry") or [])
                    resource = {**resource, "entry": merged}
                out.append((url, resource))
    except TimeoutError:
        raise CdsError(
            504, "fhir-server-timeout", "the FHIR server did not answer in time"
        ) from None
    except FhirClientError as exc:
        log.warning("cds: reading from the FHIR server failed: %s", type(exc).__name__)
        code = status_for(exc)
        if code < 500:  # 401, 403, 404: the data cannot be obtained
            raise CdsError(
                412, "precondition-failed", "the FHIR server refused the reads the service needs"
            ) from None
        raise CdsError(code, "fhir-server-failed", "the FHIR server failed") from None
    finally:
        await client.aclose()
    return out
