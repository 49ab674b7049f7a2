// Vendor capability profiles of the test server (README.md, "Server profiles").
//
// A profile restricts what the server does (interactions per resource type, batch/transaction,
// searches inside a batch, search parameters, _include/_revinclude, conditional create/update,
// _count limits) and the CapabilityStatement published at GET [base]/metadata describes exactly
// that. The `full` profile restricts nothing (and is checked with one comparison per request).
//
// Refusals are OperationOutcomes with issue code `not-supported`; their HTTP status (404, 405 or
// 400) is remembered in REFUSAL_STATUS because Medplum derives statuses from outcome ids only.

import { getSearchParameters } from '@medplum/core';
import { allResourceTypes, unsupportedParameterReason } from './search.mjs';

export const MAX_COUNT_EXTENSION = 'http://fhirtis.org/fhir/StructureDefinition/max-count';
export const BATCH_SEARCH_EXTENSION = 'http://fhirtis.org/fhir/StructureDefinition/batch-search-supported';

/** Statement modes: `truthful` (default), `lie` (declares batch/transaction, refuses both), `missing` (404), `malformed` (invalid JSON). */
export const CAPABILITY_MODES = ['truthful', 'lie', 'missing', 'malformed'];

/** HTTP status of refusal outcomes (Medplum's getStatus cannot express 405). */
export const REFUSAL_STATUS = new WeakMap();

const ALL_INTERACTIONS = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'];
const READ_ONLY = ['read', 'vread', 'history-instance', 'search-type'];

/**
 * Profile definitions. `types[T].interactions` replaces the interaction list of type T;
 * `otherInteractions` applies to every type not listed; `types[T].searchParams` limits the search
 * parameters of T (others → 400); `types[T].maxCount`/`defaultCount` override the server's paging.
 */
const PROFILE_DEFINITIONS = {
  full: {
    description: 'Everything this server implements: batch and transaction, _include/_revinclude, conditional create/update, every R4 resource type.',
  },
  'oracle-like': {
    description:
      'Oracle Health (Cerner) Millennium R4 as documented: no batch/transaction, no _include, only _revinclude=Provenance:target, ' +
      'MedicationAdministration/MedicationRequest searched by patient (not subject), Observation _count at most 200 (clamped), ' +
      'no Flag, DetectedIssue, AdverseEvent or MedicationStatement, no conditional create/update.',
    batch: false,
    transaction: false,
    systemSearch: false,
    include: false,
    revinclude: ['Provenance:target'],
    conditionalCreate: false,
    conditionalUpdate: false,
    absentTypes: ['Flag', 'DetectedIssue', 'AdverseEvent', 'MedicationStatement'],
    // Group $export: the US Core 3.1.1 (USCDI v1) resource types only; any other type in _type
    // is refused (400 not-supported), as the Bulk Data IG v2 advises for unsupported types.
    bulkTypes: [
      'AllergyIntolerance', 'CarePlan', 'CareTeam', 'Condition', 'Device', 'DiagnosticReport', 'DocumentReference',
      'Encounter', 'Goal', 'Immunization', 'Location', 'Medication', 'MedicationRequest', 'Observation',
      'Organization', 'Patient', 'Practitioner', 'PractitionerRole', 'Procedure', 'Provenance',
    ],
    otherInteractions: ['read', 'search-type'],
    types: {
      Patient: { interactions: ['read', 'search-type', 'create', 'patch'] },
      Encounter: { interactions: ['read', 'search-type', 'create', 'patch'] },
      Condition: { interactions: ['read', 'search-type', 'create', 'update'] },
      Procedure: { interactions: ['read', 'search-type', 'create'] },
      Provenance: { interactions: ['read', 'search-type', 'create'] },
      Observation: {
        interactions: ['read', 'search-type', 'create', 'update'],
        searchParams: ['_id', 'patient', 'subject', 'code', 'date', '_lastUpdated', 'category'],
        maxCount: 200,
        defaultCount: 50,
      },
      MedicationAdministration: {
        interactions: ['read', 'search-type'],
        searchParams: ['_id', 'patient', 'status', 'performer', 'effective-time'],
      },
      MedicationRequest: {
        interactions: ['read', 'search-type', 'create', 'patch'],
        searchParams: ['_id', 'patient', 'status', 'intent', '_lastUpdated'],
      },
    },
  },
  'epic-like': {
    description:
      'Epic on FHIR R4 as documented: Observation searched by _id, patient, subject, code, category, date only, ' +
      'and by patient (or subject) only together with code or category (else 400 "Required search parameter missing from request", Epic error 4111); ' +
      'an empty searchset carries an OperationOutcome entry (search.mode outcome, warning "Resource request returns no results", Epic 4101); ' +
      'a Condition search without clinical-status returns only active conditions (no inactive, remission or resolved ones); ' +
      'server-assigned ids shaped like Epic FHIR ids ("e" + 43 characters of [A-Za-z0-9-]). Everything no Epic page read for this profile documents works as under full.',
    emptySearchOutcome: true,
    epicIds: true,
    types: {
      Observation: {
        searchParams: ['_id', 'patient', 'subject', 'code', 'category', 'date'],
        // each group: at least one of its parameters (unless searched by _id alone)
        requiredSearch: [
          ['patient', 'subject'],
          ['code', 'category'],
        ],
        documentation: 'Search by _id, or by patient (or subject) together with code or category (Epic: "Both patient and code or category are required").',
      },
      // Epic condition.search: "If no status is specified all active (confirmed) conditions will
      // be returned" (FHIR statuses active, resolved, inactive); native parameters category,
      // clinical-status, encounter, patient, subject; post-filters code, onset-date,
      // recorded-date, severity, verification-status (https://docs.nerve.run/functions/condition-search).
      // A Condition without clinicalStatus (Epic always sends one) is kept.
      Condition: {
        searchParams: [
          '_id', 'patient', 'subject', 'category', 'clinical-status', 'encounter',
          'code', 'onset-date', 'recorded-date', 'severity', 'verification-status',
        ],
        defaultSearch: { unless: 'clinical-status', add: [['clinical-status:not', 'inactive,remission,resolved']] },
        documentation: 'Without clinical-status, only active conditions are returned (Epic: "If no status is specified all active (confirmed) conditions will be returned"); search clinical-status=inactive,resolved for the others.',
      },
    },
  },
  'google-like': {
    description: 'Google Cloud Healthcare API: batch and transaction Bundles, but no search inside them (a search entry is refused).',
    batchSearch: false,
  },
  'no-transaction': {
    description: 'Neither batch nor transaction Bundles; every other interaction works.',
    batch: false,
    transaction: false,
  },
  'read-only-for-derived-types': {
    description: 'Flag, DetectedIssue, AdverseEvent and Provenance are read-only (no create/update/patch/delete); everything else works.',
    types: Object.fromEntries(['Flag', 'DetectedIssue', 'AdverseEvent', 'Provenance'].map((t) => [t, { interactions: READ_ONLY }])),
  },
};

export const PROFILE_NAMES = Object.keys(PROFILE_DEFINITIONS);

/**
 * @typedef {object} Profile
 * @property {string} name
 * @property {string} description
 * @property {boolean} unrestricted - true for `full` (no check at all)
 * @property {boolean} batch
 * @property {boolean} transaction
 * @property {boolean} batchSearch
 * @property {boolean} systemSearch
 * @property {boolean} include
 * @property {Set<string> | undefined} revinclude - allowed _revinclude values (undefined = any)
 * @property {boolean} conditionalCreate
 * @property {boolean} conditionalUpdate
 * @property {Set<string>} absentTypes
 * @property {Map<string, Set<string>>} interactions - per listed type
 * @property {Set<string>} otherInteractions
 * @property {Map<string, Set<string>>} searchParams
 * @property {Map<string, number>} maxCount
 * @property {Map<string, number>} defaultCount
 * @property {Set<string> | undefined} bulkTypes - types a Group $export offers (undefined = every type)
 * @property {Map<string, string[][]>} requiredSearch - per type: groups of parameters, one of each needed (unless _id)
 * @property {Map<string, string>} documentation - per type: CapabilityStatement rest.resource.documentation
 * @property {Map<string, {unless: string, add: [string, string][]}>} defaultSearch - per type: parameters a search without `unless` (and without _id) gets
 * @property {boolean} emptySearchOutcome - an empty searchset carries a warning OperationOutcome entry
 * @property {boolean} epicIds - server-assigned ids look like Epic FHIR ids
 */

const profileCache = new Map();

/**
 * @param {string} name - Profile name (one of PROFILE_NAMES).
 * @returns {Profile} The profile.
 */
export function getProfile(name) {
  if (profileCache.has(name)) return profileCache.get(name);
  const def = PROFILE_DEFINITIONS[name];
  if (!def) throw new Error(`Unknown profile "${name}" (known: ${PROFILE_NAMES.join(', ')})`);
  const types = Object.entries(def.types ?? {});
  const profile = {
    name,
    description: def.description,
    unrestricted: name === 'full',
    batch: def.batch ?? true,
    transaction: def.transaction ?? true,
    batchSearch: def.batchSearch ?? true,
    systemSearch: def.systemSearch ?? true,
    include: def.include ?? true,
    revinclude: def.revinclude ? new Set(def.revinclude) : undefined,
    conditionalCreate: def.conditionalCreate ?? true,
    conditionalUpdate: def.conditionalUpdate ?? true,
    absentTypes: new Set(def.absentTypes ?? []),
    interactions: new Map(types.filter(([, t]) => t.interactions).map(([type, t]) => [type, new Set(t.interactions)])),
    otherInteractions: new Set(def.otherInteractions ?? ALL_INTERACTIONS),
    searchParams: new Map(types.filter(([, t]) => t.searchParams).map(([type, t]) => [type, new Set(t.searchParams)])),
    maxCount: new Map(types.filter(([, t]) => t.maxCount).map(([type, t]) => [type, t.maxCount])),
    defaultCount: new Map(types.filter(([, t]) => t.defaultCount).map(([type, t]) => [type, t.defaultCount])),
    bulkTypes: def.bulkTypes ? new Set(def.bulkTypes) : undefined,
    requiredSearch: new Map(types.filter(([, t]) => t.requiredSearch).map(([type, t]) => [type, t.requiredSearch])),
    documentation: new Map(types.filter(([, t]) => t.documentation).map(([type, t]) => [type, t.documentation])),
    defaultSearch: new Map(types.filter(([, t]) => t.defaultSearch).map(([type, t]) => [type, t.defaultSearch])),
    emptySearchOutcome: def.emptySearchOutcome ?? false,
    epicIds: def.epicIds ?? false,
  };
  profileCache.set(name, profile);
  return profile;
}

/**
 * @param {number} status - HTTP status of the refusal.
 * @param {string} text - Details.
 * @returns {import('@medplum/fhirtypes').OperationOutcome} A `not-supported` outcome.
 */
export function refusal(status, text) {
  const outcome = {
    resourceType: 'OperationOutcome',
    ...(status === 404 ? { id: 'not-found' } : {}),
    issue: [{ severity: 'error', code: 'not-supported', details: { text } }],
  };
  REFUSAL_STATUS.set(outcome, status);
  return outcome;
}

/**
 * @param {Profile} profile - Active profile.
 * @param {string} type - Resource type.
 * @returns {Set<string>} Interactions allowed on the type.
 */
function interactionsOf(profile, type) {
  return profile.interactions.get(type) ?? profile.otherInteractions;
}

/** Route interactions (Medplum) → CapabilityStatement interaction codes. */
const ROUTE_TO_CAPABILITY = {
  read: 'read',
  vread: 'vread',
  'search-type': 'search-type',
  create: 'create',
  update: 'update',
  patch: 'patch',
  delete: 'delete',
  'history-instance': 'history-instance',
  'history-type': 'history-type',
};

/**
 * Decides whether the active profile refuses a routed request (top level or Bundle entry).
 * @param {Profile} profile - Active profile.
 * @param {string | undefined} interaction - Medplum route interaction.
 * @param {{params?: Record<string, string>, headers?: Record<string, unknown>}} req - Router request.
 * @param {boolean} inBatch - The request is an entry of a batch/transaction Bundle.
 * @returns {object | undefined} Refusal outcome, or undefined when allowed.
 */
export function checkInteraction(profile, interaction, req, inBatch) {
  if (profile.unrestricted) return undefined;
  if (inBatch && !profile.batchSearch && (interaction === 'search-type' || interaction === 'search-system')) {
    return refusal(400, `Searches inside a batch or transaction are not supported by this server (profile ${profile.name})`);
  }
  if (interaction === 'search-system' && !profile.systemSearch) {
    return refusal(405, `System-level search is not supported by this server (profile ${profile.name})`);
  }
  const type = req.params?.resourceType;
  if (!type) return undefined;
  if (profile.absentTypes.has(type)) {
    return refusal(404, `Resource type ${type} is not supported by this server (profile ${profile.name})`);
  }
  const code = ROUTE_TO_CAPABILITY[interaction];
  if (code && !interactionsOf(profile, type).has(code)) {
    return refusal(405, `Interaction ${code} on ${type} is not supported by this server (profile ${profile.name})`);
  }
  if (interaction === 'create' && req.headers?.['if-none-exist'] && !profile.conditionalCreate) {
    return refusal(400, `Conditional create (If-None-Exist) is not supported by this server (profile ${profile.name})`);
  }
  if (interaction === 'create' && req.headers?.['if-none-exist']) {
    // The criteria are a search (R4 http.html#ccreate): the profile's search rules apply to them.
    const criteria = String(req.headers['if-none-exist']).replace(/^[^?]*\?/, '');
    const refused = checkSearch(profile, [type], [...new URLSearchParams(criteria)]);
    if (refused) return refused;
  }
  if ((interaction === 'update' || interaction === 'patch' || interaction === 'delete') && !req.params?.id && !profile.conditionalUpdate) {
    return refusal(400, `Conditional ${interaction} (Type?criteria) is not supported by this server (profile ${profile.name})`);
  }
  return undefined;
}

/**
 * @param {Profile} profile - Active profile.
 * @param {'batch' | 'transaction'} kind - Bundle type posted to the base.
 * @param {boolean} lie - The statement lies (declares batch/transaction, server refuses both).
 * @returns {object | undefined} Refusal outcome, or undefined when allowed.
 */
export function checkBundle(profile, kind, lie) {
  if (lie || !profile[kind]) {
    return refusal(405, `${kind === 'batch' ? 'Batch' : 'Transaction'} Bundles are not supported by this server (profile ${profile.name}${lie ? ', capability statement lies' : ''})`);
  }
  return undefined;
}

/**
 * Checks search parameters against the profile (400 `not-supported` for a refused parameter).
 * @param {Profile} profile - Active profile.
 * @param {string[]} types - Searched types.
 * @param {[string, string][]} pairs - Search parameters.
 * @returns {object | undefined} Refusal outcome, or undefined when allowed.
 */
export function checkSearch(profile, types, pairs) {
  if (profile.unrestricted) return undefined;
  for (const [key, value] of pairs) {
    const name = key.split(/[:.]/)[0];
    if (name === '_include' && !profile.include) {
      return refusal(400, `_include is not supported by this server (profile ${profile.name})`);
    }
    if (name === '_revinclude' && profile.revinclude && !profile.revinclude.has(value)) {
      return refusal(400, `_revinclude=${value} is not supported by this server (profile ${profile.name}); supported: ${[...profile.revinclude].join(', ')}`);
    }
    if (name.startsWith('_') && name !== '_id' && name !== '_lastUpdated') continue;
    for (const type of types) {
      const allowed = profile.searchParams.get(type);
      if (allowed && !allowed.has(name)) {
        const hint = name === 'subject' && allowed.has('patient') ? '; use "patient"' : '';
        return refusal(400, `Search parameter "${name}" is not supported for ${type} by this server (profile ${profile.name})${hint}`);
      }
    }
  }
  for (const type of types) {
    const groups = profile.requiredSearch.get(type);
    if (!groups) continue;
    const names = new Set(pairs.map(([key]) => key.split(/[:.]/)[0]));
    if (names.has('_id')) continue;
    const missing = groups.find((group) => !group.some((name) => names.has(name)));
    if (missing) {
      const outcome = {
        resourceType: 'OperationOutcome',
        issue: [
          {
            severity: 'fatal',
            code: 'required',
            details: { text: 'Required search parameter missing from request.' },
            diagnostics: `A search of ${type} needs one of ${missing.join(', ')} (profile ${profile.name})`,
          },
        ],
      };
      REFUSAL_STATUS.set(outcome, 400);
      return outcome;
    }
  }
  return undefined;
}

/**
 * The search parameters with the profile's default filter of the type added (epic-like: a
 * Condition search without clinical-status returns active conditions only).
 * @param {Profile} profile - Active profile.
 * @param {string} type - Searched type.
 * @param {[string, string][]} pairs - Search parameters.
 * @returns {[string, string][]} The parameters the search runs with.
 */
export function withDefaultSearch(profile, type, pairs) {
  const rule = profile.defaultSearch.get(type);
  if (!rule) return pairs;
  const names = new Set(pairs.map(([key]) => key.split(/[:.]/)[0]));
  if (names.has('_id') || names.has(rule.unless)) return pairs;
  return [...pairs, ...rule.add];
}

/**
 * @param {Profile} profile - Active profile.
 * @returns {object | undefined} The entry an empty searchset carries under the profile.
 */
export function emptySearchOutcome(profile) {
  if (!profile.emptySearchOutcome) return undefined;
  return {
    resource: {
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'warning', code: 'processing', details: { text: 'Resource request returns no results.' } }],
    },
    search: { mode: 'outcome' },
  };
}

const EPIC_ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-';

/**
 * @param {(size: number) => Uint8Array} randomBytes - Random source.
 * @returns {string} An id shaped like Epic's FHIR ids: "e" and 43 characters of [A-Za-z0-9-].
 */
export function epicId(randomBytes) {
  return `e${[...randomBytes(43)].map((b) => EPIC_ID_CHARS[b % EPIC_ID_CHARS.length]).join('')}`;
}

/**
 * @param {Profile} profile - Active profile.
 * @param {string} type - Resource type.
 * @param {{defaultCount: number, maxCount: number}} server - Server-wide paging options.
 * @returns {{defaultCount: number, maxCount: number}} Paging limits for the type.
 */
export function pagingFor(profile, type, server) {
  const maxCount = Math.min(profile.maxCount.get(type) ?? server.maxCount, server.maxCount);
  const defaultCount = Math.min(profile.defaultCount.get(type) ?? server.defaultCount, maxCount);
  return { defaultCount, maxCount };
}

/**
 * Builds the CapabilityStatement describing a profile.
 * @param {Profile} profile - Profile described.
 * @param {{baseUrl: string, version: string, defaultCount: number, maxCount: number}} server - Server facts.
 * @returns {object} R4 CapabilityStatement.
 */
export function buildCapabilityStatement(profile, server) {
  const resources = [];
  for (const type of allResourceTypes()) {
    if (profile.absentTypes.has(type)) continue;
    const interactions = ALL_INTERACTIONS.filter((code) => interactionsOf(profile, type).has(code));
    const params = getSearchParameters(type) ?? {};
    const allowedParams = profile.searchParams.get(type);
    const canCreate = interactions.includes('create');
    const canUpdate = interactions.includes('update');
    const { maxCount } = pagingFor(profile, type, server);
    const documentation = profile.documentation.get(type);
    resources.push({
      extension: [{ url: MAX_COUNT_EXTENSION, valueUnsignedInt: maxCount }],
      type,
      ...(documentation ? { documentation } : {}),
      interaction: interactions.map((code) => ({ code })),
      versioning: 'versioned-update',
      readHistory: interactions.includes('vread'),
      updateCreate: canUpdate,
      conditionalCreate: canCreate && profile.conditionalCreate,
      conditionalRead: 'modified-since',
      conditionalUpdate: canUpdate && profile.conditionalUpdate,
      conditionalDelete: interactions.includes('delete') && profile.conditionalUpdate ? 'single' : 'not-supported',
      referencePolicy: ['literal', 'local'],
      searchInclude: profile.include
        ? Object.values(params)
            .filter((p) => p.type === 'reference')
            .map((p) => `${type}:${p.code}`)
        : [],
      ...(profile.revinclude ? { searchRevInclude: [...profile.revinclude] } : {}),
      searchParam: Object.values(params)
        .filter((p) => !unsupportedParameterReason(type, p.code))
        .filter((p) => !allowedParams || allowedParams.has(p.code))
        .map((p) => ({ name: p.code, definition: p.url, type: p.type })),
    });
  }
  const bundleInteraction = (code) => ({
    code,
    ...(profile.batchSearch
      ? {}
      : {
          extension: [{ url: BATCH_SEARCH_EXTENSION, valueBoolean: false }],
          documentation: 'Search entries are refused inside a batch or transaction Bundle.',
        }),
  });
  const restInteraction = [
    ...(profile.transaction ? [bundleInteraction('transaction')] : []),
    ...(profile.batch ? [bundleInteraction('batch')] : []),
    ...(profile.systemSearch ? [{ code: 'search-system' }] : []),
  ];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: `fhirtis test server (@medplum/fhir-router ${server.version}, in-memory)`, version: server.version },
    implementation: {
      description: `In-memory FHIR R4 test server for fhirtis end-to-end tests, profile ${profile.name}: ${profile.description}`,
      url: server.baseUrl,
    },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json'],
    rest: [
      {
        mode: 'server',
        documentation: `Server profile "${profile.name}". _count limits: extension ${MAX_COUNT_EXTENSION} on each resource.`,
        resource: resources,
        ...(restInteraction.length > 0 ? { interaction: restInteraction } : {}),
        operation: [
          { name: 'validate-code', definition: 'http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code' },
          { name: 'subsumes', definition: 'http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes' },
        ],
      },
    ],
  };
}
