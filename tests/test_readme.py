"""The README's quick start stays true: its main command evaluates the bundled examples."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app

ROOT = Path(__file__).resolve().parent.parent


def quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line for line in block.strip().splitlines() if line.strip()]


def test_quick_start_has_two_commands() -> None:
    lines = quick_start()
    assert len(lines) == 2
    assert "pytest" in lines[1]


def test_main_command_runs_on_the_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    main = quick_start()[0].split("&&")[-1]
    args = shlex.split(main)
    assert args[:4] == ["uv", "run", "--frozen", "fhirtis"]
    fhirtis_args = args[4:]
    out = fhirtis_args.index("--out")
    fhirtis_args[out + 1] = str(tmp_path / "out")
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, fhirtis_args)
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(
        f"Patient-{pid}.transaction.json"
        for pid in (
            "resp",
            "juv",
            "mhaq",
            "det",
            "rate",
            "dvt",
            "mix",
            "0147afec-781c-5c2d-8f4d-24e46840b359",  # synthea-style.json (urn:uuid ids)
            "12745901",  # us-ehr-ivig-course.json
        )
    ), written
    assert "Patient/mix" in result.stdout and "major" in result.stdout
