"""Results → the derived FHIR resources of clinical spec §7, as plain JSON of the R4 shapes
(``fhirtis.fhir.validation`` checks them with the ``fhir.resources`` R4B models on demand, and
the test suite always does).

Every resource carries a deterministic business identifier: what it is, for whom, over which
dates, and the algorithm version — never the values, so changed inputs update the same resource.
The same evaluation always gives the same resources, byte for byte: nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import quote

from fhirtis import __version__
from fhirtis.clinical.facts import FhirTime
from fhirtis.clinical.ivig import Cycle, Exposure
from fhirtis.clinical.patient import PatientEvaluation
from fhirtis.clinical.policy import Policy
from fhirtis.clinical.thrombosis import AssociatedEvent, RateFinding, ThrombosisAssessment
from fhirtis.clinical.tis import TisResult, percent_text
from fhirtis.fhir.codes import (
    BASE,
    BASIS_SYSTEM,
    CATEGORY_SYSTEM,
    FHIRTIS_SYSTEM,
    IDENTIFIER_SYSTEM,
    RISK_FACTOR_SYSTEM,
    UCUM,
)
from fhirtis.fhir.validation import enabled as validation_enabled
from fhirtis.fhir.validation import validate

Json = dict[str, Any]

ALGORITHM_VERSION = "1"
"""Changes only when a derived value's algorithm changes (then identifiers change too)."""

_UUID_NAMESPACE = uuid.UUID("4f6f6c0e-6d79-6f73-6974-69732d666869")  # fixed: fhirtis namespace
_DAR = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
EXT = f"{BASE}/StructureDefinition"
PROFILE = f"{BASE}/StructureDefinition"

#: The resource types fhirtis derives and writes back (each write adds one Provenance).
DERIVED_TYPES: tuple[str, ...] = ("Observation", "Flag", "DetectedIssue", "AdverseEvent")


# R4 resources whose business identifier has no ``identifier`` search parameter: they are
# matched by other search parameters instead (and checked by identifier on the client).
NO_IDENTIFIER_SEARCH = frozenset({"AdverseEvent"})


@dataclass(frozen=True)
class Derived:
    """One derived resource, its business identifier value, and (for types without an
    ``identifier`` search parameter) the search that finds it."""

    resource: Json
    identifier: str
    match: str | None = None

    @property
    def if_none_exist(self) -> str:
        """The conditional-create query that finds this resource if it already exists."""
        return self.match or f"identifier={IDENTIFIER_SYSTEM}|{self.identifier}"

    @cached_property
    def full_url(self) -> str:
        """A urn:uuid from the identifier (the same every time: made once per resource)."""
        return f"urn:uuid:{uuid.uuid5(_UUID_NAMESPACE, self.identifier)}"

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])


def identifier_value(kind: str, patient_ref: str, *parts: str) -> str:
    key = "|".join((kind, patient_ref, *parts, f"v{ALGORITHM_VERSION}"))
    return f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def _q(value: Decimal, places: int = 4) -> Decimal:
    quantized = value.quantize(Decimal(1).scaleb(-places))
    return quantized.normalize() if quantized != 0 else Decimal(0)


def _number(value: Decimal) -> int | float:
    """A JSON number for a decimal of few digits: an int, or the float whose shortest repr is
    the decimal's text (exact for every value written here: ≤ 4 places, < 10^9)."""
    return int(value) if value == value.to_integral_value() else float(value)


@lru_cache(maxsize=4096)
def _json_number(value: Decimal, places: int) -> int | float:
    """:func:`_number` of :func:`_q`: determined by the value's number alone (7.5 and 7.50 give
    the same), so it is made once per distinct value (scores and doses repeat)."""
    return _number(_q(value, places))


def _quantity(value: Decimal, unit: str, places: int = 4) -> Json:
    return {"value": _json_number(value, places), "unit": unit, "system": UCUM, "code": unit}


def _code(system: str, code: str, display: str | None = None) -> Json:
    coding: Json = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _absent(reason: str, code: str = "unknown") -> Json:
    return {"coding": [{"system": _DAR, "code": code}], "text": reason}


def _day(d: date) -> str:
    return d.isoformat()


def _instant(t: datetime | FhirTime) -> str:
    """As FHIR writes it; a date-only time stays a date (never midnight)."""
    return t.isoformat()


def _observation_head(profile: str, ident: str, code: str, display: str, patient_ref: str) -> Json:
    """What every derived Observation starts with: profile, identifier, status, code, subject."""
    return {
        "resourceType": "Observation",
        "meta": {"profile": [f"{PROFILE}/{profile}"]},
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": ident}],
        "status": "final",
        "code": _code(FHIRTIS_SYSTEM, code, display),
        "subject": {"reference": patient_ref},
    }


def _policy_note(evaluation: PatientEvaluation) -> Json:
    return {"text": _policy_text(evaluation.policy)}


@lru_cache(maxsize=64)
def _policy_text(policy: Policy) -> str:
    """The policy in force, as the note every derived resource carries (one run has one
    policy: made once, not once per resource)."""
    record = policy.as_record()
    return "fhirtis policy: " + "; ".join(f"{k}={v}" for k, v in record.items())


# -- TIS ---------------------------------------------------------------------------------------


def _tis_components(tis: TisResult) -> list[Json]:
    out: list[Json] = []
    for m in tis.measures:
        key = m.measure.value
        improvement: Json = {"code": _code(FHIRTIS_SYSTEM, f"improvement-{key}")}
        score: Json = {"code": _code(FHIRTIS_SYSTEM, f"score-{key}")}
        pct = percent_text(m.percent_improvement)
        if m.score is None or pct is None:
            reason = m.reason.message if m.reason else "missing"
            improvement["dataAbsentReason"] = _absent(reason)
            score["dataAbsentReason"] = _absent(reason)
        else:
            improvement["valueQuantity"] = _quantity(pct, "%")
            score["valueQuantity"] = _quantity(m.score, "{score}")
        out.extend((improvement, score))
    return out


def _tis_observation(
    evaluation: PatientEvaluation,
    patient_ref: str,
    baseline: date,
    day: date,
    tis: TisResult,
    sources: Sequence[str],
) -> Derived:
    ident = identifier_value("tis", patient_ref, _day(baseline), _day(day))
    obs: Json = {
        **_observation_head(
            "fhirtis-tis", ident, "tis", "Total Improvement Score (ACR/EULAR 2016)", patient_ref
        ),
        "effectivePeriod": {"start": _day(baseline), "end": _day(day)},
        "method": _code(FHIRTIS_SYSTEM, f"{tis.population.value}-criteria"),
        "derivedFrom": [{"reference": s} for s in sorted(set(sources))],
        "component": _tis_components(tis),
    }
    if tis.partial:
        obs["valueRange"] = {
            "low": _quantity(tis.lower, "{score}"),
            "high": _quantity(tis.upper, "{score}"),
        }
    else:
        obs["valueQuantity"] = _quantity(tis.lower, "{score}")
    if tis.category is not None:
        obs["interpretation"] = [_code(CATEGORY_SYSTEM, tis.category.value)]
    else:
        possible = " or ".join(c.value for c in tis.possible_categories)
        obs["interpretation"] = [{"text": f"undetermined: {possible}"}]
    notes = [_policy_note(evaluation)]
    if tis.partial:
        missing = "; ".join(
            f"{m.measure.value}: {m.reason.message if m.reason else 'missing'}"
            for m in tis.measures
            if m.score is None
        )
        notes.insert(
            0, {"text": f"partial TIS (missing measures score 0 to their maximum): {missing}"}
        )
    obs["note"] = notes
    return Derived(obs, ident)


def _deterioration_observation(evaluation: PatientEvaluation, patient_ref: str) -> Derived | None:
    course = evaluation.course
    if course.baseline is None or not course.followups:
        return None
    ident = identifier_value("confirmed-deterioration", patient_ref, _day(course.baseline.day))
    confirmed_on = course.confirmation.confirmed_on
    last = course.followups[-1]
    obs: Json = {
        **_observation_head(
            "fhirtis-confirmed-deterioration",
            ident,
            "confirmed-deterioration",
            "Confirmed deterioration",
            patient_ref,
        ),
        "effectiveDateTime": _day(confirmed_on or last.assessment.day),
        "derivedFrom": [
            {"reference": s}
            for s in sorted(
                {
                    *course.baseline.sources,
                    *(x for f in course.followups for x in f.assessment.sources),
                }
            )
        ],
        "note": [_policy_note(evaluation)],
    }
    if confirmed_on is not None:
        obs["valueBoolean"] = True
    elif last.confirmed_deterioration is False:
        obs["valueBoolean"] = False
    else:
        obs["dataAbsentReason"] = _absent(
            "missing measures leave confirmed deterioration undetermined"
        )
    return Derived(obs, ident)


# -- IVIG exposure -----------------------------------------------------------------------------


def _cycle_observation(evaluation: PatientEvaluation, patient_ref: str, cycle: Cycle) -> Derived:
    ident = identifier_value("ivig-cycle-dose", patient_ref, _day(cycle.start.day))
    dw = cycle.dosing_weight
    grams: Json = {"code": _code(FHIRTIS_SYSTEM, "ivig-grams")}
    if cycle.grams is not None:
        grams["valueQuantity"] = _quantity(cycle.grams, "g")
    else:
        grams["dataAbsentReason"] = _absent(
            f"dose of some administrations unknown (known: {_q(cycle.grams_known):f} g)"
        )
    weight: Json = {"code": _code(FHIRTIS_SYSTEM, "dosing-weight")}
    if dw.kg is not None:
        weight["valueQuantity"] = _quantity(dw.kg, "kg")
    else:
        reason = "; ".join(n.message for n in dw.notes) or "no dosing weight"
        weight["dataAbsentReason"] = _absent(reason)
    rate: Json = {"code": _code(FHIRTIS_SYSTEM, "max-infusion-rate")}
    if cycle.max_rate_mg_kg_min is not None:
        rate["valueQuantity"] = _quantity(cycle.max_rate_mg_kg_min, "mg/kg/min")
    else:
        rate["dataAbsentReason"] = _absent("no administration of the cycle has a known rate")
    components = [
        grams,
        weight,
        {
            "code": _code(FHIRTIS_SYSTEM, "dosing-weight-basis"),
            "valueCodeableConcept": _code(BASIS_SYSTEM, dw.basis.value),
        },
        rate,
        {
            "code": _code(FHIRTIS_SYSTEM, "administration-count"),
            "valueInteger": cycle.administration_count,
        },
    ]
    measured = sorted({s for s in (dw.weight_source, dw.height_source) if s})
    obs: Json = {
        **_observation_head(
            "fhirtis-ivig-cycle-dose",
            ident,
            "ivig-cycle-dose",
            "IVIG dose of one cycle",
            patient_ref,
        ),
        "effectivePeriod": {"start": _instant(cycle.start), "end": _instant(cycle.end)},
        "component": components,
    }
    # R4: derivedFrom may name Observations only; the administrations the dose sums are the
    # events this Observation is part of (partOf allows MedicationAdministration).
    obs["partOf"] = [{"reference": s} for s in sorted(set(cycle.sources))]
    if measured:
        obs["derivedFrom"] = [{"reference": s} for s in measured]
    if cycle.g_per_kg is not None:
        obs["valueQuantity"] = _quantity(cycle.g_per_kg, "g/kg")
    else:
        obs["dataAbsentReason"] = _absent("g/kg unknown: grams or dosing weight unknown")
    notes = [{"text": n.message} for n in cycle.notes]
    obs["note"] = [*notes, _policy_note(evaluation)]
    return Derived(obs, ident)


def _cumulative_observation(
    evaluation: PatientEvaluation, patient_ref: str, exposure: Exposure
) -> Derived | None:
    if not exposure.cycles:
        return None
    ident = identifier_value("ivig-cumulative-dose", patient_ref)
    per_kg: Json = {"code": _code(FHIRTIS_SYSTEM, "cumulative-g-per-kg")}
    if exposure.cumulative_g_per_kg is not None:
        per_kg["valueQuantity"] = _quantity(exposure.cumulative_g_per_kg, "g/kg")
    else:
        per_kg["dataAbsentReason"] = _absent(
            f"g/kg of some cycles unknown (known: {_q(exposure.cumulative_g_per_kg_known):f} g/kg)"
        )
    obs: Json = {
        **_observation_head(
            "fhirtis-ivig-cumulative-dose",
            ident,
            "ivig-cumulative-dose",
            "Cumulative IVIG dose",
            patient_ref,
        ),
        "effectivePeriod": {
            "start": _instant(exposure.cycles[0].start),
            "end": _instant(exposure.cycles[-1].end),
        },
        "partOf": [
            {"reference": s} for s in sorted({s for c in exposure.cycles for s in c.sources})
        ],
        "component": [
            per_kg,
            {"code": _code(FHIRTIS_SYSTEM, "cycle-count"), "valueInteger": exposure.cycle_count},
        ],
        "note": [_policy_note(evaluation)],
    }
    if exposure.cumulative_grams is not None:
        obs["valueQuantity"] = _quantity(exposure.cumulative_grams, "g")
    else:
        obs["dataAbsentReason"] = _absent(
            f"partial: dose of some administrations unknown (known: "
            f"{_q(exposure.cumulative_grams_known):f} g)"
        )
    return Derived(obs, ident)


# -- thrombosis ---------------------------------------------------------------------------------


def _risk_flag(evaluation: PatientEvaluation, patient_ref: str, t: ThrombosisAssessment) -> Derived:
    ident = identifier_value("tee-risk", patient_ref)
    extensions: list[Json] = []
    for factor in t.risk_factors:
        sub: list[Json] = [
            {"url": "factor", "valueCodeableConcept": _code(RISK_FACTOR_SYSTEM, factor.kind.value)},
            *({"url": "evidence", "valueReference": {"reference": e}} for e in factor.evidence),
            {"url": "detail", "valueString": factor.detail},
        ]
        extensions.append({"url": f"{EXT}/tee-risk-factor", "extension": sub})
    extensions.append(
        {
            "url": f"{EXT}/applicable-max-rate",
            "valueQuantity": _quantity(t.max_rate_now.limit_mg_kg_min, "mg/kg/min"),
        }
    )
    kinds = ", ".join(f.kind.value for f in t.risk_factors) or "none found"
    flag: Json = {
        "resourceType": "Flag",
        "meta": {"profile": [f"{PROFILE}/fhirtis-tee-risk"]},
        "extension": extensions,
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": ident}],
        "status": "active" if t.risk_factors else "inactive",
        "code": {
            "coding": [{"system": FHIRTIS_SYSTEM, "code": "tee-risk"}],
            "text": f"Thromboembolism risk with IVIG: {kinds}; maximum rate "
            f"{_q(t.max_rate_now.limit_mg_kg_min):f} mg/kg/min",
        },
        "subject": {"reference": patient_ref},
        "period": {"start": _instant(evaluation.as_of)},
    }
    return Derived(flag, ident)


def _rate_issue(patient_ref: str, finding: RateFinding) -> Derived:
    ident = identifier_value(
        "infusion-rate-above-max", patient_ref, finding.administration_source.split("/_history")[0]
    )
    issue: Json = {
        "resourceType": "DetectedIssue",
        "meta": {"profile": [f"{PROFILE}/fhirtis-infusion-rate-above-max"]},
        "extension": [
            {
                "url": f"{EXT}/infusion-rate",
                "valueQuantity": _quantity(finding.rate_mg_kg_min, "mg/kg/min"),
            },
            {
                "url": f"{EXT}/applicable-max-rate",
                "valueQuantity": _quantity(finding.limit_mg_kg_min, "mg/kg/min"),
            },
        ],
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": ident}],
        "status": "final",
        "code": _code(
            FHIRTIS_SYSTEM, "infusion-rate-above-max", "IVIG infusion rate above the maximum"
        ),
        "severity": "high",
        "patient": {"reference": patient_ref},
        "identifiedDateTime": _instant(finding.start),
        "implicated": [{"reference": finding.administration_source}],
        "detail": finding.reason,
    }
    return Derived(issue, ident)


def _event_concept(assoc: AssociatedEvent) -> Json:
    """The event's own coding as recorded (clinical spec §5.3), and its text."""
    concept: Json = {"text": assoc.event.display or assoc.event.kind.value}
    if assoc.event.coding is not None:
        system, code = assoc.event.coding
        concept = {"coding": [{"system": system, "code": code}], **concept}
    return concept


def _adverse_event(patient_ref: str, assoc: AssociatedEvent) -> Derived:
    event_ref = assoc.event.source.split("/_history")[0]
    ident = identifier_value("tee-temporally-associated", patient_ref, event_ref)
    causality = {"assessment": {"text": "temporally associated with IVIG"}}
    ae: Json = {
        "resourceType": "AdverseEvent",
        "meta": {"profile": [f"{PROFILE}/fhirtis-tee-temporally-associated"]},
        # early unknown (a date-only onset of which only part qualifies): no extension
        "identifier": {"system": IDENTIFIER_SYSTEM, "value": ident},
        "actuality": "actual",
        "category": [_code(FHIRTIS_SYSTEM, "tee-temporally-associated")],
        "event": _event_concept(assoc),
        "subject": {"reference": patient_ref},
        "date": _instant(assoc.onset),
        "suspectEntity": [
            {"instance": {"reference": s}, "causality": [causality]} for s in assoc.suspects
        ],
    }
    if assoc.early is not None:  # unknown (part of a date-only onset's day): no extension
        ae["extension"] = [{"url": f"{EXT}/tee-early-onset", "valueBoolean": assoc.early}]
    # R4 AdverseEvent has no identifier search parameter: match on patient, fhirtis's category,
    # the onset and (when the event is a Condition) the resulting condition.
    match = (
        f"subject={patient_ref}&category={FHIRTIS_SYSTEM}|tee-temporally-associated"
        f"&date={ae['date']}"
    )
    if event_ref.startswith("Condition/"):
        ae["resultingCondition"] = [{"reference": assoc.event.source}]
        match += f"&resultingcondition={event_ref}"
    return Derived(ae, ident, quote(match, safe="=&|:/"))


# -- all of it ---------------------------------------------------------------------------------


def derive_resources(evaluation: PatientEvaluation, patient_ref: str) -> list[Derived]:
    """Every derived resource of one patient's evaluation, in a stable order."""
    out: list[Derived] = []
    course = evaluation.course
    if course.baseline is not None:
        for f in course.followups:
            sources = [*course.baseline.sources, *f.assessment.sources]
            out.append(
                _tis_observation(
                    evaluation, patient_ref, course.baseline.day, f.assessment.day, f.tis, sources
                )
            )
    det = _deterioration_observation(evaluation, patient_ref)
    if det is not None:
        out.append(det)
    for cycle in evaluation.exposure.cycles:
        out.append(_cycle_observation(evaluation, patient_ref, cycle))
    cumulative = _cumulative_observation(evaluation, patient_ref, evaluation.exposure)
    if cumulative is not None:
        out.append(cumulative)
    out.append(_risk_flag(evaluation, patient_ref, evaluation.thrombosis))
    out.extend(_rate_issue(patient_ref, f) for f in evaluation.thrombosis.rate_findings)
    out.extend(_adverse_event(patient_ref, a) for a in evaluation.thrombosis.associated_events)
    if validation_enabled():
        for d in out:
            validate(d.resource)
    return out


def provenance(targets: Iterable[str], sources: Iterable[str], recorded: datetime) -> Json:
    """One Provenance: the derived resources as targets (references or urn:uuids), the source
    resources with versions as entities, fhirtis as the agent, activity derivation."""
    prov: Json = {
        "resourceType": "Provenance",
        "meta": {"profile": [f"{PROFILE}/fhirtis-provenance"]},
        "target": [{"reference": t} for t in targets],
        "recorded": _instant(recorded),
        "activity": _code(FHIRTIS_SYSTEM, "derivation", "Derivation"),
        "agent": [
            {
                "type": _code(
                    "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                    "assembler",
                ),
                "who": {
                    "identifier": {"system": f"{BASE}/identifier/software", "value": "fhirtis"},
                    "display": f"fhirtis {__version__}",
                },
            }
        ],
        "entity": [{"role": "source", "what": {"reference": s}} for s in sorted(set(sources))],
    }
    return validate(prov) if validation_enabled() else prov
