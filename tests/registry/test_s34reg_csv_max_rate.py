"""patients.csv's maximum infusion rate (s34 audit of what a registry analyst gets).

A cycle whose maximum rate is over some of its infusions only (``cycle-max-rate-partial``), or
a cycle with no rate known at all (``cycle-max-rate-unknown``), leaves the patient's maximum
rate unknown: the true maximum is at least the largest known one. The CSV wrote that largest
known rate as a plain number in ``max_rate_mg_kg_min``, indistinguishable from a maximum over
every infusion, while `fhirtis evaluate` marks such a rate "(partial)" and the report's own
TEE-by-rate strata count such a cycle as "rate unknown" (clinical spec preamble: "where data
does not allow a rule to run, the result says so (missing, partial, …)"). The CSV now marks it
as it marks a partial TIS: the plain column is empty, ``max_rate_lower_mg_kg_min`` holds the
largest known rate (a lower bound of the maximum) and ``max_rate_partial`` says so."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from fhirtis.registry.report import CSV_COLUMNS, build_report, write_csv

Json = dict[str, Any]


def _record(ref: str, cycles: list[tuple[float | None, list[str]]]) -> Json:
    return {
        "patient": f"Patient/{ref}",
        "as_of": "2024-06-01T00:00:00+00:00",
        "population": "adult",
        "population_reason": "adult-default",
        "baseline": None,
        "assessments": [],
        "confirmed_deterioration": None,
        "ivig": {
            "cycle_count": len(cycles),
            "cumulative_grams": 140 * len(cycles),
            "cumulative_g_per_kg": 2 * len(cycles),
            "cycles": [
                {
                    "index": i,
                    "start": f"2024-0{i}-01T09:00:00+00:00",
                    "end": f"2024-0{i}-02T13:00:00+00:00",
                    "administrations": 2,
                    "in_progress": 0,
                    "grams": 140,
                    "g_per_kg": 2,
                    "dosing_weight_kg": 70,
                    "dosing_weight_basis": "actual",
                    "max_rate_mg_kg_min": rate,
                    "warnings": warnings,
                }
                for i, (rate, warnings) in enumerate(cycles, start=1)
            ],
        },
        "thrombosis": {
            "risk_factors": [],
            "risk_evidence": {},
            "max_rate_now": 4,
            "rate_findings": [],
            "associated_events": [],
            "history_events": [],
        },
        "issues": [],
        "notes": [],
        "policy": {},
    }


def _rows(tmp_path: Path, records: list[Json]) -> dict[str, dict[str, str]]:
    path = write_csv(build_report(records), tmp_path / "patients.csv")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    return {r["patient"].removeprefix("Patient/"): r for r in rows}


def _rate(row: dict[str, str]) -> tuple[str, str, str]:
    return (row["max_rate_mg_kg_min"], row["max_rate_lower_mg_kg_min"], row["max_rate_partial"])


def test_a_maximum_over_some_infusions_only_is_not_a_plain_number(tmp_path: Path) -> None:
    """Cycle 1's second infusion has no readable rate: its maximum 3.5714 is over the first
    only. The CSV said ``max_rate_mg_kg_min = 3.5714`` as for a fully known cycle."""
    rows = _rows(tmp_path, [_record("p", [(3.5714, ["cycle-max-rate-partial"])])])
    assert _rate(rows["p"]) == ("", "3.5714", "true")


def test_a_cycle_with_no_rate_known_leaves_the_patient_maximum_partial(tmp_path: Path) -> None:
    """Cycle 2 has no rate at all: the patient's maximum is at least cycle 1's 1.8, not 1.8."""
    rows = _rows(
        tmp_path,
        [_record("p", [(1.8, []), (None, ["cycle-max-rate-unknown"]), (1.7, [])])],
    )
    assert _rate(rows["p"]) == ("", "1.8", "true")


def test_a_partial_cycle_below_a_known_larger_maximum_is_still_partial(tmp_path: Path) -> None:
    """Cycle 1 (partial, 1.7863) is below cycle 2's 1.801: the unknown infusion of cycle 1 may
    have run faster than 1.801 (Synthea-shaped cohort, an administration without rateQuantity)."""
    rows = _rows(tmp_path, [_record("p", [(1.7863, ["cycle-max-rate-partial"]), (1.801, [])])])
    assert _rate(rows["p"]) == ("", "1.801", "true")


def test_known_unknown_and_unexposed_patients(tmp_path: Path) -> None:
    rows = _rows(
        tmp_path,
        [
            _record("known", [(3.2, []), (4.5, [])]),
            _record("none-known", [(None, ["cycle-max-rate-unknown"])]),
            _record("unexposed", []),
        ],
    )
    assert _rate(rows["known"]) == ("4.5", "4.5", "false")
    assert _rate(rows["none-known"]) == ("", "", "")
    assert _rate(rows["unexposed"]) == ("", "", "")
