"""Read one patient's resources the way the server allows: its read plan (one batch of searches
or individual GETs, by GET or ``POST _search``, ``_include`` or Medications and Devices by id),
every page followed, learning from refusals and planning again.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fhirtis.fhir.bundle import (
    PatientResources,
    absolute_step_refs,
    alias_references,
    on_base,
    substance_refs_of,
)
from fhirtis.fhir.derive import NO_IDENTIFIER_SEARCH, Derived
from fhirtis.fhir.extract import merged_message, patient_refs, replaced_by
from fhirtis.fhir.needs import NEEDS, Need
from fhirtis.fhir.outcome import Issue, issue_texts
from fhirtis.fhir.primitives import instant_or_none, is_id
from fhirtis.fhir.queries import (
    by_id_urls,
    existing_by_patient_urls,
    existing_urls,
    patient_read_urls,
)
from fhirtis.fhir.resource_types import KNOWN_RESOURCE_TYPES, NOT_A_RESOURCE_TYPE
from fhirtis.io import (
    Capabilities,
    FhirClient,
    FhirServerError,
    MalformedResponse,
    NotFound,
    Refused,
    answer_problem,
    is_refusal,
    is_unsupported_type,
    read_plan,
    searchset_problem,
)
from fhirtis.pipeline.answers import (
    Learned,
    MergedPatient,
    PullError,
    entry_ok,
    entry_outcome,
    entry_status,
)
from fhirtis.pipeline.offline import extractor_for
from fhirtis.settings import Settings

Json = dict[str, Any]
log = logging.getLogger("fhirtis.pipeline.pull")


MAX_LEARN = 6  # refusals learned while reading or writing one patient (each changes the plan)
#: Statuses of a batch entry that was not run: throttled (429) or unavailable (503). Azure's FHIR
#: server answers every entry after a throttled one 429 (microsoft/fhir-server PR #1658).
NOT_RUN = frozenset({429, 503})
EXISTING_NEED = Need("existing", "", ("identifier",))
IMMUNE_GLOBULIN_WORDS = ("globulin", "ivig", "igiv", "immunoglobulin")


#: IssueTypes of a searchset's outcome that say matches may be missing (R4 valueset-issue-type:
#: the ``security`` and ``transient`` families, e.g. ``suppressed``: "not returned due to
#: business rules, consent or privacy rules, or access permission constraints", and
#: ``too-costly``). An outcome that only says nothing matched (Epic's 4101 "Resource request
#: returns no results.", warning ``processing``; R4's example, ``not-found``) is not one.
_PARTIAL_CODES = frozenset(
    {
        *("security", "login", "unknown", "expired", "forbidden", "suppressed"),
        *("transient", "lock-error", "no-store", "exception", "timeout", "incomplete"),
        *("throttled", "too-costly"),
    }
)

#: A warning that only the ``_include``d resources were cut short, the matches all returned:
#: Azure's FHIR service past its include limit (microsoft/fhir-server: warning ``incomplete``,
#: "Included items are truncated. Use the related link in the response to retrieve all
#: included items."). A server pull reads every referenced Medication and Device it lacks by
#: id afterwards, reporting those it cannot read, so nothing is left unsaid by ignoring it.
_TRUNCATED_INCLUDES = re.compile(r"\bincluded (?:items|resources)\b.*\btruncated\b", re.I | re.S)


#: Epic's own outcome codes (``details.coding`` under an Epic OID, ``urn:oid:1.2.840.114350.``)
#: that say the answer may lack part of the record, whatever its IssueType: 4119, "Additional
#: data may be present for patient" (api.enablemyhealth.com/Errors; sent as a warning of code
#: ``processing``: "It may not contain the entire record available in the system.").
_EPIC_OID = "urn:oid:1.2.840.114350."
_EPIC_PARTIAL = frozenset({"4119"})


#: Words of a searchset issue that says matches were left out, whatever its IssueType: InteliChart's
#: warning ``required`` "Additional search results were found but could not be compliantly
#: expressed and have been suppressed." (fhirqa.intelichart.com/Help/ErrorCodes); Oracle Health's
#: inline outcome "about the omitted resources" of a search Bundle it left noncompliant ones out
#: of (Oracle Health AI Application Suite FHIR change log, "Search Bundle Error Handling").
_WITHHELD_WORDS = re.compile(r"\b(?:suppressed|withheld|omitted)\b", re.I)


def _says_withheld(issue: Json) -> bool:
    return any(_WITHHELD_WORDS.search(t) is not None for t in issue_texts(issue))


def _epic_partial(issue: Json) -> bool:
    details = issue.get("details")
    codings = details.get("coding") if isinstance(details, dict) else None
    return any(
        isinstance(c, dict)
        and str(c.get("system")).startswith(_EPIC_OID)
        and c.get("code") in _EPIC_PARTIAL
        for c in (codings if isinstance(codings, list) else ())
    )


def _only_includes_truncated(issue: Json) -> bool:
    return str(issue.get("severity")) == "warning" and any(
        _TRUNCATED_INCLUDES.search(t) is not None for t in issue_texts(issue)
    )


def partial_results(outcomes: Iterable[Json]) -> list[Issue]:
    """Warnings for the searchsets' own OperationOutcomes (``search.mode = outcome``) that say
    the server returned only part of the matches: an issue of severity error or fatal, or of
    one of :data:`_PARTIAL_CODES`, or coded as Epic's "additional data may be present"
    (:data:`_EPIC_PARTIAL`), or whose text says results were suppressed, withheld or omitted
    (:data:`_WITHHELD_WORDS`), other than a warning that only included resources were
    truncated (:data:`_TRUNCATED_INCLUDES`: the callers read those by id). One warning per
    distinct (severity, code); the server's words are not copied (they may name the
    patient)."""
    seen: dict[tuple[str, str], None] = {}
    for outcome in outcomes:
        issues = outcome.get("issue")
        for issue in issues if isinstance(issues, list) else ():
            if not isinstance(issue, dict) or _only_includes_truncated(issue):
                continue
            severity, code = str(issue.get("severity")), str(issue.get("code"))
            if (
                severity in ("error", "fatal")
                or code in _PARTIAL_CODES
                or _epic_partial(issue)
                or _says_withheld(issue)
            ):
                seen.setdefault((severity, code), None)
    return [
        Issue(
            "warning",
            "incomplete",
            "search outcome: the server reported that some of the patient's data may not have "
            f"been returned (severity {severity}, code {code}); the results may be incomplete",
        )
        for severity, code in seen
    ]


def newer_version(copy: Json, kept: Json) -> bool:
    """Whether ``copy`` is a later version of the resource ``kept`` is a copy of (two pages, or
    two searches, returned it; a search is only current at the instant each page is read, R4
    search.html paging). The newer ``meta.lastUpdated`` wins; where both lack it or they tie,
    the greater integer ``meta.versionId`` (HAPI, Azure, Oracle Health number versions).
    Otherwise the copy met first is kept. Oracle Health asks clients to keep "the latest
    version of that resource id" (Cerner FHIR Developers, paging notice)."""
    new, old = _meta(copy), _meta(kept)
    new_time = instant_or_none(new.get("lastUpdated"))
    old_time = instant_or_none(old.get("lastUpdated"))
    if new_time is not None and old_time is not None and new_time != old_time:
        return new_time > old_time
    new_version, old_version = _version(new.get("versionId")), _version(old.get("versionId"))
    return new_version is not None and old_version is not None and new_version > old_version


def _meta(resource: Json) -> Json:
    meta = resource.get("meta")
    return meta if isinstance(meta, dict) else {}


def _version(value: object) -> int | None:
    """A ``meta.versionId`` that is a decimal integer (at most 18 digits), or None."""
    if isinstance(value, str) and 0 < len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)
    return None


def _matches(page: Json) -> list[Json]:
    """The resources of a searchset page (entries that are not objects are ignored)."""
    entries = page.get("entry")
    if not isinstance(entries, list):
        return []
    return [
        e["resource"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]


#: What one search (every page) or read found: its resources, and (found, total) where its
#: pages ended before the total they state (:func:`_shortfall`), else None.
_Found = tuple[list[Json], tuple[int, int] | None]


def short_of_total(pages: Sequence[Json]) -> Json | None:
    """An OperationOutcome (a warning ``incomplete``) where a search's pages end before their
    total (:func:`_shortfall`), else None."""
    short = _shortfall(pages)
    if short is None:
        return None
    said = f"{short[0]} of the {short[1]} matches its Bundle.total says were returned"
    issue = {"severity": "warning", "code": "incomplete", "diagnostics": said}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _shortfall(pages: Sequence[Json]) -> tuple[int, int] | None:
    """(found, total) where a search's pages, all read (the last has no ``next`` link), hold
    fewer entries than the ``total`` its last page states (R4 Bundle.total: "the total number
    of entries of type 'match' across all pages in the search"): the server stopped paging
    early (HAPI FHIR's fetch-size maximum), or dropped matches it counted (a consent filter).
    Else None.

    Lenient where servers differ: the total of the last page that states one (Google Cloud
    Healthcare's is an estimate until the last page); every entry but an OperationOutcome
    counted, a repeated one or an included one too (HAPI FHIR counted ``_include``d resources
    in ``total`` before hapifhir/hapi-fhir#7153)."""
    total: int | None = None
    for page in pages:
        stated = page.get("total")
        if isinstance(stated, int) and not isinstance(stated, bool):
            total = stated
    if total is None:
        return None
    found = sum(
        1 for page in pages for r in _matches(page) if r.get("resourceType") != "OperationOutcome"
    )
    return None if found >= total else (found, total)


def _found_in(pages: Sequence[Json]) -> _Found:
    """The resources of a search's ``pages``, and its :func:`_shortfall`."""
    return [r for page in pages for r in _matches(page)], _shortfall(pages)


async def _all_matches(client: FhirClient, searchset: Json) -> _Found:
    """The matches of a searchset and of every page after it, and where they hold fewer than
    its total, by how many (:func:`_shortfall`). A first page in hand (a batch entry's, or a
    GET's) is checked as later pages are (:func:`searchset_problem`)."""
    problem = searchset_problem(searchset)
    if problem is not None:
        raise MalformedResponse(f"a search result {problem}", status=None, url="(search)")
    pages = [searchset]
    async for page in client.following_pages(searchset):
        pages.append(page)
    return _found_in(pages)


def _narrowed(need: Need, url: str) -> bool:
    """Whether ``url`` is ``need``'s narrowed second search (its narrowing parameter first)."""
    return need.also is not None and url.partition("?")[2].startswith(f"{need.also.query}&")


def _diagnose(need: Need | None, url: str, status: int | None) -> Refused:
    """What a refused search taught: a narrowed second search (the Conditions not active), its
    narrowing parameter, unless no search of the type is allowed (405); else the type is absent
    (404), the search is not allowed (405), else its ``_include``, else its patient parameter
    (400 ``not-supported``)."""
    rtype = url.split("?", maxsplit=1)[0].split("/", maxsplit=1)[0]
    if need is None:
        return Refused("interaction", rtype, "read")
    if need.also is not None and _narrowed(need, url) and status not in (405, 501):
        return Refused("search-param", rtype, need.also.param)
    if status == 404:
        return Refused("type", rtype)
    if status in (405, 501):
        return Refused("interaction", rtype, "search-type")
    if need.include is not None and f"_include={need.include}" in url:
        return Refused("include", rtype, need.include)
    param = url.split("?", 1)[1].split("=", 1)[0]
    return Refused("search-param", rtype, param)


def _search_refused(caps: Capabilities, rtype: str, status: int | None, outcome: Any) -> bool:
    """A search the server refuses for good: :func:`is_refusal`, or :func:`is_unsupported_type`
    (a 404 where the server's types are unknown)."""
    return is_refusal(status, outcome) or is_unsupported_type(caps, rtype, status)


def _alternatives(caps: Capabilities, need: Need, url: str) -> list[tuple[str, list[Refused]]]:
    """The search ``url`` without what a server may refuse with a 400 of any issue code, each
    with what its success teaches: without its ``_include``; by the next patient parameter of
    ``need`` the server may search by (``subject`` → ``patient``); then without both. A
    narrowed second search (``Condition?clinical-status=…&subject=…``): still narrowed, the
    plain search's alternatives; then without its narrowing, which teaches that the server
    refuses the narrowing parameter (the plain search, sent anyway, brings what the server
    returns; the results are merged by id), alone and with each of those alternatives."""
    rtype, _, query = url.partition("?")
    if need.also is not None and _narrowed(need, url):
        prefix = f"{need.also.query}&"
        plain = f"{rtype}?{query[len(prefix) :]}"
        narrowing = Refused("search-param", rtype, need.also.param)
        inner = _alternatives(caps, need, plain)
        return [
            *((f"{rtype}?{prefix}{alt.partition('?')[2]}", taught) for alt, taught in inner),
            (plain, [narrowing]),
            *((alt, [narrowing, *taught]) for alt, taught in inner),
        ]
    include = f"&_include={need.include}"
    no_include = None
    if need.include is not None and include in url:
        no_include = (url.replace(include, ""), Refused("include", rtype, need.include))
    param, _, rest = query.partition("=")
    by_other = None
    if param in need.patient_params:
        later = need.patient_params[need.patient_params.index(param) + 1 :]
        other = caps.search_param(rtype, later)
        if other is not None:
            by_other = (f"{rtype}?{other}={rest}", Refused("search-param", rtype, param))
    out = [(alt[0], [alt[1]]) for alt in (no_include, by_other) if alt is not None]
    if no_include is not None and by_other is not None:
        out.append((by_other[0].replace(include, ""), [no_include[1], by_other[1]]))
    return out


async def _get_search(
    client: FhirClient, need: Need | None, url: str, *, probe: bool = True, again: bool = True
) -> _Found:
    """One search (every page) or, for ``need`` None, one read, as individual requests: a
    search by GET, or by ``POST [type]/_search`` on a server that takes searches of the type
    that way only (it says so, or it refused the GET with 405 and took the POST: learned).
    A search refused 400 or 422 whatever the issue code (HAPI: 'Unknown search parameter
    "subject"', code ``processing``) is sent without its ``_include``, then by the next
    patient parameter (:func:`_alternatives`); the first taken is used and what it left out
    learned as refused. Where none is taken, the first answer is the server's error. A later
    page gone (:func:`page_gone`) sends the search again from its first page, once
    (``again``)."""
    rtype = url.split("?", maxsplit=1)[0]
    caps = await client.capabilities()
    if need is not None and caps.searches_by_post(rtype):
        return await _post_search(client, need, url, again=again)
    try:
        response = await client.request("GET", url)
    except FhirServerError as exc:
        if need is not None and _search_refused(caps, rtype, exc.status, exc.operation_outcome):
            if exc.status == 405:
                try:
                    found = await _post_search(client, need, url)
                except Learned as learned:
                    if learned.refused.kind != "interaction":  # POST taken, a parameter not
                        client.learn(Refused("get-search", rtype))
                    raise
                client.learn(Refused("get-search", rtype))
                return found
            raise Learned(_diagnose(need, url, exc.status)) from exc
        if need is not None and probe and exc.status in (400, 422):
            for other, refused in _alternatives(caps, need, url):
                try:
                    found = await _get_search(client, need, other, probe=False)
                except FhirServerError:
                    continue
                for r in refused:
                    client.learn(r)
                return found
        if need is not None and isinstance(exc, NotFound):  # the patient was read
            raise FhirServerError(
                f"a search of {rtype} answered {exc.status} (its CapabilityStatement lists it)",
                status=exc.status,
                url=exc.url,
                operation_outcome=exc.operation_outcome,
            ) from None
        raise
    body = response.body or {}
    _check_answer(need, rtype, body, response.status)
    if need is None:
        return [body], None
    return await _all_or_again(client, need, url, body, again=again)


def page_gone(exc: FhirServerError) -> bool:
    """A later page of a search answered 404 or 410: the server dropped the search's paging
    session (HAPI FHIR: 410 "Search ID[…] does not exist and may have expired", its plain
    server's ``FifoMemoryPagingProvider`` keeping a fixed number of searches). The client
    raises a first page's 404/410 as :class:`NotFound`, a later page's as a plain error."""
    return exc.status in (404, 410) and not isinstance(exc, NotFound)


async def _all_or_again(
    client: FhirClient, need: Need | None, url: str, searchset: Json, *, again: bool
) -> _Found:
    """:func:`_all_matches` of the search ``url``, whose first page ``searchset`` is in hand;
    where a later page is gone (:func:`page_gone`), the search sent again (``again``), once,
    from its first page, as a GET; the pages read before are dropped (no mixed copies)."""
    try:
        return await _all_matches(client, searchset)
    except FhirServerError as exc:
        if not (again and page_gone(exc)):
            raise
        log.info(
            "a later page of a search was gone (HTTP %s): the search is sent again", exc.status
        )
    return await _get_search(client, need, url, again=False)


def _check_answer(need: Need | None, rtype: str, body: Json, status: int) -> None:
    """A 2xx answer to a search must be a searchset Bundle, to a read the resource
    (:func:`~fhirtis.io.answer_problem`); a 200 OperationOutcome (Redox) is kept on the error."""
    wanted = rtype.split("/", maxsplit=1)[0]  # a read's ``Type/id``: its type
    problem = answer_problem(body, None if need is not None else wanted)
    if problem is None:
        return
    raise MalformedResponse(
        f"a {'search' if need is not None else 'read'} of {wanted} answered {status} with "
        + problem,
        status=status,
        url=wanted,
        operation_outcome=body if body.get("resourceType") == "OperationOutcome" else None,
    )


async def _post_search(client: FhirClient, need: Need, url: str, *, again: bool = True) -> _Found:
    """The search ``url`` (``Type?params``) as ``POST [type]/_search``, its parameters in the
    body (never in a URL), every page; a refusal is diagnosed from the POST's answer (405: no
    search of the type at all; 400 ``not-supported``: its ``_include`` or parameter). A later
    page gone (:func:`page_gone`) sends the search again, once (``again``)."""
    rtype, _, query = url.partition("?")
    pages: list[Json] = []
    try:
        async for page in client.search_bundle_pages(
            rtype, parse_qsl(query, keep_blank_values=True), use_post=True
        ):
            pages.append(page)
    except FhirServerError as exc:
        if again and page_gone(exc):
            log.info("a later page of a search was gone (HTTP %s): sent again", exc.status)
            return await _post_search(client, need, url, again=False)
        if is_refusal(exc.status, exc.operation_outcome):
            raise Learned(_diagnose(need, url, exc.status)) from exc
        raise
    return _found_in(pages)


async def _get_all(
    client: FhirClient, urls: Sequence[tuple[Need | None, str]], requests: dict[str, int]
) -> list[_Found]:
    """The searches as individual GETs (per URL, what it found), at most ``concurrency`` at a
    time. A narrowed second search (the Conditions not active) is sent after its plain search,
    so that what the plain one taught (POST only, a refused patient parameter) shapes it."""
    slots = asyncio.Semaphore(client.config.concurrency)

    async def one(need: Need | None, url: str) -> _Found:
        async with slots:
            requests["read"] = requests.get("read", 0) + 1
            return await _get_search(client, need, url)

    chains: list[list[tuple[Need | None, str]]] = []
    for need, url in urls:
        if need is not None and chains and chains[-1][-1][0] is need and _narrowed(need, url):
            chains[-1].append((need, url))
        else:
            chains.append([(need, url)])

    async def in_turn(chain: list[tuple[Need | None, str]]) -> list[_Found | Exception]:
        done: list[_Found | Exception] = []
        for need, url in chain:
            try:
                done.append(await one(need, url))
            except Exception as exc:  # each search's outcome is weighed below
                done.append(exc)
        return done

    results = [r for rs in await asyncio.gather(*(in_turn(c) for c in chains)) for r in rs]
    for (need, _), r in zip(urls, results, strict=True):
        if need is None and isinstance(r, NotFound):
            raise r  # no such patient: its searches' 404s teach nothing about the server
    for r in results:  # a learned refusal first: it changes the plan
        if isinstance(r, Learned):
            raise r
    out: list[_Found] = []
    for r in results:
        if isinstance(r, BaseException):
            raise r
        out.append(r)
    return out


async def batch_of_reads(client: FhirClient, urls: Sequence[str]) -> list[Json]:
    """GET ``urls`` in one batch: the batch-response's entries, one object per URL in order
    (else :class:`PullError`). A refused batch raises :class:`Learned` ``Refused("batch")``."""
    try:
        batch = await client.batch([{"request": {"method": "GET", "url": url}} for url in urls])
    except FhirServerError as exc:
        if is_refusal(exc.status, exc.operation_outcome):
            raise Learned(Refused("batch")) from exc
        raise
    responses = batch.get("entry") or []
    if (
        batch.get("resourceType") != "Bundle"
        or not isinstance(responses, list)
        or len(responses) != len(urls)
        or not all(isinstance(e, dict) for e in responses)
    ):
        raise PullError("the server's batch response does not answer every request")
    return responses


async def _batch_all(
    client: FhirClient, urls: Sequence[tuple[Need | None, str]], requests: dict[str, int]
) -> list[_Found]:
    """The searches as one batch (per URL, what it found), every page followed. A refused
    batch, or a search refused inside it that works as a GET, teaches the server's limits."""
    try:
        responses = await batch_of_reads(client, [url for _, url in urls])
    finally:
        requests["read"] = requests.get("read", 0) + 1
    out: list[_Found] = []
    for (need, url), entry in zip(urls, responses, strict=True):
        where = url.split("?")[0]
        if not entry_ok(entry):
            status = entry_status(entry)
            if status in NOT_RUN:
                # not run: read it on its own, which waits and retries as any 429 or 503 does
                requests["read"] = requests.get("read", 0) + 1
                out.append(await _get_search(client, need, url))
                continue
            if (
                need is None
                and status in (404, 410)
                and not is_refusal(status, entry_outcome(entry))
            ):
                raise NotFound(f"{where} not found", status=404, url=where)
            if need is not None and await _taken_alone(client, need, url, requests):
                # the server runs the search, but not in a batch, whatever its entry said
                # (Google Cloud Healthcare's executeBundle: "Supports all interactions within
                # a bundle, except search"; a search URL read as a resource address, 404):
                # nothing else is blamed
                raise Learned(Refused("batch-search"))
            caps = await client.capabilities()
            if status in (400, 422) and need is not None:
                # refused for its _include or its patient parameter? the search without, alone
                for other, refused in _alternatives(caps, need, url):
                    requests["read"] = requests.get("read", 0) + 1
                    try:
                        await _get_search(client, need, other, probe=False)
                    except FhirServerError:
                        continue  # refused too: the server's error (below)
                    for r in refused[1:]:
                        client.learn(r)
                    raise Learned(refused[0])
            if is_refusal(status, entry_outcome(entry)) or (
                need is not None and _search_refused(caps, where, status, entry_outcome(entry))
            ):
                # refused in the batch: as a GET too (a search limit), or only in a batch?
                requests["read"] = requests.get("read", 0) + 1
                await _get_search(client, need, url)
                raise Learned(Refused("batch-search"))
            raise PullError(f"batch entry {where} failed with status {status or '?'}")
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            raise PullError(f"batch entry {where} has no resource")
        _check_answer(need, where, resource, entry_status(entry) or 200)
        if resource.get("resourceType") != "Bundle":
            out.append(([resource], None))
            continue
        out.append(await _all_or_again(client, need, url, resource, again=True))
    return out


async def _taken_alone(client: FhirClient, need: Need, url: str, requests: dict[str, int]) -> bool:
    """Whether the search ``url``, which a batch answered with an error, is taken alone, as it
    is (its first page: the batch is then read again as the server allows). A refusal alone
    too is left to the caller's diagnosis (False); one that teaches something for good (a
    ``not-supported`` parameter or ``_include``, a type) is raised (:class:`Learned`)."""
    rtype = url.split("?", maxsplit=1)[0]
    caps = await client.capabilities()
    if caps.searches_by_post(rtype):
        return False  # searched by POST only: the caller's diagnosis
    requests["read"] = requests.get("read", 0) + 1
    try:
        response = await client.request("GET", url)
    except FhirServerError as exc:
        if _search_refused(caps, rtype, exc.status, exc.operation_outcome):
            if exc.status == 405:
                return False  # by POST only? the caller's diagnosis finds out
            raise Learned(_diagnose(need, url, exc.status)) from exc
        return False
    body = response.body or {}
    return answer_problem(body, None) is None


async def read_urls(
    client: FhirClient, urls: Sequence[tuple[Need | None, str]], requests: dict[str, int]
) -> list[Json]:
    """Execute reads the way the server's capabilities allow, learning from refusals."""
    return [r for found, _ in await _read_each(client, urls, requests) for r in found]


async def _read_each(
    client: FhirClient, urls: Sequence[tuple[Need | None, str]], requests: dict[str, int]
) -> list[_Found]:
    """:func:`read_urls`, per URL (in order) what it found, a search's own OperationOutcomes
    (``search.mode = outcome``) included, and its :func:`_shortfall`."""
    for _ in range(MAX_LEARN):
        caps = await client.capabilities()
        try:
            if caps.supports_batch_search():
                return await _batch_all(client, urls, requests)
            return await _get_all(client, urls, requests)
        except Learned as learned:
            if learned.refused.kind not in ("batch", "batch-search"):
                raise
            client.learn(learned.refused)
    raise PullError("the server kept refusing its reads")


def _references(
    resources: Iterable[Json], target_type: str, base: str | None = None
) -> dict[str, list[Json]]:
    """References (``Type/id``) to ``target_type`` from the resources whose search includes
    that type (a medication's ``medicationReference``, a DeviceUseStatement's ``device``) →
    who references. A version-specific reference (``Medication/1/_history/2``, R4
    references.html; HAPI FHIR's ``auto_version_reference_at_paths``) names ``Medication/1``,
    as the evaluation resolves it; so does ``[base]/Medication/1`` on the server's ``base``."""
    elements = {
        n.resource_type: n.reference_element for n in NEEDS if n.included_type == target_type
    }
    out: dict[str, list[Json]] = {}
    for r in resources:
        element = elements.get(str(r.get("resourceType")))
        if element is None:
            continue
        ref = r.get(element)
        target = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(target, str):
            target = on_base(target, base) or target
        if isinstance(target, str) and target.startswith(f"{target_type}/"):
            out.setdefault(target.partition("/_history/")[0], []).append(r)
    return out


def _base_aliases(unique: Mapping[str, Json], base: str) -> dict[str, str]:
    """The absolute references on ``base`` (:func:`~fhirtis.fhir.bundle.on_base`) that the
    resources read make to their Medications and Devices, and a titration step to its bag → the
    ``Type/id`` they name: the
    evaluation resolves a reference by its text, and the pull keys what it read as ``Type/id``
    (:func:`~fhirtis.fhir.bundle.alias_references`)."""
    elements = {n.resource_type: n.reference_element for n in NEEDS if n.included_type}
    out: dict[str, str] = {}
    for r in unique.values():
        element = elements.get(str(r.get("resourceType")))
        ref = r.get(element) if element is not None else None
        target = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(target, str):
            continue
        written = target.partition("/_history/")[0]
        local = on_base(written, base)
        if local is not None:
            out[written] = local
    for r in unique.values():  # a titration step's bag, the patient's own record
        for written, _ in absolute_step_refs(r):
            local = on_base(written, base)
            if local is not None:
                out[written] = local
    for r in unique.values():  # a Medication's ingredient Substance (read by _pull)
        for target, _ in substance_refs_of(r):
            written = target.partition("/_history/")[0]
            local = on_base(written, base)
            if local is not None:
                out[written] = local
    return out


def looks_like_immune_globulin(resource: Json, names: Sequence[str]) -> bool:
    ref = resource.get("medicationReference")
    text = str(ref.get("display") or "") if isinstance(ref, dict) else ""
    lowered = text.lower()
    return bool(lowered) and (
        any(word in lowered for word in IMMUNE_GLOBULIN_WORDS)
        or any(n and n in lowered for n in names)
    )


async def read_by_id(
    client: FhirClient, rtype: str, ids: Iterable[str], requests: dict[str, int]
) -> list[Json]:
    """The resources of ``rtype`` with these ids that the server holds: one
    ``Type?_id=a,b,…`` search per 40 (each a GET, so that a refusal has its status), else reads
    by id. Read by id where the statement lists the type without ``search-type`` (HAPI FHIR's
    plain server lists a provider that has no ``@Search`` so), where the search was refused
    before, or where it is refused now: 405/501, ``not-supported``, or 400/422 whatever the
    issue code (HAPI's plain server: ``processing``, "does not know how to handle GET
    operation[Medication] with parameters [[_id, _count]]", hapifhir/hapi-fhir#1935), which is
    learned. Ids the server does not know are left out, and anything else it answers with. An
    id that is no FHIR id (a control character, a comma, a slash: R4 datatypes.html#id) is
    never asked for (no server holds it, and it has no place in a URL): it stays unread, as
    the caller reports."""
    ids = [i for i in dict.fromkeys(ids) if is_id(i)]
    need = Need(f"{rtype} by id", rtype, ("_id",))
    caps = await client.capabilities()
    by_search = caps.allows(rtype, "search-type") and (
        Refused("search-param", rtype, "_id") not in caps.refused
    )
    found: list[Json] | None = None
    if by_search:
        urls = [(need, u) for u in by_id_urls(rtype, ids, client.config.page_size)]
        try:
            found = [r for rs, _ in await _get_all(client, urls, requests) for r in rs]
        except Learned as learned:
            client.learn(learned.refused)
        except FhirServerError as exc:
            if exc.status not in (400, 422):
                raise
            client.learn(Refused("search-param", rtype, "_id"))
    if found is None:  # no search by _id: read them one by one
        found = []
        for rid in ids:
            requests["read"] = requests.get("read", 0) + 1
            try:
                found.append(await client.read(rtype, rid))
            except NotFound:
                continue
            except ValueError:  # not a FHIR id: no server holds it (reported as unread)
                continue
    asked = set(ids)  # a server that ignores _id answers with others
    return [r for r in found if r.get("resourceType") == rtype and r.get("id") in asked]


async def _read_by_id(
    client: FhirClient,
    rtype: str,
    wanted: Iterable[str],
    unique: dict[str, Json],
    requests: dict[str, int],
) -> None:
    """Resources of ``rtype`` by reference (``Type/id``) into ``unique`` (:func:`read_by_id`)."""
    ids = [ref.split("/", 1)[1] for ref in wanted]
    for r in await read_by_id(client, rtype, ids, requests):
        unique.setdefault(f"{rtype}/{r.get('id')}", r)


#: The issue for a resource read by id that stays unread: (its reference, ``Type/id`` of a
#: resource naming it, that resource) → the issue.
_Unread = Callable[[str, str, Json], Issue]


async def _read_missing(
    client: FhirClient,
    rtype: str,
    named: Mapping[str, Sequence[Json]],
    unique: dict[str, Json],
    requests: dict[str, int],
    unread: _Unread,
) -> list[Issue]:
    """The resources of ``rtype`` that ``named`` names (``Type/id`` → the resources naming it)
    and the read lacks, read by id into ``unique`` (:func:`read_by_id`: one
    ``Type?_id=a,b,…`` search per 40, else reads by id); for each that stays unread, ``unread``'s
    issue for each resource naming it: never passed over in silence."""
    wanted = {ref: users for ref, users in named.items() if ref not in unique}
    if not wanted:
        return []
    await _read_by_id(client, rtype, wanted, unique, requests)
    return [
        unread(ref, f"{user.get('resourceType')}/{user.get('id')}", user)
        for ref, users in wanted.items()
        if ref not in unique
        for user in users
    ]


def _unread_medication(ivig_names: Sequence[str]) -> _Unread:
    """A Medication that cannot be read: an error only where the medication looks like an
    immune globulin (:func:`looks_like_immune_globulin`)."""

    def unread(ref: str, where: str, user: Json) -> Issue:
        ivig = looks_like_immune_globulin(user, ivig_names)
        return Issue(
            "error" if ivig else "information",
            "not-found",
            f"{where}: its Medication ({ref}) could not be read from the server"
            + (", and it looks like an immune globulin" if ivig else ""),
            "medicationReference",
            where,
        )

    return unread


def _not_resources(rtype: str, count: int) -> Issue:
    """``count`` matches of the ``rtype`` search (every page) whose ``resourceType`` is no FHIR
    resource type: not read, but said (they may hold the patient's data, spelt wrong); their
    content is not repeated."""
    return Issue(
        "warning",
        "value",
        f"{count} match(es) of the {rtype} search have {NOT_A_RESOURCE_TYPE}: not read",
    )


def _unread_substance(ref: str, where: str, _: Json) -> Issue:
    """A Medication's ingredient Substance (R4 ``Medication.ingredient.itemReference``,
    Reference(Substance)) that cannot be read: an immune globulin named only by its
    ingredient's Substance (ATC J06BA02 on the Substance), as ``fhirtis evaluate`` recognises it
    in a Bundle, is not recognised."""
    return Issue(
        "information",
        "not-found",
        f"{where}: its ingredient's Substance ({ref}) could not be read from the server: "
        "an immune globulin it may name is not recognised",
        "ingredient.itemReference",
        where,
    )


def _unread_device(ref: str, where: str, _: Json) -> Issue:
    """The Device of a DeviceUseStatement that cannot be read: it may be a central venous
    catheter, a warning, not silence."""
    return Issue(
        "warning",
        "not-found",
        f"{where}: its Device ({ref}) could not be read from the server: a central venous "
        "catheter it may record is not counted",
        "device",
        where,
    )


def _substance_references(unique: Mapping[str, Json], base: str) -> dict[str, list[Json]]:
    """The Substances (``Substance/id``) that the Medications read name by an ingredient's
    ``itemReference`` outside them (:func:`~fhirtis.fhir.bundle.substance_refs_of`; a reference
    on another server's base names none here) → the Medications naming it (each once)."""
    out: dict[str, dict[str, Json]] = {}
    for key, r in unique.items():
        for _, local in substance_refs_of(r, base):
            out.setdefault(local, {})[key] = r
    return {local: list(users.values()) for local, users in out.items()}


async def pull_patient(
    client: FhirClient, patient_id: str, settings: Settings, requests: dict[str, int]
) -> PatientResources:
    """Read everything of one patient the computation needs, as the server allows (its read
    plan: one batch or individual GETs, its parameters, ``_include`` or Medications by id)."""
    read = await _pull(client, patient_id, settings, requests, None)
    unique, issues = read.unique, read.issues
    successor = replaced_by(unique.get(f"Patient/{patient_id}"))
    if successor is not None:
        raise MergedPatient(merged_message(f"Patient/{patient_id}", successor))
    listed = [(key, r) for key, r in unique.items()]
    patient_ref = f"Patient/{patient_id}"
    others = patient_refs(r for _, r in listed) - {patient_ref}
    if others:
        issues.append(
            Issue("warning", "business-rule", f"{len(others)} other patients referenced; ignored")
        )
    for rtype, why in sorted(read.skipped.items()):
        issues.append(Issue("warning", "not-supported", f"{rtype} not read: {why}"))
    resolve = dict(unique)
    alias_references(resolve, _base_aliases(unique, client.config.base_url))
    return PatientResources(patient_ref, listed, resolve, issues, read.incomplete)


@dataclass(frozen=True)
class PulledTypes:
    """What :func:`pull_types` read: the resources (the searched types' and the Medications
    and Devices they reference), the types the server cannot search at all (each with why), the
    types whose search said, in its own OperationOutcome (``search.mode = outcome``), that only
    part of the matches came back (:func:`partial_results`), and every issue of the read (those
    searches', unread references')."""

    resources: list[Json]
    skipped: dict[str, str] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)


async def pull_types(
    client: FhirClient, patient_id: str, settings: Settings, types: Collection[str]
) -> PulledTypes:
    """One patient's resources of ``types`` only (searched as :func:`pull_patient` searches
    them) and the Medications they reference, for a cohort whose Bulk export lacks those types
    and for what a CDS call's prefetch lacked on a server without batch searches."""
    read = await _pull(client, patient_id, settings, {}, types)
    if read.issues:  # unread medication references, searches the server answered in part
        log.warning("%d issue(s) reading a patient's data from the server", len(read.issues))
    return PulledTypes(list(read.unique.values()), dict(read.skipped), read.incomplete, read.issues)


@dataclass(frozen=True)
class _Read:
    """What :func:`_pull` read: the resources by "Type/id", the issues (searches answered in
    part, unresolved references), the skipped types, and the types whose search said it
    returned only part of the matches."""

    unique: dict[str, Json]
    issues: list[Issue]
    skipped: Mapping[str, str]
    incomplete: list[str]


async def _pull(
    client: FhirClient,
    patient_id: str,
    settings: Settings,
    requests: dict[str, int],
    types: Collection[str] | None,
) -> _Read:
    """The reads of :func:`pull_patient` (only ``types``' searches, when given): the resources
    by "Type/id" (the newer copy), the issues, the skipped types, the types answered in part."""
    extractor = extractor_for(settings)
    skipped: Mapping[str, str] = {}
    found: list[tuple[str, _Found]] = []  # per search: its type, what it found
    for _ in range(MAX_LEARN):
        caps = await client.capabilities()
        plan = read_plan(caps, client.config.page_size)
        urls = patient_read_urls(
            patient_id, extractor.t, client.config.page_size, plan.choices, types
        )
        try:
            each = await _read_each(client, urls, requests)
        except Learned as learned:
            client.learn(learned.refused)
            continue
        except NotFound:
            raise
        except FhirServerError as exc:
            if exc.status in (404, 410) and exc.url.split("?")[0].endswith(
                f"/Patient/{patient_id}"
            ):
                raise NotFound(
                    f"Patient/{patient_id} not found", status=404, url=f"Patient/{patient_id}"
                ) from None
            raise
        found = [
            (url.split("?", 1)[0].split("/", 1)[0], rs)
            for (_, url), rs in zip(urls, each, strict=True)
        ]
        skipped = (
            plan.skipped
            if types is None
            else {t: plan.skipped[t] for t in types if t in plan.skipped}
        )
        break
    else:
        raise PullError("the server kept refusing the reads the evaluation needs")
    unique: dict[str, Json] = {}
    outcomes: list[Json] = []  # a search can match no OperationOutcome: each is an outcome
    incomplete: dict[str, None] = {}  # the searched types whose outcome says "only part"
    short: list[Issue] = []  # searches whose pages ended before their total
    odd: dict[str, int] = {}  # by searched type: matches of no FHIR resource type (OBSERVATION)
    for rtype, (resources, shortfall) in found:
        for r in resources:
            if r.get("resourceType") not in KNOWN_RESOURCE_TYPES:
                odd[rtype] = odd.get(rtype, 0) + 1
                incomplete.setdefault(rtype, None)  # what it holds is not read: in part
                continue
            if r.get("resourceType") == "OperationOutcome":
                outcomes.append(r)
                if partial_results([r]):
                    incomplete.setdefault(rtype, None)
                continue
            key = f"{r.get('resourceType')}/{r.get('id')}"
            kept = unique.get(key)
            if kept is None or newer_version(r, kept):
                unique[key] = r
        if shortfall is not None:
            short.append(
                Issue(
                    "warning",
                    "incomplete",
                    f"a search of {rtype} ended (no next link) after {shortfall[0]} of the "
                    f"{shortfall[1]} matches its Bundle.total says: the results may be "
                    "incomplete",
                )
            )
            incomplete.setdefault(rtype, None)
    ivig = extractor.t.value_sets.get("ivig-products")
    issues = partial_results(outcomes) + short + [_not_resources(t, n) for t, n in odd.items()]
    # what the searches did not bring (no _include on this server, or it left them out), read
    # by id: the Medications, then the Substances they name as an ingredient, the Devices
    base = client.config.base_url
    unread_issue = {
        "Medication": _unread_medication(ivig.names if ivig else ()),
        "Substance": _unread_substance,
        "Device": _unread_device,
    }
    for rtype, unread in unread_issue.items():
        named = (
            _substance_references(unique, base)
            if rtype == "Substance"
            else _references(unique.values(), rtype, base)
        )
        issues += await _read_missing(client, rtype, named, unique, requests, unread)
    return _Read(unique, issues, skipped, sorted(incomplete))


async def find_existing(
    client: FhirClient, derived: Sequence[Derived], requests: dict[str, int]
) -> list[Json]:
    """Stored resources that may be fhirtis's earlier output of ``derived`` (types the server
    lacks are not searched; a type without an ``identifier`` search is searched by patient and
    code). The caller matches them by identifier."""
    for _ in range(MAX_LEARN):
        caps = await client.capabilities()
        absent = {d.resource_type for d in derived if not caps.has_type(d.resource_type)}
        by_patient = {
            d.resource_type
            for d in derived
            if d.resource_type not in absent
            and d.resource_type not in NO_IDENTIFIER_SEARCH
            and caps.search_param(d.resource_type, ("identifier",)) is None
        }
        known = caps
        urls = existing_urls(derived, client.config.page_size, absent | by_patient)
        urls += existing_by_patient_urls(
            [d for d in derived if d.resource_type in by_patient],
            lambda rtype, known=known: known.search_param(rtype, ("patient", "subject")),  # type: ignore[misc]
            client.config.page_size,
        )
        if not urls:
            return []
        try:
            return await read_urls(client, [(EXISTING_NEED, u) for u in urls], requests)
        except Learned as learned:
            client.learn(learned.refused)
    raise PullError("the server kept refusing the searches for fhirtis's earlier output")
