"""The per-patient summary record is one versioned schema: what evaluate/cohort write reads back
through it unchanged, and a record it cannot vouch for is refused with the place and reason."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import evaluate_bundle_file, evaluate_patient_resources
from fhirtis.pipeline.records import SCHEMA_VERSION, PatientSummary, summarise
from fhirtis.settings import load_settings
from tests.fhir import builders as b

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("bundle", sorted((EXAMPLES / "bundles").glob("*.json")), ids=str)
def test_written_records_read_back_unchanged(bundle: Path) -> None:
    settings = load_settings(EXAMPLES / "settings.toml")
    result = evaluate_bundle_file(bundle, settings)
    written = dumps(summarise(result.patient_ref, result.evaluation, result.issues).record())
    read = PatientSummary.read(json.loads(written, parse_float=Decimal))
    assert dumps(read.record()) == written


def _record() -> dict[str, object]:
    result = evaluate_bundle_file(EXAMPLES / "bundles" / "adult-responder.json", load_settings())
    record = summarise(result.patient_ref, result.evaluation, result.issues).record()
    return json.loads(dumps(record), parse_float=Decimal)  # type: ignore[no-any-return]


def test_newer_schema_version_is_refused() -> None:
    record = _record()
    assert PatientSummary.read({**record, "schema_version": SCHEMA_VERSION}).schema_version == 1
    with pytest.raises(ValueError, match="schema version 2 is newer"):
        PatientSummary.read({**record, "schema_version": SCHEMA_VERSION + 1})


def test_an_inconsistent_record_is_refused_with_its_place() -> None:
    record = _record()
    first = dict(record["assessments"][0])  # type: ignore[index]
    first["tis_lower"] = Decimal(99)
    bad = {**record, "assessments": [first]}
    with pytest.raises(ValueError, match=r"assessments\.0.*differ from a complete tis"):
        PatientSummary.read(bad)
    with pytest.raises(ValueError, match="as_of"):
        PatientSummary.read({**record, "as_of": "yesterday"})


def test_an_event_whose_earliness_is_unknown_is_recorded_as_unknown() -> None:
    """Clinical spec §5.3: a date-only onset on the day of an infusion that ran 10:00-14:00 is
    early for part of that day only, so "early" is unknown. The record says so (null); it
    neither refuses the patient (a ValidationError ended `fhirtis evaluate` before) nor guesses."""
    raw = orjson.dumps(
        b.bundle(
            b.patient(),
            b.medication(),
            b.obs("w", "29463-7", 70, "kg", "2024-03-01", system=b.LOINC),
            b.administration(
                "a1", "2024-03-04T10:00:00+01:00", "2024-03-04T14:00:00+01:00", dose=b.qty(140, "g")
            ),
            b.condition("dvt", b.SCT, "128053003", "2024-03-04"),  # deep venous thrombosis
        )
    )
    result = evaluate_patient_resources(read_patient_bundle(raw), load_settings())
    [event] = result.evaluation.thrombosis.associated_events
    assert event.early is None
    written = dumps(summarise(result.patient_ref, result.evaluation, result.issues).record())
    [recorded] = json.loads(written)["thrombosis"]["associated_events"]
    assert recorded["early"] is None
    assert PatientSummary.read(json.loads(written, parse_float=Decimal)).record() == (
        summarise(result.patient_ref, result.evaluation, result.issues).record()
    )
