"""``fhirtis report`` over the NDJSON of ``fhirtis cohort --summaries`` read the whole file as
text, split it into lines and parsed every record before the first was turned into what the
report keeps: the file's text, its lines and every record (about 36 KiB a patient measured,
3.6 GB for a 100,000-patient registry) at once. The records are now read one line at a time
and each is reduced to the report's own patient (:func:`build_report`) before the next is
parsed. Lines are NDJSON lines (``\\n``): a record whose text holds a U+2028 LINE SEPARATOR,
which the summaries keep as is (``ensure_ascii=False``), is one record, not two broken ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.registry.report import build_report, iter_summaries, load_summaries
from tests.test_cohort_report import ten_patients

runner = CliRunner()


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def test_records_are_read_one_at_a_time(tmp_path: Path) -> None:
    path = _write(tmp_path / "summaries.ndjson", ten_patients())
    with path.open("a") as f:
        f.write("{not json\n")
    records = iter_summaries(path)
    first = next(records)  # the broken last line is not read yet
    assert first["patient"] == "Patient/p01"
    with pytest.raises(ValueError, match=r"summaries.ndjson:11: not JSON"):
        list(records)


def test_report_keeps_no_record_once_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each record is parsed only after the one before it was reduced to the report's patient:
    never two raw records at once."""
    from fhirtis.registry.report import model  # noqa: PLC0415

    path = _write(tmp_path / "summaries.ndjson", ten_patients())
    events: list[str] = []
    loads, patient = json.loads, model._patient

    def tracked_loads(text: Any, **kwargs: Any) -> Any:
        value = loads(text, **kwargs)
        if isinstance(value, dict) and "patient" in value:
            events.append("read")
        return value

    def tracked_patient(record: Any, position: int) -> Any:
        events.append("kept")
        return patient(record, position)

    monkeypatch.setattr(model.json, "loads", tracked_loads)
    monkeypatch.setattr(model, "_patient", tracked_patient)
    result = runner.invoke(app, ["report", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["patients"] == 10
    assert events == ["read", "kept"] * 10


def test_a_line_separator_inside_a_record_is_no_line_end(tmp_path: Path) -> None:
    records = ten_patients()
    note = {"severity": "information", "code": "informational", "message": "a\u2028b"}
    records[3]["notes"] = [note]
    path = _write(tmp_path / "summaries.ndjson", records)
    loaded = load_summaries(path)
    assert len(loaded) == 10 and loaded[3]["notes"] == [note]
    assert build_report(loaded).patients == 10


def test_every_form_reads_as_before(tmp_path: Path) -> None:
    """One record, the `evaluate --json` object, a JSON list, indented JSON, blank lines."""
    records = ten_patients()
    forms = {
        "one.ndjson": json.dumps(records[0]) + "\n\n",
        "evaluate.json": json.dumps({"results": records, "errors": []}) + "\n",
        "list.json": json.dumps(records),
        "indented.json": json.dumps({"results": records}, indent=2),
        "blank.ndjson": "\n" + "\n\n".join(json.dumps(r) for r in records) + "\n\n",
        "crlf.ndjson": "\r\n".join(json.dumps(r) for r in records),
    }
    counts = {}
    for name, text in forms.items():
        (tmp_path / name).write_bytes(text.encode())
        counts[name] = len(load_summaries(tmp_path / name))
    assert counts == {name: 1 if name == "one.ndjson" else 10 for name in forms}
    (tmp_path / "empty.ndjson").write_text("\n \n")
    assert load_summaries(tmp_path / "empty.ndjson") == []
    (tmp_path / "other.json").write_text('{"resourceType": "Bundle"}\n')
    with pytest.raises(ValueError, match="expected"):
        load_summaries(tmp_path / "other.json")
    (tmp_path / "array.ndjson").write_text(json.dumps(records[0]) + "\n[1]\n")
    with pytest.raises(ValueError, match=r"array.ndjson:2: not a JSON object"):
        load_summaries(tmp_path / "array.ndjson")
