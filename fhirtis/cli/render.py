"""The readable report of `fhirtis evaluate`: one section per patient."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from fhirtis.pipeline.records import patient_summary
from fhirtis.pipeline.server import PatientRun, RunStatus


def _n(value: Decimal | None) -> str:
    return "—" if value is None else format(value.normalize(), "f")


def _tis_text(a: dict[str, Any]) -> str:
    if a["partial"]:
        return f"partial [{_n(a['tis_lower'])}, {_n(a['tis_upper'])}]"
    return _n(a["tis"])


def _category_text(a: dict[str, Any]) -> str:
    if a["category"]:
        return str(a["category"])
    return "undetermined (" + " or ".join(a["possible_categories"]) + ")"


def _flag(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[value]


def print_patient(console: Console, s: dict[str, Any]) -> None:
    console.rule(f"{s['patient']} — {s['population']} criteria ({s['population_reason']})")
    if s["baseline"] is None:
        console.print("TIS: no baseline assessment (see notes)")
    else:
        table = Table(title=f"TIS against baseline {s['baseline']}", title_justify="left")
        for col in (
            "date",
            "TIS",
            "category",
            "missing",
            "deterioration",
            "confirmed",
            "responder",
        ):
            table.add_column(col)
        for a in s["assessments"]:
            table.add_row(
                a["date"],
                _tis_text(a),
                _category_text(a),
                ", ".join(a["missing_measures"]) or "—",
                _flag(a["deterioration"]),
                _flag(a["confirmed_deterioration"]),
                _flag(a["responder"]),
            )
        console.print(table)
    if s["confirmed_deterioration"]:
        console.print(f"Confirmed deterioration on {s['confirmed_deterioration']}")
    ivig = s["ivig"]
    if ivig["cycles"]:
        table = Table(title="IVIG cycles", title_justify="left")
        for col in ("#", "start", "doses", "grams", "g/kg", "weight kg (basis)", "max mg/kg/min"):
            table.add_column(col)
        for c in ivig["cycles"]:
            table.add_row(
                str(c["index"]),
                c["start"][:10],
                str(c["administrations"]),
                _n(c["grams"]),
                _n(c["g_per_kg"]),
                f"{_n(c['dosing_weight_kg'])} ({c['dosing_weight_basis']})",
                _n(c["max_rate_mg_kg_min"]),
            )
        console.print(table)
        console.print(
            f"Cumulative: {_n(ivig['cumulative_grams'])} g, {_n(ivig['cumulative_g_per_kg'])} "
            f"g/kg over {ivig['cycle_count']} cycles"
        )
    else:
        console.print("IVIG: no administrations")
    thr = s["thrombosis"]
    factors = ", ".join(thr["risk_factors"]) or "none found"
    console.print(
        f"TEE risk factors: {factors}; maximum rate now {_n(thr['max_rate_now'])} mg/kg/min"
    )
    for f in thr["rate_findings"]:
        console.print(
            f"  rate above maximum: {f['administration']} {_n(f['rate'])} > {_n(f['limit'])} "
            "mg/kg/min",
            markup=False,
        )
    for e in thr["associated_events"]:
        early = {True: ", early (≤ 24 h)", None: ", early (≤ 24 h) unknown: date-only onset"}.get(
            e["early"], ""
        )
        console.print(
            f"  TEE temporally associated with cycle(s) {e['cycles']}: {e['kind']} "
            f"({e['event']}){early}",
            markup=False,
        )
    for issue in s["issues"]:
        where = f" at {issue['expression']}" if issue.get("expression") else ""
        console.print(f"issue ({issue['severity']}): {issue['diagnostics']}{where}", markup=False)
    warnings = [n for n in s["notes"] if n["severity"] != "missing"]
    if warnings:
        console.print(f"{len(warnings)} warnings/exclusions:")
        for n in warnings:
            console.print(f"  {n['severity']}: {n['message']}", markup=False)
    if s.get("output"):
        console.print(f"derived resources: {s['output']}", markup=False)


def print_failure(console: Console, failure: dict[str, Any]) -> None:
    console.rule(f"{failure['file']}: not evaluated")
    for issue in failure["outcome"]["issue"]:
        where = f" at {', '.join(issue.get('expression', []))}" if issue.get("expression") else ""
        console.print(f"{issue['severity']}: {issue['diagnostics']}{where}", markup=False)


def run_record(run: PatientRun) -> dict[str, Any]:
    """A server run as a plain record (no patient data: ids, actions, counts)."""
    record: dict[str, Any] = {
        "patient": f"Patient/{run.patient_id}",
        "status": run.status.value,
        "requests": dict(run.requests),
        "plan": [
            {"resourceType": rtype, "identifier": ident, "action": action.value}
            for rtype, ident, action in run.planned
        ],
    }
    if run.plan is not None:
        record["summary"] = dict(run.plan.summary)  # the last plan's counts
    if run.status in (RunStatus.WRITTEN, RunStatus.FAILED) and run.plan is not None:
        # what the server confirmed this run wrote (every attempt), not the plan
        record["written"] = [
            {
                "resourceType": w.resource_type,
                "identifier": w.identifier,
                "action": w.verb,
                "reference": w.reference,
            }
            for w in run.written
        ]
        unconfirmed = run.unconfirmed
        if unconfirmed:
            record["unconfirmed"] = [
                {"resourceType": rtype, "identifier": ident, "action": action.value}
                for rtype, ident, action in unconfirmed
            ]
    if run.not_written:
        record["not_written"] = [
            {"resourceType": n.resource_type, "identifier": n.identifier, "reason": n.reason}
            for n in run.not_written
        ]
    if run.duplicates:
        record["duplicates"] = list(run.duplicates)
    if run.error:
        record["error"] = run.error
    if run.error_code:
        record["error_code"] = run.error_code
    if run.result is not None:
        record["evaluation"] = patient_summary(
            run.result.patient_ref, run.result.evaluation, run.result.issues
        )
    return record


def print_run(console: Console, record: dict[str, Any]) -> None:
    if "evaluation" in record:
        print_patient(console, record["evaluation"])
    else:
        console.rule(record["patient"])
    summary = record.get("summary")
    counts = ", ".join(f"{k} {v}" for k, v in summary.items()) if summary else ""
    console.print(f"{record['patient']}: {record['status']} ({counts})", markup=False)
    if record["status"] == "dry-run":
        for item in record["plan"]:
            console.print(
                f"  {item['action']:9} {item['resourceType']} {item['identifier']}", markup=False
            )
    written = record.get("written")
    if written is not None:
        done: dict[str, int] = {}
        for item in written:
            done[item["action"]] = done.get(item["action"], 0) + 1
        said = ", ".join(f"{k} {v}" for k, v in done.items()) or "nothing"
        console.print(f"  confirmed by the server: {said}", markup=False)
    for item in record.get("unconfirmed", []):
        console.print(
            f"  not confirmed: {item['action']} {item['resourceType']} {item['identifier']}",
            markup=False,
        )
    for item in record.get("not_written", []):
        what = f"{item['resourceType']} {item['identifier']}".strip()
        console.print(f"  {what}: not written: {item['reason']}", markup=False)
    for item in record.get("duplicates", []):
        console.print(f"  duplicate: {item}", markup=False)
    if record.get("error"):
        console.print(f"  incomplete: {record['error']}", markup=False)
