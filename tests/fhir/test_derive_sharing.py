"""The fast paths of ``derive`` (issue 13, one core) give exactly what the plain code gave, and
the parts that derived resources share stay safe to copy and change.

Derived resources share constant parts (codings, profiles, the policy note) and parts made once
per distinct value (a component of a given code and value) across resources: never within one
resource, so a deep copy of a resource is a tree of its own, and changing it (as the conformance
tests' negative cases do) changes no other resource and nothing derived later.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from fhirtis.clinical.facts import FhirTime
from fhirtis.clinical.policy import Policy
from fhirtis.fhir import derive
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.derive import Derived
from fhirtis.fhir.plan import plan_writes
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.patients import responder
from tests.synthetic import make_cohort

Json = dict[str, Any]

# fhirtis's fixed uuid5 namespace for fullUrls (fhirtis.fhir.derive)
NAMESPACE = uuid.UUID("4f6f6c0e-6d79-6f73-6974-69732d666869")


def _derived_of(doc: Json) -> list[Derived]:
    return evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings()).derived


def _patients() -> Iterator[Json]:
    # 4 suspects of one AdverseEvent, rate findings, partial TIS, and a varied synthetic cohort
    yield responder(dvt_after_cycle=2, fast_admin=True)
    yield responder(missing_haq_week=12)
    yield from make_cohort(40, seed=13)


def _containers(node: object) -> Iterator[object]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _containers(v)
    elif isinstance(node, list):
        yield node
        for v in node:
            yield from _containers(v)


@given(st.text())
@example("tis-0123456789abcdef01234567")
def test_full_url_is_the_uuid5_of_the_identifier(identifier: str) -> None:
    assert Derived({}, identifier).full_url == f"urn:uuid:{uuid.uuid5(NAMESPACE, identifier)}"


def _reference_number(value: Decimal) -> int | float:
    """What derive wrote before the fast path: quantize to 4 places, normalize, int or float."""
    quantized = value.quantize(Decimal("1E-4"))
    quantized = quantized.normalize() if quantized != 0 else Decimal(0)
    return int(quantized) if quantized == quantized.to_integral_value() else float(quantized)


@given(st.integers(-(10**14), 10**14), st.integers(0, 8))
@example(75, 1)
@example(750, 2)
@example(-1, 5)  # -0.00001 rounds to -0.0000: written 0
@example(35714286, 7)
@example(5, 5)  # 0.00005: half-even to 0.0000
@example(15, 5)  # 0.00015: half-even to 0.0002
def test_json_number_is_the_quantized_decimal(coefficient: int, places: int) -> None:
    value = Decimal(coefficient).scaleb(-places)
    expected = _reference_number(value)
    for _ in range(2):  # made, then remembered
        number = derive._json_number(value)
        assert type(number) is type(expected)
        assert number == expected


def test_no_container_appears_twice_within_a_resource() -> None:
    for doc in _patients():
        for d in _derived_of(doc):
            ids = [id(c) for c in _containers(d.resource)]
            assert len(ids) == len(set(ids)), d.resource_type


def test_changing_a_copy_of_a_resource_changes_nothing_else() -> None:
    docs = list(_patients())
    derived = [_derived_of(doc) for doc in docs]
    before = [orjson.dumps([d.resource for d in ds]) for ds in derived]
    for ds in derived:
        for d in ds:
            changed = copy.deepcopy(d.resource)
            for c in _containers(changed):
                if isinstance(c, dict):
                    c["changed"] = True
                elif isinstance(c, list):
                    c.append("changed")
            assert changed != d.resource
    assert [orjson.dumps([d.resource for d in ds]) for ds in derived] == before
    again = [orjson.dumps([d.resource for d in _derived_of(doc)]) for doc in docs]
    assert again == before


_OFFSETS = st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(hours=-5, minutes=-30)])


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    _OFFSETS,
    _OFFSETS,
)
def test_time_texts_are_the_isoformat_of_each_object(
    local: datetime, offset: timedelta, other_offset: timedelta
) -> None:
    """Remembered per object, not per value: one instant in two offsets is two texts."""
    t = local.replace(tzinfo=timezone(offset))
    same_instant = t.astimezone(timezone(other_offset))
    assert same_instant == t
    for _ in range(2):  # made, then remembered
        assert derive._instant(t) == t.isoformat()
        assert derive._instant(same_instant) == same_instant.isoformat()
        assert derive._instant(FhirTime.of(t)) == FhirTime.of(t).isoformat()
        assert derive._instant(FhirTime.of(t.date())) == t.date().isoformat()
        assert derive._day(t.date()) == t.date().isoformat()


def test_time_texts_of_short_lived_objects() -> None:
    """Objects made and dropped one after the other (their ids are reused) keep their texts."""
    start = datetime(2024, 3, 31, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    for minutes in range(3000):
        t = start + timedelta(minutes=minutes)
        assert derive._instant(FhirTime.of(t)) == t.isoformat()


@given(st.lists(st.sampled_from(["Observation/b", "Observation/a", "Condition/c", "Patient/p"])))
def test_sorted_unique_is_sorted_set(values: list[str]) -> None:
    assert derive._sorted_unique(values) == sorted(set(values))
    assert derive._references(sorted(set(values))) == [
        {"reference": s} for s in sorted(set(values))
    ]


def test_policy_notes_follow_the_policy_object() -> None:
    default, other = Policy(), Policy(advanced_age_years=60)
    note = derive._policy_note(default)
    assert derive._policy_note(default) is note  # remembered for the same object
    assert derive._policy_note(other) != note  # another policy: its own note
    assert "advanced_age_years=60" in derive._policy_note(other)["text"]
    assert derive._policy_note(Policy()) == note  # an equal policy: an equal note
    assert derive._policy_note(default) == note


def test_planned_entries_are_the_derived_resources_properties() -> None:
    """plan_writes reads the identifier, resource and match directly: what the properties give."""
    for doc in _patients():
        resources = read_patient_bundle(orjson.dumps(doc))
        result = evaluate_patient_resources(resources, Settings())
        plan = plan_writes(result.derived, ["Patient/p"], datetime(2025, 1, 1, tzinfo=UTC))
        assert plan.bundle is not None
        entries = plan.bundle["entry"][:-1]
        assert len(entries) == len(result.derived)
        for d, entry in zip(result.derived, entries, strict=True):
            assert entry["fullUrl"] == d.full_url
            assert entry["resource"] is d.resource
            assert entry["request"] == {
                "method": "POST",
                "url": d.resource_type,
                "ifNoneExist": d.if_none_exist,
            }
