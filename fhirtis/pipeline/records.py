"""A patient's evaluation as a plain record: what `fhirtis evaluate --json` prints, what the
report shows and what the examples' expected results are checked against."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fhirtis.clinical.notes import Note
from fhirtis.clinical.patient import PatientEvaluation
from fhirtis.clinical.tis import percent_text
from fhirtis.fhir.outcome import Issue

Record = dict[str, Any]


def _q(value: Decimal | None, places: int = 4) -> Decimal | None:
    if value is None:
        return None
    return value.quantize(Decimal(1).scaleb(-places)).normalize() + 0


def _issue(issue: Issue) -> Record:
    out: Record = {"severity": issue.severity, "code": issue.code, "diagnostics": issue.diagnostics}
    if issue.expression:
        out["expression"] = issue.expression
    if issue.resource:
        out["resource"] = issue.resource
    return out


def _notes(notes: tuple[Note, ...]) -> list[Record]:
    return [n.as_record() for n in notes]


def patient_summary(patient_ref: str, evaluation: PatientEvaluation, issues: list[Issue]) -> Record:
    course = evaluation.course
    assessments = []
    for f in course.followups:
        t = f.tis
        assessments.append(
            {
                "date": f.assessment.day.isoformat(),
                "tis": t.tis,
                "tis_lower": t.lower,
                "tis_upper": t.upper,
                "partial": t.partial,
                "category": t.category.value if t.category else None,
                "possible_categories": [c.value for c in t.possible_categories],
                "missing_measures": [m.value for m in t.missing_measures],
                "measures": {
                    m.measure.value: {
                        "percent_improvement": percent_text(m.percent_improvement),
                        "score": m.score,
                        **({"missing": m.reason.code} if m.reason else {}),
                    }
                    for m in t.measures
                },
                "deterioration": f.deterioration.deteriorated,
                "confirmed_deterioration": f.confirmed_deterioration,
                "responder": f.responder,
            }
        )
    exposure = evaluation.exposure
    cycles = [
        {
            "index": c.index,
            "start": c.start.isoformat(),
            "end": c.end.isoformat(),
            "administrations": c.administration_count,
            "in_progress": c.in_progress_count,
            "grams": _q(c.grams),
            "g_per_kg": _q(c.g_per_kg),
            "dosing_weight_kg": c.dosing_weight.kg,
            "dosing_weight_basis": c.dosing_weight.basis.value,
            "max_rate_mg_kg_min": _q(c.max_rate_mg_kg_min),
            "warnings": [n.code for n in c.notes],
        }
        for c in exposure.cycles
    ]
    thr = evaluation.thrombosis
    baseline = course.baseline
    return {
        "patient": patient_ref,
        "as_of": evaluation.as_of.isoformat(),
        "population": evaluation.population.population.value,
        "population_reason": evaluation.population.reason,
        "baseline": baseline.day.isoformat() if baseline else None,
        "assessments": assessments,
        "confirmed_deterioration": (
            course.confirmed_deterioration_on.isoformat()
            if course.confirmed_deterioration_on
            else None
        ),
        "ivig": {
            "cycle_count": exposure.cycle_count,
            "cumulative_grams": _q(exposure.cumulative_grams),
            "cumulative_g_per_kg": _q(exposure.cumulative_g_per_kg),
            "cycles": cycles,
        },
        "thrombosis": {
            "risk_factors": [f.kind.value for f in thr.risk_factors],
            "risk_evidence": {f.kind.value: list(f.evidence) for f in thr.risk_factors},
            "max_rate_now": _q(thr.max_rate_now.limit_mg_kg_min),
            "rate_findings": [
                {
                    "administration": f.administration_source,
                    "rate": _q(f.rate_mg_kg_min),
                    "limit": _q(f.limit_mg_kg_min),
                    "cycle": f.cycle_index,
                }
                for f in thr.rate_findings
            ],
            "associated_events": [
                {
                    "event": a.event.source,
                    "kind": a.event.kind.value,
                    "onset": a.onset.isoformat(),
                    "early": a.early,
                    "cycles": list(a.cycle_indexes),
                    "suspects": list(a.suspects),
                }
                for a in thr.associated_events
            ],
            "history_events": [e.source for e in thr.history_events],
        },
        "issues": [_issue(i) for i in issues],
        "notes": _notes(course.notes) + _notes(exposure.all_notes()) + _notes(thr.notes),
        "policy": evaluation.policy.as_record(),
    }
