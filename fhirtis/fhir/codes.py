"""Code systems and value sets, read from ``profiles/`` — the single source of codes.

Nothing here hard-codes a clinical code: the value sets in ``profiles/`` (each code confirmed
from a terminology source, see ``profiles/TERMINOLOGY.md``) are loaded once and indexed for
O(1) membership tests.

Supported ValueSet content:

- ``compose.include`` with explicit ``concept`` lists;
- ``compose.include.filter`` with the FHIR ``regex`` operator on ``code`` (a full match);
- ``compose.include.filter`` on ``concept`` with ``is-a`` or ``descendent-of`` (subsumption,
  e.g. SNOMED CT): answered from the shipped enumerated ``expansion.contains``; a code of that
  system which the expansion does not list cannot be classified without a terminology service
  and is **unclassified** (:class:`Membership`), never silently "not a member";
- ``compose.exclude`` with explicit ``concept`` lists;
- ``expansion.contains`` (nested ``contains`` included; ``abstract`` entries skipped).

Everything else (``include.valueSet``, other filter operators, several filters in one include,
an include of a whole code system) is refused at load time, so a value set can never silently
match less than it says.

Unclassified codes can be put to a :class:`SubsumptionOracle` — the terminology *port*; its
implementation (a FHIR terminology server's ``$subsumes`` / ``$validate-code``, with caching)
lives in ``fhirtis.io``. This module does no I/O.

A site's local codes reach these through a ConceptMap (R4) given in settings: only mappings
whose ``equivalence`` is ``equivalent`` or ``equal`` are used, every such target of a code (one
per target system: several groups may map a code to LOINC and to SNOMED CT). A map fhirtis
cannot apply as written is refused when it is loaded (a TerminologyError), never read as less
than it says: a target without an R4 ``equivalence`` (an R5 ``relationship``), an exact target
that ``dependsOn`` other elements or carries a ``modifierExtension``, two different exact targets
of one code in one system, a target code that fhirtis's own CodeSystem does not define, or a
target system in fhirtis's namespace that it does not define (a misspelt one). Exact targets
that fhirtis would read as different things (CK and the PGA) are refused by the extractor
(``ObservationReader.check_concept_map``), which knows what each code is read as.

Some code systems are sent under more than one URI (German senders give ATC as
``http://fhir.de/CodeSystem/bfarm/atc``, CDA-derived data the OID of a system). One table,
:data:`SYSTEM_ALIASES`, says which URI is another name of which canonical one; every lookup here
(ValueSet membership, exclusions, hierarchy questions, the site's ConceptMap, CodeSystem
codes) reads a coding under an alias as the canonical system, so a ValueSet lists each concept
once, under the canonical URI.

ICD-10 codes (WHO, CM, GM) are sent with and without their dot (``M33.10``, ``M3310``: claims
data drop it). The ValueSets hold the dotted form; every lookup reads a coding's code through
one function, :func:`matching_code`, which gives an ICD-10 code its dot (trimmed, in capitals)
and returns the code of any other system as sent.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, overload

import orjson

BASE = "http://fhirtis.org/fhir"
CORE_SET_SYSTEM = f"{BASE}/CodeSystem/myositis-core-set"
FHIRTIS_SYSTEM = f"{BASE}/CodeSystem/fhirtis"
CATEGORY_SYSTEM = f"{BASE}/CodeSystem/tis-response-category"
BASIS_SYSTEM = f"{BASE}/CodeSystem/dosing-weight-basis"
RISK_FACTOR_SYSTEM = f"{BASE}/CodeSystem/tee-risk-factor"
IDENTIFIER_SYSTEM = f"{BASE}/identifier/derived"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"  # WHO ICD-10 (international senders, IPS)
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
# ICD-10-GM, the German modification of WHO ICD-10 (HL7 Deutschland basis profile CodingICD10GM,
# MII Diagnose): read as the WHO ICD-10 category it subdivides (see who_icd10_codes)
ICD10GM = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"
UCUM = "http://unitsofmeasure.org"
ATC = "http://www.whocc.no/atc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
EDQM = "http://standardterms.edqm.eu"  # EDQM Standard Terms (routes, dose forms)

# alias system URI -> the canonical URI it names (sources: profiles/TERMINOLOGY.md, "Code
# system aliases"). The canonical URI is the one FHIR R4 / HL7 Terminology gives the system.
SYSTEM_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "http://fhir.de/CodeSystem/bfarm/atc": ATC,  # HL7 Deutschland basis profile "Coding ATC"
        "urn:oid:2.16.840.1.113883.6.73": ATC,  # HL7 Terminology NamingSystem v3-WC
        # the OIDs FHIR R4 gives the terminologies (namingsystem-terminologies.html,
        # terminologies-systems.html): CDA codes by OID, and FHIR converted from it keeps them
        "urn:oid:2.16.840.1.113883.6.96": SNOMED,
        "urn:oid:2.16.840.1.113883.6.1": LOINC,
        "urn:oid:2.16.840.1.113883.6.88": RXNORM,
        "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
        "urn:oid:2.16.840.1.113883.6.3": ICD10,
        "urn:oid:0.4.0.127.0.16.1.1.2.1": EDQM,  # EDQM Standard Terms OID (CH EMED, HL7 Europe)
        # ICD-10-GM's URI before DIMDI became part of BfArM (2020; HL7 Deutschland basis 0.9)
        "http://fhir.de/CodeSystem/dimdi/icd-10-gm": ICD10GM,
    }
)

_MAPPED_EQUIVALENCE = frozenset({"equivalent", "equal"})
# R4 ConceptMap.group.element.target.equivalence (1..1, required binding concept-map-equivalence)
_R4_EQUIVALENCE = _MAPPED_EQUIVALENCE | {
    "relatedto",
    "wider",
    "subsumes",
    "narrower",
    "specializes",
    "inexact",
    "unmatched",
    "disjoint",
}
# filter operators answered by subsumption; "is-a" includes the parent itself
_HIERARCHY_OPS = frozenset({"is-a", "descendent-of"})

Coding = tuple[str | None, str | None]


@overload
def canonical_system(system: str) -> str: ...
@overload
def canonical_system(system: None) -> None: ...
@overload
def canonical_system(system: str | None) -> str | None: ...
def canonical_system(system: str | None) -> str | None:
    """The canonical URI of ``system`` (itself unless :data:`SYSTEM_ALIASES` names it)."""
    if system is None:
        return None
    return SYSTEM_ALIASES.get(system, system)


_GM_SUBDIVISION = re.compile(r"[A-Z][0-9]{2}\.[0-9]{2}")
_GM_MARKS = "†*!+ "  # the cross, star and exclamation marks some senders leave on a code

# the ICD-10 systems whose codes are read in their dotted form (matching_code)
_ICD10_SYSTEMS = frozenset({ICD10, ICD10CM, ICD10GM})
# an ICD-10 code without its dot: a letter, two characters (the category), then one to four
_ICD10_UNDOTTED = re.compile(r"([A-Z][0-9][0-9A-Z])([0-9A-Z]{1,4})")


def matching_code(system: str | None, code: str) -> str:
    """``code`` as the ValueSets in ``profiles/`` hold codes of ``system``: every lookup of a
    coding here (membership, exclusions, hierarchy questions) reads its code through this.

    ICD-10, ICD-10-CM and ICD-10-GM (under their URIs or an alias) are held in the dotted form
    HL7 uses (``M33.10``). Claims-derived data and some EHR exports send them without the dot
    (``M3310``): an ICD-10 code is a letter, two characters, then optionally a dot and up to
    four more, so the dot goes after the third character. Such a code is also read trimmed and
    in capitals (ICD-10 codes are written in capitals; case tells no two apart). A code of any
    other system (SNOMED CT, LOINC, ATC's ``J06BA02``, which has the same shape) is returned
    as sent."""
    if canonical_system(system) not in _ICD10_SYSTEMS:
        return code
    read = code.strip().upper()
    undotted = _ICD10_UNDOTTED.fullmatch(read)
    return f"{undotted[1]}.{undotted[2]}" if undotted else read


def who_icd10_codes(gm_code: str) -> tuple[str, ...]:
    """The WHO ICD-10 codes an ICD-10-GM code is read as: the code itself, and for a code of
    five characters (a GM subdivision, e.g. I80.20 of WHO I80.2) the four-character category
    it subdivides. ICD-10-GM keeps WHO ICD-10's three- and four-character codes and their
    meaning and adds five-character subdivisions below them (BfArM, ICD-10-GM); a GM code is
    therefore a kind of its WHO category, and a ValueSet of WHO codes holds it when it holds
    that category. A four-character code GM adds below a three-character WHO category (I10.0)
    is read as itself: the ValueSets' WHO patterns hold such codes where they mean to."""
    code = matching_code(ICD10GM, gm_code.strip().rstrip(_GM_MARKS))
    if _GM_SUBDIVISION.fullmatch(code):
        return (code, code[:5])
    return (code,)


class TerminologyError(ValueError):
    """A conformance resource fhirtis cannot use as it says."""


class Membership(enum.Enum):
    """Three-valued answer to "is this code in the value set?"."""

    MEMBER = "member"
    NOT_MEMBER = "not-member"
    UNCLASSIFIED = "unclassified"  # a hierarchy filter covers its system; nothing could decide


class SubsumptionOracle(Protocol):
    """The terminology port: is ``code`` subsumed by ``parent`` in ``system``?

    ``True``: ``code`` is ``parent`` or one of its descendants; ``False``: it is not; ``None``:
    the oracle cannot tell (system unknown to it, server unreachable, ...). Implementations
    cache their answers; they are asked only for codes the shipped expansion does not list.
    """

    def is_a(self, system: str, code: str, parent: str) -> bool | None: ...


@dataclass(frozen=True)
class AnsweredOracle:
    """An oracle answering from answers obtained beforehand (e.g. from a terminology server,
    asked before a pure extraction): ``(system, code, parent)`` → True / False / None; a
    question not answered is ``None`` (cannot tell)."""

    answers: Mapping[tuple[str, str, str], bool | None]

    def is_a(self, system: str, code: str, parent: str) -> bool | None:
        return self.answers.get((system, code, parent))


@dataclass(frozen=True)
class Hierarchy:
    """One ``compose.include.filter`` on ``concept`` by subsumption."""

    system: str
    parent: str
    include_self: bool  # True for is-a, False for descendent-of


def profiles_dir() -> Path:
    """``profiles/`` as shipped in the wheel, else beside the package in a source checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_profiles", here.parent / "profiles"):
        if candidate.is_dir():
            return candidate
    raise TerminologyError("profiles/ not found beside the fhirtis package")


@dataclass(frozen=True)
class ValueSetIndex:
    id: str
    url: str
    codes: frozenset[tuple[str, str]]  # explicit concepts and the shipped expansion
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    names: tuple[str, ...] = ()  # lower-case displays and designations, for text matching
    hierarchies: tuple[Hierarchy, ...] = ()
    excluded: frozenset[tuple[str, str]] = frozenset()

    # Systems in this index are canonical (see index_value_set); a coding's system is made
    # canonical (canonical_system) before each lookup, so an alias finds the same concepts, and
    # its code is read through matching_code (an ICD-10 code in its dotted form), so an
    # undotted ICD-10 code finds the same concepts and regex patterns.

    def excludes(self, system: str | None, code: str | None) -> bool:
        """``compose.exclude`` lists this code (under its system or an alias of it)."""
        if system is None or code is None:
            return False
        system = canonical_system(system)
        return (system, matching_code(system, code)) in self.excluded

    def contains(self, system: str | None, code: str | None) -> bool:
        """Member by the explicit concepts, regex filters and shipped expansion (no oracle)."""
        if system is None or code is None:
            return False
        system = canonical_system(system)
        return self._contains(system, matching_code(system, code))

    def _contains(self, system: str, code: str) -> bool:
        """:meth:`contains` of a system made canonical and a code read as it matches
        (:func:`canonical_system`, :func:`matching_code`)."""
        if (system, code) in self.excluded:
            return False
        if (system, code) in self.codes:
            return True
        if any(s == system and p.fullmatch(code) for s, p in self.patterns):
            return True
        if system == ICD10GM:  # as the WHO ICD-10 code(s) it is read as (who_icd10_codes)
            return any(self.contains(ICD10, c) for c in who_icd10_codes(code))
        return False

    def matches_any(self, codings: Iterable[Coding]) -> bool:
        return any(self.contains(s, c) for s, c in codings)

    @property
    def hierarchy_systems(self) -> frozenset[str]:
        """Systems covered by an ``is-a``/``descendent-of`` filter."""
        return frozenset(h.system for h in self.hierarchies)

    def classify(
        self, system: str | None, code: str | None, oracle: SubsumptionOracle | None = None
    ) -> Membership:
        """Member, not a member, or unclassified (see :class:`Membership`).

        A code the shipped content does not list is a non-member unless a hierarchy filter
        covers its system; then ``oracle`` (when given) decides, else it stays unclassified.
        """
        if system is None or code is None:
            return Membership.NOT_MEMBER
        system = canonical_system(system)
        code = matching_code(system, code)
        if (system, code) in self.excluded:
            return Membership.NOT_MEMBER
        if self._contains(system, code):
            return Membership.MEMBER
        parents = [h for h in self.hierarchies if h.system == system]
        if not parents:
            return Membership.NOT_MEMBER
        if oracle is None:
            return Membership.UNCLASSIFIED
        undecided = False
        for h in parents:
            if h.parent == code:
                if h.include_self:
                    return Membership.MEMBER
                continue
            answer = oracle.is_a(system, code, h.parent)
            if answer is True:
                return Membership.MEMBER
            if answer is None:
                undecided = True
        return Membership.UNCLASSIFIED if undecided else Membership.NOT_MEMBER

    def questions(self, system: str | None, code: str | None) -> list[tuple[str, str, str]]:
        """The ``(system, code, parent)`` questions :meth:`classify` would put to an oracle."""
        if system is None or code is None:
            return []
        system = canonical_system(system)
        code = matching_code(system, code)
        if (system, code) in self.excluded or self._contains(system, code):
            return []
        return [
            (system, code, h.parent)
            for h in self.hierarchies
            if h.system == system and h.parent != code
        ]

    def classify_any(
        self, codings: Iterable[Coding], oracle: SubsumptionOracle | None = None
    ) -> Membership:
        """MEMBER if any coding is; else UNCLASSIFIED if any coding is; else NOT_MEMBER."""
        result = Membership.NOT_MEMBER
        for system, code in codings:
            answer = self.classify(system, code, oracle)
            if answer is Membership.MEMBER:
                return answer
            if answer is Membership.UNCLASSIFIED:
                result = answer
        return result


def _concept_names(concept: Mapping[str, Any]) -> Iterator[str]:
    if concept.get("display"):
        yield str(concept["display"]).lower()
    for d in concept.get("designation", []):
        if d.get("value"):
            yield str(d["value"]).lower()


def _expansion(contains: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, str]]:
    for c in contains:
        if c.get("system") and c.get("code") and not c.get("abstract"):
            yield canonical_system(str(c["system"])), str(c["code"])
        yield from _expansion(c.get("contains", []))


def index_value_set(resource: Mapping[str, Any]) -> ValueSetIndex:
    codes: set[tuple[str, str]] = set()
    excluded: set[tuple[str, str]] = set()
    patterns: list[tuple[str, re.Pattern[str]]] = []
    hierarchies: list[Hierarchy] = []
    names: list[str] = []
    vs_id = str(resource.get("id"))
    compose = resource.get("compose") or {}
    for exclude in compose.get("exclude", []):
        system = exclude.get("system")
        if not system or exclude.get("valueSet") or exclude.get("filter"):
            raise TerminologyError(
                f"ValueSet {vs_id}: compose.exclude supports explicit concepts of a system only"
            )
        system = canonical_system(system)
        excluded.update((system, c["code"]) for c in exclude.get("concept", []))
    for include in compose.get("include", []):
        system = include.get("system")
        if not system or include.get("valueSet"):
            raise TerminologyError(f"ValueSet {vs_id}: only include by system is supported")
        system = canonical_system(system)
        for concept in include.get("concept", []):
            codes.add((system, concept["code"]))
            names.extend(_concept_names(concept))
        filters = include.get("filter", [])
        if not include.get("concept") and not filters:
            raise TerminologyError(
                f"ValueSet {vs_id}: an include of a whole code system needs an expansion; "
                "list its concepts"
            )
        if len(filters) > 1:
            raise TerminologyError(
                f"ValueSet {vs_id}: filters in one include are combined with AND, which is not "
                "supported; give each filter its own include"
            )
        for flt in filters:
            prop, op = flt.get("property"), flt.get("op")
            if prop == "code" and op == "regex":
                patterns.append((system, re.compile(flt["value"])))
            elif prop == "concept" and op in _HIERARCHY_OPS:
                hierarchies.append(Hierarchy(system, str(flt["value"]), op == "is-a"))
            else:
                raise TerminologyError(
                    f"ValueSet {vs_id}: filter {prop} {op} is not supported; only 'code regex' "
                    "and 'concept is-a / descendent-of' are"
                )
    expansion = resource.get("expansion") or {}
    codes.update(_expansion(expansion.get("contains", [])))
    return ValueSetIndex(
        vs_id,
        str(resource.get("url")),
        frozenset(codes - excluded),
        tuple(patterns),
        tuple(names),
        tuple(hierarchies),
        frozenset(excluded),
    )


@dataclass(frozen=True)
class Terminology:
    value_sets: Mapping[str, ValueSetIndex]
    code_systems: Mapping[str, frozenset[str]]  # url → codes
    # (source system, code) → its exact targets (target system, code), one per target system
    concept_map: Mapping[tuple[str, str], tuple[tuple[str, str], ...]] = field(default_factory=dict)
    oracle: SubsumptionOracle | None = None  # asked for codes the shipped expansions lack
    # answers derived from this content alone (e.g. "which kind of Observation is this
    # coding?"), kept by their users so that one terminology answers each question once
    memo: dict[str, dict[Any, Any]] = field(
        default_factory=dict, init=False, compare=False, hash=False, repr=False
    )

    def memo_for(self, name: str) -> dict[Any, Any]:
        """A cache of answers that depend on this terminology only (bounded by its user)."""
        found = self.memo.get(name)
        if found is None:  # one dict for all users, even two made at once in two threads
            found = self.memo.setdefault(name, {})
        return found

    def value_set(self, vs_id: str) -> ValueSetIndex:
        try:
            return self.value_sets[vs_id]
        except KeyError:
            raise TerminologyError(f"ValueSet {vs_id} is not in profiles/") from None

    def with_value_sets(self, prefix: str) -> dict[str, ValueSetIndex]:
        """Value sets whose id starts with ``prefix``, keyed by the rest of the id."""
        return {k[len(prefix) :]: v for k, v in self.value_sets.items() if k.startswith(prefix)}

    def translate(self, system: str | None, code: str | None) -> tuple[str, str] | None:
        """The site's first exact mapping of a coding (:meth:`translations` gives them all)."""
        found = self.translations(system, code)
        return found[0] if found else None

    def translations(self, system: str | None, code: str | None) -> tuple[tuple[str, str], ...]:
        """The site's exact mappings of a coding (its source system read through the aliases)."""
        if system is None or code is None:
            return ()
        found = self.concept_map.get((system, code))
        if found is not None or not self.concept_map:
            return found or ()
        memo = self.memo_for("codes.concept-map-canonical")
        canonical: dict[tuple[str, str], tuple[tuple[str, str], ...]] | None = memo.get("map")
        if canonical is None:
            canonical = {}
            for (s, c), targets in self.concept_map.items():
                key = (canonical_system(s), c)
                canonical[key] = canonical.get(key, ()) + tuple(
                    t for t in targets if t not in canonical.get(key, ())
                )
            memo["map"] = canonical
        return canonical.get((canonical_system(system), code), ())

    def defines(self, system: str, code: str) -> bool:
        return code in self.code_systems.get(canonical_system(system), frozenset())

    def classify(self, vs_id: str, codings: Iterable[Coding]) -> Membership:
        """:meth:`ValueSetIndex.classify_any` on ``vs_id``, consulting this oracle if any."""
        return self.value_set(vs_id).classify_any(codings, self.oracle)

    def with_concept_map(self, concept_map: Mapping[str, Any] | None) -> Terminology:
        if concept_map is None:
            return self
        index = index_concept_map(concept_map)
        for (_, source_code), targets in index.items():
            for system, code in targets:
                known = self.code_systems.get(canonical_system(system))
                if known is None and _in_own_namespace(system):
                    # fhirtis's namespace holds only the code systems it defines: another
                    # system there is a misspelt one (mapping to nothing, silently)
                    raise TerminologyError(
                        f"ConceptMap maps {source_code!r} to {code!r} of {system}, which is not "
                        f"a code system fhirtis defines (the core set is {CORE_SET_SYSTEM})"
                    )
                if known is not None and code not in known:
                    raise TerminologyError(
                        f"ConceptMap maps {source_code!r} to {code!r}, which {system} does not "
                        "define"
                    )
        return replace(self, concept_map=index)

    def with_oracle(self, oracle: SubsumptionOracle | None) -> Terminology:
        """The same terminology, asking ``oracle`` about codes the expansions do not list."""
        return replace(self, oracle=oracle)


def _in_own_namespace(system: str) -> bool:
    """Whether ``system`` is a URI in fhirtis's namespace (``fhirtis.org``, any scheme or case)."""
    _, sep, rest = system.partition("://")
    return bool(sep) and rest.split("/", 1)[0].lower().removeprefix("www.") == "fhirtis.org"


def index_concept_map(
    resource: Mapping[str, Any],
) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """(source system, code) → its exact targets (target system, code), one per target system.
    TerminologyError for a map that cannot be applied as written (see the module's text)."""
    if resource.get("resourceType") != "ConceptMap":
        raise TerminologyError("the concept map is not a ConceptMap resource")
    _no_modifier(resource, "ConceptMap")
    out: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
    for i, group in enumerate(_objects(resource, "group", "ConceptMap")):
        source, target = group.get("source"), group.get("target")
        if not source or not target:
            raise TerminologyError("ConceptMap.group needs source and target systems")
        _no_modifier(group, f"ConceptMap.group[{i}]")
        for j, element in enumerate(_objects(group, "element", f"ConceptMap.group[{i}]")):
            code = element.get("code")
            where = f"ConceptMap.group[{i}].element[{j}]"
            if not isinstance(code, str) or not code:
                raise TerminologyError(f"{where} needs a code")
            _no_modifier(element, where)
            for k, tgt in enumerate(_objects(element, "target", where)):
                at = f"{where}.target[{k}]"
                equivalence = tgt.get("equivalence")
                if not isinstance(equivalence, str) or equivalence not in _R4_EQUIVALENCE:
                    raise TerminologyError(
                        f"{at} ({code!r}) needs an R4 equivalence (equivalent, equal, wider, "
                        "…): a ConceptMap of FHIR R4"
                    )
                if equivalence not in _MAPPED_EQUIVALENCE:
                    continue
                if not isinstance(tgt.get("code"), str) or not tgt["code"]:
                    raise TerminologyError(f"{at} ({code!r}) is {equivalence} to no code")
                if tgt.get("dependsOn"):
                    raise TerminologyError(
                        f"{at} ({code!r}) holds only under its dependsOn, which fhirtis "
                        "cannot evaluate"
                    )
                _no_modifier(tgt, at)
                mapped = (target, tgt["code"])
                known = out.get((source, code), ())
                if mapped in known:
                    continue
                clash = [t for t in known if canonical_system(t[0]) == canonical_system(target)]
                if clash:
                    raise TerminologyError(
                        f"{at}: {code!r} is mapped exactly to both {clash[0][1]!r} and "
                        f"{tgt['code']!r} of {target}"
                    )
                out[(source, code)] = (*known, mapped)
    return out


def _no_modifier(item: Mapping[str, Any], where: str) -> None:
    if item.get("modifierExtension"):
        raise TerminologyError(
            f"{where} has a modifierExtension, which may change what the map means"
        )


def _objects(parent: Mapping[str, Any], name: str, where: str) -> list[Mapping[str, Any]]:
    """``parent[name]``, a list of objects (absent: none); else a TerminologyError."""
    items = parent.get(name, [])
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise TerminologyError(f"{where}.{name} must be a list of objects")
    return items


def load_concept_map(path: Path) -> dict[str, Any]:
    """A ConceptMap file's JSON; OSError when it cannot be read, TerminologyError when it is
    not a JSON object."""
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        raise TerminologyError(f"{path.name} is not JSON") from None
    if not isinstance(data, dict):
        raise TerminologyError(f"{path.name} is not a FHIR resource")
    return data


@cache
def terminology(directory: Path | None = None) -> Terminology:
    """Every ValueSet and CodeSystem in ``profiles/`` (loaded once per directory)."""
    directory = directory or profiles_dir()
    value_sets: dict[str, ValueSetIndex] = {}
    code_systems: dict[str, frozenset[str]] = {}
    for path in sorted(directory.glob("*.json")):
        resource = orjson.loads(path.read_bytes())
        kind = resource.get("resourceType")
        if kind == "ValueSet":
            value_sets[resource["id"]] = index_value_set(resource)
        elif kind == "CodeSystem":
            code_systems[canonical_system(resource["url"])] = frozenset(
                _codes(resource.get("concept", []))
            )
    return Terminology(value_sets, code_systems)


def _codes(concepts: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for c in concepts:
        yield c["code"]
        yield from _codes(c.get("concept", []))
