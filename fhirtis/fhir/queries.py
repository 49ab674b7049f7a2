"""What to ask a FHIR server for one patient (pure: builds batch entries, sends nothing).

One ``batch`` Bundle reads everything the computation needs: the Patient, the Observations with
the codes fhirtis maps (the core set, the enzymes, weight, height, BMI, and a site's mapped local
codes), IVIG administrations with their Medications (``_include``), Conditions, medication use
with Medications, Devices, Procedures and AdverseEvents. A second batch looks up fhirtis's own
earlier output by business identifier.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from fhirtis.fhir.codes import CORE_SET_SYSTEM, IDENTIFIER_SYSTEM, Terminology
from fhirtis.fhir.derive import NO_IDENTIFIER_SEARCH, Derived
from fhirtis.fhir.extract import CORE_SET_CODES, ENZYME_VALUE_SETS

Json = dict[str, Any]

OBSERVATION_VALUE_SETS = (*ENZYME_VALUE_SETS, "body-weight", "body-height", "body-mass-index")
MAX_QUERY_VALUES = 40  # values of one token parameter per search URL (keeps URLs short)


def _token(system: str, code: str) -> str:
    return quote(f"{system}|{code}", safe="|:/")


def observation_codes(terminology: Terminology) -> list[tuple[str, str]]:
    codes = [(CORE_SET_SYSTEM, c) for c in CORE_SET_CODES]
    for vs in OBSERVATION_VALUE_SETS:
        codes.extend(sorted(terminology.value_set(vs).codes))
    codes.extend(source for source in sorted(terminology.concept_map))
    return codes


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def patient_read_entries(patient_id: str, terminology: Terminology, count: int) -> list[Json]:
    """Batch entries reading one patient's data. The first entry is the Patient read."""
    subject = f"Patient/{patient_id}"
    urls = [f"Patient/{patient_id}"]
    codes = [_token(s, c) for s, c in observation_codes(terminology)]
    for chunk in _chunks(codes, MAX_QUERY_VALUES):
        urls.append(f"Observation?subject={subject}&code={','.join(chunk)}&_count={count}")
    urls += [
        f"MedicationAdministration?subject={subject}"
        f"&_include=MedicationAdministration:medication&_count={count}",
        f"Condition?subject={subject}&_count={count}",
        f"MedicationStatement?subject={subject}&_include=MedicationStatement:medication&_count={count}",
        f"MedicationRequest?subject={subject}&_include=MedicationRequest:medication&_count={count}",
        f"Device?patient={subject}&_count={count}",
        f"Procedure?subject={subject}&_count={count}",
        f"AdverseEvent?subject={subject}&_count={count}",
    ]
    return [{"request": {"method": "GET", "url": url}} for url in urls]


def existing_entries(derived: Sequence[Derived], count: int) -> list[Json]:
    """Batch entries finding fhirtis's earlier output by business identifier, per type (types
    without an ``identifier`` search parameter by their own match query; the caller keeps only
    resources with the right identifier)."""
    by_type: dict[str, list[str]] = {}
    entries = []
    for d in derived:
        if d.resource_type in NO_IDENTIFIER_SEARCH:
            url = f"{d.resource_type}?{d.if_none_exist}&_count={count}"
            entries.append({"request": {"method": "GET", "url": url}})
            continue
        by_type.setdefault(d.resource_type, []).append(_token(IDENTIFIER_SYSTEM, d.identifier))
    for rtype in sorted(by_type):
        for chunk in _chunks(by_type[rtype], MAX_QUERY_VALUES):
            url = f"{rtype}?identifier={','.join(chunk)}&_count={count}"
            entries.append({"request": {"method": "GET", "url": url}})
    return entries


def identifier_of(resource: Json) -> str | None:
    """The fhirtis business identifier value of a stored resource, if it has one."""
    idents = resource.get("identifier")
    for ident in idents if isinstance(idents, list) else [idents]:
        if isinstance(ident, dict) and ident.get("system") == IDENTIFIER_SYSTEM:
            value = ident.get("value")
            return value if isinstance(value, str) else None
    return None
