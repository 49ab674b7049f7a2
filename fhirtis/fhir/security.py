"""Security labels (R4 ``meta.security``) carried from the sources to what is derived from them.

A resource derived from labelled sources carries at least their labels (R4 security-labels.html:
the recipient of labelled resources is "obligated to enforce the handling caveats of the tags and
carry the security labels forward as appropriate"), so a TIS computed from a restricted (``R``)
value is not written back readable by users cleared for normal data only:

- confidentiality (``v3-Confidentiality``, ordered U < L < M < N < R < V): the highest code
  among the sources (the "high water mark"), one label;
- every ``v3-ActCode`` label of the sources (sensitivity such as PSY, ETH, HIV; policies such as
  42CFRPart2; obligations and refrain policies such as NORDSCLCD), each once.

Both are read also in their STU3 URIs and their HL7 OIDs (``urn:oid:2.16.840.1.113883.5.25``,
``urn:oid:2.16.840.1.113883.5.4``), and written in their R4 URLs. A code under the
Confidentiality system that is no level is never dropped: v3 Confidentiality once held sensitivity
codes, retired there and each "replaced by" one ActCode (ETH, HIV, PSY, SDV as themselves, C by
CEL, T by TBOO), which older data (DS4P, CDA and v2 conversions) still sends so: such a code is
carried as that ActCode label; any other (S, D, I, B, a code fhirtis does not know) is carried as
it is, under the Confidentiality URL, and takes no part in the high water mark.

A source's labels are its own, those of the contained resources read with it (a contained
Medication or Device, a report's or panel's contained results: part of their container, which
is what is cited) and those of a resource read by id through it (an administration's or a
statement's Medication, a use statement's Device: what is derived from the source is computed
from it too: the product, its concentration, the estrogen, the catheter). The Patient's
labels are carried to every derived resource (each is about the patient, and the Patient's
birth date, sex and death are read by every evaluation).

Other labels (integrity and provenance marks of the source itself, such as v3-ObservationValue
REDACTED or SUBSETTED, and site-local systems) describe the source, not its information: not
carried. Without any carried label among the sources, nothing is added (the output of unlabelled
data is unchanged). fhirtis never lowers a label: a stored derived resource that has all of these
labels, or a higher confidentiality, is unchanged; an update keeps its stored labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Json = dict[str, Any]
Label = tuple[str, str]
"""(system, code), the system in its terminology.hl7.org form."""

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# the R4 canonical systems, the STU3 and earlier URIs of the same code systems, and their HL7
# OIDs (R4 terminologies-systems.html lists the URL, which "SHALL be used in preference", yet
# data converted from HL7 v2 or CDA sends the OID): each read as, and written in, its R4 URL
_SYSTEMS = {
    CONFIDENTIALITY: CONFIDENTIALITY,
    "http://hl7.org/fhir/v3/Confidentiality": CONFIDENTIALITY,
    "urn:oid:2.16.840.1.113883.5.25": CONFIDENTIALITY,
    ACT_CODE: ACT_CODE,
    "http://hl7.org/fhir/v3/ActCode": ACT_CODE,
    "urn:oid:2.16.840.1.113883.5.4": ACT_CODE,
}
_RANK = {code: rank for rank, code in enumerate("ULMNRV")}
# v3 Confidentiality's retired sensitivity codes, each "replaced by ActCode.<code>" there (the
# code system's deprecation comments): carried as that ActCode label
_RETIRED = {"ETH": "ETH", "HIV": "HIV", "PSY": "PSY", "SDV": "SDV", "C": "CEL", "T": "TBOO"}


def _level(label: Label) -> bool:
    """Whether ``label`` is a confidentiality level (U L M N R V), ranked in the high water."""
    return label[0] == CONFIDENTIALITY and label[1] in _RANK


def labels_of(meta: object) -> frozenset[Label]:
    """The carried labels of a resource's ``meta`` (see the module's docstring); empty when none."""
    if type(meta) is not dict:
        return frozenset()
    security = meta.get("security")
    if not isinstance(security, list):
        return frozenset()
    out: set[Label] = set()
    for coding in security:
        if not isinstance(coding, dict):
            continue
        given = coding.get("system")  # a list or an object in damaged JSON: passed over
        system = _SYSTEMS.get(given) if isinstance(given, str) else None
        code = coding.get("code")
        if system is None or not isinstance(code, str) or not code:
            continue
        if system == CONFIDENTIALITY and code in _RETIRED:
            system, code = ACT_CODE, _RETIRED[code]
        out.add((system, code))
    return frozenset(out)


def high_water(label_sets: Iterable[frozenset[Label]]) -> frozenset[Label]:
    """The labels of something derived from sources of ``label_sets``: the highest
    confidentiality among them and every other label."""
    union: set[Label] = set().union(*label_sets)
    levels = [label[1] for label in union if _level(label)]
    if len(levels) > 1:
        top = max(levels, key=_RANK.__getitem__)
        union = {label for label in union if not _level(label) or label[1] == top}
    return frozenset(union)


def codings(labels: frozenset[Label]) -> list[Json]:
    """``meta.security`` of ``labels``: the confidentiality level first, then the other codes
    kept under the Confidentiality system, then the others, each by code."""
    return [
        {"system": system, "code": code}
        for system, code in sorted(
            labels, key=lambda s: (not _level(s), s[0] != CONFIDENTIALITY, s[1], s[0])
        )
    ]


def labelled(resource: Json, labels: frozenset[Label]) -> Json:
    """``resource`` (its own top-level dict, changed in place) with ``labels`` added to its
    ``meta.security``; unchanged without labels. ``meta`` is replaced, never changed: derived
    resources share it."""
    if labels:
        meta = resource.get("meta")
        resource["meta"] = {**(meta if isinstance(meta, dict) else {}), "security": codings(labels)}
    return resource


def covers(stored: frozenset[Label], derived: frozenset[Label]) -> bool:
    """Whether a stored resource with ``stored`` labels has every label of ``derived`` (a higher
    confidentiality than the derived one counts: fhirtis never lowers a label)."""
    for label in derived - stored:
        if not _level(label):
            return False
        if not any(_level(s) and _RANK[s[1]] >= _RANK[label[1]] for s in stored):
            return False
    return True


def kept_on_update(resource: Json, stored: Mapping[str, Any]) -> Json:
    """The body of an update of ``stored`` to ``resource``: ``resource`` with the stored labels
    kept (merged, the confidentiality at the higher of the two), since fhirtis never lowers a
    label; ``resource`` itself when the stored resource has no ``meta.security``."""
    stored_meta = stored.get("meta")
    if not (type(stored_meta) is dict and stored_meta.get("security")):
        return resource
    security = stored_meta["security"]  # a list of Codings; anything else kept is nothing
    kept = [c for c in security if isinstance(c, dict)] if isinstance(security, list) else []
    ours = labels_of(resource.get("meta"))
    merged = high_water((ours, labels_of(stored_meta)))
    # stored labels fhirtis does not carry (a site's own, the server's) are kept as stored
    others = [c for c in kept if not labels_of({"security": [c]})]
    meta = resource.get("meta")
    labels = [*codings(merged), *others]
    return {**resource, "meta": {**(meta if isinstance(meta, dict) else {}), "security": labels}}
