"""A site's ConceptMap (R4) read as the specification says: every exact target of a local code
is used (several groups, several target systems), and a map fhirtis cannot apply as written is a
TerminologyError at startup, never a silent no-op or a silent choice between targets."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from fhirtis.clinical.facts import Measure
from fhirtis.fhir.codes import TerminologyError, index_concept_map, terminology
from fhirtis.fhir.needs import observation_code_groups, observation_codes, prefetch_queries, token
from fhirtis.fhir.queries import patient_read_urls
from tests.fhir.builders import LOINC, obs, patient
from tests.fhir.test_extract import _extract

LOCAL = "http://hospital.example.org/codes"
CORE = "http://fhirtis.org/fhir/CodeSystem/myositis-core-set"
SCT = "http://snomed.info/sct"


def _map(*groups: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "ConceptMap", "status": "active", "group": list(groups)}


def _group(target: str, code: str, *targets: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": LOCAL,
        "target": target,
        "element": [{"code": code, "target": list(targets)}],
    }


def test_a_local_code_mapped_to_two_code_systems_is_read_by_the_one_fhirtis_reads() -> None:
    """R4 allows several groups (one per target system) and several targets per element: a
    local CK code mapped to LOINC 2157-6 and, in a second group, to SNOMED CT kept only the last
    target, so the CK was not read at all (silently)."""
    cmap = _map(
        _group(LOINC, "CK", {"code": "2157-6", "equivalence": "equivalent"}),
        _group(SCT, "CK", {"code": "397798009", "equivalence": "equivalent"}),
    )
    data = _extract(
        patient(), obs("a", "CK", 900, "U/L", "2024-01-02", system=LOCAL), concept_map=cmap
    )
    assert [(m.measure, m.value) for m in data.measures] == [(Measure.ENZYME, Decimal(900))]
    t = terminology().with_concept_map(cmap)
    assert (LOCAL, "CK") in observation_codes(t)
    assert (LOCAL, "CK") in observation_code_groups(t)["measures"]


def test_two_exact_targets_in_one_system_are_refused() -> None:
    """One local VAS code 'equivalent' to both pga and ptga is contradictory: it was read as
    whichever came last (a patient's global read as the physician's, or the reverse)."""
    cmap = _map(
        _group(
            CORE,
            "VAS",
            {"code": "pga", "equivalence": "equivalent"},
            {"code": "ptga", "equivalence": "equivalent"},
        )
    )
    with pytest.raises(TerminologyError, match="VAS"):
        index_concept_map(cmap)


def test_a_target_that_depends_on_other_elements_is_refused() -> None:
    """R4 dependsOn: "This mapping is only applicable if the specified element can be resolved,
    and it has the specified value". fhirtis cannot resolve it and applied the target always."""
    depends = {"property": "http://hospital.example.org/assessor", "value": "physician"}
    cmap = _map(
        _group(CORE, "VAS", {"code": "pga", "equivalence": "equivalent", "dependsOn": [depends]})
    )
    with pytest.raises(TerminologyError, match="dependsOn"):
        index_concept_map(cmap)
    # an inexact target with a dependency is not used anyway: nothing to refuse
    cmap = _map(
        _group(CORE, "VAS", {"code": "pga", "equivalence": "inexact", "dependsOn": [depends]})
    )
    assert index_concept_map(cmap) == {}


@pytest.mark.parametrize(
    "target",
    [
        {"code": "pga"},  # R4: equivalence 1..1
        {"code": "pga", "relationship": "equivalent"},  # an R5 ConceptMap
        {"code": "pga", "equivalence": "Equivalent"},  # not a code of the required binding
        {"code": "pga", "equivalence": ["equivalent"]},
    ],
)
def test_a_target_without_an_r4_equivalence_is_refused(target: dict[str, Any]) -> None:
    """A target whose equivalence is absent or not an R4 concept-map-equivalence code was
    skipped silently: the local code was never read and every TIS was partial."""
    with pytest.raises(TerminologyError, match="equivalence"):
        index_concept_map(_map(_group(CORE, "PGA", target)))


@pytest.mark.parametrize("code", ["mmt8", "PGA", "haq"])
def test_a_target_code_the_core_set_does_not_define_is_refused(code: str) -> None:
    """fhirtis's own CodeSystem is known in full: a mapping to a code it does not define (a
    typo) mapped the local code to nothing, silently."""
    cmap = _map(_group(CORE, "LOCAL", {"code": code, "equivalence": "equivalent"}))
    with pytest.raises(TerminologyError, match=repr(code)):
        terminology().with_concept_map(cmap)


@pytest.mark.parametrize(
    "target", [{"equivalence": "equivalent"}, {"code": 5, "equivalence": "equal"}]
)
def test_an_exact_target_without_a_code_is_refused(target: dict[str, Any]) -> None:
    """An "equivalent" target that names no code (R4: only an unmatched target goes without
    one) mapped the local code to nothing, silently."""
    with pytest.raises(TerminologyError, match="no code"):
        index_concept_map(_map(_group(CORE, "PGA", target)))


def test_a_target_with_a_modifier_extension_is_refused() -> None:
    """A modifierExtension may change the mapping's meaning; fhirtis refuses such content
    elsewhere, and used this target as if it were plain."""
    target = {
        "code": "pga",
        "equivalence": "equivalent",
        "modifierExtension": [{"url": "http://hospital.example.org/x", "valueBoolean": True}],
    }
    with pytest.raises(TerminologyError, match="modifierExtension"):
        index_concept_map(_map(_group(CORE, "PGA", target)))


def test_exact_targets_still_map_and_others_still_do_not() -> None:
    cmap = _map(
        _group(
            CORE,
            "PGA",
            {"code": "pga", "equivalence": "equal"},
            {"code": "pga", "equivalence": "equivalent"},  # the same target twice: one
        ),
        {
            "source": LOCAL,
            "target": CORE,
            "element": [
                {"code": "MMT", "target": [{"code": "mmt8-150", "equivalence": "wider"}]},
                {"code": "X", "target": [{"equivalence": "unmatched"}]},
            ],
        },
    )
    data = _extract(
        patient(),
        obs("a", "PGA", 60, "mm", "2024-01-02", system=LOCAL),
        obs("b", "MMT", 100, "{score}", "2024-01-02", system=LOCAL),
        concept_map=cmap,
    )
    assert [(m.measure, m.value) for m in data.measures] == [(Measure.PGA, Decimal(6))]


def _values(param: str) -> list[str]:
    """A search parameter's values as a server splits them (R4 search.html#escaping): at each
    comma that is not escaped by a backslash."""
    return re.split(r"(?<!\\),", unquote(param))


@pytest.mark.parametrize("code", ["MMT8,BILAT", "PGA|VAS", "CK\\U", "HAQ$DI"])
def test_a_local_code_with_a_search_special_character_is_searched_as_one_code(
    code: str,
) -> None:
    """Local codes are searched on the server and in the CDS prefetch as ``system|code`` tokens
    joined by commas. R4 search: a ``,``, ``|``, ``$`` or ``\\`` in a value is escaped with a
    backslash; unescaped, ``MMT8,BILAT`` was searched as ``LOCAL|MMT8`` and ``BILAT`` (any
    system), so the local MMT-8 was never read from a server."""
    cmap = _map(_group(CORE, code, {"code": "mmt8-150", "equivalence": "equivalent"}))
    t = terminology().with_concept_map(cmap)
    escaped = code.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")
    wanted = f"{LOCAL}|{escaped}"
    assert _values(token(LOCAL, code)) == [wanted]
    (measures,) = [
        q for key, q, _ in prefetch_queries(t, "{{context.patientId}}") if key == "measures"
    ]
    codes = parse_qs(urlsplit(measures).query)["code"]
    assert wanted in [v for param in codes for v in _values(param)]
    urls = [u for _, u in patient_read_urls("p1", t, 100) if u.startswith("Observation?")]
    assert any(wanted in _values(parse_qs(urlsplit(u).query)["code"][0]) for u in urls)
