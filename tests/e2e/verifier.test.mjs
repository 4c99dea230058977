// The edge verifier end to end, against wrangler dev: JWKS, whoami, every 401/403 with its header,
// denylist entries in local KV, and forwarding to a loopback origin.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jwtVerify, createLocalJWKSet, base64url, CompactSign, importJWK } from 'jose';
import { startWorker, signToken, startEchoOrigin, challenge, ROOT, ISSUER, AUDIENCE } from './harness.mjs';

const bearer = (t) => ({ authorization: `Bearer ${t}` });

async function expectInvalid(worker, headers, why, path = '/api/whoami') {
  const res = await worker.fetch(path, { headers });
  const body = await res.json();
  assert.equal(res.status, 401, `${why}: status`);
  assert.equal(body.error, 'invalid_token', why);
  assert.ok(body.error_description, why);
  const c = challenge(res);
  assert.equal(c.scheme, 'Bearer', why);
  assert.equal(c.params.realm, ISSUER, why);
  assert.equal(c.params.error, 'invalid_token', why);
  assert.ok(c.params.error_description, why);
  return body;
}

/** Sends raw header lines (two Authorization headers, say), which fetch cannot. */
function rawGet(url, headerLines) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'GET' }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    for (const [name, values] of Object.entries(headerLines)) req.setHeader(name, values);
    req.on('error', reject);
    req.end();
  });
}

describe('edge verifier: built-in whoami', () => {
  let worker;
  // Denylist entries are written to KV behind the worker's back here: read on every request.
  before(async () => { worker = await startWorker({ vars: { REVOCATION_CACHE_SECONDS: '0' } }); });
  after(async () => { await worker?.cleanup(); });

  test('JWKS publishes the public halves with a cache header', async () => {
    const res = await worker.fetch('/.well-known/jwks.json');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=300');
    const { keys } = await res.json();
    assert.deepEqual(keys.map((k) => k.kid), worker.keys.keys.map((k) => k.kid));
    for (const k of keys) {
      assert.equal(k.use, 'sig');
      for (const p of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal(k[p], undefined, `${p} must not be published`);
    }
    const [ed, rs] = worker.keys.keys;
    assert.deepEqual(keys[0], { kty: 'OKP', crv: 'Ed25519', x: ed.x, kid: ed.kid, alg: 'EdDSA', use: 'sig' });
    assert.deepEqual(keys[1], { kty: 'RSA', n: rs.n, e: rs.e, kid: rs.kid, alg: 'RS256', use: 'sig' });
    const post = await worker.fetch('/.well-known/jwks.json', { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal((await post.json()).error, 'method_not_allowed');
  });

  for (const alg of ['EdDSA', 'RS256']) {
    test(`whoami accepts a ${alg} token signed by panva/jose`, async () => {
      const token = await signToken(worker.keys, { alg, claims: { sub: `user-${alg}`, scope: 'read write', roles: ['a', 'b'] } });
      const res = await worker.fetch('/api/whoami', { headers: bearer(token) });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const claims = await res.json();
      assert.equal(claims.sub, `user-${alg}`);
      assert.deepEqual(claims.aud, [AUDIENCE]);
      assert.equal(claims.scope, 'read write');
      assert.deepEqual(claims.roles, ['a', 'b']);
      assert.equal(claims.sid, 'sid-1');
    });
  }

  // The claims are parsed by gatehouse's own JSON parser, with numbers beyond plain integers handed
  // to the runtime's parseFloat (src/decimal.rs): every RFC 8259 number form is read, and a
  // NumericDate in any of them is the second JSON.parse would give, truncated (RFC 7519 §2).
  test('claims in every JSON number form and escape are read, NumericDates truncated', async () => {
    const now = Math.floor(Date.now() / 1000);
    const jwk = worker.keys.keys.find((k) => k.alg === 'EdDSA');
    const sign = async (payload) => new CompactSign(new TextEncoder().encode(payload))
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: jwk.kid })
      .sign(await importJWK(jwk, 'EdDSA'));
    const common = `"iss":"${ISSUER}","aud":"${AUDIENCE}","sub":"num\\u00e9\\ud83d\\ude00","jti":"j-${now}"`;
    const payload = `{${common},"iat":${now - 1}.999,"nbf":1.0E9,"exp":${now + 300}.75,`
      + '"n":[0.1,1e21,-0,-0.0,123456789012345678901234,2.5e-308,4.9E-324,-9223372036854775808,18446744073709551615,1.7976931348623157e308]}';
    const res = await worker.fetch('/api/whoami', { headers: bearer(await sign(payload)) });
    assert.equal(res.status, 200);
    const echoed = await res.json();
    assert.equal(echoed.sub, 'num\u00e9\u{1F600}');
    assert.equal(echoed.iat, now - 1);
    assert.equal(echoed.nbf, 1e9);
    assert.equal(echoed.exp, now + 300);
    // A fractional expiry in the past, a number beyond f64 and a lone surrogate are refused.
    await expectInvalid(worker, bearer(await sign(`{${common},"iat":${now - 1000},"exp":${now - 700}.5}`)), 'fractional exp in the past');
    await expectInvalid(worker, bearer(await sign(`{${common},"iat":${now},"exp":1e400}`)), 'exp beyond f64');
    await expectInvalid(worker, bearer(await sign(`{${common},"iat":${now},"exp":${now + 300},"x":"\\ud83d"}`)), 'lone surrogate');
  });

  test('missing or non-bearer credentials: 401 with a bare challenge', async () => {
    for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }]) {
      const res = await worker.fetch('/api/whoami', { headers });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), `Bearer realm="${ISSUER}"`);
      const body = await res.json();
      assert.equal(body.error, 'invalid_token');
    }
  });

  test('every invalid token gets 401 invalid_token with a reason', async () => {
    const now = Math.floor(Date.now() / 1000);
    const good = await signToken(worker.keys);
    const [h, p, s] = good.split('.');
    const flipped = base64url.encode(Uint8Array.from(base64url.decode(s), (b, i) => (i === 5 ? b ^ 1 : b)));
    const edKid = worker.keys.keys[0].kid;
    const rsKid = worker.keys.keys[1].kid;
    const cases = {
      'bad signature': `${h}.${p}.${flipped}`,
      'expired beyond leeway': await signToken(worker.keys, { now: now - 1000, ttl: 60 }),
      'not yet valid': await signToken(worker.keys, { claims: { nbf: now + 600 } }),
      'issued in the future': await signToken(worker.keys, { now: now + 600 }),
      'wrong audience': await signToken(worker.keys, { claims: { aud: 'someone-else' } }),
      'wrong issuer': await signToken(worker.keys, { claims: { iss: 'https://evil.test' } }),
      'typ JWT': await signToken(worker.keys, { header: { typ: 'JWT' } }),
      'crit header': await signToken(worker.keys, { header: { crit: ['b64'], b64: true } }),
      'unknown kid': await signToken(worker.keys, { header: { kid: 'nope' } }),
      'RS256 header on the Ed25519 kid': await signToken(worker.keys, { alg: 'RS256', header: { kid: edKid } }),
      'EdDSA header on the RSA kid': await signToken(worker.keys, { alg: 'EdDSA', header: { kid: rsKid } }),
      'alg none': `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: edKid }))}.${p}.AAAA`,
      'padded segment': `${h}=.${p}.${s}`,
      'standard alphabet': `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}x`,
      'two segments': `${h}.${p}`,
      'over 8 KiB': await signToken(worker.keys, { claims: { pad: 'x'.repeat(9000) } }),
      'no sub': await signToken(worker.keys, { claims: { sub: undefined } }),
      garbage: 'not-a-token',
    };
    // RS256 signatures are checked by the runtime's WebCrypto at the edge: the same refusals.
    const rs = await signToken(worker.keys, { alg: 'RS256' });
    const [rh, rp, rsig] = rs.split('.');
    const rsBytes = base64url.decode(rsig);
    const otherRsa = (await import('node:crypto')).generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const foreignSig = base64url.encode((await import('node:crypto')).sign('sha256', Buffer.from(`${rh}.${rp}`), otherRsa));
    // The right key, but the legacy DigestInfo without the NULL parameters (Wycheproof's one
    // "acceptable" RSA case): refused by the Rust path, and WebCrypto must refuse it too.
    const { privateEncrypt, createHash, createPrivateKey, constants } = await import('node:crypto');
    const rsKey = createPrivateKey({ key: worker.keys.keys.find((k) => k.alg === 'RS256'), format: 'jwk' });
    const digest = createHash('sha256').update(`${rh}.${rp}`).digest();
    const pkcs1 = (prefix) => base64url.encode(privateEncrypt({ key: rsKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([Buffer.from(prefix, 'hex'), digest])));
    assert.equal(pkcs1('3031300d060960864801650304020105000420'), rsig, 'the standard DigestInfo reproduces the signature');
    const legacySig = pkcs1('302f300b06096086480165030402010420');
    Object.assign(cases, {
      'RS256 bad signature': `${rh}.${rp}.${base64url.encode(Uint8Array.from(rsBytes, (b, i) => (i === 100 ? b ^ 0x10 : b)))}`,
      'RS256 truncated signature': `${rh}.${rp}.${base64url.encode(rsBytes.slice(0, 255))}`,
      'RS256 signature by another key under the right kid': `${rh}.${rp}.${foreignSig}`,
      'RS256 signature with a leading zero byte': `${rh}.${rp}.${base64url.encode(Uint8Array.from([0, ...rsBytes]))}`,
      'RS256 claims swapped under a valid signature': `${rh}.${p}.${rsig}`,
      'RS256 with the legacy DigestInfo (no NULL)': `${rh}.${rp}.${legacySig}`,
    });
    assert.equal(await (await worker.fetch('/api/whoami', { headers: bearer(rs) })).status, 200, 'the unmodified RS256 token passes');
    for (const [why, token] of Object.entries(cases)) {
      if (why === 'standard alphabet' && !/[-_]/.test(s)) continue;
      await expectInvalid(worker, bearer(token), why);
    }
    await expectInvalid(worker, { authorization: 'Bearer' }, 'empty bearer');
    await expectInvalid(worker, { authorization: `Bearer ${good} extra` }, 'trailing junk');
  });

  test('two Authorization headers are refused', async () => {
    const good = await signToken(worker.keys);
    const res = await rawGet(`${worker.url}/api/whoami`, { authorization: [`Bearer ${good}`, `Bearer ${good}`] });
    assert.equal(res.status, 401);
    assert.match(res.headers['www-authenticate'], /error="invalid_token"/);
  });

  test('denylist entries in KV revoke by session, by token and by logout-all', async () => {
    const now = Math.floor(Date.now() / 1000);
    const until = now + 3600;
    const bySid = await signToken(worker.keys, { claims: { sub: 'rev-sid', sid: 'doomed' } });
    const otherSid = await signToken(worker.keys, { claims: { sub: 'rev-sid', sid: 'fine' } });
    assert.equal((await worker.fetch('/api/whoami', { headers: bearer(bySid) })).status, 200);
    await worker.kvPut('rev:rev-sid', JSON.stringify({ v: 1, sids: { doomed: until } }));
    const b1 = await expectInvalid(worker, bearer(bySid), 'revoked session');
    assert.match(b1.error_description, /session/);
    assert.equal((await worker.fetch('/api/whoami', { headers: bearer(otherSid) })).status, 200);

    const byJti = await signToken(worker.keys, { claims: { sub: 'rev-jti', jti: 'doomed-jti' } });
    const otherJti = await signToken(worker.keys, { claims: { sub: 'rev-jti', jti: 'fine-jti' } });
    await worker.kvPut('rev:rev-jti', JSON.stringify({ v: 1, jtis: { 'doomed-jti': until } }));
    await expectInvalid(worker, bearer(byJti), 'revoked jti');
    assert.equal((await worker.fetch('/api/whoami', { headers: bearer(otherJti) })).status, 200);

    // RS256, a user this isolate has not read: the fast path waits for WebCrypto's verdict, then for
    // the record, and the record still refuses.
    const rsDoomed = await signToken(worker.keys, { alg: 'RS256', claims: { sub: 'rev-rs', jti: 'doomed-rs' } });
    const rsFine = await signToken(worker.keys, { alg: 'RS256', claims: { sub: 'rev-rs', jti: 'fine-rs' } });
    await worker.kvPut('rev:rev-rs', JSON.stringify({ v: 1, jtis: { 'doomed-rs': until } }));
    await expectInvalid(worker, bearer(rsDoomed), 'revoked jti, RS256');
    assert.equal((await worker.fetch('/api/whoami', { headers: bearer(rsFine) })).status, 200);

    const before = await signToken(worker.keys, { claims: { sub: 'rev-all' }, now: now - 10 });
    const after = await signToken(worker.keys, { claims: { sub: 'rev-all' }, now: now + 5 });
    await worker.kvPut('rev:rev-all', JSON.stringify({ v: 1, all_before: { at: now, until } }));
    await expectInvalid(worker, bearer(before), 'issued before logout-all');
    assert.equal((await worker.fetch('/api/whoami', { headers: bearer(after) })).status, 200);
  });

  test('an unreadable denylist record fails closed', async () => {
    const token = await signToken(worker.keys, { claims: { sub: 'rev-corrupt' } });
    assert.equal((await worker.fetch('/api/whoami', { headers: bearer(token) })).status, 200);
    await worker.kvPut('rev:rev-corrupt', '{"v":99}');
    const res = await worker.fetch('/api/whoami', { headers: bearer(token) });
    assert.equal(res.status, 500);
    assert.deepEqual(Object.keys(await res.json()).sort(), ['error', 'error_description']);
  });

  test('unknown routes are JSON 404s; protected ones authenticate first', async () => {
    const res = await worker.fetch('/nope');
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error, 'not_found');
    const unauth = await worker.fetch('/api/other');
    assert.equal(unauth.status, 401);
    await unauth.arrayBuffer();
    const token = await signToken(worker.keys);
    const authed = await worker.fetch('/api/other', { headers: bearer(token) });
    assert.equal(authed.status, 404);
    await authed.arrayBuffer();
  });

  test('tokens this crate signs verify in panva/jose against the served JWKS', async () => {
    const jwks = createLocalJWKSet(await (await worker.fetch('/.well-known/jwks.json')).json());
    const keyFile = join(worker.dir, 'private.jwks');
    writeFileSync(keyFile, JSON.stringify(worker.keys));
    const now = Math.floor(Date.now() / 1000);
    for (const key of worker.keys.keys) {
      const claims = { iss: ISSUER, aud: AUDIENCE, sub: 'crate-user', iat: now, exp: now + 300, jti: `j-${key.kid}`, sid: 's', scope: 'read', roles: [] };
      const { stdout } = await promisify(execFile)('cargo', ['run', '-q', '--example', 'sign', '--', keyFile, key.kid, JSON.stringify(claims)], { cwd: ROOT });
      const token = stdout.trim();
      const { payload, protectedHeader } = await jwtVerify(token, jwks, {
        issuer: ISSUER, audience: AUDIENCE, typ: 'at+jwt', algorithms: [key.alg],
      });
      assert.equal(payload.sub, 'crate-user');
      assert.deepEqual(protectedHeader, { alg: key.alg, typ: 'at+jwt', kid: key.kid });
      // And the worker accepts what the crate signed.
      const res = await worker.fetch('/api/whoami', { headers: bearer(token) });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
  });
});

describe('edge verifier: the revocation read cache', () => {
  let worker;
  let full; // the same configuration and keys with FAST_PATH=off: every request on the full path
  before(async () => {
    worker = await startWorker({ vars: { REVOCATION_CACHE_SECONDS: '2' } });
    full = await startWorker({ keys: worker.keys, vars: { REVOCATION_CACHE_SECONDS: '2', FAST_PATH: 'off' } });
  });
  after(async () => { await worker?.cleanup(); await full?.cleanup(); });

  test('a revocation written by someone else takes effect within REVOCATION_CACHE_SECONDS', async () => {
    const token = await signToken(worker.keys, { claims: { sub: 'stale-user', sid: 'stale-sid' } });
    const status = async () => {
      const res = await worker.fetch('/api/whoami', { headers: bearer(token) });
      await res.arrayBuffer();
      return res.status;
    };
    assert.equal(await status(), 200, 'read once: no record, cached for 2 s');
    await worker.kvPut('rev:stale-user', JSON.stringify({ v: 1, sids: { 'stale-sid': Math.floor(Date.now() / 1000) + 3600 } }));
    const written = Date.now();
    // Within the bound the cached read may still answer; past it, never.
    let last = await status();
    while (last === 200 && Date.now() - written < 5000) {
      await new Promise((r) => setTimeout(r, 100));
      last = await status();
    }
    assert.equal(last, 401, 'revoked once the cached read is older than 2 s');
    assert.ok(Date.now() - written < 2000 + 500, `took ${Date.now() - written} ms after the write (bound 2 s)`);
  });

  test('the fast path answers whoami exactly as the full path does', async () => {
    const token = await signToken(worker.keys, { claims: { sub: 'same-answer' } });
    const answers = [];
    for (const at of [full, worker, worker]) { // the full path; the fast path with a denylist read, then without
      const res = await at.fetch('/api/whoami', { headers: bearer(token) });
      const headers = Object.fromEntries([...res.headers].filter(([k]) => !['x-request-id', 'date', 'content-length'].includes(k)));
      answers.push({ status: res.status, headers, body: await res.json(), rid: res.headers.get('x-request-id') });
    }
    assert.equal(answers[0].status, 200);
    assert.deepEqual(answers[1], { ...answers[0], rid: answers[1].rid });
    assert.deepEqual(answers[2], { ...answers[0], rid: answers[2].rid });
    assert.notEqual(answers[1].rid, answers[2].rid, 'each answer has its own request id');
    // HEAD too.
    const head = await worker.fetch('/api/whoami', { method: 'HEAD', headers: bearer(token) });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });

  test('revocations made through this isolate take effect at once, cache or not', async () => {
    const email = `cache-${Date.now()}@example.com`;
    const json = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await worker.fetch('/auth/register', json({ email, password: 'correct horse battery' }))).status, 201);
    const pair = await (await worker.fetch('/auth/login', json({ email, password: 'correct horse battery' }))).json();
    const whoami = async (t) => { const r = await worker.fetch('/api/whoami', { headers: bearer(t) }); await r.arrayBuffer(); return r.status; };
    assert.equal(await whoami(pair.access_token), 200, 'the read is now cached');
    assert.equal((await worker.fetch('/auth/logout', { method: 'POST', headers: bearer(pair.access_token) })).status, 204);
    assert.equal(await whoami(pair.access_token), 401, 'no stale pass after a logout through this isolate');
  });
});

describe('edge verifier: forwarding and route policies', () => {
  let worker;
  let full; // the same configuration and keys with FAST_PATH=off: every request on the full path
  let origin;
  before(async () => {
    origin = await startEchoOrigin();
    const vars = {
      ORIGIN_URL: origin.url,
      ROUTE_POLICIES: JSON.stringify([
        { prefix: '/api/admin', roles: ['admin'] },
        { prefix: '/api/write', scope: 'write' },
        { prefix: '/api/step', amr: ['otp', 'mfa'], acr: 'aal2', max_age: 300 },
        { prefix: '/api/recent', max_age: 60 },
      ]),
    };
    worker = await startWorker({ vars });
    full = await startWorker({ keys: worker.keys, vars: { ...vars, FAST_PATH: 'off' } });
  });
  after(async () => { await worker?.cleanup(); await full?.cleanup(); await origin?.close(); });

  test('a valid request reaches the origin with identity headers, spoofed ones removed', async () => {
    const token = await signToken(worker.keys, { claims: { sub: 'fwd-user', sid: 'fwd-sid', scope: 'read write', roles: ['user', 'beta'] } });
    // Through a worker with FAST_PATH=off (the full path), then through the thin entry's fast path.
    // Both must be the same.
    for (const round of ['full path', 'fast path']) {
      const res = await (round === 'full path' ? full : worker).fetch('/api/items/7?q=a%20b&x=1', {
        method: 'POST',
        headers: { ...bearer(token), 'content-type': 'text/plain', 'x-auth-sub': 'admin', 'X-Auth-Roles': 'admin', 'x-auth-iss': 'https://evil.example', 'x-auth-other': 'evil', 'x-custom': 'kept' },
        body: 'hello origin',
      });
      assert.equal(res.status, 200, round);
      assert.equal(res.headers.get('x-origin'), 'echo', round);
      const seen = await res.json();
      assert.equal(seen.method, 'POST', round);
      assert.equal(seen.body, 'hello origin', round);
      assert.equal(seen.headers['x-auth-sub'], 'fwd-user', round);
      assert.equal(seen.headers['x-auth-iss'], ISSUER, round);
      assert.equal(seen.headers['x-auth-other'], undefined, round);
      assert.match(res.headers.get('x-request-id'), /^[0-9a-f-]{8,}$/, round);
      assert.equal(seen.headers['x-request-id'], res.headers.get('x-request-id'), `${round}: the origin gets the request id`);
    }
    // A method workers-rs has no name for keeps its own on the way to the origin.
    const dav = await worker.fetch('/api/items/7', { method: 'PROPFIND', headers: bearer(token) });
    assert.equal(dav.status, 200);
    assert.equal((await dav.json()).method, 'PROPFIND');
    const res = await worker.fetch('/api/items/7?q=a%20b&x=1', {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'text/plain', 'x-auth-sub': 'admin', 'X-Auth-Roles': 'admin', 'x-auth-iss': 'https://evil.example', 'x-auth-other': 'evil', 'x-custom': 'kept' },
      body: 'hello origin',
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-origin'), 'echo');
    const seen = await res.json();
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, '/api/items/7?q=a%20b&x=1');
    assert.equal(seen.body, 'hello origin');
    assert.equal(seen.headers['x-auth-iss'], ISSUER);
    assert.equal(seen.headers['x-auth-sub'], 'fwd-user');
    assert.equal(seen.headers['x-auth-sid'], 'fwd-sid');
    assert.equal(seen.headers['x-auth-scope'], 'read write');
    assert.equal(seen.headers['x-auth-roles'], 'user,beta');
    assert.equal(seen.headers['x-auth-other'], undefined);
    assert.equal(seen.headers['x-custom'], 'kept');
  });

  test('a WebSocket upgrade reaches the origin and its 101 comes back, also once the token is cached', async () => {
    const token = await signToken(worker.keys, { claims: { sub: 'ws-user' } });
    const upgrade = () => new Promise((resolve, reject) => {
      const req = httpRequest(`${worker.url}/api/socket`, {
        headers: {
          authorization: `Bearer ${token}`, connection: 'Upgrade', upgrade: 'websocket',
          'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13',
        },
      });
      req.on('upgrade', (res, socket) => { socket.destroy(); resolve({ status: res.statusCode, accept: res.headers['sec-websocket-accept'], auth: res.headers['x-seen-sub'] }); });
      req.on('response', (res) => { res.resume(); resolve({ status: res.statusCode }); });
      req.on('error', reject);
      req.end();
    });
    for (const round of ['first', 'again (token and denylist read cached)']) { // an upgrade is always the full path's
      const r = await upgrade();
      assert.equal(r.status, 101, round);
      assert.equal(r.accept, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', round);
      assert.equal(r.auth, 'ws-user', `${round}: the origin saw the identity`);
    }
  });

  test('paths with encoded separators are refused; the origin gets the canonical path', async () => {
    const token = await signToken(worker.keys, { claims: { roles: ['admin'], scope: 'read write' } });
    for (const path of ['/api%2Fadmin/x', '/api/a%2fb', '/api/%5Cadmin', '/api/a%00b']) {
      const res = await worker.fetch(path, { headers: bearer(token) });
      assert.equal(res.status, 400, path);
      assert.equal((await res.json()).error, 'invalid_request');
    }
    const res = await worker.fetch('/api//items/./7/%61?x=%2F', { headers: bearer(token) });
    assert.equal(res.status, 200);
    const seen = await res.json();
    assert.equal(seen.url, '/api/items/7/a?x=%2F', 'normalised path, query untouched');
  });

  test('the refresh-token cookie never reaches the origin', async () => {
    const token = await signToken(worker.keys);
    const res = await worker.fetch('/api/x', { headers: { ...bearer(token), cookie: 'theme=dark; __Host-gatehouse_rt=ghr1.secret; lang=en' } });
    const seen = await res.json();
    assert.equal(seen.headers.cookie, 'theme=dark; lang=en');
    const only = await worker.fetch('/api/x', { headers: { ...bearer(token), cookie: '__Host-gatehouse_rt=ghr1.secret' } });
    assert.equal((await only.json()).headers.cookie, undefined);
  });

  test('identity values cannot inject headers', async () => {
    const token = await signToken(worker.keys, { claims: { sub: 'evil\r\nX-Injected: 1', roles: ['a,b', 'ü'] } });
    const res = await worker.fetch('/api/x', { headers: bearer(token) });
    assert.equal(res.status, 200);
    const seen = await res.json();
    assert.equal(seen.headers['x-injected'], undefined);
    assert.equal(seen.headers['x-auth-sub'], 'evil%0D%0AX-Injected: 1');
    assert.equal(seen.headers['x-auth-roles'], 'a%2Cb,%C3%BC');
  });

  test('refused tokens never reach the origin', async () => {
    const count = origin.received.length;
    await expectInvalid(worker, bearer(await signToken(worker.keys, { claims: { aud: 'x' } })), 'wrong aud', '/api/x');
    const res = await worker.fetch('/api/x');
    assert.equal(res.status, 401);
    await res.arrayBuffer();
    assert.equal(origin.received.length, count);
  });

  test('step-up policies (RFC 9470): amr, acr and max_age each refuse what falls short, with the challenge', async () => {
    const count = origin.received.length;
    const now = Math.floor(Date.now() / 1000);
    const good = { auth_time: now - 10, amr: ['pwd', 'otp', 'mfa'], acr: 'aal2' };
    const refusals = [
      ['password only', { ...good, amr: ['pwd'], acr: 'aal1' }],
      ['otp without mfa', { ...good, amr: ['pwd', 'otp'] }],
      ['acr aal1', { ...good, acr: 'aal1' }],
      ['no acr', { ...good, acr: undefined }],
      ['no auth_time', { ...good, auth_time: undefined }],
      ['auth_time 301 s ago', { ...good, auth_time: now - 301 }],
    ];
    for (const [what, claims] of refusals) {
      const res = await worker.fetch('/api/step/x', { headers: bearer(await signToken(worker.keys, { claims })) });
      assert.equal(res.status, 401, what);
      assert.equal((await res.json()).error, 'insufficient_user_authentication', what);
      const c = challenge(res);
      assert.equal(c.scheme, 'Bearer', what);
      assert.equal(c.params.error, 'insufficient_user_authentication', what);
      assert.equal(c.params.acr_values, 'aal2', what);
      assert.equal(c.params.max_age, '300', what);
    }
    // A token without auth_time never passes a max_age route, whatever else it has.
    const r = await worker.fetch('/api/recent', { headers: bearer(await signToken(worker.keys, { claims: { ...good, auth_time: undefined } })) });
    assert.equal(r.status, 401);
    assert.equal(challenge(r).params.max_age, '60');
    await r.arrayBuffer();
    assert.equal(origin.received.length, count, 'refused requests are not forwarded');
    for (const path of ['/api/step/x', '/api/recent']) {
      const res = await worker.fetch(path, { headers: bearer(await signToken(worker.keys, { claims: good })) });
      assert.equal(res.status, 200, path);
      await res.arrayBuffer();
    }
  });

  test('route policies: 403 insufficient_scope with the challenge, encoded paths included', async () => {
    const count = origin.received.length;
    const user = await signToken(worker.keys, { claims: { scope: 'read', roles: ['user'] } });
    for (const path of ['/api/admin', '/api/admin/users', '/%61pi/admin/users', '/api//admin', '/api/Admin/users',
      '/API/ADMIN', '/api/x/%2e%2e/admin', '/api/./admin']) {
      const res = await worker.fetch(path, { headers: bearer(user) });
      assert.equal(res.status, 403, path);
      assert.equal((await res.json()).error, 'insufficient_scope');
      const c = challenge(res);
      assert.equal(c.params.error, 'insufficient_scope');
      assert.equal(c.params.realm, ISSUER);
    }
    // A `;` anywhere is refused outright (400): Tomcat, Jetty and Spring cut path parameters, so
    // `/api/admin;x/users` would be read as /api/admin/users there (it was 403 before the canonical
    // path rule; tests/e2e/gateway.test.mjs has every spelling).
    const semi = await worker.fetch('/api/admin;x/users', { headers: bearer(user) });
    assert.equal(semi.status, 400);
    assert.equal((await semi.json()).error, 'invalid_request');
    const w = await worker.fetch('/api/write/x', { headers: bearer(user) });
    assert.equal(w.status, 403);
    assert.equal(challenge(w).params.scope, 'write');
    await w.arrayBuffer();
    assert.equal(origin.received.length, count, 'denied requests are not forwarded');

    const admin = await signToken(worker.keys, { claims: { scope: 'read write', roles: ['admin'] } });
    for (const path of ['/api/admin/users', '/api/write/x', '/api/administrator']) {
      const res = await worker.fetch(path, { headers: bearer(admin) });
      assert.equal(res.status, 200, path);
      await res.arrayBuffer();
    }
    // /api/administrator is not under /api/admin: a plain user reaches it.
    const res = await worker.fetch('/api/administrator', { headers: bearer(user) });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
});
