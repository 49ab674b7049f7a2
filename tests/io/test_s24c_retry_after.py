"""A ``Retry-After`` a server (or a gateway in front of it) sends that Python's ``int`` cannot
read. RFC 9110 §10.2.3: ``Retry-After = HTTP-date / delay-seconds``, ``delay-seconds =
1*DIGIT`` (ASCII digits, RFC 5234 B.1). ``str.isdigit`` also takes ``²`` and other Unicode
digits, and ``int`` refuses more than 4,300 digits (CVE-2020-10735's limit): either escaped the
client as a ValueError (not a FHIR client error), so a patient read or a CDS prefetch read failed
with an unexpected error instead of "gave up after the server asked to wait too long"."""

from __future__ import annotations

import httpx
import pytest

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.io._errors import TooManyRetries
from fhirtis.io._retry import parse_retry_after

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("9" * 5000, float("inf")),  # longer than any wait: the retry budget gives up at once
        ("\u00b2", None),  # superscript two: not delay-seconds, back-off instead
        ("\u0663", None),  # Arabic-Indic three: likewise
        ("-5", None),
    ],
)
def test_retry_after_takes_ascii_delay_seconds_only(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize("value", ["9" * 5000, "\u00b2"])
async def test_an_unreadable_retry_after_is_a_client_error_not_a_crash(value: str) -> None:
    calls = 0

    def busy(_: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503, headers={"Retry-After": value.encode("latin-1")})

    config = FhirClientConfig(
        base_url="http://fhir.test/fhir",
        retry_max_attempts=2,
        retry_budget_seconds=2,
        retry_backoff_base_seconds=0.01,
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(busy))
    client = FhirClient(config, http=http)
    with pytest.raises(TooManyRetries) as failed:
        await client.read("Patient", "p1")
    assert "503" in str(failed.value)
    await http.aclose()
