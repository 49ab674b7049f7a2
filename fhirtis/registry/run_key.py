"""The ledger's key of a run besides each patient's input (issue 13): the server written to, a
digest of every setting that changes results, and the fhirtis algorithm version. Used by the
cohort run (per patient) and by the Group export (whose ``_since`` holds only under the same
key)."""

from __future__ import annotations

import hashlib

import orjson

from fhirtis import __version__
from fhirtis.fhir.derive import ALGORITHM_VERSION
from fhirtis.registry.errors import describe
from fhirtis.registry.ledger import RunKey
from fhirtis.settings import Settings

__all__ = ["run_key"]


def run_key(settings: Settings, server: str) -> RunKey:
    """The ledger's key besides the input: the server, a digest of every value that changes
    results (the clinical policy, default ULNs, the concept map's content, the terminology
    server asked about unlisted codes), the version. How the terminology server is reached
    (its token, timeout, concurrency) changes no answer and is not in the key."""
    h = hashlib.sha256(settings.policy.model_dump_json().encode())
    h.update(orjson.dumps({k: str(v) for k, v in sorted(settings.default_uln.items())}))
    if settings.concept_map is not None:
        try:
            h.update(settings.concept_map.read_bytes())
        except OSError as exc:
            raise describe(exc, "cannot read the concept map") from None
    if settings.terminology is not None:  # none: the key of the runs before it was keyed
        h.update(b"\0terminology\0" + settings.terminology.base_url.rstrip("/").encode())
    return RunKey(server, h.hexdigest(), f"{__version__}+algorithm.{ALGORITHM_VERSION}")
