"""Who may call the service, and what they may do.

Bearer tokens are required. In ``pass-through`` mode the token is the caller's SMART access
token for the EHR's FHIR server: the service does not read it, it forwards it, and the EHR
decides. In ``validate`` mode the service checks the token itself: a JWT signed by a key of the
configured JWKS, from the configured issuer, for the configured audience, not expired, with the
SMART scopes for every resource type the evaluation reads (:func:`read_for_evaluate`) and, to
write, writes. A token lacking any of them is refused (403, naming the missing scopes): fhirtis
never returns a result from part of the record because a token could not read the rest. A token
with a ``patient`` context may only evaluate that patient. Tokens are never logged.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fhirtis.api.errors import ApiError
from fhirtis.fhir.needs import export_types
from fhirtis.settings import ServiceSettings

WRITE_FOR_EVALUATE = ("Observation", "Flag", "DetectedIssue", "AdverseEvent", "Provenance")
# SMART v2 permissions each write needs: writing back deletes (a withdrawn AdverseEvent, the extra
# copies of a concurrent create), so every derived type needs d too; Provenance is only created
_V2_WRITE = {t: frozenset("cud") for t in WRITE_FOR_EVALUATE} | {"Provenance": frozenset("cu")}
_INCLUDE = re.compile(r"_include=[A-Za-z]+:([a-z]+)")
_INCLUDED_TYPE = {"medication": "Medication"}


@cache
def read_for_evaluate() -> tuple[str, ...]:
    """Every resource type one evaluation reads, so every one a token's scopes must cover:
    :mod:`fhirtis.fhir.needs` (the single list of a patient's reads and what they include), and
    the derived types looked up to plan the write (fhirtis's earlier output)."""
    found = list(export_types())
    found += [t for t in WRITE_FOR_EVALUATE if t != "Provenance"]
    return tuple(dict.fromkeys(found))


# RFC 6750 §3: every refusal of a request's token carries a challenge; its error code says why
# (none when no token was sent)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="fhirtis"'}
INVALID_TOKEN = {"WWW-Authenticate": 'Bearer realm="fhirtis", error="invalid_token"'}
INSUFFICIENT_SCOPE = {"WWW-Authenticate": 'Bearer realm="fhirtis", error="insufficient_scope"'}


@dataclass(frozen=True)
class Caller:
    token: str
    scopes: frozenset[str] = frozenset()
    patient: str | None = None  # the SMART patient context of the token, if any
    validated: bool = False
    claims: dict[str, Any] = field(default_factory=dict)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "a bearer token is required", headers=CHALLENGE)
    if not is_b64token(token.strip()):
        raise ApiError(401, "the bearer token is not valid", headers=INVALID_TOKEN)
    return token.strip()


_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def is_b64token(token: str) -> bool:
    """A bearer token as RFC 6750 §2.1 allows it (no spaces, CR, LF or other characters that
    could not be sent on in an Authorization header)."""
    return len(token) <= 16_384 and _B64TOKEN.fullmatch(token) is not None


_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}


def _permissions(scope: str, resource: str) -> frozenset[str]:
    """The SMART v2 permissions (``cruds``) ``scope`` grants on ``resource``: v1
    (``patient/Observation.read``, ``.write`` = ``cud``, ``.*``) and v2 (``patient/Observation.rs``)
    scopes; none for a granular v2 scope (``.rs?category=...``: part of the type only)."""
    context, _, rest = scope.partition("/")
    if context not in {"patient", "user", "system"} or not rest:
        return frozenset()
    rtype, _, perm = rest.partition(".")
    if rtype not in {resource, "*"}:
        return frozenset()
    if perm in _V1:
        return _V1[perm]
    letters = frozenset(perm)
    return letters if perm.isalpha() and letters <= _V1["*"] else frozenset()


_RESOURCE_SCOPE = re.compile(r"(?:patient|user|system)/([A-Za-z]+|\*)\.(\S+)")
_NO_READ = re.compile(r"c?u?d?")  # v2 permissions without r or s (in cruds order)


def read_not_granted(scope: str, resource: str) -> bool:
    """Whether the SMART scopes ``scope`` (space-separated, as OAuth's ``scope`` and CDS Hooks
    2.0 ``fhirAuthorization.scope`` give them) clearly do not let their token read or search
    ``resource``: they hold at least one resource scope (``patient/``, ``user/``, ``system/``),
    and each that names ``resource`` or ``*`` is write-only (v1 ``.write``, v2 ``c``/``u``/``d``
    alone). Anything else may grant it: v1 ``.read`` or ``.*``, v2 permissions with ``r`` or
    ``s``, a granular v2 scope (``.rs?category=…``: part of the type), a spelling SMART does
    not define, or no resource scope at all (nothing can be concluded)."""
    found = [m for s in scope.split() if (m := _RESOURCE_SCOPE.fullmatch(s)) is not None]
    if not found:
        return False
    for m in found:
        if m.group(1) not in {resource, "*"}:
            continue
        perm = m.group(2).partition("?")[0]
        if perm != "write" and not (perm and _NO_READ.fullmatch(perm)):
            return False
    return True


def read_limited(scope: str, resource: str) -> list[str]:
    """The SMART v2 granular scopes (``patient/Condition.rs?category=…``) through which alone the
    scopes ``scope`` may let their token read or search ``resource``, or none: where a scope
    that may grant it names the whole type (v1 ``.read`` or ``.*``, v2 ``r`` or ``s`` without a
    query, a spelling SMART does not define: :func:`read_not_granted`'s rule), or none may
    grant it. SMART App Launch 2.x, "Finer-grained resource constraints using search
    parameters": ``patient/Observation.rs?category=…|laboratory`` grants "laboratory
    observations but not other observations", and a search may answer "200 OK … where results
    have been omitted from the response Bundle": what such a token reads is only part of the
    patient's resources of that type."""
    limited = []
    for s in scope.split():
        m = _RESOURCE_SCOPE.fullmatch(s)
        if m is None or m.group(1) not in {resource, "*"}:
            continue
        perm, query, _ = m.group(2).partition("?")
        if perm == "write" or (perm and _NO_READ.fullmatch(perm)):
            continue  # grants no read
        if not query:
            return []  # the whole type
        limited.append(s)
    return limited


def missing_scopes(scopes: Iterable[str], *, write: bool) -> list[str]:
    """``Type.read``/``Type.write`` for each type the token's scopes, together, do not cover
    (``patient/Observation.r patient/Observation.s`` may search it as ``.rs`` may)."""
    have = list(scopes)
    needed = [(r, "read", _V1["read"]) for r in read_for_evaluate()]
    if write:
        needed += [(r, "write", _V2_WRITE[r]) for r in WRITE_FOR_EVALUATE]
    lacking = []
    for resource, want, letters in needed:
        granted = frozenset().union(*(_permissions(s, resource) for s in have))
        if not letters <= granted:
            lacking.append(f"{resource}.{want}")
    return lacking


class TokenValidator:
    """Validates JWT access tokens against a JWKS, issuer and audience."""

    def __init__(self, settings: ServiceSettings, clock: Any = time.time) -> None:
        text = settings.jwks
        if text is None and settings.jwks_path is not None:
            text = Path(settings.jwks_path).read_text()
        if not text or not settings.issuer or not settings.audience:
            raise ValueError("validate mode needs service.jwks (or jwks_path), issuer and audience")
        self._keys = KeySet.import_key_set(_json(text))  # type: ignore[arg-type]
        self._issuer = settings.issuer
        self._audience = settings.audience
        self._clock = clock

    def validate(self, token: str) -> Caller:
        try:
            decoded = jwt.decode(token, self._keys, algorithms=["RS256", "RS384", "ES256", "ES384"])
        except (JoseError, ValueError):
            raise ApiError(401, "the bearer token is not valid", headers=INVALID_TOKEN) from None
        claims = decoded.claims
        now = int(self._clock())
        problems = []
        if claims.get("iss") != self._issuer:
            problems.append("issuer")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self._audience not in audiences:
            problems.append("audience")
        exp: Any = claims.get("exp")
        if not _finite(exp) or exp <= now:
            problems.append("expiry")
        nbf: Any = claims.get("nbf")
        if nbf is not None and (not _finite(nbf) or nbf > now + 60):
            problems.append("not yet valid")
        if problems:
            raise ApiError(
                401,
                f"the bearer token is not valid ({', '.join(problems)})",
                headers=INVALID_TOKEN,
            )
        scope = claims.get("scope", "")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        patient = claims.get("patient")
        return Caller(token, scopes, patient if isinstance(patient, str) else None, True, claims)


def _finite(value: Any) -> bool:
    """A JSON number that is a real time: not a boolean, NaN or ±Infinity."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _json(text: str) -> dict[str, Any]:
    import json  # noqa: PLC0415 - tiny, only at start-up

    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the JWKS must be a JSON object")
    return data


def authorize(caller: Caller, patient_id: str, *, write: bool) -> None:
    """403 unless a validated caller may evaluate (and, with ``write``, write for) this patient."""
    if not caller.validated:
        return  # pass-through: the FHIR server decides
    lacking = missing_scopes(caller.scopes, write=write)
    if lacking:
        raise ApiError(
            403,
            f"the token lacks the scopes: {', '.join(lacking)}. fhirtis reads every one of these "
            "types to evaluate a patient and refuses rather than give a result from part of the "
            "record",
            headers=INSUFFICIENT_SCOPE,
        )
    patient_scoped = any(s.startswith("patient/") for s in caller.scopes)
    if caller.patient is not None and caller.patient != patient_id:
        raise ApiError(
            403, "the token's patient context is another patient", headers=INSUFFICIENT_SCOPE
        )
    if patient_scoped and caller.patient is None:
        raise ApiError(
            403, "patient-level scopes without a patient context", headers=INSUFFICIENT_SCOPE
        )
