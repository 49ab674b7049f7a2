"""What the deployment example and the terminology notes tell an integrator stays true.

- ``deploy/fhirtis.env.example``'s backend-services scopes cover every type an evaluation reads
  (with a Medication's ingredient Substance and fhirtis's Provenances) and what ``write=true``
  writes, deletes included (a withdrawn AdverseEvent, the extra copies of a concurrent create):
  the example lacked DeviceUseStatement and Substance reads and every delete.
- The summary table of ``profiles/TERMINOLOGY.md`` gives each ValueSet's counts as its file
  holds them (``risk-cardiovascular`` said 64 codes where it holds 69).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dotenv import dotenv_values

from fhirtis.api.access import missing_scopes, read_for_evaluate, read_not_granted

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / "deploy" / "fhirtis.env.example"
TERMINOLOGY = ROOT / "profiles" / "TERMINOLOGY.md"


def _example_scopes() -> list[str]:
    scope = dotenv_values(ENV_EXAMPLE)["FHIRTIS_FHIR__SCOPE"]
    assert scope
    return scope.split()


def test_example_scopes_cover_what_an_evaluation_reads_and_writes() -> None:
    scopes = _example_scopes()
    assert missing_scopes(scopes, write=True) == []
    for resource in (*read_for_evaluate(), "Substance", "Provenance"):
        assert not read_not_granted(" ".join(scopes), resource), resource


_ROW = re.compile(r"^\| `([a-z0-9-]+)` \| (\d+) \| (\d+) \| ([^|]+) \| ([^|]+) \|$", re.MULTILINE)


def _summary() -> dict[str, tuple[int, int, list[str], int | None]]:
    text = TERMINOLOGY.read_text(encoding="utf-8")
    table = text[text.index("## Summary") : text.index("\n## ", text.index("## Summary") + 1)]
    rows = {}
    for vid, codes, regexes, parents, expansion in _ROW.findall(table):
        rows[vid] = (
            int(codes),
            int(regexes),
            [] if parents.strip() == "—" else sorted(p.strip() for p in parents.split(",")),
            None if expansion.strip() == "—" else int(expansion),
        )
    return rows


def test_terminology_summary_counts_are_the_valuesets() -> None:
    rows = _summary()
    assert len(rows) > 20
    for vid, expected in rows.items():
        vs = json.loads((ROOT / "profiles" / f"ValueSet-{vid}.json").read_text(encoding="utf-8"))
        include = vs.get("compose", {}).get("include", [])
        filters = [f for i in include for f in i.get("filter", [])]
        found = (
            sum(len(i.get("concept", [])) for i in include),
            sum(1 for f in filters if f["op"] == "regex"),
            sorted(f["value"] for f in filters if f["op"] == "is-a"),
            len(vs["expansion"]["contains"]) if "expansion" in vs else None,
        )
        assert found == expected, vid
