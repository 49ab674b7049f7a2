"""A setting's environment variable with one underscore where two are needed (session s35,
helper ops): ``FHIRTIS_POLICY_MAX_RATE_WITH_RISK_MG_KG_MIN=2`` in a systemd unit or a compose
file, a site lowering the label's maximum rate with risk factors (docs/clinical-specification.md
§5.2: "a site may configure lower ones").

pydantic-settings reads only the names it knows and passes over the others without a word: the
run went on at 3.3 mg/kg/min, and infusions between 2 and 3.3 raised no finding. A misspelt name
inside a section (``FHIRTIS_POLICY__CYCLE_GAP_DAY``) and any misspelt key of a settings file were
already refused (``extra="forbid"``); a ``FHIRTIS_`` name that names no section now is too,
with one line naming it (never its value), exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.settings import load_settings

runner = CliRunner()
BUNDLE = Path(__file__).parent.parent / "examples" / "bundles" / "rate-above-max.json"


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        (
            "FHIRTIS_POLICY_MAX_RATE_WITH_RISK_MG_KG_MIN",
            "FHIRTIS_POLICY__MAX_RATE_WITH_RISK_MG_KG_MIN",
        ),
        ("FHIRTIS_FHIR_BASE_URL", "FHIRTIS_FHIR__BASE_URL"),
        ("fhirtis_fhir_auth_mode", "FHIRTIS_FHIR__AUTH_MODE"),
        ("FHIRTIS_DEFAULT_ULN_CK", "FHIRTIS_DEFAULT_ULN__CK"),
        ("FHIRTIS_POLCY__CYCLE_GAP_DAYS", None),
    ],
)
def test_a_name_of_no_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, suggestion: str | None
) -> None:
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    monkeypatch.setenv(name, "2")
    with pytest.raises(ValueError, match=name) as raised:
        load_settings()
    if suggestion is not None:
        assert suggestion in str(raised.value)
    assert "=2" not in str(raised.value)


def test_the_names_that_are_settings_or_known_switches_pass() -> None:
    from fhirtis.settings import unknown_environment  # noqa: PLC0415 - added with the check

    environ = {
        "FHIRTIS_POLICY__CYCLE_GAP_DAYS": "10",
        "FHIRTIS_CONCEPT_MAP": "map.json",
        "FHIRTIS_DEFAULT_ULN__CK": "200",
        "FHIRTIS_FHIR__BASE_URL": "https://ehr.example.org/fhir",
        "FHIRTIS_SERVICE__AUTH_MODE": "validate",
        "FHIRTIS_CDS__TRUSTED_CLIENTS": "[]",
        "FHIRTIS_TERMINOLOGY__BASE_URL": "https://tx.example.org/fhir",
        "FHIRTIS_SETTINGS_FILE": "site.toml",
        "FHIRTIS_APP_CLIENT_ID": "fhirtis-app",
        "FHIRTIS_VALIDATE": "1",
        "PATH": "/usr/bin",
    }
    assert unknown_environment(environ) == []


def test_evaluate_does_not_run_on_the_label_limit_in_place_of_the_sites(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    result = runner.invoke(
        app,
        ["evaluate", str(BUNDLE), "--json"],
        env={"FHIRTIS_POLICY_MAX_RATE_WITH_RISK_MG_KG_MIN": "2"},
    )
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "FHIRTIS_POLICY__MAX_RATE_WITH_RISK_MG_KG_MIN" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
