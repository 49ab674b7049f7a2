"""fhirtis.io: talking to a FHIR R4 server (search and paging, batch, transaction, auth,
retries, Bulk Data $export, what a server can do and the read/write plans decided from it; a
terminology server's ``$subsumes``). No clinical rules live here.

The public API is this module's ``__all__``; modules starting with ``_`` are private.
"""

from fhirtis.io._auth import (
    Authorization,
    BearerTokenAuth,
    NoAuth,
    SmartBackendAuth,
    build_auth,
    load_private_key,
)
from fhirtis.io._bulk_client import BulkExportClient, Manifest, ManifestFile
from fhirtis.io._capabilities import (
    Capabilities,
    Refused,
    is_refusal,
    is_unsupported_type,
    parse_statement,
)
from fhirtis.io._client import FhirClient, FhirResponse, SearchParams, Timing
from fhirtis.io._config import AuthMode, FhirClientConfig, SigningAlg
from fhirtis.io._errors import (
    BulkExportFailed,
    BulkExportTimeout,
    FhirClientError,
    FhirServerError,
    Forbidden,
    ForeignNextLink,
    ForeignUrl,
    MalformedNdjson,
    MalformedResponse,
    NotFound,
    PagingLoop,
    PreconditionFailed,
    TokenEndpointUnavailable,
    TooManyRetries,
    Unauthorized,
    UnsupportedFhirVersion,
    WriteOutcomeUnknown,
)
from fhirtis.io._paging import link_of, next_link, searchset_problem
from fhirtis.io._plans import (
    ReadPlan,
    WritePlanShape,
    describe_reads,
    describe_writes,
    read_plan,
    write_plan,
)
from fhirtis.io._responses import answer_problem
from fhirtis.io._terminology import TerminologyClient, TerminologyConfig
from fhirtis.io._urls import normalize_base

__all__ = [
    "AuthMode",
    "Authorization",
    "BearerTokenAuth",
    "BulkExportClient",
    "BulkExportFailed",
    "BulkExportTimeout",
    "Capabilities",
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
    "ReadPlan",
    "Refused",
    "SearchParams",
    "SigningAlg",
    "SmartBackendAuth",
    "TerminologyClient",
    "TerminologyConfig",
    "Timing",
    "TokenEndpointUnavailable",
    "TooManyRetries",
    "Unauthorized",
    "UnsupportedFhirVersion",
    "WriteOutcomeUnknown",
    "WritePlanShape",
    "answer_problem",
    "build_auth",
    "describe_reads",
    "describe_writes",
    "is_refusal",
    "is_unsupported_type",
    "link_of",
    "load_private_key",
    "next_link",
    "normalize_base",
    "parse_statement",
    "read_plan",
    "searchset_problem",
    "write_plan",
]
