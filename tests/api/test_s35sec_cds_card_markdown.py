"""Text from the patient's record is literal text in a CDS card's Markdown ``detail``.

CDS Hooks 2.0, Card attributes: ``detail`` "Optional detailed information to display; if
provided MUST be represented in (GitHub Flavored) Markdown" — GFM includes raw HTML (only a few
tags filtered: GFM spec §6.11, "Disallowed Raw HTML"), images, links and autolinks
(https://github.github.com/gfm/). fhirtis puts record text in the cards: a Condition's name
(the thrombosis history risk factor, and the maximum rate's reason in two more cards), a
Medication's name, a unit as ordered, a Medication reference's ``display``. That text comes from
whoever wrote the record (records imported from another organisation, a patient-reported
Condition): put into Markdown as it is, ``![](https://…)`` makes the EHR that renders the card
fetch another site while the clinician reads it (a beacon), ``[…](https://…)`` and a bare URL
are links in a card fhirtis signs as its own, ``<img onerror=…>`` is HTML for the EHR's page,
and a line break starts a line of the card's own (a forged "- **…**" item). Each such text is
shown as literal text: its Markdown escaped (CommonMark §2.4 backslash escapes), autolinks
broken up, line breaks made spaces.

The rendering here is markdown-it's CommonMark with raw HTML on (as GFM has it), tables and
strikethrough.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from fhirtis.api.cds_hooks.cards import md_code, md_text
from tests.api.test_cds_hooks import (
    SIGN,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.fhir.builders import SCT, condition, medication, qty

markdown_it = pytest.importorskip("markdown_it")

Json = dict[str, Any]

BEACON = "![x](https://evil.example/t.png?u=1)"
LINK = "[renew your login](https://evil.example/login)"
HTML = "<img src=x onerror=alert(1)>"
BARE = "see www.evil.example or https://evil.example/a or a@evil.example"
FORGED = "\n\n- **No risk factor**: none found"
HOSTILE = f"Deep vein thrombosis {BEACON} {LINK} {HTML} {BARE}{FORGED}"


def _render(detail: str) -> str:
    md = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    return str(md.render(detail))


def _inert(detail: str) -> None:
    """``detail`` renders with no image, link or HTML of the record's, and no forged line."""
    html = _render(detail)
    assert "<img" not in html, html
    assert "<a " not in html, html
    assert "onerror" not in html or "&lt;img" in html, html
    # GFM's autolinks (www., scheme://, e-mail) would make links of these: broken up
    assert not re.search(r"(?<!\\)www\.|(?<!\\)://|(?<!\\)@", detail), detail
    assert not any(line.startswith("- **No risk factor") for line in detail.splitlines())


def _dvt(text: str) -> Json:
    dvt = condition("dvt", SCT, "128053003", "2024-02-13T10:00:00Z")
    dvt["code"]["text"] = text
    return dvt


async def test_a_condition_name_is_literal_text_in_every_card() -> None:
    body = call([ivig_order(rate=qty(300, "mL/h"))], full_prefetch(patient_70kg(_dvt(HOSTILE))))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    for name in ("TEE risk", "Max IVIG rate", "exceeds"):
        detail = card_with(cards, name)["detail"]
        _inert(detail)
        # the name is still shown, as the record has it (line breaks as spaces)
        assert "![x](https://evil.example/t.png?u=1)" in _render(detail)
        assert "&lt;img src=x onerror=alert(1)&gt;" in _render(detail)
    risk = card_with(cards, "TEE risk")
    assert "`Condition/dvt`" in risk["detail"]  # evidence still a code span
    assert "History of venous or arterial thrombosis" in risk["summary"]


async def test_a_medication_name_and_an_ordered_unit_are_literal_text() -> None:
    order = ivig_order(rate={"value": 300, "unit": f"mL per {HTML}"})
    order["contained"] = [medication("m", 10, text=f"Privigen {LINK}{FORGED}")]
    order["dosageInstruction"][0]["doseAndRate"].append({"rateQuantity": qty(300, "mL/h")})
    body = call([order], full_prefetch(patient_70kg()))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    detail = card_with(cards, "Max IVIG rate")["detail"]
    _inert(detail)
    assert "Privigen [renew your login](https://evil.example/login)" in _render(detail)
    assert "A rate could not be read" in detail  # the unit, shown as text


async def test_an_unread_medication_display_is_literal_text() -> None:
    shown = f"IMMUNE GLOBULIN (HUMAN) 10 % {BEACON}{FORGED}"
    med = {"medicationReference": {"reference": "Medication/eXyz1", "display": shown}}
    body = call([ivig_order(rate=qty(300, "mL/h"), med=med)], full_prefetch(patient_70kg()))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    detail = card_with(cards, "not checked")["detail"]
    _inert(detail)
    assert "`Medication/eXyz1`" in detail


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Factor V Leiden *heterozygous*", "Factor V Leiden *heterozygous*"),
        ("lupus anticoagulant <positive>", "lupus anticoagulant &lt;positive&gt;"),
        ("estradiol_patch 50 [ug]/d", "estradiol_patch 50 [ug]/d"),
        ("back\\slash `tick` ~~x~~ a|b & c", "back\\slash `tick` ~~x~~ a|b &amp; c"),
    ],
)
def test_md_text_renders_as_the_text_itself(text: str, shown: str) -> None:
    assert _render(md_text(text)) == f"<p>{shown}</p>\n"


def test_md_code_cannot_be_closed_early() -> None:
    html = _render(md_code("Medication/a` <img src=x onerror=alert(1)> `b\nc"))
    assert "<img" not in html
    assert html.count("<code>") == 1
