"""`fhirtis calc`: the calculator as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app

EXAMPLES = Path(__file__).parent.parent / "examples" / "calculator"
runner = CliRunner()


def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_example_a_json() -> None:
    code, out, _ = _run("calc", "--json", str(EXAMPLES / "adult-responder.json"))
    assert code == 0
    doc = json.loads(out)
    assert doc["tis"] == 62.5
    assert doc["category"] == "major"
    assert doc["partial"] is False
    assert doc["measures"]["pga"] == {
        "instrument": "vas",
        "baseline": 6,
        "followup": 3,
        "percent_improvement": 30,
        "score": 17.5,
        "max_score": 20,
    }


def test_partial_example_and_enzyme_list() -> None:
    code, out, _ = _run("calc", "--json", str(EXAMPLES / "partial-haq-missing.json"))
    assert code == 0
    doc = json.loads(out)
    assert doc["tis"] is None
    assert (doc["tis_lower"], doc["tis_upper"]) == (57.5, 67.5)
    assert doc["category"] is None
    assert doc["possible_categories"] == ["moderate", "major"]
    assert doc["measures"]["haq"]["missing"] == "missing-followup"
    assert doc["measures"]["enzyme"]["instrument"] == "ck"  # 15×ULN beats 1.5×ULN


def test_table_output_and_stdin() -> None:
    text = (EXAMPLES / "partial-haq-missing.json").read_text()
    code, out, _ = _run("calc", "-", stdin=text)
    assert code == 0
    assert "partial [57.5, 67.5]" in out
    assert "moderate or major" in out


def test_decimal_strings_and_float_trap() -> None:
    doc = {
        "baseline": {
            "pga": "2.2",
            "ptga": 5,
            "mmt8": 100,
            "haq": 1,
            "extramuscular": 2,
            "enzyme": {"name": "ck", "value": 500, "uln": 200},
        },
        "followup": {
            "pga": 0.7,
            "ptga": 5,
            "mmt8": 100,
            "haq": 1,
            "extramuscular": 2,
            "enzyme": {"name": "ck", "value": 500, "uln": 200},
        },
        "mmt8_max": 150,
    }
    code, out, _ = _run("calc", "--json", "-", stdin=json.dumps(doc))
    assert code == 0
    result = json.loads(out)
    assert result["measures"]["pga"]["percent_improvement"] == 15
    assert result["tis"] == 7.5


def test_ukat_enzyme_units() -> None:
    doc = {
        "baseline": {"enzyme": {"name": "ck", "value": 50, "uln": "3.3", "unit": "ukat/L"}},
        "followup": {"enzyme": {"name": "ck", "value": 20, "unit": "ukat/L"}},
    }
    code, out, _ = _run("calc", "--json", "-", stdin=json.dumps(doc))
    assert code == 0
    m = json.loads(out)["measures"]["enzyme"]
    assert (m["baseline"], m["followup"], m["percent_improvement"]) == (3000, 1200, 60)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"baseline": {"pga": 11}, "followup": {}}, "baseline.pga"),
        ({"baseline": {"bogus": 1}, "followup": {}}, "baseline.bogus"),
        (
            {"baseline": {"enzyme": {"name": "ck", "value": -5}}, "followup": {}},
            "baseline.enzyme.0.value",
        ),
        (
            {"baseline": {"mmt8": 70, "mmt8_max": 80}, "followup": {"mmt8": 70, "mmt8_max": 150}},
            "followup.mmt8_max",
        ),
        ({"baseline": {"mmt8": 70}, "followup": {}}, "baseline.mmt8"),
        ({"baseline": {}, "followup": {}, "population": "child"}, "population"),
        ({"baseline": {"mmt8": 70, "cmas": 30}, "followup": {}}, "baseline"),
        ({"followup": {}}, "baseline"),
        ({"baseline": {"pga": "abc"}, "followup": {}}, "baseline.pga"),
    ],
)
def test_bad_input_names_the_field_and_exits_2(doc: dict[str, object], field: str) -> None:
    code, out, err = _run("calc", "--json", "-", stdin=json.dumps(doc))
    assert code == 2
    assert out == ""
    assert f"  {field}" in err
    assert "Traceback" not in err


def test_not_json_and_missing_file() -> None:
    code, _, err = _run("calc", "-", stdin="{not json")
    assert code == 2 and "not valid JSON" in err
    code, _, err = _run("calc", "/nonexistent/file.json")
    assert code == 2 and "cannot read" in err
    code, _, err = _run("calc", "-", stdin='{"baseline": {"pga": NaN}, "followup": {}}')
    assert code == 2
