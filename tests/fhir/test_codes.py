"""Value-set membership: explicit codes, regex filters, hierarchy filters with a shipped
expansion, and the terminology port for codes the expansion does not list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhirtis.fhir.codes import (
    ICD10CM,
    SNOMED,
    Membership,
    SubsumptionOracle,
    TerminologyError,
    ValueSetIndex,
    index_concept_map,
    index_value_set,
    load_concept_map,
    terminology,
)

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
ATC = "http://www.whocc.no/atc"
V3_ROUTE = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"

# Codes below marked FAKE are placeholders made up for these tests, not SNOMED CT concepts.
PARENT = "128053003"  # Deep venous thrombosis (disorder), in the shipped DVT expansion
LISTED_CHILD = "132251000119101"  # Acute deep venous thrombosis of popliteal vein (disorder)
UNLISTED_CHILD = "FAKE-child-of-dvt"
UNRELATED = "FAKE-unrelated-disorder"


def _vs(**compose_and_expansion: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "ValueSet",
        "id": "test",
        "url": "http://example.org/ValueSet/test",
        "compose": {"include": compose_and_expansion.get("include", [])},
    }
    if "exclude" in compose_and_expansion:
        resource["compose"]["exclude"] = compose_and_expansion["exclude"]
    if "expansion" in compose_and_expansion:
        resource["expansion"] = {
            "timestamp": "2026-12-01T00:00:00Z",
            "contains": compose_and_expansion["expansion"],
        }
    return resource


def _dvt_like() -> ValueSetIndex:
    return index_value_set(
        _vs(
            include=[
                {
                    "system": SNOMED,
                    "filter": [{"property": "concept", "op": "is-a", "value": PARENT}],
                },
                {
                    "system": ICD10CM,
                    "filter": [{"property": "code", "op": "regex", "value": r"I82\.4.+"}],
                },
            ],
            exclude=[{"system": SNOMED, "concept": [{"code": "FAKE-excluded-child"}]}],
            expansion=[
                {"system": SNOMED, "code": PARENT},
                {
                    "system": SNOMED,
                    "code": "FAKE-group",
                    "abstract": True,
                    "contains": [{"system": SNOMED, "code": LISTED_CHILD}],
                },
            ],
        )
    )


class Oracle:
    """A test double of the terminology port: a fixed child → parent table."""

    def __init__(self, parents: dict[str, set[str]], unknown: frozenset[str] = frozenset()):
        self.parents = parents
        self.unknown = unknown
        self.asked: list[tuple[str, str, str]] = []

    def is_a(self, system: str, code: str, parent: str) -> bool | None:
        self.asked.append((system, code, parent))
        if code in self.unknown:
            return None
        return parent in self.parents.get(code, set())


def test_a_code_in_the_shipped_expansion_is_a_member() -> None:
    vs = _dvt_like()
    assert vs.classify(SNOMED, PARENT) is Membership.MEMBER
    assert vs.classify(SNOMED, LISTED_CHILD) is Membership.MEMBER  # nested contains
    assert vs.contains(SNOMED, LISTED_CHILD)
    assert (SNOMED, "FAKE-group") not in vs.codes  # abstract entries are not codes


def test_a_child_not_in_the_expansion_is_unclassified_without_an_oracle() -> None:
    vs = _dvt_like()
    assert vs.classify(SNOMED, UNLISTED_CHILD) is Membership.UNCLASSIFIED
    assert not vs.contains(SNOMED, UNLISTED_CHILD)  # the two-valued answer stays conservative
    # a system no hierarchy filter covers is answered outright
    assert vs.classify(ICD10CM, "I26.99") is Membership.NOT_MEMBER
    assert vs.classify(None, PARENT) is Membership.NOT_MEMBER


def test_an_oracle_decides_what_the_expansion_does_not_list() -> None:
    vs = _dvt_like()
    oracle = Oracle({UNLISTED_CHILD: {PARENT}}, unknown=frozenset({"FAKE-server-down"}))
    assert vs.classify(SNOMED, UNLISTED_CHILD, oracle) is Membership.MEMBER
    assert vs.classify(SNOMED, UNRELATED, oracle) is Membership.NOT_MEMBER
    assert vs.classify(SNOMED, "FAKE-server-down", oracle) is Membership.UNCLASSIFIED
    # listed codes never reach the oracle
    oracle.asked.clear()
    assert vs.classify(SNOMED, LISTED_CHILD, oracle) is Membership.MEMBER
    assert oracle.asked == []


def test_an_excluded_code_is_never_a_member_even_if_the_oracle_subsumes_it() -> None:
    vs = _dvt_like()
    oracle = Oracle({"FAKE-excluded-child": {PARENT}})
    assert vs.classify(SNOMED, "FAKE-excluded-child", oracle) is Membership.NOT_MEMBER
    assert oracle.asked == []


def test_descendent_of_does_not_include_the_parent_itself() -> None:
    vs = index_value_set(
        _vs(
            include=[
                {
                    "system": SNOMED,
                    "filter": [
                        {"property": "concept", "op": "descendent-of", "value": "FAKE-parent"}
                    ],
                }
            ]
        )
    )
    oracle = Oracle({"FAKE-child": {"FAKE-parent"}})
    assert vs.classify(SNOMED, "FAKE-parent", oracle) is Membership.NOT_MEMBER
    assert vs.classify(SNOMED, "FAKE-child", oracle) is Membership.MEMBER


def test_classify_any_prefers_member_then_unclassified() -> None:
    vs = _dvt_like()
    assert (
        vs.classify_any([(ICD10CM, "E11.9"), (SNOMED, UNLISTED_CHILD)]) is Membership.UNCLASSIFIED
    )
    assert vs.classify_any([(SNOMED, UNLISTED_CHILD), (ICD10CM, "I82.401")]) is Membership.MEMBER
    assert vs.classify_any([(ICD10CM, "E11.9")]) is Membership.NOT_MEMBER
    assert vs.classify_any([]) is Membership.NOT_MEMBER


def test_a_regex_filter_still_works() -> None:
    vs = _dvt_like()
    assert vs.contains(ICD10CM, "I82.401")
    assert vs.classify(ICD10CM, "I82.4Z9") is Membership.MEMBER
    assert not vs.contains(ICD10CM, "I82.4")  # full match: "I82.4" + at least one character
    assert not vs.contains(ICD10CM, "XI82.401")
    assert vs.matches_any([(ICD10CM, "X"), (ICD10CM, "I82.4Y1")])


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ({"property": "concept", "op": "in", "value": "x"}, "not supported"),
        ({"property": "code", "op": "is-a", "value": "x"}, "not supported"),
    ],
)
def test_unsupported_filters_are_refused_at_load_time(flt: dict[str, str], message: str) -> None:
    with pytest.raises(TerminologyError, match=message):
        index_value_set(_vs(include=[{"system": SNOMED, "filter": [flt]}]))


def test_two_filters_in_one_include_are_refused() -> None:
    both = [
        {"property": "concept", "op": "is-a", "value": "a"},
        {"property": "code", "op": "regex", "value": "b"},
    ]
    with pytest.raises(TerminologyError, match="AND"):
        index_value_set(_vs(include=[{"system": SNOMED, "filter": both}]))


def test_every_value_set_in_profiles_loads() -> None:
    files = sorted(PROFILES.glob("ValueSet-*.json"))
    t = terminology(PROFILES)
    assert {json.loads(p.read_text())["id"] for p in files} == set(t.value_sets)
    assert all(vs.codes or vs.patterns or vs.hierarchies for vs in t.value_sets.values())


def _problem_list_sets() -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text())
        for pattern in ("ValueSet-tee-*.json", "ValueSet-risk-*.json")
        for p in sorted(PROFILES.glob(pattern))
    ]


def test_problem_list_value_sets_use_snomed_hierarchy_and_ship_an_expansion() -> None:
    t = terminology(PROFILES)
    by_hierarchy = 0
    for resource in _problem_list_sets():
        vs = t.value_set(resource["id"])
        explicit = {
            (inc["system"], c["code"])
            for inc in resource["compose"]["include"]
            for c in inc.get("concept", [])
        }
        shipped = {
            (c["system"], c["code"]) for c in resource.get("expansion", {}).get("contains", [])
        }
        if vs.hierarchies:
            by_hierarchy += 1
            assert vs.hierarchy_systems == {SNOMED}
            # every parent is itself in the expansion, and so is every explicit concept
            assert {(SNOMED, h.parent) for h in vs.hierarchies} <= shipped
            assert explicit - vs.excluded <= shipped, resource["id"]
    assert by_hierarchy >= 10


def test_the_tee_expansions_stay_disjoint_and_siblings_are_excluded() -> None:
    t = terminology(PROFILES)
    tee = t.with_value_sets("tee-")
    for kind, vs in tee.items():
        for other_kind, other in tee.items():
            if kind != other_kind:
                assert not (vs.codes & other.codes), (kind, other_kind)
                # a sibling's listed SNOMED code can never become a member through an oracle
                if vs.hierarchies:
                    assert {c for c in other.codes if c[0] == SNOMED} <= vs.excluded


def test_a_popliteal_dvt_is_a_dvt_and_an_unlisted_code_is_reported_as_unclassified() -> None:
    t = terminology(PROFILES)
    assert t.classify("tee-deep-vein-thrombosis", [(SNOMED, LISTED_CHILD)]) is Membership.MEMBER
    assert (
        t.classify("tee-deep-vein-thrombosis", [(SNOMED, UNLISTED_CHILD)])
        is Membership.UNCLASSIFIED
    )
    oracle: SubsumptionOracle = Oracle({UNLISTED_CHILD: {PARENT}})
    with_server = t.with_oracle(oracle)
    assert with_server.classify("tee-deep-vein-thrombosis", [(SNOMED, UNLISTED_CHILD)]) is (
        Membership.MEMBER
    )
    # the concept map keeps the oracle, and the cached plain terminology is untouched
    assert (
        with_server.with_concept_map({"resourceType": "ConceptMap", "group": []}).oracle is oracle
    )
    assert t.oracle is None


def test_malignancy_by_hierarchy() -> None:
    t = terminology(PROFILES)
    small_cell = "FAKE-small-cell-lung-cancer"
    oracle = Oracle({small_cell: {"363346000"}})  # Malignant neoplastic disease (disorder)
    assert t.classify("risk-malignancy", [(SNOMED, small_cell)]) is Membership.UNCLASSIFIED
    assert t.with_oracle(oracle).classify("risk-malignancy", [(SNOMED, small_cell)]) is (
        Membership.MEMBER
    )


def test_immune_globulin_route_and_product_value_sets() -> None:
    t = terminology(PROFILES)
    assert t.value_set("route-intravenous").contains(SNOMED, "47625008")
    assert t.value_set("route-subcutaneous").contains(SNOMED, "34206005")
    assert t.value_set("route-intramuscular").contains(SNOMED, "78421000")
    assert t.value_set("route-intravenous").contains(V3_ROUTE, "IVINJ")
    assert t.value_set("route-subcutaneous").contains(V3_ROUTE, "SQ")
    assert t.value_set("route-intramuscular").contains(V3_ROUTE, "IM")
    assert t.value_set("ivig-products").contains(ATC, "J06BA02")
    assert not t.value_set("ivig-products").contains(ATC, "J06BA01")
    assert t.value_set("scig-products").contains(ATC, "J06BA01")
    dual = t.value_set("ivig-dual-route-products").names
    assert "gamunex-c" in dual and "privigen" not in dual
    generic = t.value_set("immune-globulin-names").names
    expected = {"ivig", "igiv", "immune globulin intravenous", "immunoglobulin g, human"}
    assert expected <= set(generic)


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "ConceptMap", "group": 5},
        {"resourceType": "ConceptMap", "group": [5]},
        {"resourceType": "ConceptMap", "group": [{"source": "a", "target": "b", "element": {}}]},
        {"resourceType": "ConceptMap", "group": [{"source": "a", "target": "b", "element": [1]}]},
        {  # an element without its code
            "resourceType": "ConceptMap",
            "group": [{"source": "a", "target": "b", "element": [{"target": []}]}],
        },
        {
            "resourceType": "ConceptMap",
            "group": [{"source": "a", "target": "b", "element": [{"code": "x", "target": "y"}]}],
        },
        {
            "resourceType": "ConceptMap",
            "group": [{"source": "a", "target": "b", "element": [{"code": "x", "target": ["y"]}]}],
        },
    ],
)
def test_a_concept_map_of_the_wrong_shape_is_a_terminology_error(
    resource: dict[str, object],
) -> None:
    """A site's ConceptMap with a group, element or target that is not a list of objects, or an
    element without a code, raised TypeError, AttributeError or KeyError at the first patient;
    it is a TerminologyError naming what is wrong."""
    with pytest.raises(TerminologyError):
        index_concept_map(resource)


def test_a_concept_map_file_that_is_not_json_is_a_terminology_error(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_bytes(b"<ConceptMap/>")
    with pytest.raises(TerminologyError, match=r"map\.json"):
        load_concept_map(path)
