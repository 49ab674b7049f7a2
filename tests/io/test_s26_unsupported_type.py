"""One rule says when a search answered 404 means "this server has no such type" (R4 http.html,
search: "404 Not Found - resource type not supported"), used by ``fhirtis run``'s searches and the
CDS service's prefetch batch alike (they had a rule each)."""

from __future__ import annotations

from fhirtis.io import Refused, is_unsupported_type, parse_statement
from fhirtis.io._capabilities import unknown
from tests.io._s25_srv_fake import statement


def test_a_404_where_the_types_are_unknown_is_an_unsupported_type() -> None:
    caps = unknown("missing", "no statement")
    assert caps.types is None
    assert is_unsupported_type(caps, "DeviceUseStatement", 404)
    assert not is_unsupported_type(caps, "DeviceUseStatement", 500)
    assert not is_unsupported_type(caps, "DeviceUseStatement", None)


def test_a_404_of_a_listed_type_is_the_servers_error_not_a_missing_type() -> None:
    caps = parse_statement(statement())  # every needed type listed
    assert caps.types is not None and "DeviceUseStatement" in caps.types
    assert not is_unsupported_type(caps, "DeviceUseStatement", 404)


def test_a_404_of_a_type_the_statement_lacks_or_that_was_refused_is_unsupported() -> None:
    caps = parse_statement(statement({"DeviceUseStatement": None}))
    assert caps.types is not None and "DeviceUseStatement" not in caps.types
    assert is_unsupported_type(caps, "DeviceUseStatement", 404)
    learned = parse_statement(statement()).learn(Refused("type", "Device"))
    assert is_unsupported_type(learned, "Device", 404)
