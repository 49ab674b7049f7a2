"""CDS Hooks 2.0 for IVIG orders: ``order-sign`` and ``order-select``.

``GET /cds-services`` lists two services (one per hook) with their prefetch templates;
``POST /cds-services/{id}`` answers a hook call with cards for every draft MedicationRequest of
IVIG in ``context.draftOrders`` (for ``order-select``: the selected ones):

1. the patient's thromboembolism (TEE) risk factors now, with its evidence (clinical spec §5.1);
2. the maximum infusion rate that applies (§5.2), in mg/kg/min and — for this patient's dosing
   weight now (§4) and the ordered product's concentration — in mL/h, rounded *down*; what is
   unknown (weight, concentration) is said, never guessed;
3. when an ordered rate is above that maximum: a warning with a suggestion (an ``update``
   action) setting the draft order's rate to the maximum;
4. the latest Total Improvement Score and response category, when a baseline exists.

``POST /cds-services/{id}/feedback`` takes the client's feedback on the cards (CDS Hooks 2.0
"Feedback": accepted or overridden), answered 200 ``{}`` and counted in the log, nothing else
kept.

Data come from ``prefetch`` when given (a resource, a searchset Bundle, or null for "none"); a
value that does not hold its template's whole answer (one page of several, fewer matches than
its ``total``, a ``batch-response`` Bundle) counts as missing. What is missing is read from
``fhirServer`` with ``fhirAuthorization.access_token`` — only if that server is on the service's
allow-list, and the token goes to that server only. When data are missing and cannot be read,
the answer is 412 (CDS Hooks' "Precondition Failed"), except for a type the evaluation can go
without (a risk-factor source, :data:`fhirtis.fhir.needs.CAN_GO_WITHOUT`) that fhirtis is not
allowed to read (the server refuses it 403, ``fhirAuthorization.scope`` clearly does not grant
it, or the client's prefetch is an OperationOutcome refusing access): the cards come, and the
risk card names it. A type that ``fhirAuthorization.scope`` grants only through SMART v2
granular scopes (``patient/Condition.rs?category=…``) is read, and the risk card says it is
only part of the type (a warning). A call whose orders hold no IVIG is
answered ``{"cards": []}`` without reading anything.

Callers: in ``validate`` mode (and in ``pass-through`` mode when ``cds.trusted_clients`` is set)
every service call carries a JWT signed by a trusted CDS client (CDS Hooks 2.0 "Trusting CDS
Clients", :mod:`.trust`), else 401; discovery stays public.

Errors are plain HTTP statuses with a small JSON body ``{"error", "message"}`` (CDS Hooks does
not use OperationOutcome): 400 malformed request, 401 no trusted
client's JWT, 404 unknown service, 412 data missing and not
obtainable, 502/504 the FHIR server failed. Logs never hold patient data or tokens.

Nothing is written and no FHIR resource is derived: the evaluation runs the pipeline's
extraction and clinical rules only.

Layout: ``request`` (services, prefetch templates, the checked call), ``fetch`` (reading what
prefetch lacked), ``cards`` (the cards), ``service`` (the endpoints),
``trust`` (the CDS clients' JWTs).
"""

from __future__ import annotations

from fhirtis.api.cds_hooks.request import SERVICES, CdsService, prefetch_templates
from fhirtis.api.cds_hooks.service import evaluate, install

__all__ = ["SERVICES", "CdsService", "evaluate", "install", "prefetch_templates"]
