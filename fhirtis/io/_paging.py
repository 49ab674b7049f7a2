"""The search paging walk (pure): which page to fetch next, and whether a page is a page.

``walk_pages`` is a generator that yields the request for each page and receives the parsed
Bundle back; it never touches the network. The client drives it (httpx's sans-I/O idea), so
the rules that keep a token on the configured server and stop a ``next`` loop are written once
and tested without a server.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson

from fhirtis.io import _urls
from fhirtis.io._errors import ForeignNextLink, MalformedResponse, PagingLoop

Bundle = dict[str, Any]


@dataclass(frozen=True)
class PageRequest:
    """One page to fetch: a GET of ``url``, or (first page of a ``_search``) a form POST."""

    method: Literal["GET", "POST"]
    url: httpx.URL
    form: tuple[tuple[str, str], ...] | None = None


def walk_pages(
    base: httpx.URL, first: PageRequest, aliases: Sequence[httpx.URL] = ()
) -> Generator[PageRequest, Bundle, None]:
    """Yield ``first``, then each page's ``next`` link until a page has none.

    Raises :class:`ForeignNextLink` for a link off the base's origin and :class:`PagingLoop`
    for a link to a page already yielded, in both cases before the request is made.
    """
    seen: set[str] = set()
    request = first
    while True:
        seen.add(_loop_key(request))
        bundle = yield request
        link = next_link(bundle)
        if link is None:
            return
        url = resolve_next(base, request.url, link, aliases)
        request = PageRequest("GET", url)
        if _loop_key(request) in seen:
            raise PagingLoop(
                f"search paging loop: next link {_urls.redact(url)} was already fetched",
                url=_urls.redact(url),
            )


def _loop_key(request: PageRequest) -> str:
    return f"{request.method} {request.url}"


def next_link(bundle: Bundle) -> str | None:
    return link_of(bundle, "next")


def link_of(bundle: Bundle, relation: str) -> str | None:
    """The URL of ``bundle``'s first link of ``relation`` (``next``, ``self``) that has one."""
    links = bundle.get("link") or []
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == relation:
            url = link.get("url")
            if isinstance(url, str) and url.strip():
                return url.strip()
    return None


def resolve_next(
    base: httpx.URL, page_url: httpx.URL, link: str, aliases: Sequence[httpx.URL] = ()
) -> httpx.URL:
    """Resolve a ``next`` link and refuse it unless it is on the base's origin.

    A link on one of ``aliases`` (``FHIRTIS_FHIR__EQUIVALENT_ORIGINS``: other origins of the
    same server) is moved onto the base's origin, path and query kept: the request, and the
    token with it, still goes to the configured origin only.

    - absolute (``https://host/...``): taken as is;
    - ``/path?...``: on the base's origin;
    - ``?query``: the current page's URL with that query (RFC 3986);
    - anything else (``Observation?...``): relative to the FHIR base, as FHIR relative URLs are.
    """
    try:
        target = httpx.URL(link)
    except httpx.InvalidURL as exc:
        raise MalformedResponse(
            f"search page {_urls.redact(page_url)} has an invalid next link",
            status=None,
            url=_urls.redact(page_url),
        ) from exc
    if target.is_relative_url:
        if link.startswith("//"):
            resolved = httpx.URL(f"{base.scheme}:{link}")
        elif link.startswith("/"):
            resolved = base.join(link)
        elif link.startswith("?"):
            resolved = page_url.join(link)
        else:
            resolved = base.copy_with(path=base.path.rstrip("/") + "/").join(link)
    else:
        resolved = target
    resolved = _urls.onto_base(resolved, base, aliases)
    if not _urls.same_origin(resolved, base):
        foreign = _urls.origin_text(resolved)
        raise ForeignNextLink(
            f"refused next link to {foreign}: not the configured FHIR server "
            f"{_urls.origin_text(base)}; no request was sent to it (if it is the same server, "
            "list its origin in the setting FHIRTIS_FHIR__EQUIVALENT_ORIGINS)",
            origin=foreign,
        )
    return resolved


def parse_page(content: bytes, url: httpx.URL, status: int) -> Bundle:
    """A search page's body as a dict; it must be a JSON Bundle of type searchset."""
    where = _urls.redact(url)
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise MalformedResponse(
            f"search page {where} is not valid JSON", status=status, url=where
        ) from None  # the decode error holds the body: keep it out of the chain
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise MalformedResponse(f"search page {where} is not a Bundle", status=status, url=where)
    bundle_type = data.get("type")
    if bundle_type is not None and bundle_type != "searchset":
        raise MalformedResponse(
            f"search page {where} is a Bundle but not a searchset",
            status=status,
            url=where,
        )
    problem = searchset_problem(data)
    if problem is not None:
        raise MalformedResponse(f"search page {where} {problem}", status=status, url=where)
    return data


def searchset_problem(bundle: Bundle) -> str | None:
    """Why the entries of a searchset Bundle cannot be read, or None: ``entry`` is not an
    array, or one of its entries is not an object, or holds a ``resource`` that is not one.
    Such a page read as "no matches" would hide the patient's data (R4 Bundle.entry)."""
    entries = bundle.get("entry")
    if entries is None:
        return None
    if not isinstance(entries, list):
        return "has a malformed entry list (not an array)"
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            return f"has a malformed entry list (entry[{i}] is not an object)"
        resource = entry.get("resource")
        if resource is not None and not (
            isinstance(resource, dict) and isinstance(resource.get("resourceType"), str)
        ):
            return f"has a malformed entry list (entry[{i}].resource is not a resource)"
    return None
