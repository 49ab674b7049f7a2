"""Small exact statistics of the cohort report: proportions with Wilson intervals, half-up
rounding, medians and quartiles over exact decimals."""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from statistics import NormalDist, median, quantiles
from typing import Any

from fhirtis.clinical.frozen import record

Json = dict[str, Any]
_Z95 = NormalDist().inv_cdf(0.975)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion, as fractions (0–1)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs 0 ≤ successes ≤ n and n > 0, got {successes}/{n}")
    z = _Z95 if confidence == 0.95 else NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # the ends are exact: the formula's difference misses 0 (0/5) or 1 (13/13) by an ulp
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def round_half_up(value: Fraction | Decimal | int, places: int) -> Decimal:
    """Exact half-up rounding (away from zero) to ``places`` decimals."""
    f = Fraction(value)
    scaled = abs(f) * 10**places
    whole = math.floor(scaled + Fraction(1, 2))
    out = Decimal(whole).scaleb(-places)
    return -out if f < 0 else out


@record
class Proportion:
    """``count`` of ``total``; the percentage is exact, the Wilson 95 % CI a float pair."""

    count: int
    total: int

    @property
    def fraction(self) -> Fraction | None:
        return Fraction(self.count, self.total) if self.total else None

    @property
    def percent(self) -> Fraction | None:
        return None if self.total == 0 else Fraction(100 * self.count, self.total)

    @property
    def ci95(self) -> tuple[float, float] | None:
        return wilson_interval(self.count, self.total) if self.total else None

    def text(self, places: int = 1, *, ci: bool = False) -> str:
        if self.percent is None:
            return f"{self.count}/0"
        out = f"{self.count}/{self.total} ({round_half_up(self.percent, places)} %"
        if ci and self.ci95 is not None:
            low, high = self.ci95
            out += f"; 95% CI {low * 100:.{places}f}–{high * 100:.{places}f}"
        return out + ")"

    def as_record(self, places: int = 1) -> Json:
        ci = self.ci95
        return {
            "count": self.count,
            "of": self.total,
            "percent": None if self.percent is None else round_half_up(self.percent, places),
            "ci95_percent": ci_record(None if ci is None else (ci[0] * 100, ci[1] * 100), places),
        }


@record
class Spread:
    """Median and interquartile range (exact; quartiles by ``method="inclusive"``)."""

    n: int
    median: Decimal
    q1: Decimal
    q3: Decimal

    def text(self, places: int = 2) -> str:
        """For people: to ``places`` decimals, half up (:meth:`as_record` keeps them exact)."""
        median, q1, q3 = (
            number_text(round_half_up(v, places)) for v in (self.median, self.q1, self.q3)
        )
        return f"{median} ({q1}–{q3}), n={self.n}"

    def as_record(self) -> Json:
        return {"n": self.n, "median": self.median, "q1": self.q1, "q3": self.q3}


def spread(values: Iterable[Decimal | int]) -> Spread | None:
    """Median and IQR of the values; None when there are none."""
    data = sorted(Decimal(v) for v in values)
    if not data:
        return None
    mid = Decimal(median(data))
    if len(data) == 1:
        return Spread(1, mid, mid, mid)
    q1, _, q3 = quantiles(data, n=4, method="inclusive")
    return Spread(len(data), _norm(mid), _norm(Decimal(q1)), _norm(Decimal(q3)))


def _norm(d: Decimal) -> Decimal:
    return d.normalize() + 0 if d == d.to_integral_value() else d.normalize()


def number_text(d: Decimal | None) -> str:
    if d is None:
        return "—"
    n = d.normalize()
    return format(n.quantize(Decimal(1)) if n == n.to_integral_value() else n, "f")


def ci_record(ci: tuple[float, float] | None, places: int) -> list[Decimal] | None:
    if ci is None:
        return None
    return [round_half_up(Fraction(ci[0]), places), round_half_up(Fraction(ci[1]), places)]


def rate_text(f: Fraction | None) -> str:
    return "—" if f is None else format(round_half_up(f, 2), "f")
