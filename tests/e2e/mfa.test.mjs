// Second factor and step-up end to end in workerd (wrangler dev): enrol TOTP (RFC 6238) → a login
// asks for the code (403 mfa_required with a ticket) → a wrong code is refused, the right one issues
// tokens with amr ["pwd","otp","mfa"] → a route policy with amr and max_age admits them and refuses
// a password-only token with the RFC 9470 challenge → a recovery code works once; a used code and a
// used ticket are refused; removing the factor needs a fresh second factor. Codes are computed here
// with node:crypto from the enrolment's secret, as an authenticator app would.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startWorker, challenge, signToken } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const json = (body, headers = {}) => ({ method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const bearer = (token) => ({ authorization: `Bearer ${token}` });
const claimsOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));

/** RFC 4648 base32 without padding, decoded. */
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The RFC 6238 code (SHA-1, six digits, 30 s steps) of `secret` at time step `step`. */
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}
const stepNow = () => Math.floor(Date.now() / 1000 / 30);

describe('TOTP second factor, recovery codes and step-up', () => {
  let w;
  const email = `mfa-${Date.now()}@example.com`;
  let secret;
  let recovery;
  let passwordOnly;
  let mfaPair;
  let usedCode;
  let usedTicket;

  before(async () => {
    w = await startWorker({
      vars: { ROUTE_POLICIES: JSON.stringify([{ prefix: '/api/whoami', amr: ['otp', 'mfa'], max_age: 300 }]) },
    });
  });
  after(async () => { await w?.cleanup(); });

  const login = async () => w.fetch('/auth/login', json({ email, password: PASSWORD }));
  const verify = async (body) => w.fetch('/auth/mfa/verify', json(body));
  const ticket = async () => {
    const res = await login();
    const body = await res.json();
    assert.equal(res.status, 403, JSON.stringify(body));
    assert.equal(body.error, 'mfa_required');
    assert.deepEqual(body.methods, ['totp', 'recovery_code']);
    assert.equal(body.access_token, undefined, 'no token before the second factor');
    return body.mfa_ticket;
  };

  test('enrolment: a secret, its otpauth URI and QR code; confirmed by a first code, answering 10 recovery codes', async () => {
    assert.equal((await w.fetch('/auth/register', json({ email, password: PASSWORD }))).status, 201);
    const first = await login();
    assert.equal(first.status, 200, 'no second factor yet: tokens at once');
    passwordOnly = (await first.json()).access_token;
    assert.deepEqual(claimsOf(passwordOnly).amr, ['pwd']);
    assert.equal(claimsOf(passwordOnly).acr, 'aal1');
    assert.equal(typeof claimsOf(passwordOnly).auth_time, 'number');

    assert.equal((await w.fetch('/auth/mfa/totp/enroll', { method: 'POST' })).status, 401, 'Bearer required');
    // A login older than five minutes (a stolen token, say) cannot put a factor on the account.
    const sub = claimsOf(passwordOnly).sub;
    const old = await signToken(w.keys, { claims: { sub, amr: ['pwd'], auth_time: Math.floor(Date.now() / 1000) - 301 } });
    const stale = await w.fetch('/auth/mfa/totp/enroll', { method: 'POST', headers: bearer(old) });
    assert.equal(stale.status, 401);
    assert.equal((await stale.json()).error, 'insufficient_user_authentication');
    assert.equal(challenge(stale).params.max_age, '300');
    const res = await w.fetch('/auth/mfa/totp/enroll', { method: 'POST', headers: bearer(passwordOnly) });
    const enrol = await res.json();
    assert.equal(res.status, 200, JSON.stringify(enrol));
    assert.match(enrol.secret, /^[A-Z2-7]{32}$/);
    assert.ok(enrol.otpauth_uri.startsWith(`otpauth://totp/gatehouse.test:${encodeURIComponent(email)}?secret=${enrol.secret}&`), enrol.otpauth_uri);
    assert.ok(enrol.qr_svg.startsWith('data:image/svg+xml'), enrol.qr_svg.slice(0, 40));
    secret = enrol.secret;

    const wrongCode = totp(secret, stepNow() + 5);
    const wrong = await w.fetch('/auth/mfa/totp/confirm', json({ code: wrongCode }, bearer(passwordOnly)));
    assert.equal(wrong.status, 401);
    assert.equal((await wrong.json()).error, 'invalid_mfa_code');
    const ok = await w.fetch('/auth/mfa/totp/confirm', json({ code: totp(secret, stepNow()) }, bearer(passwordOnly)));
    const body = await ok.json();
    assert.equal(ok.status, 200, JSON.stringify(body));
    assert.equal(body.recovery_codes.length, 10);
    recovery = body.recovery_codes;
    const again = await w.fetch('/auth/mfa/totp/enroll', { method: 'POST', headers: bearer(passwordOnly) });
    assert.equal(again.status, 409);
    assert.equal((await again.json()).error, 'mfa_already_enabled');
  });

  test('a login asks for the code; a wrong code is refused, the right one issues tokens with amr pwd otp mfa', async () => {
    const t = await ticket();
    const wrong = await verify({ mfa_ticket: t, method: 'totp', code: totp(secret, stepNow() + 7) });
    assert.equal(wrong.status, 401);
    assert.equal((await wrong.json()).error, 'invalid_mfa_code');
    // The next step's code: the confirmation used this one (each code once, RFC 6238 §5.2).
    usedCode = totp(secret, stepNow() + 1);
    const res = await verify({ mfa_ticket: t, method: 'totp', code: usedCode });
    mfaPair = await res.json();
    assert.equal(res.status, 200, JSON.stringify(mfaPair));
    usedTicket = t;
    const claims = claimsOf(mfaPair.access_token);
    assert.deepEqual(claims.amr, ['pwd', 'otp', 'mfa']);
    assert.equal(claims.acr, 'aal2');
    assert.ok(Math.abs(claims.auth_time - Date.now() / 1000) < 60);
    assert.ok(mfaPair.refresh_token);
  });

  test('the step-up route admits the two-factor token and refuses a password-only one with the RFC 9470 challenge', async () => {
    const ok = await w.fetch('/api/whoami', { headers: bearer(mfaPair.access_token) });
    const who = await ok.json();
    assert.equal(ok.status, 200, JSON.stringify(who));
    assert.deepEqual(who.amr, ['pwd', 'otp', 'mfa']);
    const res = await w.fetch('/api/whoami', { headers: bearer(passwordOnly) });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error, 'insufficient_user_authentication');
    const c = challenge(res);
    assert.equal(c.scheme, 'Bearer');
    assert.equal(c.params.error, 'insufficient_user_authentication');
    assert.equal(c.params.max_age, '300');
    // A refresh keeps the session's amr and auth_time: the new token still passes.
    const r = await w.fetch('/auth/refresh', json({ refresh_token: mfaPair.refresh_token }));
    const refreshed = await r.json();
    assert.equal(r.status, 200, JSON.stringify(refreshed));
    assert.deepEqual(claimsOf(refreshed.access_token).amr, ['pwd', 'otp', 'mfa']);
    assert.equal(claimsOf(refreshed.access_token).auth_time, claimsOf(mfaPair.access_token).auth_time);
    mfaPair = refreshed;
  });

  test('a used code and a used ticket are refused', async () => {
    const replay = await verify({ mfa_ticket: usedTicket, method: 'totp', code: totp(secret, stepNow()) });
    assert.equal(replay.status, 401);
    assert.equal((await replay.json()).error, 'invalid_mfa_ticket', 'a ticket works once');
    const t = await ticket();
    const again = await verify({ mfa_ticket: t, method: 'totp', code: usedCode });
    assert.equal(again.status, 401);
    assert.equal((await again.json()).error, 'invalid_mfa_code', 'a code works once');
    const forged = await verify({ mfa_ticket: `${t.slice(0, -4)}AAAA`, method: 'totp', code: totp(secret, stepNow()) });
    assert.equal(forged.status, 401);
    assert.equal((await forged.json()).error, 'invalid_mfa_ticket');
    const bad = await verify({ mfa_ticket: t, method: 'sms', code: '123456' });
    assert.equal(bad.status, 400);
    await bad.arrayBuffer();
  });

  test('a recovery code works once', async () => {
    const t = await ticket();
    const res = await verify({ mfa_ticket: t, method: 'recovery_code', code: recovery[0] });
    const pair = await res.json();
    assert.equal(res.status, 200, JSON.stringify(pair));
    assert.deepEqual(claimsOf(pair.access_token).amr, ['pwd', 'otp', 'mfa']);
    const again = await verify({ mfa_ticket: await ticket(), method: 'recovery_code', code: recovery[0] });
    assert.equal(again.status, 401);
    assert.equal((await again.json()).error, 'invalid_mfa_code');
  });

  test('removing the factor needs a fresh second factor; then a login is one step again', async () => {
    const weak = await w.fetch('/auth/mfa/totp', { method: 'DELETE', headers: bearer(passwordOnly) });
    assert.equal(weak.status, 401);
    assert.equal((await weak.json()).error, 'insufficient_user_authentication');
    assert.equal(challenge(weak).params.max_age, '300');
    const regen = await w.fetch('/auth/mfa/recovery-codes', { method: 'POST', headers: bearer(mfaPair.access_token) });
    const codes = await regen.json();
    assert.equal(regen.status, 200, JSON.stringify(codes));
    assert.equal(codes.recovery_codes.length, 10);
    assert.ok(!codes.recovery_codes.includes(recovery[1]));
    const del = await w.fetch('/auth/mfa/totp', { method: 'DELETE', headers: bearer(mfaPair.access_token) });
    assert.equal(del.status, 204);
    const res = await login();
    assert.equal(res.status, 200);
    assert.deepEqual(claimsOf((await res.json()).access_token).amr, ['pwd']);
    // The audit log has the enrolment, the failures and the verifications, never a code or secret.
    for (const event of ['mfa.enrolled', 'mfa.required', 'mfa.failed', 'mfa.verified', 'mfa.removed', 'mfa.recovery_regenerated']) {
      assert.ok(w.logs.includes(`"event":"${event}"`), event);
    }
    assert.ok(!w.logs.includes(secret), 'the secret is never logged');
    assert.ok(!w.logs.includes(recovery[2]), 'nor a recovery code');
  });
});
