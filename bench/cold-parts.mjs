// Cold start, taken apart (not a test): what the "ready" phase of bench/throughput.mjs's cold start
// (a new runtime, Miniflare, up with the script loaded) costs for each piece of a Worker's script.
// Each variant answers `ok` to its first request without verifying anything, so only loading differs:
//   - the no-op JavaScript worker (the floor);
//   - the same with an empty wasm module (what any wasm module costs, whatever its size);
//   - the same with the edge's wasm imported as a module but never instantiated (the module's
//     compilation in workerd);
//   - the same with the all-in-one wasm (2.3 times the bytes: does compiling follow the size?);
//   - the edge's wasm-bindgen glue (build-edge/index.js) imported, which instantiates the wasm;
//   - the edge Worker's whole entry (js/front.mjs in front of the glue), still answering `ok`.
// Rounds are interleaved; medians, ms. `ROUNDS=` (default 10). Needs build-edge/ and build/.
//
//   node bench/cold-parts.mjs
import { Miniflare } from 'miniflare';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { ROOT } from '../tests/e2e/harness.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 10);
const EDGE = join(ROOT, 'build-edge');
const FULL = join(ROOT, 'build');
const main = (contents) => ({ type: 'ESModule', path: join(ROOT, 'cold-parts-main.mjs'), contents });
const wasm = (build) => ({ type: 'CompiledWasm', path: join(build, 'index_bg.wasm') });
const glue = { type: 'ESModule', path: join(EDGE, 'index.js') };

const variants = {
  'no-op JavaScript worker': [main("export default { fetch() { return new Response('ok'); } };")],
  '+ an empty wasm module (8 bytes), compiled': [
    main("import m from './empty.wasm'; export default { fetch() { return new Response(m ? 'ok' : ''); } };"),
    { type: 'CompiledWasm', path: join(ROOT, 'empty.wasm'), contents: Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0) },
  ],
  '+ the edge wasm, compiled, not instantiated': [
    main("import m from './build-edge/index_bg.wasm'; export default { fetch() { return new Response(m ? 'ok' : ''); } };"),
    wasm(EDGE),
  ],
  '+ the all-in-one wasm, compiled, not instantiated': [
    main("import m from './build/index_bg.wasm'; export default { fetch() { return new Response(m ? 'ok' : ''); } };"),
    wasm(FULL),
  ],
  '+ the edge glue (index.js), the wasm instantiated': [
    main("import G from './build-edge/index.js'; export default { fetch() { return new Response(G ? 'ok' : ''); } };"),
    glue,
    wasm(EDGE),
  ],
  '+ the edge entry (js/front.mjs) made': [
    main("import G from './build-edge/index.js'; import { front } from './js/front.mjs'; const f = front(G); export default { fetch() { return new Response(f ? 'ok' : ''); } };"),
    { type: 'ESModule', path: join(ROOT, 'js', 'front.mjs') },
    glue,
    wasm(EDGE),
  ],
};

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const ready = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, modules] of Object.entries(variants)) {
    const t0 = performance.now();
    const mf = new Miniflare({ modules, modulesRoot: ROOT, compatibilityDate: '2026-04-20' });
    await mf.ready;
    ready[name].push(performance.now() - t0);
    const res = await mf.dispatchFetch('http://cold-parts.test/');
    if ((await res.text()) !== 'ok') throw new Error(`${name}: answered ${res.status}`);
    await mf.dispose();
  }
}
const floor = median(ready['no-op JavaScript worker']);
console.log(`cold start's "ready" phase, taken apart (medians of ${ROUNDS} interleaved rounds):`);
for (const [name, times] of Object.entries(ready)) {
  const m = median(times);
  console.log(`- ${name}: ${m.toFixed(0)} ms${name === 'no-op JavaScript worker' ? '' : `, ${(m - floor).toFixed(0)} ms above the floor`}`);
}
