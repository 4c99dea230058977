// DPoP (RFC 9449) end to end in workerd (wrangler dev): login, refresh and /oauth/token bind the
// session and its tokens to the proof's key; the edge checks every rule of a proof, each with a
// negative case (typ, alg allow-list with `none`/HS256/RS256, public jwk only, signature, htm, htu,
// iat window, ath, cnf.jkt, replay through the full path and through the fast path), refuses bound
// tokens as bearer tokens, and answers with RFC 9449 §7.1 `DPoP` challenges; a refresh with
// another key (or none) revokes the session as reuse. A second worker has DPOP_MODE=required and
// server nonces (§8, §9), a third DPoP off, and the last section runs a split deployment (the edge
// Worker, which links no p256, in front of the issuer Worker; needs `bash scripts/build.sh all`). Proofs are made by hand with node:crypto (so every field can be wrong),
// by www/dpop.js on Node's WebCrypto, and by panva's oauth4webapi.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign as cryptoSign, randomBytes, createHmac } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { startWorker, signToken, challenge } from './harness.mjs';
import { createDpopClient, memoryStorage } from '../../www/dpop.js';
import { run as exampleFlow } from '../../examples/dpop-client.mjs';
import { makeKey, b64u, sha256, refreshWithNonceRetry } from './dpop-proofs.mjs';

const PASSWORD = 'correct horse battery';
const ALGS = 'EdDSA Ed25519 ES256';
const CLIENT = 'resource-server';
const SECRET = 'an-introspection-secret-of-40-characters!';
const NONCE_SECRET = randomBytes(32).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
const claimsOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
let counter = 0;
const email = (tag) => `dpop-${tag}-${Date.now()}-${counter++}@example.com`;
const json = (body, headers = {}) => ({ method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

/** The DPoP challenge of a 401, parsed, with the status and body. */
async function refusal(res) {
  const body = await res.json();
  return { status: res.status, error: body.error, challenge: challenge(res), nonce: res.headers.get('dpop-nonce') };
}

/** Registers an account and logs in with `key`'s proof (or none); returns the token answer. */
async function signIn(w, key, { transport, nonce } = {}) {
  const address = email('u');
  const reg = await w.fetch('/auth/register', json({ email: address, password: PASSWORD }));
  assert.equal(reg.status, 201);
  await reg.arrayBuffer();
  const headers = key ? { dpop: key.proof({ htm: 'POST', htu: `${w.url}/auth/login`, nonce }) } : {};
  const res = await w.fetch('/auth/login', json({ email: address, password: PASSWORD, ...(transport ? { transport } : {}) }, headers));
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return { ...body, email: address, cookie: res.headers.get('set-cookie'), nonce: res.headers.get('dpop-nonce') };
}

/** GET /api/whoami with `Authorization: DPoP <token>` and `proof` (a string, or made by `key`). */
function whoami(w, token, proof, scheme = 'DPoP') {
  const headers = { authorization: `${scheme} ${token}` };
  if (proof) headers.dpop = proof;
  return w.fetch('/api/whoami', { headers });
}

describe('DPoP, DPOP_MODE=optional (the default), no nonces', () => {
  let w;
  before(async () => {
    w = await startWorker({
      vars: {
        INTROSPECTION_CLIENTS: JSON.stringify({ [CLIENT]: SECRET }),
        ALLOWED_ORIGINS: 'https://app.example.com',
        ROUTE_POLICIES: JSON.stringify([{ prefix: '/api/step', amr: ['otp'] }]),
      },
    });
  });
  after(async () => { await w?.cleanup(); });

  test('a DPoP token short of a step-up policy gets the RFC 9470 challenge in the DPoP scheme', async () => {
    const key = makeKey('ES256');
    const tokens = await signIn(w, key);
    const htu = `${w.url}/api/step/x`;
    const res = await w.fetch('/api/step/x', { headers: { authorization: `DPoP ${tokens.access_token}`, dpop: key.proof({ htu, token: tokens.access_token }) } });
    const r = await refusal(res);
    assert.deepEqual([r.status, r.error, r.challenge.scheme, r.challenge.params.error], [401, 'insufficient_user_authentication', 'DPoP', 'insufficient_user_authentication']);
    assert.deepEqual(claimsOf(tokens.access_token).amr, ['pwd']);
  });

  const resource = () => `${w.url}/api/whoami`;

  test('metadata lists the proof algorithms (RFC 9449 §5.1)', async () => {
    const meta = await (await w.fetch('/.well-known/oauth-authorization-server')).json();
    assert.deepEqual(meta.dpop_signing_alg_values_supported, ALGS.split(' '));
  });

  for (const alg of ['ES256', 'EdDSA']) {
    test(`a login with a ${alg} proof binds the token; the edge accepts it with a fresh proof each time`, async () => {
      const key = makeKey(alg);
      const tokens = await signIn(w, key);
      assert.equal(tokens.token_type, 'DPoP');
      assert.deepEqual(claimsOf(tokens.access_token).cnf, { jkt: key.jkt });
      // Several requests: the first reads the user's denylist record, the next ones use this isolate's
      // read (EdDSA proofs on the fast path, ES256 proofs on the full path).
      for (let i = 0; i < 4; i++) {
        const res = await whoami(w, tokens.access_token, key.proof({ htu: resource(), token: tokens.access_token }));
        const body = await res.json();
        assert.equal(res.status, 200, JSON.stringify(body));
        assert.deepEqual(body.cnf, { jkt: key.jkt });
      }
      // The issuer's own protected routes take DPoP too.
      const me = await w.fetch('/auth/me', { headers: { authorization: `DPoP ${tokens.access_token}`, dpop: key.proof({ htu: `${w.url}/auth/me`, token: tokens.access_token }) } });
      assert.equal(me.status, 200);
      await me.arrayBuffer();
    });
  }

  test('a login without a proof stays a bearer session', async () => {
    const tokens = await signIn(w, null);
    assert.equal(tokens.token_type, 'Bearer');
    assert.equal(claimsOf(tokens.access_token).cnf, undefined);
    const res = await whoami(w, tokens.access_token, null, 'Bearer');
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    // An unbound token with the DPoP scheme is refused (RFC 9449 §7.1).
    const key = makeKey();
    const r = await refusal(await whoami(w, tokens.access_token, key.proof({ htu: resource(), token: tokens.access_token })));
    assert.deepEqual([r.status, r.error, r.challenge.scheme, r.challenge.params.error], [401, 'invalid_token', 'DPoP', 'invalid_token']);
  });

  describe('every check at the edge has a negative case', () => {
    const keys = {};
    let token;
    let edToken;
    before(async () => {
      keys.es = makeKey('ES256');
      keys.ed = makeKey('EdDSA');
      token = (await signIn(w, keys.es)).access_token;
      edToken = (await signIn(w, keys.ed)).access_token;
      // Warm the isolate's denylist read for both users, so later EdDSA requests take the fast path.
      for (const [k, t] of [[keys.es, token], [keys.ed, edToken]]) {
        const res = await whoami(w, t, k.proof({ htu: resource(), token: t }));
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
    });

    const cases = [
      ['wrong htm', (k, t) => k.proof({ htm: 'POST', htu: resource(), token: t }), 'invalid_dpop_proof', /htm/],
      ['htm in lower case', (k, t) => k.proof({ htm: 'get', htu: resource(), token: t }), 'invalid_dpop_proof', /htm/],
      ['wrong htu: another path', (k, t) => k.proof({ htu: `${w.url}/api/other`, token: t }), 'invalid_dpop_proof', /htu/],
      ['wrong htu: another host', (k, t) => k.proof({ htu: resource().replace('127.0.0.1', 'localhost'), token: t }), 'invalid_dpop_proof', /htu/],
      ['wrong htu: another scheme', (k, t) => k.proof({ htu: resource().replace('http:', 'https:'), token: t }), 'invalid_dpop_proof', /htu/],
      ['htu with user information', (k, t) => k.proof({ htu: resource().replace('http://', 'http://user@'), token: t }), 'invalid_dpop_proof', /htu/],
      ['htu of a scheme that is not http(s)', (k, t) => k.proof({ htu: resource().replace('http:', 'ws:'), token: t }), 'invalid_dpop_proof', /htu/],
      ['htu that is not a URL', (k, t) => k.proof({ htu: resource().replace('http://', 'http://[::1'), token: t }), 'invalid_dpop_proof', /htu/],
      ['htu with an encoded reserved character', (k, t) => k.proof({ htu: resource().replace('/api/whoami', '/api%2Fwhoami'), token: t }), 'invalid_dpop_proof', /htu/],
      ['stale iat (61 s)', (k, t) => k.proof({ htu: resource(), token: t, iat: now() - 61 }), 'invalid_dpop_proof', /too old/],
      ['iat 31 s in the future', (k, t) => k.proof({ htu: resource(), token: t, iat: now() + 31 }), 'invalid_dpop_proof', /future/],
      ['wrong ath', (k, t) => k.proof({ htu: resource(), token: `${t}x` }), 'invalid_dpop_proof', /ath/],
      ['no ath', (k) => k.proof({ htu: resource() }), 'invalid_dpop_proof', /ath/],
      ['no jti', (k, t) => k.proof({ htu: resource(), token: t, claims: { jti: undefined } }), 'invalid_dpop_proof', /jti/],
      ['typ JWT', (k, t) => k.proof({ htu: resource(), token: t, header: { typ: 'JWT' } }), 'invalid_dpop_proof', /typ/],
      ['no typ', (k, t) => k.proof({ htu: resource(), token: t, header: { typ: undefined } }), 'invalid_dpop_proof', /typ/],
      ['a private key in the header', (k, t) => k.proof({ htu: resource(), token: t, header: { jwk: k.full } }), 'invalid_dpop_proof', /private/],
      ['no jwk, a kid instead', (k, t) => k.proof({ htu: resource(), token: t, header: { jwk: undefined, kid: 'k1' } }), 'invalid_dpop_proof', /jwk/],
      ['a jku header', (k, t) => k.proof({ htu: resource(), token: t, header: { jku: 'https://evil.example/jwks' } }), 'invalid_dpop_proof', /jwk only/],
      ['crit', (k, t) => k.proof({ htu: resource(), token: t, header: { crit: ['exp'] } }), 'invalid_dpop_proof', /critical/],
      ['a bad signature', (k, t) => k.proof({ htu: resource(), token: t, signWith: () => randomBytes(k.alg === 'EdDSA' ? 64 : 64) }), 'invalid_dpop_proof', /signature/],
      ['another key (jkt ≠ cnf.jkt)', (k, t) => makeKey(k.alg).proof({ htu: resource(), token: t }), 'invalid_token', /does not match the token binding/],
      ['alg none', (k, t) => k.proof({ htu: resource(), token: t, header: { alg: 'none' }, signWith: () => Buffer.from('x') }), 'invalid_dpop_proof', /alg/],
      ['alg none, unsigned', (k, t) => k.proof({ htu: resource(), token: t, header: { alg: 'none' }, signWith: () => Buffer.alloc(0) }), 'invalid_dpop_proof', /unsigned/],
      ['alg HS256 with a symmetric jwk', (k, t) => k.proof({
        htu: resource(), token: t, header: { alg: 'HS256', jwk: { kty: 'oct', k: b64u(Buffer.from('secret')) } },
        signWith: (input) => createHmac('sha256', 'secret').update(input).digest(),
      }), 'invalid_dpop_proof', /alg/],
      ['alg RS256 (not in the allow-list)', (k, t) => {
        const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
        return k.proof({ htu: resource(), token: t, header: { alg: 'RS256', jwk: rsa.publicKey.export({ format: 'jwk' }) }, signWith: (input) => cryptoSign('sha256', input, rsa.privateKey) });
      }, 'invalid_dpop_proof', /alg/],
      ['alg of the other curve', (k, t) => k.proof({ htu: resource(), token: t, header: { alg: k.alg === 'EdDSA' ? 'ES256' : 'EdDSA' } }), 'invalid_dpop_proof', /jwk/],
      ['two DPoP headers', (k, t) => `${k.proof({ htu: resource(), token: t })}, ${k.proof({ htu: resource(), token: t })}`, 'invalid_dpop_proof', /more than one/],
      ['no proof at all', () => null, 'invalid_dpop_proof', /missing/],
    ];
    for (const [what, make, error, why] of cases) {
      for (const which of ['es', 'ed']) {
        test(`${what} (${which === 'es' ? 'ES256' : 'EdDSA'}) → 401 ${error}`, async () => {
          const k = keys[which];
          const t = which === 'es' ? token : edToken;
          const r = await refusal(await whoami(w, t, make(k, t)));
          assert.equal(r.status, 401);
          assert.equal(r.error, error);
          assert.equal(r.challenge.scheme, 'DPoP', r.challenge.raw);
          assert.equal(r.challenge.params.error, error);
          assert.equal(r.challenge.params.algs, ALGS);
          assert.match(r.challenge.params.error_description, why);
          // And the token still works with a good proof: nothing above spent or revoked it.
          const ok = await whoami(w, t, k.proof({ htu: resource(), token: t }));
          assert.equal(ok.status, 200);
          await ok.arrayBuffer();
        });
      }
    }

    // The runtime's URL parser normalises both sides (src/whatwg.rs), then RFC 3986 §6.2.2's
    // percent-encoding rules apply (src/jwt/dpop/htu.rs): each spelling below names the resource.
    for (const which of ['es', 'ed']) {
      test(`an htu spelled another way that names the same URI is accepted (${which === 'es' ? 'ES256' : 'EdDSA'})`, async () => {
        const k = keys[which];
        const t = which === 'es' ? token : edToken;
        const port = new URL(w.url).port;
        for (const htu of [
          `HTTP://127.0.0.1:${port}/api/whoami`,
          `http://127.0.0.1:${port}/api/%77hoami`,
          `http://127.0.0.1:${port}/api/./x/../whoami?q=1#f`,
          `http://0x7f.0.0.1:${port}/api/whoami`,
        ]) {
          const ok = await whoami(w, t, k.proof({ htu, token: t }));
          assert.equal(ok.status, 200, `${htu}: ${await ok.text()}`);
          await ok.arrayBuffer().catch(() => {});
        }
      });
    }

    for (const which of ['es', 'ed']) {
      test(`a replayed proof is refused (${which === 'es' ? 'ES256, full path' : 'EdDSA, fast path'})`, async () => {
        const k = keys[which];
        const t = which === 'es' ? token : edToken;
        const proof = k.proof({ htu: resource(), token: t });
        const first = await whoami(w, t, proof);
        assert.equal(first.status, 200);
        await first.arrayBuffer();
        for (let i = 0; i < 2; i++) {
          const r = await refusal(await whoami(w, t, proof));
          assert.deepEqual([r.status, r.error, r.challenge.params.error_description], [401, 'invalid_dpop_proof', 'DPoP proof was already used']);
        }
        // The same jti in a new proof (another iat) is the same proof for the replay memory.
        const jti = b64u(randomBytes(16));
        const a = await whoami(w, t, k.proof({ htu: resource(), token: t, claims: { jti } }));
        assert.equal(a.status, 200);
        await a.arrayBuffer();
        const b = await refusal(await whoami(w, t, k.proof({ htu: resource(), token: t, claims: { jti }, iat: now() - 1 })));
        assert.equal(b.status, 401);
      });

      test(`the bound token as a bearer token, or without its proof, is refused (${which})`, async () => {
        const t = which === 'es' ? token : edToken;
        const bearer = await refusal(await whoami(w, t, null, 'Bearer'));
        assert.deepEqual([bearer.status, bearer.error, bearer.challenge.scheme], [401, 'invalid_token', 'DPoP']);
        assert.match(bearer.challenge.params.error_description, /bearer/);
        // With a valid proof alongside, still no: the scheme says bearer (RFC 9449 §7.2).
        const both = await whoami(w, t, keys[which].proof({ htu: resource(), token: t }), 'Bearer');
        assert.equal(both.status, 401);
        await both.arrayBuffer();
      });
    }

    test('a cnf that is not an object with a SHA-256 jkt is refused, not taken as unbound', async () => {
      for (const cnf of [{ jkt: 'short' }, 'jkt', { 'x5t#S256': sha256('x') }]) {
        const bad = await signToken(w.keys, { claims: { cnf, sub: 'user-cnf' } });
        const res = await whoami(w, bad, null, 'Bearer');
        assert.equal(res.status, 401);
        assert.equal((await res.json()).error, 'invalid_token');
      }
    });
  });

  test('token endpoints refuse a bad proof with 400 invalid_dpop_proof', async () => {
    const key = makeKey();
    const address = email('bad');
    await (await w.fetch('/auth/register', json({ email: address, password: PASSWORD }))).arrayBuffer();
    for (const proof of [
      key.proof({ htm: 'POST', htu: `${w.url}/auth/refresh` }),
      key.proof({ htm: 'GET', htu: `${w.url}/auth/login` }),
      key.proof({ htm: 'POST', htu: `${w.url}/auth/login`, token: 'an-access-token' }),
      key.proof({ htm: 'POST', htu: `${w.url}/auth/login`, header: { jwk: key.full } }),
    ]) {
      const res = await w.fetch('/auth/login', json({ email: address, password: PASSWORD }, { dpop: proof }));
      assert.equal(res.status, 400);
      assert.equal((await res.json()).error, 'invalid_dpop_proof');
      assert.equal(res.headers.get('www-authenticate'), null, 'no challenge from a token endpoint');
    }
  });

  test('refresh with the same key rotates; with another key it revokes the session as reuse', async () => {
    const key = makeKey();
    const tokens = await signIn(w, key);
    const refresh = (k, rt) => w.fetch('/auth/refresh', json({ refresh_token: rt }, k ? { dpop: k.proof({ htm: 'POST', htu: `${w.url}/auth/refresh` }) } : {}));
    const res = await refresh(key, tokens.refresh_token);
    const renewed = await res.json();
    assert.equal(res.status, 200);
    assert.equal(renewed.token_type, 'DPoP');
    assert.deepEqual(claimsOf(renewed.access_token).cnf, { jkt: key.jkt });
    const ok = await whoami(w, renewed.access_token, key.proof({ htu: resource(), token: renewed.access_token }));
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    // A thief with the live refresh token and its own key.
    const thief = await refresh(makeKey(), renewed.refresh_token);
    assert.deepEqual([thief.status, (await thief.json()).error], [401, 'invalid_grant']);
    // The session is over: the owner's refresh with the right key, and its access token at the edge.
    const owner = await refresh(key, renewed.refresh_token);
    assert.deepEqual([owner.status, (await owner.json()).error], [401, 'invalid_grant']);
    const edge = await refusal(await whoami(w, renewed.access_token, key.proof({ htu: resource(), token: renewed.access_token })));
    assert.deepEqual([edge.status, edge.error, edge.challenge.scheme], [401, 'invalid_token', 'DPoP']);
    assert.match(edge.challenge.params.error_description, /revoked/);
  });

  test('refresh of a bound session without a proof revokes it too', async () => {
    const key = makeKey('EdDSA');
    const tokens = await signIn(w, key);
    const bare = await w.fetch('/auth/refresh', json({ refresh_token: tokens.refresh_token }));
    assert.deepEqual([bare.status, (await bare.json()).error], [401, 'invalid_grant']);
    const owner = await w.fetch('/auth/refresh', json({ refresh_token: tokens.refresh_token }, { dpop: key.proof({ htm: 'POST', htu: `${w.url}/auth/refresh` }) }));
    assert.equal(owner.status, 401);
    await owner.arrayBuffer();
  });

  test('a cookie session is bound like a body one', async () => {
    const key = makeKey();
    const tokens = await signIn(w, key, { transport: 'cookie' });
    const cookie = tokens.cookie.split(';')[0];
    const res = await w.fetch('/auth/refresh', { method: 'POST', headers: { cookie, origin: w.url, dpop: key.proof({ htm: 'POST', htu: `${w.url}/auth/refresh` }) } });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.token_type, 'DPoP');
  });

  test('/oauth/token binds like /auth/refresh; another key is 400 invalid_grant and revokes', async () => {
    const key = makeKey();
    const tokens = await signIn(w, key);
    const grant = (k, rt) => w.fetch('/oauth/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: k.proof({ htm: 'POST', htu: `${w.url}/oauth/token` }) },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt }).toString(),
    });
    const res = await grant(key, tokens.refresh_token);
    const body = await res.json();
    assert.equal(res.status, 200);
    assert.equal(body.token_type, 'DPoP');
    // Introspection says DPoP, with the binding (RFC 9449 §6.2).
    const basic = `Basic ${Buffer.from(`${CLIENT}:${SECRET}`).toString('base64')}`;
    const intro = await (await w.fetch('/oauth/introspect', { method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${body.access_token}` })).json();
    assert.deepEqual([intro.active, intro.token_type, intro.cnf], [true, 'DPoP', { jkt: key.jkt }]);
    const thief = await grant(makeKey(), body.refresh_token);
    assert.deepEqual([thief.status, (await thief.json()).error], [400, 'invalid_grant']);
    const owner = await grant(key, body.refresh_token);
    assert.equal(owner.status, 400);
    await owner.arrayBuffer();
  });

  test('oauth4webapi: the refresh grant and a protected resource request with its DPoP handle', async () => {
    for (const alg of ['ES256', 'Ed25519']) {
      const keyPair = await oauth.generateKeyPair(alg);
      const handle = oauth.DPoP({}, keyPair);
      const jkt = await handle.calculateThumbprint();
      // The login itself with a proof from the same key pair, made by www/dpop.js's logic.
      const address = email('o4w');
      await (await w.fetch('/auth/register', json({ email: address, password: PASSWORD }))).arrayBuffer();
      const pub = await crypto.subtle.exportKey('jwk', keyPair.publicKey);
      const client = createDpopClient({
        alg: alg === 'Ed25519' ? 'EdDSA' : 'ES256',
        storage: { load: async () => ({ keyPair, alg: alg === 'Ed25519' ? 'EdDSA' : 'ES256', jwk: pub, jkt }), add: async (r) => r, clear: async () => {} },
      });
      const login = await client.fetch(`${w.url}/auth/login`, json({ email: address, password: PASSWORD }));
      const tokens = await login.json();
      assert.equal(login.status, 200, JSON.stringify(tokens));
      assert.deepEqual(claimsOf(tokens.access_token).cnf, { jkt });
      const server = { issuer: 'https://gatehouse.test', token_endpoint: `${w.url}/oauth/token` };
      const options = { DPoP: handle, [oauth.allowInsecureRequests]: true };
      const response = await oauth.refreshTokenGrantRequest(server, { client_id: 'gatehouse' }, oauth.None(), tokens.refresh_token, options);
      const result = await oauth.processRefreshTokenResponse(server, { client_id: 'gatehouse' }, response);
      assert.equal(result.token_type, 'dpop');
      assert.deepEqual(claimsOf(result.access_token).cnf, { jkt });
      const api = await oauth.protectedResourceRequest(result.access_token, 'GET', new URL(`${w.url}/api/whoami?x=1`), new Headers(), null, options);
      assert.equal(api.status, 200, await api.clone().text());
      assert.equal((await api.json()).cnf.jkt, jkt);
    }
  });

  test('examples/dpop-client.mjs runs its whole flow against the worker', async () => {
    for (const alg of ['ES256', 'EdDSA']) {
      const address = email('example');
      await (await w.fetch('/auth/register', json({ email: address, password: PASSWORD }))).arrayBuffer();
      const lines = [];
      const outcome = await exampleFlow({ base: w.url, email: address, password: PASSWORD, alg, log: (l) => lines.push(l) });
      assert.deepEqual(outcome, { ok: true, bound: true, statuses: [200, 200, 200, 200, 401, 401] }, lines.join('\n'));
    }
  });

  test('CORS: a page on an allowed origin may send DPoP and read DPoP-Nonce', async () => {
    const pre = await w.fetch('/api/whoami', { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization, dpop' } });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get('access-control-allow-headers'), /(^|, )dpop(,|$)/);
    const res = await w.fetch('/api/whoami', { headers: { origin: 'https://app.example.com' } });
    assert.match(res.headers.get('access-control-expose-headers'), /DPoP-Nonce/);
    await res.arrayBuffer();
  });
});

describe('DPoP, DPOP_MODE=required with server nonces', () => {
  let w;
  before(async () => {
    w = await startWorker({ vars: { DPOP_MODE: 'required', DPOP_NONCE_SECRET: NONCE_SECRET, DPOP_NONCE_SECONDS: '60' } });
  });
  after(async () => { await w?.cleanup(); });

  const resource = () => `${w.url}/api/whoami`;

  test('a login without a proof is refused; a proof without a nonce gets use_dpop_nonce and a nonce', async () => {
    const address = email('req');
    await (await w.fetch('/auth/register', json({ email: address, password: PASSWORD }))).arrayBuffer();
    const none = await w.fetch('/auth/login', json({ email: address, password: PASSWORD }));
    assert.deepEqual([none.status, (await none.json()).error], [400, 'invalid_dpop_proof']);
    const key = makeKey();
    const first = await w.fetch('/auth/login', json({ email: address, password: PASSWORD }, { dpop: key.proof({ htm: 'POST', htu: `${w.url}/auth/login` }) }));
    const r = await refusal(first);
    assert.deepEqual([r.status, r.error, r.challenge], [400, 'use_dpop_nonce', null]);
    assert.match(r.nonce, /^[A-Za-z0-9_-]{54}$/);
    // A forged nonce is no better.
    const forged = await w.fetch('/auth/login', json({ email: address, password: PASSWORD }, { dpop: key.proof({ htm: 'POST', htu: `${w.url}/auth/login`, nonce: b64u(randomBytes(40)) }) }));
    assert.equal((await refusal(forged)).error, 'use_dpop_nonce');
    const second = await w.fetch('/auth/login', json({ email: address, password: PASSWORD }, { dpop: key.proof({ htm: 'POST', htu: `${w.url}/auth/login`, nonce: r.nonce }) }));
    const tokens = await second.json();
    assert.equal(second.status, 200, JSON.stringify(tokens));
    assert.equal(tokens.token_type, 'DPoP');
    assert.ok(second.headers.get('dpop-nonce'), 'a fresh nonce comes with the tokens');

    // The edge: no nonce → 401 use_dpop_nonce with a challenge and a nonce; with it → 200.
    const noNonce = await refusal(await whoami(w, tokens.access_token, key.proof({ htu: resource(), token: tokens.access_token })));
    assert.deepEqual([noNonce.status, noNonce.error, noNonce.challenge.scheme, noNonce.challenge.params.error], [401, 'use_dpop_nonce', 'DPoP', 'use_dpop_nonce']);
    assert.ok(noNonce.nonce);
    const ok = await whoami(w, tokens.access_token, key.proof({ htu: resource(), token: tokens.access_token, nonce: noNonce.nonce }));
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
  });

  test('own tokens as bearer tokens are refused; no credentials get the DPoP challenge', async () => {
    const unbound = await signToken(w.keys, { claims: { sub: 'bearer-user' } });
    const bearer = await refusal(await whoami(w, unbound, null, 'Bearer'));
    assert.deepEqual([bearer.status, bearer.error, bearer.challenge.scheme], [401, 'invalid_token', 'DPoP']);
    assert.match(bearer.challenge.params.error_description, /required/);
    const nothing = await w.fetch('/api/whoami');
    assert.equal(nothing.status, 401);
    assert.equal(nothing.headers.get('www-authenticate'), `DPoP realm="https://gatehouse.test", algs="${ALGS}"`);
    await nothing.arrayBuffer();
  });

  test('www/dpop.js does the nonce dance by itself, login to refresh', async () => {
    const client = createDpopClient({ storage: memoryStorage(), alg: 'EdDSA' });
    const address = email('js');
    await (await w.fetch('/auth/register', json({ email: address, password: PASSWORD }))).arrayBuffer();
    const login = await client.fetch(`${w.url}/auth/login`, json({ email: address, password: PASSWORD }));
    const tokens = await login.json();
    assert.equal(login.status, 200, JSON.stringify(tokens));
    const api = await client.fetch(resource(), {}, { accessToken: tokens.access_token });
    assert.equal(api.status, 200);
    await api.arrayBuffer();
    const refresh = await client.fetch(`${w.url}/auth/refresh`, json({ refresh_token: tokens.refresh_token }));
    assert.equal(refresh.status, 200);
    assert.equal((await refresh.json()).token_type, 'DPoP');
  });

  test('oauth4webapi retries once on use_dpop_nonce (RFC 9449 §8)', async () => {
    const keyPair = await oauth.generateKeyPair('ES256');
    const handle = oauth.DPoP({}, keyPair);
    const client = createDpopClient({
      storage: { load: async () => ({ keyPair, alg: 'ES256', jwk: await crypto.subtle.exportKey('jwk', keyPair.publicKey), jkt: await handle.calculateThumbprint() }), add: async (r) => r, clear: async () => {} },
    });
    const address = email('o4wn');
    await (await w.fetch('/auth/register', json({ email: address, password: PASSWORD }))).arrayBuffer();
    const tokens = await (await client.fetch(`${w.url}/auth/login`, json({ email: address, password: PASSWORD }))).json();
    const server = { issuer: 'https://gatehouse.test', token_endpoint: `${w.url}/oauth/token` };
    const options = { DPoP: handle, [oauth.allowInsecureRequests]: true };
    const result = await refreshWithNonceRetry(server, 'gatehouse', tokens.refresh_token, options);
    assert.equal(result.token_type, 'dpop');
  });
});

describe('DPoP, DPOP_MODE=off', () => {
  let w;
  before(async () => { w = await startWorker({ vars: { DPOP_MODE: 'off' } }); });
  after(async () => { await w?.cleanup(); });

  test('the DPoP header is ignored at login and the DPoP scheme is unknown', async () => {
    const key = makeKey();
    const tokens = await signIn(w, key);
    assert.equal(tokens.token_type, 'Bearer');
    assert.equal(claimsOf(tokens.access_token).cnf, undefined);
    const res = await whoami(w, tokens.access_token, key.proof({ htu: `${w.url}/api/whoami`, token: tokens.access_token }));
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="https://gatehouse.test"');
    await res.arrayBuffer();
    const meta = await (await w.fetch('/.well-known/oauth-authorization-server')).json();
    assert.equal(meta.dpop_signing_alg_values_supported, undefined);
  });
});

describe('DPoP in a split deployment: the edge Worker (no p256) in front of the issuer Worker', () => {
  let w;
  before(async () => {
    // Needs `bash scripts/build.sh edge` and `... issuer`. Both Workers get the nonce secret.
    w = await startWorker({ split: 'both', vars: { DPOP_MODE: 'required', DPOP_NONCE_SECRET: NONCE_SECRET, REVOCATION_CACHE_SECONDS: '0' } });
  });
  after(async () => { await w?.cleanup(); });

  for (const alg of ['ES256', 'EdDSA']) {
    test(`${alg} proofs: login at the issuer, the edge checks the proof, a thief's refresh ends the session`, async () => {
      const client = createDpopClient({ storage: memoryStorage(), alg });
      const address = email(`split-${alg}`);
      await (await w.fetch('/auth/register', json({ email: address, password: PASSWORD }))).arrayBuffer();
      // The issuer Worker checks the login's proof (its htu: the URL the edge passed on) and binds.
      const login = await client.fetch(`${w.url}/auth/login`, json({ email: address, password: PASSWORD }));
      const tokens = await login.json();
      assert.equal(login.status, 200, JSON.stringify(tokens));
      assert.deepEqual([tokens.token_type, claimsOf(tokens.access_token).cnf], ['DPoP', { jkt: await client.thumbprint() }]);
      // The edge Worker verifies the proof: ES256 through WebCrypto (it links no p256), EdDSA in Rust.
      for (let i = 0; i < 3; i++) {
        const api = await client.fetch(`${w.url}/api/whoami`, {}, { accessToken: tokens.access_token });
        assert.equal(api.status, 200, await api.clone().text());
        await api.arrayBuffer();
      }
      const bearer = await w.fetch('/api/whoami', { headers: { authorization: `Bearer ${tokens.access_token}` } });
      assert.equal(bearer.status, 401);
      assert.match(bearer.headers.get('www-authenticate'), /^DPoP /);
      await bearer.arrayBuffer();
      const forged = makeKey(alg === 'EdDSA' ? 'EdDSA' : 'ES256');
      const other = await refusal(await whoami(w, tokens.access_token, forged.proof({ htu: `${w.url}/api/whoami`, token: tokens.access_token })));
      assert.equal(other.status, 401);
      // A refresh with the same key; then the thief's, which ends the session at the edge too.
      const refresh = await client.fetch(`${w.url}/auth/refresh`, json({ refresh_token: tokens.refresh_token }));
      const renewed = await refresh.json();
      assert.equal(refresh.status, 200, JSON.stringify(renewed));
      const thief = createDpopClient({ storage: memoryStorage(), alg });
      const stolen = await thief.fetch(`${w.url}/auth/refresh`, json({ refresh_token: renewed.refresh_token }));
      assert.deepEqual([stolen.status, (await stolen.json()).error], [401, 'invalid_grant']);
      const ended = await client.fetch(`${w.url}/api/whoami`, {}, { accessToken: renewed.access_token });
      assert.equal(ended.status, 401);
      assert.match(ended.headers.get('www-authenticate'), /revoked/);
      await ended.arrayBuffer();
    });
  }
});
