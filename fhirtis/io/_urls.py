"""URL helpers (pure): origins, joining onto the base, redaction for messages and logs."""

from __future__ import annotations

import re
from collections.abc import Sequence

import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_RESOURCE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, effective port) of ``url``; host compared case-insensitively."""
    scheme = url.scheme.lower()
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(scheme)
    return scheme, url.host.lower(), port


def origin_text(url: httpx.URL) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return origin(a) == origin(b)


def onto_base(url: httpx.URL, base: httpx.URL, aliases: Sequence[httpx.URL] = ()) -> httpx.URL:
    """``url`` moved onto ``base``'s origin (path and query kept) when it is on one of
    ``aliases`` (``FHIRTIS_FHIR__EQUIVALENT_ORIGINS``: other origins of the same server);
    otherwise ``url`` unchanged."""
    if not same_origin(url, base) and any(same_origin(url, a) for a in aliases):
        return url.copy_with(scheme=base.scheme, host=base.host, port=base.port)
    return url


def absolute_http(text: str, against: httpx.URL | None = None) -> httpx.URL | None:
    """``text`` (resolved against ``against`` when given) as an absolute http(s) URL with a
    host, or None when it is not one (unparsable, another scheme, no host)."""
    try:
        url = against.join(text) if against is not None else httpx.URL(text)
    except httpx.InvalidURL:
        return None
    return url if url.scheme in _DEFAULT_PORTS and url.host else None


def normalize_base(base_url: str) -> httpx.URL:
    """Parse and check a FHIR base URL; the result has no trailing slash, query or fragment."""
    url = httpx.URL(base_url)
    if url.scheme not in _DEFAULT_PORTS:
        raise ValueError("the FHIR base URL must use http or https")
    if not url.host:
        raise ValueError("the FHIR base URL must have a host")
    if url.query or url.fragment:
        raise ValueError("the FHIR base URL must not have a query or a fragment")
    if url.userinfo:
        raise ValueError("the FHIR base URL must not carry credentials; configure auth instead")
    path = url.path.rstrip("/") or "/"
    pasted = "metadata" if path.endswith("/metadata") else None
    if "/.well-known/" in path + "/":
        pasted = ".well-known/" + path.split("/.well-known/", 1)[1]
    if pasted is not None:
        # the address of the CapabilityStatement or of the SMART configuration, pasted as the
        # base: every request would go under it, and every patient would be "not found"
        raise ValueError(
            f"the FHIR base URL must not end in /{pasted} (an address under the base): give "
            "the base without it, e.g. https://host/fhir for https://host/fhir/metadata"
        )
    return url.copy_with(path=path)


def join(base: httpx.URL, *segments: str) -> httpx.URL:
    """``base`` + ``/segment/segment``; segments are already validated by the caller."""
    path = base.path.rstrip("/")
    return base.copy_with(path=path + "".join("/" + s for s in segments))


def check_resource_type(resource_type: str) -> str:
    if not _RESOURCE_TYPE.fullmatch(resource_type):
        raise ValueError(f"not a FHIR resource type: {resource_type!r}")
    return resource_type


def check_resource_id(resource_id: str) -> str:
    if not _RESOURCE_ID.fullmatch(resource_id) or resource_id in {".", ".."}:
        raise ValueError(f"not a FHIR resource id: {resource_id!r}")
    return resource_id


def redact(url: httpx.URL) -> str:
    """The URL for an error message: query parameter names kept, their values replaced.

    Search parameters (``identifier=...``, ``patient=...``, ``name=...``) may carry patient
    identifiers; paging tokens are opaque. Neither belongs in a message. Path segments (resource
    type, resource id) are kept: they are what the caller needs to act on the error. Credentials
    in the URL (``https://client:secret@host/token``) are left out.
    """
    base = str(url.copy_with(userinfo=b"", query=None, fragment=None))
    names = list(dict.fromkeys(url.params.keys()))
    if not names:
        return base
    return base + "?" + "&".join(f"{name}=***" for name in names)


def log_target(url: httpx.URL) -> str:
    """Path and query parameter names only, for log lines."""
    names = list(dict.fromkeys(url.params.keys()))
    return url.path + ("?" + "&".join(names) if names else "")
