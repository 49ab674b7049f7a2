"""Every bundled example against its expected results (worked by hand in examples/expected)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhirtis.fhir.outcome import InputError
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import evaluate_bundle_file
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXPECTED = sorted((EXAMPLES / "expected").glob("*.json"))


def _settings_for(name: str) -> Settings:
    if "local-codes" in name:
        return Settings(concept_map=EXAMPLES / "conceptmap-hospital.json")
    return Settings()


def _bundle_for(name: str) -> Path:
    for folder in ("bundles", "invalid"):
        path = EXAMPLES / folder / f"{name}.json"
        if path.exists():
            return path
    raise AssertionError(f"no bundle for expected/{name}.json")


def _places(number: float | int) -> int:
    text = repr(number)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def contains(actual: Any, expected: Any, where: str = "$") -> list[str]:
    """Where ``actual`` differs from ``expected`` (expected may omit keys; numbers compare at
    the precision written in the expected file)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object"]
        problems: list[str] = []
        for key, value in expected.items():
            if key.startswith("_"):
                continue
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
                continue
            problems += contains(actual[key], value, f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            got = len(actual) if isinstance(actual, list) else type(actual).__name__
            return [f"{where}: expected {len(expected)} items, got {got}"]
        return [
            p
            for i, (a, e) in enumerate(zip(actual, expected, strict=True))
            for p in contains(a, e, f"{where}[{i}]")
        ]
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return [] if actual == expected else [f"{where}: expected {expected!r}, got {actual!r}"]
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return [f"{where}: expected {expected!r}, got {actual!r}"]
    places = _places(expected)
    got = Decimal(repr(actual)).quantize(Decimal(1).scaleb(-places))
    want = Decimal(repr(expected)).quantize(Decimal(1).scaleb(-places))
    return [] if got == want else [f"{where}: expected {expected!r}, got {actual!r}"]


def _issues_match(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> list[str]:
    problems = []
    for e in expected:
        hits = [
            a
            for a in actual
            if a.get("resource") == e["resource"]
            and e.get("expression_contains", "") in (a.get("expression") or "")
        ]
        if not hits:
            problems.append(f"issues: nothing for {e}")
    return problems


@pytest.mark.parametrize("expected_path", EXPECTED, ids=[p.stem for p in EXPECTED])
def test_example(expected_path: Path) -> None:
    expected = json.loads(expected_path.read_text())
    bundle = _bundle_for(expected_path.stem)
    if expected.get("input_error"):
        with pytest.raises(InputError) as info:
            evaluate_bundle_file(bundle, _settings_for(expected_path.stem))
        text = " ".join(i.diagnostics for i in info.value.issues)
        assert expected.get("diagnostics_contains", "") in text
        return
    result = evaluate_bundle_file(bundle, _settings_for(expected_path.stem))
    summary = json.loads(
        dumps(patient_summary(result.patient_ref, result.evaluation, result.issues))
    )
    expected_issues = expected.pop("issues", None)
    problems = contains(summary, expected)
    if expected_issues is not None:
        problems += _issues_match(summary["issues"], expected_issues)
        if not expected_issues:
            problems += [f"unexpected issue {i}" for i in summary["issues"]]
    assert not problems, "\n".join(problems)
