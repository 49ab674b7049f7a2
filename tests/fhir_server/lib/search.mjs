// FHIR R4 search semantics for the in-memory test server.
//
// Medplum's @medplum/core parses search requests (`parseSearchRequest`) and evaluates the
// FHIRPath expressions of the official R4 SearchParameter definitions (`evalFhirPathTyped`).
// Its in-memory matcher (`matchesSearchRequest`) is intentionally approximate (string search is
// "contains", token search is case-insensitive and also matches display texts, numbers, quantities,
// composites, chains and `_has` are not supported), so the value comparison rules below are
// implemented here, following https://hl7.org/fhir/R4/search.html.

import {
  AsAtom,
  DotAtom,
  EmptySetAtom,
  FhirPathAtom,
  FunctionAtom,
  OperationOutcomeError,
  Operator,
  SymbolAtom,
  UnionAtom,
  badRequest,
  evalFhirPathTyped,
  getDataType,
  getResourceTypes,
  getElementDefinition,
  getSearchParameter,
  isResourceType,
  parseFhirPath,
  parseSearchRequest,
  toPeriod,
  toTypedValue,
} from '@medplum/core';

/** @typedef {import('@medplum/fhirtypes').Resource} Resource */
/** @typedef {import('@medplum/fhirtypes').SearchParameter} SearchParameter */
/** @typedef {import('@medplum/core').Filter} Filter */
/** @typedef {import('@medplum/core').TypedValue} TypedValue */

/**
 * Store access needed to evaluate chained parameters, `_has` and references.
 * @typedef {object} SearchContext
 * @property {string} baseUrl - Absolute FHIR base URL of this server (no trailing slash).
 * @property {(type: string, id: string) => Resource | undefined} resolve - Current version or undefined.
 * @property {(type: string) => Iterable<Resource>} resourcesOfType - Current resources of a type.
 * @property {(type: string, code: string, reference: string) => Iterable<Resource> | undefined}
 *   [resourcesReferencing] - Optional: the current resources of `type` that may hold `reference`
 *   (`Type/id`) in reference parameter `code` (a superset, in store order), or undefined.
 */

/** Search parameter definitions by canonical URL (needed for composite components). */
const searchParametersByUrl = new Map();

/**
 * Remembers the SearchParameter definitions that were indexed into Medplum's global schema.
 * @param {import('@medplum/fhirtypes').Bundle} bundle - The SearchParameter bundle.
 */
export function rememberSearchParameters(bundle) {
  for (const entry of bundle.entry ?? []) {
    if (entry.resource?.url) {
      searchParametersByUrl.set(entry.resource.url, entry.resource);
    }
  }
}

/**
 * @param {unknown} type - Candidate resource type name.
 * @returns {boolean} True for a concrete FHIR R4 resource type.
 */
export function isKnownResourceType(type) {
  return typeof type === 'string' && /^[A-Z][A-Za-z]+$/.test(type) && Boolean(isResourceType(type));
}

/** @returns {string[]} All concrete resource type names, sorted. */
export function allResourceTypes() {
  return getResourceTypes().slice().sort();
}

/**
 * @param {string} details - Error text.
 * @returns {OperationOutcomeError} A 400 error.
 */
export function badRequestError(details) {
  return new OperationOutcomeError(badRequest(details));
}

// ---------------------------------------------------------------------------------------------
// Value escaping (https://hl7.org/fhir/R4/search.html#escaping)

/**
 * Splits on an unescaped separator, keeping escapes of other characters for later splitting.
 * @param {string} input - Raw parameter value.
 * @param {string} separator - One of `,`, `|`, `$`.
 * @returns {string[]} Parts.
 */
export function splitEscaped(input, separator) {
  const parts = [];
  let current = '';
  let escaped = false;
  for (const c of input) {
    if (escaped) {
      current += c === separator ? c : '\\' + c;
      escaped = false;
    } else if (c === '\\') {
      escaped = true;
    } else if (c === separator) {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  if (escaped) {
    current += '\\';
  }
  parts.push(current);
  return parts;
}

/**
 * @param {string} input - Value with search escapes.
 * @returns {string} Unescaped value.
 */
export function unescapeValue(input) {
  return input.replace(/\\([\\,|$])/g, '$1');
}

/**
 * Case- and accent-insensitive normalisation used for string search.
 * @param {string} input - Text.
 * @returns {string} Normalised text.
 */
function normalizeText(input) {
  return input.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
}

// ---------------------------------------------------------------------------------------------
// References

/**
 * Normalises a reference to `Type/id` when it points at this server (relative, or absolute with
 * this server's base), dropping any `/_history/N` suffix. Other values are returned unchanged.
 * @param {string} reference - Reference string.
 * @param {string} baseUrl - This server's FHIR base.
 * @returns {string} Normalised reference.
 */
export function normalizeReference(reference, baseUrl) {
  let ref = reference;
  if (baseUrl && ref.startsWith(baseUrl + '/')) {
    ref = ref.slice(baseUrl.length + 1);
  }
  const local = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/[^/]+)?$/.exec(ref);
  if (local) {
    return `${local[1]}/${local[2]}`;
  }
  return ref;
}

/**
 * Extracts reference information from the values of a reference search parameter.
 * @param {TypedValue[]} values - Evaluated parameter values.
 * @param {string} baseUrl - This server's FHIR base.
 * @returns {{reference?: string, identifier?: object}[]} References.
 */
function extractReferences(values, baseUrl) {
  const result = [];
  for (const { value } of values) {
    if (!value) {
      continue;
    }
    if (typeof value === 'string') {
      result.push({ reference: value });
    } else if (typeof value === 'object') {
      if (typeof value.reference === 'string') {
        result.push({ reference: normalizeReference(value.reference, baseUrl), identifier: value.identifier });
      } else if (value.identifier) {
        result.push({ identifier: value.identifier });
      } else if (typeof value.resourceType === 'string' && typeof value.id === 'string') {
        result.push({ reference: `${value.resourceType}/${value.id}` });
      }
    }
  }
  return result;
}

/**
 * @param {SearchParameter} param - A reference search parameter.
 * @param {Resource} resource - Resource to evaluate on.
 * @param {string} baseUrl - This server's FHIR base.
 * @returns {string[]} Local `Type/id` references held by the resource for that parameter.
 */
export function localReferences(param, resource, baseUrl) {
  return extractReferences(evalParam(param.expression, resource, baseUrl), baseUrl)
    .map((r) => r.reference)
    .filter((r) => typeof r === 'string' && /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(r));
}

// ---------------------------------------------------------------------------------------------
// Evaluation helpers

/** Resource -> copy whose absolute references to this server are made relative. */
const searchViews = new WeakMap();

/**
 * @param {unknown} node - JSON value.
 * @param {string} prefix - `${baseUrl}/`.
 * @returns {unknown} Copy with `reference` values starting with prefix made relative.
 */
function relativizeReferences(node, prefix) {
  if (Array.isArray(node)) {
    return node.map((item) => relativizeReferences(item, prefix));
  }
  if (node && typeof node === 'object') {
    const result = {};
    for (const [key, value] of Object.entries(node)) {
      result[key] =
        key === 'reference' && typeof value === 'string' && value.startsWith(prefix)
          ? value.slice(prefix.length)
          : relativizeReferences(value, prefix);
    }
    return result;
  }
  return node;
}

/**
 * Medplum's FHIRPath `resolve()` (used by e.g. `Observation.subject.where(resolve() is Patient)`)
 * only understands relative `Type/id` references; absolute URLs of this server are equivalent
 * (R4 references.html), so search parameters are evaluated on a relativised view. Stored
 * resources are never mutated, so the view is cached per object.
 * @param {Resource} resource - Resource.
 * @param {string} baseUrl - FHIR base of this server.
 * @returns {Resource} The view.
 */
function searchView(resource, baseUrl) {
  if (!baseUrl) {
    return resource;
  }
  const cached = searchViews.get(resource);
  if (cached?.baseUrl === baseUrl) {
    return cached.view;
  }
  const prefix = baseUrl + '/';
  const view = JSON.stringify(resource).includes(JSON.stringify(prefix).slice(1, -1))
    ? relativizeReferences(resource, prefix)
    : resource;
  searchViews.set(resource, { baseUrl, view });
  return view;
}

/**
 * @param {string} expression - FHIRPath expression of a SearchParameter.
 * @param {Resource} resource - Resource to evaluate on.
 * @param {string} baseUrl - FHIR base of this server.
 * @returns {TypedValue[]} Values.
 */
function evalParam(expression, resource, baseUrl) {
  if (!expression) {
    return [];
  }
  const view = searchView(resource, baseUrl);
  const compiled = compiledExpression(resource.resourceType, expression);
  const ast = compiled.pruned && !hasUppercaseKey(view) ? compiled.pruned : compiled.full;
  return ast === EMPTY_EXPRESSION ? [] : evalFhirPathTyped(ast, [toTypedValue(view)]);
}

// FHIRPath compilation. Medplum's `evalFhirPathTyped` re-parses a string expression on every
// call, and the official R4 expressions of multi-type parameters (`identifier`, `code`,
// `patient`, ...) are unions of up to ~60 branches, one per resource type
// (`AllergyIntolerance.identifier | CarePlan.identifier | ...`). Evaluating a branch rooted at
// another type's name is expensive (Medplum probes the resource for that name combined with
// every FHIR type name) and always yields nothing, so each expression is parsed once and, per
// resource type, such branches are replaced by the empty collection `{}`. The tree shape is
// kept (`a | {}` still removes duplicates like `a | b` does), so results are identical.

/** Marks an expression with no branch for the resource type: it evaluates to `[]`. */
const EMPTY_EXPRESSION = Symbol('empty expression');

/** Functions that return an empty collection for an empty input, whatever their arguments. */
const EMPTY_PRESERVING_FUNCTIONS = new Set(['where', 'ofType', 'as', 'resolve', 'first', 'last']);

const PLAIN_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

/** expression -> parsed tree */
const parsedExpressions = new Map();

/** "resourceType\nexpression" -> {full, pruned} */
const compiledExpressions = new Map();

/**
 * @param {string} expression - FHIRPath expression (of a SearchParameter or a component).
 * @returns {import('@medplum/core').FhirPathAtom} Its syntax tree (parsed once, immutable).
 */
function parsedExpression(expression) {
  let ast = parsedExpressions.get(expression);
  if (!ast) {
    ast = parseFhirPath(expression);
    parsedExpressions.set(expression, ast);
  }
  return ast;
}

/**
 * @param {unknown} atom - A FHIRPath syntax tree node.
 * @returns {string | undefined} The name of the symbol at the root of a navigation chain made
 *   only of steps that map an empty collection to an empty collection (`.name`, `.where(...)`,
 *   `as T`, `.ofType(T)`, `.resolve()`, ...), or undefined for any other expression.
 */
function chainRoot(atom) {
  if (atom instanceof SymbolAtom) {
    return PLAIN_NAME.test(atom.name) ? atom.name : undefined;
  }
  if (atom instanceof AsAtom) {
    return chainRoot(atom.left);
  }
  if (atom instanceof DotAtom) {
    const step = atom.right;
    const safe =
      (step instanceof SymbolAtom && PLAIN_NAME.test(step.name)) ||
      (step instanceof FunctionAtom && EMPTY_PRESERVING_FUNCTIONS.has(step.name));
    return safe ? chainRoot(atom.left) : undefined;
  }
  return undefined;
}

/**
 * Replaces, inside the top-level union, the branches that cannot yield anything for a resource
 * of `resourceType` by `{}`: a chain rooted at a capitalised name other than the resource type
 * that is no element of the type. (FHIR element names start in lower case; the root is looked up
 * as a property only, and evaluation falls back to the full tree for resources with an
 * upper-case property, see `hasUppercaseKey`.)
 * @param {unknown} atom - Node of the parsed expression.
 * @param {string} resourceType - Type of the resources the expression is evaluated on.
 * @returns {unknown} The node, a pruned copy, or an EmptySetAtom.
 */
function pruneUnion(atom, resourceType) {
  if (atom instanceof UnionAtom) {
    const left = pruneUnion(atom.left, resourceType);
    const right = pruneUnion(atom.right, resourceType);
    if (left instanceof EmptySetAtom && right instanceof EmptySetAtom) {
      return left;
    }
    return left === atom.left && right === atom.right ? atom : new UnionAtom(left, right);
  }
  const root = chainRoot(atom);
  if (
    root !== undefined &&
    root !== resourceType &&
    /^[A-Z]/.test(root) &&
    getElementDefinition(resourceType, root) === undefined
  ) {
    return new EmptySetAtom();
  }
  return atom;
}

/**
 * @param {string} resourceType - Resource type the expression is evaluated on.
 * @param {string} expression - FHIRPath expression of a SearchParameter.
 * @returns {{full: unknown, pruned: unknown}} The parsed expression and, when some branches
 *   can be skipped for this type, the pruned one (EMPTY_EXPRESSION when nothing is left).
 */
function compiledExpression(resourceType, expression) {
  const key = `${resourceType}\n${expression}`;
  let compiled = compiledExpressions.get(key);
  if (!compiled) {
    const full = parsedExpression(expression);
    let pruned;
    if (typeof resourceType === 'string' && full instanceof FhirPathAtom && full.child instanceof UnionAtom) {
      const child = pruneUnion(full.child, resourceType);
      if (child instanceof EmptySetAtom) {
        pruned = EMPTY_EXPRESSION;
      } else if (child !== full.child) {
        pruned = new FhirPathAtom(full.original, child);
      }
    }
    compiled = { full, pruned };
    compiledExpressions.set(key, compiled);
  }
  return compiled;
}

/**
 * @param {object} resource - Resource (or its search view).
 * @returns {boolean} Whether a top-level property name starts with an upper-case letter (never the
 *   case for valid FHIR JSON; then the pruned expressions are not used).
 */
function hasUppercaseKey(resource) {
  for (const key of Object.keys(resource)) {
    const c = key.charCodeAt(0);
    if (c >= 65 && c <= 90) {
      return true;
    }
  }
  return false;
}

/**
 * Parses search parameters like Medplum's `parseSearchRequest`, adding composite parameters
 * (which Medplum's parser rejects).
 * @param {string} resourceType - Resource type.
 * @param {[string, string][]} pairs - Parameters.
 * @returns {import('@medplum/core').SearchRequest} Parsed request.
 */
export function parseSearch(resourceType, pairs) {
  const regular = {};
  const composites = [];
  for (const [key, value] of pairs) {
    const colon = key.indexOf(':');
    const code = colon >= 0 ? key.slice(0, colon) : key;
    const modifier = colon >= 0 ? key.slice(colon + 1) : '';
    const param = key.includes('.') ? undefined : getSearchParameter(resourceType, code);
    if (param?.type === 'composite') {
      composites.push({ code, operator: modifier === 'missing' ? Operator.MISSING : Operator.EQUALS, value });
    } else if (param?.type === 'reference' && isKnownResourceType(modifier)) {
      // `subject:Patient=123` is `subject=Patient/123` (search.html#reference).
      const typed = splitEscaped(value, ',').map((v) => (v.includes('/') ? v : `${modifier}/${v}`));
      (regular[code] ??= []).push(typed.join(','));
    } else {
      (regular[key] ??= []).push(value);
    }
  }
  const request = parseSearchRequest(resourceType, regular);
  if (composites.length > 0) {
    request.filters = [...(request.filters ?? []), ...composites];
  }
  return request;
}

const TOKEN_PRIMITIVES = new Set(['boolean', 'code', 'string', 'id', 'uri', 'url', 'canonical', 'oid', 'uuid']);

/**
 * @param {TypedValue[]} values - Values of a token parameter.
 * @returns {{system?: string, value?: string, primitive: boolean}[]} Tokens.
 */
function extractTokens(values) {
  const tokens = [];
  for (const { type, value } of values) {
    if (value === undefined || value === null) {
      continue;
    }
    if (type === 'Identifier') {
      tokens.push({ system: value.system, value: value.value, primitive: false });
    } else if (type === 'CodeableConcept') {
      for (const coding of value.coding ?? []) {
        tokens.push({ system: coding.system, value: coding.code, primitive: false });
      }
    } else if (type === 'Coding') {
      tokens.push({ system: value.system, value: value.code, primitive: false });
    } else if (type === 'ContactPoint') {
      tokens.push({ system: value.system, value: value.value, primitive: false });
    } else if (TOKEN_PRIMITIVES.has(type) || typeof value !== 'object') {
      tokens.push({ system: undefined, value: String(value), primitive: true });
    }
  }
  return tokens;
}

/**
 * @param {TypedValue[]} values - Values of a token parameter.
 * @returns {string[]} Texts usable by the `:text` modifier.
 */
function extractTokenTexts(values) {
  const texts = [];
  for (const { type, value } of values) {
    if (!value || typeof value !== 'object') {
      continue;
    }
    if (type === 'CodeableConcept') {
      if (value.text) texts.push(value.text);
      for (const coding of value.coding ?? []) {
        if (coding.display) texts.push(coding.display);
      }
    } else if (type === 'Coding' && value.display) {
      texts.push(value.display);
    } else if (type === 'Identifier') {
      if (value.type?.text) texts.push(value.type.text);
      for (const coding of value.type?.coding ?? []) {
        if (coding.display) texts.push(coding.display);
      }
    }
  }
  return texts;
}

const STRING_SKIP_KEYS = new Set(['use', 'system', 'extension', 'id', 'period', 'url']);

/**
 * @param {unknown} value - A value of a string parameter (string, HumanName, Address, ...).
 * @param {string[]} out - Collected strings.
 */
function collectStrings(value, out) {
  if (typeof value === 'string') {
    out.push(value);
  } else if (Array.isArray(value)) {
    for (const item of value) collectStrings(item, out);
  } else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (!STRING_SKIP_KEYS.has(key)) collectStrings(item, out);
    }
  }
}

/**
 * Number of significant decimals of a search number, for the implicit precision rule.
 * @param {string} text - The number as written in the search.
 * @returns {number} Half-width of the implied range.
 */
function impliedHalfRange(text) {
  const mantissa = text.toLowerCase().split('e')[0];
  const exponent = text.toLowerCase().includes('e') ? Number(text.toLowerCase().split('e')[1]) : 0;
  const decimals = mantissa.includes('.') ? mantissa.split('.')[1].length : 0;
  return 0.5 * Math.pow(10, exponent - decimals);
}

const PREFIXES = new Set(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

/**
 * @param {string} value - Value possibly starting with a comparison prefix.
 * @returns {{operator: string, value: string}} Prefix operator and remaining value.
 */
function splitPrefix(value) {
  const prefix = value.slice(0, 2);
  if (PREFIXES.has(prefix) && value.length > 2 && /[\d\-+.]/.test(value[2])) {
    return { operator: prefix, value: value.slice(2) };
  }
  return { operator: Operator.EQUALS, value };
}

/**
 * @param {number} target - A resource value.
 * @param {string} operator - Comparison prefix.
 * @param {string} text - Search number as text.
 * @returns {boolean} Whether the value satisfies the comparison.
 */
function compareNumber(target, operator, text) {
  const v = Number(text);
  if (text.trim() === '' || Number.isNaN(v)) {
    throw badRequestError(`Invalid number in search: "${text}"`);
  }
  const half = impliedHalfRange(text);
  switch (operator) {
    case Operator.EQUALS:
      return target >= v - half && target < v + half;
    case Operator.NOT_EQUALS:
      return !(target >= v - half && target < v + half);
    case Operator.GREATER_THAN:
    case Operator.STARTS_AFTER:
      return target > v;
    case Operator.LESS_THAN:
    case Operator.ENDS_BEFORE:
      return target < v;
    case Operator.GREATER_THAN_OR_EQUALS:
      return target >= v;
    case Operator.LESS_THAN_OR_EQUALS:
      return target <= v;
    case Operator.APPROXIMATELY:
      return Math.abs(target - v) <= Math.abs(v) * 0.1;
    default:
      throw badRequestError(`Unsupported number comparison "${operator}"`);
  }
}

/**
 * Date comparison (https://hl7.org/fhir/R4/search.html#prefix), on UTC instant ranges.
 * @param {{start?: string, end?: string}} target - Resource value as a period.
 * @param {string} operator - Comparison prefix.
 * @param {{start?: string, end?: string}} search - Search value as a period.
 * @returns {boolean} Whether the value satisfies the comparison.
 */
function compareDate(target, operator, search) {
  const ts = target.start ?? '0000';
  const te = target.end ?? '9999';
  const ss = search.start;
  const se = search.end;
  const contained = ts >= ss && te <= se;
  switch (operator) {
    case Operator.EQUALS:
      return contained;
    case Operator.NOT_EQUALS:
      return !contained;
    case Operator.GREATER_THAN:
      return te > se;
    case Operator.LESS_THAN:
      return ts < ss;
    case Operator.GREATER_THAN_OR_EQUALS:
      return te > se || contained;
    case Operator.LESS_THAN_OR_EQUALS:
      return ts < ss || contained;
    case Operator.STARTS_AFTER:
      return ts > se;
    case Operator.ENDS_BEFORE:
      return te < ss;
    case Operator.APPROXIMATELY:
      return ts <= se && te >= ss;
    default:
      throw badRequestError(`Unsupported date comparison "${operator}"`);
  }
}

// ---------------------------------------------------------------------------------------------
// Matching per parameter type

/**
 * @param {{system?: string, value?: string, primitive: boolean}} token - Resource token.
 * @param {string} alternative - One comma-separated search alternative (still escaped).
 * @returns {boolean} Match.
 */
function tokenMatches(token, alternative) {
  const parts = splitEscaped(alternative, '|');
  if (parts.length === 1) {
    return token.value === unescapeValue(parts[0]);
  }
  const system = unescapeValue(parts[0]);
  const code = unescapeValue(parts.slice(1).join('|'));
  if (token.primitive) {
    // Plain code elements have an implicit system (e.g. Patient.gender).
    return code !== '' && token.value === code;
  }
  if (system === '') {
    return !token.system && token.value === code;
  }
  if (code === '') {
    return token.system === system;
  }
  return token.system === system && token.value === code;
}

/**
 * @param {TypedValue[]} values - Token values.
 * @param {string} operator - Operator / modifier.
 * @param {string} raw - Raw search value.
 * @returns {boolean} Match.
 */
function matchToken(values, operator, raw) {
  const alternatives = splitEscaped(raw, ',');
  if (operator === Operator.TEXT) {
    const needles = alternatives.map((a) => normalizeText(unescapeValue(a)));
    const texts = extractTokenTexts(values).map(normalizeText);
    return texts.some((t) =>
      needles.some((n) => t.startsWith(n) || t.split(/\s+/).some((word) => word.startsWith(n)))
    );
  }
  if (operator === Operator.OF_TYPE) {
    return alternatives.some((alt) => {
      const [typeSystem, typeCode, value] = splitEscaped(alt, '|').map(unescapeValue);
      return values.some(
        ({ type, value: identifier }) =>
          type === 'Identifier' &&
          identifier?.value === value &&
          (identifier.type?.coding ?? []).some((c) => c.system === typeSystem && c.code === typeCode)
      );
    });
  }
  const tokens = extractTokens(values);
  const any = alternatives.some((alt) => tokens.some((token) => tokenMatches(token, alt)));
  if (operator === Operator.NOT || operator === Operator.NOT_EQUALS) {
    return !any;
  }
  if (operator === Operator.EQUALS) {
    return any;
  }
  throw badRequestError(`Unsupported token modifier ":${operator}"`);
}

/**
 * @param {TypedValue[]} values - String values.
 * @param {string} operator - Operator / modifier.
 * @param {string} raw - Raw search value.
 * @returns {boolean} Match.
 */
function matchString(values, operator, raw) {
  const targets = [];
  for (const { value } of values) collectStrings(value, targets);
  const alternatives = splitEscaped(raw, ',').map(unescapeValue);
  switch (operator) {
    case Operator.EXACT:
      return targets.some((t) => alternatives.includes(t));
    case Operator.CONTAINS:
      return targets.some((t) => alternatives.some((a) => normalizeText(t).includes(normalizeText(a))));
    case Operator.EQUALS:
      return targets.some((t) => alternatives.some((a) => normalizeText(t).startsWith(normalizeText(a))));
    default:
      throw badRequestError(`Unsupported string modifier ":${operator}"`);
  }
}

/**
 * @param {TypedValue[]} values - URI values.
 * @param {string} operator - Operator / modifier.
 * @param {string} raw - Raw search value.
 * @returns {boolean} Match.
 */
function matchUri(values, operator, raw) {
  const targets = values.map((v) => v.value).filter((v) => typeof v === 'string');
  const alternatives = splitEscaped(raw, ',').map(unescapeValue);
  switch (operator) {
    case Operator.EQUALS:
      return targets.some((t) => alternatives.includes(t));
    case Operator.ABOVE:
      return targets.some((t) => alternatives.some((a) => a.startsWith(t)));
    case Operator.BELOW:
      return targets.some((t) => alternatives.some((a) => t.startsWith(a)));
    default:
      throw badRequestError(`Unsupported uri modifier ":${operator}"`);
  }
}

/**
 * @param {TypedValue[]} values - Reference values.
 * @param {string} operator - Operator / modifier.
 * @param {string} raw - Raw search value.
 * @param {SearchContext} ctx - Store access.
 * @returns {boolean} Match.
 */
function matchReference(values, operator, raw, ctx) {
  const refs = extractReferences(values, ctx.baseUrl);
  const alternatives = splitEscaped(raw, ',');
  if (operator === Operator.IDENTIFIER) {
    const tokens = refs
      .filter((r) => r.identifier)
      .map((r) => ({ system: r.identifier.system, value: r.identifier.value, primitive: false }));
    return alternatives.some((alt) => tokens.some((t) => tokenMatches(t, alt)));
  }
  const any = alternatives.some((alt) => {
    const wanted = normalizeReference(unescapeValue(alt), ctx.baseUrl);
    if (wanted.includes('/')) {
      return refs.some(
        (r) => r.reference !== undefined && (r.reference === wanted || r.reference.startsWith(wanted + '|'))
      );
    }
    // A bare id matches a reference to any type with that id.
    return refs.some((r) => r.reference !== undefined && r.reference.split('/').pop() === wanted);
  });
  if (operator === Operator.NOT || operator === Operator.NOT_EQUALS) {
    return !any;
  }
  return any;
}

/**
 * @param {TypedValue[]} values - Date values.
 * @param {string} operator - Prefix operator.
 * @param {string} raw - Raw search value (prefix already removed by the parser).
 * @returns {boolean} Match.
 */
function matchDate(values, operator, raw) {
  const targets = values.map((v) => toPeriod(v.value)).filter(Boolean);
  const searches = splitEscaped(raw, ',').map((alt) => {
    const period = toPeriod(unescapeValue(alt));
    if (!period) {
      throw badRequestError(`Invalid date in search: "${alt}"`);
    }
    return period;
  });
  return targets.some((t) => searches.some((s) => compareDate(t, operator, s)));
}

/**
 * @param {TypedValue[]} values - Number values (or Ranges).
 * @param {string} operator - Prefix operator.
 * @param {string} raw - Raw search value.
 * @returns {boolean} Match.
 */
function matchNumber(values, operator, raw) {
  const alternatives = splitEscaped(raw, ',').map(unescapeValue);
  return values.some(({ type, value }) => {
    const candidates =
      type === 'Range' ? [value?.low?.value, value?.high?.value] : [typeof value === 'number' ? value : Number(value)];
    return candidates
      .filter((n) => typeof n === 'number' && !Number.isNaN(n))
      .some((n) => alternatives.some((alt) => compareNumber(n, operator, alt)));
  });
}

/**
 * @param {TypedValue[]} values - Quantity values.
 * @param {string} operator - Prefix operator.
 * @param {string} raw - Raw search value `number|system|code` (prefix removed).
 * @returns {boolean} Match.
 */
function matchQuantity(values, operator, raw) {
  return splitEscaped(raw, ',').some((alt) => {
    const [number, system, code] = splitEscaped(alt, '|').map(unescapeValue);
    return values.some(({ value }) => {
      const quantity = typeof value === 'number' ? { value } : value;
      if (!quantity || typeof quantity.value !== 'number') {
        return false;
      }
      if (system) {
        if (quantity.system !== system || quantity.code !== code) return false;
      } else if (code) {
        if (quantity.code !== code && quantity.unit !== code) return false;
      }
      return compareNumber(quantity.value, operator, number);
    });
  });
}

/**
 * @param {SearchParameter} param - Composite parameter.
 * @param {TypedValue[]} items - Values of the composite's base expression.
 * @param {string} raw - Raw search value `a$b,c$d`.
 * @param {SearchContext} ctx - Store access.
 * @returns {boolean} Match.
 */
function matchComposite(param, items, raw, ctx) {
  const components = param.component ?? [];
  return splitEscaped(raw, ',').some((alt) => {
    const parts = splitEscaped(alt, '$');
    if (parts.length !== components.length) {
      throw badRequestError(`Composite parameter ${param.code} needs ${components.length} "$"-separated values`);
    }
    return items.some((item) =>
      components.every((component, i) => {
        const componentParam = searchParametersByUrl.get(component.definition);
        if (!componentParam) {
          throw badRequestError(`Unknown composite component ${component.definition}`);
        }
        const values = evalFhirPathTyped(parsedExpression(component.expression), [item]);
        let operator = Operator.EQUALS;
        let value = parts[i];
        if (['number', 'date', 'quantity'].includes(componentParam.type)) {
          ({ operator, value } = splitPrefix(value));
        }
        return matchValues(componentParam, values, operator, value, ctx);
      })
    );
  });
}

/**
 * @param {SearchParameter} param - Parameter definition.
 * @param {TypedValue[]} values - Evaluated values.
 * @param {string} operator - Operator / modifier.
 * @param {string} value - Raw search value.
 * @param {SearchContext} ctx - Store access.
 * @returns {boolean} Match.
 */
function matchValues(param, values, operator, value, ctx) {
  switch (param.type) {
    case 'token':
      return matchToken(values, operator, value);
    case 'string':
      return matchString(values, operator, value);
    case 'uri':
      return matchUri(values, operator, value);
    case 'reference':
      return matchReference(values, operator, value, ctx);
    case 'date':
      return matchDate(values, operator, value);
    case 'number':
      return matchNumber(values, operator, value);
    case 'quantity':
      return matchQuantity(values, operator, value);
    case 'composite':
      return matchComposite(param, values, value, ctx);
    default:
      throw badRequestError(`Search parameter type "${param.type}" (${param.code}) is not supported`);
  }
}

/**
 * Parses one `key=value` pair into a Medplum filter for the given resource type.
 * @param {string} resourceType - Resource type.
 * @param {string} key - Parameter name with modifier/chain.
 * @param {string} value - Raw value.
 * @returns {Filter} The filter.
 */
function parseSingleFilter(resourceType, key, value) {
  const filter = parseSearch(resourceType, [[key, value]]).filters?.[0];
  if (!filter) {
    throw badRequestError(`"${key}" cannot be used in a chained or _has search`);
  }
  return filter;
}

/**
 * Evaluates one parsed filter (one `param=value` occurrence, comma = OR) against a resource.
 * @param {Resource} resource - Candidate resource.
 * @param {Filter} filter - Parsed filter.
 * @param {SearchContext} ctx - Store access.
 * @returns {boolean} Match.
 */
export function matchesFilter(resource, filter, ctx) {
  const { code, operator, value } = filter;
  if (code.startsWith('_has:')) {
    return matchesHas(resource, code, value, ctx);
  }
  if (code.includes('.')) {
    return matchesChain(resource, code, value, ctx);
  }
  const param = getSearchParameter(resource.resourceType, code);
  if (!param) {
    throw badRequestError(`Unknown search parameter "${code}" for ${resource.resourceType}`);
  }
  const values = evalParam(param.expression, resource, ctx.baseUrl);
  if (operator === Operator.MISSING) {
    if (value !== 'true' && value !== 'false') {
      throw badRequestError(`:missing requires true or false, got "${value}"`);
    }
    return (value === 'true') === (values.length === 0);
  }
  return matchValues(param, values, operator, value, ctx);
}

/**
 * Chained parameter, e.g. `subject:Patient.identifier=sys|1` or `patient.name=smith`.
 * @param {Resource} resource - Candidate resource.
 * @param {string} key - Full chained key.
 * @param {string} value - Raw value.
 * @param {SearchContext} ctx - Store access.
 * @returns {boolean} Match.
 */
function matchesChain(resource, key, value, ctx) {
  const dot = key.indexOf('.');
  const [paramCode, typeModifier] = key.slice(0, dot).split(':');
  const rest = key.slice(dot + 1);
  const param = getSearchParameter(resource.resourceType, paramCode);
  if (param?.type !== 'reference') {
    throw badRequestError(`Chained search needs a reference parameter, "${paramCode}" is not one`);
  }
  const restCode = rest.split(/[.:]/)[0];
  for (const reference of localReferences(param, resource, ctx.baseUrl)) {
    const [type, id] = reference.split('/');
    if (typeModifier && type !== typeModifier) continue;
    if (!restCode.startsWith('_has') && !getSearchParameter(type, restCode)) continue;
    const target = ctx.resolve(type, id);
    if (target && matchesFilter(target, parseSingleFilter(type, rest, value), ctx)) {
      return true;
    }
  }
  return false;
}

/**
 * Reverse chaining, e.g. `_has:Observation:patient:code=1234-5`.
 * @param {Resource} resource - Candidate resource.
 * @param {string} key - Full `_has:...` key.
 * @param {string} value - Raw value.
 * @param {SearchContext} ctx - Store access.
 * @returns {boolean} Match.
 */
function matchesHas(resource, key, value, ctx) {
  const parts = key.split(':');
  if (parts.length < 4) {
    throw badRequestError(`Invalid _has parameter "${key}"`);
  }
  const [, sourceType, refCode, ...restParts] = parts;
  const rest = restParts.join(':');
  const refParam = getSearchParameter(sourceType, refCode);
  if (!isKnownResourceType(sourceType) || refParam?.type !== 'reference') {
    throw badRequestError(`Invalid _has parameter "${key}"`);
  }
  const me = `${resource.resourceType}/${resource.id}`;
  const filter = parseSingleFilter(sourceType, rest, value);
  const sources = ctx.resourcesReferencing?.(sourceType, refCode, me) ?? ctx.resourcesOfType(sourceType);
  for (const source of sources) {
    if (localReferences(refParam, source, ctx.baseUrl).includes(me) && matchesFilter(source, filter, ctx)) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Index keys
//
// The repository keeps, per resource type and token/reference parameter, a map from index keys
// to the ids of the resources holding them. The keys of a resource come from the very values the
// matcher compares (`evalParam` + `extractTokens` / `extractReferences`), and the keys of a search
// value are chosen so that every resource the matcher can accept holds at least one of them:
// the index only narrows the candidates, `matchesFilter` still decides.

/**
 * @param {SearchParameter} param - Token or reference parameter.
 * @returns {boolean} Whether `indexKeys` / `filterIndexKeys` support the parameter.
 */
export function isIndexableParam(param) {
  return param?.type === 'token' || param?.type === 'reference';
}

/**
 * Index keys of a resource for a token or reference parameter. May throw like `matchesFilter`
 * (FHIRPath evaluation); the caller then treats the resource as a candidate for every search.
 * @param {SearchParameter} param - Token or reference parameter.
 * @param {Resource} resource - Resource.
 * @param {string} baseUrl - This server's FHIR base.
 * @returns {Set<string>} Keys.
 */
export function indexKeys(param, resource, baseUrl) {
  const keys = new Set();
  const values = evalParam(param.expression, resource, baseUrl);
  if (param.type === 'token') {
    for (const token of extractTokens(values)) {
      const hasValue = token.value !== undefined && token.value !== null;
      if (hasValue) {
        keys.add(`v\0${token.value}`);
      }
      if (token.primitive) {
        if (hasValue) keys.add(`p\0${token.value}`);
      } else if (token.system !== undefined && token.system !== null) {
        keys.add(`s\0${token.system}`);
        if (hasValue) keys.add(`sv\0${token.system}\0${token.value}`);
      }
    }
  } else if (param.type === 'reference') {
    for (const { reference } of extractReferences(values, baseUrl)) {
      if (typeof reference !== 'string') continue;
      keys.add(`r\0${reference}`);
      // `wanted|...` (versioned canonical) matches a search for `wanted`.
      for (let i = reference.indexOf('|'); i >= 0; i = reference.indexOf('|', i + 1)) {
        keys.add(`r\0${reference.slice(0, i)}`);
      }
      keys.add(`l\0${reference.split('/').pop()}`);
    }
  }
  return keys;
}

/**
 * Index keys for one search filter: every resource that `matchesFilter` accepts for it holds at
 * least one of them (see `tokenMatches` and `matchReference`).
 * @param {SearchParameter} param - The filter's parameter (token or reference).
 * @param {Filter} filter - Parsed filter on a plain parameter code.
 * @param {string} baseUrl - This server's FHIR base.
 * @returns {string[] | undefined} Keys, or undefined when the filter cannot be narrowed by keys
 *   (modifiers such as `:not`, `:text`, `:of-type`, `:identifier`, `:missing`).
 */
export function filterIndexKeys(param, filter, baseUrl) {
  if (filter.operator !== Operator.EQUALS || typeof filter.value !== 'string') {
    return undefined;
  }
  const keys = [];
  if (param.type === 'token') {
    for (const alternative of splitEscaped(filter.value, ',')) {
      const parts = splitEscaped(alternative, '|');
      if (parts.length === 1) {
        keys.push(`v\0${unescapeValue(parts[0])}`);
        continue;
      }
      const system = unescapeValue(parts[0]);
      const code = unescapeValue(parts.slice(1).join('|'));
      if (system === '') {
        keys.push(`v\0${code}`); // also covers primitive tokens
        continue;
      }
      if (code !== '') {
        keys.push(`p\0${code}`, `sv\0${system}\0${code}`);
      } else {
        keys.push(`s\0${system}`);
      }
    }
    return keys;
  }
  if (param.type === 'reference') {
    for (const alternative of splitEscaped(filter.value, ',')) {
      const wanted = normalizeReference(unescapeValue(alternative), baseUrl);
      keys.push(wanted.includes('/') ? `r\0${wanted}` : `l\0${wanted}`);
    }
    return keys;
  }
  return undefined;
}

/**
 * @param {string} reference - A local `Type/id` reference.
 * @returns {string} The index key of resources holding exactly that reference.
 */
export function referenceIndexKey(reference) {
  return `r\0${reference}`;
}

// ---------------------------------------------------------------------------------------------
// Support check (used for lenient/strict handling of unknown parameters)

const SUPPORTED_MODIFIERS = {
  token: ['', 'not', 'text', 'of-type'],
  string: ['', 'exact', 'contains'],
  reference: ['', 'identifier'],
  uri: ['', 'above', 'below'],
  date: [''],
  number: [''],
  quantity: [''],
  composite: [''],
};

/**
 * @param {string} resourceType - Searched resource type.
 * @param {string} key - Parameter key, including modifiers / chains.
 * @returns {string | undefined} Why the parameter cannot be honoured, or undefined when supported.
 */
export function unsupportedParameterReason(resourceType, key) {
  if (key.startsWith('_has:')) {
    const parts = key.split(':');
    if (parts.length < 4) return `Invalid _has parameter "${key}"`;
    const [, sourceType, refCode, ...rest] = parts;
    if (!isKnownResourceType(sourceType)) return `Unknown resource type "${sourceType}" in "${key}"`;
    if (getSearchParameter(sourceType, refCode)?.type !== 'reference') {
      return `"${refCode}" is not a reference parameter of ${sourceType}`;
    }
    return unsupportedParameterReason(sourceType, rest.join(':'));
  }
  if (key.includes('.')) {
    const dot = key.indexOf('.');
    const [paramCode, typeModifier] = key.slice(0, dot).split(':');
    const param = getSearchParameter(resourceType, paramCode);
    if (param?.type !== 'reference') return `"${paramCode}" is not a reference parameter of ${resourceType}`;
    const targets = typeModifier ? [typeModifier] : (param.target ?? []);
    const rest = key.slice(dot + 1);
    const ok = targets.some((t) => isKnownResourceType(t) && !unsupportedParameterReason(t, rest));
    return ok ? undefined : `Chained parameter "${key}" is not supported for ${resourceType}`;
  }
  const colon = key.indexOf(':');
  const code = colon >= 0 ? key.slice(0, colon) : key;
  const modifier = colon >= 0 ? key.slice(colon + 1) : '';
  const param = getSearchParameter(resourceType, code);
  if (!param) return `Unknown search parameter "${code}" for ${resourceType}`;
  const modifiers = SUPPORTED_MODIFIERS[param.type];
  if (!modifiers) return `Search parameter "${code}" of type ${param.type} is not supported`;
  if (modifier === 'missing' || modifiers.includes(modifier)) return undefined;
  if (param.type === 'reference' && isKnownResourceType(modifier)) return undefined;
  return `Modifier ":${modifier}" is not supported for "${code}" (${param.type})`;
}

/**
 * @param {string} resourceType - Resource type.
 * @param {string} code - `_sort` code without the leading `-`.
 * @returns {boolean} Whether sorting by that parameter is supported.
 */
export function isSortable(resourceType, code) {
  const param = getSearchParameter(resourceType, code);
  return Boolean(param && ['date', 'string', 'token', 'number', 'quantity', 'reference', 'uri'].includes(param.type));
}

// ---------------------------------------------------------------------------------------------
// Sorting

/**
 * @param {Resource} resource - Resource.
 * @param {string} code - Search parameter code.
 * @param {boolean} descending - Sort direction (dates use the end of the period when descending).
 * @param {string} baseUrl - FHIR base.
 * @returns {string | number | undefined} Comparable key.
 */
function sortKey(resource, code, descending, baseUrl) {
  const param = getSearchParameter(resource.resourceType, code);
  if (!param) return undefined;
  const values = evalParam(param.expression, resource, baseUrl);
  if (values.length === 0) return undefined;
  const keys = [];
  for (const typed of values) {
    switch (param.type) {
      case 'date': {
        const period = toPeriod(typed.value);
        if (period) keys.push(descending ? (period.end ?? period.start) : (period.start ?? period.end));
        break;
      }
      case 'number':
        keys.push(typed.type === 'Range' ? typed.value?.low?.value : Number(typed.value));
        break;
      case 'quantity':
        keys.push(typeof typed.value === 'number' ? typed.value : typed.value?.value);
        break;
      case 'string': {
        const strings = [];
        collectStrings(typed.value, strings);
        keys.push(...strings.map(normalizeText));
        break;
      }
      case 'token':
        keys.push(...extractTokens([typed]).map((t) => t.value));
        break;
      case 'reference':
        keys.push(...extractReferences([typed], baseUrl).map((r) => r.reference));
        break;
      default:
        keys.push(typeof typed.value === 'string' ? typed.value : JSON.stringify(typed.value));
    }
  }
  const defined = keys.filter((k) => k !== undefined && k !== null && !(typeof k === 'number' && Number.isNaN(k)));
  if (defined.length === 0) return undefined;
  defined.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return descending ? defined[defined.length - 1] : defined[0];
}

/**
 * Stable multi-key sort; resources without a value sort last in both directions.
 * @param {Resource[]} resources - Resources in store order.
 * @param {{code: string, descending?: boolean}[]} sortRules - Parsed `_sort`.
 * @param {string} baseUrl - FHIR base.
 * @returns {Resource[]} Sorted copy.
 */
export function sortResources(resources, sortRules, baseUrl) {
  if (!sortRules?.length) return resources;
  const keyed = resources.map((resource, index) => ({
    resource,
    index,
    keys: sortRules.map((rule) => sortKey(resource, rule.code, Boolean(rule.descending), baseUrl)),
  }));
  keyed.sort((a, b) => {
    for (let i = 0; i < sortRules.length; i++) {
      const ka = a.keys[i];
      const kb = b.keys[i];
      if (ka === kb) continue;
      if (ka === undefined) return 1;
      if (kb === undefined) return -1;
      const cmp = ka < kb ? -1 : 1;
      return sortRules[i].descending ? -cmp : cmp;
    }
    return a.index - b.index;
  });
  return keyed.map((k) => k.resource);
}

// ---------------------------------------------------------------------------------------------
// _elements / _summary

const SUBSETTED = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue',
  code: 'SUBSETTED',
  display: 'subsetted',
};

/**
 * @param {string} key - JSON property name.
 * @param {Set<string>} names - Element names (choice elements without [x]).
 * @returns {boolean} Whether the property is one of the elements.
 */
function isElementKey(key, names) {
  const plain = key.startsWith('_') ? key.slice(1) : key;
  if (names.has(plain)) return true;
  for (const name of names) {
    if (plain.startsWith(name) && /^[A-Z]/.test(plain.slice(name.length))) return true;
  }
  return false;
}

/**
 * Applies `_elements` / `_summary` (https://hl7.org/fhir/R4/search.html#elements).
 * @param {Resource} resource - A copy of the resource (not mutated).
 * @param {{fields?: string[], summary?: string}} request - Parsed search request.
 * @returns {Resource} The (possibly subsetted) resource.
 */
export function subsetResource(resource, request) {
  let keep;
  let drop;
  const schema = getDataType(resource.resourceType);
  if (request.fields?.length) {
    keep = new Set(request.fields.map((f) => f.trim().split('.').pop()));
    for (const m of schema?.mandatoryProperties ?? []) keep.add(m);
  } else if (request.summary === 'true') {
    keep = new Set(schema?.summaryProperties ?? []);
  } else if (request.summary === 'text') {
    keep = new Set(['text', ...(schema?.mandatoryProperties ?? [])]);
  } else if (request.summary === 'data') {
    drop = new Set(['text']);
  } else {
    return resource;
  }
  const result = {};
  for (const [key, value] of Object.entries(resource)) {
    if (key === 'resourceType' || key === 'id' || key === 'meta') {
      result[key] = value;
    } else if (keep ? isElementKey(key, keep) : !drop.has(key)) {
      result[key] = value;
    }
  }
  result.meta = { ...(result.meta ?? {}), tag: [...(result.meta?.tag ?? []), SUBSETTED] };
  return result;
}
