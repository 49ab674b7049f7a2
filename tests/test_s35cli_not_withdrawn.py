"""``fhirtis run``'s printout of earlier output it did not withdraw.

A run that leaves earlier output in place (a server that refuses delete; a read the server
answered in part) reports it as :class:`NotWritten` with the verb "withdrawn". The run record
dropped the verb and the printout said "not written" for every such item, as if fhirtis had
tried to write the AdverseEvent rather than to withdraw it."""

from __future__ import annotations

import io

from rich.console import Console

from fhirtis.cli.render import print_run, run_record
from fhirtis.pipeline.patient_run import NotWritten, PatientRun, RunStatus


def _printed(run: PatientRun) -> str:
    out = io.StringIO()
    print_run(Console(file=out, width=200), run_record(run))
    return out.getvalue()


def test_earlier_output_left_in_place_is_printed_as_not_withdrawn() -> None:
    held = NotWritten("AdverseEvent", "tee-1", "the server returned the data in part", "withdrawn")
    run = PatientRun("p1", RunStatus.UNCHANGED, not_written=[held])
    record = run_record(run)
    assert record["not_written"][0]["action"] == "withdrawn"
    text = _printed(run)
    assert "AdverseEvent tee-1: not withdrawn: the server returned the data in part" in text
    assert "not written" not in text


def test_a_resource_the_server_cannot_store_is_still_not_written() -> None:
    refused = NotWritten("Flag", "flag-1", "the server does not support Flag")
    text = _printed(PatientRun("p1", RunStatus.WRITTEN, not_written=[refused]))
    assert "Flag flag-1: not written: the server does not support Flag" in text
