"""SMART scopes as fhirtis's own client asks for them: which syntax a server advertises, a
scope list in SMART v1 syntax, and what a token response granted of what was asked.

SMART App Launch 2.x: a server's ``.well-known/smart-configuration`` lists ``capabilities``,
among them ``permission-v1`` (SMART v1 syntax, ``system/Observation.read``) and
``permission-v2`` (``system/Observation.rs``); v1 ``.read`` ⇒ v2 ``.rs``, ``.write`` ⇒
``.cud``, ``.*`` ⇒ ``.cruds``. The access token response's ``scope`` is the scope authorized,
which "can be different from the scopes requested". Scopes are no secret; tokens never pass
through here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "grants",
    "is_resource_scope",
    "not_granted",
    "scope_syntax",
    "scope_tokens",
    "v1_equivalent",
]

_RESOURCE_SCOPE = re.compile(r"(patient|user|system)/([A-Za-z]+|\*)\.([A-Za-z*]+)(\?\S*)?")
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}
_CRUDS = frozenset("cruds")
#: RFC 6749 §3.3 scope-token: printable ASCII but space, ``"`` and ``\``
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,512}")
#: The most scope-tokens kept of what a server lists.
MAX_TOKENS = 1000


def scope_tokens(values: Iterable[str]) -> tuple[str, ...]:
    """The values that are RFC 6749 scope-tokens (at most :data:`MAX_TOKENS`): what a server
    sends is shown and compared only in that form, never with control characters or as a
    text of any length."""
    out: list[str] = []
    for value in values:
        if _SCOPE_TOKEN.fullmatch(value):
            out.append(value)
            if len(out) == MAX_TOKENS:
                break
    return tuple(out)


def scope_syntax(capabilities: Iterable[object] | None) -> str:
    """The SMART scope syntax a server's ``capabilities`` advertise: ``v1``, ``v2``,
    ``v1 and v2``, ``not advertised`` (neither capability), or ``unknown`` (not read)."""
    if capabilities is None:
        return "unknown"
    found = set(capabilities)
    v1, v2 = "permission-v1" in found, "permission-v2" in found
    if v1 and v2:
        return "v1 and v2"
    if v1 or v2:
        return "v1" if v1 else "v2"
    return "not advertised"


def _parse(scope: str) -> tuple[str, str, frozenset[str], str] | None:
    """(context, type, permissions as v2 letters, query) of a SMART resource scope; None for
    any other scope (``launch``, Entra's ``{fhirurl}/.default``) or an undefined permission."""
    m = _RESOURCE_SCOPE.fullmatch(scope)
    if m is None:
        return None
    context, rtype, perm, query = m.group(1), m.group(2), m.group(3), m.group(4) or ""
    if perm in _V1:
        letters = _V1[perm]
    elif perm.isalpha() and frozenset(perm) <= _CRUDS:
        letters = frozenset(perm)
    else:
        return None
    return context, rtype, letters, query


def is_resource_scope(scope: str) -> bool:
    """Whether ``scope`` is a SMART resource scope (``system/Observation.rs``, ``.read``)."""
    return _parse(scope) is not None


def grants(granted: Iterable[str], asked: str) -> bool:
    """Whether the scopes ``granted``, together, grant the SMART resource scope ``asked``
    (v1 and v2 spellings alike; a whole-type or ``*`` grant covers a granular ask); a scope
    that is not a SMART resource scope is granted only as written."""
    wanted = _parse(asked)
    granted = list(granted)
    if wanted is None or asked in granted:
        return asked in granted
    context, rtype, letters, query = wanted
    have: set[str] = set()
    for scope in granted:
        parsed = _parse(scope)
        if parsed is None or parsed[0] != context or parsed[1] not in {rtype, "*"}:
            continue
        if parsed[3] and parsed[3] != query:
            continue  # a granular grant covers only the same ask
        have |= parsed[2]
    return letters <= have


def not_granted(asked: str, granted: str) -> tuple[str, ...]:
    """The SMART resource scopes of ``asked`` that ``granted`` (both space-separated, as the
    token request and response carry them) does not grant. Other scopes are not compared: a
    server may answer them in its own words."""
    have = granted.split()
    return tuple(s for s in asked.split() if _parse(s) is not None and not grants(have, s))


def v1_equivalent(scope: str) -> str:
    """``scope`` in SMART v1 syntax: read and search ⇒ ``.read``, any of create, update, delete
    ⇒ ``.write`` (v1 has nothing narrower), all ⇒ ``.*``; other scopes as they are."""
    out: list[str] = []
    for s in scope.split():
        parsed = _parse(s)
        if parsed is None or parsed[3]:
            out.append(s)
            continue
        context, rtype, letters, _ = parsed
        if letters == _CRUDS:
            words = ["*"]
        else:
            words = (["read"] if letters & _V1["read"] else []) + (
                ["write"] if letters & _V1["write"] else []
            )
        out += [f"{context}/{rtype}.{w}" for w in words]
    return " ".join(dict.fromkeys(out))
