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
  filterIndexKeys,
  indexKeys,
  isIndexableParam,
  isKnownResourceType,
  localReferences,
  matchesFilter,
  referenceIndexKey,
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
 * Parameters indexed as soon as a resource type has resources (the patient compartment and
 * business identifiers: what most searches and conditional creates use). Any other token or
 * reference parameter is indexed on its first use in a search, `_revinclude` or `_has`.
 */
export const EAGER_INDEX_CODES = ['subject', 'patient', 'identifier', 'code'];

/**
 * Secondary index of one token or reference search parameter of one resource type.
 * @typedef {object} ParamIndex
 * @property {import('@medplum/fhirtypes').SearchParameter} param - The parameter.
 * @property {Map<string, Set<string>>} ids - Index key (see search.mjs `indexKeys`) -> ids.
 * @property {Set<string>} unindexable - Ids whose keys could not be computed (evaluation
 *   error): candidates of every search, so the matcher raises the same error as a full scan.
 */

/**
 * @param {Set<string>[]} sets - Sets.
 * @returns {Set<string>} Their union (the set itself when there is only one: do not mutate).
 */
function union(sets) {
  if (sets.length === 1) return sets[0];
  const result = new Set();
  for (const ids of sets) {
    for (const id of ids) result.add(id);
  }
  return result;
}

/**
 * @param {Set<string>} a - Set.
 * @param {Set<string>} b - Set.
 * @returns {Set<string>} Intersection (a new set).
 */
function intersect(a, b) {
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  const result = new Set();
  for (const id of small) {
    if (large.has(id)) result.add(id);
  }
  return result;
}

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
    this.currentBaseUrl = '';
    this.transactionDepth = 0;
    /**
     * Undo log of the running transaction (undefined outside transactions): one entry per
     * change of `current`, `history` or the set of types, undone in reverse order on rollback.
     * @type {object[] | undefined}
     */
    this.undoLog = undefined;
    /** Counter giving every (type, id) entering `current` its position in store order. */
    this.nextSeq = 0;
    this.lastTimestamp = 0;
    /** Versions (create/update/patch/delete) committed since the counter was last zeroed. */
    this.committedWrites = 0;
    this.clear();
  }

  /** Absolute FHIR base URL, set once the HTTP server knows its port. */
  get baseUrl() {
    return this.currentBaseUrl;
  }

  set baseUrl(url) {
    if (url !== this.currentBaseUrl) {
      this.currentBaseUrl = url;
      // Reference keys depend on the base (absolute references to this server are local).
      for (const byCode of this.indexes?.values() ?? []) byCode.clear();
    }
  }

  /** Empties the store. */
  clear() {
    /**
     * Current (non-deleted) resources by type and id. Each type's Map is in store order (the
     * order a search without `_sort` returns): ids in the order they (re)entered the store.
     * @type {Map<string, Map<string, Resource>>}
     */
    this.current = new Map();
    /** @type {Map<string, Version[]>} all versions by "Type/id" */
    this.history = new Map();
    /** @type {Map<string, Map<string, number>>} position in store order, by type and id */
    this.seqs = new Map();
    /** @type {Map<string, Map<string, ParamIndex>>} secondary indexes by type and parameter code */
    this.indexes = new Map();
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
    return this.idGenerator?.() ?? randomUUID();
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

  /**
   * @param {string} type - Resource type.
   * @param {string} code - Reference search parameter of `type`.
   * @param {string} reference - Local `Type/id` reference.
   * @returns {Resource[] | undefined} Resources of `type` that may hold the reference in that
   *   parameter (a superset, in store order), or undefined when the parameter is not indexable.
   */
  resourcesReferencing(type, code, reference) {
    const index = this.paramIndex(type, code);
    if (!index || index.param.type !== 'reference') {
      return undefined;
    }
    return this.inStoreOrder(type, this.lookup(index, [referenceIndexKey(reference)]));
  }

  // Store and indexes --------------------------------------------------------------------------

  /**
   * Sets the current version of a resource, maintaining store order, indexes and the undo log.
   * @param {string} type - Resource type.
   * @param {string} id - Id.
   * @param {Resource} resource - Stored version (never mutated afterwards).
   */
  putCurrent(type, id, resource) {
    let resources = this.current.get(type);
    if (!resources) {
      resources = new Map();
      this.current.set(type, resources);
      this.seqs.set(type, new Map());
      this.undoLog?.push({ op: 'type', type });
      this.ensureEagerIndexes(type);
    }
    const seqs = this.seqs.get(type);
    this.undoLog?.push({ op: 'current', type, id, resource: resources.get(id), seq: seqs.get(id) });
    this.setCurrentRaw(type, id, resource, seqs.get(id) ?? this.nextSeq++);
  }

  /**
   * Removes the current version of a resource (delete), maintaining indexes and the undo log.
   * @param {string} type - Resource type.
   * @param {string} id - Id.
   */
  removeCurrent(type, id) {
    const seqs = this.seqs.get(type);
    this.undoLog?.push({ op: 'current', type, id, resource: this.current.get(type)?.get(id), seq: seqs?.get(id) });
    this.setCurrentRaw(type, id, undefined, undefined);
  }

  /**
   * @param {string} type - Resource type (its Map exists).
   * @param {string} id - Id.
   * @param {Resource | undefined} resource - New current version, undefined to remove.
   * @param {number | undefined} seq - Position in store order.
   * @returns {boolean} Whether an absent entry was (re)inserted with an older position, so the
   *   type's Map is no longer in store order.
   */
  setCurrentRaw(type, id, resource, seq) {
    const resources = this.current.get(type);
    const seqs = this.seqs.get(type);
    const previous = resources.get(id);
    const byCode = this.indexes.get(type);
    if (byCode) {
      for (const index of byCode.values()) {
        if (previous) this.unindex(index, id, previous);
        if (resource) this.index(index, id, resource);
      }
    }
    if (resource) {
      resources.set(id, resource);
      seqs.set(id, seq);
      return !previous && resources.size > 1 && seq < this.nextSeq - 1;
    }
    resources.delete(id);
    seqs.delete(id);
    return false;
  }

  /**
   * @param {ParamIndex} index - Index.
   * @param {string} id - Id.
   * @param {Resource} resource - Resource to add.
   */
  index(index, id, resource) {
    let keys;
    try {
      keys = indexKeys(index.param, resource, this.baseUrl);
    } catch {
      index.unindexable.add(id);
      return;
    }
    for (const key of keys) {
      let ids = index.ids.get(key);
      if (!ids) {
        ids = new Set();
        index.ids.set(key, ids);
      }
      ids.add(id);
    }
  }

  /**
   * @param {ParamIndex} index - Index.
   * @param {string} id - Id.
   * @param {Resource} resource - The resource as it was indexed (keys are recomputed).
   */
  unindex(index, id, resource) {
    if (index.unindexable.delete(id)) {
      return;
    }
    let keys;
    try {
      keys = indexKeys(index.param, resource, this.baseUrl);
    } catch {
      keys = [...index.ids.keys()]; // not expected (indexing the same resource succeeded)
    }
    for (const key of keys) {
      const ids = index.ids.get(key);
      if (ids) {
        ids.delete(id);
        if (ids.size === 0) index.ids.delete(key);
      }
    }
  }

  /**
   * The index of a token or reference parameter, built from the current resources on first use.
   * @param {string} type - Resource type.
   * @param {string} code - Parameter code.
   * @returns {ParamIndex | undefined} The index, or undefined for other parameters.
   */
  paramIndex(type, code) {
    let byCode = this.indexes.get(type);
    let index = byCode?.get(code);
    if (index) {
      return index;
    }
    const param = isKnownResourceType(type) ? getSearchParameter(type, code) : undefined;
    if (!isIndexableParam(param)) {
      return undefined;
    }
    if (!byCode) {
      byCode = new Map();
      this.indexes.set(type, byCode);
    }
    index = { param, ids: new Map(), unindexable: new Set() };
    for (const [id, resource] of this.current.get(type) ?? []) {
      this.index(index, id, resource);
    }
    byCode.set(code, index);
    return index;
  }

  /** Creates the eager indexes of a resource type (when its first resource is stored). */
  ensureEagerIndexes(type) {
    for (const code of EAGER_INDEX_CODES) {
      this.paramIndex(type, code);
    }
  }

  /**
   * @param {ParamIndex} index - Index.
   * @param {string[]} keys - Keys (any of them).
   * @returns {Set<string>[]} The id sets of the keys present, plus the unindexable ids (sets
   *   owned by the index: do not mutate).
   */
  lookupSets(index, keys) {
    const sets = [];
    for (const key of new Set(keys)) {
      const ids = index.ids.get(key);
      if (ids) sets.push(ids);
    }
    if (index.unindexable.size > 0) sets.push(index.unindexable);
    return sets;
  }

  /**
   * @param {ParamIndex} index - Index.
   * @param {string[]} keys - Keys (any of them).
   * @returns {Set<string>} Ids holding one of the keys, plus the unindexable ones (may be a set
   *   owned by the index: do not mutate).
   */
  lookup(index, keys) {
    return union(this.lookupSets(index, keys));
  }

  /**
   * @param {string} type - Resource type.
   * @param {Set<string>} ids - Ids of current resources of that type.
   * @returns {Resource[]} The resources, in store order.
   */
  inStoreOrder(type, ids) {
    const resources = this.current.get(type);
    if (!resources || ids.size === 0) {
      return [];
    }
    if (ids.size * 16 >= resources.size) {
      const result = [];
      for (const [id, resource] of resources) {
        if (ids.has(id)) result.push(resource);
      }
      return result;
    }
    const seqs = this.seqs.get(type);
    const found = [];
    for (const id of ids) {
      const resource = resources.get(id);
      if (resource) found.push([seqs.get(id), resource]);
    }
    found.sort((a, b) => a[0] - b[0]);
    return found.map(([, resource]) => resource);
  }

  /**
   * The resources a search must run its filters on: a superset of the matches, in store order.
   * Filters on token/reference parameters without modifier (`subject=Patient/1`,
   * `identifier=sys|val`, `code=a,b`) at the start of the filter list narrow the candidates
   * through the indexes. Only a leading run of such filters is used, so that every resource the
   * full scan would have raised an error on (in a later filter) is still evaluated.
   * @param {string} type - Resource type.
   * @param {import('@medplum/core').Filter[]} filters - Parsed filters.
   * @returns {Iterable<Resource>} Candidates.
   */
  candidates(type, filters) {
    const resources = this.current.get(type);
    if (!resources || resources.size === 0) {
      return [];
    }
    /** @type {{sets: Set<string>[], size: number, unindexable: Set<string>}[]} */
    const narrowing = [];
    for (const filter of filters) {
      if (typeof filter.code !== 'string' || filter.code.includes('.') || filter.code.startsWith('_has:')) break;
      const index = this.paramIndex(type, filter.code);
      const keys = index && filterIndexKeys(index.param, filter, this.baseUrl);
      if (!keys) break;
      const sets = this.lookupSets(index, keys);
      narrowing.push({ sets, size: sets.reduce((n, ids) => n + ids.size, 0), unindexable: index.unindexable });
    }
    if (narrowing.length === 0) {
      return resources.values();
    }
    // Ids a filter cannot be evaluated on (never seen in practice) must stay candidates when they
    // pass the filters before it, where the full scan would raise the error: keep filter order.
    const ordered = narrowing.some((n) => n.unindexable.size > 0)
      ? narrowing
      : narrowing.slice().sort((a, b) => a.size - b.size);
    let narrowed;
    let errors;
    for (const { sets, size, unindexable } of ordered) {
      if (unindexable.size > 0) {
        const failing = narrowed ? intersect(narrowed, unindexable) : new Set(unindexable);
        errors = union([errors ?? new Set(), failing]);
      }
      if (!narrowed) {
        narrowed = union(sets);
      } else if (narrowed.size <= size) {
        // Few candidates left: test them against the key sets instead of building the union.
        const kept = new Set();
        for (const id of narrowed) {
          if (sets.some((ids) => ids.has(id))) kept.add(id);
        }
        narrowed = kept;
      } else {
        narrowed = intersect(narrowed, union(sets));
      }
    }
    if (errors) {
      narrowed = union([narrowed, errors]);
    }
    return this.inStoreOrder(type, narrowed);
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
    this.pushVersion(key, versions, { versionId, lastUpdated: stored.meta.lastUpdated, method, resource: stored });
    this.putCurrent(resourceType, id, stored);
    return deepClone(stored);
  }

  /**
   * Appends a version to a resource's history (recorded in the undo log).
   * @param {string} key - "Type/id".
   * @param {Version[]} versions - Its versions (possibly a new, empty array).
   * @param {Version} version - The new version.
   */
  pushVersion(key, versions, version) {
    this.undoLog?.push({ op: 'history', key, length: versions.length });
    versions.push(version);
    this.history.set(key, versions);
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
    this.pushVersion(key, versions, {
      versionId: String(versions.length + 1),
      lastUpdated: this.nextTimestamp(),
      method: 'DELETE',
      resource: undefined,
    });
    this.removeCurrent(resourceType, id);
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
      const filters = request.filters ?? [];
      for (const resource of this.candidates(request.resourceType, filters)) {
        if (filters.every((filter) => matchesFilter(resource, filter, this))) {
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
        const index = this.paramIndex(target.resourceType, target.searchParam);
        const candidates = index
          ? this.inStoreOrder(target.resourceType, this.lookup(index, [...wanted].map(referenceIndexKey)))
          : this.resourcesOfType(target.resourceType);
        for (const candidate of candidates) {
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
   * Runs the callback atomically: on error, every write made inside it is rolled back (store,
   * history, store order and indexes, from an undo log: no copy of the store is made).
   * Nested calls join the outermost transaction. Requests are serialised by the HTTP layer, so
   * there is no concurrent writer.
   */
  async withTransaction(callback) {
    if (this.transactionDepth > 0) {
      return callback(undefined);
    }
    const committedWrites = this.committedWrites;
    this.undoLog = [];
    this.transactionDepth++;
    try {
      return await callback(undefined);
    } catch (err) {
      this.rollback(this.undoLog);
      this.committedWrites = committedWrites;
      throw err;
    } finally {
      this.undoLog = undefined;
      this.transactionDepth--;
    }
  }

  /**
   * Undoes the logged changes, newest first.
   * @param {object[]} log - Undo log of the failed transaction.
   */
  rollback(log) {
    this.undoLog = undefined;
    const reorder = new Set();
    for (let i = log.length - 1; i >= 0; i--) {
      const entry = log[i];
      if (entry.op === 'current') {
        if (this.setCurrentRaw(entry.type, entry.id, entry.resource, entry.seq)) {
          reorder.add(entry.type);
        }
      } else if (entry.op === 'history') {
        const versions = this.history.get(entry.key);
        versions.length = entry.length;
        if (entry.length === 0) this.history.delete(entry.key);
      } else if (entry.op === 'type') {
        this.current.delete(entry.type);
        this.seqs.delete(entry.type);
        this.indexes.delete(entry.type);
      }
    }
    // A resource deleted (or replaced after a delete) in the transaction was re-inserted at the
    // end of its type's Map: restore store order.
    for (const type of reorder) {
      const resources = this.current.get(type);
      const seqs = this.seqs.get(type);
      if (resources) {
        this.current.set(type, new Map([...resources].sort((a, b) => seqs.get(a[0]) - seqs.get(b[0]))));
      }
    }
  }
}
