// The issuer end to end, against wrangler dev with real local Durable Objects and KV: every
// endpoint's success and error codes, concurrency, reuse, logout(-all) reaching the edge, restarts.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, challenge, signToken, ISSUER } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const json = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const bearer = (t) => ({ authorization: `Bearer ${t}` });
let counter = 0;
const email = (tag) => `${tag}-${Date.now()}-${counter++}@example.com`;
const PASSWORD = 'correct horse battery';
const GRACE = 2;

async function register(w, address, password = PASSWORD) {
  const res = await w.fetch('/auth/register', json({ email: address, password }));
  return { status: res.status, body: await res.json() };
}

async function login(w, address, password = PASSWORD, extra = {}) {
  const res = await w.fetch('/auth/login', json({ email: address, password, ...extra }));
  return { res, status: res.status, body: await res.json() };
}

async function refresh(w, token) {
  const res = await w.fetch('/auth/refresh', json({ refresh_token: token }));
  return { res, status: res.status, body: await res.json() };
}

async function whoami(w, token) {
  const res = await w.fetch('/api/whoami', { headers: bearer(token) });
  await res.arrayBuffer();
  return res.status;
}

async function expectError(resPromise, status, code) {
  const res = await resPromise;
  const body = await res.json();
  assert.equal(res.status, status, `${code}: ${JSON.stringify(body)}`);
  assert.equal(body.error, code);
  assert.equal(typeof body.error_description, 'string');
  return res;
}

describe('issuer', () => {
  let w;
  before(async () => {
    w = await startWorker({ vars: { REFRESH_REUSE_GRACE_SECONDS: String(GRACE), ALLOWED_ORIGINS: 'https://app.example.com' } });
  });
  after(async () => { await w?.cleanup(); });

  test('register: 201 with a sub; emails compare case-insensitively', async () => {
    const address = email('reg');
    const r = await register(w, address);
    assert.equal(r.status, 201);
    assert.match(r.body.sub, /^[0-9a-f]{64}$/);
    assert.ok(!r.body.sub.includes('@'), 'sub is never the email');
    await expectError(w.fetch('/auth/register', json({ email: address.toUpperCase(), password: PASSWORD })), 409, 'email_taken');
  });

  test('register: every bad input is a 4xx and writes nothing', async () => {
    const address = email('bad');
    const cases = [
      [json({ email: address, password: 'short' }), 400, 'weak_password'],
      [json({ email: address, password: 'x'.repeat(257) }), 400, 'weak_password'],
      [json({ email: address }), 400, 'invalid_request'],
      [json({ password: PASSWORD }), 400, 'invalid_request'],
      [json({ email: 'not-an-email', password: PASSWORD }), 400, 'invalid_request'],
      [json({ email: 42, password: PASSWORD }), 400, 'invalid_request'],
      [json({ email: address, password: ['x'] }), 400, 'invalid_request'],
      [json([address, PASSWORD]), 400, 'invalid_request'],
      [{ method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":' }, 400, 'invalid_request'],
      [{ method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"email":"${address}","email":"x@y.co","password":"${PASSWORD}"}` }, 400, 'invalid_request'],
      [{ method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ email: address, password: PASSWORD }) }, 400, 'invalid_request'],
      [json({ email: address, password: PASSWORD, pad: 'x'.repeat(17 * 1024) }), 413, 'invalid_request'],
    ];
    for (const [init, status, code] of cases) await expectError(w.fetch('/auth/register', init), status, code);
    await expectError(w.fetch('/auth/register', { method: 'GET' }), 405, 'method_not_allowed');
    // Nothing was created: the address is still free.
    assert.equal((await register(w, address)).status, 201);
  });

  test('login: the body shape, and the access token works at the edge', async () => {
    const address = email('login');
    const { body: { sub } } = await register(w, address);
    const { status, body, res } = await login(w, address.toUpperCase());
    assert.equal(status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('set-cookie'), null);
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type']);
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 900);
    assert.ok(body.refresh_expires_in > 0);
    const [h, p] = body.access_token.split('.').slice(0, 2).map((s) => JSON.parse(Buffer.from(s, 'base64url')));
    assert.equal(h.typ, 'at+jwt');
    assert.equal(p.sub, sub);
    assert.equal(p.email, address);
    assert.equal(p.exp - p.iat, 900);
    assert.ok(Buffer.from(p.jti, 'base64url').length >= 16, 'jti has at least 128 bits');
    for (const claim of ['iss', 'aud', 'sid', 'client_id', 'scope', 'roles']) assert.ok(claim in p, claim);
    assert.equal(await whoami(w, body.access_token), 200);
    const me = await w.fetch('/auth/me', { headers: bearer(body.access_token) });
    assert.deepEqual(Object.keys(await me.json()).sort(), ['email', 'email_verified', 'exp', 'roles', 'scope', 'sid', 'sub']);
    await expectError(w.fetch('/auth/me'), 401, 'invalid_token');
  });

  test('login: wrong password and unknown email are the same 401', async () => {
    const address = email('creds');
    await register(w, address);
    const wrong = await login(w, address, 'wrong password!');
    const unknown = await login(w, email('nobody'), PASSWORD);
    for (const r of [wrong, unknown]) {
      assert.equal(r.status, 401);
      assert.equal(r.body.error, 'invalid_credentials');
    }
    assert.equal(wrong.body.error_description, unknown.body.error_description);
    await expectError(w.fetch('/auth/login', json({ email: 'nope', password: PASSWORD })), 400, 'invalid_request');
    await expectError(w.fetch('/auth/login', json({ email: address, password: PASSWORD, transport: 'pigeon' })), 400, 'invalid_request');
  });

  test('login: throttled with Retry-After after repeated failures, for known and unknown emails alike', async () => {
    for (const known of [true, false]) {
      const address = email(known ? 'throttle' : 'throttle-ghost');
      if (known) await register(w, address);
      for (let i = 0; i < 4; i++) assert.equal((await login(w, address, 'wrong password!')).status, 401);
      assert.equal((await login(w, address, 'wrong password!')).status, 401, 'the fifth failure still answers 401');
      const locked = await login(w, address, PASSWORD);
      assert.equal(locked.status, 429, 'even the right password waits');
      assert.equal(locked.body.error, 'too_many_attempts');
      const retry = Number(locked.res.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 2, `Retry-After ${retry}`);
      await sleep(retry * 1000 + 200);
      if (known) {
        assert.equal((await login(w, address)).status, 200, 'the right password after the wait');
        // Success reset the count: four more failures are free again.
        for (let i = 0; i < 4; i++) assert.equal((await login(w, address, 'wrong password!')).status, 401);
        assert.equal((await login(w, address)).status, 200);
      } else {
        assert.equal((await login(w, address, 'wrong password!')).status, 401);
        const again = await login(w, address, 'wrong password!');
        assert.equal(again.status, 429);
        assert.ok(Number(again.res.headers.get('retry-after')) >= 3, 'the delay grows');
      }
    }
  });

  test('refresh: rotation, grace replay of the very pair, reuse revokes the family at the edge', async () => {
    const address = email('rotate');
    await register(w, address);
    const first = (await login(w, address)).body;
    const second = await refresh(w, first.refresh_token);
    assert.equal(second.status, 200);
    assert.notEqual(second.body.refresh_token, first.refresh_token);
    assert.notEqual(second.body.access_token, first.access_token);
    const sid = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url')).sid;
    assert.equal(sid(second.body.access_token), sid(first.access_token), 'same family');
    const replay = await refresh(w, first.refresh_token);
    assert.equal(replay.status, 200);
    assert.equal(replay.body.refresh_token, second.body.refresh_token);
    assert.equal(replay.body.access_token, second.body.access_token);
    assert.equal(await whoami(w, second.body.access_token), 200);
    await sleep((GRACE + 1.2) * 1000);
    const reuse = await refresh(w, first.refresh_token);
    assert.equal(reuse.status, 401);
    assert.equal(reuse.body.error, 'invalid_grant');
    // The whole family is gone: its live refresh token and its access tokens.
    assert.equal((await refresh(w, second.body.refresh_token)).status, 401);
    assert.equal(await whoami(w, second.body.access_token), 401);
    assert.equal(await whoami(w, first.access_token), 401);
    // Other sessions of the user are untouched.
    const other = (await login(w, address)).body;
    assert.equal(await whoami(w, other.access_token), 200);
  });

  test('refresh: 50 concurrent refreshes of one token all get the same pair; the family stays healthy', async () => {
    const address = email('burst');
    await register(w, address);
    const first = (await login(w, address)).body;
    const results = await Promise.all(Array.from({ length: 50 }, () => refresh(w, first.refresh_token)));
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.body));
    const pairs = new Set(results.map((r) => `${r.body.access_token} ${r.body.refresh_token}`));
    assert.equal(pairs.size, 1, 'every answer is the same pair');
    const next = results[0].body;
    const after = await refresh(w, next.refresh_token);
    assert.equal(after.status, 200);
    assert.equal(await whoami(w, after.body.access_token), 200);
  });

  test('refresh: unknown, malformed and forged tokens are invalid_grant', async () => {
    const address = email('forged');
    await register(w, address);
    const good = (await login(w, address)).body.refresh_token;
    const [prefix, account, sid, secret] = good.split('.');
    const otherSecret = Buffer.alloc(32, 7).toString('base64url');
    for (const token of [
      `${prefix}.${account}.${sid}.${otherSecret}`,
      `${prefix}.${account}.${Buffer.alloc(16, 1).toString('base64url')}.${secret}`,
      `${prefix}.${'ab'.repeat(32)}.${sid}.${secret}`,
      'garbage',
      `${good}x`,
      '',
    ]) {
      const r = await refresh(w, token);
      assert.equal(r.status, 401, token);
      assert.equal(r.body.error, 'invalid_grant');
    }
    // A forged secret did not revoke anything.
    assert.equal((await refresh(w, good)).status, 200);
    await expectError(w.fetch('/auth/refresh', json({ refresh_token: 5 })), 400, 'invalid_request');
    await expectError(w.fetch('/auth/refresh', { method: 'POST' }), 400, 'invalid_request');
  });

  test('cookie transport: HttpOnly __Host- cookie, Origin required, cleared on logout', async () => {
    const address = email('cookie');
    await register(w, address);
    const { res, body } = await login(w, address, PASSWORD, { transport: 'cookie' });
    assert.equal(body.refresh_token, undefined, 'not in the body');
    const setCookie = res.headers.get('set-cookie');
    assert.match(setCookie, /^__Host-gatehouse_rt=ghr1\.[^;]+; /);
    for (const attr of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/', `Max-Age=${body.refresh_expires_in}`]) {
      assert.ok(setCookie.split('; ').includes(attr), `${attr} in ${setCookie}`);
    }
    const cookie = setCookie.split(';')[0];
    const cookieRefresh = (origin) => w.fetch('/auth/refresh', { method: 'POST', headers: { cookie, ...(origin ? { origin } : {}) } });
    await expectError(cookieRefresh(null), 403, 'invalid_request');
    await expectError(cookieRefresh('https://evil.example'), 403, 'invalid_request');
    await expectError(cookieRefresh('null'), 403, 'invalid_request');
    const ok = await cookieRefresh(w.url);
    assert.equal(ok.status, 200);
    const okBody = await ok.json();
    assert.equal(okBody.refresh_token, undefined);
    const rotated = ok.headers.get('set-cookie').split(';')[0];
    assert.notEqual(rotated, cookie);
    const fromApp = await w.fetch('/auth/refresh', { method: 'POST', headers: { cookie: rotated, origin: 'https://app.example.com' } });
    assert.equal(fromApp.status, 200, 'an ALLOWED_ORIGINS origin');
    const latest = fromApp.headers.get('set-cookie').split(';')[0];
    const out = await w.fetch('/auth/logout', { method: 'POST', headers: { ...bearer((await fromApp.json()).access_token) } });
    assert.equal(out.status, 204);
    assert.match(out.headers.get('set-cookie'), /^__Host-gatehouse_rt=; .*Max-Age=0/);
    await expectError(w.fetch('/auth/refresh', { method: 'POST', headers: { cookie: latest, origin: w.url } }), 401, 'invalid_grant');
  });

  test('logout: revokes the session at the edge and for refresh; idempotent', async () => {
    const address = email('logout');
    await register(w, address);
    const a = (await login(w, address)).body;
    const b = (await login(w, address)).body;
    await expectError(w.fetch('/auth/logout', { method: 'POST' }), 401, 'invalid_token');
    const out = await w.fetch('/auth/logout', { method: 'POST', headers: bearer(a.access_token) });
    assert.equal(out.status, 204);
    assert.equal(await whoami(w, a.access_token), 401);
    assert.equal((await refresh(w, a.refresh_token)).status, 401);
    assert.equal(await whoami(w, b.access_token), 200, 'the other session stays');
    const again = await w.fetch('/auth/logout', { method: 'POST', headers: bearer(a.access_token) });
    assert.equal(again.status, 204, 'idempotent');
    // /auth/me answers only for tokens that are not revoked.
    await expectError(w.fetch('/auth/me', { headers: bearer(a.access_token) }), 401, 'invalid_token');
    assert.equal((await w.fetch('/auth/me', { headers: bearer(b.access_token) })).status, 200);
    // A token of this account without a sid names no session to end.
    const sub = JSON.parse(Buffer.from(b.access_token.split('.')[1], 'base64url')).sub;
    const noSid = await signToken(w.keys, { claims: { iss: ISSUER, sub, sid: undefined } });
    await expectError(w.fetch('/auth/logout', { method: 'POST', headers: bearer(noSid) }), 401, 'invalid_token');
    // ...and one whose sub is no account of this namespace.
    const stranger = await signToken(w.keys, { claims: { sub: 'not-an-object-id' } });
    await expectError(w.fetch('/auth/logout', { method: 'POST', headers: bearer(stranger) }), 401, 'invalid_token');
    assert.equal(await whoami(w, b.access_token), 200, 'none of it ended the other session');
  });

  test('logout-all: every earlier access token is rejected; a new login works', async () => {
    const address = email('all');
    await register(w, address);
    await expectError(w.fetch('/auth/logout-all', { method: 'POST' }), 401, 'invalid_token');
    await expectError(w.fetch('/auth/logout-all', { method: 'POST', headers: bearer('not.a.token') }), 401, 'invalid_token');
    const sessions = [];
    for (let i = 0; i < 3; i++) sessions.push((await login(w, address)).body);
    const out = await w.fetch('/auth/logout-all', { method: 'POST', headers: bearer(sessions[1].access_token) });
    assert.equal(out.status, 204);
    for (const s of sessions) {
      assert.equal(await whoami(w, s.access_token), 401);
      assert.equal((await refresh(w, s.refresh_token)).status, 401);
    }
    const fresh = (await login(w, address)).body;
    assert.equal(await whoami(w, fresh.access_token), 200, 'a login right after logout-all works');
    assert.equal((await refresh(w, fresh.refresh_token)).status, 200);
    const again = await w.fetch('/auth/logout-all', { method: 'POST', headers: bearer(sessions[0].access_token) });
    assert.equal(again.status, 204, 'idempotent');
    // ...and a no-op: a token revoked by the first logout-all cannot end the sessions made after it.
    await sleep(1100);
    const later = (await login(w, address)).body;
    const replayed = await w.fetch('/auth/logout-all', { method: 'POST', headers: bearer(sessions[2].access_token) });
    assert.equal(replayed.status, 204);
    const single = await w.fetch('/auth/logout', { method: 'POST', headers: bearer(sessions[2].access_token) });
    assert.equal(single.status, 204);
    assert.equal(await whoami(w, later.access_token), 200, 'the later session survives');
    assert.equal(await whoami(w, fresh.access_token), 200);
    assert.equal((await refresh(w, later.refresh_token)).status, 200);
    const res = await w.fetch('/api/whoami', { headers: bearer(sessions[0].access_token) });
    assert.equal(challenge(res).params.error, 'invalid_token');
    await res.arrayBuffer();
  });

  test('CORS: only ALLOWED_ORIGINS, with preflight and credentials; the JWKS to anyone', async () => {
    const app = 'https://app.example.com';
    const pre = await w.fetch('/auth/refresh', {
      method: 'OPTIONS',
      headers: { origin: app, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), app);
    assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
    assert.match(pre.headers.get('access-control-allow-headers'), /authorization/);
    assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
    const evil = await w.fetch('/auth/refresh', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(evil.status, 403);
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
    await evil.arrayBuffer();

    const address = email('cors');
    const fromApp = await w.fetch('/auth/register', { ...json({ email: address, password: PASSWORD }), headers: { 'content-type': 'application/json', origin: app } });
    assert.equal(fromApp.status, 201);
    assert.equal(fromApp.headers.get('access-control-allow-origin'), app);
    assert.equal(fromApp.headers.get('access-control-allow-credentials'), 'true');
    assert.match(fromApp.headers.get('vary'), /Origin/);
    const fromEvil = await w.fetch('/auth/login', { ...json({ email: address, password: PASSWORD }), headers: { 'content-type': 'application/json', origin: 'https://evil.example' } });
    assert.equal(fromEvil.headers.get('access-control-allow-origin'), null);
    assert.equal(fromEvil.headers.get('access-control-allow-credentials'), null);
    await fromEvil.arrayBuffer();
    // Errors carry CORS too, so the allowed app can read them.
    const err = await w.fetch('/api/whoami', { headers: { origin: app } });
    assert.equal(err.status, 401);
    assert.equal(err.headers.get('access-control-allow-origin'), app);
    assert.match(err.headers.get('access-control-expose-headers'), /WWW-Authenticate/);
    await err.arrayBuffer();
    const jwks = await w.fetch('/.well-known/jwks.json', { headers: { origin: 'https://anyone.example' } });
    assert.equal(jwks.headers.get('access-control-allow-origin'), '*');
    assert.equal(jwks.headers.get('access-control-allow-credentials'), null);
    // The worker's own responses carry security headers.
    assert.equal(jwks.headers.get('x-content-type-options'), 'nosniff');
    assert.match(jwks.headers.get('content-security-policy'), /frame-ancestors 'none'/);
    await jwks.arrayBuffer();
  });

  test('audit log: one JSON line per security event, with ids and no secrets', async () => {
    const mark = w.logs.length;
    const address = email('audit');
    const password = 'audit password 123';
    await register(w, address, password);
    await login(w, address, 'wrong password!');
    const s = (await login(w, address, password)).body;
    const rotated = (await refresh(w, s.refresh_token)).body;
    await refresh(w, s.refresh_token); // replay within grace
    await sleep((GRACE + 1.2) * 1000);
    await refresh(w, s.refresh_token); // reuse: the family is revoked
    await refresh(w, rotated.refresh_token); // refused: revoked
    const t = (await login(w, address, password)).body;
    const out = await w.fetch('/auth/logout', { method: 'POST', headers: bearer(t.access_token) });
    const rid = out.headers.get('x-request-id');
    assert.match(rid, /^[0-9a-zA-Z-]{8,64}$/);
    const u = (await login(w, address, password)).body;
    await w.fetch('/auth/logout-all', { method: 'POST', headers: bearer(u.access_token) });
    for (let i = 0; i < 5; i++) await login(w, address, 'wrong password!');
    await login(w, address, password); // throttled
    await sleep(500);
    const log = w.logs.slice(mark);
    const lines = [...log.matchAll(/\{"kind":"audit"[^\n]*\}/g)].map((m) => JSON.parse(m[0]));
    const sub = JSON.parse(Buffer.from(s.access_token.split('.')[1], 'base64url')).sub;
    const mine = lines.filter((l) => l.account === sub);
    const events = mine.map((l) => l.event);
    for (const e of ['register', 'login.failed', 'login.succeeded', 'refresh.rotated', 'refresh.replayed',
      'refresh.reuse_detected', 'refresh.refused', 'logout', 'logout_all', 'login.throttled']) {
      assert.ok(events.includes(e), `${e} in ${events.join(', ')}`);
    }
    for (const l of mine) {
      assert.equal(typeof l.request_id, 'string');
      assert.ok(l.request_id.length >= 8);
      assert.equal(typeof l.at, 'number');
    }
    const sid = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).sid;
    assert.equal(mine.find((l) => l.event === 'refresh.reuse_detected').sid, sid(s.access_token));
    assert.equal(mine.find((l) => l.event === 'logout').sid, sid(t.access_token));
    assert.equal(mine.find((l) => l.event === 'logout').request_id, rid, 'the response carries the logged request id');
    // Nothing secret anywhere in the runtime's log.
    for (const secret of [password, 'wrong password!', s.refresh_token, rotated.refresh_token, s.access_token,
      s.refresh_token.split('.')[3], '$argon2id$', ...w.keys.keys.map((k) => k.d)]) {
      assert.ok(!log.includes(secret), `the log contains a secret (${secret.slice(0, 12)}…)`);
    }
    assert.ok(!log.includes(address), 'no email in the log either');
  });

  test('state survives a restart with the same persist directory', async () => {
    const address = email('restart');
    await register(w, address);
    const s = (await login(w, address)).body;
    const out = (await login(w, address)).body;
    await w.fetch('/auth/logout', { method: 'POST', headers: bearer(out.access_token) });
    await w.restart();
    assert.equal((await register(w, address)).status, 409, 'the account is still there');
    const r = await refresh(w, s.refresh_token);
    assert.equal(r.status, 200, 'the session is still there');
    assert.equal(await whoami(w, r.body.access_token), 200);
    assert.equal(await whoami(w, out.access_token), 401, 'the revocation is still there');
    assert.equal((await login(w, address)).status, 200);
  });
});
