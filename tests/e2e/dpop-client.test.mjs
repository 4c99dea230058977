// DPoP across implementations, without a worker: proofs made by gatehouse's client (www/dpop.js,
// under Node's WebCrypto) and by panva's oauth4webapi are checked by gatehouse's Rust verifier
// (examples/dpop-verify.rs, one process reading JSON lines) and by jose's jwtVerify + EmbeddedJWK.
// A loopback server that asks the Rust verifier about every request drives the clients' nonce
// dance (400 and 401 `use_dpop_nonce`), the clock correction, the Node example's whole flow, and
// shows a copied token and a refresh with another key refused.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { jwtVerify, EmbeddedJWK, calculateJwkThumbprint, CompactSign, decodeProtectedHeader } from 'jose';
import { startVerifier, startDpopServer, nowSeconds, NONCE_SECRET } from './dpop-server.mjs';
import { createDpopClient, memoryStorage, htuOf } from '../../www/dpop.js';
import { run } from '../../examples/dpop-client.mjs';
import { refreshWithNonceRetry } from './dpop-proofs.mjs';

const b64u = (bytes) => Buffer.from(bytes).toString('base64url');
const sha256 = (text) => b64u(createHash('sha256').update(text).digest());

/** jose's opinion of a proof: signature by the embedded key, typ, and the claims for the request. */
async function joseVerdict(proof, { method, url, accessToken, now = nowSeconds() }) {
  try {
    const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
      typ: 'dpop+jwt', algorithms: ['ES256', 'EdDSA', 'Ed25519'], currentDate: new Date(now * 1000), maxTokenAge: 60, clockTolerance: 5,
      requiredClaims: ['jti', 'htm', 'htu', 'iat'],
    });
    if (payload.htm !== method) return { ok: false, why: 'htm' };
    const normal = (u) => { const x = new URL(u); x.search = ''; x.hash = ''; return x.href; };
    if (normal(payload.htu) !== normal(url)) return { ok: false, why: 'htu' };
    if (accessToken !== undefined && payload.ath !== sha256(accessToken)) return { ok: false, why: 'ath' };
    return { ok: true, jkt: await calculateJwkThumbprint(protectedHeader.jwk), jti: payload.jti };
  } catch (e) {
    return { ok: false, why: e.code ?? e.message };
  }
}

/** A proof made by oauth4webapi for a resource request (with ath), captured instead of sent. */
async function oauth4webapiResourceProof(handle, method, url, accessToken) {
  let proof;
  await oauth.protectedResourceRequest(accessToken, method, new URL(url), new Headers(), null, {
    DPoP: handle,
    [oauth.customFetch]: async (_url, init) => {
      proof = new Headers(init.headers).get('dpop');
      return new Response('{}', { status: 200 });
    },
  });
  return proof;
}

/** A proof made by oauth4webapi for a token request (no ath), captured instead of sent. */
async function oauth4webapiTokenProof(handle, tokenEndpoint) {
  let proof;
  const as = { issuer: new URL(tokenEndpoint).origin, token_endpoint: tokenEndpoint };
  await oauth.refreshTokenGrantRequest(as, { client_id: 'web' }, oauth.None(), 'rt-1', {
    DPoP: handle,
    [oauth.customFetch]: async (_url, init) => {
      proof = new Headers(init.headers).get('dpop');
      return new Response('{}', { status: 200 });
    },
  });
  return proof;
}

describe('DPoP proofs across implementations', () => {
  let verifier;
  before(async () => {
    verifier = await startVerifier();
  });
  after(() => verifier?.stop());

  const URL_ = 'https://api.gatehouse.test/api/orders';
  const TOKEN_URL = 'https://gatehouse.test/oauth/token';
  const TOKEN = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2ln';

  /** Proof makers: [name, resource proof, token-endpoint proof, thumbprint]. */
  async function makers() {
    const out = [];
    for (const alg of ['ES256', 'EdDSA']) {
      const client = createDpopClient({ storage: memoryStorage(), alg });
      out.push([`www/dpop.js ${alg}`, () => client.proofFor('GET', `${URL_}?page=2`, TOKEN), () => client.proofFor('POST', TOKEN_URL), await client.thumbprint()]);
    }
    for (const alg of ['ES256', 'Ed25519']) {
      const handle = oauth.DPoP({}, await oauth.generateKeyPair(alg));
      out.push([
        `oauth4webapi ${alg}`,
        () => oauth4webapiResourceProof(handle, 'GET', `${URL_}?page=2`, TOKEN),
        () => oauth4webapiTokenProof(handle, TOKEN_URL),
        await handle.calculateThumbprint(),
      ]);
    }
    return out;
  }

  test('every maker\'s proofs pass both verifiers, with the same thumbprint', async () => {
    for (const [name, resourceProof, tokenProof, jkt] of await makers()) {
      const proof = await resourceProof();
      const now = nowSeconds();
      const rust = await verifier.check({ proof, method: 'GET', url: URL_, access_token: TOKEN, now, cnf_jkt: jkt });
      assert.equal(rust.ok, true, `${name}: ${JSON.stringify(rust)}`);
      assert.equal(rust.jkt, jkt, name);
      const jose = await joseVerdict(proof, { method: 'GET', url: URL_, accessToken: TOKEN, now });
      assert.deepEqual(jose, { ok: true, jkt, jti: rust.jti }, name);
      const token = await tokenProof();
      const rustToken = await verifier.check({ proof: token, method: 'POST', url: TOKEN_URL, now });
      assert.equal(rustToken.ok, true, `${name}: ${JSON.stringify(rustToken)}`);
      assert.equal((await joseVerdict(token, { method: 'POST', url: TOKEN_URL, now })).ok, true, name);
      assert.equal(JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).ath, undefined, `${name}: no ath without a token`);
    }
  });

  test('every check refuses each maker\'s proof when the request differs, and both verifiers agree', async () => {
    const all = await makers();
    const otherJkt = all[1][3];
    for (const [name, resourceProof, , jkt] of all) {
      const proof = await resourceProof();
      const now = nowSeconds();
      const base = { proof, method: 'GET', url: URL_, access_token: TOKEN, now };
      const cases = [
        ['wrong htm', { method: 'POST' }, 'Method', { method: 'POST' }],
        ['wrong htu', { url: 'https://api.gatehouse.test/api/other' }, 'Url', { url: 'https://api.gatehouse.test/api/other' }],
        ['stale iat', { now: now + 120 }, 'Stale', { now: now + 120 }],
        ['wrong ath', { access_token: 'another token' }, 'AthMismatch', { accessToken: 'another token' }],
      ];
      for (const [what, change, error, joseChange] of cases) {
        const rust = await verifier.check({ ...base, ...change });
        assert.equal(rust.error, error, `${name}, ${what}: ${JSON.stringify(rust)}`);
        assert.equal(rust.code, 'invalid_dpop_proof', `${name}, ${what}`);
        const jose = await joseVerdict(proof, { method: 'GET', url: URL_, accessToken: TOKEN, now, ...joseChange });
        assert.equal(jose.ok, false, `${name}, ${what}: jose accepted it`);
      }
      // Tampered: one claim changed after signing.
      const [h, p, s] = proof.split('.');
      const claims = JSON.parse(Buffer.from(p, 'base64url'));
      const tampered = `${h}.${b64u(JSON.stringify({ ...claims, htu: 'https://evil.test/' }))}.${s}`;
      assert.equal((await verifier.check({ ...base, proof: tampered })).error, 'BadSignature', name);
      assert.equal((await joseVerdict(tampered, { method: 'GET', url: 'https://evil.test/', accessToken: TOKEN, now })).ok, false);
      // Another key than the token's.
      if (jkt !== otherJkt) {
        const rust = await verifier.check({ ...base, cnf_jkt: otherJkt });
        assert.deepEqual([rust.error, rust.code], ['KeyMismatch', 'invalid_token'], name);
      }
      // A nonce required and missing.
      const rust = await verifier.check({ ...base, nonce_secret: NONCE_SECRET });
      assert.deepEqual([rust.error, rust.code], ['NonceMissing', 'use_dpop_nonce'], name);
      // Replay: the first presentation is remembered, the second refused.
      assert.equal((await verifier.check({ ...base, remember: true })).ok, true, name);
      assert.equal((await verifier.check({ ...base, remember: true })).error, 'Replayed', name);
    }
  });

  test('a proof with a private key in its header is refused by both', async () => {
    const { privateKey } = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const jwk = await crypto.subtle.exportKey('jwk', privateKey);
    const privateJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, d: jwk.d };
    const now = nowSeconds();
    const claims = { jti: 'j-private', htm: 'POST', htu: TOKEN_URL, iat: now };
    const proof = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: privateJwk })
      .sign(privateKey);
    assert.equal(decodeProtectedHeader(proof).jwk.d, jwk.d);
    assert.equal((await verifier.check({ proof, method: 'POST', url: TOKEN_URL, now })).error, 'PrivateKey');
    assert.equal((await joseVerdict(proof, { method: 'POST', url: TOKEN_URL, now })).ok, false);
  });

  test('the client\'s htu is the URL without query and fragment, in WHATWG form', () => {
    assert.equal(htuOf('HTTPS://API.gatehouse.test:443/a/../orders?x=1#f'), 'https://api.gatehouse.test/orders');
    assert.equal(htuOf('http://127.0.0.1:8787/api'), 'http://127.0.0.1:8787/api');
  });
});

describe('the nonce dance and clock correction against a loopback server checking with the Rust verifier', () => {
  let verifier, server, base, seen;

  before(async () => {
    verifier = await startVerifier();
    server = await startDpopServer(verifier);
    ({ base, seen } = server);
  });
  after(() => {
    server?.close();
    verifier?.stop();
  });

  const attempts = (from) => seen.slice(from);

  for (const alg of ['ES256', 'EdDSA']) {
    test(`www/dpop.js (${alg}): token request retried once with the nonce and the same body, then the resource`, async () => {
      const client = createDpopClient({ storage: memoryStorage(), alg });
      const mark = seen.length;
      const form = 'grant_type=refresh_token&refresh_token=r-1';
      const res = await client.fetch(`${base}/token`, { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assert.equal(res.status, 200);
      const grant = await res.json();
      assert.equal(grant.token_type, 'DPoP');
      assert.equal(grant.access_token, `at-${await client.thumbprint()}`);
      const tries = attempts(mark);
      assert.deepEqual(tries.map((t) => t.verdict.error ?? 'ok'), ['NonceMissing', 'ok']);
      assert.deepEqual(tries.map((t) => t.body), [form, form], 'the body is sent again on the retry');
      assert.equal(client.nonceFor(base) !== undefined, true);
      // With the nonce known, the resource answers at the first try.
      const mark2 = seen.length;
      const api = await client.fetch(`${base}/api/orders?page=2`, {}, { accessToken: grant.access_token });
      assert.equal(api.status, 200);
      assert.equal((await api.json()).jkt, await client.thumbprint());
      assert.equal(attempts(mark2).length, 1);
      // The same token with a proof from another key (a thief's): refused, not retried as a nonce error.
      const thief = createDpopClient({ storage: memoryStorage() });
      await thief.fetch(`${base}/api/warmup`);
      const stolen = await thief.fetch(`${base}/api/orders`, {}, { accessToken: grant.access_token });
      assert.equal(stolen.status, 401);
      assert.match(stolen.headers.get('www-authenticate'), /error="invalid_token"/);
      // The token alone, as a bearer token without any proof: refused.
      const plain = await fetch(`${base}/api/orders`, { headers: { authorization: `DPoP ${grant.access_token}` } });
      assert.equal(plain.status, 401);
      assert.match(plain.headers.get('www-authenticate'), /invalid_dpop_proof/);
    });
  }

  test('a resource 401 use_dpop_nonce is retried once; other refusals are not retried', async () => {
    const client = createDpopClient({ storage: memoryStorage() });
    const token = `at-${await client.thumbprint()}`;
    const mark = seen.length;
    const res = await client.fetch(`${base}/api/orders`, {}, { accessToken: token });
    assert.equal(res.status, 200);
    assert.deepEqual(attempts(mark).map((t) => t.verdict.error ?? 'ok'), ['NonceMissing', 'ok']);
    // A token bound to another key is refused once: invalid_token is not a nonce error.
    const mark2 = seen.length;
    const other = await client.fetch(`${base}/api/orders`, {}, { accessToken: 'at-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    assert.equal(other.status, 401);
    assert.equal(attempts(mark2).length, 1);
  });

  test('a client clock two minutes slow is corrected from the server\'s Date, with one retry', async () => {
    const client = createDpopClient({ storage: memoryStorage(), now: () => Date.now() - 120_000 });
    const token = `at-${await client.thumbprint()}`;
    const mark = seen.length;
    const res = await client.fetch(`${base}/api/orders`, {}, { accessToken: token });
    assert.equal(res.status, 200);
    assert.deepEqual(attempts(mark).map((t) => t.verdict.error ?? 'ok'), ['Stale', 'ok']);
  });

  for (const alg of ['ES256', 'EdDSA']) {
    test(`examples/dpop-client.mjs (${alg}): login, call, refresh with the same key, call, copied token refused`, async () => {
      const lines = [];
      const outcome = await run({ base, email: 'a@example.com', password: 'pw', path: '/api/whoami', alg, log: (l) => lines.push(l) });
      assert.deepEqual(outcome, { ok: true, bound: true, statuses: [200, 200, 200, 200, 401, 401] }, lines.join('\n'));
    });
  }

  test('a refresh with another key than the login\'s is refused', async () => {
    const owner = createDpopClient({ storage: memoryStorage() });
    const thief = createDpopClient({ storage: memoryStorage() });
    const login = await owner.fetch(`${base}/auth/login`, { method: 'POST', body: '{}' });
    const { refresh_token } = await login.json();
    const stolen = await thief.fetch(`${base}/auth/refresh`, { method: 'POST', body: JSON.stringify({ refresh_token }) });
    assert.equal(stolen.status, 401);
    assert.equal((await stolen.json()).error, 'invalid_grant');
  });

  for (const alg of ['ES256', 'Ed25519']) {
    test(`oauth4webapi (${alg}) does the same dance with the server`, async () => {
      const handle = oauth.DPoP({}, await oauth.generateKeyPair(alg));
      const as = { issuer: base, token_endpoint: `${base}/token` };
      const options = { DPoP: handle, [oauth.allowInsecureRequests]: true };
      const mark = seen.length;
      const result = await refreshWithNonceRetry(as, 'web', 'r-1', options);
      assert.equal(result.token_type, 'dpop');
      assert.equal(result.access_token, `at-${await handle.calculateThumbprint()}`);
      const res = await oauth.protectedResourceRequest(result.access_token, 'GET', new URL(`${base}/api/orders?x=1`), new Headers(), null, options);
      assert.equal(res.status, 200);
      assert.deepEqual(attempts(mark).map((t) => t.verdict.error ?? 'ok'), ['NonceMissing', 'ok', 'ok']);
    });
  }
});
