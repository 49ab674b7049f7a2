"""A command whose optional extra is not installed says which extra to install."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name in modules else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize(
    ("argv", "missing", "extra"),
    [
        (["serve"], "uvicorn", "serve"),
        (["cohort", "--patients", "p1"], "distributed", "registry"),
        (["report", "summaries.ndjson"], "matplotlib", "registry"),
    ],
)
def test_missing_extra_is_named(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], missing: str, extra: str
) -> None:
    _without(monkeypatch, missing)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2
    assert f"[{extra}]" in result.output
    assert f"pip install 'fhirtis[{extra}]'" in result.output
    assert missing in result.output


def test_core_commands_need_no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "fastapi", "uvicorn", "distributed", "matplotlib", "prometheus_client")
    examples = Path(__file__).resolve().parent.parent / "examples"
    result = CliRunner().invoke(
        app, ["evaluate", str(examples / "bundles" / "adult-responder.json"), "--json"]
    )
    assert result.exit_code == 0, result.output
