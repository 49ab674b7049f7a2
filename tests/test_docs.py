"""docs/clinical-specification.md stays in step with the code and with the upstream numbering.

- every field of :class:`fhirtis.clinical.policy.Policy` is in the settings table, with the
  default the code has (as a result reports it, :meth:`Policy.as_record`);
- the table names no setting that does not exist (bar the revision-2 choices being added);
- every ``**[choice]** `name``` in the text is in the table;
- the sections §1–§8 (and their subsections) are numbered as upstream, so that references such
  as "§2.2" can be moved from the upstream specification to this document unchanged;
- relative links in the document point to files that exist.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from fhirtis.clinical.policy import DEFAULT_POLICY, Policy

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "clinical-specification.md"
# The upstream specification sits beside a development checkout, not in the repository.
UPSTREAM = ROOT.parent / "shared" / "DOMAIN.md"

# Revision 2 choices the engineers are adding to Policy under exactly these names; until they
# land, the document must still list them with the revision-2 defaults.
PENDING: dict[str, tuple[str, ...]] = {
    "weight_plausible_kg": ("0.5", "350"),
    "height_plausible_cm": ("30", "250"),
    "weight_jump_percent": ("25",),
}

SECTIONS: tuple[str, ...] = (
    *("1", "2", "2.1", "2.2", "2.3", "2.4", "2.5", "3", "4"),
    *("5", "5.1", "5.2", "5.3", "6", "7", "8"),
)

_HEADING = re.compile(r"^(#{2,3}) (\d+(?:\.\d+)?)\.? (.+)$", re.MULTILINE)


def _text() -> str:
    return SPEC.read_text(encoding="utf-8")


def _settings_table(text: str) -> dict[str, str]:
    """setting name → default cell, from the table of the Settings section."""
    start = text.index("## Settings")
    end = text.index("\n## ", start + 1)
    rows: dict[str, str] = {}
    for line in text[start:end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[1].startswith("`"):
            continue
        name = cells[1].strip("`")
        assert name not in rows, f"{name} is listed twice"
        rows[name] = cells[2]
    return rows


def _items(rendered: str) -> tuple[str, ...]:
    """'`[0.5, 350]`' or '0.5,350' → ('0.5', '350')."""
    bare = rendered.strip().strip("`").strip("[]()")
    return tuple(part.strip() for part in bare.split(","))


def _same(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        try:
            if Decimal(x) != Decimal(y):
                return False
        except InvalidOperation:
            if x != y:
                return False
    return True


def _headings(text: str) -> dict[str, str]:
    return {m.group(2): m.group(3).strip() for m in _HEADING.finditer(text)}


@pytest.mark.parametrize("name", sorted(Policy.model_fields))
def test_every_policy_field_is_in_the_table_with_its_default(name: str) -> None:
    table = _settings_table(_text())
    assert name in table, f"Policy.{name} is missing from the settings table"
    expected = DEFAULT_POLICY.as_record()[name]
    assert _same(_items(table[name]), _items(expected)), (
        f"{name}: the document says {table[name]}, the code's default is {expected}"
    )


def test_the_table_names_only_real_settings() -> None:
    unknown = set(_settings_table(_text())) - set(Policy.model_fields) - set(PENDING)
    assert not unknown, f"not fields of Policy: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(PENDING))
def test_revision_2_choices_are_listed_with_their_defaults(name: str) -> None:
    table = _settings_table(_text())
    assert name in table
    if name not in Policy.model_fields:  # once added, the Policy test above checks the code's
        assert _same(_items(table[name]), PENDING[name])


def test_every_choice_named_in_the_text_is_in_the_table() -> None:
    text = _text()
    table = _settings_table(text)
    named = set(re.findall(r"\*\*\[choice\]\*\*\s+`([a-z_]+)", text))
    assert named, "the text names no choice: the pattern no longer matches the document"
    assert named <= set(table), f"named in the text, not in the table: {sorted(named - set(table))}"


def test_sections_are_numbered_as_upstream() -> None:
    headings = _headings(_text())
    missing = [n for n in SECTIONS if n not in headings]
    assert not missing, f"sections missing: {missing}"
    order = [n for n in headings if n in SECTIONS]
    assert order == list(SECTIONS), f"sections out of order: {order}"


@pytest.mark.skipif(not UPSTREAM.is_file(), reason="upstream specification not beside checkout")
def test_numbering_and_choices_match_the_upstream_specification() -> None:
    upstream = UPSTREAM.read_text(encoding="utf-8")
    ours = _headings(_text())
    for number, title in _headings(upstream).items():
        here = ours.get(number)
        assert here == title, f"§{number}: upstream '{title}', here '{here}'"
    upstream_choices = set(re.findall(r"\*\*\[choice\]\*\*\s+`([a-z_]+)", upstream))
    upstream_choices |= set(re.findall(r"`([a-z_]+) = ", upstream))
    missing = upstream_choices - set(_settings_table(_text()))
    assert not missing, f"upstream choices missing from the table: {sorted(missing)}"


def test_relative_links_resolve() -> None:
    for target in re.findall(r"\]\((\.\./[^)#]+)\)", _text()):
        assert (SPEC.parent / target).resolve().exists(), target
