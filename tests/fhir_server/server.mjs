#!/usr/bin/env node
// In-memory FHIR R4 test server for the fhirtis end-to-end tests.
//
//   node server.mjs --port 0
//
// Serves Medplum's FHIR REST router (@medplum/fhir-router) over plain node:http on 127.0.0.1,
// FHIR base http://127.0.0.1:PORT/fhir. The first line printed on stdout is
// "LISTENING 127.0.0.1:PORT" (with the real port when --port 0 is given); nothing else is
// written to stdout. See README.md for the supported behaviour and the /admin endpoints.

import http from 'node:http';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const USAGE = `usage: node server.mjs [--port N] [options]
  --port N             TCP port on 127.0.0.1 (0 = pick a free port; default 0)
  --default-count N    page size when a search has no _count (default 20)
  --max-count N        largest accepted _count (default 1000)
  --no-validate        do not validate resources against the R4 StructureDefinitions
  --strict-search      reject unknown/unsupported search parameters by default
                       (per request: "Prefer: handling=strict|lenient")
  --watch-stdin        exit when stdin is closed (used by the pytest fixture)
  --log-requests       log one line per request to stderr
  --profile NAME       capability profile: full (default), oracle-like, epic-like, google-like,
                       no-transaction, read-only-for-derived-types (README "Server profiles")
  --capability-statement MODE
                       truthful (default), lie (declares batch/transaction, refuses both),
                       missing (404), malformed (200 with invalid JSON)
  --valuesets-dir DIR  ValueSet-*.json files for ValueSet/$validate-code (default ../../profiles)
  --help               show this help`;

/**
 * @param {string} name - Option name.
 * @param {string} value - Option value.
 * @param {number} min - Minimum.
 * @param {number} max - Maximum.
 * @returns {number} Parsed integer.
 */
function intOption(name, value, min, max) {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    process.stderr.write(`invalid --${name} "${value}" (expected an integer ${min}..${max})\n${USAGE}\n`);
    process.exit(2);
  }
  return Number(value);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'default-count': { type: 'string', default: '20' },
      'max-count': { type: 'string', default: '1000' },
      'no-validate': { type: 'boolean', default: false },
      'strict-search': { type: 'boolean', default: false },
      'watch-stdin': { type: 'boolean', default: false },
      'log-requests': { type: 'boolean', default: false },
      profile: { type: 'string', default: 'full' },
      'capability-statement': { type: 'string', default: 'truthful' },
      'valuesets-dir': { type: 'string', default: fileURLToPath(new URL('../../profiles/', import.meta.url)) },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}

const port = intOption('port', args.port, 0, 65535);
const maxCount = intOption('max-count', args['max-count'], 1, 100000);
const defaultCount = Math.min(intOption('default-count', args['default-count'], 1, 100000), maxCount);

// stdout carries only the LISTENING line (the parent may never read it again, and a full pipe
// would block the server): route any library console output to stderr.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const PROFILES = ['full', 'oracle-like', 'epic-like', 'google-like', 'no-transaction', 'read-only-for-derived-types'];
const CAPABILITY_MODES = ['truthful', 'lie', 'missing', 'malformed'];
if (!PROFILES.includes(args.profile)) {
  process.stderr.write(`invalid --profile "${args.profile}" (expected one of ${PROFILES.join(', ')})\n${USAGE}\n`);
  process.exit(2);
}
if (!CAPABILITY_MODES.includes(args['capability-statement'])) {
  process.stderr.write(`invalid --capability-statement "${args['capability-statement']}" (expected one of ${CAPABILITY_MODES.join(', ')})\n${USAGE}\n`);
  process.exit(2);
}

// Must run before @medplum/fhir-router is loaded (see lib/medplum-hooks.mjs).
register('./lib/medplum-hooks.mjs', import.meta.url);
const { createApp, loadFhirDefinitions } = await import('./lib/app.mjs');

loadFhirDefinitions();
const app = createApp({
  defaultCount,
  maxCount,
  validate: !args['no-validate'],
  strictSearch: args['strict-search'],
  logRequests: args['log-requests'],
  profile: args.profile,
  capabilityStatement: args['capability-statement'],
  valueSetDir: args['valuesets-dir'],
});

const server = http.createServer((req, res) => {
  void app.handle(req, res);
});
// Node closes idle keep-alive connections after 5 s by default, racing clients that reuse a
// pooled connection just then (a spurious "connection reset"). Production servers keep them
// longer; so does this one.
server.keepAliveTimeout = 75_000;
server.headersTimeout = 76_000;
server.requestTimeout = 0;

let shuttingDown = false;
function shutdown() {
  if (shuttingDown) return;
  shuttingDown = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (args['watch-stdin']) {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

server.on('error', (err) => {
  process.stderr.write(`fhir test server: ${err.message}\n`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  app.setBaseUrl(`http://127.0.0.1:${address.port}/fhir`);
  process.stdout.write(`LISTENING 127.0.0.1:${address.port}\n`);
});
