"""Model validation of what fhirtis writes: on in the test suite, on demand elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fhirtis.fhir import derive, validation
from fhirtis.pipeline.offline import evaluate_bundle_file
from fhirtis.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bundles" / "dvt-after-cycle.json"


def test_the_suite_runs_with_validation_on() -> None:
    assert validation.enabled()


def test_a_nonconforming_resource_is_refused() -> None:
    with pytest.raises(ValidationError):
        validation.validate({"resourceType": "Flag", "status": "maybe", "code": {}})


def test_every_derived_resource_and_the_provenance_are_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    def record(resource: dict[str, Any]) -> dict[str, Any]:
        seen.append(resource["resourceType"])
        return resource

    monkeypatch.setattr(derive, "validate", record)
    result = evaluate_bundle_file(EXAMPLE, Settings())
    assert len(seen) == len(result.derived)
    plan = result.plan()
    assert plan.bundle is not None
    assert seen[-1] == "Provenance" and len(seen) == len(plan.bundle["entry"])
    seen.clear()
    monkeypatch.setenv(validation.ENV, "0")
    evaluate_bundle_file(EXAMPLE, Settings()).plan()
    assert seen == []
