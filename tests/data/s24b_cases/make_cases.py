#!/usr/bin/env python3
"""Write the s24b clinical case Bundles in this folder (standard library, deterministic).

    python3 tests/data/s24b_cases/make_cases.py

Every patient is synthetic. The expected results are NOT produced by this script nor by fhirtis:
they are worked by hand from docs/clinical-specification.md in README.md and asserted in
tests/test_s24b_clinical_cases.py. Shapes: see README.md.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"
CORE = "http://fhirtis.org/fhir/CodeSystem/myositis-core-set"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CAT = "http://terminology.hl7.org/CodeSystem/condition-category"
BASE = "https://fhir.example.org/r4"
Json = dict[str, Any]
ENZYMES = {"ck": ("2157-6", "Creatine kinase [Enzymatic activity/volume] in Serum or Plasma")}
VAS = {"pga", "ptga", "extramuscular"}


class Case:
    """The resources of one synthetic patient (ids prefixed with the case's prefix)."""

    def __init__(self, prefix: str, gender: str, birth: str) -> None:
        self.p = prefix
        self.n = itertools.count(1)
        self.resources: list[Json] = []
        self.subject = {"reference": f"Patient/{prefix}"}
        self.add(
            {
                "resourceType": "Patient",
                "id": prefix,
                "meta": {
                    "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]
                },
                "identifier": [
                    {"system": "https://hospital.example.org/mrn", "value": f"{prefix}-mrn"}
                ],
                "name": [{"family": "Synthetic", "given": [prefix]}],
                "gender": gender,
                "birthDate": birth,
            }
        )

    def rid(self, what: str) -> str:
        return f"{self.p}-{what}-{next(self.n)}"

    def add(self, resource: Json) -> Json:
        self.resources.append(resource)
        return resource

    def condition(
        self, code: str, display: str, onset: Json, category: str = "problem-list-item"
    ) -> Json:
        return self.add(
            {
                "resourceType": "Condition",
                "id": self.rid("cond"),
                "clinicalStatus": {"coding": [{"system": COND_CLIN, "code": "active"}]},
                "verificationStatus": {"coding": [{"system": COND_VER, "code": "confirmed"}]},
                "category": [{"coding": [{"system": COND_CAT, "code": category}]}],
                "code": {
                    "coding": [{"system": SNOMED, "code": code, "display": display}],
                    "text": display,
                },
                "subject": self.subject,
                **onset,
            }
        )

    def dermatomyositis(self, onset: str) -> Json:
        return self.condition("396230008", "Dermatomyositis (disorder)", {"onsetDateTime": onset})

    def measure(self, key: str, value: float, when: str) -> Json:
        unit = "cm" if key in VAS else "{score}"
        return self.add(
            {
                "resourceType": "Observation",
                "id": self.rid(key),
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": OBS_CAT,
                                "code": "survey" if key in {"ptga", "haq-di", "chaq"} else "exam",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": CORE, "code": key}]},
                "subject": self.subject,
                "effectiveDateTime": when,
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            }
        )

    def enzyme(self, name: str, value: float, when: str, uln: float, unit: str = "U/L") -> Json:
        code, display = ENZYMES[name]
        q = {"unit": unit, "system": UCUM, "code": unit}
        return self.add(
            {
                "resourceType": "Observation",
                "id": self.rid(name),
                "meta": {
                    "profile": [
                        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"
                    ]
                },
                "status": "final",
                "category": [{"coding": [{"system": OBS_CAT, "code": "laboratory"}]}],
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                "subject": self.subject,
                "effectiveDateTime": when,
                "valueQuantity": {"value": value, **q},
                "referenceRange": [{"high": {"value": uln, **q}}],
            }
        )

    def vital(self, code: str, display: str, value: float, unit: str, when: str) -> Json:
        return self.add(
            {
                "resourceType": "Observation",
                "id": self.rid("vital"),
                "status": "final",
                "category": [{"coding": [{"system": OBS_CAT, "code": "vital-signs"}]}],
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                "subject": self.subject,
                "effectiveDateTime": when,
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            }
        )

    def weight(self, value: float, when: str, unit: str = "kg") -> Json:
        return self.vital("29463-7", "Body weight", value, unit, when)

    def medication(self) -> str:
        mid = f"{self.p}-ivig10"
        self.add(
            {
                "resourceType": "Medication",
                "id": mid,
                "code": {
                    "coding": [
                        {
                            "system": ATC,
                            "code": "J06BA02",
                            "display": "immunoglobulins, normal human, for intravascular adm.",
                        }
                    ],
                    "text": "Immune globulin intravenous (human) 10%",
                },
                "ingredient": [
                    {
                        "itemCodeableConcept": {"text": "immune globulin (human)"},
                        "isActive": True,
                        "strength": {
                            "numerator": {"value": 10, "unit": "g", "system": UCUM, "code": "g"},
                            "denominator": {
                                "value": 100,
                                "unit": "mL",
                                "system": UCUM,
                                "code": "mL",
                            },
                        },
                    }
                ],
            }
        )
        return mid

    def ivig(self, med: str, start: str, end: str, grams: float, ml_per_h: float) -> Json:
        return self.add(
            {
                "resourceType": "MedicationAdministration",
                "id": self.rid("ivig"),
                "status": "completed",
                "medicationReference": {"reference": f"Medication/{med}"},
                "subject": self.subject,
                "effectivePeriod": {"start": start, "end": end},
                "dosage": {
                    "route": {
                        "coding": [
                            {"system": SNOMED, "code": "47625008", "display": "Intravenous route"}
                        ]
                    },
                    "dose": {"value": grams, "unit": "g", "system": UCUM, "code": "g"},
                    "rateQuantity": {
                        "value": ml_per_h,
                        "unit": "mL/h",
                        "system": UCUM,
                        "code": "mL/h",
                    },
                },
            }
        )

    def bundle(self) -> Json:
        return {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r}
                for r in self.resources
            ],
        }


CE_BL, CE_FU = "2024-01-08T08:45:00+01:00", "2024-03-04T08:45:00+01:00"
A_VALUES = [
    ("pga", 6, 3),
    ("ptga", 7, 5),
    ("mmt8-150", 100, 130),
    ("haq-di", 1.5, 1.2),
    ("extramuscular", 4, 3),
]


def course(
    case: Case,
    values: list[tuple[str, float, float | None]],
    ck: tuple[float, float],
    kg: float,
    rates: tuple[float, float],
    grams: float,
) -> None:
    """Baseline 2024-01-08 and follow-up 2024-03-04 (Central European time), one IVIG cycle of
    two days starting 2024-01-08 10:00 after the baseline visit."""
    case.weight(kg, "2024-01-08T08:10:00+01:00")
    for key, base, follow in values:
        case.measure(key, base, CE_BL)
        if follow is not None:
            case.measure(key, follow, CE_FU)
    case.enzyme("ck", ck[0], "2024-01-08T08:20:00+01:00", 200)
    case.enzyme("ck", ck[1], "2024-03-04T08:20:00+01:00", 200)
    med = case.medication()
    case.ivig(med, "2024-01-08T10:00:00+01:00", "2024-01-08T14:00:00+01:00", grams, rates[0])
    case.ivig(med, "2024-01-09T10:00:00+01:00", "2024-01-09T14:00:00+01:00", grams, rates[1])


def cases() -> dict[str, Case]:
    out: dict[str, Case] = {}

    a = Case("s24b-a", "male", "1970-01-01")
    a.dermatomyositis("2023-10-02")
    course(a, A_VALUES, (3000, 1200), 70, (160, 180), 70)
    out["example-a-adult"] = a

    b = Case("s24b-b", "female", "1965-07-01")
    b.dermatomyositis("2023-09-15")
    course(
        b,
        [
            ("pga", 5, 4.5),
            ("ptga", 5, 5),
            ("mmt8-80", 60, 62),
            ("haq-di", 1, 1),
            ("extramuscular", 2, 2),
        ],
        (500, 450),
        60,
        (100, 100),
        60,
    )
    out["example-b-adult"] = b

    c = Case("s24b-c", "female", "2012-02-01")
    c.dermatomyositis("2021-05-01")
    course(c, A_VALUES, (3000, 1200), 30, (60, 70), 30)
    out["example-c-juvenile"] = c

    d = Case("s24b-d", "male", "1980-05-05")
    d.dermatomyositis("2023-11-01")
    course(
        d,
        [
            ("pga", 2.2, 0.7),
            ("ptga", 3, 3),
            ("mmt8-150", 120, 120),
            ("haq-di", 0.5, 0.5),
            ("extramuscular", 1, 1),
        ],
        (800, 800),
        80,
        (100, 100),
        80,
    )
    out["example-d-adult"] = d

    e = Case("s24b-e", "male", "1970-01-01")
    e.dermatomyositis("2023-10-02")
    course(
        e,
        [(k, v0, None if k == "haq-di" else v1) for k, v0, v1 in A_VALUES],
        (3000, 1200),
        70,
        (160, 180),
        70,
    )
    out["example-e-partial"] = e

    # a child whose DM onset is recorded to the year only (IPS shape): age 8-9 at onset either way
    y = Case("s24b-y", "female", "2010-06-15")
    y.dermatomyositis("2019")
    course(y, A_VALUES, (3000, 1200), 30, (60, 70), 30)
    out["juvenile-onset-year-only"] = y

    # a child whose onset is recorded to the month: May 2028 is before the 18th birthday in June
    m = Case("s24b-m", "male", "2010-06-15")
    m.dermatomyositis("2028-05")
    out["juvenile-onset-month-before-18"] = m

    # a child whose birthDate is only a year (valid FHIR date): onset at 8-9 years either way
    k = Case("s24b-k", "female", "2010")
    k.dermatomyositis("2019-05-01")
    course(k, A_VALUES, (3000, 1200), 30, (60, 70), 30)
    out["juvenile-birth-year-only"] = k

    # US Eastern, across the 2024-03-10 DST change; 80 kg, 200 mL/h of 10 %
    t = Case("s24b-t", "male", "1960-06-01")
    t.dermatomyositis("2023-06-01")
    t.weight(80, "2024-03-04T08:00:00-05:00")
    med = t.medication()
    t.ivig(med, "2024-03-04T10:00:00-05:00", "2024-03-04T14:00:00-05:00", 80, 200)
    t.ivig(med, "2024-03-05T10:00:00-05:00", "2024-03-05T14:00:00-05:00", 80, 200)
    t.condition(
        "128053003",
        "Deep venous thrombosis (disorder)",
        {"onsetDateTime": "2024-03-19T23:30:00-04:00"},
        "encounter-diagnosis",
    )
    t.condition(
        "59282003",
        "Pulmonary embolism (disorder)",
        {"onsetDateTime": "2024-03-20T00:30:00-04:00"},
        "encounter-diagnosis",
    )
    t.condition(
        "22298006",
        "Myocardial infarction (disorder)",
        {"onsetDateTime": "2024-03-06T13:59:00-05:00"},
        "encounter-diagnosis",
    )
    out["tee-us-eastern-dst"] = t

    # 65th birthday on the second infusion day; 70 kg, 150 mL/h of 10 %
    r = Case("s24b-r", "female", "1959-03-05")
    r.dermatomyositis("2023-06-01")
    r.weight(70, "2024-03-04T08:00:00+01:00")
    med = r.medication()
    r.ivig(med, "2024-03-04T10:00:00+01:00", "2024-03-04T14:00:00+01:00", 70, 150)
    r.ivig(med, "2024-03-05T10:00:00+01:00", "2024-03-05T14:00:00+01:00", 70, 150)
    out["rate-65th-birthday"] = r

    # a cycle dose a hair under the 10 % tolerance edge: 63 + 62.9999 g at 70 kg
    g = Case("s24b-g", "male", "1970-01-01")
    g.dermatomyositis("2023-06-01")
    g.weight(70, "2024-03-04T08:00:00+01:00")
    med = g.medication()
    g.ivig(med, "2024-03-04T10:00:00+01:00", "2024-03-04T14:00:00+01:00", 63, 100)
    g.ivig(med, "2024-03-05T10:00:00+01:00", "2024-03-05T14:00:00+01:00", 62.9999, 100)
    out["dose-tolerance-edge"] = g
    return out


def main() -> None:
    for name, case in cases().items():
        text = json.dumps(case.bundle(), indent=1, ensure_ascii=False) + "\n"
        (HERE / f"{name}.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
