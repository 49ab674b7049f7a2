"""Code systems and value sets, read from ``profiles/`` — the single source of codes.

Nothing here hard-codes a clinical code: the value sets in ``profiles/`` (each code confirmed
from a terminology source, see ``profiles/TERMINOLOGY.md``) are loaded once and indexed for
O(1) membership tests. Supported ValueSet composition: ``include`` with explicit ``concept``
lists, and ``filter`` with the FHIR ``regex`` operator on ``code`` (a full match); anything
else (``is-a`` and other hierarchy filters) needs a terminology server and is refused at load
time, so a value set can never silently match less than it says.

A site's local codes reach these through a ConceptMap (R4) given in settings: only mappings
whose ``equivalence`` is ``equivalent`` or ``equal`` are used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

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
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"

_MAPPED_EQUIVALENCE = frozenset({"equivalent", "equal"})


class TerminologyError(ValueError):
    """A conformance resource fhirtis cannot use as it says."""


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
    codes: frozenset[tuple[str, str]]
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    names: tuple[str, ...] = ()  # lower-case displays and designations, for text matching

    def contains(self, system: str | None, code: str | None) -> bool:
        if system is None or code is None:
            return False
        if (system, code) in self.codes:
            return True
        return any(s == system and p.fullmatch(code) for s, p in self.patterns)

    def matches_any(self, codings: Iterable[tuple[str | None, str | None]]) -> bool:
        return any(self.contains(s, c) for s, c in codings)


def index_value_set(resource: Mapping[str, Any]) -> ValueSetIndex:
    codes: set[tuple[str, str]] = set()
    patterns: list[tuple[str, re.Pattern[str]]] = []
    names: list[str] = []
    vs_id = str(resource.get("id"))
    compose = resource.get("compose") or {}
    if compose.get("exclude"):
        raise TerminologyError(f"ValueSet {vs_id}: compose.exclude is not supported")
    for include in compose.get("include", []):
        system = include.get("system")
        if not system or include.get("valueSet"):
            raise TerminologyError(f"ValueSet {vs_id}: only include by system is supported")
        for concept in include.get("concept", []):
            codes.add((system, concept["code"]))
            if concept.get("display"):
                names.append(concept["display"].lower())
            names.extend(
                d["value"].lower() for d in concept.get("designation", []) if d.get("value")
            )
        if not include.get("concept") and not include.get("filter"):
            raise TerminologyError(
                f"ValueSet {vs_id}: an include of a whole code system needs an expansion; "
                "list its concepts"
            )
        for flt in include.get("filter", []):
            if flt.get("property") != "code" or flt.get("op") != "regex":
                raise TerminologyError(
                    f"ValueSet {vs_id}: filter {flt.get('property')} {flt.get('op')} needs a "
                    "terminology server; only 'code regex' is supported"
                )
            patterns.append((system, re.compile(flt["value"])))
    return ValueSetIndex(
        vs_id, str(resource.get("url")), frozenset(codes), tuple(patterns), tuple(names)
    )


@dataclass(frozen=True)
class Terminology:
    value_sets: Mapping[str, ValueSetIndex]
    code_systems: Mapping[str, frozenset[str]]  # url → codes
    concept_map: Mapping[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def value_set(self, vs_id: str) -> ValueSetIndex:
        try:
            return self.value_sets[vs_id]
        except KeyError:
            raise TerminologyError(f"ValueSet {vs_id} is not in profiles/") from None

    def with_value_sets(self, prefix: str) -> dict[str, ValueSetIndex]:
        """Value sets whose id starts with ``prefix``, keyed by the rest of the id."""
        return {k[len(prefix) :]: v for k, v in self.value_sets.items() if k.startswith(prefix)}

    def translate(self, system: str | None, code: str | None) -> tuple[str, str] | None:
        if system is None or code is None:
            return None
        return self.concept_map.get((system, code))

    def defines(self, system: str, code: str) -> bool:
        return code in self.code_systems.get(system, frozenset())

    def with_concept_map(self, concept_map: Mapping[str, Any] | None) -> Terminology:
        if concept_map is None:
            return self
        return Terminology(self.value_sets, self.code_systems, index_concept_map(concept_map))


def index_concept_map(resource: Mapping[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(source system, code) → (target system, code), for exact mappings only."""
    if resource.get("resourceType") != "ConceptMap":
        raise TerminologyError("the concept map is not a ConceptMap resource")
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for group in resource.get("group", []):
        source, target = group.get("source"), group.get("target")
        if not source or not target:
            raise TerminologyError("ConceptMap.group needs source and target systems")
        for element in group.get("element", []):
            for tgt in element.get("target", []):
                if tgt.get("equivalence") in _MAPPED_EQUIVALENCE and tgt.get("code"):
                    out[(source, element["code"])] = (target, tgt["code"])
    return out


def load_concept_map(path: Path) -> dict[str, Any]:
    data = orjson.loads(path.read_bytes())
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
            code_systems[resource["url"]] = frozenset(_codes(resource.get("concept", [])))
    return Terminology(value_sets, code_systems)


def _codes(concepts: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for c in concepts:
        yield c["code"]
        yield from _codes(c.get("concept", []))
