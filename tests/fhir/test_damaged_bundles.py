"""Real-shaped Bundles damaged at random (an element removed, or replaced by JSON of another
type or an absurd value): fhirtis evaluates, derives and summarises every one, or refuses the
Bundle as unusable (InputError); nothing else may escape. Seeded, so every run damages the same
way; each crash this found is also a named test (test_malformed_shapes, test_absurd_numbers)."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.outcome import InputError
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [
    path
    for path in sorted((ROOT / "examples" / "bundles").glob("*.json"))
    + sorted((ROOT / "tests" / "data").glob("*.json"))
    if path.name != "expected.json"  # the corpus's worked results, not a Bundle
]
DAMAGED_PER_FILE = 40
# what a damaged element becomes: other JSON types, empty and odd values, absurd numbers
REPLACEMENTS: list[Any] = [
    None, True, 0, -1, 1.5, 1e308, 10**30, 1e-300, "", "x", "2024-13-45", "NaN", [], [1], {},
    {"a": 1}, [{}], [None], "#", "Patient/", {"reference": 5}, {"coding": 3}, {"value": "12"},
    {"start": 5}, [{"reference": "#x"}],
]  # fmt: skip


def _places(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every element inside an entry's resource (Bundle.entry[i].resource.…)."""
    if isinstance(doc, dict):
        items: Any = doc.items()
    else:
        items = enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        place = (*path, key)
        if len(place) > 3:
            yield place
        yield from _places(value, place)


def _damaged(doc: Any, rng: random.Random) -> Any:
    out = copy.deepcopy(doc)
    places = list(_places(out))
    for _ in range(rng.randint(1, 3)):
        place = rng.choice(places)
        parent = out
        try:
            for key in place[:-1]:
                parent = parent[key]
            if rng.random() < 0.15 and isinstance(parent, dict):
                del parent[place[-1]]
            else:
                parent[place[-1]] = rng.choice(REPLACEMENTS)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier damage removed or replaced the way there
    return out


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
def test_damaged_bundles_are_evaluated_or_refused(path: Path) -> None:
    doc = orjson.loads(path.read_bytes())
    rng = random.Random(path.name)
    settings = Settings()
    for _ in range(DAMAGED_PER_FILE):
        raw = json.dumps(_damaged(doc, rng)).encode()  # (orjson writes no integer of 10^30)
        try:
            result = evaluate_patient_resources(read_patient_bundle(raw), settings)
        except InputError:
            continue  # refused as unusable, saying why: allowed
        plan = result.plan()
        if plan.bundle is not None:
            json.dumps(plan.bundle, allow_nan=False)
        dumps(patient_summary(result.patient_ref, result.evaluation, result.issues))
