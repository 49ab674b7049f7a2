// ValueSet/$validate-code and CodeSystem/$subsumes against the SNOMED CT fixture hierarchy.
// Run: node --test tests/fhir_server/test/

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { issueCode, request, startServer } from './helpers.mjs';

const SCT = 'http://snomed.info/sct';
const DVT = '128053003';
const POPLITEAL_DVT = '132251000119101';
const MALIGNANCY = '363346000';
const SCLC = '254632001';
// Primary malignant neoplasm of upper lobe of right lung: below 363346000, not in the shipped
// risk-malignancy expansion (tests/data/README.md [MAL-SCT]).
const RUL_LUNG_CANCER = '93993007';
const PE = '233935004';

const valueSets = {
  'ValueSet-test-dvt.json': {
    resourceType: 'ValueSet',
    url: 'http://example.org/ValueSet/test-dvt',
    status: 'active',
    compose: { include: [{ system: SCT, filter: [{ property: 'concept', op: 'is-a', value: DVT }] }] },
  },
  'ValueSet-test-below-dvt.json': {
    resourceType: 'ValueSet',
    url: 'http://example.org/ValueSet/test-below-dvt',
    status: 'active',
    compose: { include: [{ system: SCT, filter: [{ property: 'concept', op: 'descendent-of', value: DVT }] }] },
  },
  'ValueSet-test-malignancy.json': {
    resourceType: 'ValueSet',
    url: 'http://example.org/ValueSet/test-malignancy',
    status: 'active',
    compose: {
      include: [
        { system: SCT, filter: [{ property: 'concept', op: 'is-a', value: MALIGNANCY }] },
        { system: 'http://hl7.org/fhir/sid/icd-10-cm', filter: [{ property: 'code', op: 'regex', value: 'C(0[0-9]|[1-8][0-9]|9[0-6])(\\..+)?' }] },
        { system: 'http://example.org/local', concept: [{ code: 'onc-1', display: 'Local oncology code' }] },
      ],
      exclude: [{ system: SCT, concept: [{ code: '254637007' }] }],
    },
  },
};

describe('terminology operations', () => {
  let server;
  let dir;
  const validate = (url, system, code) =>
    request(`${server.base}/ValueSet/$validate-code?url=${encodeURIComponent(url)}&system=${encodeURIComponent(system)}&code=${encodeURIComponent(code)}`);
  const param = (parameters, name) => parameters.parameter.find((p) => p.name === name);
  const subsumes = (a, b, system = SCT) =>
    request(`${server.base}/CodeSystem/$subsumes?system=${encodeURIComponent(system)}&codeA=${a}&codeB=${b}`);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fhirtis-vs-'));
    for (const [name, vs] of Object.entries(valueSets)) writeFileSync(join(dir, name), JSON.stringify(vs));
    server = await startServer(['--valuesets-dir', dir]);
  });
  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('$validate-code: is-a includes the concept and its fixture descendants', async () => {
    for (const code of [DVT, POPLITEAL_DVT]) {
      const res = await validate('http://example.org/ValueSet/test-dvt', SCT, code);
      assert.equal(res.status, 200);
      assert.equal(res.body.resourceType, 'Parameters');
      assert.equal(param(res.body, 'result').valueBoolean, true, code);
    }
    assert.equal(param((await validate('http://example.org/ValueSet/test-dvt', SCT, POPLITEAL_DVT)).body, 'display').valueString,
      'Acute deep venous thrombosis of popliteal vein (disorder)');
    const pe = (await validate('http://example.org/ValueSet/test-dvt', SCT, PE)).body;
    assert.equal(param(pe, 'result').valueBoolean, false);
    assert.match(param(pe, 'message').valueString, /not in/);
  });

  test('$validate-code: descendent-of excludes the concept itself', async () => {
    assert.equal(param((await validate('http://example.org/ValueSet/test-below-dvt', SCT, DVT)).body, 'result').valueBoolean, false);
    assert.equal(param((await validate('http://example.org/ValueSet/test-below-dvt', SCT, POPLITEAL_DVT)).body, 'result').valueBoolean, true);
  });

  test('$validate-code: regex and concept lists, exclude, unknown codes', async () => {
    const url = 'http://example.org/ValueSet/test-malignancy';
    assert.equal(param((await validate(url, SCT, SCLC)).body, 'result').valueBoolean, true);
    assert.equal(param((await validate(url, SCT, '254637007')).body, 'result').valueBoolean, false, 'excluded');
    assert.equal(param((await validate(url, 'http://hl7.org/fhir/sid/icd-10-cm', 'C34.90')).body, 'result').valueBoolean, true);
    assert.equal(param((await validate(url, 'http://hl7.org/fhir/sid/icd-10-cm', 'D34')).body, 'result').valueBoolean, false);
    const local = (await validate(url, 'http://example.org/local', 'onc-1')).body;
    assert.equal(param(local, 'result').valueBoolean, true);
    assert.equal(param(local, 'display').valueString, 'Local oncology code');
    const unknown = (await validate(url, SCT, '999999999')).body;
    assert.equal(param(unknown, 'result').valueBoolean, false);
    assert.match(param(unknown, 'message').valueString, /unknown to this server's SNOMED CT fixture/);
  });

  test('$validate-code: POST Parameters with coding or an inline valueSet', async () => {
    const res = await request(`${server.base}/ValueSet/$validate-code`, {
      method: 'POST',
      body: {
        resourceType: 'Parameters',
        parameter: [
          { name: 'url', valueUri: 'http://example.org/ValueSet/test-dvt' },
          { name: 'coding', valueCoding: { system: SCT, code: POPLITEAL_DVT } },
        ],
      },
    });
    assert.equal(res.status, 200);
    assert.equal(param(res.body, 'result').valueBoolean, true);
    const inline = await request(`${server.base}/ValueSet/$validate-code`, {
      method: 'POST',
      body: {
        resourceType: 'Parameters',
        parameter: [
          { name: 'valueSet', resource: valueSets['ValueSet-test-malignancy.json'] },
          { name: 'system', valueUri: SCT },
          { name: 'code', valueCode: PE },
        ],
      },
    });
    assert.equal(param(inline.body, 'result').valueBoolean, false);
  });

  test('$validate-code: errors', async () => {
    const unknownVs = await validate('http://example.org/ValueSet/none', SCT, DVT);
    assert.equal(unknownVs.status, 404);
    const noCode = await request(`${server.base}/ValueSet/$validate-code?url=http://example.org/ValueSet/test-dvt`);
    assert.equal(noCode.status, 400);
  });

  test('$subsumes: equivalent, subsumes, subsumed-by, not-subsumed', async () => {
    const outcome = async (a, b) => param((await subsumes(a, b)).body, 'outcome').valueCode;
    assert.equal(await outcome(DVT, DVT), 'equivalent');
    assert.equal(await outcome(DVT, POPLITEAL_DVT), 'subsumes');
    assert.equal(await outcome(SCLC, MALIGNANCY), 'subsumed-by');
    assert.equal(await outcome(MALIGNANCY, RUL_LUNG_CANCER), 'subsumes');
    assert.equal(await outcome(DVT, SCLC), 'not-subsumed');
    assert.equal(await outcome(PE, DVT), 'not-subsumed');
  });

  test('$subsumes: unknown code or other system is a 400', async () => {
    assert.equal((await subsumes(DVT, '999999999')).status, 400);
    const other = await subsumes('a', 'b', 'http://loinc.org');
    assert.equal(other.status, 400);
    assert.equal(issueCode(other.body), 'not-supported');
  });

  test('operations are counted in /admin/stats', async () => {
    await request(`${server.root}/admin/reset-stats`, { method: 'POST' });
    await subsumes(DVT, POPLITEAL_DVT);
    await validate('http://example.org/ValueSet/test-dvt', SCT, DVT);
    const stats = (await request(`${server.root}/admin/stats`)).body;
    assert.equal(stats.operations, 2);
    assert.equal(stats.requests, 2);
  });
});

describe('terminology operations on the repository ValueSets (profiles/)', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => server.stop());

  test('a code listed in a ValueSet of profiles/ validates', async () => {
    const res = await request(
      `${server.base}/ValueSet/$validate-code?url=${encodeURIComponent('http://fhirtis.org/fhir/ValueSet/risk-malignancy')}&system=${encodeURIComponent(SCT)}&code=${MALIGNANCY}`
    );
    assert.equal(res.status, 200);
    assert.equal(res.body.parameter.find((p) => p.name === 'result').valueBoolean, true);
  });

  test('risk-malignancy: a listed code and a fixture descendant of its is-a parent validate', async () => {
    for (const code of [SCLC, RUL_LUNG_CANCER]) {
      const res = await request(
        `${server.base}/ValueSet/$validate-code?url=${encodeURIComponent('http://fhirtis.org/fhir/ValueSet/risk-malignancy')}&system=${encodeURIComponent(SCT)}&code=${code}`
      );
      assert.equal(res.status, 200);
      assert.equal(res.body.parameter.find((p) => p.name === 'result').valueBoolean, true, code);
    }
  });
});
