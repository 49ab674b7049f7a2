// Node.js module customization hook (registered by server.mjs through `module.register`).
//
// @medplum/fhir-router's batch processor carries two resource-protection limits that come from
// Medplum's hosted server, not from the FHIR specification:
//   * at most 50 update (PUT) entries per transaction, and
//   * at most 8 entries in a transaction that contains a conditional create/update/delete
//     ("requires strict isolation").
// FHIR R4 has no such limits, and this harness serialises every request anyway (so every
// transaction is trivially serialisable). This hook lifts both limits by rewriting the two
// constants in the bundled ESM file when it is loaded. The package version is pinned in
// package.json, so the pattern is deterministic; if it ever stops matching we fail loudly instead
// of silently running with the limits.

const TARGET_SUFFIX = '/@medplum/fhir-router/dist/esm/index.mjs';
const LIMITS_PATTERN = /var (\w+)=50,(\w+)=8,(\w+)=\/urn/;

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (!url.endsWith(TARGET_SUFFIX)) {
    return result;
  }
  const source =
    typeof result.source === 'string' ? result.source : Buffer.from(result.source).toString('utf8');
  if (!LIMITS_PATTERN.test(source)) {
    throw new Error(
      `fhir test server: could not find the batch limits in ${url}; ` +
        'the @medplum/fhir-router version changed, update lib/medplum-hooks.mjs'
    );
  }
  return {
    ...result,
    source: source.replace(LIMITS_PATTERN, 'var $1=Infinity,$2=Infinity,$3=/urn'),
    shortCircuit: true,
  };
}
