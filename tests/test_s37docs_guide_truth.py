"""What an integrator reads about settings and exit codes is what fhirtis does (session s37,
helper docs).

- ``docs/operations.md``'s settings table named no setting of the terminology server
  (``FHIRTIS_TERMINOLOGY__*``): a site could not learn from any guide how to configure the FHIR
  terminology server that the clinical specification (§6) and the ValueSets' unclassified codes
  refer to, nor that its ``timeout_seconds`` bounds the whole answer (session s36). Each section
  of the settings that talks to a server is now in the table.
- The defaults the table gives are the settings model's (checked for every row whose default
  cell is numbers, one per variable named).
- ``fhirtis run --help`` and ``fhirtis cohort --help`` listed exit statuses 0, 1 and 2 only,
  though SIGTERM (``docker stop``, a Kubernetes pod stopped) ends them with 143 since s36, as the
  README and the operations guide say.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "operations.md"
NAME = re.compile(r"`(FHIRTIS_[A-Z0-9_]*[A-Z0-9])`")

runner = CliRunner()


def _rows() -> list[tuple[list[str], str]]:
    """(variables named, default cell) per row of the guide's settings table."""
    rows = []
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `FHIRTIS_"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((NAME.findall(cells[0]), cells[1]))
    return rows


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _default(name: str) -> Any:
    """The settings model's default of ``FHIRTIS_A__B``."""
    section, field = name.removeprefix("FHIRTIS_").lower().split("__")
    model = _model_of(Settings.model_fields[section].annotation)
    assert model is not None, name
    return model.model_fields[field].default


def test_every_server_section_of_the_settings_is_in_the_guide_table() -> None:
    named = {n for names, _ in _rows() for n in names}
    sections = {
        section
        for section, field in Settings.model_fields.items()
        if section != "policy" and _model_of(field.annotation) is not None
    }
    assert sections >= {"fhir", "terminology", "service", "cds"}
    missing = sorted(
        s for s in sections if not any(n.startswith(f"FHIRTIS_{s.upper()}__") for n in named)
    )
    assert missing == [], f"docs/operations.md's settings table names no setting of {missing}"


def test_the_guide_names_the_terminology_server_and_its_whole_answer_timeout() -> None:
    named = {n: default for names, default in _rows() for n in names}
    for name in ("FHIRTIS_TERMINOLOGY__BASE_URL", "FHIRTIS_TERMINOLOGY__TIMEOUT_SECONDS"):
        assert name in named, name


def test_numeric_defaults_in_the_guide_are_the_model_defaults() -> None:
    checked = 0
    for names, cell in _rows():
        items = [i.strip().strip("`") for i in cell.split(",")]
        if len(items) != len(names):
            continue
        for name, item in zip(names, items, strict=True):
            try:
                documented = Decimal(item)
            except InvalidOperation:
                continue
            assert Decimal(str(_default(name))) == documented, (
                f"{name}: the guide says {item}, the default is {_default(name)}"
            )
            checked += 1
    assert checked >= 8, checked  # connect, read, body, evaluation, CDS, wait; terminology


def _flat(text: str) -> str:
    return re.sub(r"[\s│]+", " ", text)


@pytest.mark.parametrize("command", ["run", "cohort"])
def test_help_says_sigterm_exits_143(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "143 when stopped by SIGTERM" in _flat(result.output), result.output
