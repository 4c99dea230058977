// The split deployment: the edge Worker (wrangler.edge.toml, build-edge/) in front of the issuer Worker
// (wrangler.issuer.toml, build-issuer/) through a service binding, both in one wrangler dev session;
// and the edge Worker alone, a verifier only. Needs `bash scripts/build.sh edge` and `... issuer`.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { startWorker, signToken, startFakeIssuer, ISSUER } from './harness.mjs';
import { devKeys } from '../../scripts/dev-keys.mjs';

const json = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const bearer = (t) => ({ headers: { authorization: `Bearer ${t}` } });
const PASSWORD = 'correct horse battery';

/** The bindings wrangler lists for one Worker of the session, from its start-up log. */
function bindingsOf(logs, name) {
  const start = logs.indexOf(`${name} has access to the following bindings`);
  assert.ok(start >= 0, `wrangler lists ${name}'s bindings`);
  const rest = logs.slice(start);
  const end = rest.search(/\n\S[^\n]* has access to the following bindings|\n⎔|\nService bindings/);
  return end > 0 ? rest.slice(0, end) : rest;
}

async function signIn(worker, email) {
  assert.equal((await worker.fetch('/auth/register', json({ email, password: PASSWORD }))).status, 201);
  const res = await worker.fetch('/auth/login', json({ email, password: PASSWORD }));
  assert.equal(res.status, 200);
  return res.json();
}

for (const alg of ['EdDSA', 'RS256']) {
  describe(`split deployment: edge in front of the issuer (${alg} signing key first)`, () => {
    let worker;
    before(async () => {
      const keys = await devKeys();
      // The issuer signs with the first key: RS256 is signed by WebCrypto in the issuer Worker.
      if (alg === 'RS256') keys.keys.reverse();
      worker = await startWorker({ split: 'both', keys, vars: { REVOCATION_CACHE_SECONDS: '0' } });
    });
    after(async () => { await worker?.cleanup(); });

    test('the edge holds no secret and no account binding; the issuer holds them', () => {
      const edge = bindingsOf(worker.logs, 'gatehouse-edge');
      assert.doesNotMatch(edge, /SIGNING_KEYS|Durable Object|ACCOUNTS/, 'the edge has no keys and no objects');
      assert.match(edge, /ISSUER_SERVICE/);
      const issuer = bindingsOf(worker.logs, 'gatehouse-issuer');
      assert.match(issuer, /ACCOUNTS/);
    });

    test('register, log in, whoami, refresh and logout all through the edge; the edge verifies with the issuer\'s published keys', async () => {
      const jwks = await (await worker.fetch('/.well-known/jwks.json')).json();
      assert.deepEqual(jwks.keys.map((k) => k.kid), worker.keys.keys.map((k) => k.kid), 'the issuer\'s JWKS, passed on');
      const pair = await signIn(worker, `split-${alg}-${Date.now()}@example.com`);
      assert.equal(JSON.parse(Buffer.from(pair.access_token.split('.')[0], 'base64url')).alg, alg);
      const who = await worker.fetch('/api/whoami', bearer(pair.access_token));
      assert.equal(who.status, 200, await who.clone().text());
      const claims = await who.json();
      assert.equal(claims.iss, ISSUER);
      const refreshed = await worker.fetch('/auth/refresh', json({ refresh_token: pair.refresh_token }));
      assert.equal(refreshed.status, 200);
      const next = await refreshed.json();
      assert.equal((await worker.fetch('/api/whoami', bearer(next.access_token))).status, 200);
      // The logout goes to the issuer's account object, which writes the denylist the edge reads.
      assert.equal((await worker.fetch('/auth/logout', { method: 'POST', ...bearer(next.access_token) })).status, 204);
      const refused = await worker.fetch('/api/whoami', bearer(next.access_token));
      assert.equal(refused.status, 401);
      assert.equal((await refused.json()).error, 'invalid_token');
    });

    test('a token the issuer did not sign is refused at the edge, and the browser client comes through the edge', async () => {
      const { privateKey } = generateKeyPairSync('ed25519');
      const forged = { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: worker.keys.keys[0].kid, alg: 'EdDSA' }] };
      const token = await signToken(forged, { alg: 'EdDSA' });
      assert.equal((await worker.fetch('/api/whoami', bearer(token))).status, 401);
      const page = await worker.fetch('/');
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
    });
  });
}

describe('split deployment: the issuer with managed keys, the edge following its published set', () => {
  let worker;
  before(async () => {
    worker = await startWorker({
      split: 'both', keys: null,
      issuerVars: { KEY_MANAGEMENT: 'managed', MANAGED_KEY_ALG: 'ES256' },
      vars: { REVOCATION_CACHE_SECONDS: '0' },
    });
  });
  after(async () => { await worker?.cleanup(); });

  test('a token signed by a managed ES256 key verifies at the edge (WebCrypto, no p256 in the edge)', async () => {
    const pair = await signIn(worker, `managed-${Date.now()}@example.com`);
    assert.equal(JSON.parse(Buffer.from(pair.access_token.split('.')[0], 'base64url')).alg, 'ES256');
    const who = await worker.fetch('/api/whoami', bearer(pair.access_token));
    assert.equal(who.status, 200, await who.clone().text());
  });
});

describe('verifier only: the edge Worker alone', () => {
  let worker;
  let keys;
  before(async () => {
    keys = await devKeys();
    const publicKeys = { keys: keys.keys.map(({ d, p, q, dp, dq, qi, ...pub }) => pub) };
    worker = await startWorker({
      split: 'verifier', keys: null,
      edgeVars: { PUBLIC_KEYS: JSON.stringify(publicKeys), ISSUER_JWKS_URL: '', REVOCATION_CACHE_SECONDS: '0' },
    });
  });
  after(async () => { await worker?.cleanup(); });

  test('no route creates or changes an account, nothing of the issuer answers', async () => {
    for (const [path, init] of [
      ['/auth/register', json({ email: 'x@example.com', password: PASSWORD })],
      ['/auth/login', json({ email: 'x@example.com', password: PASSWORD })],
      ['/auth/refresh', json({ refresh_token: 'x' })],
      ['/auth/logout', { method: 'POST' }],
      ['/auth/logout-all', { method: 'POST' }],
      ['/oauth/token', { method: 'POST' }],
      ['/oauth/revoke', { method: 'POST' }],
      ['/.well-known/jwks.json', {}],
      ['/', {}],
    ]) {
      const res = await worker.fetch(path, init);
      assert.equal(res.status, 404, `${path}: no such route in a verifier`);
      assert.equal((await res.json()).error, 'not_found');
    }
  });

  test('tokens of the configured keys are verified, with the same rules', async () => {
    for (const alg of ['EdDSA', 'RS256']) {
      const token = await signToken(keys, { alg });
      assert.equal((await worker.fetch('/api/whoami', bearer(token))).status, 200, alg);
    }
    const expired = await signToken(keys, { alg: 'EdDSA', now: Math.floor(Date.now() / 1000) - 3600 });
    assert.equal((await worker.fetch('/api/whoami', bearer(expired))).status, 401);
    assert.equal((await worker.fetch('/api/whoami')).status, 401);
  });
});

describe('verifier of another issuer only: the edge with TRUSTED_ISSUERS and no keys of its own', () => {
  let worker;
  let issuer;
  before(async () => {
    issuer = await startFakeIssuer({ algs: ['RS256'] });
    const trusted = [{ issuer: issuer.url, jwks_url: issuer.jwksUrl, audience: 'third-aud', require_typ: false }];
    worker = await startWorker({
      split: 'verifier', keys: null,
      edgeVars: { TRUSTED_ISSUERS: JSON.stringify(trusted), ISSUER_JWKS_URL: '' },
    });
  });
  after(async () => { await worker?.cleanup(); await issuer?.close(); });

  test('its tokens pass; tokens of anyone else are refused 401, not a server error', async () => {
    const res = await worker.fetch('/api/whoami', bearer(await issuer.sign({}, { typ: null })));
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).sub, 'third-party-user');
    const own = await signToken(await devKeys(), { alg: 'EdDSA' });
    const refused = await worker.fetch('/api/whoami', bearer(own));
    assert.equal(refused.status, 401, await refused.clone().text());
    assert.equal((await worker.fetch('/healthz')).status, 200);
  });
});
