"""Throughput of the pure clinical core on one core.

Prints TIS evaluations per second and IVIG exposure evaluations per second, each beside a
baseline measured in the same run: the same work done the naive way with binary floats and
no reasons, notes or checks (the floor an exact, explained computation is compared with).

    uv run --frozen python benchmarks/core.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fhirtis.clinical.facts import (
    BodyWeight,
    FhirTime,
    Instrument,
    IvigAdministration,
    Measure,
    MeasureValue,
    PatientFacts,
    Sex,
)
from fhirtis.clinical.ivig import compute_exposure
from fhirtis.clinical.policy import Policy, Population
from fhirtis.clinical.tis import AssessmentValues, compute_tis

DAY = datetime(2024, 1, 1, tzinfo=UTC).date()
POLICY = Policy()


def _rate(fn: Callable[[int], object], n_inputs: int, seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(n_inputs):
            fn(i)
        done += n_inputs
    return done / (time.perf_counter() - start)


def _visit(rng: random.Random) -> dict[str, Decimal]:
    def d(lo: float, hi: float, places: int = 1) -> Decimal:
        return round(Decimal(str(rng.uniform(lo, hi))), places)

    return {
        "pga": d(0, 10),
        "ptga": d(0, 10),
        "mmt8": d(0, 150, 0),
        "haq": d(0, 3, 3),
        "extramuscular": d(0, 10),
        "ck": d(50, 5000, 0),
    }


def _assessment(v: dict[str, Decimal]) -> AssessmentValues:
    def mv(measure: Measure, inst: Instrument, value: Decimal) -> MeasureValue:
        return MeasureValue(measure, inst, value, DAY, "Observation/x", uln=Decimal(200))

    return AssessmentValues(
        {
            Measure.PGA: mv(Measure.PGA, Instrument.VAS, v["pga"]),
            Measure.PTGA: mv(Measure.PTGA, Instrument.VAS, v["ptga"]),
            Measure.MMT8: mv(Measure.MMT8, Instrument.MMT8_150, v["mmt8"]),
            Measure.HAQ: mv(Measure.HAQ, Instrument.HAQ_DI, v["haq"]),
            Measure.EXTRAMUSCULAR: mv(Measure.EXTRAMUSCULAR, Instrument.VAS, v["extramuscular"]),
        },
        {Instrument.CK: mv(Measure.ENZYME, Instrument.CK, v["ck"])},
    )


_FLOAT_EDGES = (5.0, 15.0, 25.0, 40.0)
_FLOAT_MMT = (2.0, 10.0, 20.0, 30.0)
_FLOAT_SCORES = {
    "pga": (0, 7.5, 15, 17.5, 20),
    "ptga": (0, 2.5, 5, 7.5, 10),
    "mmt8": (0, 10, 20, 27.5, 32.5),
    "haq": (0, 5, 7.5, 7.5, 10),
    "ck": (0, 2.5, 5, 7.5, 7.5),
    "extramuscular": (0, 7.5, 12.5, 15, 20),
}
_SPAN = {"pga": 10.0, "ptga": 10.0, "mmt8": -150.0, "haq": 3.0, "extramuscular": 10.0}


def naive_tis(b: dict[str, float], f: dict[str, float]) -> float:
    """The float floor: what a quick, unsafe implementation would do."""
    total = 0.0
    for key, scores in _FLOAT_SCORES.items():
        if key == "ck":
            pct = (b[key] - f[key]) / b[key] * 100
        else:
            pct = (b[key] - f[key]) / _SPAN[key] * 100
        edges = _FLOAT_MMT if key == "mmt8" else _FLOAT_EDGES
        score = scores[-1]
        for i, edge in enumerate(edges):
            if pct <= edge:
                score = scores[i]
                break
        total += score
    return total


def _course(
    rng: random.Random, start: datetime
) -> tuple[list[IvigAdministration], list[BodyWeight]]:
    admins = []
    for cycle in range(6):
        cstart = start + timedelta(days=28 * cycle)
        for day in range(rng.randint(2, 5)):
            admins.append(
                IvigAdministration(
                    f"MedicationAdministration/{cycle}-{day}",
                    FhirTime.of(cstart + timedelta(days=day)),
                    dose_ml=Decimal(350),
                    concentration_mg_per_ml=Decimal(100),
                    rate_ml_per_h=Decimal(rng.choice((120, 150, 180, 200))),
                )
            )
    weights = [BodyWeight("Observation/w", start - timedelta(days=3), Decimal(70))]
    return admins, weights


def naive_exposure(admins: list[tuple[datetime, float, float]], kg: float) -> float:
    total, last, cycles = 0.0, None, 0
    for start, grams, _ in sorted(admins):
        if last is None or (start - last).days > 7:
            cycles += 1
        last = start
        total += grams
    return total / kg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    rng = random.Random(20221006)
    pairs = [(_visit(rng), _visit(rng)) for _ in range(500)]
    exact = [(_assessment(b), _assessment(f)) for b, f in pairs]
    floats = [
        ({k: float(v) for k, v in b.items()}, {k: float(v) for k, v in f.items()}) for b, f in pairs
    ]
    tis_rate = _rate(
        lambda i: compute_tis(exact[i][0], exact[i][1], Population.ADULT, POLICY),
        len(exact),
        args.seconds,
    )
    floor_rate = _rate(lambda i: naive_tis(*floats[i]), len(floats), args.seconds)

    start = datetime(2024, 1, 8, 9, tzinfo=UTC)
    courses = [_course(rng, start) for _ in range(100)]
    patient = PatientFacts(sex=Sex.FEMALE)
    exp_rate = _rate(
        lambda i: compute_exposure(courses[i][0], courses[i][1], (), patient, POLICY),
        len(courses),
        args.seconds,
    )
    naive_courses = [[(a.start, 35.0, 180.0) for a in admins] for admins, _ in courses]
    exp_floor = _rate(lambda i: naive_exposure(naive_courses[i], 70.0), len(courses), args.seconds)
    n_admin = sum(len(a) for a, _ in courses) / len(courses)

    print("fhirtis clinical core, one core")
    print(f"{'':34}{'fhirtis':>14}{'float floor':>14}{'ratio':>8}")
    print(
        f"{'TIS evaluations/s':34}{tis_rate:>14,.0f}{floor_rate:>14,.0f}"
        f"{floor_rate / tis_rate:>7.1f}x"
    )
    print(
        f"{f'IVIG exposures/s ({n_admin:.0f} admins, 6 cycles)':34}{exp_rate:>14,.0f}"
        f"{exp_floor:>14,.0f}{exp_floor / exp_rate:>7.1f}x"
    )


if __name__ == "__main__":
    main()
