// Observability: the JSON log lines of refusals and account events, captured from wrangler dev's
// output (one line per refusal, in the audit lines' format, with the request id the client got, the
// route label, the reason and the verified subject when there is one; never a token or a password),
// and the metrics, through a fake Workers Analytics Engine binding in Miniflare that records each
// writeDataPoint (exactly one per request, fast path included; the documented blobs and doubles).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Miniflare } from 'miniflare';
import { devKeys } from '../../scripts/dev-keys.mjs';
import { startWorker, signToken, workerModules, ISSUER, AUDIENCE } from './harness.mjs';

const json = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const bearer = (t) => ({ headers: { authorization: `Bearer ${t}` } });
const PASSWORD = 'observability password 1';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The JSON lines of a kind in a log. */
const lines = (log, kind) => [...log.matchAll(new RegExp(`\\{"kind":"${kind}"[^\\n]*\\}`, 'g'))].map((m) => JSON.parse(m[0]));

describe('log lines (wrangler dev)', () => {
  let worker;
  before(async () => {
    worker = await startWorker({
      vars: { ROUTE_POLICIES: JSON.stringify([{ prefix: '/api/admin/', roles: ['admin'] }]), PROTECTED_PREFIXES: '/api/' },
    });
  });
  after(async () => { await worker?.cleanup(); });

  test('one line per refusal and per account event, with ids, route, reason and subject, and no secret', async () => {
    const seen = [];
    const send = async (path, init) => {
      const res = await worker.fetch(path, init);
      await res.arrayBuffer();
      seen.push({ path, status: res.status, rid: res.headers.get('x-request-id') });
      return res;
    };
    const email = `obs-${Date.now()}@example.com`;
    await send('/healthz');
    await send('/nowhere');
    await send('/api/whoami');
    const forged = await signToken(await devKeys(), { claims: { sub: 'forger' } });
    await send('/api/whoami', bearer(forged));
    await send('/auth/register', json({ email, password: PASSWORD }));
    await send('/auth/register', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email": ' });
    const login = await (await worker.fetch('/auth/login', json({ email, password: PASSWORD }))).json();
    await send('/api/admin/panel', bearer(login.access_token));
    for (let i = 0; i < 6; i++) await send('/auth/login', json({ email, password: `${PASSWORD}-wrong` }));
    await sleep(500);
    const log = worker.logs;

    const refusals = lines(log, 'refusal');
    const byRid = new Map(refusals.map((l) => [l.request_id, l]));
    const expect = (i, fields) => {
      const line = byRid.get(seen[i].rid);
      assert.ok(line, `a refusal line for ${seen[i].path} (${seen[i].status}), request id ${seen[i].rid}`);
      assert.equal(line.status, seen[i].status);
      for (const [k, v] of Object.entries(fields)) assert.deepEqual(line[k], v, `${seen[i].path}: ${k}`);
      assert.ok(Number.isInteger(line.at));
      return line;
    };
    assert.ok(!byRid.has(seen[0].rid) && !byRid.has(seen[1].rid), 'no line for a 200 or a 404');
    expect(2, { route: 'gateway:protected', error: 'invalid_token', sub: undefined });
    expect(3, { route: 'gateway:protected', error: 'invalid_token', sub: undefined, reason: 'unknown kid' });
    expect(5, { route: '/auth/register', error: 'invalid_request' });
    expect(6, { route: 'gateway:protected', error: 'insufficient_scope', sub: JSON.parse(Buffer.from(login.access_token.split('.')[1], 'base64url')).sub });
    const wrong = seen.slice(7);
    assert.deepEqual(wrong.map((s) => s.status), [401, 401, 401, 401, 401, 429], 'four failures free, then locked');
    for (let i = 7; i < 12; i++) expect(i, { route: '/auth/login', error: 'invalid_credentials' });
    expect(12, { route: '/auth/login', error: 'too_many_attempts' });
    assert.equal(refusals.filter((l) => seen.some((s) => s.rid === l.request_id)).length, seen.filter((s) => s.status >= 400 && s.status !== 404).length, 'one line per refusal');

    // Account events: the same format, with the operation as the route.
    const audit = lines(log, 'audit').filter((l) => seen.some((s) => s.rid === l.request_id) || l.event === 'login.succeeded');
    assert.ok(audit.some((l) => l.event === 'register' && l.route === 'register'));
    assert.equal(audit.filter((l) => l.event === 'login.failed' && l.route === 'login' && l.reason === 'wrong_password').length, 5);
    assert.ok(audit.some((l) => l.event === 'login.throttled' && l.route === 'login'));
    for (const l of [...refusals, ...audit]) assert.ok(l.request_id && l.at, JSON.stringify(l));

    // Never a token, a password or an email.
    for (const secret of [forged, login.access_token, login.refresh_token, PASSWORD, email]) {
      const line = log.split('\n').find((l) => l.includes('"kind":') && l.includes(secret));
      assert.equal(line, undefined, 'a secret in a log line');
    }
  });
});

// A Workers Analytics Engine binding that records: Miniflare's wrapped binding prints each point.
const RECORDER = `export default function () {
  return { writeDataPoint(point) { console.log('METRIC ' + JSON.stringify(point)); } };
}`;
const BLOBS = ['worker', 'route', 'status', 'error', 'version'];
const DOUBLES = ['requests', 'latency_ms', 'fast_path', 'verified_eddsa', 'verified_rs256', 'verified_es256', 'refused_eddsa',
  'refused_rs256', 'refused_es256', 'token_cache_hits', 'denylist_cache_hits', 'kv_reads', 'jwks_fetches'];

describe('metrics (Miniflare, a recording Analytics Engine binding)', () => {
  let mf;
  let keys;
  let out = '';
  const points = () => [...out.matchAll(/METRIC (\{[^\n]*\})/g)].map((m) => {
    const p = JSON.parse(m[1]);
    return {
      index: p.indexes[0],
      ...Object.fromEntries(BLOBS.map((b, i) => [b, p.blobs[i]])),
      ...Object.fromEntries(DOUBLES.map((d, i) => [d, p.doubles[i]])),
    };
  });
  const fetchW = async (path, init) => {
    const res = await mf.dispatchFetch(`http://gatehouse.test${path}`, init);
    await res.arrayBuffer();
    await sleep(50);
    return res;
  };

  before(async () => {
    keys = await devKeys();
    mf = new Miniflare({
      handleRuntimeStdio(stdout, stderr) {
        stdout.on('data', (d) => { out += d; });
        stderr.on('data', (d) => { out += d; });
      },
      workers: [
        {
          name: 'gatehouse',
          ...workerModules(),
          compatibilityDate: '2026-04-20',
          bindings: { ISSUER, AUDIENCE, SIGNING_KEYS: JSON.stringify(keys), REVOCATION_CACHE_SECONDS: '60' },
          kvNamespaces: ['DENYLIST'],
          durableObjects: { ACCOUNTS: { className: 'Account', useSQLite: true } },
          wrappedBindings: { METRICS: { scriptName: 'metrics-recorder' } },
        },
        { name: 'metrics-recorder', modules: true, script: RECORDER },
      ],
    });
    await mf.ready;
  });
  after(async () => { await mf?.dispose(); });

  test('one data point per request, with the documented blobs and doubles', async () => {
    const before = points().length;
    const sent = [];
    const send = async (what, path, init) => { sent.push(what); return fetchW(path, init); };
    await send('health', '/healthz');
    const ed = await signToken(keys, { alg: 'EdDSA', claims: { sub: 'metrics-user' } });
    await send('eddsa fresh', '/api/whoami', bearer(ed));
    await send('eddsa again (fast path)', '/api/whoami', bearer(ed));
    const rs = await signToken(keys, { alg: 'RS256', claims: { sub: 'metrics-user' } });
    await send('rs256 fresh', '/api/whoami', bearer(rs));
    await send('rs256 forged', '/api/whoami', bearer(rs.replace(/.{8}$/, 'AAAAAAAA')));
    await send('register', '/auth/register', json({ email: 'metrics@example.com', password: PASSWORD }));
    await send('login ok', '/auth/login', json({ email: 'metrics@example.com', password: PASSWORD }));
    await send('login refused', '/auth/login', json({ email: 'metrics@example.com', password: `${PASSWORD}!` }));
    await sleep(300);
    const got = points().slice(before);
    assert.equal(got.length, sent.length, `one point per request:\n${got.map((p) => JSON.stringify(p)).join('\n')}`);
    const at = (what) => got[sent.indexOf(what)];
    for (const p of got) {
      assert.equal(p.index, 'all-in-one');
      assert.equal(p.worker, 'all-in-one');
      assert.equal(p.requests, 1);
      assert.ok(p.latency_ms >= 0);
      assert.match(p.version, /^\d+\.\d+\.\d+\+/);
    }
    assert.deepEqual([at('health').route, at('health').status, at('health').error], ['/healthz', '200', '']);
    // A new token of a new user is answered on the fast path too: the thin entry reads the user's
    // denylist record (one KV read) and hands it to the same Rust decision.
    const fresh = at('eddsa fresh');
    assert.deepEqual([fresh.route, fresh.status, fresh.fast_path, fresh.verified_eddsa, fresh.kv_reads], ['gateway:protected', '200', 1, 1, 1]);
    const fast = at('eddsa again (fast path)');
    assert.deepEqual([fast.route, fast.status, fast.fast_path, fast.token_cache_hits, fast.denylist_cache_hits, fast.kv_reads],
      ['gateway:protected', '200', 1, 1, 1, 0]);
    const rsa = at('rs256 fresh');
    assert.deepEqual([rsa.verified_rs256, rsa.kv_reads, rsa.denylist_cache_hits], [1, 0, 1], 'the user\'s read was cached');
    const forged = at('rs256 forged');
    assert.deepEqual([forged.status, forged.error, forged.refused_rs256], ['401', 'invalid_token', 1]);
    assert.deepEqual([at('login ok').route, at('login ok').status], ['/auth/login', '200']);
    assert.deepEqual([at('login refused').status, at('login refused').error], ['401', 'invalid_credentials']);
    // Sums are exact: every count lands in exactly one point.
    const sum = (k) => got.reduce((a, p) => a + p[k], 0);
    assert.equal(sum('kv_reads'), 1);
    assert.equal(sum('verified_eddsa') + sum('verified_rs256'), 2);
    assert.equal(sum('jwks_fetches'), 0);
  });
});
