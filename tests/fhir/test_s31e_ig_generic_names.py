"""Normal human immune globulin by the generic names European and clinical records use.

Clinical spec §4: IVIG "only text — brand names and generic names ... case-insensitive" must be
recognised. Beside the US names (profiles/TERMINOLOGY.md: "immune globulin intravenous (human)",
"human immunoglobulin G", IVIG, IGIV), records write:

* "intravenous immunoglobulin", the words IVIG abbreviates (MeSH's heading "Immunoglobulins,
  Intravenous"; "intravenous immunoglobulin (IVIG)" in the dermatomyositis literature, e.g.
  PubMed 8771171);
* "human normal immunoglobulin", the European Pharmacopoeia and EMA name of the product (EMA core
  SmPC for "human normal immunoglobulin for intravenous administration (IVIg)"; Flebogamma DIF
  SmPC section 2, "Human normal immunoglobulin (IVIg)"), for intravenous and subcutaneous
  products alike.

Before, an intravenous administration of "Intravenous immunoglobulin 10%" was not counted (since
s31b, reported as not recognised): its 140 g were missing from the exposure. Now these names are
generic immune globulin names: counted where the route is intravenous, or (no route recorded) where
the name says intravenous; "human normal immunoglobulin" without a route is counted with the "route
not recorded" warning (it names subcutaneous products too), and excluded where it says
subcutaneous."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.fhir.builders import patient
from tests.fhir.reading import extract
from tests.fhir.test_s31b_ig_names import IV, WEIGHT
from tests.fhir.test_s31b_ig_names import administered as _ma
from tests.fhir.test_s31b_ig_names import named_medication as _medication


def _route_warned(data: Any) -> bool:
    return any("route not recorded" in i.diagnostics for i in data.issues)


@pytest.mark.parametrize(
    "text",
    [
        "Intravenous immunoglobulin 10%",
        "INTRAVENOUS IMMUNOGLOBULIN",
        "Immunoglobulins, Intravenous",
        "Human normal immunoglobulin 100 mg/ml",
        "Human Normal Immunoglobulin (IVIg) 50 mg/ml",
    ],
)
def test_an_intravenous_administration_is_counted(text: str) -> None:
    data = extract(patient(), WEIGHT, _medication(text), _ma(IV))
    (a,) = data.administrations
    assert a.dose_g == Decimal(140)
    assert not _route_warned(data)


@pytest.mark.parametrize(
    ("text", "warned"),
    [
        ("Intravenous immunoglobulin 10%", False),
        ("Human Normal Immunoglobulin (IVIg) 50 mg/ml", False),
        ("Human normal immunoglobulin 100 mg/ml", True),  # IV and SC products share the name
    ],
)
def test_without_a_route_the_name_decides(text: str, warned: bool) -> None:
    data = extract(patient(), WEIGHT, _medication(text), _ma(None))
    (a,) = data.administrations
    assert a.dose_g == Decimal(140)
    assert _route_warned(data) is warned


def test_a_subcutaneous_human_normal_immunoglobulin_is_not_ivig() -> None:
    data = extract(
        patient(), WEIGHT, _medication("Human normal immunoglobulin (SCIg) 165 mg/ml"), _ma(None)
    )
    assert data.administrations == []
    assert any("subcutaneous immune globulin product" in i.diagnostics for i in data.issues)
