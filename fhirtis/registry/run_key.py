"""The ledger's key of a run besides each patient's input (issue 13): the server written to, a
digest of every setting that changes results, and the fhirtis algorithm version. Used by the
cohort run (per patient) and by the Group export (whose ``_since`` holds only under the same
key)."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import orjson

import fhirtis
from fhirtis import __version__
from fhirtis.fhir.codes import profiles_dir
from fhirtis.fhir.derive import ALGORITHM_VERSION
from fhirtis.registry.errors import describe
from fhirtis.registry.ledger import RunKey
from fhirtis.settings import Settings

__all__ = ["code_digest", "run_key"]


def run_key(settings: Settings, server: str) -> RunKey:
    """The ledger's key besides the input: the server, a digest of every value that changes
    results (the clinical policy, default ULNs, the concept map's content, the terminology
    server asked about unlisted codes), the version: the package's, the algorithm's and
    :func:`code_digest` of the code and conformance resources in use (a version string alone
    stays the same across many algorithms between releases). How the terminology server is
    reached (its token, timeout, concurrency) changes no answer and is not in the key."""
    h = hashlib.sha256(settings.policy.model_dump_json().encode())
    h.update(orjson.dumps({k: str(v) for k, v in sorted(settings.default_uln.items())}))
    if settings.concept_map is not None:
        try:
            h.update(settings.concept_map.read_bytes())
        except OSError as exc:
            raise describe(exc, "cannot read the concept map") from None
    if settings.terminology is not None:  # none: the key of the runs before it was keyed
        h.update(b"\0terminology\0" + settings.terminology.base_url.rstrip("/").encode())
    version = f"{__version__}+algorithm.{ALGORITHM_VERSION}.code.{_installed_code_digest()}"
    return RunKey(server, h.hexdigest(), version)


@cache
def _installed_code_digest() -> str:
    return code_digest(Path(fhirtis.__file__).parent, profiles_dir())


def code_digest(package: Path, profiles: Path) -> str:
    """A digest (16 hex digits) of fhirtis's source (every ``*.py`` of ``package``) and its
    conformance resources (every ``*.json`` of ``profiles``: the code systems and value sets
    that classify the input), by path relative to each, so that where it is installed does not
    matter and compiled files do not count."""
    h = hashlib.sha256()
    for root, pattern in ((package, "*.py"), (profiles, "*.json")):
        for path in sorted(root.rglob(pattern)):
            if "__pycache__" in path.parts:
                continue
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
