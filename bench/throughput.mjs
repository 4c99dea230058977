// Benchmark (not a test): requests per second through the real workerd (Miniflare 4 from the wrangler
// npm package, one instance per worker, each on its own loopback port), with load from wrk, over
// several interleaved rounds. It prints medians, min–max and the ratios to jose and to the no-op
// workers, the CPU time each worker's workerd spent per request (from /proc, steadier than req/s
// on a shared machine), plus the wasm size and the cold start to the first verified 200. DPoP (RFC 9449): one
// bound token with a fresh proof per request (EdDSA and ES256 proof keys), against bearer tokens in
// the same rounds; the proofs are made just before each wrk run, so every one is fresh and used once.
//
//   node bench/throughput.mjs            (ROUNDS=3 SECONDS=4 CONNECTIONS=16 POOL=30000 to tune;
//                                        COLD_ROUNDS=8 cold starts of each worker, interleaved)
//   GATEHOUSE=full node bench/...        measures the all-in-one build (build/) instead of the edge
//                                        Worker (build-edge/, the default: what serves protected routes)
//   BASELINE_BUILD=/path/to/other/build node bench/throughput.mjs
//                                        also runs another gatehouse build (say, the commit before an
//                                        optimisation) in the same rounds, for a before/after ratio.
//                                        Its rows are measured after gatehouse's in every round, and
//                                        on 2026-12-04 the rows measured first did 10 to 25 % better
//                                        in both orders (docs/BENCHMARKS.md): run it twice, the builds
//                                        swapped, and compare the two runs' ratios.
//   DPOP_ONLY=1 node bench/throughput.mjs
//                                        only the DPoP figures and the bearer ones they are compared to.
//   COLD_ONLY=1 node bench/throughput.mjs
//                                        only the wasm sizes and the interleaved cold starts.
//
// Needs: build/ (bash scripts/build.sh), bench/noop-rs/build (built by scripts/bench.sh), wrk.
import { execFile, execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign as cryptoSign, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Miniflare } from 'miniflare';
import { calculateJwkThumbprint } from 'jose';
import { ROOT, freePort, workerModules } from '../tests/e2e/harness.mjs';
import { makeKey } from '../tests/e2e/dpop-proofs.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 4);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 16);
const POOL = Number(process.env.POOL ?? (process.env.COLD_ONLY ? 10 : 30000));
const COLD_ROUNDS = Number(process.env.COLD_ROUNDS ?? 8);
const FLAVOUR = process.env.GATEHOUSE === 'full' ? 'full' : 'edge';
const GATEHOUSE_BUILD = join(ROOT, FLAVOUR === 'full' ? 'build' : 'build-edge');
const DPOP_ONLY = Boolean(process.env.DPOP_ONLY);
export const ISSUER = 'https://bench.gatehouse.test';
export const AUDIENCE = 'bench';
export const OUT = join(ROOT, 'bench', 'out');
const run = promisify(execFile);
mkdirSync(OUT, { recursive: true });

// Keys: one Ed25519, one RSA 2048, as the worker's SIGNING_KEYS and the jose worker's JWKS.
export async function makeKeys() {
  const ed = generateKeyPairSync('ed25519');
  const rs = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const edJwk = { ...ed.privateKey.export({ format: 'jwk' }), alg: 'EdDSA', use: 'sig' };
  const rsJwk = { ...rs.privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig' };
  edJwk.kid = `ed-${(await calculateJwkThumbprint(edJwk)).slice(0, 12)}`;
  rsJwk.kid = `rs-${(await calculateJwkThumbprint(rsJwk)).slice(0, 12)}`;
  const pub = (j) => Object.fromEntries(Object.entries(j).filter(([k]) => !['d', 'p', 'q', 'dp', 'dq', 'qi'].includes(k)));
  return { ed, rs, edJwk, rsJwk, signing: { keys: [edJwk, rsJwk] }, jwks: { keys: [pub(edJwk), pub(rsJwk)] } };
}

const b64 = (x) => Buffer.from(x).toString('base64url');

/** A pool of distinct tokens (unique jti), signed with node:crypto for speed. `users` distinct
 *  subjects share them (0: every token its own user, so no per-user cache can help either). */
export function tokenPool(keys, alg, count, users = 1000) {
  const kid = alg === 'EdDSA' ? keys.edJwk.kid : keys.rsJwk.kid;
  const header = b64(JSON.stringify({ alg, typ: 'at+jwt', kid }));
  const now = Math.floor(Date.now() / 1000);
  const tokens = [];
  for (let i = 0; i < count; i++) {
    const claims = {
      iss: ISSUER, sub: users ? `user-${i % users}` : `solo-${alg}-${i}`, aud: AUDIENCE, iat: now, exp: now + 3600, jti: b64(randomBytes(16)),
      sid: users ? `sid-${i % users}` : `solo-sid-${i}`, client_id: 'bench', scope: 'api', roles: ['user'], email: 'bench@example.com',
    };
    const input = `${header}.${b64(JSON.stringify(claims))}`;
    const sig = alg === 'EdDSA'
      ? cryptoSign(null, Buffer.from(input), keys.ed.privateKey)
      : cryptoSign('sha256', Buffer.from(input), keys.rs.privateKey);
    tokens.push(`${input}.${b64(sig)}`);
  }
  return tokens;
}

/** The token files of each algorithm (`<prefix>-<alg>-<kind>.txt` in bench/out): `fresh` (POOL tokens
 *  of 1000 users), `unique` (POOL tokens, each its own user), `repeated` (one token). */
export function writePools(keys, prefix) {
  const pools = {};
  for (const alg of ['EdDSA', 'RS256']) {
    const write = (name, tokens) => { const f = join(OUT, `${prefix}-${alg}-${name}.txt`); writeFileSync(f, `${tokens.join('\n')}\n`); return f; };
    pools[alg] = {
      fresh: write('fresh', tokenPool(keys, alg, POOL)),
      unique: write('unique', tokenPool(keys, alg, POOL, 0)),
      repeated: write('repeated', tokenPool(keys, alg, 1)),
    };
  }
  return pools;
}

const WRK_LUA = (file) => `
local tokens = {}
for line in io.lines("${file}") do tokens[#tokens + 1] = line end
local i = math.random(#tokens)
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/api/whoami", { ["Authorization"] = "Bearer " .. tokens[i] })
end
`;

// DPoP: one bound token, and a file of proofs, each sent once (the proof's jti is single use).
const WRK_DPOP_LUA = (file, token) => `
local proofs = {}
for line in io.lines("${file}") do proofs[#proofs + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/whoami", { ["Authorization"] = "DPoP ${token}", ["DPoP"] = proofs[i] })
end
`;

/** An access token of the worker's EdDSA key bound to a DPoP key (`cnf.jkt`). */
function boundToken(keys, jkt) {
  const header = b64(JSON.stringify({ alg: 'EdDSA', typ: 'at+jwt', kid: keys.edJwk.kid }));
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: ISSUER, sub: 'dpop-user', aud: AUDIENCE, iat: now, exp: now + 3600, jti: b64(randomBytes(16)),
    sid: 'dpop-sid', client_id: 'bench', scope: 'api', roles: ['user'], email: 'bench@example.com', cnf: { jkt },
  };
  const input = `${header}.${b64(JSON.stringify(claims))}`;
  return `${input}.${b64(cryptoSign(null, Buffer.from(input), keys.ed.privateKey))}`;
}

/** Writes `count` fresh proofs of `dpop.key` for GET `url`/api/whoami with `dpop.token`; returns the file. */
function proofPool(dpop, url, count) {
  const htu = `${url}/api/whoami`;
  const proofs = [];
  for (let i = 0; i < count; i++) proofs.push(dpop.key.proof({ htu, token: dpop.token }));
  const file = join(OUT, `proofs-${dpop.key.alg}.txt`);
  writeFileSync(file, `${proofs.join('\n')}\n`);
  return file;
}

/** The wrk script that sends the tokens of `tokensFile` in turn, as bearer tokens to /api/whoami. */
export function writeWrkScript(tokensFile) {
  const script = join(OUT, `${tokensFile.split('/').pop()}.lua`);
  writeFileSync(script, WRK_LUA(tokensFile));
  return script;
}

/** The pid of the process listening on a loopback TCP port (a Miniflare instance's workerd), from
 *  /proc: the socket's inode in /proc/net/tcp{,6}, then the process holding it. */
function pidListeningOn(port) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = new Set();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(1) : [];
    for (const fields of lines.map((l) => l.trim().split(/\s+/))) if (fields[1]?.endsWith(hex) && fields[3] === '0A') inodes.add(fields[9]);
  }
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1])) return Number(pid);
      }
    } catch { /* a process that ended, or not ours */ }
  }
  return null;
}

const TICK_MS = (() => { try { return 1000 / Number(execFileSync('getconf', ['CLK_TCK'])); } catch { return 10; } })();

/** CPU time (user + system, ms) a process has used so far, from /proc/<pid>/stat. */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** One wrk run. With the pid of the worker's workerd, also the CPU time it spent per answered
 *  request (µs): unlike req/s, it does not move with what else the shared machine runs (a busy
 *  neighbour takes wall time from wrk and workerd alike, not CPU time from one request). */
async function wrk(url, { tokensFile, path = '/api/whoami', dpop, pid } = {}) {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency'];
  if (dpop) {
    const file = proofPool(dpop, url, POOL);
    const script = join(OUT, `proofs-${dpop.key.alg}.lua`);
    writeFileSync(script, WRK_DPOP_LUA(file, dpop.token));
    args.push('-s', script);
  } else if (tokensFile) {
    args.push('-s', writeWrkScript(tokensFile));
  }
  const cpuBefore = pid ? cpuMs(pid) : 0;
  const { stdout } = await run('wrk', [...args, url + path], { maxBuffer: 1 << 20 });
  const cpu = pid ? cpuMs(pid) - cpuBefore : NaN;
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  const p50 = /50%\s+([\d.]+\w+)/.exec(stdout)?.[1];
  if (non2xx > 0) throw new Error(`${url}${path}: ${non2xx} non-2xx responses\n${stdout}`);
  return { rps, p50, cpuUs: (cpu * 1000) / requests };
}

async function miniflare(options) {
  const port = await freePort();
  const mf = new Miniflare({ host: '127.0.0.1', port, compatibilityDate: '2026-04-20', ...options });
  await mf.ready;
  return { mf, url: `http://127.0.0.1:${port}` };
}

/** The gatehouse worker under test: the edge Worker with the public keys (PUBLIC_KEYS, what an edge
 *  of a split deployment verifies with), or the all-in-one build with SIGNING_KEYS. */
export function gatehouseOptions(keys, build) {
  const edge = FLAVOUR === 'edge';
  return {
    ...workerModules(build ?? GATEHOUSE_BUILD, { entry: edge ? 'edge.mjs' : 'entry.mjs' }),
    bindings: edge
      ? { ISSUER, AUDIENCE, PUBLIC_KEYS: JSON.stringify(keys.jwks) }
      : { ISSUER, AUDIENCE, SIGNING_KEYS: JSON.stringify(keys.signing) },
    ...(edge ? {} : { durableObjects: { ACCOUNTS: { className: 'Account', useSQLite: true } } }),
    kvNamespaces: ['DENYLIST'],
  };
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

async function main() {
  console.log(`gatehouse throughput benchmark — ${new Date().toISOString()}`);
  console.log(`gatehouse under test: the ${FLAVOUR === 'edge' ? 'edge Worker (build-edge/, PUBLIC_KEYS)' : 'all-in-one Worker (build/)'}`);
  console.log(`workerd via Miniflare ${JSON.parse(readFileSync(join(ROOT, 'node_modules/miniflare/package.json'))).version}, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, ${ROUNDS} interleaved rounds`);
  const keys = await makeKeys();
  const pools = writePools(keys, 'tokens');
  // The jose peer, bundled for workers.
  await run(join(ROOT, 'node_modules/.bin/esbuild'), [join(ROOT, 'bench/workers/jose.mjs'), '--bundle', '--format=esm',
    '--platform=neutral', '--main-fields=module,main', '--conditions=worker,browser', `--outfile=${join(OUT, 'jose-worker.mjs')}`, '--log-level=warning']);

  const cold = await coldStarts(keys, readFileSync(pools.EdDSA.repeated, 'utf8').trim());
  if (process.env.COLD_ONLY) {
    sizesAndColdStarts(cold);
    return;
  }

  const targets = [];
  const noopJs = await miniflare({ modules: true, script: readFileSync(join(ROOT, 'bench/workers/noop.mjs'), 'utf8') });
  targets.push({ name: 'no-op JavaScript worker', url: noopJs.url, path: '/', kind: 'noop-js' });
  // Built by scripts/bench.sh; a quick run (ONLY=...) may go without it.
  const noopRs = existsSync(join(ROOT, 'bench/noop-rs/build/index.js')) ? await miniflare({
    modules: [
      { type: 'ESModule', path: join(ROOT, 'bench/noop-rs/build/index.js') },
      { type: 'CompiledWasm', path: join(ROOT, 'bench/noop-rs/build/index_bg.wasm') },
    ],
    modulesRoot: join(ROOT, 'bench/noop-rs/build'),
  }) : null;
  if (noopRs) targets.push({ name: 'no-op workers-rs worker', url: noopRs.url, path: '/', kind: 'noop-rs' });
  const sameAnswer = await miniflare({ modules: true, script: readFileSync(join(ROOT, 'bench/workers/same-answer.mjs'), 'utf8') });
  targets.push({ name: 'JavaScript worker answering what whoami answers, verifying nothing', url: sameAnswer.url, path: '/', kind: 'same-answer' });
  const joseWith = (readDenylist, whoamiHeaders = false) => miniflare({
    modules: true,
    scriptPath: join(OUT, 'jose-worker.mjs'),
    bindings: { ISSUER, AUDIENCE, JWKS: JSON.stringify(keys.jwks), READ_DENYLIST: readDenylist ? '1' : '', WHOAMI_HEADERS: whoamiHeaders ? '1' : '' },
    kvNamespaces: ['DENYLIST'],
  });
  const jose = await joseWith(true);
  const joseNoKv = await joseWith(false);
  // Diagnostic, not a target: jose without KV answering with whoami's headers, so what is left
  // between it and gatehouse is verification and the crossing, not the answer.
  const joseNoKvWhoami = await joseWith(false, true);
  const gh = await miniflare(gatehouseOptions(keys));
  const baseline = process.env.BASELINE_BUILD ? await miniflare(gatehouseOptions(keys, process.env.BASELINE_BUILD)) : null;
  for (const alg of ['EdDSA', 'RS256']) {
    const p = pools[alg];
    targets.push({ name: `jose worker, ${alg}, fresh token, with the KV read`, url: jose.url, tokensFile: p.fresh, alg, kind: 'jose' });
    targets.push({ name: `jose worker, ${alg}, fresh token, no KV read`, url: joseNoKv.url, tokensFile: p.fresh, alg, kind: 'jose-nokv' });
    targets.push({ name: `jose worker, ${alg}, fresh token, no KV read, whoami's headers`, url: joseNoKvWhoami.url, tokensFile: p.fresh, alg, kind: 'jose-nokv-whoami' });
    targets.push({ name: `gatehouse, ${alg}, fresh token (1000 users)`, url: gh.url, tokensFile: p.fresh, alg });
    targets.push({ name: `gatehouse, ${alg}, fresh token and user (a KV read each)`, url: gh.url, tokensFile: p.unique, alg });
    targets.push({ name: `gatehouse, ${alg}, repeated token`, url: gh.url, tokensFile: p.repeated, alg });
    if (baseline) {
      targets.push({ name: `baseline build, ${alg}, fresh token (1000 users)`, url: baseline.url, tokensFile: p.fresh, alg });
      targets.push({ name: `baseline build, ${alg}, fresh token and user`, url: baseline.url, tokensFile: p.unique, alg });
      targets.push({ name: `baseline build, ${alg}, repeated token`, url: baseline.url, tokensFile: p.repeated, alg });
    }
  }
  // DPoP: a bound token per proof key, each request with a fresh proof (EdDSA: the fast path in
  // Rust; ES256: the full path, WebCrypto), beside the bearer figures of the same rounds.
  for (const alg of ['EdDSA', 'ES256']) {
    for (const [who, m] of [['gatehouse', gh], ['baseline build', baseline]]) {
      if (!m) continue;
      const key = makeKey(alg);
      targets.push({ name: `${who}, DPoP: bound EdDSA token, fresh ${alg} proof per request`, url: m.url, dpop: { key, token: boundToken(keys, key.jkt) }, alg: 'EdDSA', kind: `dpop-${alg}` });
    }
  }
  if (process.env.ONLY) {
    const only = new RegExp(process.env.ONLY);
    targets.splice(0, targets.length, ...targets.filter((t) => only.test(t.name)));
  }
  if (DPOP_ONLY) {
    const compared = /^(gatehouse|baseline build), EdDSA, (repeated token|fresh token \(1000 users\))$/;
    targets.splice(0, targets.length, ...targets.filter((t) => t.dpop || compared.test(t.name)));
  }
  // Warm every isolate, then interleave the rounds so drift in machine load hits all alike.
  for (const t of targets) {
    const headers = t.dpop
      ? { authorization: `DPoP ${t.dpop.token}`, dpop: t.dpop.key.proof({ htu: `${t.url}/api/whoami`, token: t.dpop.token }) }
      : t.tokensFile ? { authorization: `Bearer ${readFileSync(t.tokensFile, 'utf8').split('\n')[0]}` } : undefined;
    const res = await fetch(t.url + (t.path ?? '/api/whoami'), headers ? { headers } : undefined);
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${t.name}: warm-up answered ${res.status} ${text} ${res.headers.get('www-authenticate')}`);
  }
  for (const t of targets) {
    t.runs = [];
    t.pid = pidListeningOn(Number(new URL(t.url).port));
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of targets) t.runs.push(await wrk(t.url, { tokensFile: t.tokensFile, path: t.path, dpop: t.dpop, pid: t.pid }));
  }
  for (const m of [noopJs, noopRs, sameAnswer, jose, joseNoKv, joseNoKvWhoami, gh, baseline].filter(Boolean)) await m.mf.dispose();

  if (ROUNDS === 0) return countKvReads(keys, pools); // KV_ONLY: just the read count
  if (DPOP_ONLY) return dpopTable(targets);
  const med = (t) => median(t.runs.map((r) => r.rps));
  // A reference an ONLY= run left out gives no ratio (an empty cell).
  const of = (kind, alg) => { const t = targets.find((x) => x.kind === kind && (!alg || x.alg === alg)); return t ? med(t) : NaN; };
  const ratio = (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? '' : (a / b).toFixed(2));
  // CPU per request: the lower the better, so its ratios are the reference's over this worker's
  // (above 1: this worker spends less CPU per request than the reference).
  const cpu = (t) => median(t.runs.map((r) => r.cpuUs));
  const cpuOf = (kind, alg) => { const t = targets.find((x) => x.kind === kind && (!alg || x.alg === alg)); return t ? cpu(t) : NaN; };
  console.log('\n| worker | req/s median | min–max | p50 latency | × jose with KV read | × jose, no KV read | × no-op JS | × same answer, JS | workerd CPU µs/request | jose no KV ÷ this, by CPU | × jose no KV with whoami\'s headers |');
  console.log('|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const t of targets.filter((x) => !x.dpop)) {
    const rps = t.runs.map((r) => r.rps);
    const cells = t.alg ? [ratio(med(t), of('jose', t.alg)), ratio(med(t), of('jose-nokv', t.alg))] : ['', ''];
    const byCpu = t.alg && !Number.isNaN(cpu(t)) ? ratio(cpuOf('jose-nokv', t.alg), cpu(t)) : '';
    console.log(`| ${t.name} | ${med(t).toFixed(0)} | ${Math.min(...rps).toFixed(0)}–${Math.max(...rps).toFixed(0)} | ${t.runs[Math.floor(t.runs.length / 2)].p50} | ${cells.join(' | ')} | ${ratio(med(t), of('noop-js'))} | ${ratio(med(t), of('same-answer'))} | ${Number.isNaN(cpu(t)) ? '' : cpu(t).toFixed(0)} | ${byCpu} | ${t.alg ? ratio(med(t), of('jose-nokv-whoami', t.alg)) : ''} |`);
  }
  sizesAndColdStarts(cold);
  dpopTable(targets);
  await countKvReads(keys, pools);
}

/** The three release wasm sizes, and the cold starts against jose and the no-op floor. */
function sizesAndColdStarts(cold) {
  console.log('\nrelease wasm sizes:');
  for (const [what, dir] of [['edge Worker', 'build-edge'], ['issuer Worker', 'build-issuer'], ['all-in-one Worker', 'build']]) {
    try {
      const wasm = readFileSync(join(ROOT, dir, 'index_bg.wasm'));
      console.log(`- ${what} (${dir}/): ${(wasm.length / 1024).toFixed(0)} KiB, ${(gzipSync(wasm, { level: 9 }).length / 1024).toFixed(0)} KiB gzipped`);
    } catch { console.log(`- ${what}: not built`); }
  }
  console.log(`\ncold start, a new runtime to the first verified 200 (median of ${COLD_ROUNDS} interleaved rounds):`);
  const floor = cold['no-op JavaScript worker'];
  for (const [what, ms] of Object.entries(cold)) {
    const above = what === 'no-op JavaScript worker' ? '' : `, ${(ms - floor).toFixed(0)} ms above the no-op floor`;
    console.log(`- ${what}: ${ms.toFixed(0)} ms${above}`);
  }
  const ghCold = cold[`gatehouse (${FLAVOUR})`];
  const jo = cold['jose worker'];
  console.log(`- gatehouse ÷ jose: ${(ghCold / jo).toFixed(2)}; above the floor: ${((ghCold - floor) / (jo - floor)).toFixed(2)}`);
}

/** Cold starts, interleaved: a new runtime (Miniflare) for each worker in turn, timed to its first
 *  answer (a verified 200 for gatehouse and jose, `ok` for the no-op worker). Medians, ms. */
async function coldStarts(keys, token) {
  const kinds = {
    [`gatehouse (${FLAVOUR})`]: { options: () => gatehouseOptions(keys), path: '/api/whoami' },
    'jose worker': {
      options: () => ({ modules: true, scriptPath: join(OUT, 'jose-worker.mjs'), bindings: { ISSUER, AUDIENCE, JWKS: JSON.stringify(keys.jwks), READ_DENYLIST: '1' }, kvNamespaces: ['DENYLIST'] }),
      path: '/api/whoami',
    },
    'no-op JavaScript worker': { options: () => ({ modules: true, script: readFileSync(join(ROOT, 'bench/workers/noop.mjs'), 'utf8') }), path: '/' },
    ...(process.env.BASELINE_BUILD
      ? { 'baseline build': { options: () => gatehouseOptions(keys, process.env.BASELINE_BUILD), path: '/api/whoami' } }
      : {}),
  };
  const times = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
  // Where the time goes: the runtime up with the script loaded (wasm compiled), then the first answer.
  const phases = Object.fromEntries(Object.keys(kinds).map((k) => [k, { ready: [], first: [] }]));
  for (let round = 0; round < COLD_ROUNDS; round++) {
    for (const [kind, { options, path }] of Object.entries(kinds)) {
      const t0 = performance.now();
      const m = await miniflare(options());
      const t1 = performance.now();
      const res = await fetch(`${m.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      await res.arrayBuffer();
      const ms = performance.now() - t0;
      phases[kind].ready.push(t1 - t0);
      phases[kind].first.push(ms - (t1 - t0));
      await m.mf.dispose();
      if (res.status !== 200) throw new Error(`${kind}: cold start answered ${res.status}`);
      times[kind].push(ms);
    }
  }
  if (COLD_ROUNDS > 0) {
    console.log('\ncold start phases (medians): the runtime ready with the script loaded, then the first answer');
    for (const [kind, { ready, first }] of Object.entries(phases)) console.log(`- ${kind}: ready ${median(ready).toFixed(0)} ms, first answer ${median(first).toFixed(1)} ms`);
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

/** DPoP against bearer, in the same rounds: the same worker, the same EdDSA-signed token kind. */
function dpopTable(targets) {
  const med = (t) => median(t.runs.map((r) => r.rps));
  const ratio = (a, b) => (a / b).toFixed(2);
  console.log('\n| DPoP (RFC 9449) | req/s median | min–max | p50 latency | × bearer, repeated token | × bearer, fresh token (1000 users) |');
  console.log('|---|---:|---|---|---:|---:|');
  for (const t of targets.filter((x) => x.dpop || /EdDSA, (repeated token|fresh token \(1000 users\))$/.test(x.name))) {
    const who = t.name.startsWith('baseline build') ? 'baseline build' : 'gatehouse';
    const bearerRepeated = med(targets.find((x) => x.name === `${who}, EdDSA, repeated token`));
    const bearerFresh = med(targets.find((x) => x.name === `${who}, EdDSA, fresh token (1000 users)`));
    const rps = t.runs.map((r) => r.rps);
    const cells = t.dpop ? [ratio(med(t), bearerRepeated), ratio(med(t), bearerFresh)] : ['', ''];
    console.log(`| ${t.name} | ${med(t).toFixed(0)} | ${Math.min(...rps).toFixed(0)}–${Math.max(...rps).toFixed(0)} | ${t.runs[Math.floor(t.runs.length / 2)].p50} | ${cells.join(' | ')} |`);
  }
}

// The denylist as a counting wrapper around a real KV namespace: how many reads a request costs.
// The count is kept in the namespace itself (requests are sent one at a time while counting).
const KV_COUNTER = `
class CountingKv {
  constructor(env) { this.env = env; }
  async count() { const n = Number(await this.env.INNER.get('__reads') ?? 0); await this.env.INNER.put('__reads', String(n + 1)); }
  async get(key, options) { await this.count(); return this.env.INNER.get(key, options); }
  async getWithMetadata(key, options) { await this.count(); return this.env.INNER.getWithMetadata(key, options); }
  async put(key, value, options) { return this.env.INNER.put(key, value, options); }
  async delete(key) { return this.env.INNER.delete(key); }
  async list(options) { return this.env.INNER.list(options); }
}
export default function (env) { return new CountingKv(env); }
`;

async function countKvReads(keys, pools) {
  const port = await freePort();
  const mf = new Miniflare({
    host: '127.0.0.1', port, compatibilityDate: '2026-04-20',
    workers: [
      { name: 'gatehouse', ...gatehouseOptions(keys), kvNamespaces: undefined, wrappedBindings: { DENYLIST: { scriptName: 'kv-counter' } } },
      { name: 'kv-counter', modules: true, script: KV_COUNTER, kvNamespaces: ['INNER'] },
    ],
  });
  await mf.ready;
  const inner = await mf.getKVNamespace('INNER', 'kv-counter');
  const reads = async () => Number((await inner.get('__reads')) ?? 0);
  const worker = await mf.getWorker('gatehouse');
  const ask = async (token) => { const r = await worker.fetch('http://x/api/whoami', { headers: { authorization: `Bearer ${token}` } }); await r.arrayBuffer(); if (r.status !== 200) throw new Error(`answered ${r.status}`); };
  console.log('\nKV reads per verified request (counted by a wrapper around the DENYLIST namespace):');
  // Sent one at a time, within REVOCATION_CACHE_SECONDS: a user's second request reuses the read.
  for (const [what, file] of [['fresh token and user', pools.EdDSA.unique], ['fresh token, 1000 users (the first 300 tokens: 300 users)', pools.EdDSA.fresh], ['repeated token', pools.EdDSA.repeated]]) {
    const tokens = readFileSync(file, 'utf8').trim().split('\n').slice(0, 300);
    const before = await reads();
    const n = what === 'repeated token' ? 300 : tokens.length;
    for (let i = 0; i < n; i++) await ask(tokens[i % tokens.length]);
    const counted = (await reads()) - before;
    console.log(`- ${what}: ${(counted / n).toFixed(2)} per request (${counted} reads for ${n} requests)`);
  }
  await mf.dispose();
}

// Run as a script (bench/profile.mjs imports the helpers above without running it).
if (import.meta.url === pathToFileURL(process.argv[1]).href) await main();
