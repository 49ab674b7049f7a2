"""A Condition whose ``clinicalStatus`` is text only ("Resolved", no coding: the R4 required
binding not met, as some feeds send it) is counted as active, the cautious reading for a rate
limit, but no longer silently: a warning says the status could not be read."""

from __future__ import annotations

import orjson

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import terminology
from fhirtis.fhir.extract import Extractor, ExtractSettings
from tests.fhir.builders import ICD, bundle, condition, patient


def _extract(status: dict[str, object] | None) -> object:
    htn = condition("htn", ICD, "I10", "2015-01-01")
    if status is not None:
        htn["clinicalStatus"] = status
    pr = read_patient_bundle(orjson.dumps(bundle(patient(), htn)))
    ex = Extractor(terminology(), ExtractSettings())
    return ex.extract(pr.patient_ref, pr.resources, pr.resolve)


def test_a_text_only_clinical_status_is_counted_and_said() -> None:
    data = _extract({"text": "Resolved"})
    assert [e.kind for e in data.evidence] == [RiskFactorKind.CARDIOVASCULAR]  # type: ignore[attr-defined]
    (said,) = [i for i in data.issues if "clinicalStatus" in (i.expression or "")]  # type: ignore[attr-defined]
    assert said.severity == "warning" and said.resource == "Condition/htn"
    assert "no code" in said.diagnostics and "Resolved" not in said.diagnostics


def test_a_coded_or_absent_clinical_status_is_not_said() -> None:
    for status in (None, {"coding": [{"code": "active"}], "text": "Active"}):
        data = _extract(status)
        assert not [i for i in data.issues if "clinicalStatus" in (i.expression or "")]  # type: ignore[attr-defined]
