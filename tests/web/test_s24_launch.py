"""SMART App Launch as an EHR sends it: ``aud`` is the launch's ``iss`` exactly as given.

SMART App Launch 2.x, "Obtain authorization code" (https://hl7.org/fhir/smart-app-launch/
app-launch.html#obtain-authorization-code): ``aud`` is the URL of the EHR resource server; "in the
case of an EHR launch flow, this aud value is the same as the launch's iss value". An
authorization server compares it with its FHIR base as it knows it, so an iss sent with a
trailing slash must come back with it.
"""

from __future__ import annotations

from tests.web.conftest import Stack
from tests.web.test_page import Browsing, browsing, launch

__all__ = ["browsing"]  # the fixture used here


def test_aud_is_the_launch_iss_as_given(stack: Stack, browsing: Browsing) -> None:
    iss = stack.iss + "/"
    launch(browsing, stack, iss=iss)
    (auth_q,) = stack.auth.record.authorize_requests
    assert auth_q["aud"] == iss
    assert auth_q["launch"] == "xyz"
