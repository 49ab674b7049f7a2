"""MedicationAdministrations → IVIG administrations; medications as risk evidence.
Pure: no network."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from functools import cache

import orjson

from fhirtis.clinical.facts import (
    FhirTime,
    IvigAdministration,
    RiskEvidence,
    RiskFactorKind,
)
from fhirtis.clinical.frozen import record
from fhirtis.fhir.codes import Terminology, canonical_system
from fhirtis.fhir.extract.common import (
    MEMO_LIMIT,
    ExcludedError,
    ExtractorBase,
    Json,
    PatientData,
    TimeElements,
    coded_quantity,
    concept_codings,
    concept_names,
    concept_text,
    fhir_time_of,
    first_fhir_time,
    modifier_extension_error,
    read_quantity,
    ref_of,
    referenced,
    resolve_reference,
    to_unit,
    use_began,
    use_days,
)
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.primitives import ID_FULLMATCH, PrimitiveError, instant_or_none, json_array
from fhirtis.fhir.units import (
    UnitError,
    case_refusal,
    convert,
    factor,
    first_convertible,
    to_decimal,
)

_MA_USED = {"completed", "in-progress", "stopped"}
MEDICATION_VOID = frozenset({"entered-in-error", "not-taken", "cancelled", "draft", "intended"})
"""Statuses of a MedicationStatement or MedicationRequest that record no use of the medication
(a MedicationStatement ``intended``: "may be taken at some time in the future", R4)."""


def records_no_use(r: Json) -> bool:
    """A MedicationStatement or MedicationRequest that records no use of its medication: a
    status of :data:`MEDICATION_VOID`, or a request that prohibits it (R4
    ``MedicationRequest.doNotPerform`` true, a modifier: "True if request is prohibiting
    action"; QI-Core's ``qicore-medicationprohibited``)."""
    return r.get("status") in MEDICATION_VOID or r.get("doNotPerform") is True


def _malformed_do_not_perform(r: Json, path: str) -> Issue:
    """A request whose ``doNotPerform`` (a boolean modifier) is none: JSON null (FHIR JSON
    allows no null, R4 json.html) or another type. Whether it prohibits its estrogen is not
    known; it is read as an order (estrogen use: the lower IVIG rate limit), and said."""
    return Issue(
        "warning",
        "value",
        f"{ref_of(r)} has a doNotPerform that is not a boolean (null is not allowed in FHIR "
        "JSON): whether it prohibits the medication is unknown, so it is read as an order and "
        "its estrogen is counted as a risk factor",
        f"{path}.doNotPerform",
        ref_of(r),
    )


_EFFECTIVE = TimeElements.of("effectiveDateTime", "effectivePeriod.start")
_EFFECTIVE_END = TimeElements.of("effectivePeriod.end")  # an infusion's: a date
# a use's (an estrogen statement, order): the "no end" placeholder is no end
_USE_EFFECTIVE_END = TimeElements.of("effectivePeriod.end", open_end=True)
_USE_START = TimeElements.of("effectivePeriod.start", "effectiveDateTime", "authoredOn")


Coding = tuple[str | None, str | None]


class AmountUnits:
    """The canonical units a dose or a rate is read in, tried in turn, and the first of them
    that each UCUM code met converts to (:func:`~fhirtis.fhir.units.first_convertible`), worked
    out once per code: it depends on the units alone (bounded by MEMO_LIMIT)."""

    __slots__ = ("_first", "units")

    def __init__(self, *units: str) -> None:
        self.units = units
        self._first: dict[str, str | None] = {}

    def first(self, code: str) -> str | None:
        """The first of :attr:`units` that ``code`` converts to, or None."""
        try:
            return self._first[code]
        except KeyError:
            pass
        target = first_convertible(code, self.units)
        if len(self._first) >= MEMO_LIMIT:
            self._first.clear()
        self._first[code] = target
        return target


_RATE_UNITS = AmountUnits("mg/h", "mL/h", "mg/kg/h", "mL/kg/h")
_DOSE_UNITS = AmountUnits("g", "mL", "g/kg")
_RATIO_UNITS = AmountUnits("mg", "mL", "mg/kg", "mL/kg")  # a rateRatio's numerator
_ROUTE_NAMES = {
    "sc": "subcutaneous (SNOMED CT 34206005)",
    "im": "intramuscular (SNOMED CT 78421000)",
}
_ROUTE_WORDS = {
    "iv": {"iv", "intravenous", "intravenously", "ivpb"},
    "sc": {"sc", "sq", "subq", "subcut", "subcutaneous", "subcutaneously"},
    "im": {"im", "intramuscular", "intramuscularly"},
}
# The route adjectives of European records by their stems (profiles/TERMINOLOGY.md, route
# ValueSets): German "intravenös", "subcutan"/"subkutan", "intramuskulär" (CHMED CDTYP61, CH
# EMED), Norwegian "intravenøs" (LMDI, Volven 7477), Dutch "intraveneus", French
# "intraveineuse", "sous-cutanée", "intramusculaire", Italian "endovenosa", "sottocutanea",
# "intramuscolare". "intraven" alone is no stem: "intraventrikulär" is another route.
_ROUTE_STEMS = {
    "iv": ("intraveno", "intravenö", "intravenø", "intravene", "intravei", "endoveno"),
    "sc": ("subcut", "subkut", "souscut", "sottocut"),
    "im": ("intramusc", "intramusk", "intramusco"),
}
# The Latin abbreviations written with points ("i.v.", "s.c.", "i.m.", "I. V."), read as the
# letters they join, in capitals ("IV", "SC", "IM": abbreviations, see _PREPOSITION_IM)
_DOTTED_ABBREVIATION = re.compile(r"\b([a-z])\.\s?([a-z])\b\.?", re.IGNORECASE)
# a word of any alphabet; a hyphenated one is read whole ("sous-cutanée" → "souscutanée") and
# by its parts ("IV-Infusion" → "iv", "infusion")
_ROUTE_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
# "im" is also the German preposition ("in the": "Kurzinfusion im Port", "Infusion im
# Portsystem"): within a longer text it names the intramuscular route only as the abbreviation
# is written, in capitals (HL7 v2 table 0162 "IM", the route text EHR exports send beside
# SNOMED CT 78421000) or with points ("i.m."); alone ("im", "Im") it is the abbreviation
_PREPOSITION_IM = frozenset({"im", "Im"})


def _route_kind(name: str) -> str | None:
    """``iv``, ``sc`` or ``im`` when a route's text or display names that route (in this order
    when it names several), else None."""
    spelled_words = _ROUTE_WORD.findall(
        _DOTTED_ABBREVIATION.sub(lambda m: (m[1] + m[2]).upper(), name)
    )
    alone = len(spelled_words) == 1 and "-" not in spelled_words[0]
    words: set[str] = set()
    for spelled in spelled_words:
        if "-" in spelled:
            words.add(spelled.replace("-", "").lower())
        words.update(
            part.lower()
            for part in spelled.split("-")
            # the German preposition, not the route's abbreviation
            if alone or part not in _PREPOSITION_IM
        )
    for kind, spelled in _ROUTE_WORDS.items():
        if words & spelled or any(w.startswith(_ROUTE_STEMS[kind]) for w in words):
            return kind
    return None


_IV_WORDS = re.compile(r"\b(intravenous|ivig|igiv|iv)\b")
# A product named generically as given under the skin or into a muscle only (clinical spec §4:
# subcutaneous and intramuscular immune globulins are not IVIG): "Immune Globulin Subcutaneous
# (Human)", "Human normal immunoglobulin (SCIg)", "Immune Globulin Intramuscular (Human)", and
# as drug references abbreviate them: "immune globulin SC", "immune globulin IM (IGIM)",
# "Immu globulin,gamma (igg) intramusc." (profiles/TERMINOLOGY.md).
_SC_WORDS = re.compile(r"\b(subcutaneous|subcutaneously|subcut|subq|scig|sc)\b")
_IM_WORDS = re.compile(r"\b(intramuscular|intramuscularly|intramusc|igim|imig)\b")
# Names that look like an immune globulin (clinical spec §4: reported, never ignored silently,
# when not recognised; German "Immunglobulin" too), but not antithymocyte or antilymphocyte
# immunoglobulin.
_LOOKS_IG = re.compile(r"immunoglobulin|immunglobulin|immune globulin")
_NOT_NORMAL_IG = re.compile(r"thymocyte|lymphocyte")
# The stabilisers, excipients and diluents IVIG labels list with their amounts (US prescribing
# information, "Description": glycine in Gamunex-C and Gammagard Liquid, L-proline in Privigen,
# maltose in Octagam, D-sorbitol in Flebogamma DIF, polysorbate 80 in Gammaplex and Panzyga,
# sucrose, glucose, albumin, sodium chloride, water): an ingredient named so is never the
# immunoglobulin, whose strength is the concentration (clinical spec §4), even as the only one.
# Session 34: their German, Nordic and Latin names as European product information and German
# substance codes (ASK) give them: "L-Prolin", "Wasser für Injektionszwecke" (Privigen's EU
# SmPC in German; MII KDS Medication example, ASK 00343), "prolinum", "Wasser ad iniectabilia"
# (Swissmedic), "Glycin", "Polysorbat", "Saccharose" (docs/clinical-specification.md).
_STABILISER = re.compile(
    r"\b(glycine|(?:l-)?proline|maltose|(?:d-)?sorbitol|polysorbate|sucrose|glucose|dextrose|"
    r"mannitol|albumin|sodium chloride|saline|water for injections?|sodium acetate|"
    r"polyethylene glycol|nicotinamide|"
    r"glycin|glycinum|(?:l-)?prolin|prolinum|polysorbat|saccharose|natriumchlorid|wasser)\b"
)
# Antigen-specific (hyperimmune) globulins are not normal human immune globulin (ATC J06BB):
# anti-D as "Rho(D)", "Rh0(D)", "Rh o (D)", "Rh immune globulin", "anti-RhD", "Rhesus"; RSV
# immune globulin as CVX 71 names it ("respiratory syncytial virus immune globulin,
# intravenous"); and any globulin called "hyperimmune" (profiles/TERMINOLOGY.md).
_HYPERIMMUNE = re.compile(
    r"\b(hepatitis|rho|rh|rh0|rhd|rhesus|anti-d|tetanus|rabies|cytomegalovirus|cmv|varicella|"
    r"zoster|botulism|vaccinia|anthrax|rsv|syncytial|hyperimmune)\b"
)


def _looks_ig(names: Sequence[str]) -> bool:
    """One of ``names`` (lower case) looks like a normal immune globulin in any of the
    languages :data:`_LOOKS_IG` reads: not an antithymocyte, antilymphocyte or antigen-specific
    (hyperimmune) one."""
    return any(
        _LOOKS_IG.search(n) and not _NOT_NORMAL_IG.search(n) and not _HYPERIMMUNE.search(n)
        for n in names
    )


def _by_named_route(kind: str, names: Sequence[str]) -> tuple[str, bool]:
    """An immune globulin named generically (``kind`` "generic") by the routes its names give:
    ``scig`` or ``imig`` when they name only the subcutaneous or only the intramuscular route
    (not IVIG, clinical spec §4); and whether an unrecorded route is to be reported (its names
    give no route, or more than one). Any other ``kind`` is returned as it is."""
    if kind != "generic":
        return kind, False
    iv = any(_IV_WORDS.search(n) or _names_route_stem(n, "iv") for n in names)
    sc = any(_SC_WORDS.search(n) or _names_route_stem(n, "sc") for n in names)
    if not iv and sc:
        return "scig", True
    if not iv and any(_IM_WORDS.search(n) or _names_route_stem(n, "im") for n in names):
        return "imig", True
    return kind, not iv or sc


def _names_route_stem(name: str, kind: str) -> bool:
    """A word of ``name`` (lower case) begins with a European route adjective's stem
    (:data:`_ROUTE_STEMS`): a generic name in another language that names its route ("normales
    Immunglobulin vom Menschen zur subkutanen Anwendung", "... zur intravenösen Anwendung")."""
    return any(
        word.replace("-", "").startswith(_ROUTE_STEMS[kind]) for word in _ROUTE_WORD.findall(name)
    )


def _named(known: Sequence[str], names: Sequence[str]) -> bool:
    """A known name (lower case) in one of the product's names: short names (IgG, IVIG) only as
    whole words, longer ones anywhere."""
    for name in names:
        for k in known:
            if not k:
                continue
            if len(k) <= 5:
                if re.search(rf"(?<![a-z0-9]){re.escape(k)}(?![a-z0-9])", name):
                    return True
            elif k in name:
                return True
    return False


@cache
def _words_pattern(known: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern for the known names (lower case), each matched as a whole word (not inside
    another word: "estradiol" matches "ethinyl estradiol" and "estradiol-valerate", not
    "ethinylestradiol", which a ValueSet lists itself); None when there are none."""
    words = sorted({k for k in known if k}, key=len, reverse=True)
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in words)
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")


def _named_words(known: tuple[str, ...], names: Sequence[str]) -> bool:
    """Whether a known name (lower case) is one of the words of one of ``names`` (lower case)."""
    pattern = _words_pattern(known)
    return pattern is not None and any(pattern.search(name) for name in names)


def _medication_names(med: Json | None, r: Json) -> list[str]:
    """Every name of a medication, lower case: its code's text and coding displays (the
    Medication's, or the resource's medicationCodeableConcept) and its ingredients' names."""
    if med is None:
        return [n.lower() for n in concept_names(r.get("medicationCodeableConcept"))]
    names = [n.lower() for n in concept_names(med.get("code"))]
    ingredients = med.get("ingredient")
    for ing in ingredients if isinstance(ingredients, list) else ():
        if isinstance(ing, dict):
            names += [n.lower() for n in concept_names(ing.get("itemCodeableConcept"))]
    return names


def _first_convertible(
    value: Decimal, unit: str, targets: AmountUnits, path: str
) -> tuple[str, Decimal]:
    target = targets.first(unit)
    if target is not None:
        return target, convert(value, unit, target)
    why = next(filter(None, (case_refusal(unit, t) for t in targets.units)), None)
    if why is None:
        why = f"unit {unit!r} is unknown or not one of {', '.join(targets.units)}"
    raise ExcludedError("value", why, path)


_IG_WORDS = ("globulin", "ivig", "igiv", "immunoglobulin")

ADMINISTRATION_FIELDS = (
    "source",
    "start",
    "end",
    "in_progress",
    "dose_g",
    "dose_ml",
    "concentration_mg_per_ml",
    "rate_ml_per_h",
    "rate_mg_per_h",
    "product",
    "dose_g_per_kg",
    "rate_mg_per_kg_per_h",
    "rate_ml_per_kg_per_h",
    "stopped",
    "part_of",
)
"""The fields of :class:`IvigAdministration` in the order it is built in (by position: a test
checks the order against the class)."""


def _modified(med: Json) -> bool:
    """Whether a Medication carries a modifierExtension on itself or on an ingredient (where
    fhirtis reads the product's strength)."""
    if med.get("modifierExtension"):
        return True
    ingredients = med.get("ingredient")
    return isinstance(ingredients, list) and any(
        isinstance(i, dict) and i.get("modifierExtension") for i in ingredients
    )


def _identifier_keys(identifiers: object, start: FhirTime) -> list[tuple[str, str, FhirTime]]:
    """The (system, value, start) of each identifier that has a system and a value (one without
    a system identifies nothing across systems)."""
    if not isinstance(identifiers, list):
        return []
    return [
        (system, value, start)
        for ident in identifiers
        if isinstance(ident, dict)
        and isinstance(system := ident.get("system"), str)
        and isinstance(value := ident.get("value"), str)
        and system
        and value
    ]


def _last_updated(r: Json) -> datetime | None:
    """``meta.lastUpdated`` of ``r`` as an instant; None without a valid one."""
    meta = r.get("meta")
    return instant_or_none(meta.get("lastUpdated")) if isinstance(meta, dict) else None


def _step_of(r: Json, resolve: Mapping[str, Json]) -> str | None:
    """The MedicationAdministration (``Type/id``) that ``r`` is part of (R4 ``partOf``: "a
    larger event of which this particular event is a component or step"), where a reference
    names one in the record other than ``r``; None otherwise."""
    for part in json_array(r.get("partOf")):
        target = part.get("reference") if isinstance(part, dict) else None
        if not isinstance(target, str) or target.startswith("#"):
            continue
        found = resolve_reference(resolve, target)
        if (
            isinstance(found, dict)
            and found is not r
            and found.get("resourceType") == "MedicationAdministration"
        ):
            return ref_of(found)
    return None


def _fhir_time_or_none(value: object) -> FhirTime | None:
    """:func:`fhir_time_of` of a text, None for anything else or a text it refuses."""
    if type(value) is not str:
        return None
    try:
        return fhir_time_of(value)
    except PrimitiveError:
        return None


def _coded_amount(q: object, targets: AmountUnits) -> tuple[str, Decimal] | None:
    """:meth:`MedicationReader._dose` / :meth:`MedicationReader._rate` of the usual Quantity
    (see :func:`coded_quantity`) whose unit converts to one of ``targets``, without the path
    texts an issue would need; None for anything else, which the general reader then reads
    (and reports). Where this gives a result the general reader gives the same: its unit is a
    non-empty code (never None) and the first convertible target converts without error (a
    value in the target unit itself is kept as it is, as ``convert`` keeps it)."""
    coded = coded_quantity(q)
    if coded is None:
        return None
    value, unit = coded
    target = targets.first(unit)
    if target is None:
        return None
    return target, value if unit == target else convert(value, unit, target)


@record
class _Product:
    """An administered product as the IVIG rules read it (see
    :meth:`MedicationReader._product_facts`)."""

    kind: str | None  # :meth:`MedicationReader._immune_globulin`, or ``imig`` (_by_named_route)
    codings: list[Coding]  # its code's codings, then its ingredients'
    names: list[str]  # lower case
    shown: str  # its name in messages ("" for kind None, unless it looks like an immune globulin)
    route_unsure: bool  # given by more than one route: an unrecorded route is reported
    modified: bool  # its Medication has a modifierExtension (:func:`_modified`)


_UNREAD = object()  # a :class:`_MedicationRead` part not worked out yet


@dataclass(slots=True)
class _MedicationRead:
    """One medication as the readers of the resources that name it need it: the Medication
    resource (None for an inline ``medicationCodeableConcept``), its codings and text, and, once
    asked, whether it is an estrogen, what it is as a product and its strength.

    A Medication resource is read once per patient (its administrations share it: a patient has
    one or two products and dozens of administrations); the parts depend on the Medication
    alone. An exclusion found working out a part is not kept: it is raised again (and looked for
    again) for each resource that asks.

    The parts are the same for every Medication of the same content (the patients of a registry
    share their products; only the id and meta differ): a Medication whose ingredients name no
    other resource starts from the parts of the first one read of its content (see
    :meth:`MedicationReader._shared_read`)."""

    med: Json | None
    codings: list[Coding]
    text: str
    estrogen: bool | None = None  # :meth:`MedicationReader._is_estrogen`
    product: _Product | None = None  # :meth:`MedicationReader._read_product`
    strength: Decimal | ExcludedError | object | None = _UNREAD  # _medication_strength
    # the parts of every Medication of this content, worked out once (see _shared_read)
    shared: _MedicationRead | None = None


def _content_key(med: Json) -> bytes | None:
    """What a Medication's parts (:class:`_MedicationRead`) depend on, as one key: its code,
    ingredients and modifierExtension, as JSON text (equal texts: equal values, of the same JSON
    types). None when an ingredient names another resource (``itemReference``, read only
    without an ``itemCodeableConcept``: what it names is the Bundle's, not the Medication's) or
    the elements are no JSON text."""
    ingredients = med.get("ingredient")
    for ing in ingredients if isinstance(ingredients, list) else ():
        if isinstance(ing, dict) and "itemReference" in ing and "itemCodeableConcept" not in ing:
            return None
    try:
        return orjson.dumps((med.get("code"), ingredients, med.get("modifierExtension")))
    except orjson.JSONEncodeError:
        return None


_PRODUCT_VALUE_SETS = (
    "ivig-products",
    "scig-products",
    "ivig-dual-route-products",
    "risk-estrogen",
)


def _medication_systems(terminology: Terminology) -> frozenset[str]:
    """The code systems of the ValueSets that identify an administered product (IVIG, SCIG,
    estrogen: their concepts, regex filters and hierarchies), worked out once per
    terminology."""
    memo = terminology.memo_for("extract.medication-systems")
    found: frozenset[str] | None = memo.get("systems")
    if found is None:
        indexes = [
            terminology.value_sets[k] for k in _PRODUCT_VALUE_SETS if k in terminology.value_sets
        ]
        found = frozenset(
            {s for v in indexes for s, _ in v.codes}
            | {s for v in indexes for s, _ in v.patterns}
            | {h.system for v in indexes for h in v.hierarchies}
        )
        memo["systems"] = found
    return found


class UnresolvedMedicationError(ExcludedError):
    """A medicationReference that resolves to no Medication."""


def unresolved_medication(
    data: PatientData, r: Json, exc: UnresolvedMedicationError, consequence: str
) -> None:
    """The information issue for a record ``r`` whose Medication cannot be resolved and that
    names no immune globulin (clinical spec §4: never ignored silently; ``fhirtis cohort`` and
    ``fhirtis run`` say the same of a Medication not in their input, and keep one issue)."""
    data.issues.append(
        Issue(
            "information",
            exc.issue_code,
            f"{ref_of(r)}: {exc.message}: {consequence}",
            exc.path,
            ref_of(r),
        )
    )


class MedicationReader(ExtractorBase):
    # -- MedicationAdministration -----------------------------------------------------------

    def _read_medication(self, r: Json, path: str, resolve: Mapping[str, Json]) -> _MedicationRead:
        """``r``'s medication[x] (:class:`_MedicationRead`): a referenced Medication's once per
        patient, an inline medicationCodeableConcept's afresh."""
        if "medicationCodeableConcept" in r:
            concept = r["medicationCodeableConcept"]
            return _MedicationRead(
                None,
                concept_codings(concept, f"{path}.medicationCodeableConcept"),
                concept_text(concept),
            )
        ref = r.get("medicationReference")
        target = ref.get("reference") if isinstance(ref, dict) else None
        if resolve is self._resolve and type(target) is str:
            # a patient's administrations name one or two Medications, by the same reference
            named: _MedicationRead | None = self._med_refs.get(target)
            if named is not None:
                return named
        if not isinstance(target, str):
            if ref is None:
                raise ExcludedError("required", "no medication[x]", f"{path}.medication[x]")
            if not isinstance(ref, dict):
                message = "medicationReference is not a Reference (an object)"
                raise ExcludedError("structure", message, f"{path}.medicationReference")
            raise ExcludedError(
                "required",
                "medicationReference has no reference to resolve (a display or identifier only)",
                f"{path}.medicationReference",
            )
        med = referenced(r, target, resolve)
        if med is None or med.get("resourceType") != "Medication":
            raise UnresolvedMedicationError(
                "not-found",
                f"its Medication ({target}) cannot be resolved",
                f"{path}.medicationReference",
            )
        if target.startswith("#"):
            self._med_containers[id(med)] = r
        # by the Medication resource itself: kept with its answer, so that its id is not reused
        known = self._medications.get(id(med))
        if known is None or known.med is not med:
            known = self._medications[id(med)] = self._shared_read(med)
        if resolve is self._resolve and not target.startswith("#"):
            self._med_refs[target] = known
        return known

    def _shared_read(self, med: Json) -> _MedicationRead:
        """A new :class:`_MedicationRead` of ``med``, with the parts already worked out for a
        Medication of the same content (:func:`_content_key`), which it then shares."""
        key = _content_key(med)
        template: _MedicationRead | None = None if key is None else self._med_contents.get(key)
        if template is None:
            code = med.get("code")
            codings = concept_codings(code, "Medication.code")
            template = _MedicationRead(None, codings, concept_text(code))
            if key is not None:
                if len(self._med_contents) >= MEMO_LIMIT:
                    self._med_contents.clear()
                self._med_contents[key] = template
        return _MedicationRead(
            med,
            template.codings,
            template.text,
            template.estrogen,
            template.product,
            template.strength,
            template,
        )

    def _product(
        self,
        med: Json | None,
        codings: list[Coding],
        text: str,
        resolve: Mapping[str, Json] | None = None,
    ) -> tuple[list[Coding], list[str]]:
        """Every coding and name of the product: its code, then its ingredients' codes (an
        ingredient's Substance found in ``resolve``, else in the patient's resources)."""
        all_codings = list(codings)
        names = [text.lower()] if text else []
        for i, ing in enumerate(json_array((med or {}).get("ingredient"))):
            if med is None or not isinstance(ing, dict):
                continue
            for item in self._ingredient_concepts(med, ing, resolve):
                all_codings += concept_codings(item, f"Medication.ingredient[{i}]")
                names += [n.lower() for n in concept_names(item)]
        return all_codings, names

    def _ingredient_concepts(
        self, med: Json, ing: Json, resolve: Mapping[str, Json] | None = None
    ) -> list[object]:
        """The concepts that name an ingredient (R4 ``item[x]``): its ``itemCodeableConcept``;
        for an ``itemReference``, the reference's display (as a text) and the ``code`` of the
        Substance or Medication it names, contained in the Medication, beside a contained
        Medication in its container (R4 contained resources do not nest), or in the Bundle (the
        R4 examples medicationexample0310, 0312 and 15 reference a contained Substance)."""
        if "itemCodeableConcept" in ing:
            return [ing["itemCodeableConcept"]]
        ref = ing.get("itemReference")
        if not isinstance(ref, dict):
            return []
        concepts: list[object] = []
        display = ref.get("display")
        if isinstance(display, str) and display.strip():
            concepts.append({"text": display})
        target = ref.get("reference")
        if isinstance(target, str):
            where = self._resolve if resolve is None else resolve
            found = referenced(med, target, where)
            container = self._med_containers.get(id(med))
            if found is None and target.startswith("#") and container is not None:
                found = referenced(container, target, where)
            if isinstance(found, dict) and found.get("resourceType") in {"Substance", "Medication"}:
                concepts.append(found.get("code"))
        return concepts

    def _product_facts(self, medication: _MedicationRead) -> _Product:
        """What the administrations of a product need to know of it (:class:`_Product`), once
        per Medication resource of the patient (see :class:`_MedicationRead`)."""
        product = medication.product
        if product is None:
            product = self._read_product(medication.med, medication.codings, medication.text)
            medication.product = product
            if medication.shared is not None:
                medication.shared.product = product
        return product

    def _read_product(self, med: Json | None, codings: list[Coding], text: str) -> _Product:
        product_codings, names = self._product(med, codings, text)
        kind = self._immune_globulin(product_codings, names)
        if kind is None:
            # shown only when it looks like an immune globulin (reported, never ignored silently)
            shown = (text or names[0]) if _looks_ig(names) else ""
            return _Product(None, product_codings, names, shown, route_unsure=False, modified=False)
        shown = text or ", ".join(f"{s} {c}" for s, c in product_codings if c) or "immune globulin"
        kind, generic_unsure = _by_named_route(kind, names)
        route_unsure = generic_unsure or (
            self._dual is not None
            and (self._dual.matches_any(product_codings) or _named(self._dual.names, names))
        )
        modified = med is not None and _modified(med)
        return _Product(
            kind,
            product_codings,
            names,
            shown,
            route_unsure=route_unsure,
            modified=modified,
        )

    def _immune_globulin(self, codings: list[Coding], names: list[str]) -> str | None:
        """What kind of immune globulin the product is: ``scig`` (a subcutaneous product),
        ``ivig`` (an intravenous product), ``generic`` (immune globulin by a generic name:
        the route decides), or None (not an immune globulin)."""
        key = (tuple(codings), tuple(names))
        try:
            return self._ig_kinds[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
        kind = self._immune_globulin_kind(codings, names)
        if len(self._ig_kinds) >= MEMO_LIMIT:
            self._ig_kinds.clear()
        self._ig_kinds[key] = kind
        return kind

    def _immune_globulin_kind(self, codings: list[Coding], names: list[str]) -> str | None:
        if self._scig is not None and (
            self._scig.matches_any(codings) or _named(self._scig.names, names)
        ):
            return "scig"
        if self._ivig.matches_any(codings) or _named(self._ivig.names, names):
            return "ivig"
        if any(_HYPERIMMUNE.search(n) or _NOT_NORMAL_IG.search(n) for n in names):
            # an antigen-specific (hyperimmune) globulin, or an antithymocyte or antilymphocyte
            # globulin (Atgam: "lymphocyte immune globulin, anti-thymocyte globulin"): not
            # normal human immune globulin
            return None
        if self._ig_names is not None and _named(self._ig_names.names, names):
            return "generic"
        return None

    def _route(self, dosage: Json, path: str) -> str | None:
        """``iv``, ``sc``, ``im``, ``other`` (a route recorded but none of these), or None. A
        route not coded in the route ValueSets is read from its ``text``, then from each
        coding's display (CH EMED: ``text`` "intravenöse Anwendung" beside the EDQM display
        "Intravenous use")."""
        route = dosage.get("route")
        if route is None:
            return None
        codings = concept_codings(route, f"{path}.dosage.route")
        for kind, index in self._routes.items():
            if index.matches_any(codings):
                return kind
        for name in concept_names(route):
            named = _route_kind(name)
            if named is not None:
                return named
        return "other"

    def is_ivig_product(
        self,
        med: Json | None,
        codings: list[Coding],
        text: str,
        resolve: Mapping[str, Json] | None = None,
    ) -> bool:
        """Whether a medication (as :meth:`_medication` reads it) is an intravenous immune
        globulin or an immune globulin by a generic name (its route then decides); an
        ingredient's Substance is looked up in ``resolve`` (an order's), else in the patient's
        resources."""
        product_codings, names = self._product(med, codings, text, resolve)
        kind = self._immune_globulin(product_codings, names)
        return kind is not None and _by_named_route(kind, names)[0] in {"ivig", "generic"}

    def _excluded_ig(self, data: PatientData, r: Json, path: str, reason: str) -> None:
        message = f"{ref_of(r)} not counted: {reason}"
        data.issues.append(Issue("warning", "business-rule", message, path, ref_of(r)))

    def _looks_like_immune_globulin(self, r: Json) -> str | None:
        """The medicationReference's display (or the administration's text) when it names an
        immune globulin; None otherwise."""
        ref = r.get("medicationReference")
        texts = [ref.get("display") if isinstance(ref, dict) else None]
        texts.append(concept_text(r.get("code")) if isinstance(r.get("code"), dict) else None)
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                continue
            lowered = text.lower()
            if any(w in lowered for w in _IG_WORDS) or self._immune_globulin([], [lowered]):
                return text
        return None

    def _report_unidentified(
        self, data: PatientData, r: Json, codings: Sequence[Coding], path: str
    ) -> None:
        """An administration of a product named nowhere (no text, display or ingredient name)
        and coded in no code system the medication ValueSets use (an NDC only, a local code):
        it cannot be told from an immune globulin, so one warning says it is not counted,
        rather than passing it over as if it were known not to be IVIG (clinical spec §4)."""
        read = _medication_systems(self.t)
        coded = [(s, c) for s, c in codings if s is not None and c is not None]
        if any(canonical_system(s) in read for s, _ in coded):
            return  # identified by its code: a code the ValueSets do not list is not IVIG
        if coded:
            what = ", ".join(f"{s}|{c}" for s, c in coded)
            why = f"is coded only as {what}, in no code system fhirtis reads for products"
        else:
            why = "has no coding with a system and a code"
        inline = "medicationCodeableConcept" in r
        data.issues.append(
            Issue(
                "warning",
                "incomplete",
                f"{ref_of(r)} could not be identified: its medication has no name and {why}; "
                "an immune globulin so recorded is not counted as IVIG",
                f"{path}.medicationCodeableConcept" if inline else f"{path}.medicationReference",
                ref_of(r),
            )
        )

    def _unnamed(self, r: Json) -> bool:
        """Whether an administration of a product named nowhere in its Medication names it
        nowhere else either: a ``medicationReference.display`` is a name, unless it names an
        immune globulin (then it is as unidentified as without one)."""
        ref = r.get("medicationReference")
        display = ref.get("display") if isinstance(ref, dict) else None
        if not isinstance(display, str) or not display.strip():
            return True
        return self._looks_like_immune_globulin(r) is not None

    def _administration(
        self, data: PatientData, path: str, r: Json, resolve: Mapping[str, Json]
    ) -> None:
        try:
            medication = self._read_medication(r, path, resolve)
        except UnresolvedMedicationError as exc:
            # issue 11: not IVIG, silently, unless it looks like an immune globulin (spec §4:
            # reported, never ignored). A server read path that could not fetch the Medication
            # reports it itself (the pipeline keeps one issue per administration).
            shown = self._looks_like_immune_globulin(r)
            if shown is not None:
                data.issues.append(
                    Issue(
                        "error",
                        exc.issue_code,
                        f"{ref_of(r)} not counted: {exc.message}, and it looks like an immune "
                        f"globulin ({shown})",
                        exc.path,
                        ref_of(r),
                    )
                )
            elif r.get("status") in _MA_USED:  # said, as the registry and server reads say it
                unresolved_medication(data, r, exc, "not counted as an IVIG administration")
            return
        # a Medication known not to be an estrogen, and its product facts, are read from its
        # record directly (the methods work them out once, and handle everything else)
        if medication.estrogen is not False and self._risk_medication(data, r, medication, path):
            return
        product = medication.product or self._product_facts(medication)
        kind = product.kind
        if kind is None:
            if r.get("status") not in _MA_USED:
                return
            if not product.names:
                if self._unnamed(r):
                    self._report_unidentified(data, r, product.codings, path)
            elif product.shown:  # it looks like an immune globulin
                self._excluded_ig(
                    data,
                    r,
                    path,
                    f"its product ({product.shown}) looks like an immune globulin but is not "
                    "recognised as an intravenous immune globulin product",
                )
            return
        ident = r.get("id")  # the usual id here; _require_id says what is wrong with another
        if type(ident) is not str or ID_FULLMATCH(ident) is None:
            self._require_id(r, path)
        med, text = medication.med, medication.text
        if med is not None and med is not r and product.modified:
            raise modifier_extension_error(f"{path}.medicationReference", "its Medication ")
        shown = product.shown
        if kind in {"scig", "imig"}:
            way = "subcutaneous" if kind == "scig" else "intramuscular"
            self._excluded_ig(data, r, path, f"{way} immune globulin product ({shown}), not IVIG")
            return
        status = r.get("status")
        if status not in _MA_USED:
            data.issues.append(
                Issue(
                    "information",
                    "informational",
                    f"{ref_of(r)} not counted: status {status}",
                    f"{path}.status",
                )
            )
            return
        dosage = r.get("dosage") or {}
        if not isinstance(dosage, dict):
            raise ExcludedError("structure", "dosage must be an object", f"{path}.dosage")
        if dosage.get("modifierExtension"):
            raise modifier_extension_error(f"{path}.dosage.modifierExtension")
        route = self._route(dosage, path) if "route" in dosage else None
        if route in {"sc", "im"}:
            word = _ROUTE_NAMES[route]
            self._excluded_ig(data, r, f"{path}.dosage.route", f"route {word}: not IVIG")
            return
        if route == "other":
            self._excluded_ig(
                data, r, f"{path}.dosage.route", "route recorded is not intravenous: not IVIG"
            )
            return
        if route is None and product.route_unsure:
            data.issues.append(
                Issue(
                    "warning",
                    "incomplete",
                    f"route not recorded on {ref_of(r)} of a product given by more than one "
                    f"route ({shown}): counted as IVIG",
                    f"{path}.dosage.route",
                    ref_of(r),
                )
            )
        subject = r.get("subject")  # the usual subject here; _check_subject reads another
        if type(subject) is not dict or subject.get("reference") != data.patient_ref:
            self._check_subject(data, r, "subject", path)
        # the usual texts are read directly (fhir_time_of); anything else, or a text refused,
        # by first_fhir_time, which reads the same element and raises, saying so
        period = r.get("effectivePeriod")
        start_text = r.get("effectiveDateTime")
        if start_text is None and isinstance(period, dict):
            start_text = period.get("start")
        start = _fhir_time_or_none(start_text)
        if start is None:
            start = first_fhir_time(r, _EFFECTIVE, path)
        end: FhirTime | None = None
        if isinstance(period, dict) and period.get("end") is not None:
            end = _fhir_time_or_none(period["end"])
            if end is None:
                end = first_fhir_time(r, _EFFECTIVE_END, path)
        amounts: dict[str, Decimal] = {}
        if "dose" in dosage:
            dose = dosage["dose"]
            found = _coded_amount(dose, _DOSE_UNITS)
            if found is not None:
                amounts[found[0]] = found[1]
            else:
                self._value(data, r, "dose", self._dose, dose, f"{path}.dosage.dose", amounts)
        if "rateQuantity" in dosage:
            rate = dosage["rateQuantity"]
            found = _coded_amount(rate, _RATE_UNITS)
            if found is not None:
                amounts[found[0]] = found[1]
            else:
                rpath = f"{path}.dosage.rateQuantity"
                self._value(data, r, "rate", self._rate, rate, rpath, amounts)
        elif "rateRatio" in dosage:
            rpath = f"{path}.dosage.rateRatio"
            self._value(data, r, "rate", self._rate_ratio, dosage["rateRatio"], rpath, amounts)
        concentration: Decimal | None = None
        if med is not None:
            strength = medication.strength  # the usual strength, read for the product already
            if type(strength) is Decimal:
                concentration = strength
            elif strength is not None:
                concentration = self._concentration_of(data, r, medication)
        recorded = (end, status, tuple(sorted(amounts.items())), concentration, text)
        keys = _identifier_keys(r.get("identifier"), start)
        replaces: int | None = None
        if keys:
            replaces = self._sent_again(data, r, path, keys, recorded)
            if replaces == -1:
                return
        source = self._use(data, r, start)
        self._medication_of(data, source, r, med)
        if status == "stopped":
            data.issues.append(
                Issue(
                    "warning",
                    "informational",
                    f"{ref_of(r)} is stopped: counted for the dose and rate recorded",
                    f"{path}.status",
                    ref_of(r),
                )
            )
        # by position, in the order of ADMINISTRATION_FIELDS (keywords cost a third more)
        admin = IvigAdministration(
            source,
            start,
            end,
            status == "in-progress",  # in_progress
            amounts.get("g"),  # dose_g
            amounts.get("mL"),  # dose_ml
            concentration,  # concentration_mg_per_ml
            amounts.get("mL/h"),  # rate_ml_per_h
            amounts.get("mg/h"),  # rate_mg_per_h
            text or None,  # product
            amounts.get("g/kg"),  # dose_g_per_kg
            amounts.get("mg/kg/h"),  # rate_mg_per_kg_per_h
            amounts.get("mL/kg/h"),  # rate_ml_per_kg_per_h
            status == "stopped",  # stopped
            _step_of(r, resolve),  # part_of
        )
        if replaces is None:
            replaces = len(data.administrations)
            data.administrations.append(admin)
        else:
            data.administrations[replaces] = admin
        if keys:
            updated = _last_updated(r)
            for key in keys:
                self._ivig_identified[key] = (ref_of(r), recorded, updated, replaces)

    def _sent_again(
        self,
        data: PatientData,
        r: Json,
        path: str,
        keys: list[tuple[str, str, FhirTime]],
        recorded: tuple[object, ...],
    ) -> int | None:
        """Whether ``r`` is an IVIG administration already counted, sent again under another
        id: the same business identifier (system and value) and the same start (an interface
        that resends a MAR event, a second feed of the same MAR). It is one administration,
        counted once, with a warning that names both; counting both would double its dose.
        Copies that differ: the one updated later (``meta.lastUpdated``) is counted, else the
        first read, and the warning says so. The same identifier with another start is not
        merged (a feed that puts an order's number there keeps every day).

        None: not seen before; -1: not counted (the copy counted stays); otherwise the index in
        ``data.administrations`` of the copy that ``r`` replaces."""
        for key in keys:
            first = self._ivig_identified.get(key)
            if first is None:
                continue
            kept, facts, kept_updated, index = first
            updated = _last_updated(r)
            newer = (
                facts != recorded
                and updated is not None
                and kept_updated is not None
                and updated > kept_updated
            )
            if facts == recorded:
                how = ""
            elif newer:
                how = f"; the copies differ: {ref_of(r)}, updated later, is counted"
            elif updated is not None and kept_updated is not None and kept_updated > updated:
                how = f"; the copies differ: {kept}, updated later, is counted"
            else:
                how = f"; the copies differ: {kept}, read first, is counted"
            data.issues.append(
                Issue(
                    "warning",
                    "duplicate",
                    f"{ref_of(r)} has the identifier and start of {kept}: the same "
                    f"administration sent again, counted once{how}",
                    f"{path}.identifier",
                    kept if newer else ref_of(r),
                )
            )
            if not newer:
                return -1
            data.used.pop(kept, None)
            return index
        return None

    def _value(
        self,
        data: PatientData,
        r: Json,
        what: str,
        read: Callable[[object, str], tuple[str, Decimal]],
        element: object,
        path: str,
        into: dict[str, Decimal],
    ) -> None:
        """Read one dose or rate; an unknown unit makes only that value unknown, reported."""
        try:
            unit, value = read(element, path)
        except ExcludedError as exc:
            said = f"its {what} is unknown ({exc.message}); the administration still counts"
            data.issues.append(exc.as_warning(r, said))
            return
        into[unit] = value

    def _dose(self, q: object, path: str) -> tuple[str, Decimal]:
        value, unit = read_quantity(q, path)
        if unit is None:
            raise ExcludedError("required", "dose has no unit", path)
        return _first_convertible(value, unit, _DOSE_UNITS, path)

    def _rate(self, q: object, path: str) -> tuple[str, Decimal]:
        value, unit = read_quantity(q, path)
        if unit is None:
            raise ExcludedError("required", "rate has no unit", path)
        return _first_convertible(value, unit, _RATE_UNITS, path)

    def _rate_ratio(self, ratio: object, path: str) -> tuple[str, Decimal]:
        if not isinstance(ratio, dict) or "numerator" not in ratio or "denominator" not in ratio:
            raise ExcludedError("structure", "rateRatio needs numerator and denominator", path)
        num, num_unit = read_quantity(ratio["numerator"], f"{path}.numerator")
        den, den_unit = read_quantity(ratio["denominator"], f"{path}.denominator")
        if den <= 0:
            raise ExcludedError(
                "value", "rateRatio denominator must be positive", f"{path}.denominator"
            )
        if den_unit is None:
            raise ExcludedError(
                "required", "Quantity has no unit (expected h)", f"{path}.denominator"
            )
        try:
            hours_each = factor(den_unit, "h")
        except UnitError:
            why = case_refusal(den_unit, "h")
            if why is None:
                why = f"unit {den_unit!r} is unknown or cannot convert to 'h'"
            raise ExcludedError("value", why, f"{path}.denominator") from None
        if num_unit is None:
            raise ExcludedError("required", "rateRatio numerator has no unit", f"{path}.numerator")
        unit, amount = _first_convertible(num, num_unit, _RATIO_UNITS, f"{path}.numerator")
        # exact where a finite decimal (5 mL / 1 min is 300 mL/h, as rateQuantity 5 mL/min is):
        # never divided by an hour already rounded (1/60 h), nor in the caller's Decimal context
        return f"{unit}/h", to_decimal(Fraction(amount) / (Fraction(den) * hours_each))

    def _concentration_of(
        self, data: PatientData, r: Json, medication: _MedicationRead
    ) -> Decimal | None:
        """:meth:`_concentration`; a strength that cannot be read makes only the concentration
        unknown, reported (spec §4: never the whole administration: a dose in grams needs none)."""
        try:
            return self._concentration(medication)
        except ExcludedError as exc:
            said = (
                f"its product concentration is unknown ({exc.message}); the administration "
                "still counts"
            )
            data.issues.append(exc.as_warning(r, said))
            return None

    def _concentration(
        self, medication: _MedicationRead, resolve: Mapping[str, Json] | None = None
    ) -> Decimal | None:
        """:meth:`_medication_strength` of a Medication resource, once per patient
        (administrations of one product share it); an exclusion is raised again for each
        administration."""
        strength = medication.strength
        if strength is _UNREAD:
            assert medication.med is not None  # an inline concept has no strength
            try:
                strength = self._medication_strength(medication.med, resolve)
            except ExcludedError as exc:
                strength = exc
            medication.strength = strength
            if medication.shared is not None:
                medication.shared.strength = strength
        if isinstance(strength, ExcludedError):
            raise ExcludedError(strength.issue_code, strength.message, strength.path)
        return strength  # type: ignore[return-value]

    def _medication_strength(
        self, med: Json, resolve: Mapping[str, Json] | None = None
    ) -> Decimal | None:
        """The strength of the immunoglobulin ingredient, identified by its code or name (never
        simply the first ingredient listed; a diluent or a stabiliser is passed over). With no
        ingredient identified, a single active ingredient with a strength is taken; an
        immunoglobulin ingredient identified without a strength leaves the strength unknown
        (None: never a diluent's)."""
        with_strength: list[tuple[int, Json, bool]] = []
        ig_named = False
        for i, ing in enumerate(json_array(med.get("ingredient"))):
            if not isinstance(ing, dict):
                continue
            has_strength = isinstance(ing.get("strength"), dict)
            codings, names = [], []
            try:
                for item in self._ingredient_concepts(med, ing, resolve):
                    codings += concept_codings(item, f"Medication.ingredient[{i}].item[x]")
                    names += [n.lower() for n in concept_names(item)]
            except ExcludedError:
                if has_strength:
                    raise  # as before: a strength whose ingredient cannot be read
                continue  # no strength to take: an unreadable item names no immunoglobulin
            # the immunoglobulin by a recognised code or name, or by a name in another language
            # ("Normales Immunglobulin vom Menschen", "immunoglobulinum humanum normale"): the
            # product is an immune globulin, so such an ingredient is its immunoglobulin
            is_ig = self._immune_globulin(codings, names) is not None or _looks_ig(names)
            ig_named = ig_named or is_ig
            # a stabiliser (glycine, …) by name is never the immunoglobulin: its strength is no
            # candidate, even as the only one (the concentration is then unknown)
            if has_strength and (is_ig or not any(_STABILISER.search(n) for n in names)):
                with_strength.append((i, ing, is_ig))
        chosen = [(i, ing) for i, ing, is_ig in with_strength if is_ig]
        if not chosen and not ig_named:
            active = [(i, ing) for i, ing, _ in with_strength if ing.get("isActive") is not False]
            chosen = active if len(active) == 1 else []
        if not chosen:
            return None
        i, ing = chosen[0]
        strength = ing["strength"]
        spath = f"Medication.ingredient[{i}].strength"
        if "numerator" not in strength or "denominator" not in strength:
            raise ExcludedError("structure", "strength needs numerator and denominator", spath)
        numerator, denominator = strength["numerator"], strength["denominator"]
        num, num_unit = coded_quantity(numerator) or read_quantity(numerator, f"{spath}.numerator")
        den, den_unit = coded_quantity(denominator) or read_quantity(
            denominator, f"{spath}.denominator"
        )
        if den <= 0:
            raise ExcludedError("value", "strength denominator must be positive", spath)
        if num_unit == "%" and den_unit in (None, "1"):
            # a percentage strength (10 % over 1): weight per volume, g per 100 mL (clinical
            # spec §4: "10% = 100 mg/mL, 5% = 50 mg/mL")
            return num * 10 / den
        mg = to_unit(num, num_unit, "mg", f"{spath}.numerator")
        ml = den if den_unit == "mL" else to_unit(den, den_unit, "mL", f"{spath}.denominator")
        return mg / ml

    # -- medications, devices and procedures as risk evidence ---------------------------------

    def _is_estrogen(
        self, codings: list[Coding], names: Callable[[], list[str]] | None = None
    ) -> bool:
        """Whether the risk ValueSet of estrogens holds one of ``codings`` or, failing that,
        one of the medication's ``names`` (lower case, asked for only then) holds an estrogen
        ingredient's name (ValueSet estrogen-names, whole words)."""
        index = self._risk.get(RiskFactorKind.ESTROGEN)
        if index is not None and index.matches_any(codings):
            return True
        if names is None:
            return False
        by_name = self.t.value_sets.get("estrogen-names")
        return by_name is not None and _named_words(by_name.names, names())

    def _medication_of(self, data: PatientData, source: str, r: Json, med: Json | None) -> None:
        """The Medication ``med`` that the source ``r`` (recorded as ``source``) names: a
        contained one is part of it (its labels are the source's; it has no [type]/[id] of its
        own, R4 references.html); one read by id is named by the Provenance among the sources,
        with its labels, which are also the source's (what is derived from the source is
        computed from the Medication too)."""
        self._contained_labels(data, source, r, med)
        if med is not None and med is not r and id(med) not in self._med_containers:
            self._name_read(data, med, source)

    def _risk_medication(
        self, data: PatientData, r: Json, medication: _MedicationRead, path: str
    ) -> bool:
        """Estrogen use (a thrombosis risk factor) shown by a medication resource ``r`` of
        ``medication``: by code, else by an estrogen's name (:meth:`_is_estrogen`, once per
        Medication resource of the patient: its names are the Medication's alone)."""
        estrogen = medication.estrogen
        if estrogen is None:
            med = medication.med
            estrogen = self._is_estrogen(medication.codings, lambda: _medication_names(med, r))
            medication.estrogen = estrogen
            if medication.shared is not None:
                medication.shared.estrogen = estrogen
        if not estrogen:
            return False
        if records_no_use(r):
            return True
        self._require_id(r, path)
        if "doNotPerform" in r and not isinstance(r["doNotPerform"], bool):
            data.issues.append(_malformed_do_not_perform(r, path))
        subject_key = "subject"
        self._check_subject(data, r, subject_key, path)
        kind = RiskFactorKind.ESTROGEN
        start, start_last = use_days(data, r, _USE_START, path, kind, latest=False)
        _, end = use_days(data, r, _USE_EFFECTIVE_END, path, kind, latest=True)
        if end is None and r.get("status") in {"completed", "stopped"}:
            end = start_last  # in use at that time (a day, or any day of its month or year)
        began = use_began(r, _USE_START, path, (start, start_last))
        source = self._use(data, r, began)
        self._medication_of(data, source, r, medication.med)
        instant = began.instant if began is not None else None
        data.evidence.append(RiskEvidence(kind, source, start, end, began=instant))
        return True
