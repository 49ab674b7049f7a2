"""Withdrawn output of an earlier fhirtis build still conforms to the profile it names.

fhirtis withdraws stored output that a new derivation no longer produces by putting the stored
resource back with ``status`` ``entered-in-error`` and its ``meta.profile`` (``plan.withdrawal``).
A TIS Observation stored by fhirtis 0.1.0 has 12 components: the ProDERM ``responder``
component came later (CHANGELOG, Unreleased, Added; the 0.1.0 profile said ``component``
12..12). A server that validates writes against the profile a resource names (HAPI's
RepositoryValidatingInterceptor, as tests/fhir/test_s24b_conformance_output.py's withdrawn Flag)
refuses such a withdrawal when the profile demands the responder of every TIS, and the stale
TIS stays ``final``. The responder stays required of every TIS that is not withdrawn.
"""

from __future__ import annotations

import copy
from typing import Any

from fhirtis.fhir.plan import RETIRED, withdrawal
from tests.fhir.test_conformance import _errors, _evaluate, _run_validator

Json = dict[str, Any]

FHIRTIS = "http://fhirtis.org/fhir/CodeSystem/fhirtis"
TIS_PROFILE = "http://fhirtis.org/fhir/StructureDefinition/fhirtis-tis"


def _is_responder(component: Json) -> bool:
    return any(
        c.get("system") == FHIRTIS and c.get("code") == "responder"
        for c in component["code"]["coding"]
    )


def _tis_as_0_1_0_stored_it() -> tuple[Json, str]:
    """The adult's first TIS as 0.1.0 wrote it (no responder component), stored on a server."""
    adult = _evaluate("adult")
    (d, *_) = [d for d in adult.derived if d.resource["meta"]["profile"] == [TIS_PROFILE]]
    stored = copy.deepcopy(d.resource)
    stored["component"] = [c for c in stored["component"] if not _is_responder(c)]
    assert len(stored["component"]) == 12
    stored["id"] = "tis-from-0-1-0"
    stored["meta"] = {**stored["meta"], "versionId": "2"}
    return stored, d.identifier


def test_a_withdrawn_tis_of_0_1_0_conforms_and_a_live_one_needs_its_responder() -> None:
    stored, identifier = _tis_as_0_1_0_stored_it()
    withdrawn = withdrawal(stored, identifier).derived.resource
    assert withdrawn["status"] == RETIRED
    assert withdrawn["meta"]["profile"] == [TIS_PROFILE]
    live_without_responder = {**stored, "status": "final"}
    results = _run_validator([], [withdrawn, live_without_responder])
    assert not _errors(results[:1]), "\n".join(_errors(results[:1]))
    live_errors = _errors(results[1:])
    assert any("responder" in e for e in live_errors), live_errors
