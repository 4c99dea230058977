// Profile (not a test): where the edge Worker's time goes on the fast path, from V8's own CPU
// profiler inside workerd (Miniflare's inspector), while wrk loads it as bench/throughput.mjs does.
// It answers "what limits this figure" for the issue-12 targets with a measurement, not a guess.
//
//   bash scripts/bench.sh profile        builds build-profile/ (the edge build with its name section
//                                        kept: CARGO_PROFILE_RELEASE_STRIP=false, wasm-opt -Oz -g) and
//                                        runs this script
//   node bench/profile.mjs               (after such a build) SECONDS=4 CONNECTIONS=16 POOL=30000
//   ONLY=RS256 node bench/profile.mjs   only the scenarios whose name matches
//   FIRST=1 node bench/profile.mjs       only the first request of a new isolate (a cold start's
//                                        "first answer" phase, bench/throughput.mjs's cold start split)
//
// For each scenario (EdDSA fresh tokens of 1000 users; EdDSA fresh token and user, a KV read each;
// one repeated token; RS256 fresh tokens) it prints the share of sampled time by kind (wasm, the
// entry's JavaScript, workerd's own work outside JavaScript "(program)", garbage collection, idle),
// then the functions with the most self time, and the gatehouse functions with the most inclusive
// time. The sampling profiler costs throughput itself, so its req/s are not the benchmark's.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Miniflare } from 'miniflare';
import WebSocket from 'ws';
import { ROOT, freePort } from '../tests/e2e/harness.mjs';

const SECONDS = Number(process.env.SECONDS ?? 4);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 16);
const BUILD = join(ROOT, process.env.PROFILE_BUILD ?? 'build-profile');
const run = promisify(execFile);

import { gatehouseOptions, makeKeys, writePools, writeWrkScript, OUT } from './throughput.mjs';

/** One Chrome DevTools Protocol session on workerd's inspector. */
async function inspect(inspectorPort) {
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  const target = targets.find((t) => !/internal/i.test(t.title ?? '')) ?? targets[0];
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject); });
  let next = 0;
  const waiting = new Map();
  socket.on('message', (data) => {
    const message = JSON.parse(data);
    if (message.id && waiting.has(message.id)) {
      const { resolve, reject } = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.error) reject(new Error(JSON.stringify(message.error)));
      else resolve(message.result);
    }
  });
  const send = (method, params = {}) => new Promise((resolve, reject) => {
    next += 1;
    waiting.set(next, { resolve, reject });
    socket.send(JSON.stringify({ id: next, method, params }));
  });
  return { send, close: () => socket.close() };
}

/** Self and inclusive sampled time per function, and per kind. */
function summarise(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  const label = (n) => {
    const f = n.callFrame;
    const name = f.functionName || '(anonymous)';
    if (f.url.startsWith('wasm://')) return `wasm ${name}`;
    if (!f.url) return name;
    return `${name} ${f.url.split('/').pop()}:${f.lineNumber + 1}`;
  };
  const kind = (n) => {
    const f = n.callFrame;
    if (f.url.startsWith('wasm://')) return 'wasm';
    if (['(idle)', '(program)', '(garbage collector)', '(root)'].includes(f.functionName)) return f.functionName;
    if (!f.url) return 'native (V8 builtins and workerd APIs called from JavaScript)';
    return 'JavaScript (the entry, the wasm-bindgen glue)';
  };
  const selfBy = new Map();
  const kinds = new Map();
  let total = 0;
  for (const [id, t] of self) {
    const n = byId.get(id);
    selfBy.set(label(n), (selfBy.get(label(n)) ?? 0) + t);
    kinds.set(kind(n), (kinds.get(kind(n)) ?? 0) + t);
    total += t;
  }
  // Inclusive: each function once per sample path (recursion counted once).
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map();
  for (const [id, t] of self) {
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const l = label(byId.get(at));
      if (seen.has(l)) continue;
      seen.add(l);
      inclusive.set(l, (inclusive.get(l) ?? 0) + t);
    }
  }
  return { total, selfBy, kinds, inclusive };
}

/** Prints a profile's shares: by kind, the most self time, the most inclusive time of ours. */
function report(title, profile, top) {
  const { total, selfBy, kinds, inclusive } = summarise(profile);
  console.log(`\n## ${title}`);
  console.log('\nby kind (self time):');
  for (const [k, t] of [...kinds].sort((a, b) => b[1] - a[1])) console.log(`  ${pct(t, total)}  ${k}`);
  const busy = total - (kinds.get('(idle)') ?? 0);
  console.log(`\nmost self time (share of the busy time, ${(busy / 1000).toFixed(1)} ms):`);
  for (const [l, t] of [...selfBy].filter(([l]) => l !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(t, busy)}  ${l.slice(0, 150)}`);
  console.log('\nmost inclusive time, wasm and the entry (share of the busy time):');
  for (const [l, t] of [...inclusive].filter(([l]) => l.startsWith('wasm ') || /\.m?js:/.test(l)).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(t, busy)}  ${l.slice(0, 150)}`);
}

const pct = (t, total) => `${((100 * t) / total).toFixed(1).padStart(5)} %`;

async function main() {
  const keys = await makeKeys();
  const pools = writePools(keys, 'profile');
  const port = await freePort();
  const inspectorPort = await freePort();
  // The edge Worker as bench/throughput.mjs runs it, but the profile build served under the names
  // the edge entry imports (../build-edge/index.js).
  const edge = gatehouseOptions(keys);
  const mf = new Miniflare({
    host: '127.0.0.1', port, inspectorPort, compatibilityDate: '2026-04-20',
    ...edge,
    modules: edge.modules.map((m) => (m.path.startsWith(join(ROOT, 'build-edge'))
      ? { ...m, contents: readFileSync(join(BUILD, m.path.slice(join(ROOT, 'build-edge').length + 1)), m.type === 'CompiledWasm' ? undefined : 'utf8') }
      : m)),
  });
  await mf.ready;
  const url = `http://127.0.0.1:${port}`;
  const first = readFileSync(pools.EdDSA.repeated, 'utf8').trim();
  if (!process.env.FIRST) {
    const warm = await fetch(`${url}/api/whoami`, { headers: { authorization: `Bearer ${first}` } });
    if (warm.status !== 200) throw new Error(`warm-up: ${warm.status} ${await warm.text()}`);
  }
  const session = await inspect(inspectorPort);
  await session.send('Profiler.enable');
  await session.send('Profiler.setSamplingInterval', { interval: 50 });
  if (process.env.FIRST) {
    // The first request of a new isolate (the cold start's "first answer" phase).
    await session.send('Profiler.setSamplingInterval', { interval: 20 });
    await session.send('Profiler.start');
    const t0 = performance.now();
    const res = await fetch(`${url}/api/whoami`, { headers: { authorization: `Bearer ${first}` } });
    await res.text();
    const took = performance.now() - t0;
    const { profile } = await session.send('Profiler.stop');
    writeFileSync(join(OUT, 'profile-first-request.cpuprofile'), JSON.stringify(profile));
    report(`the first request of a new isolate: ${res.status} in ${took.toFixed(1)} ms`, profile, 40);
    session.close();
    await mf.dispose();
    return;
  }
  const scenarios = [
    ['EdDSA, fresh token (1000 users)', pools.EdDSA.fresh],
    ['EdDSA, fresh token and user (a KV read each)', pools.EdDSA.unique],
    ['EdDSA, repeated token', pools.EdDSA.repeated],
    ['RS256, fresh token (1000 users)', pools.RS256.fresh],
  ];
  // ONLY='RS256' (a regular expression) profiles only the scenarios whose name it matches.
  const only = process.env.ONLY ? new RegExp(process.env.ONLY) : null;
  for (const [name, tokens] of scenarios.filter(([n]) => !only || only.test(n))) {
    const script = writeWrkScript(tokens);
    // Warm this scenario's code paths and the isolate's caches, then profile a second run.
    await run('wrk', ['-t1', `-c${CONNECTIONS}`, '-d1s', '-s', script, `${url}/api/whoami`]);
    await session.send('Profiler.start');
    const { stdout } = await run('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '-s', script, `${url}/api/whoami`]);
    const { profile } = await session.send('Profiler.stop');
    writeFileSync(join(OUT, `profile-${name.replace(/\W+/g, '-')}.cpuprofile`), JSON.stringify(profile));
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1];
    const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1];
    report(`${name}: ${rps} req/s under the profiler${non2xx ? ` (${non2xx} non-2xx!)` : ''}`, profile, 25);
  }
  session.close();
  await mf.dispose();
}

await main();
