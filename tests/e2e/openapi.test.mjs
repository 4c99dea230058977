// The OpenAPI document (www/openapi.json, served at /openapi.json) kept true against the running
// worker: its paths are the routes of src/edge/mod.rs, and every (path, method, status) it lists is
// produced by a scenario below, every status a scenario gets is listed, every error code a response
// lists is produced, every JSON body validates against the documented schema (Ajv, JSON Schema
// 2020-12) and every required header is there (and every documented header that is there matches).
//
// Runtimes: A, B, C and E are wrangler dev (A: the main configuration, with the local outbox of
// wrangler.toml and an admin from ADMIN_EMAILS, B: ORIGIN_URL set to a loopback origin, no
// MAIL_TRANSPORT, and PASSWORD_BREACH_CHECK=hibp against a loopback range API, C: a bad ROUTE_POLICIES, so every worker route answers 500, E: DPOP_MODE=required
// with server nonces, for `use_dpop_nonce` and DPoP-Nonce; F: rate limits of one request a minute,
// Turnstile against a loopback siteverify and REGISTRATION_MODE=uniform). D is Miniflare running the
// same build in workerd with faults that wrangler dev cannot inject (the approach of
// faults.test.mjs): a DENYLIST whose reads fail for keys containing "fail", and ACCOUNTS and KEYS
// Durable Objects that throw, for the 503 answers of the issuer, OAuth, JWKS and /auth/me routes
// (with MAIL_TRANSPORT=outbox, so the mail routes get as far as the account object).
//
// Not listed in the document, on purpose: answers of the platform before the worker runs (431 for
// huge headers; 501 for methods workerd does not know), methods outside OpenAPI's eight (the WebDAV
// ones workerd passes on, which the worker currently treats as GET), and /api/whoami with ORIGIN_URL
// set (then it is forwarded like /api/{path}; its description says so). Every other status the code
// can answer is listed and produced here; several causes share a status (a 500 from a bad config or
// from an unreadable denylist record), and one cause per status is enough to keep the shape true.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { Miniflare } from 'miniflare';
import { devKeys } from '../../scripts/dev-keys.mjs';
import { randomBytes, createHmac } from 'node:crypto';
import { Authenticator } from './passkey-authenticator.mjs';
import { startWorker, startFakeIssuer, signToken, freePort, workerModules, KV_FAULT, ROOT, ISSUER, AUDIENCE } from './harness.mjs';
import { makeKey } from './dpop-proofs.mjs';

const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options', 'trace'];
const doc = JSON.parse(readFileSync(join(ROOT, 'www', 'openapi.json'), 'utf8'));
const read = (path) => readFileSync(join(ROOT, path), 'utf8');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------------
// The document, resolved.

/** Follows a local `$ref` (OpenAPI 3.1 lets a reference override `description`). */
function deref(node) {
  if (!node?.$ref) return node;
  const target = node.$ref.replace(/^#\//, '').split('/').reduce((o, k) => o?.[k], doc);
  assert.ok(target, `unresolved ${node.$ref}`);
  const { $ref, ...overrides } = node;
  return { ...deref(target), ...overrides };
}

/** Every documented operation: `{ key: 'get /path', path, method, op }`. */
function operations() {
  const ops = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) if (item[method]) ops.push({ key: `${method} ${path}`, path, method, op: item[method] });
  }
  return ops;
}

// Ajv over the component schemas: `#/components/schemas/X` becomes `https://gatehouse.invalid/openapi.json#/$defs/X`.
const rewrite = (node) => {
  if (Array.isArray(node)) return node.map(rewrite);
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' ? v.replace('#/components/schemas/', 'https://gatehouse.invalid/openapi.json#/$defs/') : rewrite(v)]));
  }
  return node;
};
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema({ $id: 'https://gatehouse.invalid/openapi.json', $defs: rewrite(doc.components?.schemas ?? {}) });
const headerAjv = new Ajv2020({ strict: false, allErrors: true, coerceTypes: true, validateFormats: false });
const compiled = new Map();
function validator(schema, forHeader = false) {
  const key = `${forHeader}${JSON.stringify(schema)}`;
  if (!compiled.has(key)) {
    compiled.set(key, forHeader
      ? headerAjv.compile({ type: 'object', properties: { v: rewrite(schema) } })
      : ajv.compile(rewrite(schema)));
  }
  return compiled.get(key);
}

// ------------------------------------------------------------------------------------------------
// The routes of the code, read from the source so a route added there without documenting fails.

function codeRoutes() {
  const table = read('src/routes.rs');
  const mod = read('src/edge/mod.rs');
  const consts = Object.fromEntries([...read('src/oauth.rs').matchAll(/pub const ([A-Z_]+): &str = "([^"]+)";/g)].map((m) => [m[1], m[2]]));
  const methodSets = Object.fromEntries([...table.matchAll(/^const ([A-Z]+): &\[&str\] = &\[([^\]]*)\];/gm)].map((m) => [m[1], [...m[2].matchAll(/"(\w+)"/g)].map((x) => x[1].toLowerCase())]));
  const start = table.indexOf('fn issuer_route(');
  assert.ok(start >= 0, 'issuer_route() in src/routes.rs');
  const body = table.slice(start, table.indexOf('\n}\n', start));
  const arms = body.slice(body.indexOf('match path {'));
  const routes = new Map();
  for (const line of arms.split('\n').filter((l) => l.includes('=>'))) {
    const m = line.match(/^\s*(?:"([^"]+)"|oauth::([A-Z_]+))\s*=>\s*\(IssuerRoute::\w+,\s*([A-Z]+),\s*"([^"]*)"\)/);
    if (m) {
      const path = m[1] ?? consts[m[2]];
      assert.ok(path, `constant ${m[2]} resolved from src/oauth.rs`);
      assert.ok(methodSets[m[3]], `method set ${m[3]} in src/routes.rs`);
      routes.set(path, { methods: methodSets[m[3]], allow: m[4] });
    } else if (!/^\s*_ => return None,/.test(line)) {
      assert.fail(`a route arm this test does not understand (document it, then teach the test): ${line.trim()}`);
    }
  }
  // GET /healthz, answered by every Worker before any other route (src/health.rs).
  const healthPath = read('src/health.rs').match(/pub const PATH: &str = "([^"]+)";/)?.[1];
  const healthArm = table.match(/if path\.as_str\(\) == health::PATH \{\s*return match method \{\s*Some\(m\) if ([A-Z]+)\.contains\(&m\) => Ok\(Route::Health\),\s*_ => Err\(ApiError::MethodNotAllowed\("([^"]+)"\)\),/);
  assert.ok(healthPath && healthArm, 'the health arm of route()');
  routes.set(healthPath, { methods: methodSets[healthArm[1]], allow: healthArm[2] });
  assert.match(table, /if config\.routes\.serves\(path\) \{\s*return Ok\(Route::Gateway\);/, 'the gateway arm of route()');
  // The built-in protected route of gateway() (ORIGIN_URL unset).
  const prot = mod.slice(mod.indexOf('async fn gateway('));
  const builtin = prot.match(/if path\.as_str\(\) == "([^"]+)" => match web::method_of\(&req\) \{\s*Some\(((?:Method::\w+\s*\|?\s*)+)\)\s*=>[^\n]*\n\s*_ => Err\(ApiError::MethodNotAllowed\("([^"]+)"\)\)/);
  assert.ok(builtin, 'the built-in protected route in gateway()');
  routes.set(builtin[1], { methods: [...builtin[2].matchAll(/Method::(\w+)/g)].map((x) => x[1].toLowerCase()), allow: builtin[3], builtin: true });
  // Every other path under PROTECTED_PREFIXES (wrangler.toml) is forwarded: one templated path each.
  const prefixes = read('wrangler.toml').match(/^PROTECTED_PREFIXES = "([^"]*)"/m)[1].split(/[, ]/).filter(Boolean);
  for (const p of prefixes) routes.set(`${p.replace(/\/$/, '')}/{path}`, { forwarded: true });
  return routes;
}

// ------------------------------------------------------------------------------------------------
// Runtimes.

const CLIENT = 'resource-server';
const SECRET = 'an-introspection-secret-of-40-characters!';
const APP = 'https://app.example.com';
const WRANGLER = join(ROOT, 'node_modules', '.bin', 'wrangler');

/**
 * wrangler dev with a configuration the worker refuses. harness.mjs's startWorker waits for a 200
 * from the JWKS, which such a worker never gives, so this waits for the static /openapi.json (served
 * whatever the configuration) and then for the worker's 500.
 */
async function startMisconfigured(vars) {
  // A start that fails (a port taken between freePort and workerd's bind) is tried on new ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startMisconfiguredOnce(vars);
    } catch (e) {
      if (attempt === 3) throw e;
      console.error(`# wrangler dev did not start (attempt ${attempt}), trying new ports`);
    }
  }
}

async function startMisconfiguredOnce(vars) {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-openapi-'));
  const env = { ISSUER, AUDIENCE, SIGNING_KEYS: JSON.stringify(await devKeys()), ...vars };
  const envFile = join(dir, 'test.env');
  writeFileSync(envFile, `${Object.entries(env).map(([k, v]) => `${k}='${String(v).replace(/'/g, '')}'`).join('\n')}\n`);
  const port = await freePort();
  const inspector = await freePort();
  const proc = spawn(
    WRANGLER,
    ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector), '--persist-to', join(dir, 'state'),
      '--show-interactive-dev-session=false', '--env-file', envFile, '--log-level', 'log'],
    {
      cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SKIP_WORKER_BUILD: '1', WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', CI: 'true' },
    },
  );
  const worker = {
    url: `http://127.0.0.1:${port}`, logs: '',
    fetch(path, init) { return fetch(`${this.url}${path}`, init); },
    async cleanup() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* gone */ }
        const timer = setTimeout(() => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  proc.stdout.on('data', (d) => { worker.logs += d; });
  proc.stderr.on('data', (d) => { worker.logs += d; });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) {
      await worker.cleanup();
      throw new Error(`wrangler exited early:\n${worker.logs}`);
    }
    try {
      const asset = await worker.fetch('/openapi.json');
      await asset.arrayBuffer();
      if (asset.status === 200) {
        const res = await worker.fetch('/.well-known/jwks.json');
        await res.arrayBuffer();
        if (res.status === 500) return worker;
      }
    } catch { /* not up yet */ }
    await sleep(200);
  }
  await worker.cleanup();
  throw new Error(`the misconfigured worker did not come up in 60 s:\n${worker.logs}`);
}

// Miniflare's faults: KV_FAULT (harness.mjs) for reads of keys containing "fail"; the Durable Objects throw.
const BROKEN_OBJECTS = `
export class Account { async fetch() { throw new Error('injected account object failure'); } }
export class KeyStore { async fetch() { throw new Error('injected key store failure'); } }
export default { fetch() { return new Response(null, { status: 404 }); } };
`;

async function startFaulty() {
  const keys = await devKeys();
  const mf = new Miniflare({
    workers: [
      {
        name: 'gatehouse',
        ...workerModules(),
        compatibilityDate: '2026-04-20',
        bindings: {
          ISSUER, AUDIENCE, SIGNING_KEYS: JSON.stringify(keys), KEY_MANAGEMENT: 'managed',
          INTROSPECTION_CLIENTS: JSON.stringify({ [CLIENT]: SECRET }), MAIL_TRANSPORT: 'outbox',
        },
        kvNamespaces: ['OUTBOX'],
        durableObjects: {
          ACCOUNTS: { className: 'Account', scriptName: 'broken-objects', useSQLite: true },
          KEYS: { className: 'KeyStore', scriptName: 'broken-objects', useSQLite: true },
        },
        wrappedBindings: { DENYLIST: { scriptName: 'kv-fault' } },
      },
      { name: 'kv-fault', modules: true, script: KV_FAULT, kvNamespaces: ['INNER'] },
      {
        name: 'broken-objects', modules: true, script: BROKEN_OBJECTS,
        durableObjects: { A: { className: 'Account', useSQLite: true }, K: { className: 'KeyStore', useSQLite: true } },
      },
    ],
    // The injected failures are logged with stacks by design; keep them out of the test output.
    handleRuntimeStdio(stdout, stderr) { stdout.resume(); stderr.resume(); },
  });
  try {
    await mf.ready;
  } catch (e) {
    await mf.dispose();
    throw e;
  }
  // An id the ACCOUNTS namespace itself made, so the worker routes to the (broken) object.
  const account = (await mf.getDurableObjectNamespace('ACCOUNTS', 'gatehouse')).idFromName('openapi').toString();
  return {
    keys, account,
    fetch: (path, init) => mf.dispatchFetch(`http://gatehouse.test${path}`, init),
    cleanup: () => mf.dispose(),
  };
}

/**
 * A loopback origin: answers every request with what it received, as JSON (like harness.mjs's
 * startEchoOrigin), except that it drops the connection of requests to /api/reset.
 */
async function startOrigin() {
  const server = createServer((req, res) => {
    if (req.url.startsWith('/api/reset')) { req.socket.destroy(); return; }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => { server.closeAllConnections(); return new Promise((r) => server.close(r)); },
  };
}

/** A request with node:http, as a fetch Response (fetch refuses to send TRACE). */
function rawFetch(url, { method, headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const h = new Headers();
        for (const [name, value] of Object.entries(res.headers)) for (const v of [value].flat()) h.append(name, v);
        const bytes = Buffer.concat(chunks);
        resolve(new Response(bytes.length ? bytes : null, { status: res.statusCode, headers: h }));
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A loopback Turnstile siteverify: admits the token `good` only. */
async function startSiteverify() {
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      // `down`: siteverify fails, for the 503 of a Turnstile-guarded route.
      if (form.get('response') === 'down') return res.writeHead(500).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ success: form.get('response') === 'good' }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/siteverify`, close: () => new Promise((r) => server.close(r)) };
}

/** A k-anonymity range API (Have I Been Pwned's protocol) on loopback that lists BREACHED only. */
const BREACHED = 'password123456';
async function startRange() {
  const { createHash } = await import('node:crypto');
  const hash = createHash('sha1').update(BREACHED).digest('hex').toUpperCase();
  const server = createServer((req, res) => {
    const lines = ['0000000000000000000000000000000000A:0'];
    if (req.url.endsWith(`/${hash.slice(0, 5)}`)) lines.push(`${hash.slice(5)}:99`);
    res.writeHead(200, { 'content-type': 'text/plain' }).end(lines.join('\r\n'));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/range/`, close: () => new Promise((r) => server.close(r)) };
}

/** A wrangler dev worker whose fetch also sends TRACE (over node:http). */
const withTrace = (w) => ({
  worker: w, keys: w.keys, url: w.url,
  fetch: (path, init = {}) => (init.method === 'TRACE' ? rawFetch(`${w.url}${path}`, init) : w.fetch(path, init)),
  cleanup: () => w.cleanup(),
});

// ------------------------------------------------------------------------------------------------
// Requests.

const json = (body, headers = {}) => ({ method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
const form = (params, headers = {}) => ({
  method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  body: typeof params === 'string' ? params : new URLSearchParams(params).toString(),
});
const bearer = (t) => ({ authorization: `Bearer ${t}` });
/** `Authorization: DPoP` for a token bound to `key`, with `key`'s proof for `method` `path` on `w` (none: no proof). */
const dpopAuth = (w, key, token, method, path, { proof = true } = {}) => ({
  authorization: `DPoP ${token}`,
  ...(proof ? { dpop: key.proof({ htm: method.toUpperCase(), htu: `${w.url}${path}`, token }) } : {}),
});
/** A token of `w`'s keys bound to `key` (cnf.jkt). */
const boundToken = (w, key, claims = {}) => signToken(w.keys, { claims: { scope: 'api read', cnf: { jkt: key.jkt }, ...claims } });
/** A token-endpoint proof of `key` for POST `path` on `w`. */
const tokenProof = (w, key, path, extra = {}) => ({ dpop: key.proof({ htm: 'POST', htu: `${w.url}${path}`, ...extra }) });
const DPOP_KEY = makeKey('EdDSA');
const basic = (id, secret) => ({ authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}` });
const BIG = 'x'.repeat(17 * 1024);
const PASSWORD = 'correct horse battery';
let counter = 0;
const email = (tag) => `openapi-${tag}-${Date.now()}-${counter++}@example.com`;
/** A's admin (ADMIN_EMAILS), once the email is verified. */
const ADMIN_EMAIL = email('admin');
const claimsOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
/** A mail link's token (`ghv1` verify, `ghp1` reset) for `account` that was never issued. */
const forgedLink = (prefix, account = 'ab'.repeat(32)) => `${prefix}.${account}.${Buffer.alloc(32, 4).toString('base64url')}`;

/** The token of the newest `kind` (`verify` / `reset`) link mailed to `to`, from A's outbox (mail goes out after the answer). */
async function linkOf(w, to, kind) {
  for (let i = 0; i < 100; i++) {
    const res = await w.fetch(`/dev/outbox?to=${encodeURIComponent(to)}`);
    assert.equal(res.status, 200);
    const mail = (await res.json()).mails.filter((m) => m.kind === kind).at(-1);
    if (mail) return mail.text.match(new RegExp(`#${kind}=([A-Za-z0-9._-]+)`))[1];
    await sleep(50);
  }
  assert.fail(`no ${kind} mail to ${to} in the outbox`);
}
const refreshTokenFor = (account) => `ghr1.${account}.${Buffer.alloc(16, 1).toString('base64url')}.${Buffer.alloc(32, 2).toString('base64url')}`;
const UNKNOWN_RT = refreshTokenFor('ab'.repeat(32));

/** The RFC 6238 code (SHA-1, six digits) of a base32 `secret` at `step` (30 s steps from now + offset). */
function totpCode(secret, offset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0; let value = 0; const key = [];
  for (const c of secret) { value = (value << 5) | alphabet.indexOf(c); bits += 5; if (bits >= 8) { bits -= 8; key.push((value >> bits) & 0xff); } }
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30_000) + offset));
  const mac = createHmac('sha1', Buffer.from(key)).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

/** A session of an account with TOTP on: its password-only token, the secret and the `sub`. */
async function mfaSession(w) {
  const s = await session(w);
  const enrol = await (await w.fetch('/auth/mfa/totp/enroll', { method: 'POST', headers: bearer(s.access_token) })).json();
  const confirm = await w.fetch('/auth/mfa/totp/confirm', json({ code: totpCode(enrol.secret) }, bearer(s.access_token)));
  assert.equal(confirm.status, 200);
  await confirm.arrayBuffer();
  const sub = JSON.parse(Buffer.from(s.access_token.split('.')[1], 'base64url')).sub;
  return { ...s, secret: enrol.secret, sub };
}
/** A token of `sub` as a fresh two-factor login would have it. */
const freshMfaToken = (w, sub) => signToken(w.keys, { claims: { sub, scope: 'api read', amr: ['pwd', 'otp', 'mfa'], acr: 'aal2', auth_time: Math.floor(Date.now() / 1000) } });

async function session(w, extra = {}) {
  const address = email('s');
  const reg = await w.fetch('/auth/register', json({ email: address, password: PASSWORD }));
  assert.equal(reg.status, 201, await reg.text());
  const res = await w.fetch('/auth/login', json({ email: address, password: PASSWORD, ...extra }));
  assert.equal(res.status, 200);
  return { email: address, ...(await res.json()), cookie: res.headers.get('set-cookie') };
}

/** An example concrete path for a documented (possibly templated) one; `{sid}` and `{sub}` take a
 *  well-formed id (1-64 of [A-Za-z0-9_-], src/routes.rs) that names nothing. */
const GHOST_SID = 'A'.repeat(22);
const GHOST_SUB = 'a'.repeat(64);
const concrete = (path, rest = 'openapi-probe', { sid = GHOST_SID, sub = GHOST_SUB } = {}) => path.replace('{path}', rest).replace('{sid}', sid).replace('{sub}', sub);
const init = (method, extra = {}) => ({ method: method.toUpperCase(), ...extra, headers: { ...(extra.headers ?? {}) } });

// ------------------------------------------------------------------------------------------------
// The scenarios: each is a request, the operation it exercises and the status it must produce.

function scenarios() {
  const list = [];
  const add = (on, method, path, status, what, send, extra = {}) => list.push({ on, key: `${method} ${path}`, method, path, status, what, send, ...extra });
  const ops = operations();
  const WHOAMI = '/api/whoami';
  const FWD = '/api/{path}';
  const isProtected = (p) => p === WHOAMI || p === FWD;

  // Every operation of the worker: 500 while the configuration is bad (C).
  for (const { method, path, op } of ops) {
    if (!op.responses['500']) continue;
    add('C', method, path, 500, 'bad configuration', (w) => w.fetch(concrete(path), init(method)));
  }
  // Every 405: the other methods of each route (on the built-in protected route, with a token).
  for (const { method, path, op } of ops) {
    if (!op.responses['405']) continue;
    if (path === '/openapi.json') {
      add('A', method, path, 405, 'static assets are GET and HEAD only', (w) => w.fetch(path, init(method)));
    } else if (isProtected(path)) {
      add('A', method, path, 405, 'a valid token, the wrong method', async (w, c) => w.fetch(path, init(method, { headers: bearer(c.apiToken) })));
    } else {
      add('A', method, path, 405, 'the wrong method', (w) => w.fetch(concrete(path), init(method)));
    }
  }
  // Every preflight, allowed and refused.
  for (const { method, path, op } of ops) {
    if (method !== 'options' || !op.responses['204']) continue;
    add('A', method, path, 204, 'preflight from an allowed origin', (w) => w.fetch(concrete(path), init('OPTIONS', { headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })));
    add('A', method, path, 403, 'preflight from another origin', (w) => w.fetch(concrete(path), init('OPTIONS', { headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } })));
  }
  // Protected paths, every method.
  for (const method of METHODS) {
    for (const path of [WHOAMI, FWD]) {
      const url = concrete(path);
      add('A', method, path, 401, 'no bearer token', (w) => w.fetch(url, init(method)));
      add('A', method, path, 401, 'a bound token with the DPoP scheme and no proof', async (w) => w.fetch(url, init(method, { headers: dpopAuth(w, DPOP_KEY, await boundToken(w, DPOP_KEY), method, url, { proof: false }) })));
      add('E', method, path, 401, 'a DPoP proof without the server nonce', async (w) => w.fetch(url, init(method, { headers: dpopAuth(w, DPOP_KEY, await boundToken(w, DPOP_KEY), method, url) })));
      add('A', method, path, 401, 'a token with a bad signature', (w, c) => w.fetch(url, init(method, { headers: bearer(c.apiToken.replace(/.{6}$/, 'AAAAAA')) })));
      add('A', method, path, 403, 'the /api/ policy needs scope api', async (w) => w.fetch(url, init(method, { headers: bearer(await signToken(w.keys, { claims: { scope: 'read' } })) })));
      add('A', method, path, 503, 'a trusted issuer whose JWKS is down', async (w, c) => w.fetch(url, init(method, { headers: bearer(await c.downIssuer.sign({})) })));
    }
    // Miniflare's dispatchFetch cannot send TRACE; A's trusted issuer gives that 503 for every method.
    if (method !== 'trace') add('D', method, WHOAMI, 503, 'the denylist read fails', async (w) => w.fetch(WHOAMI, init(method, { headers: bearer(await signToken(w.keys, { claims: { sub: 'fail-user' } })) })));
    add('A', method, FWD, 400, 'an encoded / in the path', (w) => w.fetch('/api/a%2Fb', init(method)));
    add('A', method, FWD, 404, 'no ORIGIN_URL: only /api/whoami is built in', (w, c) => w.fetch(concrete(FWD), init(method, { headers: bearer(c.apiToken) })));
    add('B', method, FWD, 200, 'forwarded to the origin', async (w) => w.fetch(concrete(FWD, 'deep/er?x=1'), init(method, { headers: bearer(await signToken(w.keys)), ...(['get', 'head', 'trace'].includes(method) ? {} : { body: 'payload' }) })), { expectKey: 'default' });
    add('B', method, FWD, 503, 'the origin is unreachable', async (w) => w.fetch(concrete(FWD, 'reset'), init(method, { headers: bearer(await signToken(w.keys)) })));
  }
  for (const method of ['get', 'head']) {
    add('A', method, WHOAMI, 200, 'the verified claims', (w, c) => w.fetch(WHOAMI, init(method, { headers: bearer(c.apiToken) })));
    add('A', method, WHOAMI, 200, 'a DPoP-bound token with its proof', async (w) => w.fetch(WHOAMI, init(method, { headers: dpopAuth(w, DPOP_KEY, await boundToken(w, DPOP_KEY), method, WHOAMI) })), {
      check: (res, body) => { if (body) assert.deepEqual(body.cnf, { jkt: DPOP_KEY.jkt }); },
    });
  }
  for (const method of ['get', 'head']) {
    add('A', method, '/healthz', 200, 'up: version, build, which Worker', (w) => w.fetch('/healthz', init(method)));
  }

  // The document itself.
  for (const method of ['get', 'head']) {
    add('A', method, '/openapi.json', 200, 'the document', (w) => w.fetch('/openapi.json', init(method)));
    add('A', method, '/openapi.json', 200, 'a Range request is answered in full', (w) => w.fetch('/openapi.json', init(method, { headers: { range: 'bytes=0-10' } })));
    add('A', method, '/openapi.json', 304, 'If-None-Match', async (w) => {
      const first = await w.fetch('/openapi.json', init('HEAD'));
      await first.arrayBuffer();
      return w.fetch('/openapi.json', init(method, { headers: { 'if-none-match': first.headers.get('etag') } }));
    });
  }

  // Keys and metadata.
  for (const method of ['get', 'head']) {
    add('A', method, '/.well-known/jwks.json', 200, 'the key set', (w) => w.fetch('/.well-known/jwks.json', init(method)));
    add('A', method, '/.well-known/jwks.json', 200, 'the key set, cross-origin', (w) => w.fetch('/.well-known/jwks.json', init(method, { headers: { origin: APP } })));
    add('D', method, '/.well-known/jwks.json', 503, 'managed keys, the key store down', (w) => w.fetch('/.well-known/jwks.json', init(method)));
    add('A', method, '/.well-known/oauth-authorization-server', 200, 'the metadata', (w) => w.fetch('/.well-known/oauth-authorization-server', init(method)));
    add('A', method, '/auth/me', 200, 'own token', (w, c) => w.fetch('/auth/me', init(method, { headers: bearer(c.apiToken) })));
    add('A', method, '/auth/me', 401, 'no token', (w) => w.fetch('/auth/me', init(method)));
    add('A', method, '/auth/me', 401, 'a DPoP proof for another URL', async (w) => {
      const token = await boundToken(w, DPOP_KEY);
      return w.fetch('/auth/me', init(method, { headers: { ...dpopAuth(w, DPOP_KEY, token, method, '/auth/me'), dpop: DPOP_KEY.proof({ htm: method.toUpperCase(), htu: `${w.url}/auth/other`, token }) } }));
    });
    add('E', method, '/auth/me', 401, 'a DPoP proof without the server nonce', async (w) => w.fetch('/auth/me', init(method, { headers: dpopAuth(w, DPOP_KEY, await boundToken(w, DPOP_KEY), method, '/auth/me') })));
    add('A', method, '/auth/me', 401, 'a trusted issuer\'s token is not accepted here', async (w, c) => w.fetch('/auth/me', init(method, { headers: bearer(await c.downIssuer.sign({})) })));
    add('D', method, '/auth/me', 503, 'the denylist read fails', async (w) => w.fetch('/auth/me', init(method, { headers: bearer(await signToken(w.keys, { claims: { sub: 'fail-user' } })) })));
  }

  // Issuer routes.
  const P = (path) => ['post', path];
  // Second factor.
  const EN = '/auth/mfa/totp/enroll';
  const CF = '/auth/mfa/totp/confirm';
  const RC = '/auth/mfa/recovery-codes';
  const VF = '/auth/mfa/verify';
  const post = (w, path, token) => w.fetch(path, { method: 'POST', headers: token ? bearer(token) : {} });
  add('A', ...P(EN), 200, 'a new secret', async (w) => post(w, EN, (await session(w)).access_token));
  add('A', ...P(EN), 401, 'no token', (w) => post(w, EN));
  add('A', ...P(EN), 401, 'a login older than 300 s', async (w) => {
    const s = await session(w);
    const sub = JSON.parse(Buffer.from(s.access_token.split('.')[1], 'base64url')).sub;
    return post(w, EN, await signToken(w.keys, { claims: { sub, scope: 'api read', amr: ['pwd'], auth_time: Math.floor(Date.now() / 1000) - 301 } }));
  });
  add('A', ...P(EN), 409, 'a factor is on already', async (w) => post(w, EN, (await mfaSession(w)).access_token));
  add('A', ...P(CF), 200, 'the first code', async (w) => {
    const s = await session(w);
    const enrol = await (await post(w, EN, s.access_token)).json();
    return w.fetch(CF, json({ code: totpCode(enrol.secret) }, bearer(s.access_token)));
  });
  add('A', ...P(CF), 400, 'no code', async (w, c) => w.fetch(CF, json({}, bearer(c.s1.access_token))));
  add('A', ...P(CF), 401, 'no token', (w) => w.fetch(CF, json({ code: '123456' })));
  add('A', ...P(CF), 401, 'a wrong code', async (w) => {
    const s = await session(w);
    const enrol = await (await post(w, EN, s.access_token)).json();
    return w.fetch(CF, json({ code: totpCode(enrol.secret, 9) }, bearer(s.access_token)));
  });
  add('A', ...P(CF), 409, 'nothing pending', async (w) => w.fetch(CF, json({ code: '123456' }, bearer((await session(w)).access_token))));
  add('A', ...P(RC), 200, 'a fresh second factor', async (w) => post(w, RC, await freshMfaToken(w, (await mfaSession(w)).sub)));
  add('A', ...P(RC), 401, 'no token', (w) => post(w, RC));
  add('A', ...P(RC), 401, 'a password-only token', async (w) => post(w, RC, (await mfaSession(w)).access_token));
  add('A', ...P(RC), 409, 'no factor on', async (w) => {
    const s = await session(w);
    return post(w, RC, await freshMfaToken(w, JSON.parse(Buffer.from(s.access_token.split('.')[1], 'base64url')).sub));
  });
  const del = (w, token) => w.fetch('/auth/mfa/totp', { method: 'DELETE', headers: token ? bearer(token) : {} });
  add('A', 'delete', '/auth/mfa/totp', 204, 'a fresh second factor', async (w) => del(w, await freshMfaToken(w, (await mfaSession(w)).sub)));
  add('A', 'delete', '/auth/mfa/totp', 401, 'no token', (w) => del(w));
  add('A', 'delete', '/auth/mfa/totp', 401, 'a password-only token', async (w) => del(w, (await mfaSession(w)).access_token));
  add('A', 'delete', '/auth/mfa/totp', 409, 'no factor on', async (w) => {
    const s = await session(w);
    return del(w, await freshMfaToken(w, JSON.parse(Buffer.from(s.access_token.split('.')[1], 'base64url')).sub));
  });
  const ticketOf = async (w, s) => (await (await w.fetch('/auth/login', json({ email: s.email, password: PASSWORD }))).json()).mfa_ticket;
  add('A', ...P('/auth/login'), 403, 'a second factor is on', async (w) => w.fetch('/auth/login', json({ email: (await mfaSession(w)).email, password: PASSWORD })));
  add('A', ...P(VF), 200, 'the next code', async (w) => {
    const s = await mfaSession(w);
    return w.fetch(VF, json({ mfa_ticket: await ticketOf(w, s), method: 'totp', code: totpCode(s.secret, 1) }));
  });
  add('A', ...P(VF), 400, 'an unknown method', (w) => w.fetch(VF, json({ mfa_ticket: 'x', method: 'sms', code: '1' })));
  add('A', ...P(VF), 401, 'a forged ticket', (w) => w.fetch(VF, json({ mfa_ticket: `ghm1.${'ab'.repeat(32)}.${Buffer.alloc(32, 3).toString('base64url')}`, method: 'totp', code: '123456' })));
  add('A', ...P(VF), 401, 'a used code', async (w) => {
    const s = await mfaSession(w);
    return w.fetch(VF, json({ mfa_ticket: await ticketOf(w, s), method: 'totp', code: totpCode(s.secret, -1) }));
  });
  // Passkeys (runtime A: ISSUER https://gatehouse.test, so the RP ID and origin are its).
  const RO = '/auth/webauthn/register/options';
  const RV = '/auth/webauthn/register/verify';
  const LO = '/auth/webauthn/login/options';
  const LV = '/auth/webauthn/login/verify';
  const authenticator = () => new Authenticator({ origin: ISSUER, rpId: new URL(ISSUER).hostname });
  const addPasskey = async (w, token, a = authenticator()) => {
    const options = await (await post(w, RO, token)).json();
    return w.fetch(RV, json({ credential: a.create(options.publicKey) }, bearer(token)));
  };
  /** A session of an account with a passkey: the password login's token, and the authenticator. */
  const passkeySession = async (w) => {
    const s = await session(w);
    const a = authenticator();
    const added = await addPasskey(w, s.access_token, a);
    assert.equal(added.status, 201);
    await added.arrayBuffer();
    return { ...s, a };
  };
  const loginOptions = async (w, body) => (await (await w.fetch(LO, json(body))).json()).publicKey;
  add('A', ...P(RO), 200, 'a recent login', async (w) => post(w, RO, (await session(w)).access_token));
  add('A', ...P(RO), 401, 'no token', (w) => post(w, RO));
  const oldLogin = async (w) => {
    const s = await session(w);
    const sub = JSON.parse(Buffer.from(s.access_token.split('.')[1], 'base64url')).sub;
    return signToken(w.keys, { claims: { sub, scope: 'api read', amr: ['pwd'], auth_time: Math.floor(Date.now() / 1000) - 301 } });
  };
  add('A', ...P(RO), 401, 'a login older than 300 s', async (w) => post(w, RO, await oldLogin(w)));
  add('A', ...P(RV), 401, 'a login older than 300 s', async (w) => w.fetch(RV, json({ credential: authenticator().create({ challenge: 'AAAA' }) }, bearer(await oldLogin(w)))));
  add('A', ...P(RO), 409, 'ten passkeys already', async (w) => {
    const s = await session(w);
    for (let i = 0; i < 10; i++) assert.equal((await addPasskey(w, s.access_token)).status, 201);
    return post(w, RO, s.access_token);
  });
  add('A', ...P(RV), 201, 'a verified registration', async (w) => addPasskey(w, (await session(w)).access_token));
  add('A', ...P(RV), 400, 'no credential', async (w, c) => w.fetch(RV, json({}, bearer(c.s1.access_token))));
  add('A', ...P(RV), 400, 'a challenge never issued', async (w) => {
    const s = await session(w);
    return w.fetch(RV, json({ credential: authenticator().create({ challenge: randomBytes(32).toString('base64url') }) }, bearer(s.access_token)));
  });
  add('A', ...P(RV), 401, 'no token', (w) => w.fetch(RV, json({ credential: authenticator().create({ challenge: 'AAAA' }) })));
  add('A', ...P(LO), 200, 'an email (the same shape for any)', (w) => w.fetch(LO, json({ email: email('nobody') })));
  add('A', ...P(LO), 400, 'neither email nor ticket', (w) => w.fetch(LO, json({})));
  add('A', ...P(LO), 401, 'a forged ticket', (w) => w.fetch(LO, json({ mfa_ticket: `ghm1.${'ab'.repeat(32)}.${Buffer.alloc(32, 3).toString('base64url')}` })));
  add('D', ...P(LO), 503, 'the account object throws', (w) => w.fetch(LO, json({ email: email('down') })));
  add('A', ...P(LV), 200, 'a passwordless login', async (w) => {
    const s = await passkeySession(w);
    const credential = s.a.get(await loginOptions(w, { email: s.email }));
    return w.fetch(LV, json({ email: s.email, credential }));
  }, { check: (res, body) => assert.deepEqual(JSON.parse(Buffer.from(body.access_token.split('.')[1], 'base64url')).amr, ['hwk', 'mfa']) });
  add('A', ...P(LV), 400, 'no credential', (w) => w.fetch(LV, json({ email: email('nobody') })));
  add('A', ...P(LV), 401, 'an assertion sent again', async (w) => {
    const s = await passkeySession(w);
    const credential = s.a.get(await loginOptions(w, { email: s.email }));
    const first = await w.fetch(LV, json({ email: s.email, credential }));
    assert.equal(first.status, 200);
    await first.arrayBuffer();
    return w.fetch(LV, json({ email: s.email, credential }));
  }, { check: (res, body) => assert.equal(body.error, 'invalid_credentials') });
  add('A', ...P(LV), 401, 'a second step signed by another key', async (w) => {
    const s = await passkeySession(w);
    const ticket = await ticketOf(w, s);
    const credential = authenticator().get(await loginOptions(w, { mfa_ticket: ticket }));
    return w.fetch(LV, json({ mfa_ticket: ticket, credential }));
  }, { check: (res, body) => assert.equal(body.error, 'invalid_mfa_code') });
  add('A', ...P(LV), 401, 'a forged ticket', (w) => w.fetch(LV, json({ mfa_ticket: `ghm1.${'ab'.repeat(32)}.${Buffer.alloc(32, 3).toString('base64url')}`, credential: authenticator().get({ challenge: 'AAAA' }) })));
  add('A', ...P(LV), 429, 'after five failures', async (w) => {
    // Real attempts: each answers a challenge the account issued, signed by a key it does not know
    // (an assertion naming no live challenge could never pass, and counts against nobody).
    const s = await passkeySession(w);
    const attempt = async () => w.fetch(LV, json({ email: s.email, credential: authenticator().get(await loginOptions(w, { email: s.email })) }));
    for (let i = 0; i < 5; i++) {
      const res = await attempt();
      assert.equal(res.status, 401);
      await res.arrayBuffer();
    }
    return attempt();
  });
  add('D', ...P(LV), 503, 'the account object throws', (w) => w.fetch(LV, json({ email: email('down'), credential: authenticator().get({ challenge: 'AAAA' }) })));
  add('A', ...P(VF), 200, 'a passkey as the second step', async (w) => {
    const s = await passkeySession(w);
    const ticket = await ticketOf(w, s);
    const credential = s.a.get(await loginOptions(w, { mfa_ticket: ticket }));
    return w.fetch(VF, json({ mfa_ticket: ticket, method: 'webauthn', credential }));
  }, { check: (res, body) => assert.deepEqual(JSON.parse(Buffer.from(body.access_token.split('.')[1], 'base64url')).amr, ['pwd', 'hwk', 'mfa']) });
  add('A', ...P('/auth/register'), 201, 'registered', (w) => w.fetch('/auth/register', json({ email: email('reg'), password: PASSWORD })));
  add('A', ...P('/auth/register'), 400, 'not an email address', (w) => w.fetch('/auth/register', json({ email: 'nope', password: PASSWORD })));
  add('A', ...P('/auth/register'), 400, 'wrong content type', (w) => w.fetch('/auth/register', { ...json({ email: email('ct'), password: PASSWORD }), headers: { 'content-type': 'text/plain' } }));
  add('A', ...P('/auth/register'), 400, 'a short password', (w) => w.fetch('/auth/register', json({ email: email('weak'), password: 'short' })));
  add('A', ...P('/auth/register'), 409, 'taken (in another case)', (w, c) => w.fetch('/auth/register', json({ email: c.s1.email.toUpperCase(), password: PASSWORD })));
  add('A', ...P('/auth/register'), 413, 'over 16 KiB', (w) => w.fetch('/auth/register', json({ email: email('big'), password: PASSWORD, pad: BIG })));
  add('B', ...P('/auth/register'), 400, 'a breached password', (w) => w.fetch('/auth/register', json({ email: email('breached'), password: BREACHED })));
  add('D', ...P('/auth/register'), 503, 'the account object throws', (w) => w.fetch('/auth/register', json({ email: email('down'), password: PASSWORD })));

  add('A', ...P('/auth/login'), 200, 'body transport', (w, c) => w.fetch('/auth/login', json({ email: c.s1.email, password: PASSWORD })));
  add('A', ...P('/auth/login'), 200, 'cookie transport', (w, c) => w.fetch('/auth/login', json({ email: c.s1.email, password: PASSWORD, transport: 'cookie' })), {
    check: (res, body) => { assert.match(res.headers.get('set-cookie') ?? '', /^__Host-gatehouse_rt=ghr1\./); assert.equal(body.refresh_token, undefined); },
  });
  add('A', ...P('/auth/login'), 400, 'an unknown transport', (w, c) => w.fetch('/auth/login', json({ email: c.s1.email, password: PASSWORD, transport: 'pigeon' })));
  add('A', ...P('/auth/login'), 200, 'with a DPoP proof: a bound session', (w, c) => w.fetch('/auth/login', json({ email: c.s1.email, password: PASSWORD }, tokenProof(w, DPOP_KEY, '/auth/login'))), {
    check: (res, body) => assert.equal(body.token_type, 'DPoP'),
  });
  add('A', ...P('/auth/login'), 400, 'a DPoP proof for another method', (w, c) => w.fetch('/auth/login', json({ email: c.s1.email, password: PASSWORD }, { dpop: DPOP_KEY.proof({ htm: 'GET', htu: `${w.url}/auth/login` }) })));
  add('E', ...P('/auth/login'), 400, 'a DPoP proof without the server nonce', (w) => w.fetch('/auth/login', json({ email: email('nonce'), password: PASSWORD }, tokenProof(w, DPOP_KEY, '/auth/login'))), {
    check: (res) => assert.ok(res.headers.get('dpop-nonce')),
  });
  add('A', ...P('/auth/login'), 401, 'wrong password', (w) => w.fetch('/auth/login', json({ email: email('nobody'), password: 'wrong password!' })));
  add('A', ...P('/auth/login'), 413, 'over 16 KiB', (w) => w.fetch('/auth/login', json({ email: email('big'), password: PASSWORD, pad: BIG })));
  add('A', ...P('/auth/login'), 429, 'after five failures', async (w) => {
    const address = email('throttle');
    for (let i = 0; i < 5; i++) {
      const res = await w.fetch('/auth/login', json({ email: address, password: 'wrong password!' }));
      assert.equal(res.status, 401);
      await res.arrayBuffer();
    }
    return w.fetch('/auth/login', json({ email: address, password: 'wrong password!' }));
  });
  add('D', ...P('/auth/login'), 503, 'the account object throws', (w) => w.fetch('/auth/login', json({ email: email('down'), password: PASSWORD })));

  add('A', ...P('/auth/refresh'), 200, 'body token', (w, c) => w.fetch('/auth/refresh', json({ refresh_token: c.s2.refresh_token })));
  add('A', ...P('/auth/refresh'), 200, 'cookie token from the own origin', (w, c) => w.fetch('/auth/refresh', { method: 'POST', headers: { cookie: c.s3.cookie.split(';')[0], origin: w.url } }), {
    check: (res, body) => { assert.match(res.headers.get('set-cookie') ?? '', /^__Host-gatehouse_rt=ghr1\./); assert.equal(body.refresh_token, undefined); },
  });
  add('A', ...P('/auth/refresh'), 400, 'no token at all', (w) => w.fetch('/auth/refresh', { method: 'POST' }));
  add('A', ...P('/auth/refresh'), 400, 'a DPoP proof with a private key in its jwk', (w) => w.fetch('/auth/refresh', json({ refresh_token: UNKNOWN_RT }, tokenProof(w, DPOP_KEY, '/auth/refresh', { header: { jwk: DPOP_KEY.full } }))));
  add('E', ...P('/auth/refresh'), 400, 'a DPoP proof without the server nonce', (w) => w.fetch('/auth/refresh', json({ refresh_token: UNKNOWN_RT }, tokenProof(w, DPOP_KEY, '/auth/refresh'))));
  add('A', ...P('/auth/refresh'), 401, 'an unknown token', (w) => w.fetch('/auth/refresh', json({ refresh_token: UNKNOWN_RT })));
  add('A', ...P('/auth/refresh'), 401, 'junk', (w) => w.fetch('/auth/refresh', json({ refresh_token: 'junk' })));
  add('A', ...P('/auth/refresh'), 403, 'cookie token without an Origin', (w, c) => w.fetch('/auth/refresh', { method: 'POST', headers: { cookie: c.s3.cookie.split(';')[0] } }));
  add('A', ...P('/auth/refresh'), 413, 'over 16 KiB', (w) => w.fetch('/auth/refresh', json({ refresh_token: BIG })));
  add('D', ...P('/auth/refresh'), 503, 'the account object throws', (w) => w.fetch('/auth/refresh', json({ refresh_token: refreshTokenFor(w.account) })));

  for (const path of ['/auth/logout', '/auth/logout-all']) {
    add('A', ...P(path), 401, 'no token', (w) => w.fetch(path, { method: 'POST' }));
    add('A', ...P(path), 401, 'a token naming no account', async (w) => w.fetch(path, { method: 'POST', headers: bearer(await signToken(w.keys)) }));
    add('D', ...P(path), 503, 'the account object throws', async (w) => w.fetch(path, { method: 'POST', headers: bearer(await signToken(w.keys, { claims: { sub: w.account } })) }));
  }
  for (const path of ['/auth/logout', '/auth/logout-all']) {
    add('A', ...P(path), 401, 'a stale DPoP proof', async (w) => {
      const token = await boundToken(w, DPOP_KEY);
      return w.fetch(path, { method: 'POST', headers: { authorization: `DPoP ${token}`, dpop: DPOP_KEY.proof({ htm: 'POST', htu: `${w.url}${path}`, token, iat: Math.floor(Date.now() / 1000) - 300 }) } });
    });
    add('E', ...P(path), 401, 'a DPoP proof without the server nonce', async (w) => w.fetch(path, { method: 'POST', headers: dpopAuth(w, DPOP_KEY, await boundToken(w, DPOP_KEY), 'post', path) }));
  }
  add('A', ...P('/auth/logout'), 204, 'ends the session', (w, c) => w.fetch('/auth/logout', { method: 'POST', headers: bearer(c.s4.access_token) }));
  add('A', ...P('/auth/logout'), 204, 'idempotent', (w, c) => w.fetch('/auth/logout', { method: 'POST', headers: bearer(c.s4.access_token) }));
  add('A', ...P('/auth/logout-all'), 204, 'ends every session', (w, c) => w.fetch('/auth/logout-all', { method: 'POST', headers: bearer(c.s5.access_token) }));

  // Account lifecycle (issue 13) and the admin API. The Bearer routes refuse alike: no token, a
  // stale DPoP proof (A), a proof without the server nonce (E), and 503 when the denylist read fails (D).
  const send = (w, method, path, { token, body, headers = {} } = {}) => w.fetch(path, init(method, {
    headers: { ...(token ? bearer(token) : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  }));
  const lifecycleBearer = [
    ['patch', '/auth/me'], ['delete', '/auth/me'], ['get', '/auth/me/export'], ['head', '/auth/me/export'],
    ['post', '/auth/email/verify/request'], ['post', '/auth/password/change'],
    ['get', '/auth/sessions'], ['head', '/auth/sessions'], ['delete', '/auth/sessions/{sid}'],
    ['get', '/admin/users'], ['head', '/admin/users'],
    ['get', '/admin/users/{sub}'], ['head', '/admin/users/{sub}'], ['patch', '/admin/users/{sub}'], ['delete', '/admin/users/{sub}'],
    ['post', '/admin/users/{sub}/revoke-sessions'], ['get', '/admin/users/{sub}/export'], ['head', '/admin/users/{sub}/export'],
  ];
  for (const [method, path] of lifecycleBearer) {
    const url = path === '/admin/users' ? `${path}?email=nobody%40example.com` : concrete(path);
    add('A', method, path, 401, 'no token', (w) => send(w, method, url));
    add('A', method, path, 401, 'a stale DPoP proof', async (w) => {
      const token = await boundToken(w, DPOP_KEY);
      return send(w, method, url, { headers: { authorization: `DPoP ${token}`, dpop: DPOP_KEY.proof({ htm: method.toUpperCase(), htu: `${w.url}${url}`, token, iat: Math.floor(Date.now() / 1000) - 300 }) } });
    });
    add('E', method, path, 401, 'a DPoP proof without the server nonce', async (w) => send(w, method, url, { headers: dpopAuth(w, DPOP_KEY, await boundToken(w, DPOP_KEY), method, url) }));
    add('D', method, path, 503, 'the denylist read fails', async (w) => send(w, method, url, { token: await signToken(w.keys, { claims: { sub: 'fail-user', roles: ['user', 'admin'] } }) }));
  }
  const NEW_PASSWORD = 'a brand new passphrase';
  const WRONG = 'not the password at all';
  /** Five wrong passwords from one client, each refused 403, then `attempt` once more. */
  const afterFiveWrong = async (attempt) => {
    for (let i = 0; i < 5; i++) {
      const res = await attempt();
      assert.equal(res.status, 403);
      await res.arrayBuffer();
    }
    return attempt();
  };
  const ME = '/auth/me';
  add('A', 'patch', ME, 200, 'new user_metadata', async (w) => send(w, 'patch', ME, { token: (await session(w)).access_token, body: { user_metadata: { theme: 'dark' } } }), {
    check: (res, body) => assert.deepEqual(body.user_metadata, { theme: 'dark' }),
  });
  add('A', 'patch', ME, 400, 'user_metadata is not an object', (w, c) => send(w, 'patch', ME, { token: c.s1.access_token, body: { user_metadata: 'dark' } }));
  add('A', 'patch', ME, 413, 'over 16 KiB', (w, c) => send(w, 'patch', ME, { token: c.s1.access_token, body: { user_metadata: { pad: BIG } } }));
  add('A', 'delete', ME, 204, 'the right password', async (w) => send(w, 'delete', ME, { token: (await session(w)).access_token, body: { password: PASSWORD } }));
  add('A', 'delete', ME, 400, 'no password', (w, c) => send(w, 'delete', ME, { token: c.s1.access_token, body: {} }));
  add('A', 'delete', ME, 403, 'a wrong password', async (w) => send(w, 'delete', ME, { token: (await session(w)).access_token, body: { password: WRONG } }));
  add('A', 'delete', ME, 413, 'over 16 KiB', (w, c) => send(w, 'delete', ME, { token: c.s1.access_token, body: { password: BIG } }));
  add('A', 'delete', ME, 429, 'after five wrong passwords', async (w) => {
    const { access_token: token } = await session(w);
    return afterFiveWrong(() => send(w, 'delete', ME, { token, body: { password: WRONG } }));
  });
  for (const method of ['get', 'head']) {
    add('A', method, '/auth/me/export', 200, 'everything about the user', (w, c) => send(w, method, '/auth/me/export', { token: c.s1.access_token }));
  }

  const VR = '/auth/email/verify/request';
  add('A', ...P(VR), 202, 'verified already', (w, c) => send(w, 'post', VR, { token: c.admin.access_token }), {
    check: (res, body) => assert.equal(body.status, 'already_verified'),
  });
  add('A', ...P(VR), 429, 'the registration mailed a link this minute', async (w) => send(w, 'post', VR, { token: (await session(w)).access_token }), {
    check: (res, body) => assert.equal(body.error, 'too_many_requests'),
  });
  add('B', ...P(VR), 503, 'no MAIL_TRANSPORT', async (w) => send(w, 'post', VR, { token: (await session(w)).access_token }));
  const EV = '/auth/email/verify';
  add('A', ...P(EV), 204, 'the link of the registration mail', async (w) => {
    const address = email('verify');
    await (await w.fetch('/auth/register', json({ email: address, password: PASSWORD }))).arrayBuffer();
    return w.fetch(EV, json({ token: await linkOf(w, address, 'verify'), password: PASSWORD }));
  });
  /** A live verification link of a new account of A's, and its address. */
  const liveLink = async (w, tag) => {
    const address = email(tag);
    await (await w.fetch('/auth/register', json({ email: address, password: PASSWORD }))).arrayBuffer();
    return { address, token: await linkOf(w, address, 'verify') };
  };
  add('A', ...P(EV), 401, 'an access token that is not valid', (w) => w.fetch(EV, json({ token: forgedLink('ghv1') }, { authorization: 'Bearer not.a.token' })));
  add('A', ...P(EV), 403, 'a live link without the account\'s password', async (w) => w.fetch(EV, json({ token: (await liveLink(w, 'verify-bare')).token })));
  add('A', ...P(EV), 429, 'after five wrong passwords', async (w) => {
    const { token } = await liveLink(w, 'verify-guess');
    return afterFiveWrong(() => w.fetch(EV, json({ token, password: WRONG })));
  });
  add('A', ...P(EV), 400, 'no token', (w) => w.fetch(EV, json({})));
  add('A', ...P(EV), 400, 'a link never issued', (w) => w.fetch(EV, json({ token: forgedLink('ghv1') })));
  add('A', ...P(EV), 413, 'over 16 KiB', (w) => w.fetch(EV, json({ token: BIG })));
  add('D', ...P(EV), 503, 'the account object throws', (w) => w.fetch(EV, json({ token: forgedLink('ghv1', w.account) })));
  const FG = '/auth/password/forgot';
  add('A', ...P(FG), 202, 'an unknown email', (w) => w.fetch(FG, json({ email: email('nobody') })));
  add('A', ...P(FG), 202, 'an account\'s email', (w, c) => w.fetch(FG, json({ email: c.s2.email })));
  add('A', ...P(FG), 400, 'not an email address', (w) => w.fetch(FG, json({ email: 'nope' })));
  add('A', ...P(FG), 413, 'over 16 KiB', (w) => w.fetch(FG, json({ email: email('big'), pad: BIG })));
  add('B', ...P(FG), 503, 'no MAIL_TRANSPORT', (w) => w.fetch(FG, json({ email: email('nomail') })));
  add('D', ...P(FG), 202, 'the account object throws: still 202, it is asked after the answer', (w) => w.fetch(FG, json({ email: email('down') })));
  const RS = '/auth/password/reset';
  add('A', ...P(RS), 204, 'the link of a reset mail', async (w) => {
    const s = await session(w);
    await (await w.fetch(FG, json({ email: s.email }))).arrayBuffer();
    return w.fetch(RS, json({ token: await linkOf(w, s.email, 'reset'), password: NEW_PASSWORD }));
  });
  add('A', ...P(RS), 400, 'no password', (w) => w.fetch(RS, json({ token: forgedLink('ghp1') })));
  add('A', ...P(RS), 400, 'a link never issued', (w) => w.fetch(RS, json({ token: forgedLink('ghp1'), password: NEW_PASSWORD })));
  add('A', ...P(RS), 400, 'a short password', (w) => w.fetch(RS, json({ token: forgedLink('ghp1'), password: 'short' })));
  add('B', ...P(RS), 400, 'a breached password', (w) => w.fetch(RS, json({ token: forgedLink('ghp1'), password: BREACHED })));
  add('A', ...P(RS), 413, 'over 16 KiB', (w) => w.fetch(RS, json({ token: forgedLink('ghp1'), password: BIG })));
  add('D', ...P(RS), 503, 'the account object throws', (w) => w.fetch(RS, json({ token: forgedLink('ghp1', w.account), password: NEW_PASSWORD })));
  const PC = '/auth/password/change';
  add('A', ...P(PC), 204, 'the current password', async (w) => send(w, 'post', PC, { token: (await session(w)).access_token, body: { current_password: PASSWORD, new_password: NEW_PASSWORD } }));
  add('A', ...P(PC), 400, 'no new_password', (w, c) => send(w, 'post', PC, { token: c.s1.access_token, body: { current_password: PASSWORD } }));
  add('A', ...P(PC), 400, 'a short new password', (w, c) => send(w, 'post', PC, { token: c.s1.access_token, body: { current_password: PASSWORD, new_password: 'short' } }));
  add('B', ...P(PC), 400, 'a breached new password', async (w) => send(w, 'post', PC, { token: (await session(w)).access_token, body: { current_password: PASSWORD, new_password: BREACHED } }));
  add('A', ...P(PC), 403, 'a wrong current password', async (w) => send(w, 'post', PC, { token: (await session(w)).access_token, body: { current_password: WRONG, new_password: NEW_PASSWORD } }));
  add('A', ...P(PC), 413, 'over 16 KiB', (w, c) => send(w, 'post', PC, { token: c.s1.access_token, body: { current_password: PASSWORD, new_password: NEW_PASSWORD, pad: BIG } }));
  add('A', ...P(PC), 429, 'after five wrong passwords', async (w) => {
    const { access_token: token } = await session(w);
    return afterFiveWrong(() => send(w, 'post', PC, { token, body: { current_password: WRONG, new_password: NEW_PASSWORD } }));
  });
  for (const method of ['get', 'head']) {
    add('A', method, '/auth/sessions', 200, 'the live sessions', (w, c) => send(w, method, '/auth/sessions', { token: c.s1.access_token }));
  }
  const SR = '/auth/sessions/{sid}';
  add('A', 'delete', SR, 204, 'another session of the account', async (w) => {
    const s = await session(w);
    const other = await (await w.fetch('/auth/login', json({ email: s.email, password: PASSWORD }))).json();
    return send(w, 'delete', concrete(SR, undefined, { sid: claimsOf(other.access_token).sid }), { token: s.access_token });
  });
  add('A', 'delete', SR, 404, 'not a session of the account', (w, c) => send(w, 'delete', concrete(SR, undefined, { sid: claimsOf(c.s2.access_token).sid }), { token: c.s1.access_token }));

  // Admin: A's admin, and ctx.target (an account it reads and changes; never deleted).
  const AU = '/admin/users';
  const user = (c) => concrete('/admin/users/{sub}', undefined, { sub: c.target.sub });
  for (const method of ['get', 'head']) {
    add('A', method, AU, 200, 'an account\'s email', (w, c) => send(w, method, `${AU}?email=${encodeURIComponent(c.target.email)}`, { token: c.admin.access_token }));
    add('A', method, AU, 400, 'no email', (w, c) => send(w, method, AU, { token: c.admin.access_token }));
    add('A', method, AU, 403, 'a token without the admin role', (w, c) => send(w, method, `${AU}?email=${encodeURIComponent(c.target.email)}`, { token: c.s1.access_token }));
    add('A', method, AU, 404, 'no account has the email', (w, c) => send(w, method, `${AU}?email=${encodeURIComponent(email('nobody'))}`, { token: c.admin.access_token }));
    for (const path of ['/admin/users/{sub}', '/admin/users/{sub}/export']) {
      add('A', method, path, 200, 'an account', (w, c) => send(w, method, concrete(path, undefined, { sub: c.target.sub }), { token: c.admin.access_token }));
      add('A', method, path, 403, 'a token without the admin role', (w, c) => send(w, method, concrete(path, undefined, { sub: c.target.sub }), { token: c.s1.access_token }));
      add('A', method, path, 404, 'no account has the sub', (w, c) => send(w, method, concrete(path), { token: c.admin.access_token }));
    }
  }
  add('A', 'patch', '/admin/users/{sub}', 200, 'new app_metadata and scope', (w, c) => send(w, 'patch', user(c), { token: c.admin.access_token, body: { app_metadata: { plan: 'pro' }, scope: 'api read' } }), {
    check: (res, body) => assert.deepEqual(body.app_metadata, { plan: 'pro' }),
  });
  add('A', 'patch', '/admin/users/{sub}', 400, 'roles is not a list', (w, c) => send(w, 'patch', user(c), { token: c.admin.access_token, body: { roles: 'admin' } }));
  add('A', 'patch', '/admin/users/{sub}', 403, 'a token without the admin role', (w, c) => send(w, 'patch', user(c), { token: c.s1.access_token, body: { disabled: true } }));
  add('A', 'patch', '/admin/users/{sub}', 404, 'no account has the sub', (w, c) => send(w, 'patch', concrete('/admin/users/{sub}'), { token: c.admin.access_token, body: { disabled: false } }));
  add('A', 'patch', '/admin/users/{sub}', 413, 'over 16 KiB', (w, c) => send(w, 'patch', user(c), { token: c.admin.access_token, body: { app_metadata: { pad: BIG } } }));
  add('A', 'delete', '/admin/users/{sub}', 204, 'an account', async (w, c) => {
    const s = await session(w);
    return send(w, 'delete', concrete('/admin/users/{sub}', undefined, { sub: claimsOf(s.access_token).sub }), { token: c.admin.access_token });
  });
  add('A', 'delete', '/admin/users/{sub}', 403, 'a token without the admin role', (w, c) => send(w, 'delete', user(c), { token: c.s1.access_token }));
  add('A', 'delete', '/admin/users/{sub}', 404, 'no account has the sub', (w, c) => send(w, 'delete', concrete('/admin/users/{sub}'), { token: c.admin.access_token }));
  const RVK = '/admin/users/{sub}/revoke-sessions';
  add('A', ...P(RVK), 204, 'an account', (w, c) => send(w, 'post', concrete(RVK, undefined, { sub: c.target.sub }), { token: c.admin.access_token }));
  add('A', ...P(RVK), 403, 'a token without the admin role', (w, c) => send(w, 'post', concrete(RVK, undefined, { sub: c.target.sub }), { token: c.s1.access_token }));
  add('A', ...P(RVK), 404, 'no account has the sub', (w, c) => send(w, 'post', concrete(RVK), { token: c.admin.access_token }));

  // The development outbox: A keeps mail in it (wrangler.toml); B has no MAIL_TRANSPORT, so no route.
  for (const method of ['get', 'head']) {
    add('A', method, '/dev/outbox', 200, 'the mails to one address', (w) => w.fetch(`/dev/outbox?to=${encodeURIComponent(ADMIN_EMAIL)}`, init(method)), {
      check: (res, body) => { if (body) assert.ok(body.mails.some((m) => m.kind === 'verify')); },
    });
  }
  for (const method of METHODS) add('B', method, '/dev/outbox', 404, 'no MAIL_TRANSPORT: the route does not exist', (w) => w.fetch('/dev/outbox', init(method)));

  // OAuth.
  const T = '/oauth/token';
  add('A', ...P(T), 400, 'invalid_scope (not spent)', (w, c) => w.fetch(T, form({ grant_type: 'refresh_token', refresh_token: c.s6.refresh_token, scope: 'api admin' })));
  add('A', ...P(T), 200, 'the refresh grant, narrowed', (w, c) => w.fetch(T, form({ grant_type: 'refresh_token', refresh_token: c.s6.refresh_token, client_id: 'gatehouse', scope: 'read' })), {
    check: (res, body) => assert.equal(body.scope, 'read'),
  });
  add('A', ...P(T), 400, 'grant_type missing', (w) => w.fetch(T, form({ refresh_token: UNKNOWN_RT })));
  add('A', ...P(T), 400, 'a repeated parameter', (w) => w.fetch(T, form('grant_type=refresh_token&grant_type=refresh_token')));
  add('A', ...P(T), 400, 'JSON is not a form', (w) => w.fetch(T, json({ grant_type: 'refresh_token', refresh_token: UNKNOWN_RT })));
  add('A', ...P(T), 400, 'unsupported_grant_type', (w) => w.fetch(T, form({ grant_type: 'password', username: 'a', password: 'b' })));
  add('A', ...P(T), 400, 'invalid_grant', (w) => w.fetch(T, form({ grant_type: 'refresh_token', refresh_token: UNKNOWN_RT })));
  add('A', ...P(T), 400, 'a DPoP proof signed with another key', (w) => w.fetch(T, form({ grant_type: 'refresh_token', refresh_token: UNKNOWN_RT }, tokenProof(w, DPOP_KEY, T, { header: { jwk: makeKey('EdDSA').jwk } }))));
  add('E', ...P(T), 400, 'a DPoP proof without the server nonce', (w) => w.fetch(T, form({ grant_type: 'refresh_token', refresh_token: UNKNOWN_RT }, tokenProof(w, DPOP_KEY, T))));
  add('A', ...P(T), 200, 'the refresh grant with a DPoP proof: bound', (w, c) => w.fetch(T, form({ grant_type: 'refresh_token', refresh_token: c.s8.refresh_token }, tokenProof(w, DPOP_KEY, T))), {
    check: (res, body) => assert.equal(body.token_type, 'DPoP'),
  });
  add('A', ...P(T), 401, 'another client_id', (w) => w.fetch(T, form({ grant_type: 'refresh_token', refresh_token: UNKNOWN_RT, client_id: 'someone' })));
  add('A', ...P(T), 401, 'client credentials', (w) => w.fetch(T, form({ grant_type: 'refresh_token', refresh_token: UNKNOWN_RT }, basic('gatehouse', 'x'))));
  add('A', ...P(T), 413, 'over 16 KiB', (w) => w.fetch(T, form({ grant_type: 'refresh_token', refresh_token: BIG })));
  add('D', ...P(T), 503, 'the account object throws', (w) => w.fetch(T, form({ grant_type: 'refresh_token', refresh_token: refreshTokenFor(w.account) })));

  // F: the abuse limits (docs/HARDENING.md "Limits"). Each scenario is its own client address.
  const from = (ip, extra = {}) => ({ 'cf-connecting-ip': `198.51.100.${ip}`, ...extra });
  const GOOD = { 'cf-turnstile-response': 'good' };
  /** Sends until the answer is 429 (the limit is one a minute; a window may end between two). */
  const until429 = async (send) => {
    let res;
    for (let i = 0; i < 4; i += 1) {
      res = await send();
      if (res.status === 429) return res;
      await res.arrayBuffer();
    }
    return res;
  };
  const R = '/auth/register';
  add('F', ...P(R), 202, 'uniform: a new email', (w) => w.fetch(R, json({ email: email('uni'), password: PASSWORD, ...GOOD }, from(1))));
  add('F', ...P(R), 202, 'uniform: a taken email, the same answer', async (w) => {
    const address = email('uni-taken');
    await (await w.fetch(R, json({ email: address, password: PASSWORD, ...GOOD }, from(2)))).arrayBuffer();
    return w.fetch(R, json({ email: address, password: PASSWORD, ...GOOD }, from(3)));
  });
  add('F', ...P(R), 400, 'no Turnstile token', (w) => w.fetch(R, json({ email: email('ts'), password: PASSWORD }, from(4))));
  add('F', ...P(R), 403, 'a Turnstile token siteverify refuses', (w) => w.fetch(R, json({ email: email('ts'), password: PASSWORD, 'cf-turnstile-response': 'bad' }, from(5))));
  add('F', ...P(R), 429, 'registrations from one address', (w) => until429(() => w.fetch(R, json({ email: email('many'), password: PASSWORD, ...GOOD }, from(6)))));
  add('F', ...P(FG), 400, 'no Turnstile token', (w) => w.fetch(FG, json({ email: email('ts') }, from(30))));
  add('F', ...P(FG), 403, 'a Turnstile token siteverify refuses', (w) => w.fetch(FG, json({ email: email('ts'), 'cf-turnstile-response': 'bad' }, from(31))));
  add('F', ...P(FG), 503, 'siteverify fails', (w) => w.fetch(FG, json({ email: email('ts'), 'cf-turnstile-response': 'down' }, from(32))));
  add('F', ...P(EV), 429, 'link redemptions from one address (the registration limit)', (w) => until429(() => w.fetch(EV, json({ token: forgedLink('ghv1') }, from(33)))));
  add('F', ...P(RS), 429, 'password resets from one address (the registration limit)', (w) => until429(() => w.fetch(RS, json({ token: forgedLink('ghp1'), password: NEW_PASSWORD }, from(34)))));
  const L = '/auth/login';
  add('F', ...P(L), 400, 'no Turnstile token', (w) => w.fetch(L, json({ email: email('ts'), password: PASSWORD }, from(7))));
  add('F', ...P(L), 403, 'a Turnstile token siteverify refuses', (w) => w.fetch(L, json({ email: email('ts'), password: PASSWORD }, from(8, { 'cf-turnstile-response': 'bad' }))));
  add('F', ...P(L), 429, 'logins from one address', (w) => until429(() => w.fetch(L, json({ email: email('spray'), password: 'wrong password!', ...GOOD }, from(9)))));
  const passwordless = (extra = {}) => ({ email: email('pk-ts'), credential: authenticator().get({ challenge: 'AAAA' }), ...extra });
  add('F', ...P(LV), 400, 'passwordless, no Turnstile token', (w) => w.fetch(LV, json(passwordless(), from(12))));
  add('F', ...P(LV), 403, 'passwordless, a Turnstile token siteverify refuses', (w) => w.fetch(LV, json(passwordless({ 'cf-turnstile-response': 'bad' }), from(13))));
  add('F', ...P(LV), 429, 'passwordless logins from one address', (w) => until429(() => w.fetch(LV, json(passwordless(GOOD), from(15)))), {
    check: (res, body) => assert.equal(body.error, 'too_many_requests'),
  });
  add('F', ...P(LO), 429, 'passwordless options from one address', (w) => until429(() => w.fetch(LO, json({ email: email('lo') }, from(14)))));
  add('F', ...P(FG), 429, 'password resets from one address (the registration limit)', (w) => until429(() => w.fetch(FG, json({ email: email('forgot') }, from(16)))));
  add('F', ...P('/auth/refresh'), 429, 'refreshes from one address', (w) => until429(() => w.fetch('/auth/refresh', json({ refresh_token: UNKNOWN_RT }, from(10)))));
  add('F', ...P(T), 429, 'refreshes from one address', (w) => until429(() => w.fetch(T, form({ grant_type: 'refresh_token', refresh_token: UNKNOWN_RT }, from(11)))));

  const V = '/oauth/revoke';
  add('A', ...P(V), 200, 'an unknown token', (w) => w.fetch(V, form({ token: 'nonsense' })));
  add('A', ...P(V), 200, 'an access token, by an introspection client', (w, c) => w.fetch(V, form({ token: c.s7.access_token, token_type_hint: 'access_token' }, basic(CLIENT, SECRET))));
  add('A', ...P(V), 400, 'token missing', (w) => w.fetch(V, form({})));
  add('A', ...P(V), 401, 'a wrong client secret', (w) => w.fetch(V, form({ token: 'x' }, basic(CLIENT, 'wrong'))));
  add('A', ...P(V), 413, 'over 16 KiB', (w) => w.fetch(V, form({ token: BIG })));
  add('D', ...P(V), 503, 'the account object throws', (w) => w.fetch(V, form({ token: refreshTokenFor(w.account) })));

  const I = '/oauth/introspect';
  add('A', ...P(I), 200, 'an active access token', (w, c) => w.fetch(I, form({ token: c.s1.access_token }, basic(CLIENT, SECRET))), {
    check: (res, body) => assert.equal(body.token_type, 'Bearer'),
  });
  add('A', ...P(I), 200, 'a live refresh token (client_secret_post)', (w, c) => w.fetch(I, form({ token: c.s1.refresh_token, client_id: CLIENT, client_secret: SECRET })), {
    check: (res, body) => assert.equal(body.token_type, 'refresh_token'),
  });
  add('A', ...P(I), 200, 'inactive', (w) => w.fetch(I, form({ token: UNKNOWN_RT }, basic(CLIENT, SECRET))), {
    check: (res, body) => assert.deepEqual(body, { active: false }),
  });
  add('A', ...P(I), 400, 'two client authentication methods', (w) => w.fetch(I, form({ token: 'x', client_id: CLIENT, client_secret: SECRET }, basic(CLIENT, SECRET))));
  add('A', ...P(I), 401, 'no client credentials', (w) => w.fetch(I, form({ token: 'x' })));
  add('A', ...P(I), 413, 'over 16 KiB', (w) => w.fetch(I, form({ token: BIG }, basic(CLIENT, SECRET))));
  add('D', ...P(I), 503, 'a refresh token, the account object throws', (w) => w.fetch(I, form({ token: refreshTokenFor(w.account) }, basic(CLIENT, SECRET))));
  add('D', ...P(I), 503, 'an access token, the denylist read fails', async (w) => w.fetch(I, form({ token: await signToken(w.keys, { claims: { sub: 'fail-user' } }) }, basic(CLIENT, SECRET))));

  return list;
}

// ------------------------------------------------------------------------------------------------
// Checking one answer against the document.

const byKey = new Map(operations().map((o) => [o.key, o]));

/** The documented response for a status: its own entry, or `default`. */
function documented(key, status) {
  const { op } = byKey.get(key);
  if (op.responses[String(status)]) return { code: String(status), response: deref(op.responses[String(status)]) };
  if (op.responses.default) return { code: 'default', response: deref(op.responses.default) };
  return null;
}

function checkAnswer(s, res, bytes) {
  const where = `${s.key} → ${res.status} (${s.on}: ${s.what})`;
  const found = documented(s.key, res.status);
  assert.ok(found, `${where}: status ${res.status} is not documented for this operation: ${bytes.toString('utf8').slice(0, 200)}`);
  assert.equal(res.status, s.status, `${where}: expected ${s.status}: ${bytes.toString('utf8').slice(0, 200)}`);
  if (s.expectKey) assert.equal(found.code, s.expectKey, `${where}: answered by the ${found.code} response`);
  const { response } = found;
  // Headers: required ones present, any present one valid.
  for (const [name, h] of Object.entries(response.headers ?? {})) {
    const header = deref(h);
    const value = res.headers.get(name);
    if (header.required) assert.ok(value !== null, `${where}: header ${name} is required`);
    if (value !== null && header.schema) {
      const validate = validator(header.schema, true);
      assert.ok(validate({ v: value }), `${where}: header ${name}: ${JSON.stringify(value)}: ${headerAjv.errorsText(validate.errors)}`);
    }
  }
  // Body: none where none is documented (always for HEAD), else a documented media type and schema.
  const content = response.content ?? {};
  if (s.method === 'head') assert.equal(Object.keys(content).length, 0, `${where}: a HEAD response documents a body`);
  if (Object.keys(content).length === 0) {
    assert.equal(bytes.length, 0, `${where}: a body where none is documented: ${bytes.toString('utf8').slice(0, 120)}`);
    return null;
  }
  assert.ok(bytes.length > 0, `${where}: no body`);
  const type = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  const media = content[type] ?? content['*/*'];
  assert.ok(media, `${where}: content type ${type} is not documented (${Object.keys(content)})`);
  if (type !== 'application/json') return null;
  const body = JSON.parse(bytes.toString('utf8'));
  if (media.schema) {
    const validate = validator(media.schema);
    assert.ok(validate(body), `${where}: body ${JSON.stringify(body).slice(0, 300)}: ${ajv.errorsText(validate.errors)}`);
  }
  return body;
}

/** The error codes a documented error response allows (its `error` enum), if it narrows them. */
function errorCodes(response) {
  const schema = response.content?.['application/json']?.schema;
  const narrowed = schema?.allOf?.find((s) => s.properties?.error)?.properties.error;
  if (!narrowed) return null;
  return narrowed.enum ?? [narrowed.const];
}

// ------------------------------------------------------------------------------------------------

describe('OpenAPI document', () => {
  test('is OpenAPI 3.1 with consistent structure', () => {
    assert.match(doc.openapi, /^3\.1\./);
    assert.deepEqual(doc.servers, [{ url: '/' }]);
    const ids = new Set();
    for (const { key, op } of operations()) {
      assert.ok(op.operationId && !ids.has(op.operationId), `${key}: a unique operationId`);
      ids.add(op.operationId);
      assert.ok(Object.keys(op.responses).length > 0, `${key}: responses`);
      for (const [code, r] of Object.entries(op.responses)) {
        assert.match(code, /^([1-5]\d\d|default)$/, `${key}: ${code}`);
        const response = deref(r);
        assert.ok(response.description, `${key} ${code}: a description`);
        for (const h of Object.values(response.headers ?? {})) assert.ok(deref(h).schema, `${key} ${code}: header schemas`);
        for (const media of Object.values(response.content ?? {})) if (media.schema) validator(media.schema); // compiles
      }
      for (const scheme of (op.security ?? []).flatMap((s) => Object.keys(s))) {
        assert.ok(doc.components.securitySchemes[scheme], `${key}: security scheme ${scheme}`);
      }
    }
    // Every path documents every method (the ones a route refuses, with the status it refuses them).
    for (const [path, item] of Object.entries(doc.paths)) for (const m of METHODS) assert.ok(item[m], `${m} ${path} is documented`);
  });

  test('documents exactly the routes of src/routes.rs and src/edge/mod.rs (and the static /openapi.json)', () => {
    const routes = codeRoutes();
    const assets = new Set(readdirSync(join(ROOT, 'www')).map((f) => `/${f}`));
    const expected = new Set([...routes.keys(), '/openapi.json']);
    assert.ok(assets.has('/openapi.json'));
    assert.deepEqual(Object.keys(doc.paths).sort(), [...expected].sort(), 'documented paths = the code\'s routes');
    for (const [path, route] of routes) {
      if (route.forwarded) continue;
      const item = doc.paths[path];
      const success = METHODS.filter((m) => Object.keys(item[m].responses).some((c) => /^2/.test(c) && !(m === 'options' && c === '204')));
      assert.deepEqual(success.sort(), [...route.methods].sort(), `${path}: the methods that succeed are the code's`);
      for (const m of METHODS.filter((x) => !route.methods.includes(x))) {
        const r = item[m].responses['405'];
        assert.ok(r, `${m} ${path}: 405`);
        assert.equal(deref(deref(r).headers.Allow).schema.const, route.allow, `${m} ${path}: Allow is the code's`);
      }
    }
  });
});

describe('OpenAPI document against the running worker', () => {
  const rt = {};
  const ctx = {};
  const seen = new Map(); // operation key -> Set of response codes produced
  const codesSeen = new Map(); // `${key} ${code}` -> Set of error codes produced

  before(async () => {
    ctx.siteverify = await startSiteverify();
    ctx.range = await startRange();
    ctx.downIssuer = await startFakeIssuer({ algs: ['RS256'] });
    ctx.downIssuer.mode = 'error';
    ctx.origin = await startOrigin();
    // Started together; whatever did start is stopped in after(), even if another one failed.
    const starting = {
      A: startWorker({
        vars: {
          ALLOWED_ORIGINS: APP,
          DEFAULT_SCOPE: 'api read',
          INTROSPECTION_CLIENTS: JSON.stringify({ [CLIENT]: SECRET }),
          ROUTE_POLICIES: JSON.stringify([{ prefix: '/api/', scope: 'api' }]),
          TRUSTED_ISSUERS: JSON.stringify([{ issuer: ctx.downIssuer.url, jwks_url: ctx.downIssuer.jwksUrl, audience: 'third-aud' }]),
          JWKS_COOLDOWN_SECONDS: '1',
          ADMIN_EMAILS: ADMIN_EMAIL,
        },
      }),
      // An empty MAIL_TRANSPORT overrides wrangler.toml's `outbox` and counts as unset: no mail.
      // B also refuses breached passwords, against a loopback range API.
      B: startWorker({ vars: { ORIGIN_URL: ctx.origin.url, ALLOWED_ORIGINS: APP, MAIL_TRANSPORT: '', PASSWORD_BREACH_CHECK: 'hibp', HIBP_RANGE_URL: ctx.range.url } }),
      C: startMisconfigured({ ROUTE_POLICIES: 'not json' }),
      D: startFaulty(),
      F: startWorker({
        ratelimits: ['LOGIN_IP', 'LOGIN_ACCOUNT', 'REGISTER_IP', 'REFRESH_IP'].map((n, i) => ({ name: `RATE_LIMIT_${n}`, namespace_id: String(1001 + i), simple: { limit: 1, period: 60 } })),
        vars: { TURNSTILE_SECRET: 'openapi-secret', TURNSTILE_VERIFY_URL: ctx.siteverify.url, REGISTRATION_MODE: 'uniform' },
      }),
      E: startWorker({ vars: { DPOP_MODE: 'required', DPOP_NONCE_SECRET: randomBytes(32).toString('base64url'), ROUTE_POLICIES: JSON.stringify([{ prefix: '/api/', scope: 'api' }]) } }),
    };
    const started = await Promise.allSettled(Object.values(starting));
    Object.keys(starting).forEach((name, i) => {
      if (started[i].status === 'fulfilled') rt[name] = name === 'D' ? started[i].value : withTrace(started[i].value);
    });
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    const { A } = rt;
    ctx.apiToken = await signToken(A.keys, { claims: { scope: 'api read' } });
    ctx.s1 = await session(A);
    ctx.s2 = await session(A);
    ctx.s3 = await session(A, { transport: 'cookie' });
    ctx.s4 = await session(A);
    ctx.s5 = await session(A);
    ctx.s6 = await session(A);
    ctx.s7 = await session(A);
    ctx.s8 = await session(A);
    // The admin: registered, verified through the link of the registration mail, logged in.
    const reg = await A.fetch('/auth/register', json({ email: ADMIN_EMAIL, password: PASSWORD }));
    assert.equal(reg.status, 201);
    await reg.arrayBuffer();
    const verified = await A.fetch('/auth/email/verify', json({ token: await linkOf(A, ADMIN_EMAIL, 'verify'), password: PASSWORD }));
    assert.equal(verified.status, 204);
    const admin = await A.fetch('/auth/login', json({ email: ADMIN_EMAIL, password: PASSWORD }));
    assert.equal(admin.status, 200);
    ctx.admin = await admin.json();
    assert.ok(claimsOf(ctx.admin.access_token).roles.includes('admin'));
    // The account the admin looks at and changes (never deletes).
    ctx.target = await session(A);
    ctx.target.sub = claimsOf(ctx.target.access_token).sub;
  });
  after(async () => {
    await Promise.allSettled(Object.values(rt).map((w) => w?.cleanup()));
    await ctx.downIssuer?.close();
    await ctx.siteverify?.close();
    await ctx.range?.close();
    await ctx.origin?.close();
  });

  test('GET /openapi.json serves this document', async () => {
    const res = await rt.A.fetch('/openapi.json');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const served = await res.json();
    assert.match(served.openapi, /^3\.1/);
    assert.deepEqual(served, doc);
    const meta = await (await rt.A.fetch('/.well-known/oauth-authorization-server')).json();
    assert.equal(meta.service_documentation, `${ISSUER}/openapi.json`);
  });

  test('every scenario answers its documented status, headers and body', async () => {
    const list = scenarios();
    const failures = [];
    for (const s of list) {
      const w = rt[s.on];
      try {
        assert.ok(byKey.has(s.key), `scenario for an undocumented operation ${s.key}`);
        const res = await s.send(w, ctx);
        const bytes = Buffer.from(await res.arrayBuffer());
        const body = checkAnswer(s, res, bytes);
        if (s.check) s.check(res, body);
        const code = documented(s.key, res.status).code;
        if (!seen.has(s.key)) seen.set(s.key, new Set());
        seen.get(s.key).add(code);
        if (body && typeof body.error === 'string') {
          const k = `${s.key} ${code}`;
          if (!codesSeen.has(k)) codesSeen.set(k, new Set());
          codesSeen.get(k).add(body.error);
        }
      } catch (e) {
        failures.push(`${s.key} [${s.on}: ${s.what}]: ${e.message}`);
      }
    }
    assert.deepEqual(failures, [], `${failures.length} of ${list.length} scenarios failed:\n${failures.join('\n')}`);
  });

  test('every documented status of every operation was produced', () => {
    const missing = [];
    for (const { key, op } of operations()) {
      for (const code of Object.keys(op.responses)) if (!seen.get(key)?.has(code)) missing.push(`${key} ${code}`);
    }
    assert.deepEqual(missing, [], 'documented but never produced');
  });

  test('every documented error code was produced', () => {
    const missing = [];
    for (const { key, op } of operations()) {
      for (const [code, r] of Object.entries(op.responses)) {
        if (key.startsWith('head ')) continue; // no body to read the code from
        for (const error of errorCodes(deref(r)) ?? []) if (!codesSeen.get(`${key} ${code}`)?.has(error)) missing.push(`${key} ${code} ${error}`);
      }
    }
    assert.deepEqual(missing, [], 'error codes documented but never produced');
  });
});
