// Abuse limits end to end (issue 14 items 1 and 2), against wrangler dev with Miniflare's Rate
// Limiting bindings (tight ones, set for this file), real Durable Objects and a loopback Turnstile
// siteverify fake. Each request names its client with CF-Connecting-IP, which wrangler dev passes
// through as sent (it sets it only when absent), as Cloudflare's edge sets it: the per-address
// limits below could not tell the addresses apart otherwise.
// - one address spraying many accounts gets 429 too_many_requests with Retry-After; other
//   addresses are unaffected;
// - registration is limited per address;
// - an attacker hammering a victim's email from other addresses never stops the owner logging in
//   from a client that has logged in before; the attacker is slowed;
// - Turnstile: no token 400, a refused one 403, an admitted one passes; siteverify gets the secret
//   and the client address;
// - REGISTRATION_MODE=uniform: a new and a taken email get byte-identical answers.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startWorker } from './harness.mjs';

const PASSWORD = 'correct horse battery';
let counter = 0;
const email = (tag) => `${tag}-${Date.now()}-${counter++}@example.com`;
const post = (ip, body, headers = {}) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', 'cf-connecting-ip': ip, ...headers },
  body: JSON.stringify(body),
});

/** Tight limits: every period is 60 s (a fixed window in Miniflare, so a run may straddle two). */
const LIMITS = { loginIp: 8, loginAccount: 4, registerIp: 5, refreshIp: 50 };
const RATELIMITS = [
  { name: 'RATE_LIMIT_LOGIN_IP', namespace_id: '1001', simple: { limit: LIMITS.loginIp, period: 60 } },
  { name: 'RATE_LIMIT_LOGIN_ACCOUNT', namespace_id: '1002', simple: { limit: LIMITS.loginAccount, period: 60 } },
  { name: 'RATE_LIMIT_REGISTER_IP', namespace_id: '1003', simple: { limit: LIMITS.registerIp, period: 60 } },
  { name: 'RATE_LIMIT_REFRESH_IP', namespace_id: '1004', simple: { limit: LIMITS.refreshIp, period: 60 } },
];

/** The JSON log lines of a kind (`refusal`, `audit`) the worker wrote so far. */
const lines = (w, kind) => w.logs.split('\n').filter((l) => l.includes(`"kind":"${kind}"`)).flatMap((l) => {
  try { return [JSON.parse(l.slice(l.indexOf('{')))]; } catch { return []; }
});

/** Waits for a fresh fixed window when less than 25 s of this one are left, so a test's counts stay
 *  in one window (Miniflare's windows are aligned to the clock). */
async function freshWindow() {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 25_000) await new Promise((r) => setTimeout(r, left + 250));
}

async function answer(res) {
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: res.status, body, text, headers: res.headers };
}

describe('rate limits and the per-account slow-down', () => {
  let w;
  before(async () => { w = await startWorker({ ratelimits: RATELIMITS }); });
  after(async () => { await w?.cleanup(); });

  const login = async (ip, address, password = PASSWORD) => answer(await w.fetch('/auth/login', post(ip, { email: address, password })));
  const register = async (ip, address) => answer(await w.fetch('/auth/register', post(ip, { email: address, password: PASSWORD })));

  test('one address spraying many accounts gets 429 too_many_requests with Retry-After; others do not', async () => {
    await freshWindow();
    const spray = [];
    for (let i = 0; i < 3 * LIMITS.loginIp; i += 1) spray.push(await login('198.51.100.10', email('spray'), 'wrong password!'));
    assert.ok(spray.slice(0, LIMITS.loginIp).every((r) => r.status === 401), spray.map((r) => r.status).join(' '));
    const limited = spray.filter((r) => r.status === 429);
    assert.ok(limited.length >= LIMITS.loginIp, `limited after ${LIMITS.loginIp}: ${spray.map((r) => r.status).join(' ')}`);
    for (const r of limited) {
      assert.equal(r.body.error, 'too_many_requests');
      assert.equal(r.headers.get('retry-after'), '60');
      assert.equal(r.headers.get('cache-control'), 'no-store');
    }
    // The refusal is logged with its code and the limit's name.
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(lines(w, 'refusal').some((l) => l.status === 429 && l.error === 'too_many_requests'
      && l.route === '/auth/login' && l.reason.includes('RATE_LIMIT_LOGIN_IP')), 'a refusal line names the limit');
    // Another address is not affected.
    const other = await login('198.51.100.11', email('other'), 'wrong password!');
    assert.equal(other.status, 401, JSON.stringify(other.body));
  });

  test('registration is limited per address', async () => {
    await freshWindow();
    const statuses = [];
    for (let i = 0; i < 3 * LIMITS.registerIp; i += 1) {
      const r = await register('198.51.100.20', email('reg'));
      statuses.push(r.status);
      if (r.status === 429) {
        assert.equal(r.body.error, 'too_many_requests');
        assert.equal(r.headers.get('retry-after'), '60');
      }
    }
    assert.deepEqual(statuses.slice(0, LIMITS.registerIp), Array(LIMITS.registerIp).fill(201), statuses.join(' '));
    assert.ok(statuses.filter((s) => s === 429).length >= LIMITS.registerIp, statuses.join(' '));
    assert.equal((await register('198.51.100.21', email('reg'))).status, 201, 'another address registers');
  });

  test('an attacker hammering the email from other addresses never stops the owner on a known client', async () => {
    const victim = email('victim');
    assert.equal((await register('203.0.113.1', victim)).status, 201);
    // The owner's device logs in once: it is known from now on.
    assert.equal((await login('203.0.113.5', victim)).status, 200);
    // The attacker, from twelve addresses, four wrong passwords each (the per-(address, account)
    // limit), then one more each: refused by the limit.
    await freshWindow();
    const codes = new Map();
    for (let round = 0; round <= LIMITS.loginAccount; round += 1) {
      for (let a = 0; a < 12; a += 1) {
        const r = await login(`192.0.2.${100 + a}`, victim, `wrong password ${round}`);
        assert.notEqual(r.status, 200);
        const code = r.body.error;
        codes.set(code, (codes.get(code) ?? 0) + 1);
        if (round === LIMITS.loginAccount) assert.equal(code, 'too_many_requests', 'the fifth from one address');
      }
    }
    // Most of the attacker's own attempts were slowed down by the account (refused unchecked).
    assert.ok((codes.get('too_many_attempts') ?? 0) > 24, JSON.stringify([...codes]));
    // Even the right password from a stranger waits now (no oracle while slowed): one more failure
    // first, so the strangers' lock is on whatever time the loop took.
    await login('192.0.2.150', victim, 'wrong password again');
    const stranger = await login('192.0.2.200', victim);
    assert.equal(stranger.status, 429);
    assert.equal(stranger.body.error, 'too_many_attempts');
    assert.ok(Number(stranger.headers.get('retry-after')) >= 1);
    // The owner, from the known client, gets in.
    const owner = await login('203.0.113.5', victim);
    assert.equal(owner.status, 200, JSON.stringify(owner.body));
    assert.ok(owner.body.access_token);
    // The slow-down is in the audit log, by group.
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(lines(w, 'audit').some((l) => l.event === 'login.throttled' && l.reason === 'strangers'));
  });

  test('refresh is limited per address', async () => {
    const address = email('refresher');
    assert.equal((await register('203.0.113.60', address)).status, 201);
    const first = await login('203.0.113.61', address);
    let token = first.body.refresh_token;
    await freshWindow();
    const statuses = [];
    for (let i = 0; i < 2 * LIMITS.refreshIp + 2 && !statuses.includes(429); i += 1) {
      const r = await answer(await w.fetch('/auth/refresh', post('203.0.113.62', { refresh_token: token })));
      statuses.push(r.status);
      if (r.status === 200) token = r.body.refresh_token;
      else assert.equal(r.body.error, 'too_many_requests');
    }
    assert.ok(statuses.includes(429), statuses.join(' '));
    // The session itself is fine: from another address the same token still refreshes.
    const other = await answer(await w.fetch('/auth/refresh', post('203.0.113.63', { refresh_token: token })));
    assert.equal(other.status, 200, JSON.stringify(other.body));
  });
});

/** A loopback siteverify: admits the token `good`, refuses anything else; records each request. */
async function startSiteverify() {
  const seen = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      seen.push({ method: req.method, path: req.url, type: req.headers['content-type'], form: Object.fromEntries(form) });
      const body = JSON.stringify({ success: form.get('response') === 'good', 'error-codes': [] });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/siteverify`, seen, close: () => new Promise((r) => server.close(r)) };
}

describe('Turnstile and uniform registration', () => {
  let w;
  let siteverify;
  before(async () => {
    siteverify = await startSiteverify();
    w = await startWorker({
      ratelimits: [],
      vars: { TURNSTILE_SECRET: 'test-secret', TURNSTILE_VERIFY_URL: siteverify.url, REGISTRATION_MODE: 'uniform' },
    });
  });
  after(async () => { await w?.cleanup(); await siteverify?.close(); });

  test('Turnstile: none is 400, a refused token 403, an admitted one passes (body or header)', async () => {
    const address = email('turnstile');
    const body = { email: address, password: PASSWORD };
    let r = await answer(await w.fetch('/auth/register', post('198.51.100.70', body)));
    assert.equal(r.status, 400);
    assert.equal(r.body.error, 'turnstile_required');
    r = await answer(await w.fetch('/auth/register', post('198.51.100.70', { ...body, 'cf-turnstile-response': 'bad' })));
    assert.equal(r.status, 403);
    assert.equal(r.body.error, 'turnstile_failed');
    const asked = siteverify.seen.at(-1);
    assert.equal(asked.method, 'POST');
    assert.equal(asked.type, 'application/x-www-form-urlencoded');
    assert.deepEqual(asked.form, { secret: 'test-secret', response: 'bad', remoteip: '198.51.100.70' });
    r = await answer(await w.fetch('/auth/register', post('198.51.100.70', { ...body, 'cf-turnstile-response': 'good' })));
    assert.equal(r.status, 202, JSON.stringify(r.body));
    // Login too; the header works as well as the body member.
    r = await answer(await w.fetch('/auth/login', post('198.51.100.70', body)));
    assert.equal(r.body.error, 'turnstile_required');
    r = await answer(await w.fetch('/auth/login', post('198.51.100.70', body, { 'cf-turnstile-response': 'bad' })));
    assert.equal(r.status, 403);
    r = await answer(await w.fetch('/auth/login', post('198.51.100.70', body, { 'cf-turnstile-response': 'good' })));
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });

  test('uniform registration: a new and a taken email get byte-identical answers', async () => {
    const address = email('uniform');
    const reg = async (addr, password) => answer(await w.fetch('/auth/register',
      post('198.51.100.80', { email: addr, password, 'cf-turnstile-response': 'good' })));
    const fresh = await reg(address, PASSWORD);
    const taken = await reg(address, 'another password entirely');
    const takenUpper = await reg(address.toUpperCase(), PASSWORD);
    for (const r of [fresh, taken, takenUpper]) {
      assert.equal(r.status, 202);
      assert.equal(r.text, '{"status":"accepted"}');
    }
    // Every header but the request id and the date is the same.
    const headers = (r) => [...r.headers].filter(([k]) => !['x-request-id', 'date'].includes(k));
    assert.deepEqual(headers(taken), headers(fresh));
    assert.deepEqual(headers(takenUpper), headers(fresh));
    assert.ok(!fresh.text.includes('sub'), 'no account id, no token');
    // The new account exists (with the first password), the taken one was not changed.
    const ok = await answer(await w.fetch('/auth/login', post('198.51.100.80', { email: address, password: PASSWORD, 'cf-turnstile-response': 'good' })));
    assert.equal(ok.status, 200);
    const no = await answer(await w.fetch('/auth/login', post('198.51.100.80', { email: address, password: 'another password entirely', 'cf-turnstile-response': 'good' })));
    assert.equal(no.status, 401);
  });
});
