// The standard OAuth endpoints end to end, against wrangler dev: RFC 8414 metadata, the refresh
// grant of the token endpoint (RFC 6749 §6), RFC 7009 revocation reaching the edge, and RFC 7662
// introspection for authenticated clients only.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, challenge, ISSUER } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const json = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const form = (params, headers = {}) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  body: new URLSearchParams(params).toString(),
});
const bearer = (t) => ({ authorization: `Bearer ${t}` });
const CLIENT = 'resource-server';
const SECRET = 'an-introspection-secret-of-40-characters!';
const basic = (id, secret) => ({ authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}` });
let counter = 0;

async function session(w) {
  const email = `oauth-${Date.now()}-${counter++}@example.com`;
  const password = 'correct horse battery';
  assert.equal((await w.fetch('/auth/register', json({ email, password }))).status, 201);
  const res = await w.fetch('/auth/login', json({ email, password }));
  assert.equal(res.status, 200);
  return res.json();
}

async function whoami(w, token) {
  const res = await w.fetch('/api/whoami', { headers: bearer(token) });
  await res.arrayBuffer();
  return res.status;
}

async function expectError(res, status, code) {
  const body = await res.json();
  assert.equal(res.status, status, `${code}: ${JSON.stringify(body)}`);
  assert.equal(body.error, code);
  return res;
}

describe('OAuth endpoints', () => {
  let w;
  before(async () => {
    w = await startWorker({
      vars: {
        DEFAULT_SCOPE: 'api read',
        REFRESH_REUSE_GRACE_SECONDS: '2',
        INTROSPECTION_CLIENTS: JSON.stringify({ [CLIENT]: SECRET }),
        ALLOWED_ORIGINS: 'https://app.example.com',
      },
    });
  });
  after(async () => { await w?.cleanup(); });

  test('RFC 8414 metadata names the issuer and its endpoints', async () => {
    const res = await w.fetch('/.well-known/oauth-authorization-server', { headers: { origin: 'https://elsewhere.example' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=300');
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    const m = await res.json();
    assert.equal(m.issuer, ISSUER);
    assert.equal(m.jwks_uri, `${ISSUER}/.well-known/jwks.json`);
    assert.equal(m.token_endpoint, `${ISSUER}/oauth/token`);
    assert.equal(m.revocation_endpoint, `${ISSUER}/oauth/revoke`);
    assert.equal(m.introspection_endpoint, `${ISSUER}/oauth/introspect`);
    assert.deepEqual(m.grant_types_supported, ['refresh_token']);
    assert.deepEqual(m.introspection_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post']);
    assert.equal((await w.fetch('/.well-known/oauth-authorization-server', { method: 'POST' })).status, 405);
  });

  test('token endpoint: the refresh grant rotates, in the standard shape', async () => {
    const pair = await session(w);
    const asked = Date.now();
    const res = await w.fetch('/oauth/token', form({ grant_type: 'refresh_token', refresh_token: pair.refresh_token, client_id: 'gatehouse' }));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('pragma'), 'no-cache');
    const body = await res.json();
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'refresh_token', 'scope', 'token_type']);
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.scope, 'api read');
    assert.notEqual(body.refresh_token, pair.refresh_token);
    assert.equal(await whoami(w, body.access_token), 200);
    // The retired token within the grace returns the very pair (same as /auth/refresh).
    const again = await (await w.fetch('/oauth/token', form({ grant_type: 'refresh_token', refresh_token: pair.refresh_token }))).json();
    const { expires_in: left, ...replayed } = again;
    const { expires_in: lifetime, ...first } = body;
    assert.deepEqual(replayed, first);
    // expires_in is the access token's remaining lifetime: it counts down from the first answer's by
    // the whole seconds gone since (a second boundary may fall between the two answers).
    const gone = Math.ceil((Date.now() - asked) / 1000);
    assert.ok(left <= lifetime && left >= lifetime - gone, `expires_in ${left} after ${lifetime}, ${gone} s apart`);
    // Narrowed scope.
    const narrow = await (await w.fetch('/oauth/token', form({ grant_type: 'refresh_token', refresh_token: body.refresh_token, scope: 'read' }))).json();
    assert.equal(narrow.scope, 'read');
    const claims = JSON.parse(Buffer.from(narrow.access_token.split('.')[1], 'base64url'));
    assert.equal(claims.scope, 'read');
    // A scope never granted is refused before the token is spent.
    await expectError(await w.fetch('/oauth/token', form({ grant_type: 'refresh_token', refresh_token: narrow.refresh_token, scope: 'read admin' })), 400, 'invalid_scope');
    assert.equal((await w.fetch('/oauth/token', form({ grant_type: 'refresh_token', refresh_token: narrow.refresh_token }))).status, 200);
  });

  test('token endpoint: every error of RFC 6749 §5.2 that applies', async () => {
    const pair = await session(w);
    await expectError(await w.fetch('/oauth/token', form({ grant_type: 'password', username: 'a', password: 'b' })), 400, 'unsupported_grant_type');
    await expectError(await w.fetch('/oauth/token', form({ refresh_token: pair.refresh_token })), 400, 'invalid_request');
    await expectError(await w.fetch('/oauth/token', form({ grant_type: 'refresh_token' })), 400, 'invalid_request');
    await expectError(await w.fetch('/oauth/token', json({ grant_type: 'refresh_token', refresh_token: pair.refresh_token })), 400, 'invalid_request');
    await expectError(await w.fetch('/oauth/token', { ...form({}), body: 'grant_type=refresh_token&grant_type=refresh_token' }), 400, 'invalid_request');
    await expectError(await w.fetch('/oauth/token', form({ grant_type: 'refresh_token', refresh_token: 'ghr1.junk' })), 400, 'invalid_grant');
    const forged = pair.refresh_token.replace(/.{4}$/, 'AAAA');
    await expectError(await w.fetch('/oauth/token', form({ grant_type: 'refresh_token', refresh_token: forged })), 400, 'invalid_grant');
    await expectError(await w.fetch('/oauth/token', form({ grant_type: 'refresh_token', refresh_token: pair.refresh_token, client_id: 'someone' })), 401, 'invalid_client');
    const res = await expectError(await w.fetch('/oauth/token', form({ grant_type: 'refresh_token', refresh_token: pair.refresh_token }, basic('gatehouse', 'x'))), 401, 'invalid_client');
    assert.match(res.headers.get('www-authenticate'), /^Basic realm=/);
    // None of the refused requests spent the token.
    assert.equal((await w.fetch('/oauth/token', form({ grant_type: 'refresh_token', refresh_token: pair.refresh_token }))).status, 200);
    assert.equal((await w.fetch('/oauth/token')).status, 405);
  });

  test('revocation of a refresh token ends its session, at the edge too', async () => {
    const pair = await session(w);
    const next = await (await w.fetch('/auth/refresh', json({ refresh_token: pair.refresh_token }))).json();
    assert.equal(await whoami(w, next.access_token), 200);
    const res = await w.fetch('/oauth/revoke', form({ token: next.refresh_token, token_type_hint: 'refresh_token' }));
    assert.equal(res.status, 200);
    assert.equal((await res.text()), '');
    assert.equal((await w.fetch('/auth/refresh', json({ refresh_token: next.refresh_token }))).status, 401);
    assert.equal(await whoami(w, next.access_token), 401, 'the session is denylisted');
    assert.equal(await whoami(w, pair.access_token), 401);
    // Revoking again, or with an earlier token of the family, is still 200.
    assert.equal((await w.fetch('/oauth/revoke', form({ token: pair.refresh_token }))).status, 200);
  });

  test('revocation of an older token of the family ends it too; a forged one ends nothing', async () => {
    const pair = await session(w);
    const forged = pair.refresh_token.replace(/.{4}$/, 'AAAA');
    assert.equal((await w.fetch('/oauth/revoke', form({ token: forged }))).status, 200);
    const next = await (await w.fetch('/auth/refresh', json({ refresh_token: pair.refresh_token }))).json();
    assert.ok(next.refresh_token, 'the session survived the forged revocation');
    await sleep(2100); // past the grace, the first token is an ancestor
    assert.equal((await w.fetch('/oauth/revoke', form({ token: pair.refresh_token }))).status, 200);
    assert.equal((await w.fetch('/auth/refresh', json({ refresh_token: next.refresh_token }))).status, 401);
  });

  test('revocation of an access token stops that token only', async () => {
    const pair = await session(w);
    const other = await (await w.fetch('/auth/refresh', json({ refresh_token: pair.refresh_token }))).json();
    assert.equal(await whoami(w, pair.access_token), 200);
    assert.equal((await w.fetch('/oauth/revoke', form({ token: pair.access_token, token_type_hint: 'access_token' }))).status, 200);
    assert.equal(await whoami(w, pair.access_token), 401, 'that jti is denylisted');
    assert.equal(await whoami(w, other.access_token), 200, 'the session and its other tokens live on');
    // A revoked token cannot log out (the client must refresh and ask again): the session lives on.
    assert.equal((await w.fetch('/auth/logout', { method: 'POST', headers: bearer(pair.access_token) })).status, 401);
    assert.equal(await whoami(w, other.access_token), 200);
    const latest = await (await w.fetch('/auth/refresh', json({ refresh_token: other.refresh_token }))).json();
    assert.equal((await w.fetch('/auth/logout', { method: 'POST', headers: bearer(latest.access_token) })).status, 204);
    assert.equal(await whoami(w, latest.access_token), 401);
  });

  test('revocation: unknown tokens are 200; malformed requests and bad clients are not', async () => {
    for (const token of ['nonsense', 'a.b.c', 'ghr1.junk.x.y', `ghr1.${'ab'.repeat(32)}.${'A'.repeat(22)}.${'A'.repeat(43)}`]) {
      assert.equal((await w.fetch('/oauth/revoke', form({ token }))).status, 200, token);
    }
    await expectError(await w.fetch('/oauth/revoke', form({})), 400, 'invalid_request');
    await expectError(await w.fetch('/oauth/revoke', json({ token: 'x' })), 400, 'invalid_request');
    await expectError(await w.fetch('/oauth/revoke', form({ token: 'x' }, basic(CLIENT, 'wrong'))), 401, 'invalid_client');
    assert.equal((await w.fetch('/oauth/revoke', form({ token: 'x' }, basic(CLIENT, SECRET)))).status, 200);
    await expectError(await w.fetch('/oauth/revoke', { ...form({}), body: 'x'.repeat(17 * 1024) }), 413, 'invalid_request');
    assert.equal((await w.fetch('/oauth/revoke')).status, 405);
  });

  test('introspection: only authenticated clients; active tokens in full, anything else {"active": false}', async () => {
    const pair = await session(w);
    // Client authentication.
    let res = await expectError(await w.fetch('/oauth/introspect', form({ token: pair.access_token })), 401, 'invalid_client');
    assert.equal(challenge(res).scheme, 'Basic');
    await expectError(await w.fetch('/oauth/introspect', form({ token: pair.access_token }, basic(CLIENT, `${SECRET}x`))), 401, 'invalid_client');
    await expectError(await w.fetch('/oauth/introspect', form({ token: pair.access_token }, basic('nobody', SECRET))), 401, 'invalid_client');
    await expectError(await w.fetch('/oauth/introspect', form({ token: pair.access_token, client_id: CLIENT, client_secret: SECRET }, basic(CLIENT, SECRET))), 400, 'invalid_request');
    await expectError(await w.fetch('/oauth/introspect', form({}, basic(CLIENT, SECRET))), 400, 'invalid_request');
    // An active access token (client_secret_basic).
    res = await w.fetch('/oauth/introspect', form({ token: pair.access_token }, basic(CLIENT, SECRET)));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const active = await res.json();
    assert.equal(active.active, true);
    assert.equal(active.token_type, 'Bearer');
    assert.equal(active.scope, 'api read');
    assert.equal(active.client_id, 'gatehouse');
    assert.equal(active.iss, ISSUER);
    assert.match(active.username, /^oauth-.*@example\.com$/);
    for (const k of ['sub', 'exp', 'iat', 'jti', 'sid']) assert.ok(active[k] !== undefined, k);
    // A live refresh token (client_secret_post), which introspection does not spend.
    res = await w.fetch('/oauth/introspect', form({ token: pair.refresh_token, client_id: CLIENT, client_secret: SECRET }));
    const refresh = await res.json();
    assert.equal(refresh.active, true);
    assert.equal(refresh.token_type, 'refresh_token');
    assert.equal(refresh.sid, active.sid);
    assert.equal(refresh.sub, active.sub);
    const next = await (await w.fetch('/auth/refresh', json({ refresh_token: pair.refresh_token }))).json();
    assert.ok(next.refresh_token, 'introspection did not rotate or spend it');
    // Inactive: exactly {"active": false}, whatever the reason.
    const inactive = async (token) => {
      const r = await w.fetch('/oauth/introspect', form({ token }, basic(CLIENT, SECRET)));
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { active: false }, token.slice(0, 20));
    };
    await inactive(pair.refresh_token); // retired by the rotation
    await inactive('nonsense');
    await inactive(pair.access_token.replace(/.{4}$/, 'AAAA'));
    await inactive(`ghr1.${'ab'.repeat(32)}.${'A'.repeat(22)}.${'A'.repeat(43)}`);
    // After logout, both kinds are inactive (the access token by the denylist).
    assert.equal((await w.fetch('/auth/logout', { method: 'POST', headers: bearer(next.access_token) })).status, 204);
    await inactive(next.access_token);
    await inactive(next.refresh_token);
  });
});
