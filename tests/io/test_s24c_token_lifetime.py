"""A token response's ``expires_in`` (RFC 6749 §5.1: "The lifetime in seconds of the access
token", a JSON number; some servers send digits as a string) that is not a real number of
seconds. ``str.isdigit`` takes ``²``, which ``float`` refuses (a ValueError escaped the auth flow:
every FHIR request failed with an unexpected error, not a malformed-response error); 400 digits
read as infinity, so the token was never refreshed before it expired (every request after its
real expiry met a 401 first). Both fall back to the default lifetime, as other unreadable values
do."""

from __future__ import annotations

from typing import Any

import pytest

from fhirtis.io._auth import DEFAULT_TOKEN_LIFETIME_SECONDS, _lifetime


@pytest.mark.parametrize("expires_in", ["\u00b2", "9" * 400, "\u0663\u0666\u0660\u0660"])
def test_an_expires_in_that_is_no_real_number_of_seconds_is_the_default(expires_in: Any) -> None:
    assert _lifetime(expires_in) == DEFAULT_TOKEN_LIFETIME_SECONDS


def test_digits_are_still_read() -> None:
    assert _lifetime(" 3600 ") == 3600.0
    assert _lifetime(1e308) == 1e308  # a JSON number: orjson refuses anything beyond a double
