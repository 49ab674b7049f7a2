"""A site's ConceptMap (R4) as terminology tools write it, read so that a local code is one thing:
a map whose exact targets make one code two different things fhirtis reads, or whose target
system is a misspelling of fhirtis's own, is refused at startup; a local code under another name
of its system (LOINC's OID) is searched under every name the extraction maps."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.clinical.facts import Measure
from fhirtis.fhir.codes import TerminologyError, terminology
from fhirtis.fhir.extract import Extractor
from fhirtis.fhir.needs import observation_code_groups, observation_codes, prefetch_queries
from fhirtis.fhir.queries import patient_read_urls
from tests.fhir.builders import LOINC, enzyme, obs, patient
from tests.fhir.test_extract import _extract
from tests.fhir.test_s32cmap_concept_map import _values

LOCAL = "http://hospital.example.org/codes"
CORE = "http://fhirtis.org/fhir/CodeSystem/myositis-core-set"
SCT = "http://snomed.info/sct"
LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"
EXACT = {"equivalence": "equivalent"}


def _map(*groups: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "ConceptMap", "status": "active", "group": list(groups)}


def _group(source: str, target: str, code: str, target_code: str) -> dict[str, Any]:
    return {
        "source": source,
        "target": target,
        "element": [{"code": code, "target": [{"code": target_code, **EXACT}]}],
    }


# --- one code, two things ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "cmap",
    [
        # a local code "equivalent" to creatine kinase (LOINC) in one group and to the PGA in
        # another: read as a PGA (the core set is looked at first), every CK excluded as a VAS
        # in U/L, and the CDS prefetch fetched it with the enzymes
        _map(_group(LOCAL, LOINC, "X", "2157-6"), _group(LOCAL, CORE, "X", "pga")),
        # a local code equivalent to a body weight and to the PGA: prefetched with the weights
        # ("latest n" only), read as a PGA
        _map(_group(LOCAL, LOINC, "W", "29463-7"), _group(LOCAL, CORE, "W", "pga")),
        # a code fhirtis reads itself (CK's LOINC code) mapped to a measure: every CK of the
        # site was read as a PGA and excluded; the enzyme measure was missing for all patients
        _map(_group(LOINC, CORE, "2157-6", "pga")),
        # a core set code mapped to another one: ignored silently (the code's own meaning won)
        _map(_group(CORE, CORE, "pga", "ptga")),
        # the same under LOINC's OID (the source's other name)
        _map(_group(LOINC_OID, CORE, "1742-6", "haq-di")),
        # one code under LOINC's URI and under its OID, mapped to two measures: the reading
        # depended on how each Observation named LOINC
        _map(_group(LOINC_OID, CORE, "99999-9", "pga"), _group(LOINC, CORE, "99999-9", "ptga")),
    ],
    ids=[
        "local-ck-and-pga",
        "local-weight-and-pga",
        "loinc-ck-to-pga",
        "pga-to-ptga",
        "oid",
        "oid-and-uri",
    ],
)
def test_a_code_mapped_to_two_different_things_is_refused(cmap: dict[str, Any]) -> None:
    """R4 ConceptMap: ``equivalent``/``equal`` say the source and target concepts mean the same.
    A code that is thereby both a CK and a PGA (or a weight and a PGA) contradicts itself, and
    fhirtis resolved it by the order it looks at codes; clinical spec §6 ("sites map their local
    codes to it with a ConceptMap") and "never guess silently"."""
    t = terminology().with_concept_map(cmap)
    with pytest.raises(TerminologyError, match="different things"):
        Extractor(t)


def test_a_ck_mapped_to_the_pga_is_refused_not_read_as_a_pga() -> None:
    """Before: the CK Observation was read as a PGA and excluded (a VAS in U/L)."""
    cmap = _map(_group(LOINC, CORE, "2157-6", "pga"))
    with pytest.raises(TerminologyError, match=re.escape("'2157-6' of http://loinc.org")):
        _extract(patient(), enzyme("ck", "2157-6", 900, "2024-01-02"), concept_map=cmap)


def test_consistent_maps_are_still_read() -> None:
    """Several exact targets that are one thing (CK in LOINC and in SNOMED CT, a LOINC code
    mapped to itself, a local code of a system fhirtis does not read) are not refused."""
    cmap = _map(
        _group(LOCAL, LOINC, "CK", "2157-6"),
        _group(LOCAL, SCT, "CK", "397798009"),
        _group(LOINC, LOINC, "2157-6", "2157-6"),
        _group(LOCAL, CORE, "PGA", "pga"),
        _group(LOCAL, "http://example.org/other", "PGA", "anything"),
    )
    data = _extract(
        patient(),
        obs("a", "CK", 900, "U/L", "2024-01-02", system=LOCAL),
        obs("b", "PGA", 45, "mm", "2024-01-02", system=LOCAL),
        concept_map=cmap,
    )
    assert sorted((m.measure.value, m.value) for m in data.measures) == [
        (Measure.ENZYME.value, Decimal(900)),
        (Measure.PGA.value, Decimal("4.5")),
    ]


def test_a_contradictory_map_is_a_usage_error_at_startup(tmp_path: Path) -> None:
    """README: a `concept_map` that cannot be used exits 2 with one line."""
    cmap = _map(_group(LOCAL, LOINC, "X", "2157-6"), _group(LOCAL, CORE, "X", "pga"))
    (tmp_path / "map.json").write_bytes(orjson.dumps(cmap))
    (tmp_path / "settings.toml").write_text('concept_map = "map.json"\n')
    (tmp_path / "b.json").write_bytes(
        orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": []})
    )
    result = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "b.json"), "--settings", str(tmp_path / "settings.toml")]
    )
    assert result.exit_code == 2, result.output
    assert "map.json" in result.stderr
    assert "different things" in result.stderr
    assert "Traceback" not in result.output


# --- a misspelt fhirtis system ----------------------------------------------------------------


@pytest.mark.parametrize(
    "system",
    [
        "http://fhirtis.org/fhir/CodeSystem/myositis-core-sets",
        "http://fhirtis.org/fhir/CodeSystem/Myositis-Core-Set",
        "https://fhirtis.org/fhir/CodeSystem/myositis-core-set",
        "http://fhirtis.org/CodeSystem/myositis-core-set",
        "http://www.fhirtis.org/fhir/CodeSystem/myositis-core-set",
    ],
)
def test_a_target_system_in_fhirtis_namespace_that_fhirtis_does_not_define_is_refused(
    system: str,
) -> None:
    """A target code fhirtis's CodeSystem does not define is refused (s32); a misspelt target
    system mapped every local code to nothing, silently: all TIS partial, nothing said why."""
    cmap = _map(_group(LOCAL, system, "PGA", "pga"))
    with pytest.raises(TerminologyError, match="not a code system fhirtis defines"):
        terminology().with_concept_map(cmap)


def test_targets_in_other_systems_are_not_refused() -> None:
    cmap = _map(
        _group(LOCAL, "http://example.org/fhirtis.org/codes", "A", "a"),
        _group(LOCAL, "http://notfhirtis.org/x", "B", "b"),
        _group(LOCAL, CORE, "PGA", "pga"),
    )
    assert terminology().with_concept_map(cmap).translate(LOCAL, "PGA") == (CORE, "pga")


# --- searched under every name ----------------------------------------------------------------


def test_a_source_under_an_alias_is_searched_under_the_canonical_uri_too() -> None:
    """The extraction maps a coding of ``http://loinc.org`` through a map whose group.source is
    LOINC's OID (``urn:oid:2.16.840.1.113883.6.1``, as CDA-derived maps write it), but the
    server search and the CDS prefetch asked only for ``urn:oid…|code``; R4 search by token
    matches the system as stored, so a server holding the Observation under
    ``http://loinc.org`` never returned it."""
    cmap = _map(_group(LOINC_OID, CORE, "99999-9", "pga"))
    t = terminology().with_concept_map(cmap)
    wanted = f"{LOINC}|99999-9"
    assert (LOINC, "99999-9") in observation_codes(t)
    assert (LOINC, "99999-9") in observation_code_groups(t)["measures"]
    (measures,) = [
        q for key, q, _ in prefetch_queries(t, "{{context.patientId}}") if key == "measures"
    ]
    assert wanted in [v for p in parse_qs(urlsplit(measures).query)["code"] for v in _values(p)]
    urls = [u for _, u in patient_read_urls("p1", t, 100) if u.startswith("Observation?")]
    assert any(wanted in _values(parse_qs(urlsplit(u).query)["code"][0]) for u in urls)
    # and the extraction reads it so
    data = _extract(
        patient(), obs("a", "99999-9", 45, "mm", "2024-01-02", system=LOINC), concept_map=cmap
    )
    assert [(m.measure, m.value) for m in data.measures] == [(Measure.PGA, Decimal("4.5"))]
