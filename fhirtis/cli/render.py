"""The readable report of `fhirtis evaluate`: one section per patient."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fhirtis.pipeline.records import patient_summary
from fhirtis.pipeline.server import PatientRun, RunStatus


def print_table(
    console: Console,
    title: str,
    columns: list[tuple[str, bool]],
    rows: list[list[str]],
    *,
    left: bool = True,
) -> None:
    """A table whose values are never cut short ("4.…" could be misread; rich would cut): a
    column marked whole (numbers, dates) keeps its widest value's width, the others wrap
    between words and never inside one. Where that does not fit the terminal, each row is
    one line of ``header: value`` pairs instead. Whole columns are right-aligned unless
    ``left``."""
    widths = [
        max(
            [
                *(len(w) for w in header.split()),
                *(
                    len(row[i]) if whole else max(map(len, row[i].split()), default=0)
                    for row in rows
                ),
            ],
            default=0,
        )
        for i, (header, whole) in enumerate(columns)
    ]
    if sum(widths) + 3 * len(widths) + 1 > console.width:
        console.print(title, markup=False, highlight=False)
        for row in rows:
            pairs = "; ".join(
                f"{header}: {value}" for (header, _), value in zip(columns, row, strict=True)
            )
            console.print(f"  {pairs}", markup=False, highlight=False)
        return
    table = Table(title=title, title_justify="left" if left else "center")
    for (header, whole), width in zip(columns, widths, strict=True):
        justify: Literal["left", "right"] = "right" if whole and not left else "left"
        table.add_column(header, min_width=width, no_wrap=whole, justify=justify)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def heading(console: Console, text: str) -> None:
    """A section heading: a rule where it fits, else the text alone (a rule cuts its title,
    and the title is the patient's id or the file's name)."""
    if len(text) + 6 <= console.width:
        console.rule(Text(text))
    else:
        console.print(text, markup=False, highlight=False)


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


# missing data the report says elsewhere: the TIS line of a patient without a baseline
_SAID_ELSEWHERE = frozenset({"no-baseline"})
# notes that the input's issue of the same resource says, naming it and where: a stopped
# administration ("MedicationAdministration/x is stopped: counted for the dose and rate
# recorded" at its status) is one statement, not two
_SAID_BY_ISSUE = frozenset({"stopped"})


def _risk_text(s: dict[str, Any]) -> str:
    """The risk factors found, or "none found" with those that could not be assessed, as the
    tee-risk Flag says it."""
    found = s["thrombosis"]["risk_factors"]
    if found:
        return ", ".join(found)
    # the factors the data did not allow to assess: the 4 mg/kg/min rests on them
    unassessed = [u["factor"] for u in s["thrombosis"]["unassessed"]]
    if unassessed:
        return "none found, not assessable: " + ", ".join(unassessed)
    return "none found"


def _max_rate_text(c: dict[str, Any]) -> str:
    """A cycle's maximum rate; over the infusions of known rate only: never as a plain number."""
    shown = _n(c["max_rate_mg_kg_min"])
    if c["max_rate_mg_kg_min"] is not None and "cycle-max-rate-partial" in c["warnings"]:
        return f"{shown} (partial)"
    return shown


def _flag(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[value]


def _said_once(notes: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Each note's severity and message once, in order, with how many resources it is said of
    when more than one (" (16 MedicationAdministrations)"): the report names no resource in a
    note, so a note said of each of 16 administrations ("no usable infusion rate recorded")
    read as the same line 16 times. The summary's ``notes`` keep each one with its source."""
    said: dict[tuple[str, str], dict[str, None]] = {}
    for n in notes:
        sources = said.setdefault((n["severity"], n["message"]), {})
        if n.get("source"):
            sources[n["source"]] = None
    out: list[tuple[str, str, str]] = []
    for (severity, message), sources in said.items():
        of = ""
        if len(sources) > 1:
            kinds = {source.partition("/")[0] for source in sources}
            of = f" ({len(sources)} {kinds.pop() + 's' if len(kinds) == 1 else 'resources'})"
        out.append((severity, message, of))
    return out


def print_patient(console: Console, s: dict[str, Any]) -> None:
    heading(console, f"{s['patient']} — {s['population']} criteria ({s['population_reason']})")
    if s["baseline"] is None:
        why = [n["message"] for n in s["notes"] if n["code"] == "no-baseline"]
        console.print(f"TIS: no baseline assessment: {'; '.join(why) or 'see notes'}", markup=False)
    else:
        missing = any(a["missing_measures"] for a in s["assessments"])
        rows = [
            [
                a["date"],
                _tis_text(a),
                _category_text(a),
                *([", ".join(a["missing_measures"]) or "—"] if missing else []),
                _flag(a["deterioration"]),
                _flag(a["confirmed_deterioration"]),
                _flag(a["responder"]),
            ]
            for a in s["assessments"]
        ]
        columns = [("date", True), ("TIS", True), ("category", False)]
        columns += [("missing", False)] if missing else []
        columns += [("deterioration", False), ("confirmed", False), ("responder", False)]
        print_table(console, f"TIS against baseline {s['baseline']}", columns, rows)
    if s["confirmed_deterioration"]:
        console.print(f"Confirmed deterioration on {s['confirmed_deterioration']}")
    ivig = s["ivig"]
    if ivig["cycles"]:
        rows = [
            [
                str(c["index"]),
                c["start"][:10],
                str(c["administrations"]),
                _n(c["grams"]),
                _n(c["g_per_kg"]),
                _n(c["dosing_weight_kg"]),
                str(c["dosing_weight_basis"]),
                _max_rate_text(c),
            ]
            for c in ivig["cycles"]
        ]
        whole = ("#", "start", "doses", "grams", "g/kg", "weight kg")
        columns = [(h, True) for h in whole] + [("basis", False), ("max mg/kg/min", True)]
        print_table(console, "IVIG cycles", columns, rows)
        console.print(
            f"Cumulative: {_n(ivig['cumulative_grams'])} g, {_n(ivig['cumulative_g_per_kg'])} "
            f"g/kg over {ivig['cycle_count']} cycles"
        )
    else:
        console.print("IVIG: no administrations")
    thr = s["thrombosis"]
    console.print(
        f"TEE risk factors: {_risk_text(s)}; maximum rate now {_n(thr['max_rate_now'])} mg/kg/min",
        markup=False,
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
        # one event recorded as several Conditions: one line naming each
        records = ", ".join([e["event"], *(e.get("also") or [])])
        console.print(
            f"  TEE temporally associated with cycle(s) {e['cycles']}: {e['kind']} "
            f"({records}){early}",
            markup=False,
        )
    for issue in s["issues"]:
        where = f" at {issue['expression']}" if issue.get("expression") else ""
        console.print(f"issue ({issue['severity']}): {issue['diagnostics']}{where}", markup=False)
    # every note, missing data included (a rate not checked, a partial cumulative dose, a risk
    # factor not assessable): the derived resources say them, and so does the report
    # a note that an issue printed above says of the same resource is not said again
    issued = {i["resource"] for i in s["issues"] if i.get("resource")}
    notes = _said_once(
        n
        for n in s["notes"]
        if n["code"] not in _SAID_ELSEWHERE
        and not (
            n["code"] in _SAID_BY_ISSUE
            and (n.get("source") or "").partition("/_history/")[0] in issued
        )
    )
    if notes:
        console.print(f"{len(notes)} warnings/exclusions/missing data:")
        for severity, message, of in notes:
            console.print(f"  {severity}: {message}{of}", markup=False)
    if s.get("output"):
        console.print(f"derived resources: {s['output']}", markup=False)


def print_failure(console: Console, failure: dict[str, Any]) -> None:
    heading(console, f"{failure['file']}: not evaluated")
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
            {
                "resourceType": n.resource_type,
                "identifier": n.identifier,
                "action": n.verb,
                "reason": n.reason,
            }
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
        heading(console, record["patient"])
    summary = record.get("summary")
    counts = f" ({', '.join(f'{k} {v}' for k, v in summary.items())})" if summary else ""
    console.print(f"{record['patient']}: {record['status']}{counts}", markup=False)
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
        verb = item.get("action", "written")
        console.print(f"  {what}: not {verb}: {item['reason']}", markup=False)
    for item in record.get("duplicates", []):
        console.print(f"  duplicate: {item}", markup=False)
    if record.get("error"):
        console.print(f"  incomplete: {record['error']}", markup=False)
