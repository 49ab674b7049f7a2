"""Freeze the public API of fhirtis.io: a change here is a deliberate API change."""

from __future__ import annotations

import fhirtis.io
import fhirtis.io as errors

EXPECTED = {
    "Capabilities",
    "Refused",
    "ReadPlan",
    "WritePlanShape",
    "describe_reads",
    "describe_writes",
    "is_refusal",
    "is_unsupported_type",  # the one "404 search = no such type" rule (run and CDS)
    "parse_statement",
    "read_plan",
    "write_plan",
    "AuthMode",
    "Authorization",  # what fhirtis's own token flow knows of a server's scopes (s36)
    "BearerTokenAuth",
    "BulkExportClient",
    "BulkExportFailed",
    "BulkExportTimeout",
    "FhirClient",
    "FhirClientConfig",
    "FhirClientError",
    "FhirResponse",
    "FhirServerError",
    "Forbidden",
    "ForeignNextLink",
    "ForeignUrl",
    "MalformedNdjson",
    "MalformedResponse",
    "Manifest",
    "ManifestFile",
    "NoAuth",
    "NotFound",
    "PagingLoop",
    "PreconditionFailed",
    "SearchParams",
    "SigningAlg",
    "SmartBackendAuth",
    "Timing",
    "TerminologyClient",  # issue 10 item 11: the terminology port's $subsumes client
    "TerminologyConfig",
    "TokenEndpointUnavailable",
    "TooManyRetries",
    "Unauthorized",
    "UnsupportedFhirVersion",  # s36: a server of another FHIR release than R4, refused
    "WriteOutcomeUnknown",
    "build_auth",
    "load_private_key",
    "normalize_base",
    # a searchset read inside a batch, or prefetched by a CDS client, is checked as a page is
    "link_of",
    "next_link",
    "searchset_problem",
    # whether a read answered its resource, a search a searchset (run and the CDS service)
    "answer_problem",
}


def test_public_api_is_frozen() -> None:
    assert set(fhirtis.io.__all__) == EXPECTED
    for name in fhirtis.io.__all__:
        assert hasattr(fhirtis.io, name), name


def test_error_hierarchy() -> None:
    server_errors = [
        errors.NotFound,
        errors.PreconditionFailed,
        errors.Unauthorized,
        errors.Forbidden,
        errors.MalformedResponse,
        errors.TokenEndpointUnavailable,
        errors.BulkExportFailed,
        errors.MalformedNdjson,
    ]
    for cls in server_errors:
        assert issubclass(cls, errors.FhirServerError)
    for cls in [
        errors.FhirServerError,
        errors.TooManyRetries,
        errors.ForeignUrl,
        errors.PagingLoop,
        errors.WriteOutcomeUnknown,
        errors.BulkExportTimeout,
        errors.UnsupportedFhirVersion,
    ]:
        assert issubclass(cls, errors.FhirClientError)
    assert issubclass(errors.ForeignNextLink, errors.ForeignUrl)
    assert issubclass(errors.MalformedNdjson, errors.MalformedResponse)
