"""Synthetic myositis patients as FHIR R4 Bundles, seeded and realistic in size and variety.

For benchmarks, load tests and demos — never real people. A patient has dermatomyositis,
a baseline and visits every 4 weeks with the six core set measures (some missing, some in mm),
CK/aldolase with reference ranges, weights, 3–6 IVIG cycles of 2–5 administrations (a few
infused fast), unrelated laboratory results (as a real record has), and at realistic rates a
thromboembolic event or a cardiovascular risk factor.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

Json = dict[str, Any]
UCUM = "http://unitsofmeasure.org"
CORE = "http://fhirtis.org/fhir/CodeSystem/myositis-core-set"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
UNRELATED_LABS = (
    ("718-7", "g/dL"),
    ("2160-0", "mg/dL"),
    ("2345-7", "mg/dL"),
    ("6690-2", "10*3/uL"),
)


def _q(value: float | int, unit: str) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


class _Patient:
    def __init__(self, rng: random.Random, index: int) -> None:
        self.rng = rng
        self.pid = f"syn{index:06d}"
        self.ref = f"Patient/{self.pid}"
        self.resources: list[Json] = []
        self.n = 0

    def add(self, resource: Json) -> None:
        self.resources.append(resource)

    def next_id(self, prefix: str) -> str:
        self.n += 1
        return f"{self.pid}-{prefix}{self.n}"

    def obs(
        self, system: str, code: str, value: float | int, unit: str, day: date, **extra: Any
    ) -> None:
        r: Json = {
            "resourceType": "Observation",
            "id": self.next_id("o"),
            "meta": {"versionId": "1"},
            "status": "final",
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": self.ref},
            "effectiveDateTime": f"{day.isoformat()}T10:00:00+01:00",
            "issued": f"{day.isoformat()}T12:00:00+01:00",
            "valueQuantity": _q(value, unit),
        }
        r.update(extra)
        self.add(r)


def make_patient(rng: random.Random, index: int) -> Json:
    """One synthetic patient as a ``collection`` Bundle."""
    p = _Patient(rng, index)
    juvenile = rng.random() < 0.15
    age = rng.randint(6, 15) if juvenile else rng.randint(22, 78)
    start = date(2024, 1, 1) + timedelta(days=rng.randint(0, 300))
    birth = start - timedelta(days=365 * age + rng.randint(0, 364))
    female = rng.random() < 0.7
    p.add(
        {
            "resourceType": "Patient",
            "id": p.pid,
            "meta": {"versionId": "1"},
            "birthDate": birth.isoformat(),
            "gender": "female" if female else "male",
            "name": [{"family": f"Synthetic{index}", "given": ["Test"]}],
        }
    )
    p.add(
        {
            "resourceType": "Condition",
            "id": f"{p.pid}-dm",
            "code": {"coding": [{"system": SNOMED, "code": "396230008"}]},
            "subject": {"reference": p.ref},
            "onsetDateTime": (start - timedelta(days=rng.randint(30, 900))).isoformat(),
        }
    )
    kg = round(rng.uniform(25, 45) if juvenile else rng.uniform(50, 110), 1)
    concentration = rng.choice((10, 10, 10, 5))
    p.add(
        {
            "resourceType": "Medication",
            "id": f"{p.pid}-med",
            "code": {
                "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}],
                "text": f"IVIG {concentration}%",
            },
            "ingredient": [
                {
                    "itemCodeableConcept": {"text": "human normal immunoglobulin"},
                    "strength": {"numerator": _q(concentration, "g"), "denominator": _q(100, "mL")},
                }
            ],
        }
    )
    # visits: baseline 1–7 days before the first infusion, then every 4 weeks
    n_visits = rng.randint(3, 6)
    pga, ptga, mmt, haq, extra, ck = (
        rng.uniform(4, 8),
        rng.uniform(4, 8),
        rng.randint(90, 125),
        rng.uniform(0.8, 2.2),
        rng.uniform(2, 6),
        rng.randint(400, 6000),
    )
    trend = rng.uniform(-0.1, 0.35)  # most improve, some worsen
    for v in range(n_visits):
        day = (
            start - timedelta(days=rng.randint(1, 7)) if v == 0 else start + timedelta(weeks=4 * v)
        )
        factor = max(0.0, 1 - trend * v)
        mm = rng.random() < 0.2
        p.obs(
            CORE,
            "pga",
            round(min(10, pga * factor) * (10 if mm else 1), 1),
            "mm" if mm else "cm",
            day,
        )
        if rng.random() > 0.08:
            p.obs(CORE, "ptga", round(min(10, ptga * factor), 1), "cm", day)
        p.obs(
            CORE,
            "cmas" if juvenile else "mmt8-150",
            min(52 if juvenile else 150, round((40 if juvenile else mmt) / max(factor, 0.5))),
            "{score}",
            day,
        )
        if rng.random() > 0.1:
            p.obs(
                CORE,
                "chaq" if juvenile else "haq-di",
                round(min(3, haq * factor), 3),
                "{score}",
                day,
            )
        p.obs(CORE, "extramuscular", round(min(10, extra * factor), 1), "cm", day)
        rr = {"referenceRange": [{"high": _q(200, "U/L")}]}
        p.obs(LOINC, "2157-6", max(20, round(ck * factor)), "U/L", day, **rr)
        p.obs(
            LOINC,
            "1761-6",
            round(rng.uniform(5, 20) * factor, 1),
            "U/L",
            day,
            referenceRange=[{"high": _q(8, "U/L")}],
        )
        p.obs(LOINC, "29463-7", round(kg + rng.uniform(-1, 1), 1), "kg", day - timedelta(days=1))
        for code, unit in UNRELATED_LABS:
            p.obs(LOINC, code, round(rng.uniform(1, 15), 1), unit, day)
    # IVIG: 2 g/kg every 4 weeks over 2–5 days
    fast = rng.random() < 0.1
    for c in range(rng.randint(3, 6)):
        days = rng.randint(2, 5)
        grams = round(2 * kg / days, 1)
        ml = grams * 1000 / (concentration * 10)
        for k in range(days):
            day = start + timedelta(weeks=4 * c, days=k)
            rate = rng.choice((100, 120, 150)) * (kg / 70)
            if fast and c == 1 and k == 0:
                rate *= 2
            p.add(
                {
                    "resourceType": "MedicationAdministration",
                    "id": p.next_id("ma"),
                    "meta": {"versionId": "1"},
                    "status": "completed",
                    "medicationReference": {"reference": f"Medication/{p.pid}-med"},
                    "subject": {"reference": p.ref},
                    "effectivePeriod": {
                        "start": f"{day.isoformat()}T09:00:00+01:00",
                        "end": f"{day.isoformat()}T13:00:00+01:00",
                    },
                    "dosage": {
                        "dose": _q(round(ml), "mL"),
                        "rateQuantity": _q(round(rate), "mL/h"),
                    },
                }
            )
    if rng.random() < 0.3:
        p.add(
            {
                "resourceType": "Condition",
                "id": f"{p.pid}-htn",
                "code": {"coding": [{"system": ICD10CM, "code": "I10"}]},
                "subject": {"reference": p.ref},
                "onsetDateTime": "2015-01-01",
            }
        )
    if rng.random() < 0.06:
        onset = start + timedelta(weeks=4 * rng.randint(0, 2), days=rng.randint(2, 12))
        p.add(
            {
                "resourceType": "Condition",
                "id": f"{p.pid}-dvt",
                "code": {"coding": [{"system": SNOMED, "code": "128053003"}]},
                "subject": {"reference": p.ref},
                "onsetDateTime": f"{onset.isoformat()}T08:00:00Z",
            }
        )
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in p.resources
        ],
    }


def make_cohort(n: int, seed: int = 20221006) -> Iterator[Json]:
    """``n`` synthetic patients, the same for the same seed."""
    rng = random.Random(seed)
    for i in range(n):
        yield make_patient(rng, i)


def write_ndjson(bundles: Iterator[Json], folder: Path) -> dict[str, int]:
    """Write patient Bundles as a Bulk Data export would: one NDJSON file per resource type.
    Streams: one patient in memory at a time. Returns resources per type."""
    import orjson  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    handles: dict[str, Any] = {}
    counts: dict[str, int] = {}
    try:
        for b in bundles:
            for entry in b["entry"]:
                r = entry["resource"]
                rtype = r["resourceType"]
                if rtype not in handles:
                    handles[rtype] = (folder / f"{rtype}.ndjson").open("wb")
                handles[rtype].write(orjson.dumps(r) + b"\n")
                counts[rtype] = counts.get(rtype, 0) + 1
    finally:
        for h in handles.values():
            h.close()
    return counts
