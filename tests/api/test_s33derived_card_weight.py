"""What the CDS Hooks rate card cites for the dosing weight (audit s33derived).

Clinical spec §4 "Dosing weight": Devine's ideal body weight is computed from the height and sex,
not the weight; the adjusted weight from both. The card's "Dosing weight now" line named the
weight's date and Observation on every basis, and never the height: on a site with
``dosing_weight = ideal`` it read "74.99 kg (ideal body weight, weighed …, `Observation/w…`)",
citing a weight the figure does not come from. It now cites the dosing weight's own inputs:
the weight (actual), the height (ideal), both (adjusted).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from fhirtis.api.cds_hooks.cards import _weight_text
from fhirtis.clinical.facts import BodyHeight, BodyWeight, PatientFacts, Sex
from fhirtis.clinical.policy import Policy
from fhirtis.clinical.weight import dosing_weight

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
WEIGHT = BodyWeight(source="Observation/w1", when=datetime(2024, 2, 27, tzinfo=UTC), kg=Decimal(90))
HEIGHT = BodyHeight(source="Observation/h1", when=datetime(2023, 6, 1, tzinfo=UTC), cm=Decimal(180))


def _text(basis: str) -> str:
    weight = dosing_weight(
        NOW, [WEIGHT], [HEIGHT], PatientFacts(sex=Sex.MALE), Policy(dosing_weight=basis)
    )
    assert weight.kg is not None
    return _weight_text(weight, NOW)


@pytest.mark.parametrize(
    ("basis", "cited", "not_cited"),
    [
        ("actual", ["weighed 2024-02-27", "`Observation/w1`"], ["Observation/h1", "2023-06-01"]),
        ("ideal", ["2023-06-01", "`Observation/h1`"], ["Observation/w1", "weighed"]),
        (
            "adjusted",
            ["weighed 2024-02-27", "`Observation/w1`", "2023-06-01", "`Observation/h1`"],
            [],
        ),
    ],
)
def test_the_card_cites_what_the_dosing_weight_is_computed_from(
    basis: str, cited: list[str], not_cited: list[str]
) -> None:
    text = _text(basis)
    assert f"{basis} body weight" in text
    for part in cited:
        assert part in text
    for part in not_cited:
        assert part not in text
