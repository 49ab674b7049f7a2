"""Answers cached per terminology (issue 13) never cross to a terminology with other content."""

from __future__ import annotations

from dataclasses import replace

from fhirtis.fhir.codes import CORE_SET_SYSTEM, terminology
from fhirtis.fhir.extract import Extractor

LOCAL = ("http://hospital.example.org/codes", "PGA-LOCAL")


def test_a_concept_map_is_not_hidden_by_an_earlier_cached_answer() -> None:
    base = terminology()
    plain = Extractor(base)
    assert plain._classify_observation([LOCAL]) is None  # cached as "not used"
    assert plain._classify_observation([LOCAL]) is None  # from the memo, same answer
    mapped = Extractor(replace(base, concept_map={LOCAL: ((CORE_SET_SYSTEM, "pga"),)}))
    kind = mapped._classify_observation([LOCAL])
    assert kind is not None and kind[0] == "measure"
    assert plain._classify_observation([LOCAL]) is None


def test_extractors_of_one_terminology_share_its_memo() -> None:
    base = terminology()
    assert Extractor(base)._kinds is Extractor(base)._kinds
    assert replace(base).memo_for("extract.observation-kind") == {}
