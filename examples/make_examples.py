#!/usr/bin/env python3
"""Write the synthetic example patients in ``examples/bundles/`` (FHIR R4 transaction Bundles).

    python3 examples/make_examples.py

Standard library only, deterministic: the same files every run. Every patient is synthetic
("Example Responder" …); no real person. The expected results in ``examples/expected/`` are
written by hand from the clinical spec and are NOT produced by this script (nor by fhirtis).

Conventions of every bundle:

* ``type: "transaction"``; each entry has ``fullUrl`` ``<Type>/<id>``, the resource with its
  ``id``, and ``request: {"method": "PUT", "url": "<Type>/<id>"}``, so a bundle loads into a
  FHIR server as-is. References are relative (``Patient/<id>``, ``Medication/<id>``).
* Every id starts with the patient's prefix (``resp-``, ``juv-`` …), so all bundles can be
  loaded into one server without colliding. Observation ids are ``<prefix>-<what>-w<week>``
  (``resp-pga-w0`` is the baseline PGA, ``resp-ck-w16`` the week-16 CK);
  administrations are ``<prefix>-ivig-c<cycle>d<day>``.
* Dates are in 2024 with the site's UTC offset (Central Europe, or US Eastern for the
  mixed-units site), daylight saving time included.
* A visit: body weight 08:10, blood drawn 08:20, clinical measures 08:45 (all the same day);
  on a cycle's first day the infusion starts at 10:00 after the visit.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BUNDLES = HERE / "bundles"
INVALID = HERE / "invalid"  # inputs with errors: `fhirtis evaluate` reports them and exits 1
INVALID_NAMES = frozenset({"malformed", "two-patients"})

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"
CORE = "http://fhirtis.org/fhir/CodeSystem/myositis-core-set"
LOCAL = "http://hospital.example.org/codes"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
MRN = "http://hospital.example.org/fhir/sid/mrn"

Json = dict[str, Any]

# core set code → (display, observation category, UCUM unit for value)
CORE_SET = {
    "pga": ("Physician global activity (VAS)", "exam"),
    "ptga": ("Patient/parent global activity (VAS)", "survey"),
    "extramuscular": ("Extramuscular global activity (MDAAT VAS)", "exam"),
    "mmt8-80": ("Manual muscle testing, 8 groups, one side (0–80)", "exam"),
    "mmt8-150": ("Manual muscle testing, 8 groups, both sides (0–150)", "exam"),
    "haq-di": ("HAQ disability index (0–3)", "survey"),
    "chaq": ("Childhood HAQ (0–3)", "survey"),
    "cmas": ("Childhood Myositis Assessment Scale (0–52)", "exam"),
}
ENZYMES = {
    "ck": ("2157-6", "Creatine kinase [Enzymatic activity/volume] in Serum or Plasma"),
    "aldolase": ("1761-6", "Aldolase [Enzymatic activity/volume] in Serum or Plasma"),
    "ldh": ("2532-0", "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma"),
    "ast": ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma"),
    "alt": ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma"),
}
# the local codes of the mixed-units site (mapped by examples/conceptmap-hospital.json)
LOCAL_CODES = {
    "pga": ("RHEUM-PGA-VAS", "Physician global assessment of myositis activity, VAS (local)"),
    "mmt8-150": ("RHEUM-MMT8-BILAT", "Manual muscle test MMT-8, both sides, 0-150 (local)"),
}


def utc_offset(site: str, day: date) -> str:
    """The 2024 UTC offset of a site on a day (daylight saving time included)."""
    if site == "eu":  # CET/CEST: 2024-03-31 to 2024-10-27
        return "+02:00" if date(2024, 3, 31) <= day < date(2024, 10, 27) else "+01:00"
    if site == "us":  # US Eastern: 2024-03-10 to 2024-11-03
        return "-04:00" if date(2024, 3, 10) <= day < date(2024, 11, 3) else "-05:00"
    raise ValueError(site)


def stamp(site: str, when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S") + utc_offset(site, when.date())


def qty(value: Any, unit: str, code: str | None = None) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": code or unit}


def ref(kind: str, rid: str, display: str | None = None) -> Json:
    out: Json = {"reference": f"{kind}/{rid}"}
    if display:
        out["display"] = display
    return out


def category(code: str) -> list[Json]:
    displays = {
        "exam": "Exam",
        "survey": "Survey",
        "laboratory": "Laboratory",
        "vital-signs": "Vital Signs",
    }
    return [{"coding": [{"system": OBS_CATEGORY, "code": code, "display": displays[code]}]}]


class Patient:
    """Collects the resources of one synthetic patient."""

    def __init__(self, prefix: str, site: str = "eu") -> None:
        self.p = prefix
        self.site = site
        self.resources: list[Json] = []
        self.subject = ref("Patient", prefix)

    # -- helpers ------------------------------------------------------------------------------

    def add(self, resource: Json) -> Json:
        self.resources.append(resource)
        return resource

    def at(self, day: date, hh: int, mm: int = 0) -> str:
        return stamp(self.site, datetime(day.year, day.month, day.day, hh, mm))

    # -- Patient and diagnosis ----------------------------------------------------------------

    def patient(self, family: str, given: str, gender: str, birth: date, mrn: str) -> None:
        self.add(
            {
                "resourceType": "Patient",
                "id": self.p,
                "identifier": [{"system": MRN, "value": mrn}],
                "active": True,
                "name": [{"use": "official", "family": family, "given": [given]}],
                "gender": gender,
                "birthDate": birth.isoformat(),
            }
        )

    def dermatomyositis(self, onset: date, recorded: date) -> None:
        self.add(
            {
                "resourceType": "Condition",
                "id": f"{self.p}-dm",
                "clinicalStatus": {"coding": [{"system": COND_CLINICAL, "code": "active"}]},
                "verificationStatus": {
                    "coding": [{"system": COND_VERIFICATION, "code": "confirmed"}]
                },
                "category": [{"coding": [{"system": COND_CATEGORY, "code": "problem-list-item"}]}],
                "code": {
                    "coding": [
                        {
                            "system": SNOMED,
                            "code": "396230008",
                            "display": "Dermatomyositis (disorder)",
                        }
                    ],
                    "text": "Dermatomyositis",
                },
                "subject": self.subject,
                "onsetDateTime": onset.isoformat(),
                "recordedDate": recorded.isoformat(),
            }
        )

    # -- Observations -------------------------------------------------------------------------

    def _obs(
        self,
        rid: str,
        cat: str,
        code: Json,
        value: Json,
        effective: str,
        issued: str,
        extra: Json | None = None,
    ) -> Json:
        resource: Json = {
            "resourceType": "Observation",
            "id": rid,
            "status": "final",
            "category": category(cat),
            "code": code,
            "subject": self.subject,
            "effectiveDateTime": effective,
            "issued": issued,
            "valueQuantity": value,
        }
        if extra:
            resource.update(extra)
        return self.add(resource)

    def measure(
        self, week: int, day: date, key: str, value: Any, unit: str = "{score}", local: bool = False
    ) -> None:
        """One core set measure. ``key`` is a core set code (``pga``, ``mmt8-150`` …)."""
        display, cat = CORE_SET[key]
        if local:
            lcode, ldisplay = LOCAL_CODES[key]
            code = {"coding": [{"system": LOCAL, "code": lcode, "display": ldisplay}]}
            code["text"] = ldisplay
        else:
            code = {"coding": [{"system": CORE, "code": key, "display": display}], "text": display}
        short = {"extramuscular": "extra", "mmt8-80": "mmt8", "mmt8-150": "mmt8", "haq-di": "haq"}
        rid = f"{self.p}-{short.get(key, key)}-w{week}"
        self._obs(
            rid,
            cat,
            code,
            qty(value, unit),
            self.at(day, 8, 45),
            self.at(day, 12, 30),
        )

    def enzyme(
        self, week: int, day: date, name: str, value: Any, uln: Any, unit: str = "U/L"
    ) -> None:
        loinc, display = ENZYMES[name]
        self._obs(
            f"{self.p}-{name}-w{week}",
            "laboratory",
            {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
            qty(value, unit),
            self.at(day, 8, 20),
            self.at(day, 13, 15),
            {"referenceRange": [{"high": qty(uln, unit), "text": f"up to {uln} {unit}"}]},
        )

    def weight(self, week: int, day: date, value: Any, unit: str = "kg") -> None:
        self._obs(
            f"{self.p}-weight-w{week}",
            "vital-signs",
            {
                "coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}],
                "text": "Body weight",
            },
            qty(value, unit),
            self.at(day, 8, 10),
            self.at(day, 8, 12),
        )

    def height(self, week: int, day: date, value: Any, unit: str = "cm") -> None:
        self._obs(
            f"{self.p}-height-w{week}",
            "vital-signs",
            {
                "coding": [{"system": LOINC, "code": "8302-2", "display": "Body height"}],
                "text": "Body height",
            },
            qty(value, unit),
            self.at(day, 8, 10),
            self.at(day, 8, 12),
        )

    def visit(self, week: int, day: date, values: dict[str, Any]) -> None:
        """One assessment visit: ``values`` maps a core set code to a value (VAS in cm unless
        ``vas_unit`` is given), ``enzymes`` to {name: (value, uln)}, ``weight`` to kg."""
        vas_unit = values.get("vas_unit", "cm")
        local = values.get("local", ())
        if "weight" in values:
            self.weight(week, day, values["weight"], values.get("weight_unit", "kg"))
        if "height" in values:
            self.height(week, day, values["height"], values.get("height_unit", "cm"))
        for name, (value, uln) in values.get("enzymes", {}).items():
            self.enzyme(week, day, name, value, uln, values.get("enzyme_unit", "U/L"))
        for key in CORE_SET:
            if key in values:
                unit = vas_unit if key in ("pga", "ptga", "extramuscular") else "{score}"
                self.measure(week, day, key, values[key], unit, local=key in local)

    # -- IVIG ---------------------------------------------------------------------------------

    def medication(self, rid: str, text: str, grams_per_100ml: int) -> None:
        self.add(
            {
                "resourceType": "Medication",
                "id": rid,
                "code": {
                    "coding": [
                        {
                            "system": ATC,
                            "code": "J06BA02",
                            "display": "immunoglobulins, normal human, for intravascular adm.",
                        }
                    ],
                    "text": text,
                },
                "status": "active",
                "form": {"text": "Solution for infusion"},
                "ingredient": [
                    {
                        "itemCodeableConcept": {"text": "Human normal immunoglobulin (IgG)"},
                        "isActive": True,
                        "strength": {
                            "numerator": qty(grams_per_100ml, "g"),
                            "denominator": qty(100, "mL"),
                        },
                    }
                ],
            }
        )

    def infusion(
        self,
        cycle: int,
        day_no: int,
        day: date,
        med: str,
        med_text: str,
        mg_per_ml: int,
        *,
        dose_g: Any = None,
        dose_ml: Any = None,
        rate_ml_h: Any,
        start_hour: int = 10,
    ) -> None:
        """One IVIG administration; its end is start + volume / rate (to the minute)."""
        volume = (
            Decimal(str(dose_ml))
            if dose_ml is not None
            else (Decimal(str(dose_g)) * 1000 / mg_per_ml)
        )
        minutes = int((volume / Decimal(str(rate_ml_h)) * 60).to_integral_value())
        start = datetime(day.year, day.month, day.day, start_hour, 0)
        end = start + timedelta(minutes=minutes)
        dose = qty(dose_g, "g") if dose_g is not None else qty(dose_ml, "mL")
        self.add(
            {
                "resourceType": "MedicationAdministration",
                "id": f"{self.p}-ivig-c{cycle}d{day_no}",
                "status": "completed",
                "medicationReference": ref("Medication", med, med_text),
                "subject": self.subject,
                "effectivePeriod": {"start": stamp(self.site, start), "end": stamp(self.site, end)},
                "reasonReference": [ref("Condition", f"{self.p}-dm")],
                "dosage": {
                    "text": f"IVIG cycle {cycle}, day {day_no}",
                    "route": {
                        "coding": [
                            {"system": SNOMED, "code": "47625008", "display": "Intravenous route"}
                        ]
                    },
                    "dose": dose,
                    "rateQuantity": qty(rate_ml_h, "mL/h"),
                },
            }
        )

    def course(
        self,
        first_days: list[date],
        days_per_cycle: int,
        med: str,
        med_text: str,
        mg_per_ml: int,
        rate_ml_h: Any,
        *,
        dose_g: Any = None,
        dose_ml: Any = None,
        rates: dict[tuple[int, int], Any] | None = None,
    ) -> None:
        """Cycles on consecutive days from each first day; ``rates`` overrides the rate of
        (cycle, day) administrations."""
        for c, first in enumerate(first_days, start=1):
            for d in range(1, days_per_cycle + 1):
                rate = (rates or {}).get((c, d), rate_ml_h)
                self.infusion(
                    c,
                    d,
                    first + timedelta(days=d - 1),
                    med,
                    med_text,
                    mg_per_ml,
                    dose_g=dose_g,
                    dose_ml=dose_ml,
                    rate_ml_h=rate,
                )

    # -- output -------------------------------------------------------------------------------

    def find(self, rid: str) -> Json:
        return next(r for r in self.resources if r["id"] == rid)


def bundle(name: str, resources: list[Json]) -> Json:
    entries = []
    for r in resources:
        url = f"{r['resourceType']}/{r['id']}"
        entries.append({"fullUrl": url, "resource": r, "request": {"method": "PUT", "url": url}})
    return {"resourceType": "Bundle", "id": name, "type": "transaction", "entry": entries}


def weeks_after(start: date, *weeks: int) -> list[date]:
    return [start + timedelta(weeks=w) for w in weeks]


# ----------------------------------------------------------------------------------------------
# the examples


def adult_responder() -> list[Json]:
    """Adult (onset 48), 70 kg, Octagam 10 %, 4 cycles × 4 days × 35 g at 150 mL/h."""
    pt = Patient("resp")
    pt.patient("Responder", "Example", "female", date(1975, 3, 14), "EX-0001")
    pt.dermatomyositis(date(2023, 9, 1), date(2023, 9, 20))
    pt.medication("resp-med-octagam10", "Octagam 10%", 10)
    first = date(2024, 1, 15)
    w0, w4, w8, w12, w16 = date(2024, 1, 8), *weeks_after(first, 4, 8, 12, 16)
    ck_uln, ald_uln = 200, 7.7
    pt.visit(
        0,
        w0,
        {
            "weight": 70,
            "height": 168,
            "enzymes": {"ck": (3000, ck_uln), "aldolase": (12.0, ald_uln)},
            "pga": 6.0,
            "ptga": 7.0,
            "mmt8-150": 100,
            "haq-di": 1.5,
            "extramuscular": 4.0,
        },
    )
    pt.visit(
        4,
        w4,
        {
            "weight": 70,
            "enzymes": {"ck": (2100, ck_uln), "aldolase": (10.5, ald_uln)},
            "pga": 5.0,
            "ptga": 6.5,
            "mmt8-150": 108,
            "haq-di": 1.4,
            "extramuscular": 3.5,
        },
    )
    pt.visit(
        8,
        w8,
        {
            "weight": 70,
            "enzymes": {"ck": (1200, ck_uln), "aldolase": (9.0, ald_uln)},
            "pga": 4.0,
            "ptga": 5.5,
            "mmt8-150": 118,
            "haq-di": 1.2,
            "extramuscular": 3.0,
        },
    )
    pt.visit(
        12,
        w12,
        {
            "weight": 70,
            "enzymes": {"ck": (900, ck_uln), "aldolase": (8.0, ald_uln)},
            "pga": 3.0,
            "ptga": 5.0,
            "mmt8-150": 130,
            "haq-di": 1.2,
            "extramuscular": 3.0,
        },
    )
    pt.visit(
        16,
        w16,
        {
            "weight": 70,
            "enzymes": {"ck": (400, ck_uln), "aldolase": (7.0, ald_uln)},
            "pga": 2.0,
            "ptga": 3.0,
            "mmt8-150": 135,
            "haq-di": 0.75,
            "extramuscular": 1.5,
        },
    )
    pt.course([first, w4, w8, w12], 4, "resp-med-octagam10", "Octagam 10%", 100, 150, dose_g=35)
    return pt.resources


def juvenile() -> list[Json]:
    """Juvenile DM (onset at 9), CMAS and CHAQ, LDH the most abnormal enzyme, Privigen 10 %
    2 g/kg over 2 days by weight (30 kg, then 31 kg from cycle 3), dose recorded in mL."""
    pt = Patient("juv")
    pt.patient("Juvenile", "Example", "female", date(2014, 6, 20), "EX-0002")
    pt.dermatomyositis(date(2023, 10, 15), date(2023, 11, 2))
    pt.medication("juv-med-privigen10", "Privigen 10%", 10)
    first = date(2024, 2, 7)
    w0, w4, w8, w12, w16 = date(2024, 2, 5), *weeks_after(first, 4, 8, 12, 16)
    uln = {"ldh": 280, "ck": 180, "aldolase": 7.5}

    def enz(ldh: int, ck: int, ald: float) -> dict[str, tuple[Any, Any]]:
        return {"ldh": (ldh, uln["ldh"]), "ck": (ck, uln["ck"]), "aldolase": (ald, uln["aldolase"])}

    pt.visit(
        0,
        w0,
        {
            "weight": 30.0,
            "height": 135,
            "enzymes": enz(840, 450, 14.0),
            "pga": 5.5,
            "ptga": 6.0,
            "cmas": 30,
            "chaq": 1.25,
            "extramuscular": 4.5,
        },
    )
    pt.visit(
        4,
        w4,
        {
            "weight": 30.0,
            "enzymes": enz(700, 380, 12.0),
            "pga": 4.5,
            "ptga": 5.0,
            "cmas": 33,
            "chaq": 1.25,
            "extramuscular": 4.0,
        },
    )
    pt.visit(
        8,
        w8,
        {
            "weight": 31.0,
            "height": 136,
            "enzymes": enz(560, 300, 10.5),
            "pga": 3.5,
            "ptga": 4.5,
            "cmas": 37,
            "chaq": 1.0,
            "extramuscular": 3.0,
        },
    )
    pt.visit(
        12,
        w12,
        {
            "weight": 31.0,
            "enzymes": enz(420, 240, 9.0),
            "pga": 2.5,
            "ptga": 4.0,
            "cmas": 40,
            "chaq": 1.0,
            "extramuscular": 3.0,
        },
    )
    pt.visit(
        16,
        w16,
        {
            "weight": 31.0,
            "enzymes": enz(300, 190, 7.5),
            "pga": 1.5,
            "ptga": 2.0,
            "cmas": 46,
            "chaq": 0.5,
            "extramuscular": 1.5,
        },
    )
    med, text = "juv-med-privigen10", "Privigen 10%"
    pt.course([first, w4], 2, med, text, 100, 54, dose_ml=300)  # 30 kg: 2 × 30 g
    for c, start in ((3, w8), (4, w12)):  # 31 kg: 2 × 31 g
        for d in (1, 2):
            pt.infusion(
                c, d, start + timedelta(days=d - 1), med, text, 100, dose_ml=310, rate_ml_h=54
            )
    return pt.resources


def missing_haq() -> list[Json]:
    """clinical spec §8 example E at week 8: the HAQ questionnaire was not returned."""
    pt = Patient("mhaq")
    pt.patient("Missinghaq", "Example", "male", date(1968, 9, 2), "EX-0003")
    pt.dermatomyositis(date(2023, 11, 20), date(2023, 12, 12))
    pt.medication("mhaq-med-gamunex10", "Gamunex-C 10%", 10)
    first = date(2024, 3, 4)
    w0, w4, w8, w12, w16 = date(2024, 2, 26), *weeks_after(first, 4, 8, 12, 16)
    ck, ald = 200, 8

    def enz(c: int, a: float) -> dict[str, tuple[Any, Any]]:
        return {"ck": (c, ck), "aldolase": (a, ald)}

    pt.visit(
        0,
        w0,
        {
            "weight": 80,
            "height": 180,
            "enzymes": enz(3000, 12.0),
            "pga": 6.0,
            "ptga": 7.0,
            "mmt8-150": 100,
            "haq-di": 1.5,
            "extramuscular": 4.0,
        },
    )
    pt.visit(
        4,
        w4,
        {
            "weight": 80,
            "enzymes": enz(2400, 11.0),
            "pga": 5.0,
            "ptga": 6.0,
            "mmt8-150": 110,
            "haq-di": 1.4,
            "extramuscular": 3.5,
        },
    )
    pt.visit(
        8,
        w8,
        {  # no HAQ-DI recorded at this visit
            "weight": 80,
            "enzymes": enz(1200, 9.0),
            "pga": 3.0,
            "ptga": 5.0,
            "mmt8-150": 130,
            "extramuscular": 3.0,
        },
    )
    pt.visit(
        12,
        w12,
        {
            "weight": 80,
            "enzymes": enz(1200, 9.0),
            "pga": 3.0,
            "ptga": 5.0,
            "mmt8-150": 130,
            "haq-di": 1.2,
            "extramuscular": 3.0,
        },
    )
    pt.visit(
        16,
        w16,
        {
            "weight": 80,
            "enzymes": enz(800, 7.5),
            "pga": 2.5,
            "ptga": 4.0,
            "mmt8-150": 132,
            "haq-di": 1.0,
            "extramuscular": 2.0,
        },
    )
    pt.course([first, w4, w8, w12], 4, "mhaq-med-gamunex10", "Gamunex-C 10%", 100, 180, dose_ml=400)
    return pt.resources


def confirmed_deterioration() -> list[Json]:
    """PGA +2.0 cm and MMT-8 −20 % at week 4, again at week 8: confirmed on week 8's date.
    Octagam 5 % (50 mg/mL), 5 days × 520 mL (26 g), 3 cycles."""
    pt = Patient("det")
    pt.patient("Deteriorates", "Example", "female", date(1981, 7, 30), "EX-0004")
    pt.dermatomyositis(date(2024, 1, 10), date(2024, 2, 1))
    pt.medication("det-med-octagam5", "Octagam 5%", 5)
    first = date(2024, 4, 8)
    w0, w4, w8, w12 = date(2024, 4, 1), *weeks_after(first, 4, 8, 12)
    uln = 190
    pt.visit(
        0,
        w0,
        {
            "weight": 65,
            "height": 165,
            "enzymes": {"ck": (1500, uln)},
            "pga": 4.5,
            "ptga": 5.0,
            "mmt8-80": 60,
            "haq-di": 1.0,
            "extramuscular": 3.0,
        },
    )
    pt.visit(
        4,
        w4,
        {
            "weight": 65,
            "enzymes": {"ck": (1800, uln)},
            "pga": 6.5,
            "ptga": 6.0,
            "mmt8-80": 48,
            "haq-di": 1.25,
            "extramuscular": 3.5,
        },
    )
    pt.visit(
        8,
        w8,
        {
            "weight": 65,
            "enzymes": {"ck": (2100, uln)},
            "pga": 6.8,
            "ptga": 6.5,
            "mmt8-80": 46,
            "haq-di": 1.375,
            "extramuscular": 3.5,
        },
    )
    pt.visit(
        12,
        w12,
        {
            "weight": 65,
            "enzymes": {"ck": (1000, uln)},
            "pga": 3.5,
            "ptga": 4.0,
            "mmt8-80": 64,
            "haq-di": 0.875,
            "extramuscular": 2.5,
        },
    )
    pt.course([first, w4, w8], 5, "det-med-octagam5", "Octagam 5%", 50, 240, dose_ml=520)
    return pt.resources


def rate_above_max() -> list[Json]:
    """Panzyga 10 %, 70 kg. Cycle 1 day 4 at 200 mL/h (4.76 mg/kg/min) at age 64: above 4.
    The patient turns 65 on 2024-03-04; cycle 2 day 1 at 147 mL/h (3.5): above 3.3."""
    pt = Patient("rate")
    pt.patient("Fastrate", "Example", "male", date(1959, 3, 4), "EX-0005")
    pt.dermatomyositis(date(2023, 10, 5), date(2023, 10, 30))
    pt.medication("rate-med-panzyga10", "Panzyga 10%", 10)
    first = date(2024, 2, 19)
    w0, w4, w8, w12, w16 = date(2024, 2, 12), *weeks_after(first, 4, 8, 12, 16)
    u = {"ck": 170, "ast": 35, "alt": 45}

    def enz(ck: int, ast: int, alt: int) -> dict[str, tuple[Any, Any]]:
        return {"ck": (ck, u["ck"]), "ast": (ast, u["ast"]), "alt": (alt, u["alt"])}

    pt.visit(
        0,
        w0,
        {
            "weight": 70,
            "height": 170,
            "enzymes": enz(2400, 110, 95),
            "pga": 5.5,
            "ptga": 6.0,
            "mmt8-80": 58,
            "haq-di": 1.625,
            "extramuscular": 3.5,
        },
    )
    pt.visit(
        4,
        w4,
        {
            "weight": 70,
            "enzymes": enz(2000, 92, 80),
            "pga": 5.0,
            "ptga": 5.5,
            "mmt8-80": 60,
            "haq-di": 1.5,
            "extramuscular": 3.0,
        },
    )
    pt.visit(
        8,
        w8,
        {
            "weight": 70,
            "enzymes": enz(1600, 70, 66),
            "pga": 4.5,
            "ptga": 5.0,
            "mmt8-80": 63,
            "haq-di": 1.375,
            "extramuscular": 2.5,
        },
    )
    pt.visit(
        12,
        w12,
        {
            "weight": 70,
            "enzymes": enz(1100, 52, 50),
            "pga": 3.5,
            "ptga": 4.0,
            "mmt8-80": 67,
            "haq-di": 1.25,
            "extramuscular": 2.0,
        },
    )
    pt.visit(
        16,
        w16,
        {
            "weight": 70,
            "enzymes": enz(700, 40, 41),
            "pga": 3.0,
            "ptga": 3.5,
            "mmt8-80": 70,
            "haq-di": 1.0,
            "extramuscular": 1.5,
        },
    )
    rates = {(1, 1): 150, (1, 2): 150, (1, 3): 150, (1, 4): 200, (2, 1): 147}
    pt.course(
        [first, w4, w8, w12],
        4,
        "rate-med-panzyga10",
        "Panzyga 10%",
        100,
        126,
        dose_ml=350,
        rates=rates,
    )
    return pt.resources


def dvt_after_cycle() -> list[Json]:
    """Gammagard Liquid 10 %, 80 kg, 4 × 400 mL. DVT 5 days after cycle 2's last infusion;
    cycle 3 day 1 still at 180 mL/h (3.75 mg/kg/min) — above the 3.3 limit that now applies."""
    pt = Patient("dvt")
    pt.patient("Thrombosis", "Example", "male", date(1972, 11, 11), "EX-0006")
    pt.dermatomyositis(date(2023, 8, 22), date(2023, 9, 14))
    pt.medication("dvt-med-gammagard10", "Gammagard Liquid 10%", 10)
    first = date(2024, 2, 12)
    w0, w4, w8, w12, w16 = date(2024, 2, 5), *weeks_after(first, 4, 8, 12, 16)
    uln = 200
    pt.visit(
        0,
        w0,
        {
            "weight": 80,
            "height": 178,
            "enzymes": {"ck": (1800, uln)},
            "pga": 6.5,
            "ptga": 6.0,
            "mmt8-150": 105,
            "haq-di": 1.75,
            "extramuscular": 4.0,
        },
    )
    pt.visit(
        4,
        w4,
        {
            "weight": 80,
            "enzymes": {"ck": (1500, uln)},
            "pga": 5.5,
            "ptga": 5.5,
            "mmt8-150": 110,
            "haq-di": 1.625,
            "extramuscular": 3.5,
        },
    )
    pt.visit(
        8,
        w8,
        {
            "weight": 80,
            "enzymes": {"ck": (1100, uln)},
            "pga": 4.5,
            "ptga": 5.0,
            "mmt8-150": 118,
            "haq-di": 1.5,
            "extramuscular": 3.0,
        },
    )
    pt.visit(
        12,
        w12,
        {
            "weight": 80,
            "enzymes": {"ck": (800, uln)},
            "pga": 4.0,
            "ptga": 4.5,
            "mmt8-150": 124,
            "haq-di": 1.375,
            "extramuscular": 2.5,
        },
    )
    pt.visit(
        16,
        w16,
        {
            "weight": 80,
            "enzymes": {"ck": (600, uln)},
            "pga": 3.5,
            "ptga": 4.0,
            "mmt8-150": 128,
            "haq-di": 1.25,
            "extramuscular": 2.0,
        },
    )
    rates = {(c, d): 144 for c in (3, 4) for d in (1, 2, 3, 4)}
    rates[(3, 1)] = 180
    pt.course(
        [first, w4, w8, w12],
        4,
        "dvt-med-gammagard10",
        "Gammagard Liquid 10%",
        100,
        180,
        dose_ml=400,
        rates=rates,
    )
    pt.add(
        {
            "resourceType": "Condition",
            "id": "dvt-dvt",
            "clinicalStatus": {"coding": [{"system": COND_CLINICAL, "code": "active"}]},
            "verificationStatus": {"coding": [{"system": COND_VERIFICATION, "code": "confirmed"}]},
            "category": [{"coding": [{"system": COND_CATEGORY, "code": "encounter-diagnosis"}]}],
            "code": {
                "coding": [
                    {
                        "system": SNOMED,
                        "code": "128053003",
                        "display": "Deep venous thrombosis (disorder)",
                    }
                ],
                "text": "Deep vein thrombosis, left popliteal and superficial femoral vein",
            },
            "bodySite": [{"text": "Left leg"}],
            "subject": pt.subject,
            "onsetDateTime": "2024-03-19T16:30:00+01:00",
            "recordedDate": "2024-03-19T19:05:00+01:00",
            "note": [{"text": "Compression ultrasound confirmed; started on anticoagulation."}],
        }
    )
    return pt.resources


def mixed_units_local_codes() -> list[Json]:
    """A US site: VAS in mm, CK in ukat/L, weight in [lb_av], height in [in_i]; PGA and MMT-8
    with the hospital's local codes (examples/conceptmap-hospital.json maps them)."""
    pt = Patient("mix", site="us")
    pt.patient("Mixedunits", "Example", "female", date(1986, 5, 19), "EX-0007")
    pt.dermatomyositis(date(2023, 12, 1), date(2023, 12, 20))
    pt.medication("mix-med-bivigam10", "Bivigam 10%", 10)
    first = date(2024, 1, 29)
    w0, w4, w8, w12, w16 = date(2024, 1, 24), *weeks_after(first, 4, 8, 12, 16)
    common = {
        "vas_unit": "mm",
        "enzyme_unit": "ukat/L",
        "weight_unit": "[lb_av]",
        "height_unit": "[in_i]",
        "local": ("pga", "mmt8-150"),
        "weight": 154,
    }
    uln = 3.2
    pt.visit(
        0,
        w0,
        {
            **common,
            "height": 68,
            "enzymes": {"ck": (30, uln)},
            "pga": 62,
            "ptga": 70,
            "mmt8-150": 102,
            "haq-di": 1.375,
            "extramuscular": 45,
        },
    )
    pt.visit(
        4,
        w4,
        {
            **common,
            "enzymes": {"ck": (24, uln)},
            "pga": 47,
            "ptga": 65,
            "mmt8-150": 108,
            "haq-di": 1.25,
            "extramuscular": 40,
        },
    )
    pt.visit(
        8,
        w8,
        {
            **common,
            "enzymes": {"ck": (15, uln)},
            "pga": 35,
            "ptga": 52,
            "mmt8-150": 117,
            "haq-di": 1.0,
            "extramuscular": 30,
        },
    )
    pt.visit(
        12,
        w12,
        {
            **common,
            "enzymes": {"ck": (9, uln)},
            "pga": 28,
            "ptga": 40,
            "mmt8-150": 125,
            "haq-di": 0.875,
            "extramuscular": 25,
        },
    )
    pt.visit(
        16,
        w16,
        {
            **common,
            "enzymes": {"ck": (4.5, uln)},
            "pga": 20,
            "ptga": 30,
            "mmt8-150": 134,
            "haq-di": 0.625,
            "extramuscular": 15,
        },
    )
    pt.course([first, w4, w8, w12], 4, "mix-med-bivigam10", "Bivigam 10%", 100, 150, dose_ml=350)
    return pt.resources


def malformed() -> list[Json]:
    """Four broken resources; the rest of the patient is still evaluable."""
    pt = Patient("mal")
    pt.patient("Malformed", "Example", "female", date(1979, 2, 25), "EX-0008")
    pt.dermatomyositis(date(2023, 9, 18), date(2023, 10, 9))
    pt.medication("mal-med-octagam10", "Octagam 10%", 10)
    first = date(2024, 6, 10)
    w0, w4, w8, w12, w16 = date(2024, 6, 3), *weeks_after(first, 4, 8, 12, 16)
    ck, ald = 200, 7.5

    def enz(c: int, a: float) -> dict[str, tuple[Any, Any]]:
        return {"ck": (c, ck), "aldolase": (a, ald)}

    pt.visit(
        0,
        w0,
        {
            "weight": 70,
            "height": 165,
            "enzymes": enz(2000, 15.0),
            "pga": 5.0,
            "ptga": 6.0,
            "mmt8-80": 55,
            "haq-di": 1.5,
            "extramuscular": 4.0,
        },
    )
    pt.visit(
        4,
        w4,
        {
            "weight": 70,
            "enzymes": enz(1600, 13.0),
            "pga": 4.0,
            "ptga": 5.5,
            "mmt8-80": 58,
            "haq-di": 1.375,
            "extramuscular": 3.5,
        },
    )
    pt.visit(
        8,
        w8,
        {
            "weight": 70,
            "enzymes": enz(1200, 10.0),
            "pga": 3.0,
            "ptga": 5.0,
            "mmt8-80": 62,
            "haq-di": 1.25,
            "extramuscular": 3.0,
        },
    )
    pt.visit(
        12,
        w12,
        {
            "weight": 70,
            "enzymes": enz(900, 9.0),
            "pga": 2.5,
            "ptga": 4.0,
            "mmt8-80": 66,
            "haq-di": 1.0,
            "extramuscular": 2.5,
        },
    )
    pt.visit(
        16,
        w16,
        {
            "weight": 70,
            "enzymes": enz(500, 7.0),
            "pga": 2.0,
            "ptga": 3.5,
            "mmt8-80": 70,
            "haq-di": 0.875,
            "extramuscular": 2.0,
        },
    )
    pt.course([first, w4, w8, w12], 4, "mal-med-octagam10", "Octagam 10%", 100, 150, dose_ml=350)

    # 1. a number sent as a string (with a decimal comma)
    pt.find("mal-ptga-w4")["valueQuantity"]["value"] = "5,5"
    # 2. a unit that is not UCUM
    pt.find("mal-height-w0")["valueQuantity"] = {
        "value": 0.0082,
        "unit": "furlong",
        "system": UCUM,
        "code": "furlong",
    }
    # 3. no subject
    del pt.find("mal-ck-w8")["subject"]
    # 4. a medicationReference to a Medication that is not there
    pt.find("mal-ivig-c3d2")["medicationReference"] = ref(
        "Medication", "mal-med-gammagard10", "Gammagard Liquid 10%"
    )
    return pt.resources


def two_patients() -> list[Json]:
    """Resources of two patients in one file: an input error as a whole."""
    out: list[Json] = []
    for prefix, family, birth in (
        ("twoa", "Firstof-Two", date(1970, 1, 5)),
        ("twob", "Secondof-Two", date(1982, 8, 17)),
    ):
        pt = Patient(prefix)
        pt.patient(family, "Example", "female", birth, f"EX-{prefix.upper()}")
        pt.dermatomyositis(date(2023, 10, 1), date(2023, 10, 20))
        pt.visit(0, date(2024, 3, 4), {"weight": 68, "pga": 5.0, "mmt8-80": 60})
        out.extend(pt.resources)
    return out


EXAMPLES = {
    "adult-responder": adult_responder,
    "juvenile": juvenile,
    "missing-haq": missing_haq,
    "confirmed-deterioration": confirmed_deterioration,
    "rate-above-max": rate_above_max,
    "dvt-after-cycle": dvt_after_cycle,
    "mixed-units-local-codes": mixed_units_local_codes,
    "malformed": malformed,
    "two-patients": two_patients,
}


def main() -> None:
    BUNDLES.mkdir(parents=True, exist_ok=True)
    INVALID.mkdir(parents=True, exist_ok=True)
    for name, make in EXAMPLES.items():
        text = json.dumps(bundle(name, make()), indent=2, ensure_ascii=False) + "\n"
        folder = INVALID if name in INVALID_NAMES else BUNDLES
        (folder / f"{name}.json").write_text(text, encoding="utf-8")
    (INVALID / "not-a-bundle.json").write_text("[1, 2, 3]\n", encoding="utf-8")
    print(f"wrote {len(EXAMPLES) + 1} files to {BUNDLES} and {INVALID}")


if __name__ == "__main__":
    main()
