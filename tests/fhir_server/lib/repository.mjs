// In-memory FHIR repository for the test server.
//
// It implements Medplum's `FhirRepository` contract (the storage interface used by
// @medplum/fhir-router), replacing Medplum's `MemoryRepository`, which is a unit-test mock:
// random UUID version ids, no atomic transactions, no deleted-resource tombstones, no paging
// totals / _include / _revinclude and no validation. This repository adds those, following
// https://hl7.org/fhir/R4/http.html.

import { randomUUID } from 'node:crypto';
import {
  OperationOutcomeError,
  Operator,
  deepClone,
  getSearchParameter,
  gone,
  notFound,
  preconditionFailed,
  validateResource,
} from '@medplum/core';
import { FhirRepository } from '@medplum/fhir-router';
import { applyPatch } from 'rfc6902';
import {
  badRequestError,
  isKnownResourceType,
  localReferences,
  matchesFilter,
  sortResources,
  subsetResource,
} from './search.mjs';
import { checkRequiredBindings } from './terminology.mjs';

/** @typedef {import('@medplum/fhirtypes').Resource} Resource */
/** @typedef {import('@medplum/fhirtypes').Bundle} Bundle */
/** @typedef {import('@medplum/core').SearchRequest} SearchRequest */
/** @typedef {import('@medplum/fhirtypes').OperationOutcome} OperationOutcome */

/**
 * One stored version of a resource (deleted versions have no resource).
 * @typedef {object} Version
 * @property {string} versionId - "1", "2", ...
 * @property {string} lastUpdated - Instant.
 * @property {'POST' | 'PUT' | 'PATCH' | 'DELETE'} method - Interaction that produced the version.
 * @property {Resource | undefined} resource - The stored resource, undefined for a delete.
 */

export const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

/**
 * @param {OperationOutcome} base - One of Medplum's outcome constants (its `id` gives the status).
 * @param {string} text - Details.
 * @returns {OperationOutcomeError} Error carrying the outcome.
 */
export function outcomeError(base, text) {
  return new OperationOutcomeError({
    ...base,
    issue: [{ ...base.issue[0], details: { text } }],
  });
}

/**
 * JSON with sorted keys, for content comparison.
 * @param {unknown} value - Any JSON value.
 * @returns {string} Canonical JSON.
 */
function canonicalJson(value) {
  if (Array.isArray(value)) {
    return '[' + value.map(canonicalJson).join(',') + ']';
  }
  if (value && typeof value === 'object') {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJson(value[k])).join(',') + '}';
  }
  return JSON.stringify(value);
}

/**
 * @param {Resource} resource - Resource.
 * @returns {string} Canonical JSON of the resource without server-managed meta.
 */
function contentKey(resource) {
  const copy = deepClone(resource);
  if (copy.meta) {
    delete copy.meta.versionId;
    delete copy.meta.lastUpdated;
    if (Object.keys(copy.meta).length === 0) {
      delete copy.meta;
    }
  }
  return canonicalJson(copy);
}

export class HarnessRepository extends FhirRepository {
  /**
   * @param {{validate?: boolean}} options - `validate`: check resources against the R4
   *   StructureDefinitions (Medplum's validator) on every write.
   */
  constructor(options = {}) {
    super();
    this.validate = options.validate ?? true;
    /** Absolute FHIR base URL, set once the HTTP server knows its port. */
    this.baseUrl = '';
    this.transactionDepth = 0;
    this.lastTimestamp = 0;
    /** Versions (create/update/patch/delete) committed since the counter was last zeroed. */
    this.committedWrites = 0;
    this.clear();
  }

  /** Empties the store. */
  clear() {
    /** @type {Map<string, Map<string, Resource>>} current (non-deleted) resources by type and id */
    this.current = new Map();
    /** @type {Map<string, Version[]>} all versions by "Type/id" */
    this.history = new Map();
  }

  /** @returns {Record<string, number>} Number of current resources per type. */
  counts() {
    const result = {};
    for (const [type, resources] of this.current) {
      if (resources.size > 0) {
        result[type] = resources.size;
      }
    }
    return result;
  }

  setMode() {
    // Single in-memory store: reader/writer modes are irrelevant.
  }

  generateId() {
    return randomUUID();
  }

  // SearchContext ------------------------------------------------------------------------------

  /**
   * @param {string} type - Resource type.
   * @param {string} id - Id.
   * @returns {Resource | undefined} The stored current version (do not mutate).
   */
  resolve(type, id) {
    return this.current.get(type)?.get(id);
  }

  /**
   * @param {string} type - Resource type.
   * @returns {Iterable<Resource>} Stored current versions (do not mutate).
   */
  resourcesOfType(type) {
    return this.current.get(type)?.values() ?? [];
  }

  // Helpers -----------------------------------------------------------------------------------

  /** @returns {string} A strictly increasing instant, so `_lastUpdated` orders writes. */
  nextTimestamp() {
    let now = Date.now();
    if (now <= this.lastTimestamp) {
      now = this.lastTimestamp + 1;
    }
    this.lastTimestamp = now;
    return new Date(now).toISOString();
  }

  /** @param {string} type - Resource type that must exist in FHIR R4. */
  assertType(type) {
    if (!isKnownResourceType(type)) {
      throw outcomeError(notFound, `Unknown resource type "${type}"`);
    }
  }

  /** @param {string} id - Logical id to check. */
  assertId(id) {
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
      throw badRequestError(`Invalid resource id "${id}"`);
    }
  }

  /**
   * @param {Resource} resource - Resource.
   * @returns {string} Absolute URL of the resource on this server.
   */
  fullUrl(resource) {
    return `${this.baseUrl}/${resource.resourceType}/${resource.id}`;
  }

  /**
   * Stores a new version.
   * @param {Resource} resource - Content (id and meta.versionId/lastUpdated are set here).
   * @param {string} id - Logical id.
   * @param {'POST' | 'PUT' | 'PATCH'} method - Interaction.
   * @returns {Resource} Copy of the stored version.
   */
  writeVersion(resource, id, method) {
    const { resourceType, id: _ignored, meta, ...rest } = deepClone(resource);
    const key = `${resourceType}/${id}`;
    const versions = this.history.get(key) ?? [];
    const versionId = String(versions.length + 1);
    const cleanMeta = { ...(meta ?? {}) };
    delete cleanMeta.versionId;
    delete cleanMeta.lastUpdated;
    const stored = { resourceType, id, meta: { versionId, lastUpdated: '', ...cleanMeta }, ...rest };
    if (this.validate) {
      // Both throw an OperationOutcomeError (400) listing every problem found.
      validateResource(stored);
      checkRequiredBindings(stored);
    }
    stored.meta.lastUpdated = this.nextTimestamp();
    this.committedWrites++;
    versions.push({ versionId, lastUpdated: stored.meta.lastUpdated, method, resource: stored });
    this.history.set(key, versions);
    let resources = this.current.get(resourceType);
    if (!resources) {
      resources = new Map();
      this.current.set(resourceType, resources);
    }
    resources.set(id, stored);
    return deepClone(stored);
  }

  // FhirRepository ----------------------------------------------------------------------------

  async createResource(resource, options) {
    this.assertType(resource.resourceType);
    const id = options?.assignedId && resource.id ? resource.id : this.generateId();
    this.assertId(id);
    if (this.history.has(`${resource.resourceType}/${id}`)) {
      throw badRequestError(`${resource.resourceType}/${id} already exists`);
    }
    return this.writeVersion(resource, id, 'POST');
  }

  /**
   * Update (or create-on-update). `options.ifMatch` is the bare version id from an If-Match
   * ETag, or "*".
   */
  async updateResource(resource, options) {
    this.assertType(resource.resourceType);
    if (!resource.id) {
      throw badRequestError('Missing id');
    }
    this.assertId(resource.id);
    const existing = this.resolve(resource.resourceType, resource.id);
    const ifMatch = options?.ifMatch;
    if (ifMatch !== undefined) {
      if (!existing) {
        throw outcomeError(
          preconditionFailed,
          `If-Match ${ifMatch}: ${resource.resourceType}/${resource.id} does not exist`
        );
      }
      if (ifMatch !== '*' && existing.meta.versionId !== ifMatch) {
        throw outcomeError(
          preconditionFailed,
          `Version conflict: If-Match version ${ifMatch}, current version is ${existing.meta.versionId}`
        );
      }
    }
    if (existing && contentKey(existing) === contentKey({ ...resource, id: existing.id })) {
      // No-op update: no new version (same behaviour as HAPI and the Medplum server).
      return deepClone(existing);
    }
    return this.writeVersion(resource, resource.id, 'PUT');
  }

  async patchResource(resourceType, id, patch) {
    const existing = await this.readResource(resourceType, id);
    const patched = deepClone(existing);
    let results;
    try {
      results = applyPatch(patched, patch);
    } catch (err) {
      throw badRequestError(`Invalid JSON Patch: ${err instanceof Error ? err.message : String(err)}`);
    }
    const errors = results.filter(Boolean);
    if (errors.length > 0) {
      throw badRequestError(`JSON Patch failed: ${errors.map((e) => e.message ?? e.name).join('; ')}`);
    }
    if (patched.resourceType !== resourceType || patched.id !== id) {
      throw badRequestError('A patch must not change resourceType or id');
    }
    return this.updateResource(patched);
  }

  async readResource(resourceType, id) {
    this.assertType(resourceType);
    const resource = this.resolve(resourceType, id);
    if (resource) {
      return deepClone(resource);
    }
    if (this.history.has(`${resourceType}/${id}`)) {
      throw outcomeError(gone, `${resourceType}/${id} has been deleted`);
    }
    throw outcomeError(notFound, `${resourceType}/${id} not found`);
  }

  async readReference(reference) {
    const value = reference?.reference;
    if (typeof value !== 'string') {
      throw badRequestError('Invalid reference');
    }
    let ref = value;
    if (this.baseUrl && ref.startsWith(this.baseUrl + '/')) {
      ref = ref.slice(this.baseUrl.length + 1);
    }
    const match = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([^/]+))?$/.exec(ref);
    if (!match) {
      throw badRequestError(`Invalid reference "${value}"`);
    }
    return match[3] ? this.readVersion(match[1], match[2], match[3]) : this.readResource(match[1], match[2]);
  }

  async readReferences(references) {
    return Promise.all(
      references.map((r) => this.readReference(r).catch((err) => (err instanceof Error ? err : new Error(String(err)))))
    );
  }

  async readHistory(resourceType, id, options) {
    this.assertType(resourceType);
    const key = `${resourceType}/${id}`;
    const versions = this.history.get(key);
    if (!versions) {
      throw outcomeError(notFound, `${key} not found`);
    }
    const newestFirst = versions.slice().reverse();
    const offset = options?.offset && options.offset > 0 ? options.offset : 0;
    const limit = options?.limit !== undefined && options.limit >= 0 ? options.limit : undefined;
    const page = limit === undefined ? newestFirst.slice(offset) : newestFirst.slice(offset, offset + limit);
    return {
      resourceType: 'Bundle',
      type: 'history',
      total: versions.length,
      entry: page.map((v) => ({
        fullUrl: `${this.baseUrl}/${key}`,
        ...(v.resource ? { resource: deepClone(v.resource) } : {}),
        request: { method: v.method, url: v.method === 'POST' ? resourceType : key },
        response: {
          status: v.method === 'DELETE' ? '204 No Content' : v.versionId === '1' ? '201 Created' : '200 OK',
          etag: `W/"${v.versionId}"`,
          lastModified: v.lastUpdated,
        },
      })),
    };
  }

  async readVersion(resourceType, id, versionId) {
    this.assertType(resourceType);
    const key = `${resourceType}/${id}`;
    const versions = this.history.get(key);
    if (!versions) {
      throw outcomeError(notFound, `${key} not found`);
    }
    const version = versions.find((v) => v.versionId === versionId);
    if (!version) {
      throw outcomeError(notFound, `${key}/_history/${versionId} not found`);
    }
    if (!version.resource) {
      throw outcomeError(gone, `${key}/_history/${versionId} is a deletion`);
    }
    return deepClone(version.resource);
  }

  /**
   * Deletes the current version (a tombstone version is recorded). Deleting a resource that does
   * not exist or is already deleted succeeds without effect (R4 http.html#delete).
   */
  async deleteResource(resourceType, id) {
    this.assertType(resourceType);
    if (!this.resolve(resourceType, id)) {
      return;
    }
    const key = `${resourceType}/${id}`;
    const versions = this.history.get(key);
    this.committedWrites++;
    versions.push({
      versionId: String(versions.length + 1),
      lastUpdated: this.nextTimestamp(),
      method: 'DELETE',
      resource: undefined,
    });
    this.current.get(resourceType).delete(id);
  }

  /**
   * Search. `count` undefined means "all matches" (the HTTP layer applies the default page size).
   * @param {SearchRequest} searchRequest - Parsed search.
   * @returns {Promise<Bundle>} Searchset with `total`, matches and `_include`/`_revinclude` entries.
   */
  async search(searchRequest) {
    return this.searchMany([searchRequest]);
  }

  /**
   * Search over several resource types (system search); paging, sorting, includes and subsetting
   * come from the first request.
   * @param {SearchRequest[]} requests - One parsed request per resource type.
   * @returns {Promise<Bundle>} Searchset.
   */
  async searchMany(requests) {
    const [first] = requests;
    const matches = [];
    for (const request of requests) {
      this.assertType(request.resourceType);
      for (const resource of this.resourcesOfType(request.resourceType)) {
        if ((request.filters ?? []).every((filter) => matchesFilter(resource, filter, this))) {
          matches.push(resource);
        }
      }
    }
    for (const rule of first.sortRules ?? []) {
      if (!requests.every((r) => getSearchParameter(r.resourceType, rule.code))) {
        throw badRequestError(`Cannot sort by "${rule.code}"`);
      }
    }
    const sorted = sortResources(matches, first.sortRules, this.baseUrl);
    const offset = first.offset && first.offset > 0 ? first.offset : 0;
    const page = first.count === undefined ? sorted.slice(offset) : sorted.slice(offset, offset + first.count);
    const entry = page.map((resource) => ({
      fullUrl: this.fullUrl(resource),
      resource: subsetResource(deepClone(resource), first),
      search: { mode: 'match' },
    }));
    for (const resource of this.computeIncludes(page, first)) {
      entry.push({ fullUrl: this.fullUrl(resource), resource: deepClone(resource), search: { mode: 'include' } });
    }
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: sorted.length,
      ...(entry.length > 0 ? { entry } : {}),
    };
  }

  /**
   * `_include` / `_revinclude` (with `:iterate`), https://hl7.org/fhir/R4/search.html#include.
   * @param {Resource[]} page - The matches of the current page.
   * @param {SearchRequest} request - Parsed search.
   * @returns {Resource[]} Included resources (stored objects; callers clone).
   */
  computeIncludes(page, request) {
    const includes = request.include ?? [];
    const revIncludes = request.revInclude ?? [];
    if (page.length === 0 || (includes.length === 0 && revIncludes.length === 0)) {
      return [];
    }
    const key = (r) => `${r.resourceType}/${r.id}`;
    const seen = new Set(page.map(key));
    const added = [];
    let frontier = page;
    let firstPass = true;
    while (frontier.length > 0) {
      const next = [];
      for (const target of includes) {
        if (!firstPass && target.modifier !== Operator.ITERATE) continue;
        const param = this.includeParam(target);
        for (const source of frontier) {
          if (source.resourceType !== target.resourceType) continue;
          for (const reference of localReferences(param, source, this.baseUrl)) {
            const [type, id] = reference.split('/');
            if (target.targetType && type !== target.targetType) continue;
            const resource = this.resolve(type, id);
            if (resource && !seen.has(reference)) {
              seen.add(reference);
              next.push(resource);
            }
          }
        }
      }
      for (const target of revIncludes) {
        if (!firstPass && target.modifier !== Operator.ITERATE) continue;
        const param = this.includeParam(target);
        const wanted = new Set(
          frontier.filter((r) => !target.targetType || r.resourceType === target.targetType).map(key)
        );
        if (wanted.size === 0) continue;
        for (const candidate of this.resourcesOfType(target.resourceType)) {
          const candidateKey = key(candidate);
          if (seen.has(candidateKey)) continue;
          if (localReferences(param, candidate, this.baseUrl).some((r) => wanted.has(r))) {
            seen.add(candidateKey);
            next.push(candidate);
          }
        }
      }
      added.push(...next);
      frontier = next;
      firstPass = false;
    }
    return added;
  }

  /**
   * @param {{resourceType: string, searchParam: string}} target - Include target.
   * @returns {import('@medplum/fhirtypes').SearchParameter} The reference search parameter.
   */
  includeParam(target) {
    const param = isKnownResourceType(target.resourceType)
      ? getSearchParameter(target.resourceType, target.searchParam)
      : undefined;
    if (param?.type !== 'reference') {
      throw badRequestError(`Invalid include "${target.resourceType}:${target.searchParam}"`);
    }
    return param;
  }

  async searchByReference(searchRequest, referenceField, references) {
    const result = {};
    for (const reference of references) {
      const bundle = await this.search({
        ...searchRequest,
        filters: [...(searchRequest.filters ?? []), { code: referenceField, operator: Operator.EQUALS, value: reference }],
        include: undefined,
        revInclude: undefined,
      });
      result[reference] = (bundle.entry ?? []).map((e) => e.resource);
    }
    return result;
  }

  /**
   * Runs the callback atomically: on error, every write made inside it is rolled back.
   * Nested calls join the outermost transaction. Requests are serialised by the HTTP layer, so
   * there is no concurrent writer.
   */
  async withTransaction(callback) {
    if (this.transactionDepth > 0) {
      return callback(undefined);
    }
    const snapshot = {
      current: new Map([...this.current].map(([type, resources]) => [type, new Map(resources)])),
      history: new Map([...this.history].map(([key, versions]) => [key, versions.slice()])),
      committedWrites: this.committedWrites,
    };
    this.transactionDepth++;
    try {
      return await callback(undefined);
    } catch (err) {
      this.current = snapshot.current;
      this.history = snapshot.history;
      this.committedWrites = snapshot.committedWrites;
      throw err;
    } finally {
      this.transactionDepth--;
    }
  }
}

