"""A MedicationRequest whose ``doNotPerform`` is no boolean (``null``, ``"true"``, ``1``) is
said, not read in silence (s39 fuzz).

FHIR JSON allows no null (R4 json.html: "null values are not allowed"), and
``MedicationRequest.doNotPerform`` is a boolean modifier ("True if request is prohibiting
action"). A malformed one cannot say whether the order prohibits its estrogen. fhirtis keeps the
reading on the safe side for the IVIG rate (the order is read as an order: estrogen use, the
3.3 mg/kg/min limit) and now says so in a warning at the element, naming the request; before,
the prohibited estrogen counted as a risk factor with no note. Fixture: the QI-Core
``qicore-medicationprohibited`` shape of tests/data/s32-pub (read only here)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.settings import Settings
from tests.fhir.test_s32pub_do_not_perform import REQUEST, _fixture, _request


def _evaluated(value: Any) -> Any:
    doc = _fixture()
    _request(doc)["doNotPerform"] = value
    return evaluate_bundle_bytes(json.dumps(doc).encode(), "malformed", Settings())


@pytest.mark.parametrize("value", [None, "true", 1, [True], {}])
def test_a_do_not_perform_that_is_no_boolean_is_said(value: Any) -> None:
    result = _evaluated(value)
    sources = [e.source for e in result.data.evidence if e.kind is RiskFactorKind.ESTROGEN]
    assert sources == [REQUEST]  # read as an order: the safe side for the IVIG rate
    assert result.evaluation.thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    said = [i for i in result.issues if (i.expression or "").endswith(".doNotPerform")]
    assert len(said) == 1, result.issues
    assert said[0].severity == "warning"
    assert said[0].resource == REQUEST
    assert "not a boolean" in said[0].diagnostics


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_do_not_perform_needs_no_note(value: bool) -> None:
    result = _evaluated(value)
    assert [i for i in result.issues if (i.expression or "").endswith(".doNotPerform")] == []
