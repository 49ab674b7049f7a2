"""The CDS TIS card's summary names the juvenile criteria (s34, what a clinician reads).

Clinical spec §2.3/§2.4: a juvenile dermatomyositis patient's TIS is categorised with the
juvenile thresholds (minimal 30, moderate 45, major 70), not the adult ones (20, 40, 60). The
card's summary, which is all a CDS client shows before the card is opened, said "Latest TIS 42.5
on …: minimal improvement" with no word of the criteria: read with the adult thresholds in mind
42.5 is moderate. The detail said "(juvenile criteria)"; the summary now does too. An adult's
summary is unchanged (tests/api/test_cds_hooks.py)."""

from __future__ import annotations

from pathlib import Path

from fhirtis.api.cds_hooks.cards import tis_card
from fhirtis.pipeline.offline import evaluate_bundle_file
from fhirtis.settings import load_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _card(name: str) -> dict[str, object]:
    settings = load_settings(EXAMPLES / "settings.toml")
    result = evaluate_bundle_file(EXAMPLES / "bundles" / f"{name}.json", settings)
    card = tis_card(result.evaluation)
    assert card is not None
    return card


def test_a_juvenile_patients_tis_summary_names_the_juvenile_criteria() -> None:
    card = _card("juvenile")
    summary = str(card["summary"])
    assert summary.startswith("Latest TIS "), summary
    assert summary.endswith("improvement (juvenile criteria)"), summary
    assert len(summary) < 140
    assert "(juvenile criteria)" in str(card["detail"])


def test_an_adults_tis_summary_is_unchanged() -> None:
    summary = str(_card("adult-responder")["summary"])
    assert "criteria" not in summary, summary
