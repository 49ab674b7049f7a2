"""Turning HTTP answers into dicts or errors (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from fhirtis.io import _urls
from fhirtis.io._errors import (
    FhirServerError,
    Forbidden,
    MalformedResponse,
    NotFound,
    PreconditionFailed,
    Unauthorized,
)

_BY_STATUS: dict[int, type[FhirServerError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    410: NotFound,
    412: PreconditionFailed,
}


def error_for(
    method: str,
    url: httpx.URL,
    status: int,
    content: bytes,
    *,
    default: type[FhirServerError] = FhirServerError,
    prefix: str = "",
) -> FhirServerError:
    """The error for a non-success answer; an OperationOutcome body is kept as data only.

    401, 403, 404, 410 and 412 have their own classes; any other status gives ``default``.
    ``prefix`` (e.g. ``"bulk export failed: "``) starts the message.
    """
    where = _urls.redact(url)
    cls = _BY_STATUS.get(status, default)
    return cls(
        f"{prefix}HTTP {status} for {method} {where}",
        status=status,
        url=where,
        operation_outcome=operation_outcome(content),
    )


def operation_outcome(content: bytes) -> dict[str, Any] | None:
    if not content:
        return None
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and data.get("resourceType") == "OperationOutcome":
        return data
    return None


def json_object(
    content: bytes,
    *,
    what: str,
    method: str,
    url: httpx.URL,
    status: int,
    media_type: str | None = None,
) -> dict[str, Any]:
    """A 2xx body that must be a JSON object. ``media_type``: the answer's ``Content-Type``,
    named (with a hint, :func:`_media_hint`) where the body is no JSON object and the type says
    it is not JSON: what the integrator has to fix is often there, never in the body."""
    where = _urls.redact(url)
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        data = None  # the decode error holds the body: do not chain it
    if not isinstance(data, dict):
        raise MalformedResponse(
            f"{what} from {method} {where} is not a JSON object{_media_hint(media_type)}",
            status=status,
            url=where,
        )
    return data


def _media_hint(media_type: str | None) -> str:
    """Why a body may be no JSON, from its ``Content-Type`` (a header: no patient data; its
    parameters are dropped): HTML is a sign-in page or a wrong address, XML a server that
    answered FHIR XML (fhirtis asks for ``application/fhir+json``)."""
    media = (media_type or "").partition(";")[0].strip().lower()
    if not media or "json" in media or not _MEDIA_TYPE.fullmatch(media):
        return ""
    if media in ("text/html", "application/xhtml+xml"):
        return f" (the server answered {media}: a sign-in page of a proxy, or a wrong base URL?)"
    if "xml" in media:
        return f" (the server answered {media}: fhirtis reads FHIR JSON only)"
    return f" (the server answered {media})"


_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,64}")


def answer_problem(body: Mapping[str, Any], read_of: str | None) -> str | None:
    """Why a 2xx answer is not what was asked, or None. A search (``read_of`` None) answers a
    Bundle of type ``searchset`` (``type`` absent is taken as one), a read of the type
    ``read_of`` that resource (R4 http.html), as a later page and ``FhirClient.read`` must.
    Redox's FHIR API answers a query the EHR behind it failed with 200 and an OperationOutcome
    ("Responding to queries", partial error): read as a search with no matches, or as the
    resource, it hid the patient's data.

    The reason, for the caller's own error: "an OperationOutcome, not a searchset Bundle",
    "something else, not a Patient"."""
    kind = body.get("resourceType")
    if read_of is None:
        if kind == "Bundle" and body.get("type") in (None, "searchset"):
            return None
        wanted = "a searchset Bundle"
    elif kind == read_of:
        return None
    else:
        wanted = f"a {read_of}"
    said = "an OperationOutcome" if kind == "OperationOutcome" else "something else"
    return f"{said}, not {wanted}"
