// Terminology operations of the test server: ValueSet/$validate-code and CodeSystem/$subsumes.
//
// SNOMED CT subsumption comes from a small fixture (fixtures/snomed-hierarchy.json: concept →
// is-a parents, closed transitively). ValueSets are read from the repository's `profiles/`
// folder (ValueSet-*.json) and evaluated locally: explicit `concept` lists, `is-a`,
// `descendent-of`, `=` (on `concept`), `in` and `regex` (full match on `code`) filters, nested
// `valueSet` includes, and `exclude`. See README.md, "Terminology operations".

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { OperationOutcomeError, allOk, badRequest, notFound } from '@medplum/core';

export const SNOMED = 'http://snomed.info/sct';

/**
 * @param {string} text - Details.
 * @returns {OperationOutcomeError} 400 `invalid`.
 */
function invalid(text) {
  return new OperationOutcomeError(badRequest(text));
}

/**
 * @param {string} text - Details.
 * @returns {OperationOutcomeError} 400 `not-supported`.
 */
function notSupported(text) {
  return new OperationOutcomeError({
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code: 'not-supported', details: { text } }],
  });
}

/**
 * Loads the hierarchy fixture.
 * @param {string} file - Path of snomed-hierarchy.json.
 * @returns {{display: (code: string) => string | undefined, ancestors: (code: string) => Set<string> | undefined}} Hierarchy.
 */
export function loadHierarchy(file) {
  const data = JSON.parse(readFileSync(file, 'utf8'));
  const concepts = new Map(Object.entries(data.concepts ?? {}));
  const closure = new Map();
  const ancestors = (code, seen = new Set()) => {
    if (closure.has(code)) return closure.get(code);
    const concept = concepts.get(code);
    if (!concept) return undefined;
    const result = new Set();
    for (const parent of concept.parents ?? []) {
      if (seen.has(parent)) continue;
      seen.add(parent);
      result.add(parent);
      for (const a of ancestors(parent, seen) ?? []) result.add(a);
    }
    closure.set(code, result);
    return result;
  };
  return { display: (code) => concepts.get(code)?.display, ancestors: (code) => ancestors(code) };
}

/**
 * Loads the ValueSets of a folder (ValueSet-*.json), keyed by canonical url.
 * @param {string} dir - Folder.
 * @returns {Map<string, object>} ValueSets.
 */
export function loadValueSets(dir) {
  const result = new Map();
  let names = [];
  try {
    names = readdirSync(dir);
  } catch {
    return result;
  }
  for (const name of names) {
    if (!/^ValueSet-.*\.json$/.test(name)) continue;
    const vs = JSON.parse(readFileSync(join(dir, name), 'utf8'));
    if (vs?.resourceType === 'ValueSet' && vs.url) result.set(vs.url, vs);
  }
  return result;
}

/**
 * Creates the two operation handlers.
 * @param {{hierarchyFile: string, valueSetDir: string}} options - Fixture and ValueSet folder.
 * @returns {{validateCode: Function, subsumes: Function}} Medplum route handlers.
 */
export function createTerminologyOperations(options) {
  let hierarchy;
  let valueSets;
  const getHierarchy = () => (hierarchy ??= loadHierarchy(options.hierarchyFile));
  const getValueSets = () => (valueSets ??= loadValueSets(options.valueSetDir));

  /** @returns {boolean} `code` is-a `ancestor` (or equal when `orSelf`) in the fixture. */
  const isA = (code, ancestor, orSelf) => {
    if (orSelf && code === ancestor) return true;
    return getHierarchy().ancestors(code)?.has(ancestor) ?? false;
  };

  const filterMatches = (system, filter, code) => {
    const { property, op, value } = filter;
    if (system === SNOMED && property === 'concept' && (op === 'is-a' || op === 'descendent-of')) {
      return isA(code, value, op === 'is-a');
    }
    if ((property === 'concept' || property === 'code') && op === '=') return code === value;
    if ((property === 'concept' || property === 'code') && op === 'in') return value.split(',').map((s) => s.trim()).includes(code);
    if (property === 'code' && op === 'regex') return new RegExp(`^(?:${value})$`).test(code);
    throw notSupported(`ValueSet filter ${property} ${op} on ${system} is not supported by this test server`);
  };

  /** @returns {{match: boolean, display?: string}} Whether one include/exclude item matches. */
  const setMatches = (set, system, code, depth) => {
    if (set.system && set.system !== system) return { match: false };
    let display;
    if (set.system) {
      if (set.concept?.length) {
        const concept = set.concept.find((c) => c.code === code);
        if (!concept) return { match: false };
        display = concept.display;
      }
      for (const filter of set.filter ?? []) {
        if (!filterMatches(set.system, filter, code)) return { match: false };
      }
      if (!set.concept?.length && !set.filter?.length && set.system !== SNOMED) {
        throw notSupported(`Whole code system ${set.system} cannot be evaluated by this test server`);
      }
      if (!set.concept?.length && !set.filter?.length && !getHierarchy().display(code)) return { match: false };
    }
    for (const url of set.valueSet ?? []) {
      const nested = evaluate(resolveValueSet(url), system, code, depth + 1);
      if (!nested.match) return { match: false };
      display ??= nested.display;
    }
    return { match: true, display };
  };

  const evaluate = (valueSet, system, code, depth) => {
    if (depth > 10) throw invalid('ValueSet nesting too deep');
    let result = { match: false };
    for (const include of valueSet.compose?.include ?? []) {
      const r = setMatches(include, system, code, depth);
      if (r.match) {
        result = r;
        break;
      }
    }
    if (!result.match && !valueSet.compose && valueSet.expansion?.contains) {
      const hit = valueSet.expansion.contains.find((c) => c.system === system && c.code === code);
      if (hit) result = { match: true, display: hit.display };
    }
    if (result.match) {
      for (const exclude of valueSet.compose?.exclude ?? []) {
        if (setMatches(exclude, system, code, depth).match) return { match: false };
      }
    }
    return result;
  };

  const resolveValueSet = (canonical) => {
    const url = canonical.split('|')[0];
    const vs = getValueSets().get(url);
    if (!vs) {
      throw new OperationOutcomeError({
        ...notFound,
        issue: [{ ...notFound.issue[0], details: { text: `Unknown ValueSet "${url}"` } }],
      });
    }
    return vs;
  };

  /** Flattens GET query or POST Parameters into {name: value} (first value wins). */
  const inputParams = (req) => {
    const params = {};
    for (const [key, value] of Object.entries(req.query ?? {})) {
      params[key] = Array.isArray(value) ? String(value[0]) : String(value);
    }
    const body = req.method === 'POST' ? req.body : undefined;
    if (body && body.resourceType === 'Parameters') {
      for (const p of body.parameter ?? []) {
        if (params[p.name] !== undefined) continue;
        const value = p.resource ?? p.valueCoding ?? p.valueCodeableConcept ?? p.valueUri ?? p.valueCanonical ?? p.valueCode ?? p.valueString ?? p.valueBoolean;
        if (value !== undefined) params[p.name] = value;
      }
    } else if (body && typeof body === 'object' && !body.resourceType) {
      for (const [key, value] of Object.entries(body)) {
        params[key] ??= Array.isArray(value) ? String(value[0]) : String(value);
      }
    }
    return params;
  };

  const parameters = (parts) => ({
    resourceType: 'Parameters',
    parameter: parts.filter(([, , v]) => v !== undefined).map(([name, type, value]) => ({ name, [type]: value })),
  });

  const validateCode = async (req) => {
    const params = inputParams(req);
    let { system, code, display } = params;
    if (params.coding && typeof params.coding === 'object') ({ system, code, display } = params.coding);
    if (!code && params.codeableConcept?.coding?.length) ({ system, code } = params.codeableConcept.coding[0]);
    if (!code || !system) throw invalid('$validate-code needs "system" and "code" (or "coding")');
    const valueSet = params.valueSet && typeof params.valueSet === 'object' ? params.valueSet : params.url ? resolveValueSet(params.url) : undefined;
    if (!valueSet) throw invalid('$validate-code needs "url" or "valueSet"');
    const { match, display: vsDisplay } = evaluate(valueSet, system, code, 0);
    const known = system === SNOMED ? getHierarchy().display(code) : undefined;
    const shown = known ?? vsDisplay;
    const name = valueSet.url ?? valueSet.id ?? 'the ValueSet';
    let message;
    if (!match) {
      message =
        system === SNOMED && !known && !vsDisplay
          ? `The code ${system}#${code} is not in ${name} (unknown to this server's SNOMED CT fixture)`
          : `The code ${system}#${code} is not in ${name}`;
    }
    return [allOk, parameters([['result', 'valueBoolean', match], ['message', 'valueString', message], ['display', 'valueString', shown]])];
  };

  const subsumes = async (req) => {
    const params = inputParams(req);
    let { system, codeA, codeB } = params;
    if (params.codingA && typeof params.codingA === 'object') ({ system, code: codeA } = params.codingA);
    if (params.codingB && typeof params.codingB === 'object') codeB = params.codingB.code;
    if (!system || !codeA || !codeB) throw invalid('$subsumes needs "system", "codeA" and "codeB"');
    if (system !== SNOMED) throw notSupported(`$subsumes supports ${SNOMED} only, not ${system}`);
    const h = getHierarchy();
    for (const code of [codeA, codeB]) {
      if (!h.display(code)) throw invalid(`Code ${code} is not in this server's SNOMED CT fixture`);
    }
    let outcome = 'not-subsumed';
    if (codeA === codeB) outcome = 'equivalent';
    else if (isA(codeB, codeA, false)) outcome = 'subsumes';
    else if (isA(codeA, codeB, false)) outcome = 'subsumed-by';
    return [allOk, parameters([['outcome', 'valueCode', outcome]])];
  };

  return { validateCode, subsumes };
}
