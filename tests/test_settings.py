"""Settings from the environment and a file (pydantic-settings)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from fhirtis.clinical.policy import DosingWeightBasis
from fhirtis.settings import load_settings


def test_environment_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "fhirtis.toml"
    file.write_text(
        'default_uln = {ck = "200"}\n'
        '[policy]\ncycle_gap_days = 10\ndosing_weight = "adjusted"\n'
        '[fhir]\nbase_url = "https://ehr.example.org/fhir"\npage_size = 50\n'
    )
    monkeypatch.setenv("FHIRTIS_POLICY__CYCLE_GAP_DAYS", "9")
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    settings = load_settings(file)
    assert settings.policy.cycle_gap_days == 9  # the environment wins over the file
    assert settings.policy.dosing_weight is DosingWeightBasis.ADJUSTED
    assert settings.default_uln == {"ck": Decimal(200)}
    assert settings.fhir is not None and settings.fhir.page_size == 50
    assert settings.policy.as_record()["dosing_weight"] == "adjusted"


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    monkeypatch.setenv("FHIRTIS_POLICY__CYCLE_GAP_DAYS", "0")
    with pytest.raises(ValueError, match="cycle_gap_days"):
        load_settings()
    monkeypatch.delenv("FHIRTIS_POLICY__CYCLE_GAP_DAYS")
    with pytest.raises(FileNotFoundError):
        load_settings(Path("/nonexistent/settings.toml"))
