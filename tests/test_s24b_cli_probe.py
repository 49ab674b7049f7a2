"""Findings of a command-line probe (`fhirtis calc`, `evaluate`, `run`, `serve`) as clinicians,
integrators and README readers use it: each mistake gives a clear message and exit 2, never a
traceback; patient data written by `evaluate --out` is readable by its owner only; numbers in the
readable reports are never cut short."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.cli import evaluate as evaluate_cli
from fhirtis.cli._common import report_console
from fhirtis.cli.render import print_run
from tests.fhir.patients import responder

runner = CliRunner()
EXAMPLES = Path(__file__).parent.parent / "examples"


def _bundle(tmp_path: Path, name: str = "p1.json") -> Path:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(responder()))  # type: ignore[arg-type]
    return path


def _no_traceback(result: Any) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


# --- evaluate --out -------------------------------------------------------------------------


def test_out_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    result = runner.invoke(app, ["evaluate", str(path), "--out", str(path)])
    _no_traceback(result)
    assert result.exit_code == 2
    assert "--out" in result.stderr


def test_out_that_cannot_be_created_is_a_usage_error(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    result = runner.invoke(app, ["evaluate", str(path), "--out", str(blocker / "out")])
    _no_traceback(result)
    assert result.exit_code == 2
    assert "--out" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_out_not_writable_is_a_usage_error(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = runner.invoke(app, ["evaluate", str(path), "--out", str(locked)])
    _no_traceback(result)
    assert result.exit_code == 2


def test_out_files_are_private(tmp_path: Path) -> None:
    """The transaction Bundles hold a patient's TIS, doses and thromboses: 0600, in folders
    fhirtis creates 0700 (as the registry's data at rest), whatever the umask."""
    path = _bundle(tmp_path)
    out = tmp_path / "a" / "b"
    old = os.umask(0o022)
    try:
        result = runner.invoke(app, ["evaluate", str(path), "--out", str(out)])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    written = out / "Patient-p1.transaction.json"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert json.loads(written.read_bytes())["type"] == "transaction"
    assert [p.name for p in out.iterdir()] == ["Patient-p1.transaction.json"]  # no temp file left


# --- settings whose concept map cannot be used ----------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        None,
        b"not json",
        b"[1, 2]",
        b'{"resourceType": "Patient"}',
        b'{"resourceType": "ConceptMap", "group": 5}',
        b'{"resourceType": "ConceptMap", "group": [{"source": "a", "target": "b", '
        b'"element": [{"target": [{"equivalence": "equal", "code": "x"}]}]}]}',
    ],
    ids=["missing", "not-json", "not-a-resource", "not-a-conceptmap", "group", "no-code"],
)
def test_concept_map_that_cannot_be_read_is_a_usage_error(
    tmp_path: Path, content: bytes | None
) -> None:
    path = _bundle(tmp_path)
    if content is not None:
        (tmp_path / "map.json").write_bytes(content)
    settings = tmp_path / "settings.toml"
    settings.write_text('concept_map = "map.json"\n')
    for command in (
        ["evaluate", str(path)],
        ["run", "--server", "http://127.0.0.1:9", "--patient", "p1"],
    ):
        result = runner.invoke(app, [*command, "--settings", str(settings)])
        _no_traceback(result)
        assert result.exit_code == 2, (command, result.output)
        assert "map.json" in result.stderr


# --- run: patient ids -------------------------------------------------------------------------


def test_run_refuses_what_is_no_fhir_id(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[list[str]] = []

    async def fake(_fhir: object, patients: list[str], *_args: object) -> list[object]:
        called.append(patients)
        return []

    monkeypatch.setattr(evaluate_cli, "_run_all", fake)
    for bad in ("../x", "p 1", "a" * 65, "p1?_format=xml"):
        result = runner.invoke(app, ["run", "--server", "http://127.0.0.1:9", "--patient", bad])
        _no_traceback(result)
        assert result.exit_code == 2, (bad, result.output)
        assert "--patient" in result.stderr
    assert called == []


def test_run_reads_each_patient_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Twice the same patient would be two writers racing on one patient's derived resources."""
    called: list[list[str]] = []

    async def fake(_fhir: object, patients: list[str], *_args: object) -> list[object]:
        called.append(patients)
        return []

    monkeypatch.setattr(evaluate_cli, "_run_all", fake)
    args = ["run", "--server", "http://127.0.0.1:9", "--json"]
    for p in ("p1", "Patient/p1", "p2", " p1 "):
        args += ["--patient", p]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert called == [["p1", "p2"]]


def test_server_url_error_is_one_plain_line() -> None:
    result = runner.invoke(app, ["run", "--server", "notaurl", "--patient", "p1"])
    assert result.exit_code == 2
    assert "http or https" in result.stderr
    assert "errors.pydantic.dev" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- evaluate: option messages -------------------------------------------------------------


def test_bad_baseline_date_names_the_option(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    result = runner.invoke(app, ["evaluate", str(path), "--baseline-date", "2024-13-01"])
    assert result.exit_code == 2
    assert "--baseline-date" in result.stderr and "2024-13-01" in result.stderr


def test_error_lines_are_not_wrapped(tmp_path: Path) -> None:
    """A message is one line on stderr whatever its length (logs, grep), not cut at 80 columns."""
    bad = tmp_path / "x.json"
    bad.write_bytes(b'{"baseline": {"pga": "' + b"9" * 30 + b'x"}, "followup": {}}')
    result = runner.invoke(app, ["calc", str(bad)], env={"COLUMNS": "40"})
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "fhirtis calc: invalid input"
    assert lines[1].startswith("  baseline.pga: ") and len(lines) == 2, lines


# --- the readable reports: numbers are never cut --------------------------------------------


def test_calc_table_numbers_whole_in_a_narrow_terminal() -> None:
    path = EXAMPLES / "calculator" / "partial-haq-missing.json"
    result = runner.invoke(app, ["calc", str(path)], env={"COLUMNS": "40"})
    assert result.exit_code == 0
    assert "…" not in result.stdout, result.stdout
    assert "17.5" in result.stdout and "1200" in result.stdout and "3000" in result.stdout


def test_evaluate_report_numbers_whole_in_a_narrow_terminal() -> None:
    path = EXAMPLES / "bundles" / "rate-above-max.json"
    result = runner.invoke(app, ["evaluate", str(path)], env={"COLUMNS": "40"})
    assert result.exit_code == 0
    # the first cycle's maximum rate, 4.7619 mg/kg/min, and every TIS and date in full
    assert "4.7619" in result.stdout
    assert "2024-02-12" in result.stdout
    for cell in ("…",):
        for line in result.stdout.splitlines():
            if line.startswith(("│", "┃")):
                assert cell not in line, result.stdout


# --- serve --port 0 ---------------------------------------------------------------------------


def test_serve_port_zero_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvicorn")
    import uvicorn  # noqa: PLC0415

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda _app, **kw: seen.update(kw))
    result = runner.invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert seen["port"] == 0  # `port or settings.service.port` made it 8080


# --- calc ---------------------------------------------------------------------------------


def _calc(doc: bytes) -> Any:
    return runner.invoke(app, ["calc", "--json", "-"], input=doc)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("value", "1" + "0" * 5000),  # beyond Python's 4300-digit int conversion: a traceback
        ("value", "1e400"),
        ("value", "1000000000"),
        ("uln", "1e-400"),
        ("uln", "1e12"),
    ],
)
def test_calc_enzyme_beyond_any_measurement_is_refused(field: str, value: str) -> None:
    enzyme = {"name": "ck", "value": "3000", "uln": "200"}
    text = json.dumps(
        {"baseline": {"enzyme": enzyme}, "followup": {"enzyme": dict(enzyme, value="1200")}}
    ).replace(f'"{field}": "{enzyme[field]}"', f'"{field}": {value}', 1)
    result = _calc(text.encode())
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert f"baseline.enzyme.0.{field}" in result.stderr


def test_calc_enzyme_at_the_magnitude_edge_is_read() -> None:
    """999,999,999 U/L is below 10^9 and read. Back to 200 U/L at follow-up, the relative change
    (docs/clinical-specification.md §2.2) is 999,999,799 / 999,999,999 = 99.99998 %, shown to
    four places as 100, and scores the enzyme's maximum 7.5 (> 40 %)."""
    doc = {
        "baseline": {"enzyme": {"name": "ck", "value": 999999999, "uln": 200}},
        "followup": {"enzyme": {"name": "ck", "value": 200, "uln": 200}},
    }
    result = _calc(json.dumps(doc).encode())
    assert result.exit_code == 0, result.output
    enzyme = json.loads(result.stdout)["measures"]["enzyme"]
    assert enzyme["baseline"] == 999999999
    assert (enzyme["percent_improvement"], enzyme["score"]) == (100, 7.5)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (b'{"baseline": {"pga": 6}, "baseline": {"pga": 2}, "followup": {"pga": 3}}', "baseline"),
        (b'{"baseline": {"pga": 6}, "followup": {"pga": 3, "pga": 1}}', "followup.pga"),
        (
            b'{"baseline": {"enzyme": {"name": "ck", "value": 3, "value": 4}}, "followup": {}}',
            "baseline.enzyme.value",
        ),
    ],
)
def test_calc_key_given_twice_is_refused(text: bytes, where: str) -> None:
    """JSON readers keep the last of two equal keys: a follow-up PGA pasted twice would be
    scored silently from the second. The calculator names it instead."""
    result = _calc(text)
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert where in result.stderr and "twice" in result.stderr


# --- evaluate: files that cannot be read or written ---------------------------------------


def test_unreadable_file_is_reported_and_the_rest_evaluated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that cannot be read (permission denied, an I/O error) is one input with an error,
    as a file that is not JSON is: reported with its name, the others evaluated, exit 1."""
    good = _bundle(tmp_path, "good.json")
    locked = _bundle(tmp_path, "locked.json")
    real = evaluate_cli.evaluate_bundle_file

    def reading(path: Path, *args: Any, **kwargs: Any) -> Any:
        if path.name == "locked.json":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(evaluate_cli, "evaluate_bundle_file", reading)
    result = runner.invoke(app, ["evaluate", "--json", str(good), str(locked)])
    _no_traceback(result)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [r["file"] for r in doc["results"]] == [str(good)]
    [failure] = doc["errors"]
    assert failure["file"] == str(locked)
    assert "Permission denied" in failure["outcome"]["issue"][0]["diagnostics"]


def test_out_write_failure_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _bundle(tmp_path)

    def full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(evaluate_cli, "write_private", full)
    result = runner.invoke(app, ["evaluate", str(path), "--out", str(tmp_path / "out")])
    _no_traceback(result)
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_folder_without_bundles_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["evaluate", str(empty)])
    assert result.exit_code == 2
    assert "no *.json file in" in result.stderr


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_port_out_of_range_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    """uvicorn's bind raised OverflowError with a traceback."""
    pytest.importorskip("uvicorn")
    import uvicorn  # noqa: PLC0415

    monkeypatch.setattr(uvicorn, "run", lambda *_a, **_kw: None)
    result = runner.invoke(app, ["serve", "--port", port])
    _no_traceback(result)
    assert result.exit_code == 2
    assert "--port" in result.stderr


def test_command_list_gives_one_line_each() -> None:
    """`fhirtis --help` lists each command with a one-line summary: the docstrings' hard line
    breaks came out in the list as broken half-lines ("…from baseline and follow-up values," /
    "like the IMACS web calculators.")."""
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    panel = result.stdout[result.stdout.index("Commands") :].splitlines()[1:-1]
    names = [line.split()[1] for line in panel if line.startswith("│ ") and line[2] != " "]
    assert {"calc", "evaluate", "run", "capabilities", "serve"} <= set(names)
    mine = {"calc", "evaluate", "run", "capabilities", "serve"}
    for i, line in enumerate(panel):
        if line.startswith("│ ") and line[2] != " " and line.split()[1] in mine:
            following = panel[i + 1] if i + 1 < len(panel) else ""
            assert not following.startswith("│  "), (line, following)


def test_run_summary_line_has_no_empty_counts() -> None:
    console = report_console()
    with console.capture() as captured:
        print_run(console, {"patient": "Patient/p1", "status": "failed", "plan": []})
    assert "Patient/p1: failed\n" in captured.get()


def test_two_bundles_of_one_patient_keep_both_outputs(tmp_path: Path) -> None:
    """Two inputs of one patient (an export in two parts, last month's and this month's) were
    written to the same Patient-p1.transaction.json: the first was overwritten silently while
    the report named the file for both."""
    first = _bundle(tmp_path, "january.json")
    second = tmp_path / "february.json"
    second.write_bytes(orjson.dumps(responder(dvt_after_cycle=2)))  # type: ignore[arg-type]
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", "--json", str(first), str(second), "--out", str(out)])
    assert result.exit_code == 0, result.output
    outputs = [r["output"] for r in json.loads(result.stdout)["results"]]
    assert len(set(outputs)) == 2, outputs
    assert outputs[0] == str(out / "Patient-p1.transaction.json")
    kinds = [
        sorted({e["resource"]["resourceType"] for e in json.loads(Path(o).read_bytes())["entry"]})
        for o in outputs
    ]
    assert "AdverseEvent" not in kinds[0] and "AdverseEvent" in kinds[1]  # each its own input's


def test_no_baseline_report_says_why(tmp_path: Path) -> None:
    """`--baseline-date` on a day without an assessment: the report said "no baseline
    assessment (see notes)" and then left out the note (notes of severity "missing" are not
    listed), so the user never saw that the date matched nothing."""
    path = _bundle(tmp_path)
    result = runner.invoke(app, ["evaluate", str(path), "--baseline-date", "2020-01-01"])
    assert result.exit_code == 0, result.output
    assert "no baseline assessment" in result.stdout
    assert "2020-01-01" in result.stdout, result.stdout


def test_file_names_are_shown_as_they_are(tmp_path: Path) -> None:
    """A file name is text, not rich markup: "[bold]p.json" lost its brackets in the heading."""
    bad = tmp_path / "[bold]p.json"
    bad.write_text("[1, 2]")
    result = runner.invoke(app, ["evaluate", str(bad)], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert "[bold]p.json: not evaluated" in result.stdout, result.stdout
