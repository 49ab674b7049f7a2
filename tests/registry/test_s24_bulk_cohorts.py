"""Group exports as real Bulk Data servers send them, and more than one cohort on one ledger.

Shapes follow the FHIR Bulk Data Access IG v2.0.0 (https://hl7.org/fhir/uv/bulkdata/export.html):
a kick-off answered ``202`` with ``Content-Location``, a complete-status manifest with
``transactionTime``, ``requiresAccessToken`` and ``output[]`` items of ``type``/``url``/``count``;
and the NDJSON files of smart-on-fhir/bulk-data-server (one resource a line, ``\\n``-ended).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import Result
from pytest_httpx import HTTPXMock
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.registry import cohort
from fhirtis.registry.cohort import CohortResult
from fhirtis.registry.errors import CohortError
from fhirtis.registry.group_export import GroupExport, export_group, record_export_time
from fhirtis.registry.ledger import Ledger
from fhirtis.registry.options import CohortOptions
from fhirtis.settings import Settings
from tests.io._support import BASE, FakeTime
from tests.registry.test_cohort import _load as load_export
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()

OTHER_BASE = "https://fhir2.example.org/r4"


def _no_statement(httpx_mock: HTTPXMock, base: str) -> None:
    """``[base]/metadata`` answers 404, whenever asked: ``cohort`` reads the statement first, for
    the server's FHIR version (s36), and one it cannot read changes nothing."""
    httpx_mock.add_response(
        url=f"{base}/metadata", status_code=404, json={}, is_optional=True, is_reusable=True
    )


def _kick_off_to(httpx_mock: HTTPXMock, status: str) -> None:
    """The Group g1's kick-off, answered 202 with ``status`` as its status URL."""
    _no_statement(httpx_mock, BASE)
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{BASE}/Group/g1/$export") + r".*"),
        status_code=202,
        headers={"Content-Location": status},
    )


def _serve_export(
    httpx_mock: HTTPXMock,
    base: str,
    group: str,
    transaction_time: str,
    files: dict[str, bytes],
    *,
    counts: dict[str, int] | None = None,
) -> str:
    """One Group export on ``base``: the kick-off (any query), the manifest, the files, and
    the DELETE that releases them. Returns the status URL."""
    status = f"{base}/bulkstatus/{group}-{len(httpx_mock.get_requests())}"
    _no_statement(httpx_mock, base)
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{base}/Group/{group}/$export") + r".*"),
        status_code=202,
        headers={"Content-Location": status},
    )
    output = []
    for name in files:
        item: dict[str, Any] = {"type": name.split(".")[0], "url": f"{base}/bulkfiles/{name}"}
        if counts is not None and name in counts:
            item["count"] = counts[name]
        output.append(item)
    httpx_mock.add_response(
        url=status,
        json={
            "transactionTime": transaction_time,
            "request": f"{base}/Group/{group}/$export",
            "requiresAccessToken": True,
            "output": output,
            "error": [],
        },
    )
    for name, content in files.items():
        httpx_mock.add_response(url=f"{base}/bulkfiles/{name}", content=content)
    httpx_mock.add_response(method="DELETE", url=status, status_code=202)
    return status


def _kickoffs(httpx_mock: HTTPXMock) -> list[str]:
    return [str(r.url) for r in httpx_mock.get_requests() if "$export" in str(r.url)]


def _patients_file(*ids: str) -> bytes:
    return b"".join(orjson.dumps({"resourceType": "Patient", "id": i}) + b"\n" for i in ids)


async def _export_since(
    httpx_mock: HTTPXMock,
    tmp_path: Path,
    files: dict[str, bytes],
    whole_files: dict[str, bytes] | None = None,
) -> GroupExport:
    """Group ``g1`` exported from ``BASE`` after a clean run recorded on 1 April 2024: the
    ``_since`` export answers ``files``; ``whole_files``, where given, are those of a whole
    export served after it."""
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        record_export_time(ledger, BASE, "g1", "2024-04-01T00:00:00Z")
    _serve_export(httpx_mock, BASE, "g1", "2024-05-01T10:00:00Z", files)
    if whole_files is not None:
        _serve_export(httpx_mock, BASE, "g1", "2024-05-01T10:00:05Z", whole_files)
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "work")
    async with FhirClient(FhirClientConfig(base_url=BASE), timing=FakeTime().timing()) as fhir:
        return await export_group(fhir, "g1", options)


async def _clean_run(*_: Any, **__: Any) -> CohortResult:
    return CohortResult(patients=1, statuses={"evaluated": 1})


@pytest.mark.parametrize(
    ("second_base", "second_group"),
    [(BASE, "g2"), (OTHER_BASE, "g1")],
    ids=["another-group", "another-server"],
)
async def test_another_cohort_on_the_same_ledger_is_exported_whole(
    httpx_mock: HTTPXMock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    second_base: str,
    second_group: str,
) -> None:
    """The ledger's ``_since`` is the transaction time of *that* Group's last clean export on
    *that* server. Group g1 ran cleanly; a run for another Group (or the same id on another
    server) must not ask ``_since`` g1's time: its members unchanged since then would never be
    exported, never evaluated, and the run would say 0 patients and exit 0."""
    monkeypatch.setattr(cohort, "run_ndjson", _clean_run)
    options = CohortOptions(
        ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "work", progress=False
    )
    _serve_export(httpx_mock, BASE, "g1", "2024-05-01T10:00:00Z", {"Patient.ndjson": b""})
    await cohort.run_cohort(Settings(), options, FhirClientConfig(base_url=BASE), group="g1")

    _serve_export(
        httpx_mock,
        second_base,
        second_group,
        "2024-05-02T10:00:00Z",
        {"Patient.ndjson": _patients_file("q1", "q2")},
    )
    config = FhirClientConfig(base_url=second_base)
    await cohort.run_cohort(Settings(), options, config, group=second_group)
    kickoff = _kickoffs(httpx_mock)[-1]
    assert kickoff.startswith(f"{second_base}/Group/{second_group}/$export")
    assert "_since" not in kickoff, kickoff

    # and the first cohort, run again, still asks only for what changed since its own export
    _serve_export(httpx_mock, BASE, "g1", "2024-05-03T10:00:00Z", {"Patient.ndjson": b""})
    async with FhirClient(FhirClientConfig(base_url=BASE), timing=FakeTime().timing()) as fhir:
        again = await export_group(fhir, "g1", options)
    assert again.incremental
    assert "_since=2024-05-01T10:00:00Z" in _kickoffs(httpx_mock)[-1]


# -- NDJSON as files arrive from real exports -------------------------------------------------


def _write_cohort(folder: Path, patients: int) -> dict[str, list[bytes]]:
    """A synthetic cohort as one NDJSON file per type (the Bulk export layout); its lines."""
    folder.mkdir(parents=True)
    lines: dict[str, list[bytes]] = {}
    for bundle in make_cohort(patients, seed=11):
        for entry in bundle["entry"]:
            resource = entry["resource"]
            lines.setdefault(resource["resourceType"], []).append(orjson.dumps(resource))
    for rtype, rows in lines.items():
        (folder / f"{rtype}.ndjson").write_bytes(b"".join(row + b"\n" for row in rows))
    return lines


def _summaries(source: Path, tmp_path: Path, name: str) -> tuple[Result, dict[str, Any]]:
    out = tmp_path / f"{name}.summaries.ndjson"
    result = runner.invoke(
        app,
        [
            "cohort",
            "--ndjson",
            str(source),
            "--ledger",
            str(tmp_path / f"{name}.ledger.sqlite"),
            "--work-dir",
            str(tmp_path / f"{name}.work"),
            "--summaries",
            str(out),
            "--no-progress",
        ],
    )
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()] if out.exists() else []
    return result, {r["patient"]: r for r in records}


def test_bom_crlf_blank_lines_and_split_files_read_as_the_plain_export(tmp_path: Path) -> None:
    """Files written by Windows tools (a UTF-8 byte order mark, CRLF line ends), blank lines,
    a last line without a newline, one type split over several files (the IG allows several
    files per type; bulk-data-server splits by ``resourcesPerFile``), and one kept gzipped:
    every patient is read exactly as from the plain export, with no input problem."""
    lines = _write_cohort(tmp_path / "plain", 4)
    odd = tmp_path / "odd"
    odd.mkdir()
    bom = b"\xef\xbb\xbf"
    (odd / "Patient.ndjson").write_bytes(bom + b"\r\n".join(lines["Patient"]) + b"\r\n")
    observations = lines["Observation"]
    half = len(observations) // 2
    (odd / "Observation.000.ndjson").write_bytes(bom + b"\n\n".join(observations[:half]) + b"\n")
    (odd / "Observation.001.ndjson").write_bytes(b"\r\n".join(observations[half:]))  # no last \n
    with gzip.open(odd / "MedicationAdministration.ndjson.gz", "wb") as f:
        f.write(bom + b"\n".join(lines["MedicationAdministration"]) + b"\n")
    for rtype in set(lines) - {"Patient", "Observation", "MedicationAdministration"}:
        (odd / f"{rtype}.ndjson").write_bytes(bom + b"\n".join(lines[rtype]) + b"\n\n")

    plain_result, plain = _summaries(tmp_path / "plain", tmp_path, "plain")
    odd_result, read = _summaries(odd, tmp_path, "odd")
    assert plain_result.exit_code == 0, plain_result.output
    assert odd_result.exit_code == 0, odd_result.output
    assert "input problems 0" in odd_result.stdout
    assert len(plain) == 4
    assert read == plain


# -- a list of patients ------------------------------------------------------------------------


def test_a_patient_file_as_people_write_it_counts_each_patient_once(
    tmp_path: Path, fhir_base: str
) -> None:
    """A patient file saved by Excel or Notepad (a byte order mark, CRLF), an id pasted as the
    reference ``Patient/id``, and a patient listed twice (two lists joined): each patient is
    read, evaluated and written once, and counted once."""
    folder = tmp_path / "export"
    write_ndjson(make_cohort(2, seed=13), folder)
    load_export(fhir_base, folder)
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"\xef\xbb\xbfsyn000000\r\nPatient/syn000001\r\n\r\nsyn000000\r\n")
    ledger = tmp_path / "ledger.sqlite"
    args = ["cohort", "--patient-file", str(ids), "--server", fhir_base, "--write"]
    args += ["--ledger", str(ledger), "--work-dir", str(tmp_path / "work"), "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("2 patients: written 2;"), result.stdout
    with Ledger(ledger) as book:
        assert book.counts() == {"written": 2}
        assert book.get("Patient/syn000000") is not None
        assert book.get("Patient/syn000001") is not None


def test_a_patient_id_that_is_no_fhir_id_is_a_usage_error(tmp_path: Path) -> None:
    args = ["cohort", "--patients", "p1,a b", "--server", "http://127.0.0.1:9/fhir"]
    args += ["--ledger", str(tmp_path / "l.sqlite"), "--work-dir", str(tmp_path / "w")]
    result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "a b" in result.output and "FHIR id" in result.output


# -- _since ----------------------------------------------------------------------------------


def test_a_since_that_is_no_instant_is_a_usage_error(tmp_path: Path) -> None:
    args = ["cohort", "--group", "g1", "--since", "yesterday", "--server", BASE]
    args += ["--ledger", str(tmp_path / "l.sqlite"), "--work-dir", str(tmp_path / "w")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--since" in result.output and "instant" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


async def test_a_transaction_time_that_is_no_instant_is_not_the_next_since(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose ``transactionTime`` is not a FHIR instant (here Java's ``+0000`` offset,
    no colon): the run goes on, says the next export will be whole, and the next run does a
    full export instead of stopping on a ``_since`` it cannot send."""
    monkeypatch.setattr(cohort, "run_ndjson", _clean_run)
    options = CohortOptions(
        ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "work", progress=False
    )
    config = FhirClientConfig(base_url=BASE)
    for _ in range(2):
        _serve_export(
            httpx_mock, BASE, "g1", "2024-05-01T10:00:00.000+0000", {"Patient.ndjson": b""}
        )
        result = await cohort.run_cohort(Settings(), options, config, group="g1")
        assert "_since" not in _kickoffs(httpx_mock)[-1]
        assert any("transactionTime" in note and "whole" in note for note in result.notes)


async def test_a_ledger_holding_a_since_that_is_no_instant_exports_whole(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    """A ledger written by an earlier fhirtis that kept such a transactionTime as it came."""
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.set_value("bulk_transaction_time", "2024-05-01T10:00:00")
    _serve_export(httpx_mock, BASE, "g1", "2024-05-02T10:00:00Z", {"Patient.ndjson": b""})
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "work")
    async with FhirClient(FhirClientConfig(base_url=BASE), timing=FakeTime().timing()) as fhir:
        export = await export_group(fhir, "g1", options)
    assert not export.incremental
    assert "_since" not in _kickoffs(httpx_mock)[-1]


# -- files that lost resources on the way ------------------------------------------------------


def _observation(oid: str, patient: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "code": {"text": "weight"},
            "subject": {"reference": f"Patient/{patient}"},
        }
    )


def _recording_run(seen: dict[str, list[bytes]]) -> Any:
    async def run(folder: Path, *_: Any, **__: Any) -> CohortResult:
        for path in sorted(folder.glob("*.ndjson")):
            seen[path.name.split(".")[0]] = seen.get(path.name.split(".")[0], []) + [
                line for line in path.read_bytes().splitlines() if line.strip()
            ]
        return CohortResult(patients=2, statuses={"evaluated": 2})

    return run


async def test_a_file_shorter_than_its_manifest_count_is_an_input_problem(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest says 3 Observations; the file (closed cleanly by a proxy) holds 2. The
    missing one is lost for this run: the run says so, exits non-zero, and does not record the
    transaction time (a ``_since`` export next would never bring the lost resource back)."""
    seen: dict[str, list[bytes]] = {}
    monkeypatch.setattr(cohort, "run_ndjson", _recording_run(seen))
    observations = _observation("o1", "p1") + b"\n" + _observation("o2", "p2") + b"\n"
    _serve_export(
        httpx_mock,
        BASE,
        "g1",
        "2024-05-01T10:00:00Z",
        {"Patient.ndjson": _patients_file("p1", "p2"), "Observation.ndjson": observations},
        counts={"Patient.ndjson": 2, "Observation.ndjson": 3},
    )
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "w")
    result = await cohort.run_cohort(
        Settings(), options, FhirClientConfig(base_url=BASE), group="g1"
    )
    assert len(result.problems) == 1, result.problems
    file, _, why = result.problems[0]
    assert "Observation" in file and "3" in why and "2" in why, result.problems[0]
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert ledger.get_value("bulk_transaction_time") is None


async def test_a_bad_line_in_an_exported_file_is_an_input_problem_not_a_stop(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One line cut short in the Observation file: listed as an input problem (file, line),
    every other resource is still evaluated, and the transaction time is not recorded."""
    seen: dict[str, list[bytes]] = {}
    monkeypatch.setattr(cohort, "run_ndjson", _recording_run(seen))
    observations = _observation("o1", "p1") + b"\n" + _observation("o2", "p2")[:-9] + b"\n"
    observations += _observation("o3", "p2") + b"\n"
    _serve_export(
        httpx_mock,
        BASE,
        "g1",
        "2024-05-01T10:00:00Z",
        {"Patient.ndjson": _patients_file("p1", "p2"), "Observation.ndjson": observations},
    )
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "w")
    result = await cohort.run_cohort(
        Settings(), options, FhirClientConfig(base_url=BASE), group="g1"
    )
    assert [(where, why) for _, where, why in result.problems] == [("line 2", "not valid JSON")]
    assert "Observation" in result.problems[0][0]
    assert [orjson.loads(line)["id"] for line in seen["Observation"]] == ["o1", "o3"]
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert ledger.get_value("bulk_transaction_time") is None


# -- a _since export whose shared resources changed --------------------------------------------


def _medication(updated: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Medication",
            "id": "ivig-1",
            "meta": {"lastUpdated": updated},
            "code": {"text": "immune globulin 10 %"},
        }
    )


@pytest.mark.parametrize(
    ("updated", "whole"),
    [("2024-04-20T08:00:00Z", True), ("2024-03-01T08:00:00+01:00", False)],
    ids=["changed-since", "referenced-unchanged"],
)
async def test_a_medication_changed_since_the_last_export_exports_the_whole_group(
    httpx_mock: HTTPXMock, tmp_path: Path, updated: str, whole: bool
) -> None:
    """A Medication belongs to no patient: in a ``_since`` export it names none of the patients
    whose administrations reference it, so they would keep results computed from the old
    Medication (e.g. a product now coded as IVIG). A Medication changed since the last export
    makes the export a whole one; one only sent along because it is referenced (the IG lets a
    server add referenced resources), unchanged since, does not."""
    whole_files = {
        "Patient.ndjson": _patients_file("p1"),
        "Medication.ndjson": _medication(updated),
    }
    export = await _export_since(
        httpx_mock,
        tmp_path,
        {"Medication.ndjson": _medication(updated)},
        whole_files if whole else None,
    )
    kickoffs = _kickoffs(httpx_mock)
    assert "_since=2024-04-01T00:00:00Z" in kickoffs[0]
    assert export.incremental is not whole
    if whole:
        assert len(kickoffs) == 2 and "_since" not in kickoffs[1]
        assert export.transaction_time == "2024-05-01T10:00:05Z"
        assert sorted(p.name.split(".")[0] for p in export.folder.glob("*.ndjson")) == [
            "Medication",
            "Patient",
        ]


# -- files on another host -----------------------------------------------------------------------


async def test_a_file_on_another_host_that_wants_the_token_stops_the_run_plainly(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    """``requiresAccessToken: true`` with a file on another host (a CDN, an internal name):
    the token is not sent there and nothing is requested from it. The run stops saying that
    fhirtis refused (not that the server did) and how to allow a host of the same server."""
    status = f"{BASE}/bulkstatus/job-9"
    _kick_off_to(httpx_mock, status)
    foreign = "https://files.example.net/exports/Patient.ndjson?sig=SECRET"
    httpx_mock.add_response(
        url=status,
        json={
            "transactionTime": "2024-05-01T10:00:00Z",
            "requiresAccessToken": True,
            "output": [{"type": "Patient", "url": foreign}],
            "error": [],
        },
    )
    httpx_mock.add_response(method="DELETE", url=status, status_code=202, is_optional=True)
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "w")
    with pytest.raises(CohortError) as raised:
        await cohort.run_cohort(Settings(), options, FhirClientConfig(base_url=BASE), group="g1")
    message = str(raised.value)
    assert "https://files.example.net" in message and "SECRET" not in message
    assert not message.startswith("the FHIR server refused"), message
    assert "FHIRTIS_FHIR__EQUIVALENT_ORIGINS" in message
    assert all("files.example.net" not in str(r.url) for r in httpx_mock.get_requests())


# -- references that name a patient in a form the registry cannot follow -------------------------


def test_resources_that_name_their_patient_by_a_non_literal_reference_are_input_problems(
    tmp_path: Path,
) -> None:
    """Synthea's FHIR exporter writes ``urn:uuid:`` references unless ``exporter.fhir.bulk_data``
    is set (synthetichealth/synthea, FhirR4.java ``getUrlPrefix``); a reference may also name its
    patient by ``identifier`` only, or a contained ``#id``. Such a resource cannot be grouped with
    its patient: it is an input problem (listed, exit 1), never silently left out of the
    patient's evaluation. A subject of another type (a Group, a Location) is nobody's data."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient.ndjson").write_bytes(_patients_file("p1"))
    subjects = [
        {"reference": "urn:uuid:6b2a0c4e-5f1d-4c55-9a3e-2f0f1c9b7d11"},
        {"identifier": {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}},
        {"reference": "#p1"},
        {"reference": "Group/g1"},
        {"reference": "https://fhir.example.org/r4/Location/ward-3"},
        {"reference": "Patient/p1"},
    ]
    rows = [
        orjson.dumps(
            {"resourceType": "Observation", "id": f"o{i}", "status": "final", "subject": subject}
        )
        for i, subject in enumerate(subjects)
    ]
    (folder / "Observation.ndjson").write_bytes(b"\n".join(rows) + b"\n")
    args = ["cohort", "--ndjson", str(folder), "--ledger", str(tmp_path / "l.sqlite")]
    result = runner.invoke(app, [*args, "--work-dir", str(tmp_path / "w"), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("1 patients: evaluated 1;"), result.stdout
    assert "input problems 3" in result.stdout, result.stdout
    problems = [line for line in result.stdout.splitlines() if "input problem:" in line]
    assert len(problems) == 3 and all("Observation.ndjson" in line for line in problems)
    assert "6b2a0c4e" not in result.stdout and "12345" not in result.stdout  # no patient data


def test_patients_whose_patient_resource_is_missing_are_counted_once_and_named_in_a_note(
    tmp_path: Path,
) -> None:
    """Observations of two patients, the Patient resource of only one (an export whose
    ``_type`` left Patient out, or a Patient file lost): both are evaluated and counted once,
    and the run says how many were evaluated without their Patient (no birth date or sex:
    the juvenile criteria cannot be chosen), without naming them."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient.ndjson").write_bytes(_patients_file("p1"))
    rows = [_observation("o1", "p1"), _observation("o2", "p2"), _observation("o3", "p2")]
    (folder / "Observation.000.ndjson").write_bytes(rows[0] + b"\n" + rows[1] + b"\n")
    (folder / "Observation.001.ndjson").write_bytes(rows[2] + b"\n")
    args = ["cohort", "--ndjson", str(folder), "--ledger", str(tmp_path / "l.sqlite")]
    result = runner.invoke(app, [*args, "--work-dir", str(tmp_path / "w"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("2 patients: evaluated 2;"), result.stdout
    notes = [line for line in result.stdout.splitlines() if "note:" in line]
    assert len(notes) == 1 and "1 patient(s)" in notes[0] and "no Patient resource" in notes[0]
    assert "p2" not in notes[0]


@pytest.mark.parametrize("group", ["a b", "Group/", "x" * 65])
def test_a_group_id_that_is_no_fhir_id_is_a_usage_error(tmp_path: Path, group: str) -> None:
    args = ["cohort", "--group", group, "--server", BASE, "--ledger", str(tmp_path / "l")]
    result = runner.invoke(app, [*args, "--work-dir", str(tmp_path / "w")])
    assert result.exit_code == 2, result.output
    assert "--group" in result.output and "FHIR id" in result.output


def test_a_group_given_as_a_reference_is_exported_by_its_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--group Group/registry-3`` (a reference, as the Group's own page shows it)."""
    asked: list[str | None] = []

    async def run(*_: Any, group: str | None = None, **__: Any) -> CohortResult:
        asked.append(group)
        return CohortResult()

    monkeypatch.setattr(cohort, "run_cohort", run)
    args = ["cohort", "--group", "Group/registry-3", "--server", BASE]
    result = runner.invoke(app, [*args, "--ledger", str(tmp_path / "l"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert asked == ["registry-3"]


# -- a run stopped while the server was still exporting ------------------------------------------


def _kickoff_count(httpx_mock: HTTPXMock) -> int:
    return sum("$export" in str(r.url) for r in httpx_mock.get_requests())


async def test_a_run_stopped_while_the_export_runs_polls_the_same_export_when_run_again(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large Group takes the server hours to export (IG: 202 + X-Progress until done). A run
    that stops meanwhile (its polling budget spent, the network gone, killed) is resumed by
    polling the export it started, not by starting another: a new kick-off would throw the
    server's work away, and servers that allow one export at a time per client answer it
    429 (Oracle Health: ``throttled``)."""
    monkeypatch.setattr(cohort, "run_ndjson", _clean_run)
    status = f"{BASE}/bulkstatus/long-1"
    _kick_off_to(httpx_mock, status)
    httpx_mock.add_response(
        url=status,
        status_code=202,
        headers={"X-Progress": "12% complete", "Retry-After": "600"},
        is_reusable=True,
    )
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "w")
    short = FhirClientConfig(base_url=BASE, bulk_budget_seconds=300)
    with pytest.raises(CohortError, match="not complete"):
        await cohort.run_cohort(Settings(), options, short, group="g1")
    assert _kickoff_count(httpx_mock) == 1

    httpx_mock.reset()
    httpx_mock.add_response(
        url=status,
        json={
            "transactionTime": "2024-05-01T10:00:00Z",
            "requiresAccessToken": True,
            "output": [{"type": "Patient", "url": f"{BASE}/bulkfiles/Patient.ndjson"}],
            "error": [],
        },
    )
    httpx_mock.add_response(url=f"{BASE}/bulkfiles/Patient.ndjson", content=_patients_file("p1"))
    httpx_mock.add_response(method="DELETE", url=status, status_code=202)
    await cohort.run_cohort(Settings(), options, FhirClientConfig(base_url=BASE), group="g1")
    assert _kickoff_count(httpx_mock) == 0  # the same export, polled again
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert ledger.get_value("bulk_transaction_time") == "2024-05-01T10:00:00Z"

    # done and released: the next run starts a new (_since) export
    httpx_mock.reset()
    _serve_export(httpx_mock, BASE, "g1", "2024-05-02T10:00:00Z", {"Patient.ndjson": b""})
    # a _since run reads the Group's members (here none listed: the ledger's are used)
    httpx_mock.add_response(
        url=f"{BASE}/Group/g1", json={"resourceType": "Group", "id": "g1", "type": "person"}
    )
    await cohort.run_cohort(Settings(), options, FhirClientConfig(base_url=BASE), group="g1")
    assert "_since=2024-05-01T10:00:00Z" in _kickoffs(httpx_mock)[-1]


@pytest.mark.parametrize("gone", [404, 410])
async def test_an_export_that_expired_meanwhile_is_started_again(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gone: int
) -> None:
    monkeypatch.setattr(cohort, "run_ndjson", _clean_run)
    status = f"{BASE}/bulkstatus/long-2"
    _kick_off_to(httpx_mock, status)
    httpx_mock.add_response(url=status, status_code=202, headers={"Retry-After": "600"})
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "w")
    short = FhirClientConfig(base_url=BASE, bulk_budget_seconds=60)
    with pytest.raises(CohortError, match="not complete"):
        await cohort.run_cohort(Settings(), options, short, group="g1")

    httpx_mock.reset()
    httpx_mock.add_response(url=status, status_code=gone)
    _serve_export(httpx_mock, BASE, "g1", "2024-05-02T10:00:00Z", {"Patient.ndjson": b""})
    await cohort.run_cohort(Settings(), options, FhirClientConfig(base_url=BASE), group="g1")
    assert _kickoff_count(httpx_mock) == 1


def test_the_servers_progress_is_shown_while_it_exports(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IG: a 202 status answer MAY carry ``X-Progress`` ("50% complete"); an export can take
    hours, so the run shows it (on stderr, with the progress display on)."""
    monkeypatch.setattr(cohort, "run_ndjson", _clean_run)
    status = f"{BASE}/bulkstatus/progress-1"
    _kick_off_to(httpx_mock, status)
    httpx_mock.add_response(
        url=status, status_code=202, headers={"X-Progress": "42% complete", "Retry-After": "1"}
    )
    httpx_mock.add_response(
        url=status,
        json={
            "transactionTime": "2024-05-01T10:00:00Z",
            "requiresAccessToken": True,
            "output": [],
            "error": [],
        },
    )
    httpx_mock.add_response(method="DELETE", url=status, status_code=202)
    args = ["cohort", "--group", "g1", "--server", BASE, "--ledger", str(tmp_path / "l")]
    result = runner.invoke(app, [*args, "--work-dir", str(tmp_path / "w"), "--progress"])
    assert result.exit_code == 0, result.output
    assert "42% complete" in result.stderr


async def test_a_download_broken_off_is_resumed_from_the_same_export(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export is complete but its files cannot be fetched now (the network is gone): the
    job is not released (its files stay on the server) and the next run fetches them from the
    same export instead of asking the server to export everything again."""
    monkeypatch.setattr(cohort, "run_ndjson", _clean_run)
    status = f"{BASE}/bulkstatus/done-1"
    patient_file = f"{BASE}/bulkfiles/Patient.ndjson"
    manifest = {
        "transactionTime": "2024-05-01T10:00:00Z",
        "requiresAccessToken": True,
        "output": [{"type": "Patient", "url": patient_file}],
        "error": [],
    }
    _kick_off_to(httpx_mock, status)
    httpx_mock.add_response(url=status, json=manifest)
    httpx_mock.add_exception(httpx.ConnectError("network unreachable"), url=patient_file)
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "w")
    once = FhirClientConfig(base_url=BASE, retry_max_attempts=1)
    with pytest.raises(CohortError):
        await cohort.run_cohort(Settings(), options, once, group="g1")
    assert not [r for r in httpx_mock.get_requests() if r.method == "DELETE"]

    httpx_mock.reset()
    httpx_mock.add_response(url=status, json=manifest)
    httpx_mock.add_response(url=patient_file, content=_patients_file("p1"))
    httpx_mock.add_response(method="DELETE", url=status, status_code=202)
    await cohort.run_cohort(Settings(), options, FhirClientConfig(base_url=BASE), group="g1")
    assert _kickoff_count(httpx_mock) == 0
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert ledger.get_value("bulk_transaction_time") == "2024-05-01T10:00:00Z"
