// Benchmark (not a test): login timing and argon2id cost in the real runtime (wrangler dev / workerd).
// For each argon2id parameter set it prints the median wall time of
//   - a login with a wrong password (a registered account: one hash check),
//   - a login with an unknown email (the dummy hash check),
//   - a login with a password too short to be checked (the same worker → object round trip with no
//     hash: the baseline; a fresh email each, so the failure it counts slows nothing measured),
// over N tries each (a fresh email per try, so throttling never applies), and the argon2id cost per
// hash as the median difference to the baseline. workerd stops its clock during compute, so time is
// measured from the client on loopback.
import { startWorker } from '../tests/e2e/harness.mjs';

const N = Number(process.env.N ?? 25);
const SETS = (process.env.ARGON2_SETS ?? '19456:2,12288:3,9216:4,7168:5,47104:1')
  .split(',')
  .map((s) => s.split(':').map(Number));
const json = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const fmt = (x) => x.toFixed(1).padStart(7);

async function timed(w, path, body, expect) {
  const t0 = performance.now();
  const res = await w.fetch(path, json(body));
  await res.arrayBuffer();
  const ms = performance.now() - t0;
  if (res.status !== expect) throw new Error(`${path} answered ${res.status}, expected ${expect}`);
  return ms;
}

console.log(`gatehouse login benchmark — ${new Date().toISOString()}, ${N} tries per figure, wall ms (median, min–max)`);
console.log('   m KiB  t | wrong password          | unknown email           | no-hash baseline  | argon2id/hash | unknown/wrong');
for (const [m, t] of SETS) {
  const w = await startWorker({ vars: { ARGON2_MEMORY_KIB: String(m), ARGON2_ITERATIONS: String(t) } });
  try {
    const run = Date.now();
    const accounts = [];
    for (let i = 0; i < N; i++) {
      const email = `bench-${run}-${i}@example.com`;
      await timed(w, '/auth/register', { email, password: 'correct horse' }, 201);
      accounts.push(email);
    }
    // Warm the isolate (the dummy hash is made on first use).
    await timed(w, '/auth/login', { email: `warm-${run}@example.com`, password: 'wrong password' }, 401);
    const wrong = []; const unknown = []; const base = [];
    for (let i = 0; i < N; i++) {
      // Interleaved, so drift in machine load hits all three alike.
      wrong.push(await timed(w, '/auth/login', { email: accounts[i], password: 'wrong password' }, 401));
      unknown.push(await timed(w, '/auth/login', { email: `ghost-${run}-${i}@example.com`, password: 'wrong password' }, 401));
      base.push(await timed(w, '/auth/login', { email: `short-${run}-${i}@example.com`, password: 'short' }, 401));
    }
    const range = (xs) => `${fmt(median(xs))} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`.padEnd(23);
    console.log(`${String(m).padStart(8)} ${String(t).padStart(2)} | ${range(wrong)} | ${range(unknown)} | ${range(base).slice(0, 17)} | ${fmt(median(wrong) - median(base))}       | ${(median(unknown) / median(wrong)).toFixed(2)}`);
  } finally {
    await w.cleanup();
  }
}
