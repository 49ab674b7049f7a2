"""A DiagnosticReport's results given as contained Observations are read.

HL7's own R4 example (diagnosticreport-example.json, id 101: a CBC) and lab messages converted
to FHIR put a report's results in ``DiagnosticReport.contained`` and name them from ``result``
with ``"#r1"``. fhirtis read no DiagnosticReport: a CK or a weight sent so was lost, the TIS
partial with no word on why. Now each contained result is read as an Observation of the report
(its subject and time taken from the report where it has none; its status, else the report's; a
void report gives nothing), the report is the source the Provenance names (R4 derivedFrom names
no DiagnosticReport, and a contained resource cannot be referenced from outside its container),
and a result also sent as a resource of its own (same code, time and value) is read once.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from fhirtis.clinical.facts import Instrument, Measure, ResultStatus
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.registry.ndjson_store import NdjsonStore
from fhirtis.settings import Settings
from tests.fhir.builders import (
    CORE,
    LOINC,
    PATIENT,
    administration,
    bundle,
    enzyme,
    medication,
    obs,
    patient,
    qty,
)
from tests.fhir.reading import extract
from tests.fhir.test_conformance import _errors, _run_validator

Json = dict[str, Any]
D = Decimal


def _contained(cid: str, loinc: str, value: float, unit: str, **extra: Any) -> Json:
    """A contained result as lab messages carry it: no id of its own outside the report, no
    subject and no time (the report's)."""
    r: Json = {
        "resourceType": "Observation",
        "id": cid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "valueQuantity": qty(value, unit),
    }
    r.update(extra)
    return r


def _report(rid: str, day: str, *results: Json, status: str = "final", **extra: Any) -> Json:
    r: Json = {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": "24331-1", "display": "Lipid panel"}]},
        "subject": {"reference": PATIENT},
        "effectiveDateTime": day,
        "issued": f"{day}T12:00:00Z" if "T" not in day else day,
        "contained": list(results),
        "result": [{"reference": f"#{c['id']}"} for c in results],
    }
    r.update(extra)
    return r


def _ck_measures(data: Any) -> list[Any]:
    return [m for m in data.measures if m.measure is Measure.ENZYME]


def test_a_ck_and_a_weight_contained_in_a_report_are_read() -> None:
    ck = _contained("r1", "2157-6", 1200, "U/L", referenceRange=[{"high": qty(200, "U/L")}])
    weight = _contained("r2", "29463-7", 72, "kg")
    data = extract(patient(), _report("lab1", "2024-01-08T09:30:00Z", ck, weight))
    (m,) = _ck_measures(data)
    assert (m.instrument, m.value, m.uln) == (Instrument.CK, D(1200), D(200))
    assert str(m.day) == "2024-01-08"  # the report's time
    assert m.source == "DiagnosticReport/lab1"
    (w,) = data.weights
    assert w.kg == D(72)
    assert data.used["DiagnosticReport/lab1"] == "DiagnosticReport/lab1"
    assert not [i for i in data.issues if i.severity in {"error", "fatal"}], data.issues


def test_the_report_version_is_the_source_cited() -> None:
    ck = _contained("r1", "2157-6", 900, "U/L")
    report = _report("lab1", "2024-01-08", ck, meta={"versionId": "3"})
    data = extract(patient(), report)
    (m,) = _ck_measures(data)
    assert m.source == "DiagnosticReport/lab1/_history/3"


def test_the_contained_result_own_time_and_status_win() -> None:
    ck = _contained("r1", "2157-6", 900, "U/L", status="preliminary")
    ck["effectiveDateTime"] = "2024-01-07"
    data = extract(patient(), _report("lab1", "2024-01-08", ck))
    (m,) = _ck_measures(data)
    assert str(m.day) == "2024-01-07"
    assert m.status is ResultStatus.PRELIMINARY


def test_a_result_without_status_takes_the_report_status() -> None:
    ck = _contained("r1", "2157-6", 900, "U/L")
    del ck["status"]
    data = extract(patient(), _report("lab1", "2024-01-08", ck, status="partial"))
    (m,) = _ck_measures(data)
    assert m.status is ResultStatus.PRELIMINARY  # R4: a partial report is not yet final
    data = extract(patient(), _report("lab1", "2024-01-08", dict(ck), status="corrected"))
    (m,) = _ck_measures(data)
    assert m.status is ResultStatus.CORRECTED


def test_a_void_report_gives_nothing() -> None:
    for status in ("entered-in-error", "cancelled"):
        ck = _contained("r1", "2157-6", 900, "U/L")
        weight = _contained("r2", "29463-7", 72, "kg")
        data = extract(patient(), _report("lab1", "2024-01-08", ck, weight, status=status))
        assert not data.weights
        assert all(
            m.status in {ResultStatus.ENTERED_IN_ERROR, ResultStatus.CANCELLED}
            for m in data.measures
        )
        assert not [m for m in data.measures if m.status is ResultStatus.FINAL]


def test_a_contained_result_of_another_patient_is_excluded() -> None:
    ck = _contained("r1", "2157-6", 900, "U/L", subject={"reference": "Patient/other"})
    data = extract(patient(), _report("lab1", "2024-01-08", ck))
    assert not _ck_measures(data)
    assert any("another patient" in i.diagnostics for i in data.issues)


def test_a_result_also_sent_on_its_own_is_read_once() -> None:
    standalone = enzyme("ck1", "2157-6", 900, "2024-01-08T09:30:00Z", uln=None)
    ck = _contained("r1", "2157-6", 900, "U/L")
    report = _report("lab1", "2024-01-08T09:30:00Z", ck)
    for order in ((standalone, report), (report, standalone)):
        data = extract(patient(), *order)
        (m,) = _ck_measures(data)
        assert m.source == "Observation/ck1"
        assert "DiagnosticReport/lab1" not in data.used
    # a different value at the same time is another result: both are read (and any
    # disagreement is said where the measure is chosen)
    other = _report("lab1", "2024-01-08T09:30:00Z", _contained("r1", "2157-6", 950, "U/L"))
    data = extract(patient(), standalone, other)
    assert sorted(m.source for m in _ck_measures(data)) == [
        "DiagnosticReport/lab1",
        "Observation/ck1",
    ]


def test_a_result_naming_no_contained_observation_is_reported_without_values() -> None:
    ck = _contained("r1", "2157-6", 1234, "U/L")
    report = _report("lab1", "2024-01-08", ck)
    report["result"] += [{"reference": "#gone"}, {"reference": "#r9"}]
    data = extract(patient(), report)
    assert len(_ck_measures(data)) == 1
    (issue,) = [i for i in data.issues if "DiagnosticReport/lab1" in i.diagnostics]
    assert issue.severity == "warning"
    assert "2 results" in issue.diagnostics
    assert "1234" not in issue.diagnostics


def test_the_published_cbc_report_is_read_without_a_word() -> None:
    """The shape of R4 diagnosticreport-example.json (id 101): contained results with a
    subject and no time, the report's effectiveDateTime and issued; none is a value fhirtis
    uses, so nothing is said."""
    hb = _contained("r1", "718-7", 176, "g/L", subject={"reference": PATIENT})
    plt = _contained("r6", "777-3", 444, "10*9/L", subject={"reference": PATIENT})
    report = _report("101", "2011-03-04T08:30:00+11:00", hb, plt)
    data = extract(patient(), report)
    assert not data.measures and not data.weights
    assert [i for i in data.issues if "DiagnosticReport" in i.diagnostics] == []


# -- end to end ---------------------------------------------------------------------------------

BASE, IVIG, FOLLOW = "2024-01-08", "2024-01-09", "2024-02-05"


def _visit_without_ck(i: int, day: str, pga: float, mmt: int) -> list[Json]:
    return [
        obs(f"pga{i}", "pga", pga, "cm", day),
        obs(f"ptga{i}", "ptga", 5, "cm", day),
        obs(f"mmt{i}", "mmt8-150", mmt, "{score}", day),
        obs(f"haq{i}", "haq-di", 1, "{score}", day),
        obs(f"em{i}", "extramuscular", 2, "cm", day),
    ]


def _resources() -> list[Json]:
    return [
        patient(),
        medication(),
        *_visit_without_ck(0, BASE, 6, 100),
        *_visit_without_ck(1, FOLLOW, 3, 130),
        _report("lab0", BASE, _contained("r1", "2157-6", 3000, "U/L"), meta={"versionId": "2"}),
        _report("lab1", FOLLOW, _contained("r1", "2157-6", 1200, "U/L")),
        _report(
            "wt",
            "2024-01-02",
            _contained("w", "29463-7", 70, "kg"),
            _contained("bmi", "39156-5", 32, "kg/m2"),
        ),
        administration("a1", f"{IVIG}T09:00:00Z", f"{IVIG}T13:00:00Z", dose=qty(70, "g")),
        administration("a2", "2024-01-10T09:00:00Z", "2024-01-10T13:00:00Z", dose=qty(70, "g")),
    ]


def _evaluate(resources: list[Json]) -> PatientResult:
    return evaluate_patient_resources(
        read_patient_bundle(json.dumps(bundle(*resources))), Settings()
    )


def _derived(result: PatientResult, code: str) -> Json:
    (found,) = [
        d.resource
        for d in result.derived
        if any(c.get("code") == code for c in (d.resource.get("code") or {}).get("coding", []))
    ]
    return found


def test_the_tis_uses_contained_enzymes_and_cites_their_reports_validly() -> None:
    result = _evaluate(_resources())
    tis = _derived(result, "tis")
    assert "valueQuantity" in tis, tis.get("note")  # whole, not partial: CK 3000 -> 1200 read
    refs = [r["reference"] for r in tis["derivedFrom"]]
    # R4 Observation.derivedFrom: DocumentReference|ImagingStudy|Media|QuestionnaireResponse|
    # Observation|MolecularSequence; never a DiagnosticReport
    assert all(r.startswith("Observation/") for r in refs), refs
    notes = " ".join(n["text"] for n in tis["note"])
    assert "DiagnosticReport/lab0/_history/2" in notes and "DiagnosticReport/lab1" in notes
    # the dosing weight came from a report too
    cycle = _derived(result, "ivig-cycle-dose")
    assert "derivedFrom" not in cycle or all(
        r["reference"].startswith("Observation/") for r in cycle["derivedFrom"]
    )
    assert "DiagnosticReport/wt" in " ".join(n["text"] for n in cycle["note"])
    assert cycle["valueQuantity"]["value"] == 2  # 140 g / 70 kg
    # an obesity risk factor shown by the report's BMI cites the report (Reference(Any))
    (flag,) = [d.resource for d in result.derived if d.resource["resourceType"] == "Flag"]
    assert "DiagnosticReport/wt" in json.dumps(flag)
    # the Provenance names each report, with its version (Reference(Any))
    plan = result.plan()
    assert plan.bundle is not None
    (prov,) = [
        e["resource"] for e in plan.bundle["entry"] if e["resource"]["resourceType"] == "Provenance"
    ]
    whats = {e["what"]["reference"] for e in prov["entity"]}
    assert {
        "DiagnosticReport/lab0/_history/2",
        "DiagnosticReport/lab1",
        "DiagnosticReport/wt",
    } <= whats


def test_a_bulk_export_with_a_diagnostic_report_file_is_read(tmp_path: Path) -> None:
    """A Bulk NDJSON folder (a DiagnosticReport.ndjson beside the others) is grouped by the
    report's subject and read the same way."""
    by_type: dict[str, list[Json]] = {}
    for r in _resources():
        by_type.setdefault(r["resourceType"], []).append(r)
    folder = tmp_path / "export"
    folder.mkdir()
    for kind, resources in by_type.items():
        text = "".join(json.dumps(r) + "\n" for r in resources)
        (folder / f"{kind}.ndjson").write_text(text, encoding="utf-8")
    with NdjsonStore(tmp_path / "store.db") as store:
        store.load_folder(folder)
        pr, _ = store.patient_resources(PATIENT)
    result = evaluate_patient_resources(pr, Settings())
    tis = _derived(result, "tis")
    assert "valueQuantity" in tis, tis.get("note")


def _assessment_report(rid: str, day: str, pga: float, mmt: int, ck: int) -> Json:
    """A whole assessment sent as one report: the PGA, the MMT-8 and the CK contained."""
    pga_obs = _contained("pga", "pga", pga, "cm")
    mmt_obs = _contained("mmt", "mmt8-150", mmt, "{score}")
    for r in (pga_obs, mmt_obs):
        r["code"]["coding"][0]["system"] = CORE
    return _report(rid, day, pga_obs, mmt_obs, _contained("ck", "2157-6", ck, "U/L"))


def test_every_source_in_reports_writes_a_tis_without_derived_from() -> None:
    """Where every source of a TIS is a report, the TIS has no derivedFrom (profiles fhirtis-tis
    and fhirtis-confirmed-deterioration take 0..*) and names its reports in a note."""
    result = _evaluate(
        [
            patient(),
            medication(),
            _assessment_report("v0", BASE, 6, 100, 3000),
            _assessment_report("v1", FOLLOW, 3, 130, 1200),
            administration("a1", f"{IVIG}T09:00:00Z", f"{IVIG}T13:00:00Z", dose=qty(140, "g")),
        ]
    )
    for code in ("tis", "confirmed-deterioration"):
        derived = _derived(result, code)
        assert "derivedFrom" not in derived
        assert "DiagnosticReport/v0, DiagnosticReport/v1" in derived["note"][-2]["text"]


def test_what_is_written_from_reports_conforms_to_r4_and_the_profiles() -> None:
    every = [
        *_evaluate(_resources()).derived,
        *_evaluate(
            [
                patient(),
                medication(),
                _assessment_report("v0", BASE, 6, 100, 3000),
                _assessment_report("v1", FOLLOW, 3, 130, 1200),
                administration("a1", f"{IVIG}T09:00:00Z", f"{IVIG}T13:00:00Z", dose=qty(140, "g")),
            ]
        ).derived,
    ]
    assert not _errors(_run_validator([], [d.resource for d in every]))


def test_malformed_results_of_a_report_with_contained_results_are_said() -> None:
    ck = _contained("r1", "2157-6", 1234, "U/L")
    report = _report("lab1", "2024-01-08", ck)
    report["result"] = [{"reference": "#r1"}, 7, {"reference": 5}]
    data = extract(patient(), report)
    assert len(_ck_measures(data)) == 1
    (issue,) = [i for i in data.issues if "DiagnosticReport/lab1" in i.diagnostics]
    assert "2 results name no Observation contained" in issue.diagnostics
    report["result"] = {"reference": "#r1"}  # not an array
    data = extract(patient(), report)
    assert not _ck_measures(data)
    (issue,) = data.issues
    assert issue.severity == "error" and "result must be an array" in issue.diagnostics


def test_a_report_without_contained_results_is_not_read_here() -> None:
    """Results that are resources of their own are read as listed; the report is not checked
    (an imaging report with a status fhirtis does not know says nothing)."""
    standalone = enzyme("ck1", "2157-6", 900, "2024-01-08", uln=None)
    report = _report("img", "2024-01-08", status="done")
    report["result"] = [{"reference": "Observation/ck1"}, {"display": "see scan"}]
    data = extract(patient(), standalone, report)
    (m,) = _ck_measures(data)
    assert m.source == "Observation/ck1"
    assert not data.issues
