// The account lifecycle end to end in workerd (wrangler dev, real local KV and Durable Objects),
// issue 13's walk: register → mail in the outbox → verify → forgot → mail → reset → the old
// sessions refused at the edge → change password → list sessions → revoke one → an admin grants
// `admin` → a role-guarded route admits the user → the admin disables the account → refused at the
// edge → export → delete → login fails. Then the rules one by one: links are single use and name
// their account, forgot answers alike (status, body, and time within 20 %) for known and unknown
// emails, bad input changes nothing, no token or password reaches a log line, and the HTTP mail
// transport and EMAIL_VERIFICATION=required against a loopback mail API.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { startWorker, sleep } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const NEW_PASSWORD = 'a brand new passphrase';
const THIRD_PASSWORD = 'third time lucky, surely';
const json = (body, headers = {}, method = 'POST') => ({ method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const bearer = (token) => ({ authorization: `Bearer ${token}` });
const claimsOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
const secrets = new Set();

/** Mails to `to` in the outbox, polled until `count` are there (they go out after the answer). */
async function outbox(w, to, count = 1) {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${w.url}/dev/outbox?to=${encodeURIComponent(to)}`);
    assert.equal(res.status, 200);
    const { mails } = await res.json();
    if (mails.length >= count) return mails;
    await sleep(50);
  }
  assert.fail(`no ${count} mail(s) for ${to} in the outbox`);
}

/** The token of the link in a mail (the fragment `#verify=` / `#reset=`). */
function linkToken(mail, kind) {
  const m = mail.text.match(new RegExp(`#${kind}=([A-Za-z0-9._-]+)`));
  assert.ok(m, `a #${kind}= link in ${mail.text}`);
  assert.ok(mail.html.includes(`#${kind}=${m[1]}`), 'the HTML carries the same link');
  secrets.add(m[1]);
  return m[1];
}

async function register(w, email, password = PASSWORD) {
  const res = await fetch(`${w.url}/auth/register`, json({ email, password }));
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()).sub;
}

async function login(w, email, password = PASSWORD, agent = 'lifecycle-test') {
  const res = await fetch(`${w.url}/auth/login`, json({ email, password }, { 'user-agent': agent }));
  const body = await res.json();
  if (res.status === 200) {
    secrets.add(body.access_token);
    secrets.add(body.refresh_token);
  }
  return { status: res.status, body };
}

async function tokens(w, email, password = PASSWORD, agent) {
  const { status, body } = await login(w, email, password, agent);
  assert.equal(status, 200, JSON.stringify(body));
  return body;
}

const edge = (w, access) => fetch(`${w.url}/api/whoami`, { headers: bearer(access) });
const refresh = (w, refreshToken) => fetch(`${w.url}/auth/refresh`, json({ refresh_token: refreshToken }));

async function verifyEmail(w, email) {
  const [mail] = (await outbox(w, email)).filter((m) => m.kind === 'verify');
  const res = await fetch(`${w.url}/auth/email/verify`, json({ token: linkToken(mail, 'verify'), password: PASSWORD }));
  assert.equal(res.status, 204);
}

describe('account lifecycle (outbox, admin, sessions)', () => {
  let w;
  const stamp = Date.now();
  const email = `life-${stamp}@example.com`;
  const adminEmail = `boss-${stamp}@example.com`;

  before(async () => {
    w = await startWorker({
      vars: {
        ADMIN_EMAILS: adminEmail,
        // The role-guarded route: only `admin` passes.
        ROUTE_POLICIES: JSON.stringify([{ prefix: '/api/whoami', roles: ['admin'] }]),
      },
    });
    secrets.add(PASSWORD).add(NEW_PASSWORD).add(THIRD_PASSWORD);
  });
  after(async () => { await w?.cleanup(); });

  test('the walk: verify, reset, change, sessions, admin, disable, export, delete', async () => {
    const sub = await register(w, email);
    // Registration mailed a verification link; it works once.
    const [welcome] = await outbox(w, email);
    assert.equal(welcome.kind, 'verify');
    assert.equal(welcome.to, email);
    const verifyToken = linkToken(welcome, 'verify');
    let first = await tokens(w, email);
    assert.equal(claimsOf(first.access_token).email_verified, false);
    // The link alone is not enough: the account's password (or its session) must come with it.
    const bare = await fetch(`${w.url}/auth/email/verify`, json({ token: verifyToken }));
    assert.equal(bare.status, 403);
    assert.equal((await bare.json()).error, 'invalid_credentials');
    const guessed = await fetch(`${w.url}/auth/email/verify`, json({ token: verifyToken, password: 'not the password' }));
    assert.equal(guessed.status, 403);
    const stranger = await register(w, `other-${email}`).then(() => tokens(w, `other-${email}`));
    const foreign = await fetch(`${w.url}/auth/email/verify`, json({ token: verifyToken }, bearer(stranger.access_token)));
    assert.equal(foreign.status, 403, 'another account\'s session does not hold this one');
    assert.equal((await fetch(`${w.url}/auth/email/verify`, json({ token: verifyToken }, bearer(first.access_token)))).status, 204);
    const replay = await fetch(`${w.url}/auth/email/verify`, json({ token: verifyToken, password: PASSWORD }));
    assert.equal(replay.status, 400);
    assert.equal((await replay.json()).error, 'invalid_or_expired_token');
    first = await tokens(w, email);
    assert.equal(claimsOf(first.access_token).email_verified, true);
    const me = await (await fetch(`${w.url}/auth/me`, { headers: bearer(first.access_token) })).json();
    assert.equal(me.email_verified, true);
    const second = await tokens(w, email);

    // Forgot → mail → reset: every session ends, at the edge too.
    const forgot = await fetch(`${w.url}/auth/password/forgot`, json({ email }));
    assert.equal(forgot.status, 202);
    const resetMail = (await outbox(w, email, 2)).find((m) => m.kind === 'reset');
    const resetToken = linkToken(resetMail, 'reset');
    // Before the reset the old tokens pass authentication (403: the role policy, not a 401).
    assert.equal((await edge(w, first.access_token)).status, 403);
    assert.equal((await fetch(`${w.url}/auth/password/reset`, json({ token: resetToken, password: NEW_PASSWORD }))).status, 204);
    for (const old of [first, second]) {
      const res = await edge(w, old.access_token);
      assert.equal(res.status, 401, 'an access token of a session the reset ended is refused at the edge');
      assert.equal((await refresh(w, old.refresh_token)).status, 401);
    }
    assert.equal((await fetch(`${w.url}/auth/password/reset`, json({ token: resetToken, password: THIRD_PASSWORD }))).status, 400, 'single use');
    assert.equal((await login(w, email, PASSWORD)).status, 401, 'the old password is gone');

    // Change password: needs the current one; the other sessions end, this one stays.
    const mine = await tokens(w, email, NEW_PASSWORD, 'Desk/1.0');
    const other = await tokens(w, email, NEW_PASSWORD, 'Phone/2.0');
    const wrong = await fetch(`${w.url}/auth/password/change`, json({ current_password: 'not the password', new_password: THIRD_PASSWORD }, bearer(mine.access_token)));
    assert.equal(wrong.status, 403);
    assert.equal((await wrong.json()).error, 'invalid_credentials');
    const change = await fetch(`${w.url}/auth/password/change`, json({ current_password: NEW_PASSWORD, new_password: THIRD_PASSWORD }, bearer(mine.access_token)));
    assert.equal(change.status, 204);
    assert.equal((await edge(w, other.access_token)).status, 401, 'the other session is refused at the edge');
    assert.equal((await refresh(w, other.refresh_token)).status, 401);
    assert.equal((await edge(w, mine.access_token)).status, 403, 'this session stays (403: not an admin yet)');
    const kept = await refresh(w, mine.refresh_token);
    assert.equal(kept.status, 200);
    const current = await kept.json();
    secrets.add(current.access_token).add(current.refresh_token);

    // Sessions: list, then revoke one from another device.
    const laptop = await tokens(w, email, THIRD_PASSWORD, 'Laptop/3.0');
    const listed = await fetch(`${w.url}/auth/sessions`, { headers: bearer(current.access_token) });
    assert.equal(listed.status, 200);
    const { sessions } = await listed.json();
    assert.equal(sessions.length, 2, JSON.stringify(sessions));
    const laptopSid = claimsOf(laptop.access_token).sid;
    const here = sessions.find((s) => s.current);
    assert.equal(here.sid, claimsOf(current.access_token).sid);
    assert.equal(here.user_agent, 'Desk/1.0');
    assert.equal(sessions.find((s) => s.sid === laptopSid)?.user_agent, 'Laptop/3.0');
    const revoked = await fetch(`${w.url}/auth/sessions/${laptopSid}`, { method: 'DELETE', headers: bearer(current.access_token) });
    assert.equal(revoked.status, 204);
    assert.equal((await edge(w, laptop.access_token)).status, 401, 'the revoked session is refused at the edge');
    assert.equal((await refresh(w, laptop.refresh_token)).status, 401);
    const again = await fetch(`${w.url}/auth/sessions/${laptopSid}`, { method: 'DELETE', headers: bearer(current.access_token) });
    assert.equal(again.status, 404);

    // The first admin comes from ADMIN_EMAILS, once verified.
    await register(w, adminEmail);
    assert.deepEqual(claimsOf((await tokens(w, adminEmail)).access_token).roles, ['user'], 'unverified: no admin');
    await verifyEmail(w, adminEmail);
    const boss = await tokens(w, adminEmail);
    assert.deepEqual(claimsOf(boss.access_token).roles, ['user', 'admin']);
    const denied = await fetch(`${w.url}/admin/users?email=${encodeURIComponent(email)}`, { headers: bearer(current.access_token) });
    assert.equal(denied.status, 403);
    assert.equal((await denied.json()).error, 'forbidden');
    const found = await fetch(`${w.url}/admin/users?email=${encodeURIComponent(email)}`, { headers: bearer(boss.access_token) });
    assert.equal(found.status, 200);
    const view = await found.json();
    assert.equal(view.sub, sub);
    assert.equal(view.email_verified, true);
    assert.equal(view.sessions, 1);
    assert.ok(!JSON.stringify(view).includes('argon2'), 'no hash in the view');

    // The admin grants admin: after a refresh the role-guarded route admits the user.
    assert.equal((await edge(w, current.access_token)).status, 403);
    const granted = await fetch(`${w.url}/admin/users/${sub}`, json({ roles: ['user', 'admin'] }, bearer(boss.access_token), 'PATCH'));
    assert.equal(granted.status, 200);
    assert.deepEqual((await granted.json()).roles, ['user', 'admin']);
    const promoted = await (await refresh(w, current.refresh_token)).json();
    secrets.add(promoted.access_token).add(promoted.refresh_token);
    assert.deepEqual(claimsOf(promoted.access_token).roles, ['user', 'admin']);
    assert.equal((await edge(w, promoted.access_token)).status, 200);
    // A demoted admin's token stops working on the admin API at once (the admin's own account object
    // is asked on every call), though the token still says admin until it expires.
    assert.equal((await fetch(`${w.url}/admin/users/${sub}`, { headers: bearer(promoted.access_token) })).status, 200);
    const demoted = await fetch(`${w.url}/admin/users/${sub}`, json({ roles: ['user'] }, bearer(boss.access_token), 'PATCH'));
    assert.equal(demoted.status, 200);
    const late = await fetch(`${w.url}/admin/users/${sub}`, { headers: bearer(promoted.access_token) });
    assert.equal(late.status, 403);
    assert.equal((await late.json()).error, 'forbidden');

    // The user's own export, then the admin's, both before the deletion.
    const own = await fetch(`${w.url}/auth/me/export`, { headers: bearer(promoted.access_token) });
    assert.equal(own.status, 200);
    assert.match(own.headers.get('content-disposition') ?? '', /attachment/);
    const ownData = await own.json();
    assert.equal(ownData.account.email, email);
    assert.ok(ownData.sessions.length >= 1);

    // The admin disables the account: refused at the edge at once (this isolate forgets its cached
    // denylist read; other isolates within REVOCATION_CACHE_MS), and no login.
    const disabled = await fetch(`${w.url}/admin/users/${sub}`, json({ disabled: true }, bearer(boss.access_token), 'PATCH'));
    assert.equal(disabled.status, 200);
    assert.equal((await disabled.json()).disabled, true);
    assert.equal((await edge(w, promoted.access_token)).status, 401);
    assert.equal((await refresh(w, promoted.refresh_token)).status, 401);
    const refusedLogin = await login(w, email, THIRD_PASSWORD);
    assert.equal(refusedLogin.status, 403);
    assert.equal(refusedLogin.body.error, 'account_disabled');
    assert.equal((await login(w, email, 'a wrong password')).status, 401, 'a wrong password learns nothing');

    const exported = await fetch(`${w.url}/admin/users/${sub}/export`, { headers: bearer(boss.access_token) });
    assert.equal(exported.status, 200);
    assert.equal((await exported.json()).account.email, email);

    // Delete: the data is gone and nobody logs in with it.
    assert.equal((await fetch(`${w.url}/admin/users/${sub}`, { method: 'DELETE', headers: bearer(boss.access_token) })).status, 204);
    assert.equal((await login(w, email, THIRD_PASSWORD)).status, 401);
    assert.equal((await fetch(`${w.url}/admin/users/${sub}`, { headers: bearer(boss.access_token) })).status, 404);
    assert.equal((await fetch(`${w.url}/admin/users?email=${encodeURIComponent(email)}`, { headers: bearer(boss.access_token) })).status, 404);
    // Every admin call that reached the account is in the audit log, naming the admin.
    await sleep(200);
    const adminLines = w.logs.split('\n').filter((l) => l.includes('"admin.action"'));
    const bossLines = adminLines.filter((l) => l.includes(`"sub":"${claimsOf(boss.access_token).sub}"`));
    assert.ok(bossLines.length >= 8, `the boss's admin.action lines: ${bossLines.length}\n${adminLines.join('\n')}`);
    assert.ok(bossLines.some((l) => l.includes('"reason":"not_found"')), 'a call that found nothing is audited too');
    // The promoted user's own admin call, while they held the role, names them.
    assert.ok(adminLines.some((l) => l.includes(`"sub":"${sub}"`)), adminLines.join('\n'));
  });

  test('a user deletes their own account with the password; their tokens die at the edge', async () => {
    const self = `self-${Date.now()}@example.com`;
    await register(w, self);
    const t = await tokens(w, self);
    const wrong = await fetch(`${w.url}/auth/me`, json({ password: 'not my password' }, bearer(t.access_token), 'DELETE'));
    assert.equal(wrong.status, 403);
    assert.equal((await login(w, self)).status, 200, 'a wrong password deletes nothing');
    const gone = await fetch(`${w.url}/auth/me`, json({ password: PASSWORD }, bearer(t.access_token), 'DELETE'));
    assert.equal(gone.status, 204);
    assert.match(gone.headers.get('set-cookie') ?? '', /Max-Age=0/);
    assert.equal((await fetch(`${w.url}/auth/me`, { headers: bearer(t.access_token) })).status, 401);
    assert.equal((await login(w, self)).status, 401);
  });

  test('links: another account\'s, a forged one, the other kind, a replay: 400 and nothing changes', async () => {
    const a = `link-a-${Date.now()}@example.com`;
    const b = `link-b-${Date.now()}@example.com`;
    await register(w, a);
    await register(w, b);
    const tokenA = linkToken((await outbox(w, a))[0], 'verify');
    const tokenB = linkToken((await outbox(w, b))[0], 'verify');
    const [prefix, accountA, secretA] = tokenA.split('.');
    const accountB = tokenB.split('.')[1];
    const bad = [
      `${prefix}.${accountB}.${secretA}`, // A's secret sent to B's account
      `${prefix}.${accountA}.${Buffer.alloc(32).toString('base64url')}`, // forged secret
      `ghp1.${accountA}.${secretA}`, // the verify link as a reset link
      `${prefix}.${accountA}`,
      'x'.repeat(300),
    ];
    for (const token of bad) {
      const res = await fetch(`${w.url}/auth/email/verify`, json({ token }));
      assert.equal(res.status, 400, token);
      assert.equal((await res.json()).error, 'invalid_or_expired_token');
      const reset = await fetch(`${w.url}/auth/password/reset`, json({ token, password: NEW_PASSWORD }));
      assert.equal(reset.status, 400, token);
    }
    for (const who of [a, b]) {
      assert.equal(claimsOf((await tokens(w, who)).access_token).email_verified, false, 'no bad link verified anyone');
    }
    assert.equal((await login(w, a, NEW_PASSWORD)).status, 401, 'no bad link reset a password');
    // The right links still work (with the account's password).
    assert.equal((await fetch(`${w.url}/auth/email/verify`, json({ token: tokenA, password: PASSWORD }))).status, 204);
    assert.equal((await fetch(`${w.url}/auth/email/verify`, json({ token: tokenB, password: PASSWORD }))).status, 204);
  });

  test('forgot answers known and unknown emails alike: status, body and time (within 20 %)', async () => {
    // Each round: n registered emails and n unknown ones, interleaved. The answer does not wait for
    // the account object (it is asked after the answer), so both kinds should take the same time.
    // The machine is shared: a round is repeated (new emails) if load made it differ, up to three;
    // a difference the code makes would show in every round.
    const n = 16;
    const trimmedMean = (xs) => {
      const s = [...xs].sort((a, b) => a - b).slice(Math.floor(xs.length / 4), Math.ceil((xs.length * 3) / 4));
      return s.reduce((a, b) => a + b, 0) / s.length;
    };
    const rounds = [];
    for (let round = 0; round < 3; round++) {
      const stamp = `${Date.now()}-${round}`;
      const known = Array.from({ length: n }, (_, i) => `known-${i}-${stamp}@example.com`);
      const unknown = Array.from({ length: n }, (_, i) => `nobody-${i}-${stamp}@example.com`);
      for (const address of known) await register(w, address);
      const times = { known: [], unknown: [] };
      const bodies = new Set();
      for (let i = 0; i < n; i++) {
        for (const [kind, list] of (i % 2 ? [['known', known], ['unknown', unknown]] : [['unknown', unknown], ['known', known]])) {
          const t0 = performance.now();
          const res = await fetch(`${w.url}/auth/password/forgot`, json({ email: list[i] }));
          const text = await res.text();
          times[kind].push(performance.now() - t0);
          assert.equal(res.status, 202);
          bodies.add(text);
          // The work after the answer (the object, the mail) ends before the next request, so each
          // time is of one answer only, as a client pacing its requests would see it.
          await sleep(150);
        }
      }
      assert.equal(bodies.size, 1, `one body for all: ${[...bodies]}`);
      // Each known email got its reset mail (after the answer); no unknown one did.
      await outbox(w, known[n - 1], 2);
      assert.equal((await (await fetch(`${w.url}/dev/outbox?to=${encodeURIComponent(unknown[0])}`)).json()).mails.length, 0);
      const k = trimmedMean(times.known);
      const u = trimmedMean(times.unknown);
      const difference = Math.abs(k - u) / Math.max(k, u);
      rounds.push(`known ${k.toFixed(2)} ms, unknown ${u.toFixed(2)} ms (${(difference * 100).toFixed(1)} %)`);
      console.log(`# forgot round ${round + 1}: ${rounds.at(-1)}, trimmed means of ${n}`);
      if (difference < 0.2) return;
    }
    assert.fail(`every round differed by 20 % or more: ${rounds.join('; ')}`);
  });

  test('bad input on every new route: a clear 4xx and nothing changes', async () => {
    const who = `bad-${Date.now()}@example.com`;
    const sub = await register(w, who);
    const t = await tokens(w, who);
    const boss = await tokens(w, adminEmail);
    const h = bearer(t.access_token);
    const cases = [
      ['/auth/email/verify', json({})],
      ['/auth/email/verify', json({ token: 5 })],
      ['/auth/email/verify', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"token":"x"}' }],
      ['/auth/password/forgot', json({ email: 'not an email' })],
      ['/auth/password/forgot', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email": "a@b.co", "email": "c@d.co"}' }],
      ['/auth/password/reset', json({ token: 'x' })],
      ['/auth/password/reset', json({ token: 'x', password: 'short' })],
      ['/auth/password/change', json({ current_password: PASSWORD }, h)],
      ['/auth/password/change', json({ current_password: PASSWORD, new_password: 'short' }, h)],
      ['/auth/password/change', json({ current_password: PASSWORD, new_password: 'x'.repeat(257) }, h)],
      ['/auth/me', json({ user_metadata: 'not an object' }, h, 'PATCH')],
      ['/auth/me', json({ user_metadata: { big: 'x'.repeat(5000) } }, h, 'PATCH')],
      ['/auth/me', json({ user_metadata: {}, roles: ['admin'] }, h, 'PATCH')],
      ['/auth/me', json({}, h, 'DELETE')],
      [`/admin/users/${sub}`, json({}, bearer(boss.access_token), 'PATCH')],
      [`/admin/users/${sub}`, json({ roles: 'admin' }, bearer(boss.access_token), 'PATCH')],
      [`/admin/users/${sub}`, json({ roles: ['bad role!'] }, bearer(boss.access_token), 'PATCH')],
      [`/admin/users/${sub}`, json({ disabled: 'yes' }, bearer(boss.access_token), 'PATCH')],
      [`/admin/users/${sub}`, json({ roles: ['admin'], email: 'x@y.z' }, bearer(boss.access_token), 'PATCH')],
      [`/admin/users/${sub}`, json({ app_metadata: [1, 2] }, bearer(boss.access_token), 'PATCH')],
      ['/admin/users?email=not-an-email', { headers: bearer(boss.access_token) }],
      ['/admin/users', { headers: bearer(boss.access_token) }],
    ];
    for (const [path, init] of cases) {
      const res = await fetch(`${w.url}${path}`, init);
      assert.ok(res.status >= 400 && res.status < 500, `${init.method ?? 'GET'} ${path} ${init.body ?? ''}: ${res.status}`);
      const body = await res.json();
      assert.ok(body.error && body.error_description, `${path}: ${JSON.stringify(body)}`);
    }
    // Unknown and foreign ids: 404.
    const ghost = 'a'.repeat(64);
    assert.equal((await fetch(`${w.url}/admin/users/${ghost}`, { headers: bearer(boss.access_token) })).status, 404);
    assert.equal((await fetch(`${w.url}/auth/sessions/AAAAAAAAAAAAAAAAAAAAAA`, { method: 'DELETE', headers: h })).status, 404);
    // Nothing changed: same password, same roles, same metadata, the session lives.
    const view = await (await fetch(`${w.url}/admin/users/${sub}`, { headers: bearer(boss.access_token) })).json();
    assert.deepEqual(view.roles, ['user']);
    assert.deepEqual(view.user_metadata, {});
    assert.deepEqual(view.app_metadata, {});
    assert.equal(view.disabled, false);
    assert.equal((await refresh(w, t.refresh_token)).status, 200);
    assert.equal((await login(w, who)).status, 200);
    // Without a token, the Bearer routes are 401; the admin routes too.
    for (const path of ['/auth/sessions', '/auth/me/export', `/admin/users/${sub}`]) {
      assert.equal((await fetch(`${w.url}${path}`)).status, 401, path);
    }
  });

  test('no password, link token or session token appears in any log line', async () => {
    await sleep(300);
    assert.ok(secrets.size > 10);
    for (const secret of secrets) {
      assert.ok(!w.logs.includes(secret), `a secret in the logs: ${secret.slice(0, 12)}…`);
    }
  });
});

describe('mail by an HTTP API, EMAIL_VERIFICATION=required, and breached passwords', () => {
  let w;
  let api;
  const received = [];
  // A k-anonymity range API (HIBP's protocol) on loopback: it lists BREACHED, pads every answer,
  // and answers 500 for the range of OUTAGE (to see the check fail open).
  const BREACHED = 'password123456';
  const OUTAGE = 'a password the API cannot check';
  const sha1 = (text) => createHash('sha1').update(text).digest('hex').toUpperCase();
  const rangeRequests = [];

  before(async () => {
    api = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        if (req.url.startsWith('/range/')) {
          rangeRequests.push({ path: req.url, padding: req.headers['add-padding'] });
          const prefix = req.url.slice('/range/'.length);
          if (prefix === sha1(OUTAGE).slice(0, 5)) return res.writeHead(500).end();
          const lines = ['0000000000000000000000000000000000A:0', '0000000000000000000000000000000000B:0'];
          if (prefix === sha1(BREACHED).slice(0, 5)) lines.push(`${sha1(BREACHED).slice(5)}:1234`);
          return res.writeHead(200, { 'content-type': 'text/plain' }).end(lines.join('\r\n'));
        }
        received.push({ authorization: req.headers.authorization, path: req.url, body: JSON.parse(body) });
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"id":"1"}');
      });
    });
    await new Promise((r) => api.listen(0, '127.0.0.1', r));
    w = await startWorker({
      vars: {
        MAIL_TRANSPORT: 'http',
        MAIL_HTTP_URL: `http://127.0.0.1:${api.address().port}/send`,
        MAIL_HTTP_KEY: 'mail-api-key',
        MAIL_FROM: 'accounts@gatehouse.test',
        APP_URL: 'https://app.gatehouse.test',
        EMAIL_VERIFICATION: 'required',
        PASSWORD_BREACH_CHECK: 'hibp',
        HIBP_RANGE_URL: `http://127.0.0.1:${api.address().port}/range/`,
      },
    });
  });
  after(async () => {
    await w?.cleanup();
    await new Promise((r) => api?.close(r));
  });

  test('the verification mail goes to the API; login waits for it; the outbox does not exist', async () => {
    const email = `http-${Date.now()}@example.com`;
    await register(w, email);
    for (let i = 0; i < 100 && received.length === 0; i++) await sleep(50);
    assert.equal(received.length, 1);
    const [{ authorization, path, body }] = received;
    assert.equal(authorization, 'Bearer mail-api-key');
    assert.equal(path, '/send');
    assert.equal(body.to, email);
    assert.equal(body.from, 'accounts@gatehouse.test');
    assert.ok(body.subject && body.html);
    assert.match(body.text, /https:\/\/app\.gatehouse\.test\/#verify=ghv1\./);
    // Unverified: the right password gets 403 email_not_verified (no second mail within a minute).
    const early = await login(w, email);
    assert.equal(early.status, 403);
    assert.equal(early.body.error, 'email_not_verified');
    assert.equal((await login(w, email, 'a wrong password')).status, 401);
    const token = body.text.match(/#verify=([A-Za-z0-9._-]+)/)[1];
    assert.equal((await fetch(`${w.url}/auth/email/verify`, json({ token, password: PASSWORD }))).status, 204);
    assert.equal((await login(w, email)).status, 200);
    assert.equal(received.length, 1, 'one mail in all');
    assert.equal((await fetch(`${w.url}/dev/outbox`)).status, 404, 'no outbox unless MAIL_TRANSPORT=outbox');
    assert.ok(!w.logs.includes(token), 'the link is in no log line');
  });

  test('a breached password is refused at registration, reset and change; only 5 hex digits leave', async () => {
    const email = `breach-${Date.now()}@example.com`;
    const refused = await fetch(`${w.url}/auth/register`, json({ email, password: BREACHED }));
    assert.equal(refused.status, 400);
    assert.equal((await refused.json()).error, 'breached_password');
    assert.equal((await login(w, email, BREACHED)).status, 401, 'no account was made');
    // The API saw the five-digit prefix only, asked with padding.
    const asked = rangeRequests.at(-1);
    assert.equal(asked.path, `/range/${sha1(BREACHED).slice(0, 5)}`);
    assert.equal(asked.padding, 'true');
    assert.ok(rangeRequests.every((r) => !r.path.includes(sha1(BREACHED).slice(5, 15))));
    // The API failing does not stop a registration (fail open, logged).
    assert.equal((await fetch(`${w.url}/auth/register`, json({ email: `outage-${email}`, password: OUTAGE }))).status, 201);
    for (let i = 0; i < 100 && !/password breach check failed/.test(w.logs); i++) await sleep(50);
    assert.match(w.logs, /password breach check failed/, 'the failed check is logged');
    // A clean password registers; changing to a breached one is refused, nothing changes.
    await register(w, email);
    for (let i = 0; i < 100 && !received.some((m) => m.body.to === email); i++) await sleep(50);
    const mail = received.find((m) => m.body.to === email);
    const token = mail.body.text.match(/#verify=([A-Za-z0-9._-]+)/)[1];
    assert.equal((await fetch(`${w.url}/auth/email/verify`, json({ token, password: PASSWORD }))).status, 204);
    const t = await tokens(w, email);
    const change = await fetch(`${w.url}/auth/password/change`, json({ current_password: PASSWORD, new_password: BREACHED }, bearer(t.access_token)));
    assert.equal(change.status, 400);
    assert.equal((await change.json()).error, 'breached_password');
    assert.equal((await login(w, email)).status, 200, 'the password did not change');
  });
});

describe('mail by Cloudflare\'s send_email binding (Miniflare\'s local binding)', () => {
  let w;
  before(async () => {
    w = await startWorker({
      vars: { MAIL_TRANSPORT: 'send_email', MAIL_FROM: 'accounts@gatehouse.test' },
      bindings: { send_email: [{ name: 'SEND_EMAIL' }] },
    });
  });
  after(async () => { await w?.cleanup(); });

  test('the reset mail goes through the binding with its text and HTML parts, and its link works', async () => {
    const email = `binding-${Date.now()}@example.com`;
    await register(w, email);
    const forgot = await fetch(`${w.url}/auth/password/forgot`, json({ email }));
    assert.equal(forgot.status, 202);
    // Miniflare logs each message and stores its text part in a file it names.
    const texts = () => [...w.logs.matchAll(/Text: (\S+\.txt)/g)].map((m) => readFileSync(m[1], 'utf8'));
    for (let i = 0; i < 100 && !texts().some((t) => t.includes('#reset=')); i++) await sleep(50);
    const text = texts().find((t) => t.includes('#reset='));
    assert.ok(text, `a reset mail through the binding:\n${w.logs.slice(-2000)}`);
    assert.match(w.logs, /send_email binding called with MessageBuilder/);
    assert.match(w.logs, /HTML: \S+\.html/);
    const token = text.match(/#reset=([A-Za-z0-9._-]+)/)[1];
    assert.equal((await fetch(`${w.url}/auth/password/reset`, json({ token, password: NEW_PASSWORD }))).status, 204);
    assert.equal((await login(w, email, NEW_PASSWORD)).status, 200);
    assert.equal((await fetch(`${w.url}/dev/outbox`)).status, 404);
  });
});

describe('uniform registration tells the owner by mail; forgot behind Turnstile', () => {
  let w;
  let siteverify;
  before(async () => {
    siteverify = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        const form = new URLSearchParams(body);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ success: form.get('response') === 'good' }));
      });
    });
    await new Promise((r) => siteverify.listen(0, '127.0.0.1', r));
    w = await startWorker({
      vars: {
        REGISTRATION_MODE: 'uniform',
        TURNSTILE_SECRET: 'lifecycle-secret',
        TURNSTILE_VERIFY_URL: `http://127.0.0.1:${siteverify.address().port}/siteverify`,
      },
    });
  });
  after(async () => {
    await w?.cleanup();
    await new Promise((r) => siteverify?.close(r));
  });

  test('a taken email gets the same answer, and its owner a "you already have an account" mail', async () => {
    const email = `uniform-${Date.now()}@example.com`;
    const good = { 'cf-turnstile-response': 'good' };
    const first = await fetch(`${w.url}/auth/register`, json({ email, password: PASSWORD, ...good }));
    const second = await fetch(`${w.url}/auth/register`, json({ email, password: 'another passphrase', ...good }));
    const third = await fetch(`${w.url}/auth/register`, json({ email, password: 'and another one!', ...good }));
    assert.deepEqual([first.status, second.status, third.status], [202, 202, 202]);
    const bodies = new Set([await first.text(), await second.text(), await third.text()]);
    assert.equal(bodies.size, 1, 'one answer for a new and a taken email');
    const mails = await outbox(w, email, 2);
    assert.deepEqual(mails.map((m) => m.kind).sort(), ['exists', 'verify']);
    const notice = mails.find((m) => m.kind === 'exists');
    assert.match(notice.text, /already has an account/);
    assert.ok(notice.text.includes(`${'https://gatehouse.test'}/`), notice.text);
    assert.ok(!/#(verify|reset)=/.test(notice.text), 'the notice carries no link token');
    await sleep(500);
    assert.equal((await outbox(w, email, 2)).length, 2, 'the third attempt within a minute mails nothing more');
    const taken = await fetch(`${w.url}/auth/login`, json({ email, password: 'another passphrase', ...good }));
    assert.equal(taken.status, 401, 'the second registration changed nothing');
    const owner = await fetch(`${w.url}/auth/login`, json({ email, password: PASSWORD, ...good }));
    assert.equal(owner.status, 200);
  });

  test('forgot needs a Turnstile token when Turnstile is on', async () => {
    const email = `ts-forgot-${Date.now()}@example.com`;
    const none = await fetch(`${w.url}/auth/password/forgot`, json({ email }));
    assert.equal(none.status, 400);
    assert.equal((await none.json()).error, 'turnstile_required');
    const bad = await fetch(`${w.url}/auth/password/forgot`, json({ email, 'cf-turnstile-response': 'bad' }));
    assert.equal(bad.status, 403);
    assert.equal((await bad.json()).error, 'turnstile_failed');
    const good = await fetch(`${w.url}/auth/password/forgot`, json({ email, 'cf-turnstile-response': 'good' }));
    assert.equal(good.status, 202);
  });
});
