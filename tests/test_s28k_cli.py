"""Findings of a command-line sweep (session s28, helper k) as an integrator, a clinician and a
registry analyst use the commands: a mistake in the settings or the options gives one line
naming what is wrong and exit 2, never a traceback nor a run on other settings than those
named; `capabilities --json` lists every search fhirtis sends, as the text output does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_httpx import HTTPXMock
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.fhir.needs import CONDITIONS_NOT_ACTIVE
from tests.io._s25_srv_fake import resource_entry, statement
from tests.io._support import BASE

runner = CliRunner()
EXAMPLES = Path(__file__).parent.parent / "examples"
BUNDLE = EXAMPLES / "bundles" / "adult-responder.json"


def _no_traceback(result: Any) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


# --- FHIRTIS_SETTINGS_FILE and settings files that cannot be read -----------------------------


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_settings_file_named_by_the_environment_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """README: every setting can be put in a file named by `--settings` or
    `FHIRTIS_SETTINGS_FILE`. A `--settings` file that is not there is a usage error; the same
    file named by the environment (a typo in a systemd unit, a volume not mounted) was ignored
    and the run went on with the defaults: no concept map, so a site's local codes are not read
    and every TIS is partial, without a word."""
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    named = tmp_path / "settings.toml"
    if kind == "folder":
        named.mkdir()
    result = runner.invoke(
        app, ["evaluate", str(BUNDLE), "--json"], env={"FHIRTIS_SETTINGS_FILE": str(named)}
    )
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert "FHIRTIS_SETTINGS_FILE" in result.stderr and str(named) in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("settings.toml", "[policy\ncycle_gap_days = 10\n"),
        ("settings.json", '{"policy": {"cycle_gap_days": 10'),
        ("settings.toml", b"concept_map = '\xff'\n"),
    ],
    ids=["toml", "json", "not-utf8"],
)
@pytest.mark.parametrize("how", ["option", "environment"])
def test_settings_file_that_cannot_be_parsed_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, content: str | bytes, how: str
) -> None:
    """A settings file with a syntax error said only "Expected ']' at the end of a table
    declaration (at line 1, column 8)": which file, with `--settings` and
    `FHIRTIS_SETTINGS_FILE` both possible, was left to guess."""
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    for command in (["evaluate", str(BUNDLE)], ["capabilities", "--server", BASE]):
        if how == "option":
            result = runner.invoke(app, [*command, "--settings", str(path)])
        else:
            result = runner.invoke(app, command, env={"FHIRTIS_SETTINGS_FILE": str(path)})
        _no_traceback(result)
        assert result.exit_code == 2, (command, result.output)
        assert f"settings file {path}" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- report --week ----------------------------------------------------------------------------


def test_report_negative_week_is_a_usage_error(tmp_path: Path) -> None:
    """`fhirtis report S --week -4` printed a traceback (ValueError: week must be ≥ 0)."""
    pytest.importorskip("distributed")
    summaries = tmp_path / "summaries.json"
    evaluated = runner.invoke(app, ["evaluate", str(BUNDLE), "--json"])
    summaries.write_text(evaluated.stdout)
    result = runner.invoke(app, ["report", str(summaries), "--week", "-4"])
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert "--week" in result.output
    assert runner.invoke(app, ["report", str(summaries), "--week", "0"]).exit_code == 0


# --- cohort: a concept map that cannot be used ------------------------------------------------


def test_cohort_concept_map_that_cannot_be_read_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: a `concept_map` that cannot be used exits 2 with one line (as `evaluate` and
    `run` do). `cohort` made its ledger, started the run, stopped at the first patient with
    exit 1 and advised "run the same command again to resume", which cannot help."""
    pytest.importorskip("distributed")
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    ndjson = tmp_path / "export"
    ndjson.mkdir()
    (ndjson / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\n')
    ledger = tmp_path / "ledger.sqlite"
    result = runner.invoke(
        app,
        [
            "cohort",
            "--ndjson",
            str(ndjson),
            "--ledger",
            str(ledger),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        env={"FHIRTIS_CONCEPT_MAP": str(tmp_path / "map.json")},
    )
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert "map.json" in result.stderr
    assert "again" not in result.stderr
    assert not ledger.exists()


# --- capabilities --json: the second Condition search -----------------------------------------


def _capabilities_json(httpx_mock: HTTPXMock, caps: dict[str, Any]) -> dict[str, Any]:
    httpx_mock.add_response(url=f"{BASE}/metadata", json=caps, is_reusable=True)
    result = runner.invoke(app, ["capabilities", "--server", BASE, "--json"])
    assert result.exit_code == 0, result.output
    import json  # noqa: PLC0415

    record: dict[str, Any] = json.loads(result.stdout)
    text = runner.invoke(app, ["capabilities", "--server", BASE])
    record["_text"] = text.stdout
    return record


def test_capabilities_json_lists_the_search_for_conditions_not_active(
    httpx_mock: HTTPXMock,
) -> None:
    """Where the server searches Condition by clinical-status, fhirtis sends a second search for
    the Conditions that are not active (Epic returns only active ones without it; a resolved DVT
    is a history of thrombosis). The text output says so; the JSON, which integrators script
    against, did not list that search at all."""
    caps = statement(
        {"Condition": resource_entry("Condition", ("subject", "patient", "clinical-status"))}
    )
    record = _capabilities_json(httpx_mock, caps)
    condition = record["read"]["searches"]["Condition"]
    assert condition["also"] == CONDITIONS_NOT_ACTIVE.query
    assert f"also {CONDITIONS_NOT_ACTIVE.query}" in record["_text"]
    # every searched type has the same keys; no second search for the others
    for rtype, search in record["read"]["searches"].items():
        if search is not None:
            assert set(search) == {"patient", "include", "count", "also"}, rtype
            if rtype != "Condition":
                assert search["also"] is None, rtype


def test_capabilities_json_no_second_condition_search_where_not_offered(
    httpx_mock: HTTPXMock,
) -> None:
    """A statement that lists Condition's parameters without clinical-status: one search."""
    record = _capabilities_json(httpx_mock, statement())
    assert record["read"]["searches"]["Condition"]["also"] is None
    assert "also clinical-status" not in record["_text"]


# --- serve: validate mode without what it needs -----------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"FHIRTIS_SERVICE__AUTH_MODE": "validate"},
        {
            "FHIRTIS_SERVICE__AUTH_MODE": "validate",
            "FHIRTIS_SERVICE__ISSUER": "https://auth.example.org",
            "FHIRTIS_SERVICE__AUDIENCE": "https://fhirtis.example.org",
            "FHIRTIS_SERVICE__JWKS_PATH": "/nonexistent/jwks.json",
        },
        {
            "FHIRTIS_SERVICE__AUTH_MODE": "validate",
            "FHIRTIS_SERVICE__ISSUER": "https://auth.example.org",
            "FHIRTIS_SERVICE__AUDIENCE": "https://fhirtis.example.org",
            "FHIRTIS_SERVICE__JWKS": "not a JWKS",
        },
    ],
    ids=["no-keys", "keys-file-missing", "keys-not-json"],
)
def test_serve_validate_mode_without_its_keys_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    """docs/operations.md: an invalid setting stops the service at start with a message naming
    the setting. `FHIRTIS_SERVICE__AUTH_MODE=validate` without the keys, issuer or audience
    started uvicorn, whose start-up then failed with a Python traceback inside a JSON log line
    and exit 3."""
    pytest.importorskip("uvicorn")
    import uvicorn  # noqa: PLC0415

    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: started.append(app_))
    result = runner.invoke(app, ["serve"], env=env)
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert started == []
    assert result.stderr.startswith("fhirtis serve: ")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- --server with the other FHIR settings in the environment or a settings file ----------------


def test_server_option_keeps_the_other_fhir_settings(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """README: server, auth, paging … come from settings (`FHIRTIS_FHIR__AUTH_MODE`,
    `FHIRTIS_FHIR__BEARER_TOKEN`, `FHIRTIS_FHIR__PAGE_SIZE`, …); `--server` names the server
    (else `FHIRTIS_FHIR__BASE_URL`). With any `FHIRTIS_FHIR__*` set but not the base URL,
    `--server` was refused: "fhir.base_url: Field required", exit 2."""
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    env = {"FHIRTIS_FHIR__AUTH_MODE": "bearer", "FHIRTIS_FHIR__BEARER_TOKEN": "t0ken"}
    httpx_mock.add_response(url=f"{BASE}/metadata", json=statement(), is_reusable=True)
    result = runner.invoke(app, ["capabilities", "--server", BASE, "--json"], env=env)
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert all(r.headers["Authorization"] == "Bearer t0ken" for r in httpx_mock.get_requests())

    from fhirtis.cli import evaluate as evaluate_cli  # noqa: PLC0415

    seen: list[Any] = []

    async def fake(fhir: Any, patients: list[str], *_args: object) -> list[object]:
        seen.append(fhir)
        return []

    monkeypatch.setattr(evaluate_cli, "_run_all", fake)
    settings = tmp_path / "settings.toml"
    settings.write_text("[fhir]\npage_size = 50\n")
    for extra, envs in (
        ([], {**env, "FHIRTIS_FHIR__PAGE_SIZE": "50"}),
        (["--settings", str(settings)], env),
    ):
        result = runner.invoke(app, ["run", "--server", BASE, "--patient", "p1", *extra], env=envs)
        _no_traceback(result)
        assert result.exit_code == 0, result.output
        fhir = seen.pop()
        assert (fhir.base_url, fhir.page_size, fhir.auth_mode) == (BASE, 50, "bearer")


def test_cohort_server_url_error_is_one_plain_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run --server notaurl` says so in one line; `cohort --server notaurl` printed pydantic's
    dump (the class name, the input echoed, a documentation link) over four lines."""
    pytest.importorskip("distributed")
    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    result = runner.invoke(app, ["cohort", "--patients", "p1", "--server", "notaurl"])
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert "http or https" in result.stderr
    assert "errors.pydantic.dev" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_serve_validate_mode_with_its_keys_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The check refuses only what the service could not start with."""
    pytest.importorskip("uvicorn")
    import json  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415
    from joserfc.jwk import ECKey  # noqa: PLC0415

    monkeypatch.delenv("FHIRTIS_SETTINGS_FILE", raising=False)
    key = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: started.append(app_))
    env = {
        "FHIRTIS_SERVICE__AUTH_MODE": "validate",
        "FHIRTIS_SERVICE__ISSUER": "https://auth.example.org",
        "FHIRTIS_SERVICE__AUDIENCE": "https://fhirtis.example.org",
        "FHIRTIS_SERVICE__JWKS_PATH": str(keys),
    }
    result = runner.invoke(app, ["serve"], env=env)
    assert result.exit_code == 0, result.output
    assert len(started) == 1
