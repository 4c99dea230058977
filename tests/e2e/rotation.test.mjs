// Rotation of gatehouse's own signing keys, end to end against wrangler dev: the documented
// SIGNING_KEYS procedure across restarts (publish first, sign later, retire after the last token
// expired), and managed mode, where the key store generates and rotates keys on alarms.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, signToken } from './harness.mjs';
import { devKeys } from '../../scripts/dev-keys.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const json = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const bearer = (t) => ({ authorization: `Bearer ${t}` });
const kidOf = (token) => JSON.parse(Buffer.from(token.split('.')[0], 'base64url')).kid;
const PASSWORD = 'correct horse battery';

async function whoami(w, token) {
  const res = await w.fetch('/api/whoami', { headers: bearer(token) });
  await res.arrayBuffer();
  return res.status;
}

async function login(w, email) {
  const res = await w.fetch('/auth/login', json({ email, password: PASSWORD }));
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

async function jwksKids(w) {
  const res = await w.fetch('/.well-known/jwks.json');
  assert.equal(res.status, 200);
  return (await res.json()).keys.map((k) => k.kid);
}

describe('rotating SIGNING_KEYS across restarts', () => {
  let w;
  after(async () => { await w?.cleanup(); });

  test('publish first, sign later, retire after: old tokens keep working until the key is retired', async () => {
    const a = (await devKeys()).keys[0];
    const b = (await devKeys()).keys[0];
    w = await startWorker({ keys: { keys: [a] }, vars: { ACCESS_TTL_SECONDS: '600' } });
    const email = `rot-${Date.now()}@example.com`;
    assert.equal((await w.fetch('/auth/register', json({ email, password: PASSWORD }))).status, 201);
    const first = await login(w, email);
    assert.equal(kidOf(first.access_token), a.kid);

    // 1. Publish the new key second: it is in the JWKS, A still signs.
    w.reconfigure({ keys: { keys: [a, b] } });
    await w.restart();
    assert.deepEqual(await jwksKids(w), [a.kid, b.kid]);
    assert.equal(await whoami(w, first.access_token), 200);
    assert.equal(kidOf((await login(w, email)).access_token), a.kid);

    // 2. Once every verifier has had time to fetch it, sign with it: B first, A still accepted.
    w.reconfigure({ keys: { keys: [b, a] } });
    await w.restart();
    const second = await login(w, email);
    assert.equal(kidOf(second.access_token), b.kid);
    assert.equal(await whoami(w, second.access_token), 200);
    assert.equal(await whoami(w, first.access_token), 200, 'tokens signed by A keep working');
    // Refresh tokens are not bound to a key: a session started under A rotates to B.
    const rotated = await (await w.fetch('/auth/refresh', json({ refresh_token: first.refresh_token }))).json();
    assert.equal(kidOf(rotated.access_token), b.kid);

    // 3. After the last token A signed has expired (ACCESS_TTL + leeway), retire A.
    w.reconfigure({ keys: { keys: [b] } });
    await w.restart();
    assert.deepEqual(await jwksKids(w), [b.kid]);
    assert.equal(await whoami(w, first.access_token), 401, 'a retired key verifies nothing');
    assert.equal(await whoami(w, second.access_token), 200);
  });
});

describe('managed keys (KEY_MANAGEMENT=managed)', () => {
  let w;
  after(async () => { await w?.cleanup(); });

  test('the key store publishes ahead, rotates on its alarm, keeps old tokens valid, and survives a restart', async () => {
    const legacy = await devKeys();
    w = await startWorker({
      keys: legacy, // switching from SIGNING_KEYS: those stay published and accepted, but no longer sign
      vars: {
        KEY_MANAGEMENT: 'managed',
        KEY_ROTATION_SECONDS: '12',
        KEY_PUBLISH_SECONDS: '5',
        MANAGED_KEYS_CACHE_SECONDS: '2',
        ACCESS_TTL_SECONDS: '14',
        CLOCK_LEEWAY_SECONDS: '1',
        JWKS_COOLDOWN_SECONDS: '1',
      },
    });
    const legacyKids = legacy.keys.map((k) => k.kid);
    const managedKids = async () => (await jwksKids(w)).filter((k) => !legacyKids.includes(k));
    const email = `managed-${Date.now()}@example.com`;
    assert.equal((await w.fetch('/auth/register', json({ email, password: PASSWORD }))).status, 201);
    const first = await login(w, email);
    const k1 = kidOf(first.access_token);
    assert.ok(!legacyKids.includes(k1), 'a managed key signs');
    assert.deepEqual(await managedKids(), [k1]);
    assert.equal(await whoami(w, first.access_token), 200);
    // Tokens signed with the old SIGNING_KEYS are still accepted.
    assert.equal(await whoami(w, await signToken(legacy)), 200);

    const published = () => [...w.logs.matchAll(/"at":(\d+),"event":"key\.published","kid":"([^"]+)"/g)].map((m) => ({ kid: m[2], at: Number(m[1]) }));
    // Every date of the schedule counts from when the first key was published (its first use).
    const t1 = published().find((p) => p.kid === k1).at * 1000;
    // No request for a while: only the store's alarm can publish the next key (due at 12 − 5 s).
    await sleep(Math.max(0, t1 + 9500 - Date.now()));
    const asked = Date.now();
    const k2 = published().find((p) => p.kid !== k1);
    assert.ok(k2, `the alarm published the next key:\n${w.logs.slice(-2000)}`);
    assert.ok(k2.at * 1000 < asked, 'published before anyone asked');
    assert.deepEqual(await managedKids(), [k1, k2.kid], 'published ahead of signing');
    assert.equal(kidOf((await login(w, email)).access_token), k1, 'the next key does not sign yet');

    // A restart in the middle changes nothing: the ring is in the store's storage.
    await w.restart();
    assert.deepEqual(await managedKids(), [k1, k2.kid]);
    assert.equal(await whoami(w, first.access_token), 200);

    // Past the rotation: the new key signs, tokens of the old one keep working until they expire.
    await sleep(Math.max(0, t1 + 13000 - Date.now()));
    const second = await login(w, email);
    assert.equal(kidOf(second.access_token), k2.kid);
    assert.equal(await whoami(w, second.access_token), 200);
    const stillValid = Date.now() < (JSON.parse(Buffer.from(first.access_token.split('.')[1], 'base64url')).exp - 1) * 1000;
    if (stillValid) assert.equal(await whoami(w, first.access_token), 200, 'old tokens work until they expire');

    // k1 is retired after its last token expired (12 + 14 + 1 s after it started signing).
    await sleep(Math.max(0, t1 + 29000 - Date.now()));
    const kids = await managedKids();
    assert.ok(!kids.includes(k1), `k1 retired: ${kids}`);
    assert.ok(kids.includes(k2.kid));
  });
});
