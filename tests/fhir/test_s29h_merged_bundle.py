"""A patient Bundle whose Patient is a merged record (``link`` type ``replaced-by``).

FHIR R4 patient.html, Patient.link.type ``replaced-by``: "The patient resource containing this
link must no longer be used. The link points forward to another patient resource that must be
used in lieu of the patient resource that contains this link." Such a Bundle is what a
``Patient/[id]/$everything`` or a saved read of a combined patient gives (Oracle Health's
combined Patient: cerner/fhir.cerner.com, "Patient Combine Example", copied in
tests/io/test_s29e_merged_patient.py; HAPI ``Patient/$merge`` leaves the source Patient so).

``fhirtis evaluate`` evaluated it as the patient (exit 0, "no thrombosis risk factor", a
transaction with ``--out`` written for the retired record), while ``fhirtis run``,
``$myositis-evaluate`` and the CDS service refuse the same record. It is now an input error
naming the record that replaced it, as a Bundle of two patients is.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.outcome import InputError
from tests.fhir.patients import responder
from tests.io.test_s29e_merged_patient import COMBINED

Json = dict[str, Any]
runner = CliRunner()


def _merged(doc: Json, link_type: str = "replaced-by") -> Json:
    """``doc`` (one patient's Bundle) with its Patient linked as ``link_type`` to 12724067."""
    out = copy.deepcopy(doc)
    for entry in out["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["link"] = copy.deepcopy(COMBINED["link"])
            entry["resource"]["link"][0]["type"] = link_type
    return out


def test_a_merged_patient_bundle_is_an_input_error() -> None:
    with pytest.raises(InputError) as caught:
        read_patient_bundle(orjson.dumps(_merged(responder())), "p1.json")
    issue = caught.value.issues[-1]
    assert issue.severity == "fatal" and issue.code == "business-rule", issue
    assert "Patient/12724067" in issue.diagnostics and "replaced-by" in issue.diagnostics


@pytest.mark.parametrize("link_type", ["replaces", "refer", "seealso"])
def test_other_links_leave_the_bundle_evaluated(link_type: str) -> None:
    read = read_patient_bundle(orjson.dumps(_merged(responder(), link_type)), "p1.json")
    assert read.patient_ref == "Patient/p1"


def test_evaluate_names_the_successor_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "p1.json"
    path.write_bytes(orjson.dumps(_merged(responder())))
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", "--json", str(path), "--out", str(out)])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["results"] == []
    assert "Patient/12724067" in doc["errors"][0]["outcome"]["issue"][-1]["diagnostics"]
    assert not list(out.glob("*.json"))  # nothing written for the retired record
