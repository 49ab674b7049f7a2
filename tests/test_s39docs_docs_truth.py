"""What the guides say a user can set or type exists, and what exists is in the guides
(session s39, helper docs).

- Every setting outside the clinical policy (``fhirtis.settings.Settings``, nested by ``__``)
  is named by its environment variable in ``docs/operations.md``: 21 of 60 were not (retries,
  paging, Bulk polling, the rate cap, the service's host and port, ``concept_map``,
  ``default_uln``, …), 10 of them in no guide at all, others only in the README's shorthand
  (``__RETRY_MAX_ATTEMPTS``).
  The clinical policy's fields are checked against docs/clinical-specification.md by
  tests/test_docs.py.
- Every option of every command (each spelling: ``--write`` and ``--dry-run``) is in the
  README's section for that command: ``--dry-run``, ``--progress``/``--no-progress`` and
  ``run --population`` were in none.
- The allowed range the clinical specification's settings table gives a policy setting
  ("integer 0–120") is the one the policy enforces.
- Every setting with an upper bound has its range in its row of the guide's tables ("1 to 256",
  "more than 0, at most 600"): seven did not (page size, retries, FHIR and terminology
  concurrency, port, the FHIR wait and the evaluation timeout).
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel

from fhirtis.cli import app
from fhirtis.clinical.policy import Policy
from fhirtis.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "operations.md"
README = ROOT / "README.md"
SPEC = ROOT / "docs" / "clinical-specification.md"

# The README section (its "## " heading's start) that documents each command.
SECTION = {
    "calc": "The calculator",
    "evaluate": "Evaluating FHIR data",
    "run": "Evaluating on a FHIR server",
    "capabilities": "Evaluating on a FHIR server",
    "serve": "The HTTP service",
    "cohort": "Registries",
    "report": "Registries",
}


def _model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model(arg)
        if found is not None and typing.get_origin(annotation) is not list:
            return found
    return None


def _variables(model: type[BaseModel] = Settings, prefix: str = "FHIRTIS_") -> list[str]:
    """Each setting's environment variable; a mapping's as ``NAME__`` (one key after it)."""
    names = []
    for name, field in model.model_fields.items():
        if model is Settings and name == "policy":
            continue
        nested = _model(field.annotation)
        if nested is not None:
            names += _variables(nested, f"{prefix}{name.upper()}__")
        elif typing.get_origin(field.annotation) is dict:
            names.append(f"{prefix}{name.upper()}__")
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_the_walk_finds_the_settings() -> None:
    names = _variables()
    assert {"FHIRTIS_FHIR__RETRY_BUDGET_SECONDS", "FHIRTIS_SERVICE__PORT"} <= set(names)
    assert {"FHIRTIS_CDS__TRUSTED_CLIENTS", "FHIRTIS_DEFAULT_ULN__"} <= set(names)
    assert not any(n.startswith("FHIRTIS_POLICY__") for n in names)


@pytest.mark.parametrize("name", _variables())
def test_every_setting_is_named_in_the_operations_guide(name: str) -> None:
    pattern = re.escape(name) + (r"[A-Z]" if name.endswith("__") else r"(?![A-Z0-9_])")
    assert re.search(pattern, GUIDE.read_text(encoding="utf-8")), (
        f"{name} is a setting that docs/operations.md does not name"
    )


def _section(title: str) -> str:
    parts = re.split(r"^## ", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    found = [p for p in parts if p.startswith(title)]
    assert len(found) == 1, title
    return found[0]


def _options() -> list[tuple[str, str]]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return [
        (command, spelling)
        for command, sub in group.commands.items()
        for param in sub.params
        if param.param_type_name == "option"
        for spelling in (*param.opts, *param.secondary_opts)
        if spelling != "--help"
    ]


def test_every_command_has_its_readme_section() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    assert set(group.commands) == set(SECTION)
    assert len(_options()) >= 40


@pytest.mark.parametrize(("command", "option"), _options())
def test_every_option_is_in_its_commands_readme_section(command: str, option: str) -> None:
    text = _section(SECTION[command])
    assert re.search(re.escape(option) + r"(?![\w-])", text), (
        f"fhirtis {command} {option} is not in the README's section '{SECTION[command]}'"
    )


_RANGE = re.compile(r"^integer (\d+)–(\d+)$")


def _spec_ranges() -> dict[str, tuple[int, int]]:
    text = SPEC.read_text(encoding="utf-8")
    start = text.index("## Settings")
    rows: dict[str, tuple[int, int]] = {}
    for line in text[start : text.index("\n## ", start + 1)].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and (m := _RANGE.match(cells[3])):
            rows[cells[1].strip("`")] = (int(m.group(1)), int(m.group(2)))
    return rows


def _bounds(name: str) -> tuple[Any, Any]:
    low = high = None
    for item in Policy.model_fields[name].metadata:
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
    return low, high


def test_the_ranges_in_the_specification_are_the_policys() -> None:
    ranges = _spec_ranges()
    assert len(ranges) >= 7, ranges  # juvenile age, window, lookback, gap, weight age, …
    for name, (low, high) in ranges.items():
        assert Policy.model_fields[name].annotation is int, name
        assert _bounds(name) == (low, high), (
            f"{name}: the specification says {low}–{high}, the policy {_bounds(name)}"
        )


def _range_text(field: Any) -> str | None:
    """A field's range as the guide writes it ("1 to 256", "more than 0, at most 600"), for a
    field with an upper bound; else None."""
    bounds = {k: getattr(m, k) for m in field.metadata for k in ("ge", "gt", "le") if hasattr(m, k)}
    if "le" not in bounds:
        return None
    low, high = (f"{bounds[k]:,.0f}" for k in ("gt" if "gt" in bounds else "ge", "le"))
    return f"more than {low}, at most {high}" if "gt" in bounds else f"{low} to {high}"


def _bounded(model: type[BaseModel] = Settings, prefix: str = "FHIRTIS_") -> list[tuple[str, str]]:
    """(the variable whose row in the guide states it, the range) for each setting with an
    upper bound; the fields of a list of objects (``trusted_clients``) under the list's
    variable."""
    out = []
    for name, field in model.model_fields.items():
        if model is Settings and name == "policy":
            continue
        variable = f"{prefix}{name.upper()}"
        nested = _model(field.annotation)
        args = typing.get_args(field.annotation)
        if nested is not None:
            out += _bounded(nested, f"{variable}__")
        elif typing.get_origin(field.annotation) is list and _model(args[0]) is not None:
            item = _model(args[0])
            assert item is not None
            out += [(variable, t) for f in item.model_fields.values() if (t := _range_text(f))]
        elif (text := _range_text(field)) is not None:
            out.append((variable, text))
    return out


def _guide_rows() -> list[str]:
    return [
        line for line in GUIDE.read_text(encoding="utf-8").splitlines() if line.startswith("| `")
    ]


def test_the_bounded_settings_are_found() -> None:
    found = dict(_bounded())
    assert found["FHIRTIS_SERVICE__PORT"] == "1 to 65,535"
    assert found["FHIRTIS_SERVICE__FHIR_WAIT_SECONDS"] == "more than 0, at most 600"
    assert found["FHIRTIS_CDS__TRUSTED_CLIENTS"] == "1 to 86,400"
    assert len(found) >= 9, found


@pytest.mark.parametrize(("variable", "text"), _bounded())
def test_the_guide_states_each_bounded_settings_range(variable: str, text: str) -> None:
    rows = [row for row in _guide_rows() if f"`{variable}`" in row.split(" | ")[0]]
    assert rows, f"{variable} has no row in docs/operations.md"
    assert any(text in row for row in rows), (
        f"docs/operations.md's row of {variable} does not give its range, {text}"
    )
