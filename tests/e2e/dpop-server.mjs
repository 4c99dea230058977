// DPoP test helpers (no worker): gatehouse's Rust verifier as a child process (examples/dpop-verify.rs,
// JSON lines), and a loopback server that asks it about every request, with gatehouse's shapes for
// login and refresh, server nonces, replay memory and tokens bound to the key that asked for them.
import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { ROOT } from './harness.mjs';

export const nowSeconds = () => Math.floor(Date.now() / 1000);
export const NONCE_SECRET = randomBytes(32).toString('base64url');
const ALGS = 'EdDSA Ed25519 ES256';

/** The Rust verifier as a long-lived child: one JSON line in, one verdict line out, in order. */
export async function startVerifier() {
  const { stdout } = await promisify(execFile)(
    'cargo', ['build', '-q', '--example', 'dpop-verify', '--message-format=json'],
    { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 },
  );
  const artifact = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l))
    .find((m) => m.reason === 'compiler-artifact' && m.target?.name === 'dpop-verify' && m.executable);
  assert.ok(artifact, 'cargo built examples/dpop-verify');
  const proc = spawn(artifact.executable, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting = [];
  createInterface({ input: proc.stdout }).on('line', (line) => waiting.shift()?.(JSON.parse(line)));
  return {
    check(request) {
      return new Promise((resolve) => {
        waiting.push(resolve);
        proc.stdin.write(`${JSON.stringify(request)}\n`);
      });
    },
    async nonce(now = nowSeconds()) {
      return (await this.check({ issue_nonce: { nonce_secret: NONCE_SECRET, now } })).nonce;
    },
    stop() {
      proc.stdin.end();
      proc.kill();
    },
  };
}

/**
 * A loopback DPoP server. Every request's proof goes to the Rust verifier (nonce required, replay
 * remembered, tokens "at-<jkt>" bound to that key) and is logged in `seen`. Routes: POST
 * /auth/login and /auth/refresh (gatehouse's shapes, refresh bound to the login's key), POST /token
 * (echoes the body), anything else a resource (401 with a DPoP challenge when refused). GET / and
 * /dpop.js serve a blank page and www/dpop.js, unchecked, for browsers.
 */
export async function startDpopServer(verifier) {
  const seen = [];
  let base;
  const server = createServer(async (req, res) => {
    if (req.url === '/favicon.ico') return res.writeHead(404).end();
    if (req.method === 'GET' && (req.url === '/' || req.url === '/dpop.js')) {
      const page = req.url === '/' ? '<!doctype html><title>dpop</title>' : readFileSync(join(ROOT, 'www', 'dpop.js'));
      res.writeHead(200, { 'content-type': req.url === '/' ? 'text/html' : 'text/javascript' });
      return res.end(page);
    }
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks).toString();
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('DPoP ') ? auth.slice(5) : undefined;
    const now = nowSeconds();
    const verdict = await verifier.check({
      proof: req.headers.dpop ?? '', method: req.method, url: `${base}${req.url}`, access_token: token, now,
      nonce_secret: NONCE_SECRET, remember: true,
      ...(token ? { cnf_jkt: token.slice(3) } : {}),
    });
    seen.push({ path: req.url, method: req.method, body, verdict, proof: req.headers.dpop });
    res.setHeader('DPoP-Nonce', await verifier.nonce(now));
    res.setHeader('content-type', 'application/json');
    const refuse = (code) => {
      res.setHeader('WWW-Authenticate', `DPoP error="${code}", algs="${ALGS}"`);
      return res.writeHead(401).end(JSON.stringify({ error: code }));
    };
    // Every token of this server is bound: as a bearer token it is refused (RFC 9449 §7.2).
    if (auth.startsWith('Bearer ')) return refuse('invalid_token');
    if (req.url === '/auth/login' || req.url === '/auth/refresh') {
      if (!verdict.ok) return res.writeHead(400).end(JSON.stringify({ error: verdict.code }));
      const boundTo = req.url === '/auth/refresh' ? JSON.parse(body).refresh_token.slice(3) : verdict.jkt;
      if (boundTo !== verdict.jkt) return res.writeHead(401).end(JSON.stringify({ error: 'invalid_grant' }));
      return res.writeHead(200).end(JSON.stringify({
        access_token: `at-${verdict.jkt}`, token_type: 'DPoP', expires_in: 60, refresh_token: `rt-${verdict.jkt}`, refresh_expires_in: 600,
      }));
    }
    if (req.url === '/token') {
      if (!verdict.ok) return res.writeHead(400).end(JSON.stringify({ error: verdict.code }));
      return res.writeHead(200).end(JSON.stringify({ access_token: `at-${verdict.jkt}`, token_type: 'DPoP', expires_in: 60, body }));
    }
    if (!verdict.ok) return refuse(verdict.code);
    return res.writeHead(200).end(JSON.stringify({ jkt: verdict.jkt }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  return { base, seen, close: () => server.close() };
}
