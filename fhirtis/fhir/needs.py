"""What one patient's evaluation reads: the single list (pure).

Three users derive their requests from it, so the list cannot drift:

- the server pipeline's searches (:mod:`fhirtis.fhir.queries`, adapted per server by the read
  plan of :mod:`fhirtis.io`),
- the CDS Hooks prefetch templates (:func:`prefetch_queries`),
- the Bulk Data ``$export`` ``_type`` list of the cohort (:func:`export_types`).

A :class:`Need` is one resource type searched by patient: the search parameters that name the
patient (in order of preference: a server may support only some of them), the ``_include`` that
brings the resources it references (the Medications; a DeviceUseStatement's Device), for
Observations the code groups, and (:class:`AlsoBy`) a second search of the type narrowed by one
parameter, for what some servers leave out of the plain search (the Conditions that are not
active).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.clinical.thrombosis import UnassessedRiskFactor
from fhirtis.fhir.codes import CORE_SET_SYSTEM, SYSTEM_ALIASES, Terminology, canonical_system
from fhirtis.fhir.extract import CORE_SET_CODES, ENZYME_VALUE_SETS

__all__ = [
    "CAN_GO_WITHOUT",
    "CONDITIONS_NOT_ACTIVE",
    "INCLUDED_TYPES",
    "NEEDS",
    "OBSERVATION_VALUE_SETS",
    "PANEL_CODES",
    "PATIENT",
    "AlsoBy",
    "Need",
    "export_types",
    "observation_code_groups",
    "observation_codes",
    "prefetch_queries",
    "token",
    "unread_risks",
]

PATIENT = "Patient"


@dataclass(frozen=True)
class AlsoBy:
    """A second search of a :class:`Need`'s type by patient, narrowed by one token parameter
    (its values joined: any of them), sent beside the plain search wherever the server may search
    the type by ``param``; the two searches' results are merged by id. The narrowing parameter
    comes first in the search: a server that refuses the search is taken to refuse it."""

    key: str  # its CDS Hooks prefetch key
    param: str
    values: tuple[str, ...]

    @property
    def query(self) -> str:
        return f"{self.param}={','.join(self.values)}"


#: The Conditions some servers leave out of a search without ``clinical-status``: every R4
#: condition-clinical code but ``active`` (valueset-condition-clinical: active | recurrence |
#: relapse | inactive | remission | resolved). A resolved DVT or PE is a history of thrombosis
#: (clinical spec §5.1). Epic: "If no status is specified all active (confirmed) conditions will be
#: returned" (condition.search, FHIR statuses active, resolved, inactive;
#: https://docs.nerve.run/functions/condition-search; ``category`` is not required there, and
#: Oracle Health's Condition search takes ``clinical-status`` and ``category`` as optional
#: filters, cerner/fhir.cerner.com content/millennium/r4/clinical/summary/condition.md).
CONDITIONS_NOT_ACTIVE = AlsoBy(
    "conditionsNotActive",
    "clinical-status",
    ("recurrence", "relapse", "inactive", "remission", "resolved"),
)


@dataclass(frozen=True)
class Need:
    """One resource type of a patient's record that the evaluation reads."""

    key: str  # the CDS Hooks prefetch key (Observations: one key per code group)
    resource_type: str
    patient_params: tuple[str, ...]  # search parameters naming the patient, preferred first
    include: str | None = None  # e.g. "MedicationAdministration:medication"
    by_code: bool = False  # searched with the Observation codes fhirtis maps
    also: AlsoBy | None = None  # a second, narrowed search of the type (where the server may)

    @property
    def included_type(self) -> str | None:
        """The resource type ``include`` brings (the target of the reference)."""
        return None if self.include is None else INCLUDED_TYPES[self.include.split(":")[1]]

    @property
    def reference_element(self) -> str | None:
        """The element of a found resource holding the reference ``include`` follows
        (``medicationReference`` of ``:medication``, R4 medication[x]; ``device``)."""
        if self.include is None:
            return None
        name = self.include.split(":")[1]
        return f"{name}Reference" if name == "medication" else name


#: The target type of each ``_include`` search parameter fhirtis uses.
INCLUDED_TYPES = {"medication": "Medication", "device": "Device"}


#: Every search of one patient's record, in the order they are sent. The Patient itself is
#: read by id before these (see :data:`PATIENT`).
NEEDS: tuple[Need, ...] = (
    Need("measures", "Observation", ("subject", "patient"), by_code=True),
    Need(
        "administrations",
        "MedicationAdministration",
        ("subject", "patient"),
        "MedicationAdministration:medication",
    ),
    Need("conditions", "Condition", ("subject", "patient"), also=CONDITIONS_NOT_ACTIVE),
    Need(
        "medicationStatements",
        "MedicationStatement",
        ("subject", "patient"),
        "MedicationStatement:medication",
    ),
    Need(
        "medicationRequests",
        "MedicationRequest",
        ("subject", "patient"),
        "MedicationRequest:medication",
    ),
    Need("devices", "Device", ("patient",)),
    # a catheter recorded as in use by the patient (IPS, R4 deviceusestatement-example): the
    # statement names the patient, its Device often no one (R4 search parameters: device,
    # identifier, patient, subject)
    Need(
        "deviceUseStatements",
        "DeviceUseStatement",
        ("subject", "patient"),
        "DeviceUseStatement:device",
    ),
    Need("procedures", "Procedure", ("subject", "patient")),
    Need("adverseEvents", "AdverseEvent", ("subject",)),
)

#: The searched types that are sources of thrombosis risk factors (clinical spec §5.1; the
#: Conditions also say juvenile or adult criteria, §2.3): a CDS call can be answered without
#: them, naming them as not read (a risk factor recorded only there is missed), as it is on a
#: server that offers no search of them. Not among them: the Patient (age, sex), the
#: Observations (the dosing weight, the TIS measures), the MedicationAdministrations (the IVIG
#: given) and their Medications, without which nothing the cards say holds.
CAN_GO_WITHOUT: frozenset[str] = frozenset(
    {
        "Condition",
        "MedicationStatement",
        "MedicationRequest",
        "Device",
        "DeviceUseStatement",
        "Procedure",
        "AdverseEvent",
    }
)

#: Observation value sets read beside the core set (weight, height and BMI for dosing; smoking
#: status, a thrombosis risk factor).
OBSERVATION_VALUE_SETS = (
    *ENZYME_VALUE_SETS,
    "body-weight",
    "body-height",
    "body-mass-index",
    "smoking-status-observation",
)

#: Panels whose members fhirtis reads (weight and height as a ``component`` or a contained
#: ``hasMember``, :mod:`fhirtis.fhir.extract.observations`): LOINC 85353-1, the code the R4 vital
#: signs panel profile fixes (http://hl7.org/fhir/R4/observation-vitalspanel.html). A search by
#: ``code`` matches ``Observation.code`` only (R4 search parameter ``code``), so the panel's own
#: code is searched too: without it a weight recorded only in a panel, read from a Bundle or a
#: Bulk export, was not read from a server (no dosing weight, g/kg and rates unknown).
PANEL_CODES: tuple[tuple[str, str], ...] = (("http://loinc.org", "85353-1"),)

# The CDS prefetch reads the latest few weights, heights and BMIs (newest first) and all
# measures; the value set of each "latest" group and how many it keeps.
_LATEST: tuple[tuple[str, str, int], ...] = (
    ("weights", "body-weight", 5),
    ("height", "body-height", 3),
    ("bmi", "body-mass-index", 3),
)


def token(system: str, code: str) -> str:
    """A ``system|code`` token for a search URL. A ``\\``, ``,``, ``|`` or ``$`` in the system
    or the code (a site's local code may hold one) is escaped with a backslash (R4
    search.html#escaping): unescaped, a server reads ``LOCAL|MMT8,BILAT`` as two codes."""
    return quote(f"{_escaped(system)}|{_escaped(code)}", safe="|:/")


def _escaped(value: str) -> str:
    if not any(c in value for c in "\\,|$"):
        return value
    return "".join("\\" + c if c in "\\,|$" else c for c in value)


def _aliased(codes: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The same codes under the other names of their systems (:data:`SYSTEM_ALIASES`, e.g.
    LOINC's OID, as FHIR converted from CDA carries it). The extraction reads a coding under an
    alias as its canonical system; a search by token matches the system as stored (R4
    search.html#token), so a server is asked for both. A code given under an alias (a site's
    ConceptMap whose group.source is LOINC's OID) is also asked for under the canonical URI
    and the other aliases: the extraction maps a coding of either."""
    out: list[tuple[str, str]] = []
    for system, code in codes:
        canonical = canonical_system(system)
        names = [canonical, *sorted(a for a, c in SYSTEM_ALIASES.items() if c == canonical)]
        out.extend((name, code) for name in names if name != system)
    return out


def observation_codes(terminology: Terminology) -> list[tuple[str, str]]:
    """Every Observation code the evaluation reads: the core set, the enzymes, weight, height,
    BMI, the vital-signs panels that may hold them, a site's mapped local codes, and each of
    them under the other names of its system (:func:`_aliased`)."""
    codes = [(CORE_SET_SYSTEM, c) for c in CORE_SET_CODES]
    for vs in OBSERVATION_VALUE_SETS:
        codes.extend(sorted(terminology.value_set(vs).codes))
    codes.extend(PANEL_CODES)
    codes.extend(source for source in sorted(terminology.concept_map))
    codes.extend(c for c in _aliased(codes) if c not in codes)
    return codes


def observation_code_groups(terminology: Terminology) -> dict[str, set[tuple[str, str]]]:
    """The same codes split into the CDS prefetch groups: weights, height, bmi and measures
    (with the enzymes and smoking status; a site's local codes join the group of the code they
    map to)."""
    sets = {key: terminology.value_set(vs) for key, vs, _ in _LATEST}
    groups: dict[str, set[tuple[str, str]]] = {key: set(vs.codes) for key, vs in sets.items()}
    groups["measures"] = {(CORE_SET_SYSTEM, c) for c in CORE_SET_CODES}
    for vs in (*ENZYME_VALUE_SETS, "smoking-status-observation"):
        groups["measures"] |= terminology.value_set(vs).codes
    # panels are read whole (every page): a panel without a weight among the "latest n" weights
    # would push a weight out
    groups["measures"] |= set(PANEL_CODES)
    for source, targets in terminology.concept_map.items():
        key = next(
            (k for k, vs in sets.items() if any(vs.contains(*t) for t in targets)), "measures"
        )
        groups[key].add(source)
    # the codes under another name of their system (LOINC's OID) are read whole with the
    # measures: the "latest n" templates stay as clients know them
    every = set().union(*groups.values())
    groups["measures"] |= set(_aliased(sorted(every))) - every
    return groups


def prefetch_queries(terminology: Terminology, patient: str) -> list[tuple[str, str, bool]]:
    """CDS Hooks prefetch templates as (key, query, all pages wanted); ``patient`` is the
    template token (``{{context.patientId}}``). "Latest n" queries want only their first page."""
    groups = observation_code_groups(terminology)

    def codes(key: str) -> str:
        return ",".join(token(s, c) for s, c in sorted(groups[key]))

    out = [("patient", f"{PATIENT}/{patient}", False)]
    for need in NEEDS:
        param = "patient" if "patient" in need.patient_params else need.patient_params[0]
        who = f"{param}={patient}" if param == "patient" else f"{param}=Patient/{patient}"
        query = f"{need.resource_type}?{who}"
        if need.by_code:
            for key, _, latest in _LATEST:
                out.append((key, f"{query}&code={codes(key)}&_sort=-date&_count={latest}", False))
            query += f"&code={codes('measures')}"
        if need.include is not None:
            query += f"&_include={need.include}"
        out.append((need.key, query, True))
        if need.also is not None:
            also = need.also
            out.append((also.key, f"{need.resource_type}?{also.query}&{who}", True))
    return out


_K = RiskFactorKind
#: The thrombosis risk factors (clinical spec §5.1) each searched type may record: coded
#: Conditions (and Procedures) any but age, estrogen use and inflammation; an AdverseEvent a
#: thrombosis; medication records estrogen use; Devices a central venous catheter; Observations
#: the BMI (obesity), the PGA (inflammation) and smoking (cardiovascular).
_CODED = tuple(k for k in _K if k not in (_K.ADVANCED_AGE, _K.ESTROGEN, _K.INFLAMMATION))
RISK_KINDS_BY_TYPE: dict[str, tuple[RiskFactorKind, ...]] = {
    "Condition": _CODED,
    "Procedure": _CODED,
    "AdverseEvent": (_K.THROMBOSIS_HISTORY,),
    "MedicationStatement": (_K.ESTROGEN,),
    "MedicationRequest": (_K.ESTROGEN,),
    "MedicationAdministration": (_K.ESTROGEN,),
    "Device": (_K.CENTRAL_VENOUS_CATHETER,),
    "DeviceUseStatement": (_K.CENTRAL_VENOUS_CATHETER,),
    "Observation": (_K.OBESITY, _K.INFLAMMATION, _K.CARDIOVASCULAR),
}


def unread_risks(types: Iterable[str]) -> list[UnassessedRiskFactor]:
    """The risk factors that the records of ``types``, read only in part, may hold, each
    with why: not assessable where not found (the tee-risk Flag names them)."""
    by_kind: dict[RiskFactorKind, list[str]] = {}
    for rtype in sorted(set(types)):
        for kind in RISK_KINDS_BY_TYPE.get(rtype, ()):
            by_kind.setdefault(kind, []).append(rtype)
    return [
        UnassessedRiskFactor(
            kind,
            f"the server returned the patient's {', '.join(rtypes)} records only in part",
        )
        for kind, rtypes in by_kind.items()
    ]


def export_types() -> tuple[str, ...]:
    """The Bulk Data ``_type`` list: the Patient, every searched type and what they include (a
    ``$export`` of a type has no default filter of status: a narrowed second search, such as
    the Conditions not active, adds no type)."""
    out: list[str] = [PATIENT]
    for need in NEEDS:
        _add(out, (need.resource_type, need.included_type))
    return tuple(out)


def _add(out: list[str], types: Iterable[str | None]) -> None:
    for t in types:
        if t is not None and t not in out:
            out.append(t)
