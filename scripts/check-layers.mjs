// Checks the module graph of src/ (run by scripts/test.sh; `node scripts/check-layers.mjs`):
// - no cycles: file modules never import each other in a loop (through `crate::` or `super::` paths);
// - layers point one way: pure modules never mention the runtime (`worker`, `web_sys`, `js_sys`,
//   `wasm_bindgen`) nor import the glue or the routers; `web` (shared glue) imports neither router;
//   the edge never imports the issuer and the issuer never imports the edge (the entry in lib.rs
//   wires them together);
// - the platform floor (`whatwg`: URLs parsed by the runtime's `URL` in a Worker, by the url crate
//   natively; `casing`: Unicode case mapping by the runtime's strings, by core natively) may
//   mention the runtime, only inside `cfg(target_arch = "wasm32")` items, and imports nothing from
//   the crate, so every layer may use it.
// A `mod tests` block is part of its file. Exits non-zero with every finding listed.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

/** Pure layers: directory or file module names (first path segment under src/). */
const PURE = new Set(['jwt', 'config', 'error', 'routes', 'policy', 'revocation', 'issuers', 'account', 'password',
  'input', 'oauth', 'rotation', 'audit', 'mfa', 'health', 'metrics', 'config_check', 'limits', 'mail']);
/** The platform floor: below the pure layers, the runtime behind `cfg(target_arch = "wasm32")`. */
const PLATFORM = new Set(['whatwg', 'casing', 'decimal']);
/** What each top-level module may not import. */
const FORBIDDEN = {
  pure: ['web', 'edge', 'issuer'],
  web: ['edge', 'issuer'],
  edge: ['issuer'],
  issuer: ['edge'],
};
const RUNTIME = /\b(worker|web_sys|js_sys|wasm_bindgen|wasm_bindgen_futures)::/;

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : name.endsWith('.rs') ? [path] : [];
  });
}

/** The module path of a file: src/a/b.rs -> a::b, src/a/mod.rs -> a, src/lib.rs -> (crate). */
function moduleOf(file) {
  const parts = relative(SRC, file).replace(/\.rs$/, '').split('/');
  if (parts.at(-1) === 'mod' || parts.at(-1) === 'lib') parts.pop();
  return parts.join('::');
}

/** Source without comments, string and character literals (so text never counts as an import). */
function code(text) {
  let out = '';
  let i = 0;
  const ident = (c) => c !== undefined && /[A-Za-z0-9_]/.test(c);
  while (i < text.length) {
    const c = text[i];
    const next = text[i + 1];
    if (c === '/' && next === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      let depth = 0;
      do {
        if (text[i] === '/' && text[i + 1] === '*') { depth++; i += 2; } else if (text[i] === '*' && text[i + 1] === '/') { depth--; i += 2; } else i++;
      } while (depth > 0 && i < text.length);
    } else if ((c === 'r' || c === 'b') && !ident(text[i - 1]) && /^b?r#*"/.test(text.slice(i, i + 40))) {
      const m = text.slice(i).match(/^b?r(#*)"/);
      const end = text.indexOf(`"${m[1]}`, i + m[0].length);
      out += '""';
      i = end < 0 ? text.length : end + 1 + m[1].length;
    } else if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      out += '""';
    } else if (c === "'" && (text[i + 2] === "'" || (next === '\\' && /^'\\(.|x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\})'/.test(text.slice(i, i + 12))))) {
      const m = text.slice(i).match(/^'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|.)'/);
      i += m ? m[0].length : 1;
      out += "' '";
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const modules = new Map(files(SRC).map((f) => [moduleOf(f), f]));

/** The longest known module a path (`a::b::c`) falls in. */
function resolve(path) {
  const parts = path.split('::');
  while (parts.length) {
    const name = parts.join('::');
    if (modules.has(name)) return name;
    parts.pop();
  }
  return null;
}

/** Expands `use a::{b, c::{d}}` style groups into full paths. */
function expand(prefix, body) {
  const out = [];
  let depth = 0;
  let start = 0;
  const items = [];
  for (let i = 0; i < body.length; i++) {
    if (body[i] === '{') depth++;
    else if (body[i] === '}') depth--;
    else if (body[i] === ',' && depth === 0) { items.push(body.slice(start, i)); start = i + 1; }
  }
  items.push(body.slice(start));
  for (let item of items) {
    item = item.trim();
    if (!item) continue;
    const brace = item.indexOf('{');
    if (brace >= 0) {
      const head = item.slice(0, brace).replace(/::$/, '');
      out.push(...expand(prefix ? `${prefix}::${head}` : head, item.slice(brace + 1, item.lastIndexOf('}'))));
    } else {
      const name = item.split(/\s+as\s+/)[0].trim();
      out.push(name === 'self' ? prefix : prefix ? `${prefix}::${name}` : name);
    }
  }
  return out;
}

/** Absolute `crate::` paths a file refers to. */
function references(module, text) {
  const src = code(text);
  const paths = [];
  for (const m of src.matchAll(/\buse\s+([^;]+);/g)) {
    const body = m[1].replace(/\s+/g, ' ');
    const brace = body.indexOf('{');
    paths.push(...(brace >= 0 ? expand(body.slice(0, brace).replace(/::\s*$/, ''), body.slice(brace + 1, body.lastIndexOf('}'))) : [body.split(/\s+as\s+/)[0]]));
  }
  for (const m of src.matchAll(/\b((?:crate|super)(?:::\w+)+)/g)) paths.push(m[1]);
  const self = module.split('::').filter(Boolean);
  return paths.flatMap((p) => {
    p = p.trim();
    if (p.startsWith('crate::')) return [p.slice(7)];
    if (p.startsWith('super::')) {
      // `super` of a::b is a, whether b is a file (a/b.rs) or a directory (a/b/mod.rs).
      let base = self.slice(0, -1);
      let rest = p.slice(7);
      while (rest.startsWith('super::')) { base = base.slice(0, -1); rest = rest.slice(7); }
      return [[...base, rest].filter(Boolean).join('::')];
    }
    return [];
  });
}

const edges = new Map();
const findings = [];
for (const [module, file] of modules) {
  const text = readFileSync(file, 'utf8');
  const top = module.split('::')[0];
  const targets = new Set();
  for (const path of references(module, text)) {
    const target = resolve(path);
    if (!target || target === module) continue;
    targets.add(target);
  }
  edges.set(module, targets);
  const layer = PURE.has(top) ? 'pure' : top;
  for (const target of targets) {
    const targetTop = target.split('::')[0];
    if ((FORBIDDEN[layer] ?? []).includes(targetTop)) {
      findings.push(`${relative(ROOT, file)}: ${layer === 'pure' ? `pure module ${module}` : module} imports ${target}`);
    }
  }
  if (PLATFORM.has(top)) {
    for (const target of targets) findings.push(`${relative(ROOT, file)}: platform module ${module} imports ${target}`);
    // Each mention of the runtime must be in an item under `#[cfg(target_arch = "wasm32")]`: the
    // item is the text from the attribute to the next blank line.
    const items = code(text).split(/\n\s*\n/);
    for (const item of items) {
      const match = item.match(RUNTIME);
      if (match && !/#\[cfg\(target_arch = ""\)\]/.test(item)) {
        findings.push(`${relative(ROOT, file)}: platform module ${module} mentions the runtime (${match[0]}) outside a wasm32-only item`);
      }
    }
  }
  if (layer === 'pure' && module !== '') {
    const src = code(text);
    const match = src.match(RUNTIME) ?? src.match(/\buse\s+(worker|web_sys|js_sys|wasm_bindgen)\b/);
    if (match) findings.push(`${relative(ROOT, file)}: pure module ${module} mentions the runtime (${match[0]})`);
  }
}

// Cycles: Tarjan's strongly connected components over file modules (lib.rs, the entry, excluded).
let index = 0;
const stack = [];
const state = new Map();
const cycles = [];
function connect(v) {
  state.set(v, { index, low: index, on: true });
  index++;
  stack.push(v);
  for (const w of edges.get(v) ?? []) {
    if (w === '') continue;
    if (!state.has(w)) {
      connect(w);
      state.get(v).low = Math.min(state.get(v).low, state.get(w).low);
    } else if (state.get(w).on) {
      state.get(v).low = Math.min(state.get(v).low, state.get(w).index);
    }
  }
  if (state.get(v).low === state.get(v).index) {
    const component = [];
    let w;
    do { w = stack.pop(); state.get(w).on = false; component.push(w); } while (w !== v);
    if (component.length > 1) cycles.push(component);
  }
}
for (const v of edges.keys()) if (v !== '' && !state.has(v)) connect(v);
for (const c of cycles) {
  const detail = c.map((m) => `${m} -> {${[...edges.get(m)].filter((t) => c.includes(t)).join(', ')}}`).join('; ');
  findings.push(`import cycle among ${c.length} modules: ${detail}`);
}

if (findings.length) {
  console.error(`check-layers: ${findings.length} finding(s)`);
  for (const f of findings) console.error(`  ${f}`);
  process.exit(1);
}
console.log(`check-layers: ${modules.size} modules, ${[...edges.values()].reduce((n, s) => n + s.size, 0)} imports, no cycles, layers respected`);
