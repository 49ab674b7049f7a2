"""A Condition added later to a thromboembolism already written back updates its AdverseEvent.

One clot recorded as several Conditions is one AdverseEvent, identified by the first of its
Conditions in sorted order (fhir.derive._adverse_event). Where the event was written back while
one Condition recorded it (an encounter diagnosis, ``Condition/c2``) and the EHR records it again
later under an id that sorts first (a problem-list entry, ``Condition/c1``; on HAPI FHIR
``Condition/10`` sorts before ``Condition/9``), the event's identifier changes. Its stored
AdverseEvent (same patient, category, onset and event code, naming ``Condition/c2``) is the same
event: it is updated in place (stored_output._successor), as clinical spec §7 asks ("changed
inputs update in place"), never deleted and created again beside it (HAPI refuses that delete,
an earlier Provenance names the AdverseEvent, and the clot then has two AdverseEvents). Before,
only a stored AdverseEvent naming the new first Condition counted as the same event."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fhirtis.fhir.derive import Derived
from fhirtis.pipeline import stored_output as stored_module
from fhirtis.pipeline.stored_output import _found_by_condition, stored_output
from tests.fhir.builders import SCT, condition
from tests.fhir.tee_course import DVT, evaluate_course, in_category

Json = dict[str, Any]


def _adverse_event(*conditions: Json) -> Derived:
    result = evaluate_course(*conditions, infusions=1)
    (found,) = [d for d in result.derived if d.resource["resourceType"] == "AdverseEvent"]
    return found


DIAGNOSIS = condition(
    "c2", SCT, DVT, "2024-01-10T08:00:00+01:00", **in_category("encounter-diagnosis")
)
PROBLEM = condition("c1", SCT, DVT, "2024-01-10", **in_category("problem-list-item"))


def test_the_stored_adverse_event_of_the_event_is_found_by_the_write_condition() -> None:
    before = _adverse_event(DIAGNOSIS)
    after = _adverse_event(PROBLEM, DIAGNOSIS)
    assert before.identifier != after.identifier  # the first Condition is now c1
    stored = {**before.resource, "id": "ae-1"}
    assert _found_by_condition(after, stored)
    # a stored AdverseEvent naming none of the event's Conditions is another event
    other = {**stored, "resultingCondition": [{"reference": "Condition/c9"}]}
    assert not _found_by_condition(after, other)


def test_the_stored_adverse_event_is_updated_in_place_not_withdrawn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _adverse_event(DIAGNOSIS)
    after = _adverse_event(PROBLEM, DIAGNOSIS)
    stored = {**before.resource, "id": "ae-1"}

    async def found(*_: object) -> tuple[list[Json], list[Any]]:
        return [stored], []

    monkeypatch.setattr(stored_module, "_find_own_output", found)
    out = asyncio.run(stored_output(None, "Patient/p1", [after], {}))  # type: ignore[arg-type]
    assert out.withdraw == []
    assert out.existing[after.identifier]["id"] == "ae-1"
