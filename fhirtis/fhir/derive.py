"""Results → the derived FHIR resources of clinical spec §7, as plain JSON of the R4 shapes
(``fhirtis.fhir.validation`` checks them with the ``fhir.resources`` R4B models on demand, and
the test suite always does).

Every resource carries a deterministic business identifier: what it is, for whom, over which
dates, and the algorithm version — never the values, so changed inputs update the same resource.
The same evaluation always gives the same resources, byte for byte: nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar
from urllib.parse import quote

from fhirtis import __version__
from fhirtis.clinical.course import FollowUp
from fhirtis.clinical.decimals import beside, beside_any
from fhirtis.clinical.facts import FhirTime, Measure
from fhirtis.clinical.frozen import record
from fhirtis.clinical.ivig import Cycle, Exposure, dose_tolerance_edges
from fhirtis.clinical.patient import PatientEvaluation
from fhirtis.clinical.policy import DosingWeightBasis, PerPolicy, Policy, Population
from fhirtis.clinical.thrombosis import AssociatedEvent, RateFinding, ThrombosisAssessment
from fhirtis.clinical.tis import Category, MeasureScore, TisResult, percent_text
from fhirtis.fhir.codes import (
    BASE,
    BASIS_SYSTEM,
    CATEGORY_SYSTEM,
    FHIRTIS_SYSTEM,
    IDENTIFIER_SYSTEM,
    RISK_FACTOR_SYSTEM,
    UCUM,
)
from fhirtis.fhir.extract.common import unversioned
from fhirtis.fhir.security import Label, codings, high_water, labelled
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

IF_NONE_EXIST_PREFIX = f"identifier={IDENTIFIER_SYSTEM}|"
"""What a conditional create's query starts with, before the business identifier."""


@record
class Derived:
    """One derived resource, its business identifier value, and (for types without an
    ``identifier`` search parameter) the search that finds it.

    Derived resources are read-only: to save building them again for every resource, resources
    share constant parts (codings, profiles, the policy note) and parts determined by a value
    (a component of a given code and value), across resources and patients — never within one
    resource, so ``copy.deepcopy`` of a resource gives a tree of its own. Copy before changing.
    """

    resource: Json
    identifier: str
    match: str | None = None

    @property
    def if_none_exist(self) -> str:
        """The conditional-create query that finds this resource if it already exists."""
        return self.match or IF_NONE_EXIST_PREFIX + self.identifier

    @property
    def full_url(self) -> str:
        """A urn:uuid from the identifier (the same every time)."""
        return full_url_of(self.identifier)

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])


_UUID5_NAMESPACE_SHA1 = hashlib.sha1(_UUID_NAMESPACE.bytes, usedforsecurity=False)
# The RFC 4122 variant (binary 10xx) of the 17th hex digit's value: (value & 0x3) | 0x8.
_UUID_VARIANT_DIGIT = {f"{v:x}": f"{(v & 0x3) | 0x8:x}" for v in range(16)}


def full_url_of(identifier: str) -> str:
    """``urn:uuid:`` + ``str(uuid.uuid5(namespace, identifier))``, computed as ``uuid5`` does
    (SHA-1 of the namespace's bytes then the name's UTF-8, the first 16 bytes, version 5 in the
    13th hex digit, the variant bits in the 17th) on the hex text, without the ``UUID`` object
    and its 128-bit integer arithmetic; checked against ``uuid.uuid5`` by the tests."""
    sha1 = _UUID5_NAMESPACE_SHA1.copy()
    sha1.update(identifier.encode())
    h = sha1.hexdigest()
    return (
        f"urn:uuid:{h[:8]}-{h[8:12]}-5{h[13:16]}-{_UUID_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:32]}"
    )


_VERSION_PART = f"v{ALGORITHM_VERSION}"


def identifier_value(kind: str, patient_ref: str, *parts: str) -> str:
    return _identifier(kind, "|".join((kind, patient_ref, *parts, _VERSION_PART)))


def _identifier(kind: str, key: str) -> str:
    """:func:`identifier_value` of an already joined ``key`` (``kind|patient|parts…|v1``)."""
    return f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def _q(value: Decimal, places: int = 4) -> Decimal:
    quantized = value.quantize(Decimal(1).scaleb(-places))
    return quantized.normalize() if quantized != 0 else Decimal(0)


_FOUR_PLACES = Decimal(1).scaleb(-4)

_K = TypeVar("_K")
_V = TypeVar("_V")

_CACHE_LIMIT = 1 << 15
"""Entries a value cache holds before it is emptied (bounds memory on a long cohort run)."""


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


_NUMBERS: dict[str, int | float] = {}


def _json_number(value: Decimal) -> int | float:
    """The JSON number of ``_q(value)``: an int when integral, else the float whose shortest repr
    is the decimal's text (exact for every value written here: ≤ 4 places, < 10^9); made once
    per distinct value (scores, doses and limits repeat).

    Keyed on the decimal's text, which identifies it exactly (7.5 and 7.50 are two keys giving
    the same number): hashing a Decimal (modular arithmetic, ~0.4 µs for a new one) costs more
    than its ``str``, and most values here are new objects.

    Computed with one quantize: normalising (as ``_q`` does) changes neither the value nor,
    hence, ``int()`` or the correctly rounded ``float()``; ``float(q).is_integer()`` is only a
    quick first test, the exact one is ``q == q.to_integral_value()``."""
    text = str(value)
    number = _NUMBERS.get(text)
    if number is None:
        quantized = value.quantize(_FOUR_PLACES)
        as_float = float(quantized)
        integral = as_float.is_integer() and quantized == quantized.to_integral_value()
        number = _remember(_NUMBERS, text, int(quantized) if integral else as_float)
    return number


def _quantity(value: Decimal, unit: str) -> Json:
    return {"value": _json_number(value), "unit": unit, "system": UCUM, "code": unit}


def _code(system: str, code: str, display: str | None = None) -> Json:
    coding: Json = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _absent(reason: str, code: str = "unknown") -> Json:
    return {"coding": [{"system": _DAR, "code": code}], "text": reason}


_DAY_TEXTS: dict[date, str] = {}
_DATETIME_TEXTS: dict[int, tuple[datetime, str]] = {}


def _day(d: date) -> str:
    """``d.isoformat()``, made once per distinct date (the dates of a cohort recur, and
    ``date.isoformat`` costs several dict lookups). Keyed on the date: equal dates are written
    alike."""
    text = _DAY_TEXTS.get(d)
    if text is None:
        text = _remember(_DAY_TEXTS, d, d.isoformat())
    return text


def _datetime_text(t: datetime) -> str:
    """``t.isoformat()``, made once per datetime object (``datetime.isoformat`` of an aware time
    costs as much as ~30 dict lookups; the facts share one datetime object per distinct text
    read, so most times here are objects met before).

    Keyed on the object's identity, not its value: two equal datetimes (one instant) in two
    offsets are written differently. The entry holds the object, so no other object can have
    its id while the entry exists, and a datetime never changes: the text is the object's."""
    entry = _DATETIME_TEXTS.get(id(t))
    if entry is not None and entry[0] is t:
        return entry[1]
    text = t.isoformat()
    _remember(_DATETIME_TEXTS, id(t), (t, text))
    return text


def _instant(t: datetime | FhirTime) -> str:
    """As FHIR writes it; a date-only time stays a date (never midnight): ``t.isoformat()``
    (``FhirTime.isoformat``: its instant's text when it has one, else its day's), each text
    remembered as :func:`_datetime_text` and :func:`_day` say."""
    if isinstance(t, datetime):
        return _datetime_text(t)
    instant = t.instant
    return _datetime_text(instant) if instant is not None else _day(t.day)


# -- shared constant parts (read-only: see Derived) ---------------------------------------------


def _fhirtis_code(code: str, display: str | None = None) -> Json:
    return _code(FHIRTIS_SYSTEM, code, display)


def _meta(profile: str) -> Json:
    return {"profile": [f"{PROFILE}/{profile}"]}


_IMPROVEMENT_CODE: Mapping[Measure, Json] = {
    m: _fhirtis_code(f"improvement-{m.value}") for m in Measure
}
_SCORE_CODE: Mapping[Measure, Json] = {m: _fhirtis_code(f"score-{m.value}") for m in Measure}
_CRITERIA: Mapping[Population, Json] = {p: _fhirtis_code(f"{p.value}-criteria") for p in Population}
_INTERPRETATION: Mapping[Category, list[Json]] = {
    c: [_code(CATEGORY_SYSTEM, c.value)] for c in Category
}
_BASIS_COMPONENT: Mapping[DosingWeightBasis, Json] = {
    b: {
        "code": _fhirtis_code("dosing-weight-basis"),
        "valueCodeableConcept": _code(BASIS_SYSTEM, b.value),
    }
    for b in DosingWeightBasis
}

_TIS_META = _meta("fhirtis-tis")
_TIS_CODE = _fhirtis_code("tis", "Total Improvement Score (ACR/EULAR 2016)")
_RESPONDER_CODE = _fhirtis_code("responder")
_RESPONDER_KNOWN: Mapping[bool, Json] = {
    b: {"code": _RESPONDER_CODE, "valueBoolean": b} for b in (True, False)
}
_DETERIORATION_UNDETERMINED = "missing measures leave confirmed deterioration undetermined"
_DETERIORATION_META = _meta("fhirtis-confirmed-deterioration")
_DETERIORATION_CODE = _fhirtis_code("confirmed-deterioration", "Confirmed deterioration")
_CYCLE_META = _meta("fhirtis-ivig-cycle-dose")
_CYCLE_CODE = _fhirtis_code("ivig-cycle-dose", "IVIG dose of one cycle")
_GRAMS_CODE = _fhirtis_code("ivig-grams")
_WEIGHT_CODE = _fhirtis_code("dosing-weight")
_RATE_CODE = _fhirtis_code("max-infusion-rate")
_COUNT_CODE = _fhirtis_code("administration-count")
_CUMULATIVE_META = _meta("fhirtis-ivig-cumulative-dose")
_CUMULATIVE_CODE = _fhirtis_code("ivig-cumulative-dose", "Cumulative IVIG dose")
_PER_KG_CODE = _fhirtis_code("cumulative-g-per-kg")
_CYCLE_COUNT_CODE = _fhirtis_code("cycle-count")
_FLAG_META = _meta("fhirtis-tee-risk")
_RATE_ISSUE_META = _meta("fhirtis-infusion-rate-above-max")
_RATE_ISSUE_CODE = _fhirtis_code("infusion-rate-above-max", "IVIG infusion rate above the maximum")
# evidence.code of a rate issue whose implicated administration is a step (R4 partOf) of a bag's
# administration: its detail names the bag, so that two steps of one bag read as one infusion
_STEP_OF_CONCEPT: Json = {
    "text": "the infusion the implicated administration is a rate step of (partOf)"
}
_EVENT_META = _meta("fhirtis-tee-temporally-associated")
_EVENT_CATEGORY = [_fhirtis_code("tee-temporally-associated")]
_TEMPORAL_ASSOCIATION = "temporally associated with IVIG"
_PROVENANCE_META = _meta("fhirtis-provenance")
_PROVENANCE_ACTIVITY = _fhirtis_code("derivation", "Derivation")
_PROVENANCE_AGENT = [
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
]
_INFUSION_RATE_URL = f"{EXT}/infusion-rate"
_MAX_RATE_URL = f"{EXT}/applicable-max-rate"
_RISK_FACTOR_URL = f"{EXT}/tee-risk-factor"
_UNASSESSED_URL = f"{EXT}/tee-risk-unassessed"
_EARLY_ONSET_URL = f"{EXT}/tee-early-onset"


# -- parts determined by a value, made once per distinct value (read-only: see Derived) ----------


_REFERENCES: dict[str, Json] = {}
_IMPROVEMENTS: dict[tuple[Measure, tuple[int, int]], Json] = {}
_SCORES: dict[tuple[Measure, Decimal], Json] = {}
_VALUE_COMPONENTS: dict[tuple[str, str], Json] = {}
_MAX_RATE_EXTENSIONS: dict[Decimal, Json] = {}


def _new_reference(source: str) -> Json:
    return _remember(_REFERENCES, source, {"reference": source})


def _references(sources: Iterable[str]) -> list[Json]:
    """``[{"reference": s} for s in sources]``, each ``{"reference": s}`` made once per distinct
    reference (a source is named by several resources of its patient: the TIS Observations of
    its baseline, the confirmed deterioration, the cycle and the cumulative dose, and the
    Provenance). ``sources`` must not repeat a reference (one resource never shares a part
    with itself, see Derived)."""
    get = _REFERENCES.get
    return [get(s) or _new_reference(s) for s in sources]


#: The types R4 Observation.derivedFrom may reference. A value read from a result contained in
#: a DiagnosticReport has the report as its source (a contained resource cannot be referenced
#: from outside its container), which derivedFrom cannot name: the Provenance names it (entity
#: ``what``: Reference(Any)), and the derived Observation says so in a note.
_DERIVED_FROM_TYPES = frozenset(
    {
        "DocumentReference",
        "ImagingStudy",
        "Media",
        "QuestionnaireResponse",
        "Observation",
        "MolecularSequence",
    }
)


def _derived_from(obs: Json, sources: list[str]) -> list[str]:
    """Set ``obs["derivedFrom"]`` to the ``sources`` (sorted, distinct) it may name (none: no
    element); return the others, for :func:`_note_other_sources`."""
    # sorted: every source lies between the first and the last, so when both are Observations
    # all are (the common case, checked without a walk)
    if not sources or (sources[0][:12] == "Observation/" and sources[-1][:12] == "Observation/"):
        others: list[str] = []
    else:
        others = [s for s in sources if s[:12] != "Observation/"]
    if others:  # rare: most sources are Observations
        others = [s for s in others if s.split("/", 1)[0] not in _DERIVED_FROM_TYPES]
        if others:
            sources = [s for s in sources if s not in set(others)]
    if sources:
        obs["derivedFrom"] = _references(sources)
    return others


def _note_other_sources(obs: Json, others: list[str]) -> None:
    """A note, before the last one (the settings), naming the sources derivedFrom cannot."""
    if others:
        text = (
            f"also derived from results contained in {', '.join(others)} (named by the "
            "Provenance: R4 derivedFrom cannot reference a DiagnosticReport)"
        )
        obs["note"].insert(len(obs["note"]) - 1, {"text": text})


def _improvement_component(measure: Measure, percent: Fraction) -> Json:
    """The percent-improvement component (keyed on the exact fraction's integers: hashing a
    Fraction is slow; percent_text is a function of the fraction alone)."""
    key = (measure, percent.as_integer_ratio())
    component = _IMPROVEMENTS.get(key)
    if component is None:
        text = percent_text(percent)
        assert text is not None
        quantity = _quantity(text, "%")
        component = _remember(
            _IMPROVEMENTS, key, {"code": _IMPROVEMENT_CODE[measure], "valueQuantity": quantity}
        )
    return component


def _score_component(measure: Measure, score: Decimal) -> Json:
    key = (measure, score)
    component = _SCORES.get(key)
    if component is None:
        quantity = _quantity(score, "{score}")
        component = _remember(
            _SCORES, key, {"code": _SCORE_CODE[measure], "valueQuantity": quantity}
        )
    return component


def _value_component(code: Json, code_key: str, value: Decimal, unit: str) -> Json:
    """A component ``{code, valueQuantity}`` (``code_key`` names the code and its unit; the
    value's text is the other key, as for :func:`_json_number`)."""
    key = (code_key, str(value))
    component = _VALUE_COMPONENTS.get(key)
    if component is None:
        component = _remember(
            _VALUE_COMPONENTS, key, {"code": code, "valueQuantity": _quantity(value, unit)}
        )
    return component


def _max_rate_extension(limit: Decimal) -> Json:
    extension = _MAX_RATE_EXTENSIONS.get(limit)
    if extension is None:
        extension = _remember(
            _MAX_RATE_EXTENSIONS,
            limit,
            {"url": _MAX_RATE_URL, "valueQuantity": _quantity(limit, "mg/kg/min")},
        )
    return extension


def _observation_head(meta: Json, ident: str, code: Json, patient_ref: str) -> Json:
    """What every derived Observation starts with: profile, identifier, status, code, subject."""
    return {
        "resourceType": "Observation",
        "meta": meta,
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": ident}],
        "status": "final",
        "code": code,
        "subject": {"reference": patient_ref},
    }


def _policy_note_of(policy: Policy) -> Json:
    record = policy.as_record()
    return {"text": "fhirtis policy: " + "; ".join(f"{k}={v}" for k, v in record.items())}


_policy_note = PerPolicy(_policy_note_of)
"""The policy in force, as the note every derived resource carries (one run has one policy:
made once per policy object, shared by every resource; read-only, see Derived)."""


# -- TIS ---------------------------------------------------------------------------------------


def _tis_components(tis: TisResult) -> tuple[list[Json], list[MeasureScore]]:
    """The components, and the measures without a score (``tis.partial`` iff there are any)."""
    out: list[Json] = []
    missing: list[MeasureScore] = []
    for m in tis.measures:
        measure = m.measure
        percent = m.percent_improvement
        score = m.score
        if score is None:
            missing.append(m)
        if score is None or percent is None:
            reason = m.reason.message if m.reason else "missing"
            out.append({"code": _IMPROVEMENT_CODE[measure], "dataAbsentReason": _absent(reason)})
            out.append({"code": _SCORE_CODE[measure], "dataAbsentReason": _absent(reason)})
        else:
            # the two caches looked up here (a TIS has 12 components): made on a miss only
            improvement = _IMPROVEMENTS.get((measure, percent.as_integer_ratio()))
            out.append(improvement or _improvement_component(measure, percent))
            out.append(_SCORES.get((measure, score)) or _score_component(measure, score))
    return out, missing


def _responder_component(f: FollowUp) -> Json:
    """The follow-up's ProDERM responder status (clinical spec §3) as the course computed it:
    a boolean, or unknown with what leaves it open (a partial TIS that may or may not reach the
    minimal threshold — it may be in category none and in a higher one —, an undetermined
    confirmed deterioration)."""
    if f.responder is not None:
        return _RESPONDER_KNOWN[f.responder]
    reasons = []
    possible = f.tis.possible_categories
    if Category.NONE in possible and len(possible) > 1:
        reasons.append("the partial TIS may or may not reach the minimal improvement threshold")
    if f.confirmed_deterioration is None:
        reasons.append(_DETERIORATION_UNDETERMINED)
    return {"code": _RESPONDER_CODE, "dataAbsentReason": _absent("; ".join(reasons) or "missing")}


def _missing_text(m: MeasureScore) -> str:
    return f"{m.measure.value}: {m.reason.message if m.reason else 'missing'}"


def _tis_observation(
    note: Json,
    patient_ref: str,
    baseline_day: str,
    followup: FollowUp,
    sources: Iterable[str],
) -> Derived:
    tis = followup.tis
    end = _day(followup.assessment.day)
    ident = _identifier("tis", f"tis|{patient_ref}|{baseline_day}|{end}|{_VERSION_PART}")
    obs: Json = _observation_head(_TIS_META, ident, _TIS_CODE, patient_ref)
    obs["effectivePeriod"] = {"start": baseline_day, "end": end}
    obs["method"] = _CRITERIA[tis.population]
    others = _derived_from(obs, sorted(set(sources)))
    obs["component"], missing = _tis_components(tis)
    obs["component"].append(_responder_component(followup))
    if missing:
        obs["valueRange"] = {
            "low": _quantity(tis.lower, "{score}"),
            "high": _quantity(tis.upper, "{score}"),
        }
    else:
        obs["valueQuantity"] = _quantity(tis.lower, "{score}")
    if tis.category is not None:
        obs["interpretation"] = _INTERPRETATION[tis.category]
    else:
        possible = " or ".join(c.value for c in tis.possible_categories)
        obs["interpretation"] = [{"text": f"undetermined: {possible}"}]
    if missing:
        missing_text = "; ".join(_missing_text(m) for m in missing)
        obs["note"] = [
            {"text": f"partial TIS (missing measures score 0 to their maximum): {missing_text}"},
            note,
        ]
    else:
        obs["note"] = [note]
    _note_other_sources(obs, others)
    return Derived(obs, ident)


def _deterioration_observation(
    evaluation: PatientEvaluation,
    note: Json,
    patient_ref: str,
    baseline_day: str,
    baseline_sources: tuple[str, ...],
    followup_sources: list[tuple[str, ...]],
) -> Derived:
    """For a course with a baseline and follow-ups (their sources given)."""
    course = evaluation.course
    ident = identifier_value("confirmed-deterioration", patient_ref, baseline_day)
    confirmed_on = course.confirmation.confirmed_on
    last = course.followups[-1]
    obs: Json = _observation_head(_DETERIORATION_META, ident, _DETERIORATION_CODE, patient_ref)
    obs["effectiveDateTime"] = _day(confirmed_on or last.assessment.day)
    others = _derived_from(obs, sorted(set(baseline_sources).union(*followup_sources)))
    obs["note"] = [note]
    if confirmed_on is not None:
        obs["valueBoolean"] = True
        # confirmed for certain here; missing measures at an earlier assessment may hide an
        # earlier confirmation (clinical spec §3: dated at the second of the first two
        # consecutive deteriorations; never guessed silently): say from when it may date
        earliest = next((day for day, status in course.confirmation.status if status is None), None)
        if earliest is not None and earliest < confirmed_on:
            obs["note"] = [
                {
                    "text": f"confirmed on {_day(confirmed_on)} at the latest: missing measures "
                    f"leave open whether it was confirmed earlier, from {_day(earliest)} on"
                },
                note,
            ]
    elif last.confirmed_deterioration is False:
        obs["valueBoolean"] = False
    else:
        obs["dataAbsentReason"] = _absent(_DETERIORATION_UNDETERMINED)
    _note_other_sources(obs, others)
    return Derived(obs, ident)


# -- IVIG exposure -----------------------------------------------------------------------------


def _administration_marks(cycle: Cycle) -> tuple[list[Json], bool]:
    """The notes that mark the cycle's administrations counted while ``in-progress`` or
    ``stopped`` (clinical spec §4: counted, but marked), each naming its administration, and
    whether any is still in progress (then the cycle is not over: its dose is preliminary)."""
    marks: list[Json] = []
    running = False
    for a in cycle.administrations:
        admin = a.administration
        if admin.in_progress:
            running = True
            marks.append({"text": f"{admin.source}: administration still in progress; counted"})
        if admin.stopped:
            marks.append(
                {
                    "text": f"{admin.source}: administration stopped; counted for the dose and "
                    "rate recorded"
                }
            )
    return marks, running


def _cycle_observation(
    note: Json,
    patient_ref: str,
    cycle: Cycle,
    period: Json,
    administrations: set[str],
    limits: tuple[Decimal, ...],
    dose_edges: tuple[Decimal, Decimal],
    marks: tuple[list[Json], bool],
) -> Derived:
    """``period``: the cycle's start and end; ``administrations``: its sources; ``limits``: the
    maximum rates the cycle's maximum rate is written beside (never shown equal to one);
    ``dose_edges``: the g/kg edges of the target's tolerance, likewise for the g/kg;
    ``marks``: :func:`_administration_marks` of the cycle."""
    day = _day(cycle.start.day)
    ident = _identifier("ivig-cycle-dose", f"ivig-cycle-dose|{patient_ref}|{day}|{_VERSION_PART}")
    dw = cycle.dosing_weight
    grams: Json
    if cycle.grams is not None:
        grams = _value_component(_GRAMS_CODE, "ivig-grams", cycle.grams, "g")
    else:
        grams = {
            "code": _GRAMS_CODE,
            "dataAbsentReason": _absent(
                f"dose of some administrations unknown (known: {_q(cycle.grams_known):f} g)"
            ),
        }
    weight: Json
    if dw.kg is not None:
        weight = _value_component(_WEIGHT_CODE, "dosing-weight", dw.kg, "kg")
    else:
        reason = "; ".join(n.message for n in dw.notes) or "no dosing weight"
        weight = {"code": _WEIGHT_CODE, "dataAbsentReason": _absent(reason)}
    rate: Json
    if cycle.max_rate_mg_kg_min is not None:
        rate = _value_component(
            _RATE_CODE,
            "max-infusion-rate",
            beside_any(cycle.max_rate_mg_kg_min, limits),
            "mg/kg/min",
        )
    else:
        rate = {
            "code": _RATE_CODE,
            "dataAbsentReason": _absent("no administration of the cycle has a known rate"),
        }
    components = [
        grams,
        weight,
        _BASIS_COMPONENT[dw.basis],
        rate,
        {"code": _COUNT_CODE, "valueInteger": cycle.administration_count},
    ]
    obs: Json = _observation_head(_CYCLE_META, ident, _CYCLE_CODE, patient_ref)
    marked, running = marks
    if running:  # an infusion still running: the cycle, and its dose, are not over
        obs["status"] = "preliminary"
    obs["effectivePeriod"] = period
    obs["component"] = components
    # R4: derivedFrom may name Observations only; the administrations the dose sums are the
    # events this Observation is part of (partOf allows MedicationAdministration).
    obs["partOf"] = _references(sorted(administrations))
    # the body measurements the dosing weight is computed from on its basis (the weight, the
    # height, or both: clinical spec §4), never one that plays no part in it
    measured = dw.sources  # one or two (the weight, the height)
    others: list[str] = []
    if all(m[:12] == "Observation/" for m in measured):  # as nearly always: named as they are
        if len(measured) == 2 and measured[0] != measured[1]:
            obs["derivedFrom"] = [{"reference": s} for s in sorted(measured)]
        elif measured:  # one source (or both the same)
            obs["derivedFrom"] = [{"reference": measured[0]}]
    else:  # a weight read from a DiagnosticReport's contained result
        others = _derived_from(obs, sorted(set(measured)))
    if cycle.g_per_kg is not None:
        obs["valueQuantity"] = _quantity(beside_any(cycle.g_per_kg, dose_edges), "g/kg")
    else:
        obs["dataAbsentReason"] = _absent("g/kg unknown: grams or dosing weight unknown")
    # the dosing weight's notes (a stale weight, spec §4) where it is used; an unknown weight
    # says them in its dataAbsentReason
    notes = [*cycle.notes, *(dw.notes if dw.kg is not None else ())]
    if notes or marked:
        obs["note"] = [*({"text": n.message} for n in notes), *marked, note]
    else:
        obs["note"] = [note]
    _note_other_sources(obs, others)
    return Derived(obs, ident)


def _cumulative_observation(
    note: Json,
    patient_ref: str,
    exposure: Exposure,
    period: Json,
    administrations: set[str],
    marks: tuple[list[Json], bool],
) -> Derived:
    """``period``: from the first cycle's start to the last one's end; ``administrations``: the
    sources of every cycle; ``marks``: :func:`_administration_marks` of every cycle, together."""
    ident = identifier_value("ivig-cumulative-dose", patient_ref)
    per_kg: Json
    if exposure.cumulative_g_per_kg is not None:
        per_kg = {
            "code": _PER_KG_CODE,
            "valueQuantity": _quantity(exposure.cumulative_g_per_kg, "g/kg"),
        }
    else:
        per_kg = {
            "code": _PER_KG_CODE,
            "dataAbsentReason": _absent(
                f"g/kg of some cycles unknown (known: "
                f"{_q(exposure.cumulative_g_per_kg_known):f} g/kg)"
            ),
        }
    obs: Json = _observation_head(_CUMULATIVE_META, ident, _CUMULATIVE_CODE, patient_ref)
    marked, running = marks
    if running:
        obs["status"] = "preliminary"
    obs["effectivePeriod"] = period
    obs["partOf"] = _references(sorted(administrations))
    obs["component"] = [
        per_kg,
        {"code": _CYCLE_COUNT_CODE, "valueInteger": exposure.cycle_count},
    ]
    obs["note"] = [*marked, note]
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
        extensions.append({"url": _RISK_FACTOR_URL, "extension": sub})
    limit = t.max_rate_now.limit_mg_kg_min
    extensions.append(_max_rate_extension(limit))
    # the factors the data did not allow to assess, as data (whether or not one was found)
    for u in t.current.unassessed:
        extensions.append(
            {
                "url": _UNASSESSED_URL,
                "extension": [
                    {
                        "url": "factor",
                        "valueCodeableConcept": _code(RISK_FACTOR_SYSTEM, u.kind.value),
                    },
                    {"url": "reason", "valueString": u.reason},
                ],
            }
        )
    kinds = ", ".join(f.kind.value for f in t.risk_factors) or "none found"
    if not t.risk_factors and t.current.unassessed:
        # the 4 mg/kg/min rests on what could be assessed: say what could not (clinical spec:
        # where data does not allow a rule to run, the result says so)
        kinds += ", not assessable: " + ", ".join(
            f"{u.kind.value} ({u.reason})" for u in t.current.unassessed
        )
    flag: Json = {
        "resourceType": "Flag",
        "meta": _FLAG_META,
        "extension": extensions,
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": ident}],
        "status": "active" if t.risk_factors else "inactive",
        "code": {
            "coding": [{"system": FHIRTIS_SYSTEM, "code": "tee-risk"}],
            "text": f"Thromboembolism risk with IVIG: {kinds}; maximum rate "
            f"{_q(limit):f} mg/kg/min",
        },
        "subject": {"reference": patient_ref},
        "period": {"start": _instant(evaluation.as_of)},
    }
    return Derived(flag, ident)


def _rate_issue_identifier(patient_ref: str, finding: RateFinding) -> str:
    """The business identifier of ``finding``'s DetectedIssue: one per rate record."""
    return identifier_value(
        "infusion-rate-above-max", patient_ref, unversioned(finding.administration_source)
    )


def _rate_issue(patient_ref: str, finding: RateFinding) -> Derived:
    ident = _rate_issue_identifier(patient_ref, finding)
    issue: Json = {
        "resourceType": "DetectedIssue",
        "meta": _RATE_ISSUE_META,
        "extension": [
            {
                "url": _INFUSION_RATE_URL,
                "valueQuantity": _quantity(
                    beside(finding.rate_mg_kg_min, finding.limit_mg_kg_min), "mg/kg/min"
                ),
            },
            _max_rate_extension(finding.limit.limit_mg_kg_min),
        ],
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": ident}],
        "status": "final",
        "code": _RATE_ISSUE_CODE,
        "severity": "high",
        "patient": {"reference": patient_ref},
        "identifiedDateTime": _instant(finding.start),
        "implicated": [{"reference": finding.administration_source}],
        "detail": finding.reason,
    }
    if finding.step_of is not None:  # a rate step of a titrated bag: the infusion it is part of
        issue["evidence"] = [
            {"code": [_STEP_OF_CONCEPT], "detail": [{"reference": finding.step_of}]}
        ]
    return Derived(issue, ident)


def _event_concept(assoc: AssociatedEvent) -> Json:
    """The event's own coding as recorded (clinical spec §5.3), and its text."""
    concept: Json = {"text": assoc.event.display or assoc.event.kind.value}
    if assoc.event.coding is not None:
        system, code = assoc.event.coding
        concept = {"coding": [{"system": system, "code": code}], **concept}
    return concept


def _event_identifier(patient_ref: str, assoc: AssociatedEvent) -> tuple[str, str]:
    """The business identifier of ``assoc``'s AdverseEvent, and the record (unversioned) that
    names it. One event recorded as several Conditions (TeeEvent.also; with another system's
    AdverseEvent of it) is named by the first Condition in sorted order, whichever record gives
    the onset, so that a record added later, or an onset made more precise, updates the same
    AdverseEvent in place; an existing AdverseEvent alone names it."""
    records = sorted(unversioned(s) for s in assoc.event.sources)
    conditions = [s for s in records if s.startswith("Condition/")]
    event_ref = (conditions or records)[0]
    return identifier_value("tee-temporally-associated", patient_ref, event_ref), event_ref


def _adverse_event(patient_ref: str, assoc: AssociatedEvent) -> Derived:
    ident, event_ref = _event_identifier(patient_ref, assoc)
    ae: Json = {
        "resourceType": "AdverseEvent",
        "meta": _EVENT_META,
        # early unknown (a date-only onset of which only part qualifies): no extension
        "identifier": {"system": IDENTIFIER_SYSTEM, "value": ident},
        "actuality": "actual",
        "category": _EVENT_CATEGORY,
        "event": _event_concept(assoc),
        "subject": {"reference": patient_ref},
        "date": _instant(assoc.onset),
        "suspectEntity": [
            {
                "instance": {"reference": s},
                "causality": [{"assessment": {"text": _TEMPORAL_ASSOCIATION}}],
            }
            for s in assoc.suspects
        ],
    }
    if assoc.early is not None:  # unknown (part of a date-only onset's day): no extension
        ae["extension"] = [{"url": _EARLY_ONSET_URL, "valueBoolean": assoc.early}]
    # R4 AdverseEvent has no identifier search parameter: match on patient, fhirtis's category,
    # the onset, the event's own coding (two events of one onset are two matches) and (when the
    # event is a Condition) the resulting condition.
    match = (
        f"subject={patient_ref}&category={FHIRTIS_SYSTEM}|tee-temporally-associated"
        f"&date={ae['date']}"
    )
    if assoc.event.coding is not None:
        match += f"&event={assoc.event.coding[0]}|{assoc.event.coding[1]}"
    if event_ref.startswith("Condition/"):
        # every Condition record of the event (clinical spec §5.3; R4 resultingCondition 0..*);
        # another system's AdverseEvent of it is no Condition (R4 AdverseEvent has no element
        # that references another: the write's Provenance names it among its sources)
        ae["resultingCondition"] = [
            {"reference": s}
            for s in sorted(assoc.event.sources, key=unversioned)
            if s.startswith("Condition/")
        ]
        match += f"&resultingcondition={event_ref}"
    return Derived(ae, ident, quote(match, safe="=&|:/"))


def _distinct_events(events: Iterable[Derived]) -> list[Derived]:
    """The derived AdverseEvents that their conditions (:attr:`Derived.match`) tell apart, in
    their order. R4 AdverseEvent has no identifier search: a condition whose search parameters
    are a subset of another's matches that one's resource too (one DVT on the problem list and
    as an AdverseEvent; one event as two AdverseEvents of one coding and onset), and the server
    would store one of them while fhirtis counted, and its Provenance named, both. Such an
    event is derived once: the more specific one (the Condition's, naming its resulting
    Condition) is kept, else the first."""
    derived = list(events)
    if len(derived) < 2:
        return derived
    params = [frozenset((d.match or "").split("&")) for d in derived]
    kept: list[int] = []
    # the most specific conditions first (more parameters), each in its order
    for i in sorted(range(len(derived)), key=lambda k: -len(params[k])):
        if not any(params[i] <= params[k] for k in kept):
            kept.append(i)
    return [derived[i] for i in sorted(kept)]


# -- all of it ---------------------------------------------------------------------------------


def derive_resources(
    evaluation: PatientEvaluation,
    patient_ref: str,
    labels: Mapping[str, frozenset[Label]] | None = None,
    patient_source: str | None = None,
) -> list[Derived]:
    """Every derived resource of one patient's evaluation, in a stable order; ``labels``: the
    security labels of the labelled sources (by versioned reference,
    :attr:`~fhirtis.fhir.extract.common.PatientData.labels`), which each resource derived from
    them carries (:mod:`fhirtis.fhir.security`); ``patient_source``: the Patient resource's
    versioned reference, whose labels every resource carries (all are about the patient)."""
    out: list[Derived] = []
    note = _policy_note(evaluation.policy)
    course = evaluation.course
    baseline = course.baseline
    if baseline is not None:
        baseline_day = _day(baseline.day)
        baseline_sources = baseline.sources
        followup_sources = [f.assessment.sources for f in course.followups]
        for f, sources in zip(course.followups, followup_sources, strict=True):
            out.append(
                _tis_observation(
                    note,
                    patient_ref,
                    baseline_day,
                    f,
                    (*baseline_sources, *sources),
                )
            )
        if course.followups:
            out.append(
                _deterioration_observation(
                    evaluation, note, patient_ref, baseline_day, baseline_sources, followup_sources
                )
            )
    exposure = evaluation.exposure
    if exposure.cycles:
        # each cycle's times and sources are made once: the cumulative dose uses them too
        all_administrations: set[str] = set()
        all_marks: list[Json] = []
        any_running = False
        periods: list[Json] = []
        limits = evaluation.policy.rate_limits
        dose_edges = dose_tolerance_edges(evaluation.policy)
        for cycle in exposure.cycles:
            period = {"start": _instant(cycle.start), "end": _instant(cycle.end)}
            # = set(cycle.sources), without the two properties per administration
            administrations = {a.administration.source for a in cycle.administrations}
            all_administrations |= administrations
            periods.append(period)
            marks = _administration_marks(cycle)
            all_marks += marks[0]
            any_running = any_running or marks[1]
            out.append(
                _cycle_observation(
                    note, patient_ref, cycle, period, administrations, limits, dose_edges, marks
                )
            )
        whole = {"start": periods[0]["start"], "end": periods[-1]["end"]}
        out.append(
            _cumulative_observation(
                note,
                patient_ref,
                exposure,
                whole,
                all_administrations,
                (all_marks, any_running),
            )
        )
    thrombosis = evaluation.thrombosis
    out.append(_risk_flag(evaluation, patient_ref, thrombosis))
    out.extend(_rate_issue(patient_ref, f) for f in thrombosis.rate_findings)
    out.extend(
        _distinct_events(_adverse_event(patient_ref, a) for a in thrombosis.associated_events)
    )
    if labels:
        _label(out, labels, patient_ref, exposure, thrombosis, patient_source)
    if validation_enabled():
        for d in out:
            validate(d.resource)
    return out


_WORDS = re.compile(r"[\s,;()]+")


def _cited(resource: Json) -> set[str]:
    """Every string of ``resource`` and every word of its texts (a note names the results
    contained in a DiagnosticReport that derivedFrom cannot reference), but those of its
    ``subject`` or ``patient``: the references to the sources it is derived from, among others."""
    out: set[str] = set()
    stack: list[object] = [v for k, v in resource.items() if k not in ("subject", "patient")]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            out.add(value)
            if " " in value:
                out.update(_WORDS.split(value))
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return out


def _label(
    out: list[Derived],
    labels: Mapping[str, frozenset[Label]],
    patient_ref: str,
    exposure: Exposure,
    thrombosis: ThrombosisAssessment,
    patient_source: str | None,
) -> None:
    """Give each resource of ``out`` the security labels of the labelled sources it is derived
    from (:mod:`fhirtis.fhir.security`): the Patient's, to every one (each is about the patient,
    who is its ``subject`` or ``patient``, and the Patient's birth date, sex and death are read
    by every evaluation: the juvenile criteria, the age factor that sets each rate limit, the
    ideal dosing weight); those it cites, and those it does not cite: an
    AdverseEvent's other records of its event (another system's AdverseEvent), a DetectedIssue's
    evidence of the risk factors that set its limit (its maximum rate says they are present)
    and its cycle's dosing weight (its rate in mg/kg/min is computed with it), the cumulative
    dose's every cycle's dosing weight (its g/kg is the sum of theirs: clinical spec §4)."""
    also: dict[str, set[str]] = {}  # business identifier → its sources it does not cite
    weighed = {c.index: c.dosing_weight.sources for c in exposure.cycles}
    if exposure.cycles:
        also[identifier_value("ivig-cumulative-dose", patient_ref)] = {
            s for sources in weighed.values() for s in sources
        }
    # a labelled source by its unversioned reference: a rate step's bag is named unversioned
    # (RateFinding.step_of, evidence.detail) and labelled by its versioned one
    versioned = {unversioned(s): s for s in labels}
    for a in thrombosis.associated_events:
        ident, _ = _event_identifier(patient_ref, a)
        also.setdefault(ident, set()).update(a.event.sources)
    for f in thrombosis.rate_findings:
        ident = _rate_issue_identifier(patient_ref, f)
        also.setdefault(ident, set()).update(e for r in f.limit.factors for e in r.evidence)
        also[ident].update(weighed.get(f.cycle_index, ()))
        if f.step_of is not None and f.step_of in versioned:
            also[ident].add(versioned[f.step_of])
    if patient_source is None:
        patient_source = versioned.get(patient_ref)
    about = labels.get(patient_source) if patient_source is not None else None
    for d in out:
        sources = _cited(d.resource) | also.get(d.identifier, set())
        found = [labels[s] for s in sources if s in labels]
        if about:
            found.append(about)
        if found:
            labelled(d.resource, high_water(found))


def _sorted_unique(values: Iterable[str]) -> list[str]:
    """``sorted(set(values))``: sorting first and then dropping repeats (adjacent once sorted;
    ``dict.fromkeys`` keeps the first of each, in order) gives the same list, and costs less on
    the usual input, already sorted and without repeats (sorting it is one pass; sorting a set
    is a full sort of an unordered one)."""
    return list(dict.fromkeys(sorted(values)))


def provenance(
    targets: Iterable[str],
    sources: Iterable[str],
    recorded: datetime,
    labels: Mapping[str, frozenset[Label]] | None = None,
) -> Json:
    """One Provenance: the derived resources as targets (references or urn:uuids), the source
    resources with versions as entities, fhirtis as the agent, activity derivation; with the
    security labels of the labelled ``sources`` it names (``labels``, by versioned reference:
    :mod:`fhirtis.fhir.security`)."""
    named = _sorted_unique(sources)
    meta = _PROVENANCE_META
    if labels:
        found = [labels[s] for s in named if s in labels]
        if found:
            meta = {**meta, "security": codings(high_water(found))}
    prov: Json = {
        "resourceType": "Provenance",
        "meta": meta,
        "target": [{"reference": t} for t in targets],
        "recorded": _instant(recorded),
        "activity": _PROVENANCE_ACTIVITY,
        "agent": _PROVENANCE_AGENT,
        "entity": [{"role": "source", "what": what} for what in _references(named)],
    }
    return validate(prov) if validation_enabled() else prov
