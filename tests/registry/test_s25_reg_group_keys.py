"""A Group run's ``_since`` export lists only what changed on the server. It may stand in for a
whole export only when nothing else a patient's result depends on changed either: the clinical
policy, the fhirtis algorithm version, and whether the last run wrote (issue 13, item 1: a
patient is skipped only when input, server, policy and version are all unchanged)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.registry import run_key as run_key_module
from tests.fhir_test_server import FhirTestServer
from tests.registry.cohort_cli import group_args
from tests.registry.test_group_export import _load_group

runner = CliRunner()


def test_a_policy_change_re_evaluates_every_member_of_the_group(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    group, _ = _load_group(fhir_base)
    first = runner.invoke(app, group_args(group, fhir_base, tmp_path, "--write"))
    assert first.stdout.startswith("3 patients: written 3;"), first.output
    settings = tmp_path / "policy.toml"
    settings.write_text("[policy]\nmax_rate_mg_kg_min = 3\n")
    changed = runner.invoke(
        app, group_args(group, fhir_base, tmp_path, "--write", "--settings", str(settings))
    )
    assert changed.exit_code == 0, changed.output
    # not "0 patients": a _since export would hold none of them, and their results would stay
    # those of the old policy
    assert changed.stdout.startswith("3 patients:"), changed.stdout
    assert "skipped (unchanged since the ledger) 0" in changed.stdout
    fhir_server.reset_stats()
    plain = runner.invoke(
        app, group_args(group, fhir_base, tmp_path, "--write", "--settings", str(settings))
    )
    assert plain.exit_code == 0, plain.output
    # _since again: nothing changed, every member skipped
    assert plain.stdout.startswith("3 patients: none; skipped (unchanged since the ledger) 3;"), (
        plain.stdout
    )
    assert fhir_server.stats()["committed_writes"] == 0


def test_a_version_change_re_evaluates_every_member_of_the_group(
    fhir_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group, _ = _load_group(fhir_base)
    first = runner.invoke(app, group_args(group, fhir_base, tmp_path, "--write"))
    assert first.stdout.startswith("3 patients: written 3;"), first.output
    monkeypatch.setattr(run_key_module, "__version__", "99.0")
    upgraded = runner.invoke(app, group_args(group, fhir_base, tmp_path, "--write"))
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.stdout.startswith("3 patients:"), upgraded.stdout
    assert "skipped (unchanged since the ledger) 0" in upgraded.stdout


def test_a_write_run_after_a_dry_run_writes_every_member(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    group, _ = _load_group(fhir_base)
    dry = runner.invoke(app, group_args(group, fhir_base, tmp_path, "--dry-run"))
    assert dry.stdout.startswith("3 patients: evaluated 3;"), dry.output
    fhir_server.reset_stats()
    written = runner.invoke(app, group_args(group, fhir_base, tmp_path, "--write"))
    assert written.exit_code == 0, written.output
    assert written.stdout.startswith("3 patients: written 3;"), written.stdout
    assert fhir_server.stats()["committed_writes"] > 0
