"""fhirtis.io: talking to a FHIR R4 server (search and paging, batch, transaction, auth,
retries, Bulk Data $export). No clinical rules live here.

The public API is this module's ``__all__``; modules starting with ``_`` are private.
"""

from fhirtis.io.auth import (
    BearerTokenAuth,
    NoAuth,
    SmartBackendAuth,
    build_auth,
    load_private_key,
)
from fhirtis.io.bulk import BulkExportClient, Manifest, ManifestFile
from fhirtis.io.client import FhirClient, FhirResponse, SearchParams, Timing
from fhirtis.io.config import AuthMode, FhirClientConfig, SigningAlg
from fhirtis.io.errors import (
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
]
