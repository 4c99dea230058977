// Benchmark (not a test): the cost of one token verification, EdDSA and RS256, three ways in one run:
// - gatehouse's pure verification path (`jwt::verify_access_token`) compiled to wasm32 and optimised
//   as the worker is (release, LTO, wasm-opt -O), run in V8 (Node, wasm-bindgen --target web;
//   bench/verify-v8);
// - panva/jose's `jwtVerify` in the same V8, with the same checks (issuer, audience, typ, exp);
// - the same Rust path natively (criterion, `cargo bench --bench verify`).
// Every token is fresh (a pool of distinct ones), so no cache helps. Medians of 5 rounds.
//
//   node bench/verify.mjs          (POOL=2000 ROUNDS=5 to tune; SKIP_NATIVE=1 to skip criterion)
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign as cryptoSign, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { ROOT } from '../tests/e2e/harness.mjs';

const POOL = Number(process.env.POOL ?? 2000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const ISSUER = 'https://bench.gatehouse.test';
const AUDIENCE = 'bench';
const OUT = join(ROOT, 'bench', 'out', 'verify-v8');
const CRATE = join(ROOT, 'bench', 'verify-v8');

function build() {
  const env = { ...process.env, PATH: `${process.env.HOME}/.cargo/bin:${process.env.PATH}` };
  execFileSync('cargo', ['build', '--release', '--target', 'wasm32-unknown-unknown', '--quiet'], { cwd: CRATE, env, stdio: 'inherit' });
  mkdirSync(OUT, { recursive: true });
  execFileSync('wasm-bindgen', ['--target', 'web', '--out-dir', OUT,
    join(CRATE, 'target', 'wasm32-unknown-unknown', 'release', 'gatehouse_verify_v8.wasm')], { env, stdio: 'inherit' });
  // The same wasm-opt pass worker-build applies to the worker (`-O`).
  const wasm = join(OUT, 'gatehouse_verify_v8_bg.wasm');
  execFileSync(join(ROOT, 'node_modules', '.bin', 'wasm-opt'), ['-O', '--enable-bulk-memory', '--enable-nontrapping-float-to-int',
    '--enable-sign-ext', '--enable-mutable-globals', wasm, '-o', wasm], { env, stdio: 'inherit' });
}

const b64 = (x) => Buffer.from(x).toString('base64url');
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

function keysAndTokens() {
  const ed = generateKeyPairSync('ed25519');
  const rs = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwks = { keys: [
    { ...ed.publicKey.export({ format: 'jwk' }), kid: 'ed', alg: 'EdDSA', use: 'sig' },
    { ...rs.publicKey.export({ format: 'jwk' }), kid: 'rs', alg: 'RS256', use: 'sig' },
  ] };
  const now = Math.floor(Date.now() / 1000);
  const pool = (alg) => Array.from({ length: POOL }, (_, i) => {
    const header = b64(JSON.stringify({ alg, typ: 'at+jwt', kid: alg === 'EdDSA' ? 'ed' : 'rs' }));
    const claims = b64(JSON.stringify({ iss: ISSUER, sub: `user-${i}`, aud: AUDIENCE, iat: now, exp: now + 3600, jti: b64(randomBytes(16)), sid: 's', scope: 'api', roles: ['user'] }));
    const input = `${header}.${claims}`;
    const sig = alg === 'EdDSA' ? cryptoSign(null, Buffer.from(input), ed.privateKey) : cryptoSign('sha256', Buffer.from(input), rs.privateKey);
    return `${input}.${b64(sig)}`;
  });
  return { jwks, now, tokens: { EdDSA: pool('EdDSA'), RS256: pool('RS256') } };
}

async function time(fn, tokens) {
  const runs = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (const t of tokens) await fn(t);
    runs.push(((performance.now() - t0) * 1000) / tokens.length);
  }
  return median(runs);
}

function native() {
  if (process.env.SKIP_NATIVE) return {};
  const env = { ...process.env, PATH: `${process.env.HOME}/.cargo/bin:${process.env.PATH}` };
  const out = execFileSync('cargo', ['bench', '--quiet', '--bench', 'verify', '--', '--noplot'], { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 1 << 24 });
  const result = {};
  const micros = (name) => {
    const m = new RegExp(`${name}\\s+time:\\s+\\[\\S+ \\S+ (\\S+) (\\S+)`).exec(out);
    return m ? Number(m[1]) * ({ ns: 0.001, 'µs': 1, us: 1, ms: 1000 }[m[2]] ?? NaN) : undefined;
  };
  for (const alg of ['EdDSA', 'RS256']) result[alg] = micros(`verify_access_token ${alg}`);
  result.dalek = micros('ed25519-dalek verify');
  return result;
}

async function main() {
  build();
  const glue = await import(pathToFileURL(join(OUT, 'gatehouse_verify_v8.js')).href);
  glue.initSync({ module: readFileSync(join(OUT, 'gatehouse_verify_v8_bg.wasm')) });
  const { Verifier } = glue;
  const { jwks, now, tokens } = keysAndTokens();
  const gatehouse = new Verifier(JSON.stringify(jwks), ISSUER, AUDIENCE);
  const joseKeys = createLocalJWKSet(jwks);
  const jose = (t) => jwtVerify(t, joseKeys, { issuer: ISSUER, audience: AUDIENCE, typ: 'at+jwt', algorithms: ['EdDSA', 'RS256'], clockTolerance: 30 });
  const nativeUs = native();
  console.log(`gatehouse verification micro-benchmark — ${new Date().toISOString()}`);
  console.log(`Node ${process.version} (V8 ${process.versions.v8}), ${POOL} fresh tokens per round, median of ${ROUNDS} rounds\n`);
  console.log('| alg | native Rust (criterion) | gatehouse wasm in V8 | jose in V8 | wasm ÷ native | jose ÷ wasm |');
  console.log('|---|---:|---:|---:|---:|---:|');
  // EdDSA only: no wasm build links a pure-Rust RSA since issue 12 (the Workers check RS256 with
  // WebCrypto, which bench/throughput.mjs measures in workerd), so this build refuses RS256 tokens.
  for (const alg of ['EdDSA']) {
    for (const t of tokens[alg].slice(0, 50)) { // warm up, and check both accept every token
      if (!gatehouse.verify(t, now)) throw new Error(`gatehouse refused a ${alg} token`);
      await jose(t);
    }
    const wasm = await time((t) => gatehouse.verify(t, now), tokens[alg]);
    const js = await time(jose, tokens[alg]);
    const nat = nativeUs[alg];
    console.log(`| ${alg} | ${nat ? `${nat.toFixed(1)} µs` : 'n/a'} | ${wasm.toFixed(1)} µs | ${js.toFixed(1)} µs | ${nat ? (wasm / nat).toFixed(2) : 'n/a'} | ${(js / wasm).toFixed(2)} |`);
  }
  if (nativeUs.dalek) {
    const wasm = await time((t) => gatehouse.verify(t, now), tokens.EdDSA);
    console.log(`\nEdDSA in V8 ÷ native ed25519-dalek's own verify (${nativeUs.dalek.toFixed(1)} µs, signature only): ${(wasm / nativeUs.dalek).toFixed(2)}`);
  }
  console.log('\n(RS256: the Workers check it with WebCrypto, measured in workerd by bench/throughput.mjs.)');
}

await main();
