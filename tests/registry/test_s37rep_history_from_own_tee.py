"""The report keeps a thrombosis history that only the patient's own associated TEE shows apart.

Clinical spec §5.3: "an event during treatment is also, from its onset on, a history risk
factor for later cycles". The summary's risk factors are those at the evaluation's time, so
every patient with a temporally associated TEE has ``thrombosis-history`` resting on that very
event. ``fhirtis report`` counted it with the risk factors found before treatment: in the
summary's ``risk_factors``, ``patients_with_risk_factor`` and each patient's CSV row, a TEE
patient always "had" a thrombosis risk factor, so an analyst comparing risk factors with TEE
occurrence read the event as its own risk factor (in a cohort where only the TEE patients had
it, thrombosis history looked like a perfect predictor).

The clinical rule is unchanged (the Flag, the rate limit and the summary record still count it);
the report tabulates it apart: ``thrombosis-history-from-associated-tee`` when every record
showing the history is one of the patient's own associated TEEs, not counted in
``patients_with_risk_factor``; ``thrombosis-history`` where another record shows it (an event
before IVIG, a coded history)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from fhirtis.registry.report import build_report, print_report
from tests.fhir.builders import SCT, condition
from tests.fhir.tee_course import DVT, ONSET, PE, evaluate_course, summary_record

Json = dict[str, Any]
OWN = "thrombosis-history-from-associated-tee"


def _summary(ref: str, *resources: Json) -> Json:
    record = summary_record(evaluate_course(*resources))
    record["patient"] = f"Patient/{ref}"
    return record


def test_the_associated_tee_is_not_tabulated_as_its_own_risk_factor() -> None:
    tee = _summary("tee", condition("c1", SCT, DVT, ONSET))
    # the clinical rule as before: the summary record counts the event as history from its onset
    assert tee["thrombosis"]["risk_factors"] == ["thrombosis-history"]
    assert tee["thrombosis"]["risk_evidence"]["thrombosis-history"] == ["Condition/c1"]
    quiet = _summary("quiet")
    report = build_report([tee, quiet])
    assert report.tee.events == 1
    assert "thrombosis-history" not in report.tee.risk_factors, report.tee.risk_factors
    assert report.tee.risk_factors[OWN] == 1
    assert report.tee.patients_with_risk_factor.count == 0
    rows = {r.patient: r for r in report.rows}
    assert rows["Patient/tee"].risk_factors == OWN
    assert report.as_record()["tee"]["risk_factors"] == {OWN: 1}


def test_a_thrombosis_before_ivig_stays_a_thrombosis_history() -> None:
    """Control: a PE in 2023 (before the course) is history whatever followed."""
    both = _summary(
        "both", condition("c0", SCT, PE, "2023-05-01"), condition("c1", SCT, DVT, ONSET)
    )
    before = _summary("before", condition("c0", SCT, PE, "2023-05-01"))
    report = build_report([both, before])
    assert report.tee.risk_factors == {"thrombosis-history": 2}
    assert report.tee.patients_with_risk_factor.count == 2
    assert {r.risk_factors for r in report.rows} == {"thrombosis-history"}


def test_the_printed_report_says_what_the_risk_factors_are() -> None:
    report = build_report([_summary("tee", condition("c1", SCT, DVT, ONSET))])
    console = Console(record=True, width=200)
    print_report(console, report)
    text = console.export_text()
    assert "thrombosis history only from own associated TEE" in text, text
