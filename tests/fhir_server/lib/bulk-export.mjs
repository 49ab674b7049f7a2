// FHIR Bulk Data Access IG v2 (https://hl7.org/fhir/uv/bulkdata/), Group-level `$export` only:
// kick-off (`GET [base]/Group/[id]/$export`), status polling, cancel (`DELETE` the status URL)
// and NDJSON file download. The export content is computed at kick-off (one consistent snapshot,
// taken inside the server's request queue); the first status poll answers 202 "in progress" so
// that clients exercise their polling loop, the next one 200 with the manifest.

import { randomUUID } from 'node:crypto';
import { isKnownResourceType } from './search.mjs';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const NDJSON = 'application/fhir+ndjson';
const KICKOFF = /^\/fhir\/Group\/([^/]+)\/\$export$/;
const STATUS = /^\/fhir\/\$export-status\/([0-9a-f-]+)$/;
const FILE = /^\/fhir\/\$export-file\/([0-9a-f-]+)\/([A-Za-z]+)\.ndjson$/;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * @param {string} code - IssueType code.
 * @param {string} text - Details.
 * @returns {object} OperationOutcome.
 */
function outcome(code, text) {
  const severity = code === 'informational' ? 'information' : 'error';
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text } }] };
}

/**
 * @param {import('node:http').ServerResponse} res - Response.
 * @param {number} status - HTTP status.
 * @param {object | string | undefined} body - JSON value, text, or nothing.
 * @param {Record<string, string>} headers - Extra headers.
 * @returns {number} The status.
 */
function send(res, status, body, headers = {}) {
  const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    ...(body !== undefined && typeof body !== 'string' ? { 'Content-Type': FHIR_JSON } : {}),
    ...headers,
    'Content-Length': Buffer.byteLength(payload),
  });
  res.end(payload);
  return status;
}

/** @returns {string | undefined} `Type/id` of a reference to this server, else undefined. */
function localReference(reference, baseUrl) {
  if (typeof reference !== 'string') return undefined;
  let ref = reference;
  if (baseUrl && ref.startsWith(baseUrl + '/')) ref = ref.slice(baseUrl.length + 1);
  const match = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/.*)?$/.exec(ref);
  return match ? `${match[1]}/${match[2]}` : undefined;
}

/**
 * @param {{repo: import('./repository.mjs').HarnessRepository,
 *   serialize: <T>(fn: () => T | Promise<T>) => Promise<T>,
 *   bulkTypes?: () => Set<string> | undefined}} context - Store, request queue, and the types the
 *   active profile's export offers (undefined: every type).
 * @returns {{handle: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse,
 *   url: URL) => Promise<number | undefined>}} `handle` answers bulk requests (returning the
 *   status) and returns undefined for every other request.
 */
export function createBulkExport({ repo, serialize, bulkTypes = () => undefined }) {
  /** @type {Map<string, {polls: number, manifest: object, files: Map<string, string>}>} */
  const jobs = new Map();

  const kickOff = (req, res, url, groupId) => {
    const prefer = String(req.headers.prefer ?? '');
    if (!/(^|[,;\s])respond-async($|[,;\s])/i.test(prefer)) {
      return send(res, 400, outcome('invalid', 'Bulk Data $export requires the header "Prefer: respond-async"'));
    }
    const types = url.searchParams
      .getAll('_type')
      .flatMap((v) => v.split(','))
      .map((t) => t.trim())
      .filter(Boolean);
    for (const type of types) {
      if (!isKnownResourceType(type)) return send(res, 400, outcome('invalid', `Unknown resource type "${type}" in _type`));
    }
    // A profile's export offers some types only: asking for another is refused (Bulk Data IG v2,
    // export.html, query parameters: an unsupported type "SHOULD" get an OperationOutcome in an
    // error response); without _type, the offered types are exported ("all supported resources").
    const offered = bulkTypes();
    const unsupported = offered ? types.filter((t) => !offered.has(t)) : [];
    if (unsupported.length > 0) {
      return send(res, 400, outcome('not-supported', `Resource type(s) not supported by the bulk export: ${unsupported.join(', ')}`));
    }
    const sinceParams = url.searchParams.getAll('_since');
    if (sinceParams.length > 1) return send(res, 400, outcome('invalid', '_since may be given once'));
    const since = sinceParams[0];
    if (since !== undefined && (!INSTANT.test(since) || Number.isNaN(Date.parse(since)))) {
      return send(res, 400, outcome('invalid', `_since must be a FHIR instant, got "${since}"`));
    }
    const group = repo.resolve('Group', groupId);
    if (!group) return send(res, 404, outcome('not-found', `Group/${groupId} not found`));

    // transactionTime: no resource stored so far has a later meta.lastUpdated (the repository's
    // timestamps are strictly increasing and may run ahead of the clock).
    const transactionTime = new Date(Math.max(Date.now(), repo.lastTimestamp ?? 0)).toISOString();
    const sinceMs = since === undefined ? undefined : Date.parse(since);
    const typeWanted = (resource) =>
      types.length === 0 ? !offered || offered.has(resource.resourceType) : types.includes(resource.resourceType);
    const wanted = (resource) =>
      typeWanted(resource) &&
      (sinceMs === undefined || Date.parse(resource.meta?.lastUpdated ?? '') > sinceMs);

    const patients = new Set();
    for (const member of group.member ?? []) {
      const ref = localReference(member.entity?.reference, repo.baseUrl);
      if (ref?.startsWith('Patient/') && repo.resolve('Patient', ref.slice('Patient/'.length))) patients.add(ref);
    }
    /** @type {Map<string, object[]>} */
    const byType = new Map();
    const add = (resource) => {
      if (!wanted(resource)) return;
      let list = byType.get(resource.resourceType);
      if (!list) byType.set(resource.resourceType, (list = []));
      list.push(resource);
    };
    const medications = new Set();
    for (const ref of patients) add(repo.resolve('Patient', ref.slice('Patient/'.length)));
    for (const type of [...repo.current.keys()].sort()) {
      if (type === 'Patient') continue;
      for (const resource of repo.resourcesOfType(type)) {
        const subject = localReference(resource.subject?.reference, repo.baseUrl);
        const patient = localReference(resource.patient?.reference, repo.baseUrl);
        if (!patients.has(subject) && !patients.has(patient)) continue;
        if (!typeWanted(resource)) continue; // nor the Medication it references
        add(resource);
        const med = localReference(resource.medicationReference?.reference, repo.baseUrl);
        if (med?.startsWith('Medication/')) medications.add(med.slice('Medication/'.length));
      }
    }
    for (const id of medications) {
      const medication = repo.resolve('Medication', id);
      if (medication) add(medication);
    }

    const jobId = randomUUID();
    const files = new Map();
    const output = [];
    for (const [type, resources] of byType) {
      files.set(type, resources.map((r) => JSON.stringify(r) + '\n').join(''));
      output.push({ type, url: `${repo.baseUrl}/$export-file/${jobId}/${type}.ndjson`, count: resources.length });
    }
    const manifest = {
      transactionTime,
      request: `${repo.baseUrl}/Group/${groupId}/$export${url.search}`,
      requiresAccessToken: false,
      output,
      error: [],
    };
    jobs.set(jobId, { polls: 0, manifest, files });
    return send(res, 202, outcome('informational', 'Export started'), {
      'Content-Location': `${repo.baseUrl}/$export-status/${jobId}`,
    });
  };

  const status = (req, res, jobId) => {
    const job = jobs.get(jobId);
    if (!job) return send(res, 404, outcome('not-found', `No export job ${jobId} (unknown, cancelled or removed)`));
    if (req.method === 'DELETE') {
      jobs.delete(jobId);
      return send(res, 202, outcome('informational', `Export job ${jobId} cancelled`));
    }
    job.polls++;
    if (job.polls === 1) {
      return send(res, 202, undefined, { 'Retry-After': '1', 'X-Progress': 'in progress' });
    }
    return send(res, 200, JSON.stringify(job.manifest), { 'Content-Type': 'application/json', Expires: new Date(Date.now() + 3600e3).toUTCString() });
  };

  const file = (res, jobId, type) => {
    const content = jobs.get(jobId)?.files.get(type);
    if (content === undefined) return send(res, 404, outcome('not-found', 'No such export file'));
    return send(res, 200, content, { 'Content-Type': NDJSON });
  };

  const handle = async (req, res, url) => {
    const method = req.method ?? 'GET';
    let match;
    if ((match = KICKOFF.exec(url.pathname))) {
      if (method !== 'GET') return undefined; // POST kick-off (IG v2 optional) is not supported
      req.resume();
      return serialize(() => kickOff(req, res, url, decodeURIComponent(match[1])));
    }
    if ((match = STATUS.exec(url.pathname)) && (method === 'GET' || method === 'DELETE')) {
      req.resume();
      return status(req, res, match[1]);
    }
    if ((match = FILE.exec(url.pathname)) && method === 'GET') {
      req.resume();
      return file(res, match[1], match[2]);
    }
    return undefined;
  };

  return { handle };
}
