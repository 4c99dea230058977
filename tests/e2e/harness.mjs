// End-to-end harness: runs the built worker under `wrangler dev` (real workerd, local KV and
// Durable Objects) on free loopback ports, with fresh keys, and stops it by the PID it started.
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SignJWT, importJWK } from 'jose';
import { devKeys, devMfaKey } from '../../scripts/dev-keys.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WRANGLER = join(ROOT, 'node_modules', '.bin', 'wrangler');
export const ISSUER = 'https://gatehouse.test';
export const AUDIENCE = 'gatehouse-e2e';

const handedOut = new Set();
/** A loopback port that was free a moment ago, never the same one twice in this process (workers
 *  started side by side must not race for one port). */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port: p } = srv.address();
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Debian's Chromium (or CHROMIUM_PATH), headless, with the flags a closed network needs. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Starts the browser every browser test drives (playwright-core). */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
}

/** Registers `email` through the page's form, then signs in with the same password. */
export async function registerAndSignIn(page, email, password) {
  await page.fill('#register-email', email);
  await page.fill('#register-password', password);
  await page.click('#register-form button');
  await page.locator('#status').filter({ hasText: 'Account created' }).waitFor();
  await page.fill('#login-password', password);
  await page.keyboard.press('Enter');
  await page.locator('#signed-in').waitFor({ state: 'visible' });
}

/** Waits until `predicate()` is true, checking every 100 ms; throws after `timeoutMs`. */
export async function until(what, predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * The two Workers of a split deployment as wrangler dev runs them, from the tracked
 * wrangler.edge.toml and wrangler.issuer.toml: each config copied into a directory of its own (with
 * absolute paths, no build step, and the test's vars), beside a .dev.vars holding only that Worker's
 * secrets. `verifier`: the edge alone, without its service binding (a verifier-only deployment).
 */
function splitConfigs(dir, { vars, edgeVars, issuerVars, keys, verifier }) {
  const load = (file) => parseToml(readFileSync(join(ROOT, file), 'utf8'));
  const write = (name, config, secrets) => {
    const at = join(dir, name);
    mkdirSync(at, { recursive: true });
    delete config.build;
    writeFileSync(join(at, 'wrangler.json'), JSON.stringify(config, null, 2));
    const quote = (v) => `'${String(v).replace(/'/g, '')}'`;
    writeFileSync(join(at, '.dev.vars'), Object.entries(secrets).map(([k, v]) => `${k}=${quote(v)}`).join('\n') + '\n');
    return join(at, 'wrangler.json');
  };
  const edge = load('wrangler.edge.toml');
  edge.main = join(ROOT, edge.main);
  edge.vars = { ...edge.vars, ISSUER, AUDIENCE, ...vars, ...edgeVars };
  if (verifier) delete edge.services;
  const configs = [write('edge', edge, {})];
  if (!verifier) {
    const issuer = load('wrangler.issuer.toml');
    issuer.main = join(ROOT, issuer.main);
    issuer.assets.directory = join(ROOT, issuer.assets.directory);
    issuer.vars = { ...issuer.vars, ISSUER, AUDIENCE, ...vars, ...issuerVars };
    configs.push(write('issuer', issuer, keys ? { SIGNING_KEYS: JSON.stringify(keys) } : {}));
  }
  return configs;
}

/**
 * wrangler.toml as wrangler dev runs it, with its `[[ratelimits]]` replaced by `ratelimits` (an
 * array; [] turns every limit off): copied as JSON with absolute paths and no build step.
 */
function mainConfig(dir, ratelimits, bindings = {}) {
  const config = parseToml(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8'));
  delete config.build;
  delete config.env;
  config.main = join(ROOT, config.main);
  config.assets.directory = join(ROOT, config.assets.directory);
  if (ratelimits) config.ratelimits = ratelimits;
  Object.assign(config, bindings);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'wrangler.json'), JSON.stringify(config, null, 2));
  return join(dir, 'wrangler.json');
}

/**
 * Starts the worker. `vars` override wrangler.toml [vars]; `keys` defaults to fresh dev keys.
 * `ratelimits`: the Rate Limiting bindings instead of wrangler.toml's (all-in-one only).
 * `split: 'both'` runs the edge and issuer Workers of a split deployment in one wrangler dev session
 * (the edge in front, `edgeVars`/`issuerVars` for one of them only); `split: 'verifier'` runs the edge
 * Worker alone. `port`: listen there, for a test whose vars name the origin. `bindings`: top-level
 * wrangler config entries added to wrangler.toml's (all-in-one only), e.g. `{ send_email: [...] }`.
 */
export async function startWorker({ vars = {}, keys, persistDir, split, edgeVars = {}, issuerVars = {}, ratelimits, bindings, port } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-e2e-'));
  const keySet = keys === undefined ? await devKeys() : keys;
  const persist = persistDir ?? join(dir, 'state');
  const env = { ISSUER, AUDIENCE, MFA_ENCRYPTION_KEY: devMfaKey(), ...vars };
  const envFile = join(dir, 'test.env');
  const quote = (v) => `'${String(v).replace(/'/g, '')}'`;
  const writeEnv = (keys, vars) => writeFileSync(
    envFile,
    [...(keys ? [`SIGNING_KEYS=${quote(JSON.stringify(keys))}`] : []), ...Object.entries(vars).map(([k, v]) => `${k}=${quote(v)}`)].join('\n') + '\n',
  );
  writeEnv(keySet, env);
  const worker = {
    dir, persist, keys: keySet, env, envFile, proc: null, port: 0, url: '', logs: '',
    /** New SIGNING_KEYS (null: none) and extra vars for the next (re)start. */
    reconfigure({ keys = this.keys, vars = {} } = {}) {
      this.keys = keys;
      this.env = { ...this.env, ...vars };
      writeEnv(keys, this.env);
    },
    /** Starts wrangler dev; a start that fails (a port taken between `freePort` and wrangler's
     *  bind, which wrangler's own ephemeral listeners can do) is tried again on new ports, twice. */
    async start() {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.startOnce();
        } catch (e) {
          await this.stop();
          if (attempt === 3) throw e;
          console.error(`# wrangler dev did not start (attempt ${attempt}), trying new ports: ${String(e.message).slice(0, 2000)}`);
        }
      }
    },
    async startOnce() {
      // `port`: a fixed port (a test whose vars name its origin).
      this.port = port ?? await freePort();
      const inspector = await freePort();
      this.url = `http://127.0.0.1:${this.port}`;
      this.logs = '';
      const configs = split
        ? splitConfigs(join(dir, 'configs'), { vars: this.env, edgeVars, issuerVars, keys: this.keys, verifier: split === 'verifier' })
          .flatMap((c) => ['-c', c])
        : [...(ratelimits || bindings ? ['-c', mainConfig(join(dir, 'main'), ratelimits, bindings)] : []), '--env-file', this.envFile];
      this.proc = spawn(
        WRANGLER,
        ['dev', ...configs, '--ip', '127.0.0.1', '--port', String(this.port), '--inspector-port', String(inspector),
          '--persist-to', this.persist, '--show-interactive-dev-session=false', '--log-level', 'log'],
        {
          cwd: ROOT,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, SKIP_WORKER_BUILD: '1', WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', CI: 'true' },
        },
      );
      this.proc.stdout.on('data', (d) => { this.logs += d; });
      this.proc.stderr.on('data', (d) => { this.logs += d; });
      const deadline = Date.now() + 90_000;
      while (Date.now() < deadline) {
        if (this.proc.exitCode !== null) throw new Error(`wrangler exited early:\n${this.logs}`);
        try {
          // A verifier-only edge has no JWKS route: any answer of its own means it is up.
          const r = await fetch(`${this.url}/.well-known/jwks.json`);
          await r.arrayBuffer();
          if (r.status === 200 || (split === 'verifier' && r.status === 404)) return this;
        } catch { /* not up yet */ }
        await sleep(200);
      }
      throw new Error(`wrangler did not become ready in 90 s:\n${this.logs}`);
    },
    async stop() {
      const proc = this.proc;
      if (!proc) return;
      if (proc.exitCode !== null) {
        // wrangler is gone; anything it left in its process group (workerd) goes with it.
        try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* nothing left */ }
        this.proc = null;
        return;
      }
      const exited = new Promise((r) => proc.once('exit', r));
      try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* already gone */ }
      const timer = setTimeout(() => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000);
      await exited;
      clearTimeout(timer);
      this.proc = null;
    },
    async restart() { await this.stop(); return this.start(); },
    /** Kills the runtime at once (SIGKILL to the process group we started), as a crash would. */
    async kill() {
      const proc = this.proc;
      if (!proc || proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* already gone */ }
      await exited;
      this.proc = null;
    },
    async cleanup() { await this.stop(); rmSync(this.dir, { recursive: true, force: true }); },
    /** Writes a KV entry into the local DENYLIST namespace the running worker reads. */
    async kvPut(key, value) {
      await promisify(execFile)(WRANGLER, ['kv', 'key', 'put', '--binding', 'DENYLIST', '--local', '--persist-to', this.persist, key, value], {
        cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' },
      });
    },
    fetch(path, init) { return fetch(`${this.url}${path}`, init); },
  };
  return worker.start();
}

/**
 * The worker's modules for Miniflare, as wrangler bundles them: the thin entry (js/entry.mjs) in
 * front of the worker-build output in build/. `build` names another worker-build output: with its
 * own thin entry if `<build>/../js/entry.mjs` exists, else alone with its own shim (a baseline
 * build from before the entry existed).
 */
export function workerModules(build, { entry = 'entry.mjs' } = {}) {
  // Another checkout's or copy's build, with its thin entry beside it (<dir>/js, <dir>/build).
  if (build && existsSync(join(dirname(build), 'js', entry))) {
    const root = dirname(build);
    return {
      modules: [
        { type: 'ESModule', path: join(root, 'js', entry) },
        ...(existsSync(join(root, 'js', 'front.mjs')) ? [{ type: 'ESModule', path: join(root, 'js', 'front.mjs') }] : []),
        { type: 'ESModule', path: join(build, 'index.js') },
        { type: 'CompiledWasm', path: join(build, 'index_bg.wasm') },
      ],
      modulesRoot: root,
    };
  }
  if (build) {
    return {
      modules: [
        { type: 'ESModule', path: join(build, 'index.js') },
        { type: 'CompiledWasm', path: join(build, 'index_bg.wasm') },
      ],
      modulesRoot: build,
    };
  }
  // Module names are paths under ROOT, so the entry's '../build/index.js' resolves.
  return {
    modules: [
      { type: 'ESModule', path: join(ROOT, 'js', entry) },
      { type: 'ESModule', path: join(ROOT, 'js', 'front.mjs') },
      { type: 'ESModule', path: join(ROOT, 'build', 'index.js') },
      { type: 'CompiledWasm', path: join(ROOT, 'build', 'index_bg.wasm') },
    ],
    modulesRoot: ROOT,
  };
}

/** Signs an access token with one of the worker's keys (by alg) using panva/jose. */
export async function signToken(keySet, { alg = 'EdDSA', claims = {}, header = {}, now = Math.floor(Date.now() / 1000), ttl = 300 } = {}) {
  const jwk = keySet.keys.find((k) => k.alg === alg);
  const key = await importJWK(jwk, alg);
  const body = {
    iss: ISSUER, aud: AUDIENCE, sub: 'user-1', iat: now, exp: now + ttl, jti: `jti-${Math.random().toString(36).slice(2)}`,
    sid: 'sid-1', client_id: 'e2e', scope: 'read', roles: ['user'], email: 'user@example.com', ...claims,
  };
  for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k];
  return new SignJWT(body).setProtectedHeader({ alg, typ: 'at+jwt', kid: jwk.kid, ...header }).sign(key);
}

/** A loopback origin that answers every request with what it received, as JSON. */
export async function startEchoOrigin() {
  const received = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(seen);
      const body = JSON.stringify(seen);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-origin': 'echo' });
      res.end(body);
    });
  });
  // WebSocket upgrades: the RFC 6455 handshake, with the identity the origin saw in a header.
  server.on('upgrade', (req, socket) => {
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    received.push({ method: req.method, url: req.url, headers: req.headers, upgrade: true });
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Seen-Sub: ${req.headers['x-auth-sub'] ?? ''}\r\n\r\n`);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, received, close: () => new Promise((r) => server.close(r)) };
}

/** The parsed WWW-Authenticate challenge of a response. */
export function challenge(res) {
  const h = res.headers.get('www-authenticate');
  if (!h) return null;
  const [scheme, rest = ''] = h.split(/ (.*)/s);
  const params = {};
  for (const m of rest.matchAll(/(\w+)="([^"]*)"/g)) params[m[1]] = m[2];
  return { scheme, params, raw: h };
}

/**
 * A third-party issuer on loopback: its JWK Set at `/jwks`, with a fetch counter and modes to make
 * the endpoint fail (`error`), hang (`hang`) or serve normally (`ok`). `sign` makes its tokens.
 */
export async function startFakeIssuer({ algs = ['RS256', 'ES256'] } = {}) {
  const { generateKeyPair, exportJWK, SignJWT } = await import('jose');
  const issuer = {
    keys: [], fetches: 0, mode: 'ok', hung: [],
    async addKey(alg, kid = `${alg.toLowerCase()}-${Math.random().toString(36).slice(2, 8)}`) {
      const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
      const key = { alg, kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
      this.keys = this.keys.filter((k) => k.kid !== kid).concat(key);
      return key;
    },
    /** Signs a token with one of its keys (a key object, or the first of an alg). */
    async sign(claims, { key, alg = 'RS256', typ = 'at+jwt', header = {} } = {}) {
      const k = key ?? this.keys.find((x) => x.alg === alg);
      const now = Math.floor(Date.now() / 1000);
      const prot = { alg: k.alg, kid: k.kid, ...header };
      if (typ) prot.typ = typ;
      return new SignJWT({ iss: this.url, sub: 'third-party-user', aud: 'third-aud', iat: now, exp: now + 300, ...claims })
        .setProtectedHeader(prot).sign(k.privateKey);
    },
  };
  const server = createServer((req, res) => {
    if (req.url !== '/jwks') { res.writeHead(404); res.end(); return; }
    issuer.fetches += 1;
    if (issuer.mode === 'hang') { issuer.hung.push(res); return; }
    if (issuer.mode === 'error') { res.writeHead(500, { 'content-length': 0 }); res.end(); return; }
    const body = JSON.stringify({ keys: issuer.keys.map((k) => k.jwk) });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  issuer.url = `http://127.0.0.1:${server.address().port}`;
  issuer.jwksUrl = `${issuer.url}/jwks`;
  for (const alg of algs) await issuer.addKey(alg);
  issuer.close = () => {
    for (const res of issuer.hung) res.destroy();
    server.closeAllConnections?.();
    return new Promise((r) => server.close(r));
  };
  return issuer;
}

/**
 * A KV namespace wrapper for Miniflare (`wrappedBindings`, around a real namespace bound as INNER)
 * that fails on demand: reads of keys containing "fail" throw; writes throw while INNER has
 * "__fault:put".
 */
export const KV_FAULT = `
class FaultyKv {
  constructor(env) { this.env = env; }
  async get(key, options) {
    if (key.includes('fail')) throw new Error('injected KV read failure');
    return this.env.INNER.get(key, options);
  }
  async getWithMetadata(key, options) { return this.env.INNER.getWithMetadata(key, options); }
  async put(key, value, options) {
    if (await this.env.INNER.get('__fault:put')) throw new Error('injected KV write failure');
    // A write that never lands (the runtime is then killed under it).
    if (await this.env.INNER.get('__fault:hang')) return new Promise(() => {});
    return this.env.INNER.put(key, value, options);
  }
  async list(options) { return this.env.INNER.list(options); }
  async delete(key) {
    if (await this.env.INNER.get('__fault:put')) throw new Error('injected KV write failure');
    return this.env.INNER.delete(key);
  }
}
export default function (env) { return new FaultyKv(env); }
`;

/**
 * A loopback Node origin for the gateway tests: it records each request as it arrived (raw URL and
 * raw headers) and answers, by the last segment of the path:
 * - `cookies`: three `Set-Cookie` headers (one with a comma in its `Expires`);
 * - `redirect`: a 302 to `/api/elsewhere`;
 * - `stream`: a first chunk, then the rest only once the test calls `releaseStream()` (or after 8 s,
 *   noted in `streamTimedOut`), so a body held back by the edge shows;
 * - anything else: what it received, as JSON.
 */
export async function startGatewayOrigin() {
  const origin = { received: [], pending: null, streamTimedOut: false };
  origin.releaseStream = () => { const go = origin.pending; origin.pending = null; go?.(); };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method, url: req.url, rawHeaders: req.rawHeaders, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      origin.received.push(seen);
      const last = req.url.split('?')[0].split('/').pop();
      if (last === 'cookies') {
        res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/; HttpOnly', 'c=3; Expires=Wed, 21 Oct 2037 07:28:00 GMT']);
        res.setHeader('content-length', 2);
        res.end('ok');
      } else if (last === 'redirect') {
        res.writeHead(302, { location: '/api/elsewhere', 'content-length': 0 });
        res.end();
      } else if (last === 'stream') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first|');
        const timer = setTimeout(() => { if (origin.pending) { origin.streamTimedOut = true; origin.releaseStream(); } }, 8000);
        origin.pending = () => { clearTimeout(timer); res.end('rest'); };
      } else {
        const body = JSON.stringify(seen);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  origin.url = `http://127.0.0.1:${server.address().port}`;
  origin.close = () => { origin.releaseStream(); server.closeAllConnections?.(); return new Promise((r) => server.close(r)); };
  return origin;
}

// A WSGI application on Python's reference server (wsgiref): it answers with the CGI-style
// environment it was given (every HTTP_* variable, PATH_INFO, the method and the query).
const WSGI_ORIGIN = `
import json, sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import make_server, WSGIRequestHandler, WSGIServer
class Quiet(WSGIRequestHandler):
    def log_message(self, *args): pass
# One thread per connection: a connection the runtime keeps open never blocks the next request.
class Threaded(ThreadingMixIn, WSGIServer):
    daemon_threads = True
def app(environ, start_response):
    keep = ('PATH_INFO', 'REQUEST_METHOD', 'QUERY_STRING')
    body = json.dumps({k: v for k, v in environ.items() if k.startswith('HTTP_') or k in keep}).encode()
    start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(body)))])
    return [body]
server = make_server('127.0.0.1', 0, app, server_class=Threaded, handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
`;

/** Starts the WSGI origin (`python3`, wsgiref) on a free loopback port; `close()` stops it by its PID. */
export async function startWsgiOrigin() {
  const proc = spawn('python3', ['-c', WSGI_ORIGIN], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(Number(out.trim())); });
    proc.once('exit', (code) => reject(new Error(`python3 exited (${code}): ${err}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    close() {
      if (proc.exitCode !== null) return Promise.resolve();
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      return exited;
    },
  };
}
