"""The cohort report's thrombosis risk factors that the data did not allow to assess (s34 audit
of what a registry analyst gets; clinical spec preamble: "where data does not allow a rule to
run, the result says so"; §5.1).

The summary record lists them (``thrombosis.unassessed``, the tee-risk Flag's
tee-risk-unassessed extension; `fhirtis evaluate` prints "none found, not assessable: …"), but
``fhirtis report`` dropped them: ``patients.csv``'s ``risk_factors`` cell was empty both for a
patient assessed for every factor and for one whose BMI or PGA was never recorded, and the
summary counted only "patients with ≥ 1 risk factor". In tests/synthetic.py's cohort (no
height, so no BMI) every patient without a factor found was such a patient: 124 of 240 (with
real Synthea patients) read as "no risk factor"."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from fhirtis.registry.report import build_report, write_csv, write_json

Json = dict[str, Any]


def _record(ref: str, found: list[str], unassessed: list[str] | None) -> Json:
    thrombosis: Json = {
        "risk_factors": found,
        "risk_evidence": {f: [f"Patient/{ref}"] for f in found},
        "max_rate_now": 3.3 if found else 4,
        "rate_findings": [],
        "associated_events": [],
        "history_events": [],
    }
    if unassessed is not None:
        thrombosis["unassessed"] = [{"factor": f, "reason": "no data"} for f in unassessed]
    return {
        "patient": f"Patient/{ref}",
        "as_of": "2024-06-01T00:00:00+00:00",
        "population": "adult",
        "population_reason": "adult-default",
        "baseline": None,
        "assessments": [],
        "confirmed_deterioration": None,
        "ivig": {"cycle_count": 0, "cumulative_grams": 0, "cumulative_g_per_kg": 0, "cycles": []},
        "thrombosis": thrombosis,
        "issues": [],
        "notes": [],
        "policy": {},
    }


def _records() -> list[Json]:
    return [
        _record("assessed", [], []),
        _record("no-bmi", [], ["obesity"]),
        _record("no-bmi-no-pga", [], ["obesity", "inflammation"]),
        _record("old-with-age", ["advanced-age"], ["obesity"]),
        _record("written-before", [], None),  # a record from before `unassessed` was recorded
    ]


def test_csv_says_which_factors_could_not_be_assessed(tmp_path: Path) -> None:
    path = write_csv(build_report(_records()), tmp_path / "patients.csv")
    with path.open(newline="", encoding="utf-8") as f:
        rows = {r["patient"].removeprefix("Patient/"): r for r in csv.DictReader(f)}
    cells = {ref: (r["risk_factors"], r["risk_factors_unassessed"]) for ref, r in rows.items()}
    assert cells == {
        "assessed": ("", ""),
        "no-bmi": ("", "obesity"),
        "no-bmi-no-pga": ("", "obesity; inflammation"),
        "old-with-age": ("advanced-age", "obesity"),
        "written-before": ("", ""),
    }


def test_summary_counts_patients_whose_none_found_is_not_none(tmp_path: Path) -> None:
    report = build_report(_records())
    tee = report.tee
    assert (tee.patients_with_risk_factor.count, tee.patients_with_risk_factor.total) == (1, 5)
    assert dict(tee.risk_factors_unassessed) == {"obesity": 3, "inflammation": 1}
    assert tee.patients_none_found_some_unassessed == 2
    record = report.tee.as_record()
    assert record["risk_factors_unassessed"] == {"obesity": 3, "inflammation": 1}
    assert record["patients_none_found_some_unassessed"] == 2
    assert write_json(report, tmp_path / "summary.json").read_text().count("unassessed") == 2
