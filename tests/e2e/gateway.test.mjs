// The gateway end to end (docs/GATEWAY.md), against wrangler dev and real origin processes started
// here: a Node origin (tests/e2e/harness.mjs startGatewayOrigin) and a Python WSGI origin (wsgiref,
// which reads `X_Auth_Roles` as HTTP_X_AUTH_ROLES). Requests go out with node:http so their paths
// arrive byte for byte (fetch would resolve dot segments first).
//
// - Every bypass spelling of a protected path gets 400 or 403 and nothing reaches the origin.
// - The origin gets the canonical path, and never a client's identity, override, proxy or assertion
//   header, in any spelling; X-Forwarded-* come from the edge.
// - The signed origin assertion verifies with jose against the worker's JWKS.
// - Each Set-Cookie comes back as its own header, redirects are passed, streams stay streams.
// - Public and optional-auth routes, the configured CORS preflight, and bad input (4xx, never 500).
// Rounds marked "full path" / "fast path" send the same request to two workers of one configuration
// and keys: one with FAST_PATH=off (every request decided by the workers-rs router), one as deployed
// (the thin entry's fast path decides a protected route's request, its first one included).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { startWorker, signToken, startGatewayOrigin, startWsgiOrigin, ISSUER } from './harness.mjs';

const APP = 'https://app.example.com';
const ROUNDS = ['full path', 'fast path'];

/** One raw HTTP/1.1 request: the path and headers exactly as given (repeats allowed as arrays). */
function raw(base, path, { method = 'GET', headers = {}, body, onChunk } = {}) {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path, method, headers, insecureHTTPParser: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => { chunks.push(c); onChunk?.(Buffer.concat(chunks).toString('utf8')); });
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The values of a header the origin received, by exact lower-case name, from its raw headers. */
function rawValues(seen, name) {
  const out = [];
  for (let i = 0; i < seen.rawHeaders.length; i += 2) {
    if (seen.rawHeaders[i].toLowerCase() === name) out.push(seen.rawHeaders[i + 1]);
  }
  return out;
}

/** Folds a header name as CGI-style origins do (case, `_` and other separators as `-`). */
const fold = (name) => name.toLowerCase().replace(/[^a-z0-9]/g, '-');

// Client headers that must never reach the origin, in several spellings each.
const SPOOFED = {
  'X-Auth-Roles': 'admin', X_Auth_Roles: 'admin', 'x-auth_sub': 'admin', 'X-AUTH-ISS': 'https://evil.example',
  'X-Auth-Other': 'evil', 'X-Original-URL': '/api/admin', X_Original_URL: '/api/admin', 'X-Rewrite-URL': '/api/admin',
  'X-Override-URL': '/api/admin', 'X-HTTP-Method-Override': 'DELETE', x_http_method_override: 'DELETE',
  'X-HTTP-Method': 'DELETE', 'X-Method-Override': 'DELETE', Forwarded: 'for=6.6.6.6;host=evil.example',
  'X-Forwarded-For': '6.6.6.6', X_Forwarded_For: '6.6.6.6', 'X-Forwarded-Host': 'evil.example',
  'X-Forwarded-Proto': 'gopher', 'X-Forwarded-Prefix': '/evil', 'X-Real-IP': '6.6.6.6', 'True-Client-IP': '6.6.6.6',
  'X-Client-IP': '6.6.6.6', 'Gatehouse-Jwt-Assertion': 'forged', gatehouse_jwt_assertion: 'forged',
};
const EDGE_SET = new Set(['x-auth-iss', 'x-auth-sub', 'x-auth-sid', 'x-auth-scope', 'x-auth-roles', 'x-forwarded-for',
  'x-forwarded-proto', 'x-forwarded-host', 'gatehouse-jwt-assertion']);

/** Asserts that no client-sent value of a dropped header reached the origin, in any spelling. */
function assertNoSpoof(seen, round) {
  for (let i = 0; i < seen.rawHeaders.length; i += 2) {
    const name = seen.rawHeaders[i];
    const value = seen.rawHeaders[i + 1];
    const spoofed = Object.entries(SPOOFED).some(([n, v]) => fold(n) === fold(name) && v === value);
    assert.ok(!spoofed, `${round}: the client's ${name}: ${value} reached the origin`);
    if (fold(name) !== name.toLowerCase()) assert.fail(`${round}: ${name} reached the origin`);
    if (fold(name).startsWith('x-auth-') || fold(name).startsWith('x-forwarded-') || fold(name) === 'gatehouse-jwt-assertion') {
      assert.ok(EDGE_SET.has(name.toLowerCase()), `${round}: ${name} reached the origin`);
      assert.equal(rawValues(seen, name.toLowerCase()).length, 1, `${round}: ${name} once`);
    }
  }
  for (const name of ['x-original-url', 'x-rewrite-url', 'x-override-url', 'x-http-method-override', 'x-http-method',
    'x-method-override', 'forwarded', 'x-forwarded-prefix', 'x-real-ip', 'true-client-ip', 'x-client-ip', 'x-auth-other']) {
    assert.deepEqual(rawValues(seen, name), [], `${round}: ${name}`);
  }
}

describe('gateway: a Node origin', () => {
  let worker;
  let full; // the same configuration and keys with FAST_PATH=off: every request on the full path
  const at = (round) => (round === 'full path' ? full : worker).url;
  let origin;
  let jwks;
  const bearer = (t) => ({ authorization: `Bearer ${t}` });
  before(async () => {
    origin = await startGatewayOrigin();
    const vars = {
      ORIGIN_URL: origin.url,
      ORIGIN_ASSERTION: 'on',
      PUBLIC_PREFIXES: '/api/public/',
      OPTIONAL_AUTH_PREFIXES: '/api/feed',
      ROUTE_POLICIES: JSON.stringify([
        { prefix: '/api/admin', roles: ['admin'] },
        { prefix: '/api/feed/private', roles: ['member'] },
        { prefix: '/api/λόγος', roles: ['admin'] },
      ]),
      ALLOWED_ORIGINS: APP,
      CORS_ALLOW_METHODS: 'GET, POST, PUT, DELETE',
      CORS_ALLOW_HEADERS: 'authorization, content-type, x-trace-id',
      CORS_MAX_AGE: '120',
    };
    worker = await startWorker({ vars });
    full = await startWorker({ keys: worker.keys, vars: { ...vars, FAST_PATH: 'off' } });
    jwks = createRemoteJWKSet(new URL(`${worker.url}/.well-known/jwks.json`));
  });
  after(async () => { await worker?.cleanup(); await full?.cleanup(); await origin?.close(); });

  test('every bypass spelling of a protected path gets 400 or 403, and nothing reaches the origin', async () => {
    const user = await signToken(worker.keys, { claims: { roles: ['user'] } });
    const count = origin.received.length;
    const refused = [
      '/api/admin/..;/..;/api/admin', '/api/x/..;/admin', '/api;/admin', '/api/admin;', '/api/admin;x/users',
      '/api/admin;jsessionid=1', '/api/%3badmin', '/api/admin%3B', '/api/public/..;/admin',
      '/api/x/%252e%252e/admin', '/api/admin%252f', '/api%2fadmin', '/api/public/..%2fadmin', '/api/public%5c..%5cadmin',
      '/api/x/%c0%ae%c0%ae/admin', '/api/x/%e0%80%ae%e0%80%ae/admin', '/api/x/%u002e%u002e/admin',
      '/api/x/%ef%bc%8e%ef%bc%8e/admin', '/api/adm%c4%b1n', '/api/admin%00', '/api/admin%3f', '/api/%zz', '/api/a%',
    ];
    // workerd parses the request URL (WHATWG) before the worker runs: `%2e%2e` and `\` are resolved
    // there, so those spellings arrive as plain paths and meet the policy (403).
    const forbidden = [
      '/api/admin', '/API/Admin', '/api/ADMIN/users', '/%61pi/%61dmin', '/api//admin', '/api/./admin', '/api/x/../admin',
      '/api/x/%2e%2e/admin', '/api/x/.%2E/admin', '/api/%2e/admin', '/api/public/../admin', '/api/public/%2e%2e/admin',
      '/api/public\\..\\admin',
      '/api/admin.json', '/api/admin/', '/api/feed/../admin', '/api/feed/private/1', '/api/feed/PRIVATE.json',
      // Non-ASCII case folding, done by the runtime's toUpperCase/toLowerCase in the Worker
      // (src/casing.rs): every case variant and every sigma meets the policy on `/api/λόγος`. The
      // runtime lower-cases a word-final `Σ` to `ς`, and `.` does not end a word: without folding
      // `ς` into `σ`, the policy's key would end in `ς` and `λόγοσ.json`'s (read as `λόγοσ` with a
      // suffix, as Spring does) in `σ`.
      ...['/api/λόγος', '/api/ΛΌΓΟΣ', '/api/Λόγος/x', '/api/λόγοσ', '/api/λόγοσ.json', '/api/ΛΌΓΟΣ.JSON'].map(encodeURI),
    ];
    for (const round of ROUNDS) {
      for (const path of refused) {
        const res = await raw(at(round), path, { headers: bearer(user) });
        assert.equal(res.status, 400, `${round} ${path}: ${res.text}`);
        assert.equal(res.json?.error, 'invalid_request', path);
      }
      for (const path of forbidden) {
        const res = await raw(at(round), path, { headers: bearer(user) });
        assert.equal(res.status, 403, `${round} ${path}: ${res.text}`);
        assert.equal(res.json?.error, 'insufficient_scope', path);
      }
      // Without a token at all the same paths never reach the origin either.
      for (const path of [...refused, ...forbidden]) {
        const res = await raw(at(round), path);
        assert.ok([400, 401].includes(res.status), `${path} without a token: ${res.status}`);
      }
    }
    assert.deepEqual(origin.received.slice(count).map((s) => s.url), [], 'nothing reached the origin');
    // The policy itself works: an admin gets through, to the canonical path.
    const admin = await signToken(worker.keys, { claims: { roles: ['admin'] } });
    const ok = await raw(worker.url, '/API/x/../Admin//users/', { headers: bearer(admin) });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.url, '/API/Admin/users/', 'the canonical path keeps its case');
    const greek = await raw(worker.url, encodeURI('/api/ΛΌΓΟΣ/1'), { headers: bearer(admin) });
    assert.equal(greek.status, 200, greek.text);
    assert.equal(decodeURI(greek.json.url), '/api/ΛΌΓΟΣ/1');
    // Beside the policy, not under it (another segment): a user gets through.
    for (const path of ['/api/λόγια', '/api/ΛΌΓΟΣX', '/api/λόγοςx']) {
      const beside = await raw(worker.url, encodeURI(path), { headers: bearer(user) });
      assert.equal(beside.status, 200, `${path}: ${beside.text}`);
    }
  });

  test('the origin gets the canonical path, query untouched', async () => {
    const token = await signToken(worker.keys);
    for (const [path, expected] of [
      ['/api//items/./7/%61?x=%2F&y=a;b', '/api/items/7/a?x=%2F&y=a;b'],
      ['/api/a%2Bb/%3a%40/caf%C3%A9', '/api/a+b/:@/caf%C3%A9'],
      ['/api/a%5b%7c%5d/%20x', '/api/a%5B%7C%5D/%20x'],
      ['/api/x/y/..', '/api/x/'],
      ['/api/file%2Ejson', '/api/file.json'],
    ]) {
      const res = await raw(worker.url, path, { headers: bearer(token) });
      assert.equal(res.status, 200, `${path}: ${res.text}`);
      assert.equal(res.json.url, expected, path);
    }
  });

  test('no client identity, override, proxy or assertion header reaches the origin, in any spelling', async () => {
    const token = await signToken(worker.keys, { claims: { sub: 'hdr-user', sid: 'hdr-sid', scope: 'read', roles: ['user'] } });
    for (const round of ROUNDS) {
      const { port } = new URL(at(round));
      const res = await raw(at(round), '/api/items', { method: 'POST', headers: { ...bearer(token), ...SPOOFED, 'x-custom': 'kept' }, body: 'x' });
      assert.equal(res.status, 200, `${round}: ${res.text}`);
      const seen = res.json;
      assertNoSpoof(seen, round);
      assert.equal(seen.headers['x-auth-sub'], 'hdr-user', round);
      assert.equal(seen.headers['x-auth-roles'], 'user', round);
      assert.equal(seen.headers['x-auth-iss'], ISSUER, round);
      assert.equal(seen.headers['x-custom'], 'kept', round);
      assert.equal(seen.method, 'POST', `${round}: no method override`);
      assert.equal(seen.url, '/api/items', round);
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1', `${round}: the edge's CF-Connecting-IP`);
      assert.equal(seen.headers['x-forwarded-proto'], 'http', round);
      assert.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${port}`, round);
    }
  });

  test('the origin assertion verifies against the JWKS and is bound to the request', async () => {
    const token = await signToken(worker.keys, { claims: { sub: 'as-user', sid: 'as-sid', scope: 'read write', roles: ['user', 'beta'] } });
    const jtis = new Set();
    for (const round of ROUNDS) {
      const res = await raw(at(round), '/api/orders/9?full=1', { method: 'PUT', headers: { ...bearer(token), 'gatehouse-jwt-assertion': 'forged' }, body: '{}' });
      assert.equal(res.status, 200, round);
      const values = rawValues(res.json, 'gatehouse-jwt-assertion');
      assert.equal(values.length, 1, round);
      const { payload, protectedHeader } = await jwtVerify(values[0], jwks, {
        issuer: ISSUER, audience: origin.url, typ: 'gatehouse-assertion+jwt', maxTokenAge: 60,
      });
      assert.equal(protectedHeader.alg, 'EdDSA');
      assert.equal(payload.sub, 'as-user');
      assert.equal(payload.sid, 'as-sid');
      assert.equal(payload.scope, 'read write');
      assert.deepEqual(payload.roles, ['user', 'beta']);
      assert.equal(payload.htm, 'PUT');
      assert.equal(payload.htu, `${origin.url}/api/orders/9`);
      assert.ok(payload.exp - payload.iat <= 60 && payload.exp > Date.now() / 1000, round);
      assert.equal(payload.email, undefined, 'no email');
      jtis.add(payload.jti);
    }
    assert.equal(jtis.size, 2, 'a fresh jti per request');
    // A public route's assertion says the request came through the edge, for nobody.
    const pub = await raw(worker.url, '/api/public/x');
    const { payload } = await jwtVerify(rawValues(pub.json, 'gatehouse-jwt-assertion')[0], jwks, { issuer: ISSUER, audience: origin.url });
    assert.equal(payload.sub, undefined);
    assert.equal(payload.htu, `${origin.url}/api/public/x`);
  });

  test('each Set-Cookie comes back as its own header', async () => {
    const token = await signToken(worker.keys);
    const expected = ['a=1; Path=/', 'b=2; Path=/; HttpOnly', 'c=3; Expires=Wed, 21 Oct 2037 07:28:00 GMT'];
    for (const round of [...ROUNDS, 'cross-origin (CORS headers added)']) {
      const headers = round.startsWith('cross') ? { ...bearer(token), origin: APP } : bearer(token);
      const res = await raw(at(round), '/api/cookies', { headers });
      assert.equal(res.status, 200, round);
      assert.deepEqual(res.headers['set-cookie'], expected, round);
      assert.match(res.headers['x-request-id'], /^[0-9a-f-]{8,}$/, round);
      if (round.startsWith('cross')) assert.equal(res.headers['access-control-allow-origin'], APP);
    }
    // Public routes (always the full path) too.
    assert.deepEqual((await raw(worker.url, '/api/public/cookies')).headers['set-cookie'], expected);
  });

  test('redirects are passed back, not followed', async () => {
    const token = await signToken(worker.keys);
    for (const round of ROUNDS) {
      const count = origin.received.length;
      const res = await raw(at(round), '/api/redirect', { headers: bearer(token) });
      assert.equal(res.status, 302, round);
      assert.equal(res.headers.location, '/api/elsewhere', round);
      assert.deepEqual(origin.received.slice(count).map((s) => s.url), ['/api/redirect'], `${round}: not followed`);
    }
  });

  test('a streamed answer reaches the client chunk by chunk', async () => {
    const token = await signToken(worker.keys);
    for (const round of [...ROUNDS, 'public']) {
      origin.streamTimedOut = false;
      let sawFirst = false;
      const path = round === 'public' ? '/api/public/stream' : '/api/stream';
      const res = await raw(at(round), path, {
        headers: round === 'public' ? {} : bearer(token),
        onChunk: (text) => {
          // The rest is sent only once the client holds the first chunk.
          if (!sawFirst && text.startsWith('first|')) { sawFirst = true; origin.releaseStream(); }
        },
      });
      assert.equal(res.status, 200, round);
      assert.equal(res.text, 'first|rest', round);
      assert.ok(sawFirst && !origin.streamTimedOut, `${round}: the first chunk arrived before the rest was sent`);
    }
  });

  test('public and optional-auth routes', async () => {
    // Public: no token needed, none verified, and identity headers only ever the edge's (none).
    const pub = await raw(worker.url, '/api/public/page?x=1', { headers: { ...SPOOFED, authorization: 'Bearer not-a-token' } });
    assert.equal(pub.status, 200, pub.text);
    assertNoSpoof(pub.json, 'public');
    for (const name of ['x-auth-sub', 'x-auth-roles', 'x-auth-iss']) assert.equal(pub.json.headers[name], undefined, name);
    assert.equal(pub.json.headers.authorization, 'Bearer not-a-token', 'the origin may use its own credentials');
    // Optional: anonymous without a token, identity with a valid one, 401 with a bad one.
    const anon = await raw(worker.url, '/api/feed', { headers: { 'x-auth-sub': 'admin' } });
    assert.equal(anon.status, 200, anon.text);
    assert.equal(anon.json.headers['x-auth-sub'], undefined);
    const token = await signToken(worker.keys, { claims: { sub: 'feed-user' } });
    for (const round of ROUNDS) {
      const named = await raw(at(round), '/api/feed/1', { headers: bearer(token) });
      assert.equal(named.status, 200, round);
      assert.equal(named.json.headers['x-auth-sub'], 'feed-user', round);
    }
    const bad = await raw(worker.url, '/api/feed/1', { headers: bearer(await signToken(worker.keys, { claims: { aud: 'other' } })) });
    assert.equal(bad.status, 401);
    assert.equal(bad.json.error, 'invalid_token');
    // A policy under an optional prefix still needs its token.
    assert.equal((await raw(worker.url, '/api/feed/private/1')).status, 401);
    const member = await signToken(worker.keys, { claims: { roles: ['member'] } });
    assert.equal((await raw(worker.url, '/api/feed/private/1', { headers: bearer(member) })).status, 200);
    // Outside every prefix: not found, not forwarded.
    const count = origin.received.length;
    assert.equal((await raw(worker.url, '/elsewhere/x', { headers: bearer(token) })).status, 404);
    assert.equal(origin.received.length, count);
  });

  test('the CORS preflight answers with the configured methods, headers and max-age', async () => {
    const res = await raw(worker.url, '/api/items', { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'PUT' } });
    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-methods'], 'GET, POST, PUT, DELETE');
    // DPoP is on (optional, the default): its proof header is allowed on top of the configured ones.
    assert.equal(res.headers['access-control-allow-headers'], 'authorization, content-type, x-trace-id, dpop');
    assert.equal(res.headers['access-control-max-age'], '120');
    assert.equal(res.headers['access-control-allow-origin'], APP);
  });

  test('bad paths get 4xx, never 500', async () => {
    const token = await signToken(worker.keys);
    const count = origin.received.length;
    const cases = [
      `/api/${'a'.repeat(5000)}`, `/api${'/a'.repeat(200)}`, `/api${'/..'.repeat(200)}/admin`, `/api/${'%'.repeat(300)}`,
      '/api/%ff%fe', '/api/%ed%a0%80', '/api/\u00e9', '/api/%e2%80%ae', '/api/%ef%bb%bf', `/api/${'%41'.repeat(1500)}`,
    ];
    for (const path of cases) {
      for (const headers of [bearer(token), {}]) {
        const res = await raw(worker.url, path, { headers });
        assert.ok(res.status >= 400 && res.status < 500, `${path.slice(0, 40)}: ${res.status} ${res.text.slice(0, 100)}`);
      }
    }
    assert.equal(origin.received.length, count, 'none reached the origin');
    assert.doesNotMatch(worker.logs, / 5\d\d /, 'no 5xx in the access log');
    assert.doesNotMatch(worker.logs, /panicked|RuntimeError|unreachable/);
  });
});

describe('gateway: a Python WSGI origin', () => {
  let worker;
  let full;
  const at = (round) => (round === 'full path' ? full : worker).url;
  let wsgi;
  before(async () => {
    wsgi = await startWsgiOrigin();
    const vars = { ORIGIN_URL: wsgi.url, ROUTE_POLICIES: JSON.stringify([{ prefix: '/api/admin', roles: ['admin'] }]) };
    worker = await startWorker({ vars });
    full = await startWorker({ keys: worker.keys, vars: { ...vars, FAST_PATH: 'off' } });
  });
  after(async () => { await worker?.cleanup(); await full?.cleanup(); await wsgi?.close(); });

  test('the origin merges header spellings: the test would see a spoof', async () => {
    const res = await raw(wsgi.url, '/direct', { headers: { 'X-Auth-Roles': 'user', X_Auth_Roles: 'admin' } });
    assert.equal(res.json.HTTP_X_AUTH_ROLES, 'user,admin', 'wsgiref reads X_Auth_Roles as X-Auth-Roles');
  });

  test('through the edge, HTTP_X_AUTH_* are exactly the verified identity', async () => {
    const token = await signToken((worker.keys), { claims: { sub: 'wsgi-user', roles: ['user'] } });
    for (const round of ROUNDS) {
      const res = await raw(at(round), '/api/x/../items', { headers: { authorization: `Bearer ${token}`, ...SPOOFED } });
      assert.equal(res.status, 200, `${round}: ${res.text}`);
      const env = res.json;
      assert.equal(env.HTTP_X_AUTH_ROLES, 'user', round);
      assert.equal(env.HTTP_X_AUTH_SUB, 'wsgi-user', round);
      assert.equal(env.HTTP_X_AUTH_ISS, ISSUER, round);
      assert.equal(env.HTTP_X_AUTH_OTHER, undefined, round);
      for (const name of ['HTTP_X_ORIGINAL_URL', 'HTTP_X_REWRITE_URL', 'HTTP_X_HTTP_METHOD_OVERRIDE', 'HTTP_FORWARDED', 'HTTP_X_REAL_IP', 'HTTP_GATEHOUSE_JWT_ASSERTION']) {
        assert.equal(env[name], undefined, `${round}: ${name}`);
      }
      assert.equal(env.HTTP_X_FORWARDED_FOR, '127.0.0.1', round);
      assert.equal(env.PATH_INFO, '/api/items', round);
      assert.equal(env.REQUEST_METHOD, 'GET', round);
    }
    const denied = await raw(worker.url, '/api/x/..;/admin', { headers: { authorization: `Bearer ${token}`, 'X-Original-URL': '/api/admin' } });
    assert.equal(denied.status, 400);
  });
});
