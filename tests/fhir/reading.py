"""Reading test Bundles with the shipped terminology: what the extraction tests share."""

from __future__ import annotations

from typing import Any

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import terminology
from fhirtis.fhir.extract import Extractor, ExtractSettings, PatientData
from fhirtis.fhir.outcome import Issue
from tests.fhir.builders import bundle

UNCLASSIFIED = "could not be classified"


def extract(*resources: dict[str, Any]) -> PatientData:
    """The facts of a Bundle of ``resources``, read as ``fhirtis evaluate`` reads them."""
    pr = read_patient_bundle(orjson.dumps(bundle(*resources)))
    ex = Extractor(terminology(), ExtractSettings())
    return ex.extract(pr.patient_ref, pr.resources, pr.resolve)


def unclassified(data: PatientData) -> list[Issue]:
    """The warnings about codes the shipped ValueSets could not classify."""
    return [i for i in data.issues if UNCLASSIFIED in i.diagnostics]
