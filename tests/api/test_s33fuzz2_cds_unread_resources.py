"""A prefetched resource that cannot be read is data missing, and the cards say so (s33 fuzz).

Found by mutating CDS Hooks prefetch: the patient's DVT Condition with an impossible onset
date (or a code that is no string) is excluded as unreadable. The risk card then said, as
"info", "TEE risk with IVIG: no thrombosis risk factor found (some could not be assessed)" (the
"some" being obesity), and the max-rate card "Max IVIG rate 4 mg/kg/min = 168 mL/h" as "info",
with nothing on that card about the unread resource: the label's 3.3 mg/kg/min (138 mL/h)
applies to a patient with a DVT history (spec §5.2). Likewise the latest body weight with a
value that is no number: the card computed the maximum from a 400-day-old weight (146 mL/h
for 74 kg instead of 138 mL/h for 70 kg) and said only that the weight was stale. Data that
does not allow a rule to run is said (spec, preamble; §1 "excluded, with the reason"), as the
risk card already says for a search answered in part ("data may be incomplete").
"""

from __future__ import annotations

import copy

from tests.api.test_cds_hooks import (
    DVT,
    SIGN,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.fhir.builders import qty


async def test_an_unreadable_dvt_is_said_on_both_cards() -> None:
    dvt = copy.deepcopy(DVT)
    dvt["onsetDateTime"] = "2024-02-30T10:00:00Z"  # no such day: the Condition is excluded
    body = call([ivig_order(rate=qty(300, "mL/h"))], full_prefetch(patient_70kg(dvt)))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    risk = card_with(cards, "TEE risk")
    assert (
        risk["summary"]
        == "TEE risk with IVIG: no thrombosis risk factor found (data may be incomplete)"
    )
    assert risk["indicator"] == "warning"
    assert "1 resource(s) could not be read" in risk["detail"]
    limit = card_with(cards, "Max IVIG rate")
    assert limit["indicator"] == "warning"
    assert "1 of the patient's resource(s) could not be read" in limit["detail"]
    assert "thrombosis risk factor" in limit["detail"]


async def test_an_unreadable_latest_weight_is_said_on_the_max_rate_card() -> None:
    resources = patient_70kg(DVT)
    resources[1]["valueQuantity"]["value"] = "70"  # a string: not a JSON number
    body = call([ivig_order(rate=qty(300, "mL/h"))], full_prefetch(resources))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    limit = card_with(cards, "Max IVIG rate")
    assert "74 kg" in limit["summary"]  # the older weight, the only one read
    assert "could not be read" in limit["detail"]
    assert "newer body weight" in limit["detail"]
    assert limit["indicator"] == "warning"


async def test_all_read_says_nothing_of_unread_data() -> None:
    body = call([ivig_order(rate=qty(300, "mL/h"))], full_prefetch(patient_70kg(DVT)))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    limit = card_with(cards, "Max IVIG rate")
    assert "could not be read" not in limit["detail"]
    assert limit["indicator"] == "info"
    assert "could not be read" not in card_with(cards, "TEE risk")["detail"]
