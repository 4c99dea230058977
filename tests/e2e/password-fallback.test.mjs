// The Free plan's password fallback in workerd (docs/DEPLOY.md "Plans"): with PASSWORD_HASH=pbkdf2 a
// registration stores a PBKDF2-HMAC-SHA-256 hash made by the runtime's WebCrypto, which is the
// standard function (recomputed here with Node's OpenSSL from the hash read out of the account
// object's SQLite storage), with 100,000 iterations; logins check it; unknown emails are refused the
// same way. Back on argon2id (a restart with PASSWORD_HASH=argon2id on the same state), the next login
// replaces it with an argon2id hash and says so in the audit log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { pbkdf2Sync } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startWorker } from './harness.mjs';

const json = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const PASSWORD = 'correct horse battery';
const EMAIL = `pbkdf2-${Date.now()}@example.com`;

/** Every account document in the persisted Durable Object storage (python3's sqlite3 reads it). */
function accountDocs(persist) {
  const files = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.sqlite')) files.push(path);
    }
  };
  walk(persist);
  const script = `import sqlite3, sys, json
for path in sys.argv[1:]:
    try:
        for (doc,) in sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("SELECT doc FROM account"):
            print(doc)
    except sqlite3.Error:
        pass`;
  const r = spawnSync('python3', ['-c', script, ...files], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

let worker;
before(async () => { worker = await startWorker({ vars: { PASSWORD_HASH: 'pbkdf2' } }); });
after(async () => { await worker?.cleanup(); });

test('PBKDF2 by WebCrypto: the standard function, 100,000 iterations, checked at login', async () => {
  assert.equal((await worker.fetch('/auth/register', json({ email: EMAIL, password: PASSWORD }))).status, 201);
  const doc = accountDocs(worker.persist).find((d) => d.account?.email === EMAIL);
  assert.ok(doc, 'the account document');
  const m = doc.account.password.match(/^\$pbkdf2-sha256\$i=(\d+),l=32\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/);
  assert.ok(m, doc.account.password.replace(/\$[^$]+$/, '$…'));
  assert.equal(Number(m[1]), 100_000);
  const salt = Buffer.from(m[2], 'base64');
  assert.equal(salt.length, 16);
  assert.equal(pbkdf2Sync(PASSWORD, salt, 100_000, 32, 'sha256').toString('base64').replace(/=+$/, ''), m[3],
    'WebCrypto\'s derivation is PBKDF2-HMAC-SHA-256 as OpenSSL computes it');

  const times = {};
  for (const [name, body, status] of [
    ['right', { email: EMAIL, password: PASSWORD }, 200],
    ['wrong', { email: EMAIL, password: `${PASSWORD}!` }, 401],
    ['unknown', { email: `nobody-${Date.now()}@example.com`, password: PASSWORD }, 401],
  ]) {
    const t0 = performance.now();
    const res = await worker.fetch('/auth/login', json(body));
    times[name] = performance.now() - t0;
    assert.equal(res.status, status, `${name}: ${await res.clone().text()}`);
    if (status === 401) assert.equal((await res.json()).error, 'invalid_credentials');
    else await res.arrayBuffer();
  }
  console.log(`# login round trips with PBKDF2 (ms, wrangler dev): ${JSON.stringify(Object.fromEntries(Object.entries(times).map(([k, v]) => [k, Math.round(v)])))}`);
});

test('back on argon2id, the next login replaces the PBKDF2 hash', async () => {
  worker.reconfigure({ vars: { PASSWORD_HASH: 'argon2id' } });
  await worker.restart();
  const res = await worker.fetch('/auth/login', json({ email: EMAIL, password: PASSWORD }));
  assert.equal(res.status, 200, await res.clone().text());
  await res.arrayBuffer();
  const doc = accountDocs(worker.persist).find((d) => d.account?.email === EMAIL);
  assert.match(doc.account.password, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  await new Promise((r) => setTimeout(r, 300));
  const rehashed = [...worker.logs.matchAll(/\{"kind":"audit"[^\n]*\}/g)].map((l) => JSON.parse(l[0])).filter((l) => l.event === 'password.rehashed');
  assert.equal(rehashed.length, 1);
  assert.equal(rehashed[0].reason, 'pbkdf2_to_argon2id');
  assert.equal(rehashed[0].route, 'login');
  const again = await worker.fetch('/auth/login', json({ email: EMAIL, password: PASSWORD }));
  assert.equal(again.status, 200);
  await again.arrayBuffer();
});
