"""``fhirtis cohort`` honours the FHIR client's rate and concurrency settings (session s39,
helper docs).

The README says "Server, auth, paging, retries and timeouts come from settings:
… ``__CONCURRENCY``", and ``FHIRTIS_FHIR__MAX_REQUESTS_PER_SECOND`` is the client's rate cap (a
rate a site agreed with its EHR). ``fhirtis cohort`` replaced both with its options' defaults
whether or not they were given: ``--concurrency`` 8 over any ``FHIRTIS_FHIR__CONCURRENCY``, and
no ``--max-rate`` (None) removed the configured rate cap, so a registry run sent requests as fast
as it could. An option given still wins over the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.io import FhirClientConfig
from fhirtis.registry import cohort as cohort_mod
from fhirtis.registry.options import CohortOptions

runner = CliRunner()


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The FHIR client settings and options ``fhirtis cohort`` hands the run (no run is made)."""
    got: dict[str, Any] = {}

    async def fake_run(
        settings: object, options: CohortOptions, fhir: FhirClientConfig | None, **_: object
    ) -> cohort_mod.CohortResult:
        got["fhir"], got["options"] = fhir, options
        return cohort_mod.CohortResult()

    monkeypatch.setattr(cohort_mod, "run_cohort", fake_run)
    for name in ("FHIRTIS_FHIR__CONCURRENCY", "FHIRTIS_FHIR__MAX_REQUESTS_PER_SECOND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    return got


def _cohort(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> None:
    args = ["cohort", "--patients", "p1", "--server", "http://127.0.0.1:9/fhir"]
    args += ["--ledger", str(tmp_path / "l.sqlite"), "--work-dir", str(tmp_path / "w")]
    result = runner.invoke(app, [*args, "--no-progress", *extra], env=env)
    assert result.exit_code == 0, result.output


def test_the_settings_rate_cap_and_concurrency_apply(seen: dict[str, Any], tmp_path: Path) -> None:
    env = {"FHIRTIS_FHIR__MAX_REQUESTS_PER_SECOND": "5", "FHIRTIS_FHIR__CONCURRENCY": "3"}
    _cohort(tmp_path, env=env)
    assert seen["fhir"].max_requests_per_second == 5
    assert seen["fhir"].concurrency == 3
    assert seen["options"].concurrency == 3


def test_the_options_win_over_the_settings(seen: dict[str, Any], tmp_path: Path) -> None:
    env = {"FHIRTIS_FHIR__MAX_REQUESTS_PER_SECOND": "5", "FHIRTIS_FHIR__CONCURRENCY": "3"}
    _cohort(tmp_path, "--max-rate", "2.5", "--concurrency", "12", env=env)
    assert seen["fhir"].max_requests_per_second == 2.5
    assert seen["fhir"].concurrency == 12
    assert seen["options"].concurrency == 12


def test_without_either_the_defaults_are_the_settings_defaults(
    seen: dict[str, Any], tmp_path: Path
) -> None:
    _cohort(tmp_path)
    assert seen["fhir"].max_requests_per_second is None
    assert seen["fhir"].concurrency == 8 == seen["options"].concurrency


@pytest.mark.parametrize("rate", ["0", "-1", "nan"])
def test_a_rate_that_is_not_positive_is_a_usage_error(
    seen: dict[str, Any], tmp_path: Path, rate: str
) -> None:
    """``--max-rate 0`` ended the run with a ZeroDivisionError traceback at its first request
    (``-1`` paced nothing): the option passed by the setting's own check (more than 0)."""
    args = ["cohort", "--patients", "p1", "--server", "http://127.0.0.1:9/fhir"]
    args += ["--ledger", str(tmp_path / "l.sqlite"), "--work-dir", str(tmp_path / "w")]
    result = runner.invoke(app, [*args, "--no-progress", f"--max-rate={rate}"])
    assert result.exit_code == 2, result.output
    assert "--max-rate" in result.output and "Traceback" not in result.output
    assert "fhir" not in seen  # refused before any run
