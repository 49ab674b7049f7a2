"""The driver model of benchmarks/scale.py: what caps the Dask engine's efficiency is worked out
from measured parts (a fixed cost per run, a background per second, a cost per patient), so the
arithmetic is checked here on worked numbers."""

from __future__ import annotations

import pytest

from benchmarks.scale import driver_ceiling, per_patient_cpu


def test_the_per_patient_cost_is_the_slope_without_the_background() -> None:
    # fixed 0.15 s, background 0.03 s/s, 60 µs per patient: 4000 patients in 6.0 s and
    # 100 in 1.0 s on the same cluster
    full = (4000, 6.0, 0.15 + 0.03 * 6.0 + 4000 * 60e-6)
    small = (100, 1.0, 0.15 + 0.03 * 1.0 + 100 * 60e-6)
    assert per_patient_cpu(full, small, 0.03) == pytest.approx(60e-6)


def test_a_run_cheaper_than_its_background_costs_nothing_per_patient() -> None:
    assert per_patient_cpu((4000, 6.0, 0.2), (100, 1.0, 0.2), 0.05) == 0.0


@pytest.mark.parametrize(
    ("load", "workers", "expected"),
    [
        # 1 − 0.12 of a core at 60 µs per patient: 14,667 patients/s through the driver
        (0.12, 16, 14_666.67 / (500 * 16)),  # 16 × 500/s = 8,000/s: under it, so 1.0 (capped)
        (0.12, 40, 14_666.67 / (500 * 40)),  # 20,000/s wanted: 0.733
        (1.0, 4, 0.0),  # the background alone fills the core
    ],
)
def test_the_ceiling_is_what_the_rest_of_the_core_allows(
    load: float, workers: int, expected: float
) -> None:
    assert driver_ceiling(500.0, 60e-6, load, workers) == pytest.approx(
        min(1.0, expected), rel=1e-4
    )
