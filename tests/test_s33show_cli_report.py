"""The readable report of `fhirtis evaluate` against the derived resources it restates (s33
audit of what a clinician reads): what the data did not allow to be assessed or known, which
the resources say (the tee-risk Flag's "not assessable", a cycle Observation's "maximum rate is
over the known ones only", the cumulative dose's known sum), is said in the report too, never
left out so that a number or "none found" reads as complete (clinical spec, preamble: "where
data does not allow a rule to run, the result says so"; §2.4's rule for a partial TIS)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from fhirtis.cli import app
from tests.fhir.builders import (
    LOINC,
    SCT,
    administration,
    bundle,
    condition,
    medication,
    obs,
    patient,
    qty,
)
from tests.fhir.patients import responder

runner = CliRunner()
Json = dict[str, Any]


def _report(tmp_path: Path, data: Json) -> tuple[str, Json]:
    """The readable report (wide terminal) and the written transaction Bundle."""
    path = tmp_path / "p.json"
    path.write_bytes(orjson.dumps(data))
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", str(path), "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    written = json.loads((out / "Patient-p1.transaction.json").read_text())
    return result.stdout, written


def _resources(written: Json, kind: str) -> list[Json]:
    return [e["resource"] for e in written["entry"] if e["resource"]["resourceType"] == kind]


def _line(report: str, start: str) -> str:
    return next(line for line in report.splitlines() if line.strip().startswith(start))


def test_no_factor_found_but_some_not_assessable_is_said_as_the_flag_says_it(
    tmp_path: Path,
) -> None:
    """Born 1959 (year only: 64 or 65 on 2024-01-09), no height or BMI, no PGA: no factor
    found, age, obesity and inflammation not assessable. The Flag says "none found, not
    assessable: advanced-age (…), obesity (…), inflammation (…); maximum rate 4 mg/kg/min"
    (s31c); the report said "TEE risk factors: none found; maximum rate now 4 mg/kg/min", as
    for a patient with every factor checked, and printed none of the three reasons."""
    data = bundle(
        patient(birth="1959"),
        condition("dm", SCT, "396230008", "2023-06-01"),
        medication(),
        obs("w0", "29463-7", 70, "kg", "2024-01-01", system=LOINC),
        *(
            administration(
                f"a{k}",
                f"2024-01-{8 + k:02d}T09:00:00+01:00",
                f"2024-01-{8 + k:02d}T11:30:00+01:00",
                dose=qty(350, "mL"),
                rate=qty(150, "mL/h"),
            )
            for k in range(2)
        ),
    )
    report, written = _report(tmp_path, data)
    (flag,) = _resources(written, "Flag")
    assert "not assessable" in flag["code"]["text"]  # what the report restates
    line = _line(report, "TEE risk factors:")
    assert "not assessable" in line, line
    for kind in ("advanced-age", "obesity", "inflammation"):
        assert kind in line, line
    assert "maximum rate now 4 mg/kg/min" in line, line
    # and why, as the notes say it
    assert "obesity not assessable" in report, report


def test_every_factor_assessed_and_none_found_reads_as_before(tmp_path: Path) -> None:
    report, _ = _report(
        tmp_path,
        bundle(
            patient(birth="1980-06-15"),
            condition("dm", SCT, "396230008", "2023-06-01"),
            medication(),
            obs("w0", "29463-7", 70, "kg", "2024-01-01", system=LOINC),
            obs("h0", "8302-2", 170, "cm", "2024-01-01", system=LOINC),
            obs("pga0", "pga", 4, "cm", "2024-01-05"),
            administration(
                "a0",
                "2024-01-08T09:00:00+01:00",
                "2024-01-08T11:30:00+01:00",
                dose=qty(350, "mL"),
                rate=qty(150, "mL/h"),
            ),
        ),
    )
    line = _line(report, "TEE risk factors:")
    assert line == "TEE risk factors: none found; maximum rate now 4 mg/kg/min", line


def _unknown_rate_and_dose() -> Json:
    """The test responder (4 cycles of 4 × 35 g at 150 mL/h, 70 kg) with cycle 2's second
    infusion in units that cannot be read: its dose and its rate are unknown."""
    data = responder()
    for entry in data["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "MedicationAdministration" and r["id"] == "ma11":
            r["dosage"]["rateQuantity"] = {"value": 3, "unit": "bottles/h"}
            r["dosage"]["dose"] = {"value": 1, "unit": "bag"}
    return data


def test_a_cycle_maximum_rate_over_some_infusions_only_is_not_shown_as_plain(
    tmp_path: Path,
) -> None:
    """Cycle 2: the rate of one infusion of four is unknown. Its Observation carries the
    maximum of the three known ones (3.5714 mg/kg/min) with the note "maximum rate is over the
    known ones only"; the report's table showed 3.5714 as for cycles 1, 3 and 4, whose every
    rate is known, and left the note out."""
    report, written = _report(tmp_path, _unknown_rate_and_dose())
    cycles = [
        o
        for o in _resources(written, "Observation")
        if o["code"]["coding"][0]["code"] == "ivig-cycle-dose"
    ]
    second = min(
        (c for c in cycles if c["effectivePeriod"]["start"].startswith("2024-02-05")),
        key=lambda c: c["effectivePeriod"]["start"],
    )
    notes = " ".join(n["text"] for n in second["note"])
    assert "maximum rate is over the known ones only" in notes
    row = _line(report, "│ 2 ")
    assert "3.5714" in row, row
    assert "partial" in row, row  # not a plain number
    assert "partial" not in _line(report, "│ 1 "), report  # a complete cycle's is plain
    assert "maximum rate is over the known ones only" in report, report


def test_a_partial_cumulative_dose_says_its_known_sum(tmp_path: Path) -> None:
    """The cumulative dose's Observation has no value (partial) and says the known sum
    (525 g, 6 g/kg); the report printed "Cumulative: — g, — g/kg over 4 cycles" with no
    reason."""
    report, written = _report(tmp_path, _unknown_rate_and_dose())
    (cumulative,) = [
        o
        for o in _resources(written, "Observation")
        if o["code"]["coding"][0]["code"] == "ivig-cumulative-dose"
    ]
    assert "525 g" in cumulative["dataAbsentReason"]["text"]
    assert "known sum 525 g" in report, report
