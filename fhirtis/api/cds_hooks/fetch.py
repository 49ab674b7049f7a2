"""Reading what prefetch lacked from the caller's FHIR server (only one on the allow-list)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import Request

from fhirtis.api.cds_hooks.request import CdsError, HookCall, not_the_latest
from fhirtis.api.errors import ApiError
from fhirtis.fhir.needs import CAN_GO_WITHOUT, NEEDS
from fhirtis.io import (
    BearerTokenAuth,
    FhirClient,
    FhirClientError,
    FhirServerError,
    Forbidden,
    NotFound,
    Refused,
    UnsupportedFhirVersion,
    answer_problem,
    is_refusal,
    is_unsupported_type,
    searchset_problem,
)
from fhirtis.pipeline.pull import NOT_RUN, page_gone, short_of_total
from fhirtis.pipeline.server import (
    Learned,
    batch_of_reads,
    entry_ok,
    entry_outcome,
    entry_status,
    pull_types,
    read_by_id,
    status_for,
)
from fhirtis.settings import Settings

if TYPE_CHECKING:
    from fhirtis.api.app import ServiceState

log = logging.getLogger("fhirtis.api.cds")
Json = dict[str, Any]

# How long the reads may take: the call's own deadline (``cds.deadline_seconds``), one for every
# stage of a call together (service.py); each FHIR request is bounded by
# ``service.fhir_wait_seconds`` too.


@contextmanager
def waiting_on_the_fhir_server(request: Request) -> Iterator[None]:
    """Marks the call as waiting on the FHIR server while inside: a deadline met there is the
    FHIR server's (504 ``fhir-server-timeout``); the mark stays when the reads raise."""
    request.state.cds_waiting_on_fhir = True
    yield
    request.state.cds_waiting_on_fhir = False


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


@dataclass(frozen=True)
class Fetched:
    """What :func:`fetch_missing` read: per URL, or per resource where the searches' types were
    read as the server allows, its result (a resource, a searchset with every wanted page
    merged into ``entry``, or None for a 404 Medication read); the types the server offers no
    search of (each with why); the types read as the server allows whose search said, in
    its own OperationOutcome, that only part of the matches came back (a searchset read in one
    batch keeps its outcome: the caller checks it); and the types the evaluation can go
    without (:data:`~fhirtis.fhir.needs.CAN_GO_WITHOUT`) that the server refused to the token
    (403: its scope does not cover them), not read."""

    results: list[tuple[str, Json | None]]
    not_read: dict[str, str] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)


async def fetch_missing(
    request: Request, server: str, token: str, urls: Sequence[tuple[str, bool]], patient_id: str
) -> Fetched:
    """Read each URL with the caller's token (:class:`Fetched`). One batch where the server
    takes searches in a batch (or is not yet known not to); else, and when it refuses them, the
    searches' types are read as ``fhirtis run`` reads them (individual searches, its
    parameters, no ``_include``: :func:`pull_types`), the reads one by one. A search the
    server refuses 403 of a type the evaluation can go without is left out (``forbidden``);
    any other refusal is 412 (CDS Hooks 2.0, "HTTP Status Codes": the service "is unable to
    retrieve the necessary FHIR data ... directly calling the FHIR server")."""
    state = request.app.state.fhirtis
    client = _with_token(state, server, token)
    forbidden: set[str] = set()
    try:
        with waiting_on_the_fhir_server(request):
            await _check_fhir_version(client)
            known = client.cached_capabilities()
            if known is None or known.supports_batch_search():
                try:
                    results = await _in_one_batch(client, urls, forbidden)
                    return Fetched(results, forbidden=sorted(forbidden))
                except Learned as learned:
                    await client.capabilities()  # the statement first: what it says still holds
                    client.learn(learned.refused)
                except _SearchRefusedError:
                    pass  # read as the server allows: what it refuses is learned there
                except Forbidden as exc:
                    if _type_in(exc, server) is not None:
                        raise
                    # the batch itself refused (HAPI's AuthorizationInterceptor refuses a whole
                    # batch 403 without a transaction rule, or for one entry it denies): the
                    # searches one by one, each refusal weighed on its own
                    await client.capabilities()
                    client.learn(Refused("batch-search"))
            return await _as_the_server_allows(client, urls, patient_id, state.settings, forbidden)
    except TimeoutError:
        raise _timed_out() from None
    except FhirClientError as exc:
        raise _failed(exc, server) from None
    finally:
        await client.aclose()


async def _check_fhir_version(client: FhirClient) -> None:
    """Refuse a ``fhirServer`` whose CapabilityStatement says another FHIR release than R4
    (:class:`UnsupportedFhirVersion`, answered 412 by :func:`_failed`) before any of the
    patient's data is read from it. A statement that cannot be read changes nothing: the reads
    go on as before (what the server cannot do is learned from its answers)."""
    try:
        await client.capabilities()
    except UnsupportedFhirVersion:
        raise
    except FhirClientError as exc:
        log.info("cds: the FHIR server's CapabilityStatement was not read: %s", type(exc).__name__)


def _timed_out() -> CdsError:
    """A FHIR request that passed its own bound (``service.fhir_wait_seconds``)."""
    return CdsError(504, "fhir-server-timeout", "the FHIR server did not answer in time")


def _failed(exc: FhirClientError, server: str) -> CdsError:
    """The answer to a read of the FHIR server that failed: 412 where it refused (401, 403,
    404: the data cannot be obtained), else the server's failure (502, 504)."""
    log.warning("cds: reading from the FHIR server failed: %s", type(exc).__name__)
    if isinstance(exc, UnsupportedFhirVersion):  # CDS Hooks 2.0: the data cannot be obtained
        return CdsError(412, "precondition-failed", str(exc))
    code = status_for(exc)
    if code < 500:
        rtype = _type_in(exc, server)
        what = "the reads" if rtype is None else f"the read of {rtype}"
        return CdsError(
            412, "precondition-failed", f"the FHIR server refused ({code}) {what} the service needs"
        )
    return CdsError(code, "fhir-server-failed", "the FHIR server failed")


async def fetch_referenced(
    request: Request, server: str, token: str, refs: Sequence[str]
) -> tuple[list[Json], list[str]]:
    """The resources that ``refs`` (``Type/id``: the Medications and Devices that the patient's
    resources name but that a search's ``_include`` did not bring, CDS Hooks 2.0 "Prefetch
    Template": the service retrieves "any additional necessary data") that ``server`` holds,
    read by id with the caller's token (:func:`~fhirtis.pipeline.pull.read_by_id`, as
    ``fhirtis run`` reads the ones its searches did not include); and the types among them that
    the evaluation can go without that the server refused 403 (not read). Ids the server does
    not know are left out; any other failure is answered as :func:`fetch_missing`'s."""
    state = request.app.state.fhirtis
    client = _with_token(state, server, token)
    by_type: dict[str, list[str]] = {}
    for ref in refs:
        rtype, _, rid = ref.partition("/")
        by_type.setdefault(rtype, []).append(rid)
    found: list[Json] = []
    forbidden: list[str] = []
    try:
        with waiting_on_the_fhir_server(request):
            await _check_fhir_version(client)
            for rtype, ids in sorted(by_type.items()):
                try:
                    found += await read_by_id(client, rtype, ids, {})
                except Forbidden:
                    if rtype not in CAN_GO_WITHOUT:
                        raise
                    forbidden.append(rtype)
    except TimeoutError:
        raise _timed_out() from None
    except FhirClientError as exc:
        raise _failed(exc, server) from None
    finally:
        await client.aclose()
    return found, forbidden


def _type_in(exc: FhirClientError, server: str) -> str | None:
    """The resource type of the request a FHIR server refused (its URL is ``[base]/Type…``;
    a page of a search, ``[base]?_getpages=…``, names none)."""
    url = exc.url if isinstance(exc, FhirServerError) else ""
    base = server.rstrip("/") + "/"
    if not url.startswith(base):
        return None
    rtype = url[len(base) :].split("?", 1)[0].split("/", 1)[0]
    return rtype if rtype.isalpha() and rtype[:1].isupper() else None


def _can_go_without(url: str) -> str | None:
    """The type of a search the evaluation can go without, else None."""
    rtype = url.split("?", 1)[0]
    return rtype if "?" in url and rtype in CAN_GO_WITHOUT else None


class _SearchRefusedError(Exception):
    """A search in the batch was refused 400 or 422 (any issue code), or answered 404 on a type
    the server lists (a batch that runs no searches): the searches are read as the server
    allows (:func:`pull_types` sends a search its batch refuses alone first, then each without
    what a server may refuse: its ``_include``, its patient parameter, the ``clinical-status``
    of the Conditions not active, and learns what was refused)."""


async def _in_one_batch(
    client: FhirClient, urls: Sequence[tuple[str, bool]], forbidden: set[str]
) -> list[tuple[str, Json | None]]:
    """The URLs in one batch, every wanted page followed (a "latest n" search whose first page
    may not be the latest, the server having ignored its ``_sort``, is read whole:
    :func:`_whole_search`). :class:`Learned`: the server refused the batch, or a search
    inside it (then searched as the server allows); a search answered a plain 404 where the
    server's types are unknown, or are known without the searched one, teaches that the type
    is not supported (:func:`is_unsupported_type`, as ``fhirtis run`` reads it).
    :class:`_SearchRefusedError`: a search refused 400 or 422. A search answered 403 of a
    type the evaluation can go without is left out, its type added to ``forbidden`` (also
    when the batch is then read as the server allows)."""
    responses = await batch_of_reads(client, [url for url, _ in urls])
    # entries the server skipped (429/503: Azure answers every entry after a throttled one so),
    # each read on its own, with the client's retries, as ``fhirtis run`` reads them
    responses = list(
        await asyncio.gather(
            *(
                _again_if_not_run(client, url, entry)
                for (url, _), entry in zip(urls, responses, strict=True)
            )
        )
    )
    for (url, _), entry in zip(urls, responses, strict=True):
        rtype = _can_go_without(url)
        if rtype is not None and entry_status(entry) == 403:
            forbidden.add(rtype)
    out: list[tuple[str, Json | None]] = []
    for (url, all_pages), entry in zip(urls, responses, strict=True):
        if _can_go_without(url) in forbidden:
            continue
        status, resource = entry_status(entry), entry.get("resource")
        if status == 404 and url.startswith("Medication/"):
            out.append((url, None))  # the order's medication stays unidentified
            continue
        if "?" in url and is_refusal(status, entry_outcome(entry)):
            raise Learned(Refused("batch-search"))  # searched as the server allows instead
        rtype = url.split("?", maxsplit=1)[0]
        if (
            "?" in url
            and status == 404
            and is_unsupported_type(await client.capabilities(), rtype, status)
        ):
            raise Learned(Refused("type", rtype))  # the others read as the server allows
        if "?" in url and status in (400, 404, 422):
            # a 404 on a type the server lists: a search its batch does not run (a search URL
            # read as a resource address, HeliosSoftware/hfs#478) or that it refuses alone too
            raise _SearchRefusedError
        if not entry_ok(entry) or not isinstance(resource, dict):
            code = status or 502
            raise CdsError(
                502 if code >= 500 else 412,
                "fhir-server-failed" if code >= 500 else "precondition-failed",
                f"the FHIR server answered {status or 'nothing'} to the read of "
                f"{url.split('?', 1)[0].split('/', 1)[0]} the service needs",
            )
        _check_answer(url, resource)
        if resource.get("resourceType") == "Bundle" and searchset_problem(resource) is not None:
            # read as "no matches", it would hide the patient's data
            raise CdsError(502, "fhir-server-failed", "the FHIR server answered a malformed Bundle")
        if (
            not all_pages
            and resource.get("resourceType") == "Bundle"
            and not_the_latest(resource) is not None
        ):
            resource = await _whole_search(client, url, resource)
        elif all_pages and resource.get("resourceType") == "Bundle":
            pages = await _every_page(client, url, resource)
            merged = [e for page in pages for e in page.get("entry") or []]
            short = short_of_total(pages)
            if short is not None:  # pages that ended before their total: said as partial
                merged.append({"resource": short, "search": {"mode": "outcome"}})
            resource = {**resource, "entry": merged}
        out.append((url, resource))
    return out


async def _again_if_not_run(client: FhirClient, url: str, entry: Json) -> Json:
    """``entry`` of a batch-response, or, where the server did not run it (answered 429 or 503:
    microsoft/fhir-server PR #1658, "all subsequent actions will be skipped and will have the
    same 429 response"), ``url`` read on its own (retried as any 429 or 503 is), as an entry:
    its answer, or the status and OperationOutcome it was refused with."""
    if entry_status(entry) not in NOT_RUN:
        return entry
    try:
        response = await client.request("GET", url)
    except FhirServerError as exc:
        if exc.status is None:
            raise
        refused: Json = {"status": str(exc.status)}
        if exc.operation_outcome is not None:
            refused["outcome"] = exc.operation_outcome
        return {"response": refused}
    answered: Json = {"response": {"status": str(response.status)}}
    if response.body is not None:
        answered["resource"] = response.body
    return answered


async def _every_page(client: FhirClient, url: str, first: Json) -> list[Json]:
    """The pages of the search ``url``: ``first`` (a batch entry's) and every page after it;
    where a later page is gone (:func:`~fhirtis.pipeline.pull.page_gone`: HAPI FHIR answers 410
    a ``next`` link of a paging session it dropped), the search sent again, once, as a GET,
    every page (as ``fhirtis run`` does); the pages read before are dropped."""
    pages = [first]
    try:
        async for page in client.following_pages(first):
            pages.append(page)
    except FhirServerError as exc:
        if not page_gone(exc):
            raise
        log.info("cds: a later page of a search was gone (HTTP %s): sent again", exc.status)
        rtype, _, query = url.partition("?")
        params = parse_qsl(query, keep_blank_values=True)
        pages = [page async for page in client.search_bundle_pages(rtype, params)]
    return pages


async def _whole_search(client: FhirClient, url: str, first: Json) -> Json:
    """A "latest n" search whose first page may not be the latest (:func:`not_the_latest`),
    read whole, in pages of the configured size rather than its ``_count`` of n: the evaluation
    takes the latest of every match."""
    rtype, _, query = url.partition("?")
    params = [(name, value) for name, value in parse_qsl(query) if name != "_count"]
    entries: list[Json] = []
    async for page in client.search_bundle_pages(rtype, params):
        entries.extend(page.get("entry") or [])
    links = [
        x for x in first.get("link") or [] if isinstance(x, dict) and x.get("relation") != "next"
    ]
    return {**first, "link": links, "entry": entries}  # every page: no next


async def _as_the_server_allows(
    client: FhirClient,
    urls: Sequence[tuple[str, bool]],
    patient_id: str,
    settings: Settings,
    forbidden: set[str],
) -> Fetched:
    """The searches' types read as ``fhirtis run`` reads them (every page: a "latest n" search
    gets all its type's resources, of which the evaluation takes the latest), the reads one by
    one; with the types the server offers no search of (as ``fhirtis run``, the evaluation
    goes on without them, and the cards say so) and those whose search was answered in part.
    A type the evaluation can go without that the server refuses 403 (``forbidden``: known
    from the batch, or learned here) is left out, and the others read again; so is a type whose
    search brings it (a DeviceUseStatement's Device, read by id)."""
    types = sorted({url.split("?", 1)[0] for url, _ in urls if "?" in url} - forbidden)
    out: list[tuple[str, Json | None]] = []
    skipped: dict[str, str] = {}
    incomplete: list[str] = []
    while types:
        try:
            pulled = await pull_types(client, patient_id, settings, types)
        except Forbidden as exc:
            refused = _type_in(exc, client.config.base_url)
            dropped = {
                n.resource_type
                for n in NEEDS
                if refused in CAN_GO_WITHOUT and refused in (n.resource_type, n.included_type)
            } & set(types)
            if refused is None or not dropped:
                raise
            forbidden.update({refused, *dropped})
            types = [t for t in types if t not in dropped]
            continue
        out += [(f"{r.get('resourceType')}/{r.get('id')}", r) for r in pulled.resources]
        skipped, incomplete = pulled.skipped, pulled.incomplete
        break
    for url in (url for url, _ in urls if "?" not in url):
        try:
            response = await client.request("GET", url)
        except NotFound:
            if url.startswith("Medication/"):
                out.append((url, None))  # the order's medication stays unidentified
                continue
            raise
        _check_answer(url, response.body or {})
        out.append((url, response.body))
    return Fetched(out, skipped, incomplete, sorted(forbidden))


def _check_answer(url: str, resource: Json) -> None:
    """A read must answer the resource read, a search a searchset Bundle
    (:func:`~fhirtis.io.answer_problem`): 502 for anything else. Redox's 200 OperationOutcome,
    taken for the Patient, left the patient without a birth date, and the cards said nothing of
    the failed read."""
    read_of = None if "?" in url else url.split("/", maxsplit=1)[0]
    problem = answer_problem(resource, read_of)
    if problem is not None:
        what = "a search" if read_of is None else f"a {read_of} read"
        raise CdsError(
            502,
            "fhir-server-failed",
            f"the FHIR server answered {what} the service needs with {problem}",
        )


def _with_token(state: ServiceState, server: str, token: str) -> FhirClient:
    """A client of ``server`` that sends the CDS client's token (``fhirAuthorization``)."""
    return FhirClient(
        state.config_for(server),
        http=state.http_for(server),
        auth=BearerTokenAuth(token, base_url=server),
    )
