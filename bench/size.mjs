// What each crate costs in a Worker's wasm (`bash scripts/bench.sh size`, or `node bench/size.mjs
// [edge|issuer|full]` after the tools are set up). Builds the flavour's wasm (crates/worker, the
// cdylib the Workers ship, so after LTO) with the release profile but keeps the name section (strip
// off, into target/size/ so the shipped build is untouched), then reads the binary itself: each
// function body is charged to the crate its name starts with (demangled; for `<T as Trait>::f`, the
// crate of T), the data segments are one line. The Ed25519 verification and signing code reports as
// gatehouse_ed25519 (crates/ed25519), apart from gatehouse's own. Sizes are of the wasm before wasm-bindgen and wasm-opt, so the total is larger than the
// shipped file; the shares are what matters. Prints a table, biggest first.
//   DETAIL=gatehouse node bench/size.mjs edge   also one crate's code by module, and its largest functions
//   DATA=1 (or DATA=40: and the 40 longest)      what the data segments hold: text (panic locations'
//                                                source paths among it) against tables
//   SIZE_NO_BUILD=1                              reads the last build instead of building
//   SHIPPED=1                                    reads the wasm as shipped instead: after wasm-bindgen and
//                                                `wasm-opt -Oz` (as scripts/build.sh), names kept
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const flavour = process.argv[2] ?? 'edge';
const features = { edge: ['--no-default-features', '--features', 'edge'], issuer: ['--no-default-features', '--features', 'issuer'], full: [] }[flavour];
if (!features) throw new Error(`unknown flavour ${flavour} (edge, issuer, full)`);
const targetDir = new URL('../target/size/', import.meta.url).pathname;
if (!process.env.SIZE_NO_BUILD) execFileSync('cargo', ['build', '--release', '--lib', '-p', 'gatehouse-worker', '--target', 'wasm32-unknown-unknown', ...features], {
  stdio: 'inherit',
  env: { ...process.env, CARGO_TARGET_DIR: targetDir, CARGO_PROFILE_RELEASE_STRIP: 'false' },
});
let built = `${targetDir}wasm32-unknown-unknown/release/gatehouse_worker.wasm`;
if (process.env.SHIPPED) {
  const out = `${targetDir}shipped`;
  execFileSync('wasm-bindgen', ['--target', 'module', '--keep-debug', '--out-dir', out, '--out-name', 'index', built], { stdio: 'inherit' });
  const bin = new URL('../node_modules/.bin/wasm-opt', import.meta.url).pathname;
  execFileSync(bin, ['-Oz', '--debuginfo', `${out}/index_bg.wasm`, '-o', `${out}/opt.wasm`], { stdio: 'inherit' });
  built = `${out}/opt.wasm`;
}
const wasm = readFileSync(built);

let pos = 0;
const u32 = () => {
  let result = 0, shift = 0, byte;
  do { byte = wasm[pos++]; result += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80);
  return result;
};
const name = () => { const n = u32(); const s = wasm.toString('utf8', pos, pos + n); pos += n; return s; };

pos = 8;
let importedFuncs = 0;
const bodies = [];
const names = new Map();
let customBytes = 0, dataRange = [0, 0];
while (pos < wasm.length) {
  const id = wasm[pos++];
  const size = u32();
  const end = pos + size;
  if (id === 2) {
    for (let n = u32(); n > 0; n--) {
      name(); name();
      const kind = wasm[pos++];
      if (kind === 0) { u32(); importedFuncs++; }
      else if (kind === 1) { pos++; const flags = u32(); u32(); if (flags & 1) u32(); }
      else if (kind === 2) { const flags = u32(); u32(); if (flags & 1) u32(); }
      else if (kind === 3) { pos += 2; }
      else throw new Error(`import kind ${kind}`);
    }
  } else if (id === 10) {
    for (let n = u32(); n > 0; n--) { const len = u32(); bodies.push(len); pos += len; }
  } else if (id === 11) {
    dataRange = [pos, end];
  } else if (id === 0) {
    const section = name();
    if (section === 'name') {
      while (pos < end) {
        const sub = wasm[pos++];
        const subSize = u32();
        const subEnd = pos + subSize;
        if (sub === 1) for (let n = u32(); n > 0; n--) { const idx = u32(); names.set(idx, name()); }
        pos = subEnd;
      }
    } else customBytes += size;
  }
  pos = end;
}

/** The crate a (possibly mangled) function name belongs to. */
function crateOf(raw) {
  let s = raw;
  // v0 mangling: the first crate root, `C` + optional disambiguator `s…_` + length + name.
  if (s.startsWith('_R')) {
    const m = /C(?:s[0-9A-Za-z]*_)?(\d+)/.exec(s);
    if (m) return s.slice(m.index + m[0].length, m.index + m[0].length + Number(m[1]));
  }
  if (s.startsWith('_ZN')) {
    const m = /^_ZN(\d+)/.exec(s);
    s = s.slice(m[0].length, m[0].length + Number(m[1]));
    if (s.startsWith('_$LT$')) s = s.slice(5);
  }
  s = s.replace(/^[<&*]+/, '').replace(/^(dyn|mut)( |\$u20\$)/, '');
  if (/^__wbg|^__wbindgen/.test(s)) return 'wasm_bindgen (generated glue)';
  if (!/^(_ZN|_R|<)/.test(raw) && !raw.includes('::')) return '(compiler builtins, libc: memcpy, __multi3, …)';
  // `<T as core::fmt::Debug>::fmt`, `<f64 as …>`: a generic or primitive self type; the trait's
  // crate is the better guess.
  const generic = /^([A-Za-z_][A-Za-z0-9_]*)(?: as |\$u20\$as\$u20\$)([A-Za-z_][A-Za-z0-9_]*)(?:::|\.\.)/.exec(s);
  if (generic && !generic[1].includes('::') && /^([A-Z]|[iuf](8|16|32|64|128|size)|bool|str|char)$/.test(generic[1])) return generic[2];
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(::|\$u20\$|\.\.|$)/.exec(s);
  return m ? m[1] : '(other)';
}

const perCrate = new Map();
bodies.forEach((len, i) => {
  const n = names.get(importedFuncs + i);
  const crate = n ? crateOf(n) : "(unnamed)";
  const e = perCrate.get(crate) ?? { bytes: 0, fns: 0 };
  e.bytes += len; e.fns += 1;
  perCrate.set(crate, e);
});
perCrate.set('(data segments: strings, tables)', { bytes: dataRange[1] - dataRange[0], fns: 0 });
const total = [...perCrate.values()].reduce((a, e) => a + e.bytes, 0);
console.log(`${flavour} Worker, wasm ${process.env.SHIPPED ? 'as shipped (names kept)' : 'before wasm-bindgen and wasm-opt'}: ${(wasm.length / 1024).toFixed(0)} KiB ` +
  `(${(gzipSync(wasm, { level: 9 }).length / 1024).toFixed(0)} KiB gzipped, of which names and other custom sections ${(customBytes / 1024).toFixed(0)} KiB)`);
console.log('\n| crate | code + data, KiB | share | functions |\n|---|---:|---:|---:|');
for (const [crate, e] of [...perCrate].sort((a, b) => b[1].bytes - a[1].bytes)) {
  if (e.bytes < 2048) continue;
  console.log(`| ${crate} | ${(e.bytes / 1024).toFixed(1)} | ${((100 * e.bytes) / total).toFixed(1)}% | ${e.fns || ''} |`);
}
const small = [...perCrate.values()].filter((e) => e.bytes < 2048);
console.log(`| ${small.length} more, each under 2 KiB | ${(small.reduce((a, e) => a + e.bytes, 0) / 1024).toFixed(1)} | | |`);

// `DETAIL=<crate>`: that crate's code grouped by the crate and the next two segments of each name (a
// module and a submodule, or a module and a type; a trait impl's whole name), and its largest
// functions, to find what a flavour links that it does not call.
const detail = process.env.DETAIL;
if (detail) {
  /** The path segments of a function's name (legacy-mangled or demangled), generics dropped. */
  const segments = (raw) => {
    if (raw.startsWith('_ZN')) {
      const out = [];
      for (let at = 3; /\d/.test(raw[at] ?? '');) {
        const len = /^\d+/.exec(raw.slice(at))[0];
        at += len.length;
        out.push(raw.slice(at, at + Number(len)));
        at += Number(len);
      }
      return out;
    }
    return raw.replace(/<[^<>]*>/g, '').split('::');
  };
  const perModule = new Map();
  const largest = [];
  bodies.forEach((len, i) => {
    const n = names.get(importedFuncs + i);
    if (!n || crateOf(n) !== detail) return;
    const path = segments(n).filter((seg) => !/^h[0-9a-f]{16}$/.test(seg));
    const start = Math.max(0, path.indexOf(detail));
    const module = path.slice(start, start + 3).join('::');
    const e = perModule.get(module) ?? { bytes: 0, fns: 0 };
    e.bytes += len; e.fns += 1;
    perModule.set(module, e);
    largest.push([len, path.join('::')]);
  });
  console.log(`\n| ${detail}, by module | KiB | functions |\n|---|---:|---:|`);
  for (const [module, e] of [...perModule].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 60)) {
    console.log(`| ${module} | ${(e.bytes / 1024).toFixed(1)} | ${e.fns} |`);
  }
  console.log(`\n| ${detail}, largest functions | bytes |\n|---|---:|`);
  for (const [len, name] of largest.sort((a, b) => b[0] - a[0]).slice(0, 40)) console.log(`| ${name} | ${len} |`);
}

// `DATA=1`: what the data segments hold: runs of printable text (source paths of panic locations
// among them) against the rest (tables, constants).
if (process.env.DATA) {
  const data = wasm.subarray(...dataRange);
  const runs = data.toString('latin1').match(/[\x20-\x7e\n]{6,}/g) ?? [];
  const text = runs.reduce((a, r) => a + r.length, 0);
  const paths = runs.filter((r) => /\.rs/.test(r));
  console.log(`\ndata segments ${(data.length / 1024).toFixed(1)} KiB: printable runs of 6+ ${(text / 1024).toFixed(1)} KiB ` +
    `(${runs.length} runs; those naming a .rs file ${(paths.reduce((a, r) => a + r.length, 0) / 1024).toFixed(1)} KiB), the rest ` +
    `${((data.length - text) / 1024).toFixed(1)} KiB`);
  for (const r of runs.sort((a, b) => b.length - a.length).slice(0, Number(process.env.DATA) > 1 ? Number(process.env.DATA) : 0)) console.log(JSON.stringify(r.slice(0, 160)));
}
