"""The number of administrations of an IVIG cycle is the number of infusions given: the steps of
a titrated bag (R4 ``partOf`` "a component or step" of a larger event; s35mar) are part of the
bag's administration, not administrations of their own (clinical spec §4 "Per cycle: grams,
g/kg, dates, number of administrations").

A cycle of 4 bags where the first bag's 3 rate changes are charted as MedicationAdministrations
``partOf`` it was reported as 7 administrations: in ``fhirtis evaluate``'s "doses" column, the
summary's ``administrations``, the cycle Observation's ``administration-count`` (the SMART page's
"Infusions"). A clinician counts 4 bags given. Found by the s36 tidy audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.clinical.ivig import compute_exposure
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import administration, medication, obs, patient, qty
from tests.fhir.patients import responder
from tests.fhir.reading import extract

Json = dict[str, Any]


def _step(aid: str, start: str, ml_per_h: int, parent: str, **extra: Any) -> Json:
    return administration(
        aid, start, rate=qty(ml_per_h, "mL/h"), partOf=[{"reference": parent}], **extra
    )


def _titrated(status: str = "completed") -> Json:
    """The responder (4 cycles of 4 bags of 35 g): cycle 1's first bag (ma00, 2024-01-08 09:00
    +01:00) charted with 3 rate steps partOf it (50, 100, 150 mL/h; no dose of their own)."""
    data = responder()
    day = "2024-01-08"
    data["entry"] += [
        {"resource": _step(f"s{i}", f"{day}T09:{i}0:00+01:00", r, "MedicationAdministration/ma00")}
        for i, r in ((1, 50), (2, 100), (3, 150))
    ]
    if status != "completed":
        data["entry"][-1]["resource"]["status"] = status
    return data


def _component(resource: Json, code: str) -> Json:
    return next(c for c in resource["component"] if c["code"]["coding"][0]["code"] == code)


def test_the_summary_and_the_cycle_observation_count_bags_not_steps() -> None:
    result = evaluate_bundle_bytes(orjson.dumps(_titrated()), "p1.json", Settings())
    exposure = result.evaluation.exposure
    assert exposure.cycles[0].administration_count == 4
    assert len(exposure.cycles[0].administrations) == 7  # every record is kept
    assert exposure.administration_count == 16
    summary = orjson.loads(
        orjson.dumps(
            patient_summary(result.patient_ref, result.evaluation, result.issues), default=str
        )
    )
    assert [c["administrations"] for c in summary["ivig"]["cycles"]] == [4, 4, 4, 4]
    assert summary["ivig"]["cycles"][0]["grams"] == "140"  # the steps add 0 g (s35mar)
    cycles = [
        e["resource"]
        for e in result.plan().bundle["entry"]  # type: ignore[index]
        if e["resource"]["resourceType"] == "Observation"
        and any(
            c["code"]["coding"][0]["code"] == "administration-count"
            for c in e["resource"].get("component", [])
        )
    ]
    assert len(cycles) == 4
    assert [_component(c, "administration-count")["valueInteger"] for c in cycles] == [4] * 4
    first = min(cycles, key=lambda c: c["effectivePeriod"]["start"])
    # the dose still names every record it sums (the steps' rates count: R4 partOf)
    assert len(first["partOf"]) == 7


def test_the_printed_doses_column_counts_bags(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(orjson.dumps(_titrated()))
    result = CliRunner().invoke(app, ["evaluate", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if "doses" in line and "grams" in line)
    cells = [[c.strip() for c in line.split("\u2502")[1:-1]] for line in lines[head + 1 :]]
    row = next(c for c in cells if c and c[0] == "1")
    assert row[:3] == ["1", "2024-01-08", "4"], row


def test_a_running_step_marks_its_bag_in_progress_once() -> None:
    """The last step still running: the bag is in progress (one infusion running), not one
    more administration."""
    result = evaluate_bundle_bytes(orjson.dumps(_titrated("in-progress")), "p1.json", Settings())
    cycle = result.evaluation.exposure.cycles[0]
    assert (cycle.administration_count, cycle.in_progress_count) == (4, 1)


def test_the_unknown_rate_counts_say_which_records_they_count() -> None:
    """A cycle-level count of records (rate unknown for 1 of …) names the steps among them, so
    that it is not read against the number of administrations given."""
    parent = "MedicationAdministration/bag"
    data = extract(
        patient(),
        medication(),
        obs("w", "29463-7", 70, "kg", "2024-03-01T08:00:00Z", system="http://loinc.org"),
        administration("bag", "2024-03-02T12:00:00Z", dose=qty(700, "mL")),  # no rate
        _step("s2", "2024-03-02T12:30:00Z", 84, parent),
        _step("s3", "2024-03-02T13:00:00Z", 126, parent),
    )
    facts = data.facts()
    exposure = compute_exposure(facts.administrations, facts.weights, facts.heights, facts.patient)
    cycle = exposure.cycles[0]
    assert cycle.administration_count == 1
    (partial,) = [n for n in cycle.notes if n.code == "cycle-max-rate-partial"]
    assert "rate unknown for 1 of 3 administration records" in partial.message
    assert "2 of them steps" in partial.message


def test_a_bag_partof_nothing_counted_is_an_administration() -> None:
    """partOf an administration that is not in the record: nothing shows it is a step of a
    counted one, so it is counted as given (as its grams are, unknown)."""
    data = _titrated()
    data["entry"] = [
        e for e in data["entry"] if e["resource"].get("id") not in {"ma00", "s1", "s2"}
    ]
    result = evaluate_bundle_bytes(orjson.dumps(data), "p1.json", Settings())
    assert result.evaluation.exposure.cycles[0].administration_count == 4  # ma01-03 and s3
