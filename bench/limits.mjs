// Load test (not a test of the suite): the abuse limits under wrangler dev with production's limits
// (wrangler.toml [env.production]'s [[ratelimits]]), bounded. It prints:
//   1. ATTEMPTS (1000) wrong passwords against one account from 100 other addresses, 20 at a time,
//      then the owner's login from the address it logged in from before: it must get in;
//   2. one address spraying ATTEMPTS (1000) unknown accounts, 20 at a time: how many passed before
//      429 too_many_requests (the limit is 30 a minute);
//   3. 20 legitimate users from 20 other addresses registering and logging in meanwhile: all pass.
// Every request names its client with CF-Connecting-IP (wrangler dev passes it through).
// `node bench/limits.mjs` (after `bash scripts/build.sh`); ATTEMPTS=… to change the load.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { startWorker, ROOT } from '../tests/e2e/harness.mjs';

const ATTEMPTS = Number(process.env.ATTEMPTS ?? 1000);
const WIDTH = 20;
const PASSWORD = 'correct horse battery';
const production = parseToml(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')).env.production.ratelimits;
const post = (ip, body) => ({
  method: 'POST', headers: { 'content-type': 'application/json', 'cf-connecting-ip': ip }, body: JSON.stringify(body),
});
const run = Date.now();

/** Runs `count` tasks `width` at a time; returns the statuses/codes in order and the wall time. */
async function pool(count, width, task) {
  const out = new Array(count);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < count) {
      const i = next++;
      out[i] = await task(i);
    }
  }));
  return { out, ms: performance.now() - t0 };
}

const tally = (xs) => Object.entries(xs.reduce((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {}))
  .map(([k, v]) => `${k} ×${v}`).join(', ');

const w = await startWorker({ ratelimits: production });
try {
  const call = async (path, ip, body) => {
    const res = await w.fetch(path, post(ip, body));
    const answer = await res.json();
    return res.status === 200 || res.status === 201 ? String(res.status) : `${res.status} ${answer.error}`;
  };
  console.log(`gatehouse limits load — ${new Date().toISOString()}, production limits: ${production.map((l) => `${l.name} ${l.simple.limit}/${l.simple.period}s`).join(', ')}`);

  const victim = `victim-${run}@example.com`;
  await call('/auth/register', '203.0.113.1', { email: victim, password: PASSWORD });
  console.log(`owner's first login (203.0.113.5): ${await call('/auth/login', '203.0.113.5', { email: victim, password: PASSWORD })}`);

  const legit = pool(20, 4, async (i) => {
    const ip = `198.51.100.${i + 1}`;
    const address = `legit-${run}-${i}@example.com`;
    const registered = await call('/auth/register', ip, { email: address, password: PASSWORD });
    const loggedIn = await call('/auth/login', ip, { email: address, password: PASSWORD });
    return `${registered}/${loggedIn}`;
  });
  const attack = await pool(ATTEMPTS, WIDTH, (i) => call('/auth/login', `192.0.2.${i % 100}`, { email: victim, password: `guess ${i}` }));
  console.log(`1. ${ATTEMPTS} wrong passwords against one account from 100 addresses: ${tally(attack.out)} (${(attack.ms / 1000).toFixed(1)} s)`);
  console.log(`   then the owner from its known address: ${await call('/auth/login', '203.0.113.5', { email: victim, password: PASSWORD })}`);
  console.log(`   and a stranger with the right password: ${await call('/auth/login', '192.0.2.250', { email: victim, password: PASSWORD })}`);

  const spray = await pool(ATTEMPTS, WIDTH, (i) => call('/auth/login', '192.0.2.254', { email: `spray-${run}-${i}@example.com`, password: 'wrong password!' }));
  const firstLimited = spray.out.findIndex((s) => s.startsWith('429'));
  console.log(`2. one address spraying ${ATTEMPTS} accounts: ${tally(spray.out)}; the first 429 at attempt ${firstLimited + 1} (${(spray.ms / 1000).toFixed(1)} s)`);
  const users = await legit;
  console.log(`3. 20 legitimate users from other addresses meanwhile (register/login): ${tally(users.out)}`);
} finally {
  await w.cleanup();
}
