"""An AdverseEvent that cites the Condition of its thromboembolism (``resultingCondition``) is the
same event, counted once (tests/data/dvt-cited-by-adverse-event.json). Where that citation
cannot be read (one Reference sent bare instead of a list, an item that is not a Reference, a
Reference by identifier only), fhirtis cannot tell and counts the AdverseEvent as an event of its
own, which also writes a second ``tee-temporally-associated`` AdverseEvent for one DVT. Found by
damaging that fixture: the count doubled without a word. Now a warning names the element.

Since s36 (one clot, one event: clinical spec §5.3) an AdverseEvent of the same kind at the same
instant as the Condition (as in the fixture) is that event's record whatever its citation says:
named in the event's ``also``, counted once. One at another time is still counted on its own."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "dvt-cited-by-adverse-event.json"
AE = "AdverseEvent/dvtae-ae"


def _evaluate(cited: Any, date: str | None = None) -> PatientResult:
    doc = orjson.loads(FIXTURE.read_bytes())
    (ae,) = [e["resource"] for e in doc["entry"] if e["resource"]["id"] == "dvtae-ae"]
    if date is not None:
        ae["date"] = date
    if cited is None:
        del ae["resultingCondition"]
    else:
        ae["resultingCondition"] = copy.deepcopy(cited)
    return evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings())


def _events(result: PatientResult) -> list[str]:
    return sorted(a.event.source for a in result.evaluation.thrombosis.associated_events)


def _records(result: PatientResult) -> list[tuple[str, ...]]:
    """Each associated event's records: its source, then the others of the same clot."""
    return sorted(a.event.sources for a in result.evaluation.thrombosis.associated_events)


#: the fixture's DVT Condition is at 2025-09-18T20:00-05:00: this is another time, two days on
LATER = "2025-09-20T08:00:00-05:00"


def _warned(result: PatientResult) -> bool:
    return any(
        i.resource == AE and (i.expression or "").endswith("resultingCondition")
        for i in result.issues
    )


def test_a_readable_citation_counts_the_event_once() -> None:
    result = _evaluate([{"reference": "Condition/dvtae-dvt"}])
    assert _events(result) == ["Condition/dvtae-dvt"]
    assert not _warned(result)


@pytest.mark.parametrize(
    "cited",
    [
        {"reference": "Condition/dvtae-dvt"},  # one Reference, not a list
        [[{"reference": "Condition/dvtae-dvt"}]],  # a list in the list
        [{"identifier": {"system": "urn:ehr:problem", "value": "778"}}],  # no literal reference
        7,
    ],
    ids=["bare Reference", "nested list", "identifier only", "a number"],
)
def test_an_unreadable_citation_is_said_where_the_event_may_count_twice(cited: Any) -> None:
    result = _evaluate(cited, LATER)
    assert AE in _events(result)  # counted on its own: fhirtis cannot tell
    assert _warned(result)
    # at the Condition's own instant it is the same clot's record all the same (s36)
    same = _evaluate(cited)
    assert _records(same) == [("Condition/dvtae-dvt", AE)]
    assert _warned(same)


def test_no_citation_is_no_warning() -> None:
    """An AdverseEvent that cites nothing is an event of its own, as recorded: nothing to say;
    at the Condition's instant, the same clot's record (s36)."""
    result = _evaluate(None, LATER)
    assert AE in _events(result)
    assert not _warned(result)
    same = _evaluate(None)
    assert _records(same) == [("Condition/dvtae-dvt", AE)]
    assert not _warned(same)
