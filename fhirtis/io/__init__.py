"""fhirtis.io: talking to a FHIR R4 server (search and paging, batch, transaction, auth,
retries, Bulk Data $export). No clinical rules live here.

The public API is this module's ``__all__``; modules starting with ``_`` are private.
"""

from fhirtis.io._auth import (
    BearerTokenAuth,
    NoAuth,
    SmartBackendAuth,
    build_auth,
    load_private_key,
)
from fhirtis.io._bulk_client import BulkExportClient, Manifest, ManifestFile
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
    WriteOutcomeUnknown,
)
from fhirtis.io._urls import normalize_base

__all__ = [
    "AuthMode",
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
    "TokenEndpointUnavailable",
    "TooManyRetries",
    "Unauthorized",
    "WriteOutcomeUnknown",
    "build_auth",
    "load_private_key",
    "normalize_base",
]
