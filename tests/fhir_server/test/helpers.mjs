// Shared helpers for the node:test suites: start server.mjs on a free port and talk to it.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const SERVER = fileURLToPath(new URL('../server.mjs', import.meta.url));
export const FHIR_JSON = 'application/fhir+json';

/**
 * Starts the server with extra arguments; resolves once it listens.
 * @param {string[]} args - Extra command-line arguments.
 * @returns {Promise<{root: string, base: string, stop: () => Promise<void>}>} Running server.
 */
export async function startServer(args = []) {
  const child = spawn(process.execPath, [SERVER, '--port', '0', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const address = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = /LISTENING (\S+)/.exec(out);
      if (match) resolve(match[1]);
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}): ${stderr}`)));
  });
  const root = `http://${address}`;
  return {
    root,
    base: `${root}/fhir`,
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/**
 * @param {string} url - URL.
 * @param {{method?: string, body?: unknown, headers?: Record<string, string>}} [init] - Request.
 * @returns {Promise<{status: number, body: any, text: string}>} Response (body parsed when JSON).
 */
export async function request(url, init = {}) {
  const headers = { Accept: FHIR_JSON, ...(init.body !== undefined ? { 'Content-Type': FHIR_JSON } : {}), ...init.headers };
  const response = await fetch(url, {
    method: init.method ?? 'GET',
    headers,
    body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
  });
  const text = await response.text();
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: response.status, body, text };
}

/** @returns {Promise<void>} Switches the server's profile (and statement mode). */
export async function setProfile(server, profile, capabilityStatement) {
  const res = await request(`${server.root}/admin/profile`, { method: 'POST', body: { profile, capabilityStatement } });
  if (res.status !== 200) throw new Error(`profile switch failed: ${res.text}`);
}

/** @returns {Promise<void>} Empties the store and restores the startup profile. */
export async function reset(server) {
  await request(`${server.root}/admin/reset`, { method: 'POST' });
  await request(`${server.root}/admin/reset-stats`, { method: 'POST' });
}

/** @returns {string} Issue code of an OperationOutcome. */
export function issueCode(outcome) {
  return outcome?.issue?.[0]?.code;
}
