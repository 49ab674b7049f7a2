"""Settings from the environment and a file (pydantic-settings)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from fhirtis.clinical.policy import DosingWeightBasis
from fhirtis.settings import SettingsError, load_settings


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


def test_relative_paths_in_a_settings_file_are_relative_to_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "keys").mkdir()
    file = site / "fhirtis.toml"
    file.write_text(
        'concept_map = "local-codes.json"\n'
        '[service]\njwks_path = "keys/jwks.json"\n'
        '[fhir]\nbase_url = "https://ehr.example.org/fhir"\nauth_mode = "smart-backend"\n'
        'client_id = "fhirtis"\nkid = "k1"\nscope = "system/*.rs"\n'
        'private_key_path = "keys/private.pem"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    settings = load_settings(Path("../site/fhirtis.toml"))
    assert settings.concept_map == site.resolve() / "local-codes.json"
    assert settings.service.jwks_path == site.resolve() / "keys" / "jwks.json"
    assert settings.fhir is not None
    assert settings.fhir.private_key_path == site.resolve() / "keys" / "private.pem"
    # a relative path from the environment stays relative to the working directory
    monkeypatch.setenv("FHIRTIS_CONCEPT_MAP", "from-env.json")
    assert load_settings(Path("../site/fhirtis.toml")).concept_map == Path("from-env.json")


def test_readme_main_command_works_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from fhirtis.cli import app  # noqa: PLC0415

    examples = Path(__file__).resolve().parent.parent / "examples"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(examples / "bundles" / "mixed-units-local-codes.json"),
            "--settings",
            str(examples / "settings.toml"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert '"mmt8"' in result.output


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        # the comma form a result's policy block reports, and the JSON array form
        ("ENZYME_TIE_ORDER", "ldh,ck,aldolase,ast,alt", ("ldh", "ck", "aldolase", "ast", "alt")),
        (
            "ENZYME_TIE_ORDER",
            '["ALT","ast","ldh","aldolase","ck"]',
            ("alt", "ast", "ldh", "aldolase", "ck"),
        ),
        ("WEIGHT_PLAUSIBLE_KG", "1,300", (Decimal(1), Decimal(300))),
        ("HEIGHT_PLAUSIBLE_CM", "[30, 250]", (Decimal(30), Decimal(250))),
    ],
)
def test_list_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str, expected: tuple[object, ...]
) -> None:
    monkeypatch.setenv(f"FHIRTIS_POLICY__{name}", text)
    assert getattr(load_settings().policy, name.lower()) == expected


def test_a_list_setting_from_the_environment_is_still_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FHIRTIS_POLICY__ENZYME_TIE_ORDER", "ldh,ck,cpk,ast,alt")
    with pytest.raises(SettingsError, match="enzyme_tie_order"):
        load_settings()


def test_max_bundle_entries_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``FHIRTIS_FHIR__MAX_BUNDLE_ENTRIES``: the most entries of a write Bundle (FHIR Works on
    AWS takes 25 a transaction); unset, no limit; 0 is refused."""
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    monkeypatch.setenv("FHIRTIS_FHIR__BASE_URL", "https://ehr.example.org/fhir")
    settings = load_settings()
    assert settings.fhir is not None and settings.fhir.max_bundle_entries is None
    monkeypatch.setenv("FHIRTIS_FHIR__MAX_BUNDLE_ENTRIES", "25")
    settings = load_settings()
    assert settings.fhir is not None and settings.fhir.max_bundle_entries == 25
    monkeypatch.setenv("FHIRTIS_FHIR__MAX_BUNDLE_ENTRIES", "0")
    with pytest.raises(ValueError, match="max_bundle_entries"):
        load_settings()
