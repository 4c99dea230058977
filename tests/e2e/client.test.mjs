// The typed client package (www/client/): its types are what openapi-typescript makes of
// www/openapi.json today (a stale file fails), they type-check with tsc in strict mode, `npm pack`
// makes a package of exactly its files, and the packed module works from Node against wrangler dev,
// errors included. The page imports the very same file (tests/e2e/browser.test.mjs); its manifest and
// declarations are not served.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, startWorker } from './harness.mjs';

const CLIENT = join(ROOT, 'www', 'client');
const BIN = join(ROOT, 'node_modules', '.bin');
let worker;
let dir;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-client-'));
  worker = await startWorker();
});
after(async () => {
  await worker?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

test('openapi.d.ts is what openapi-typescript makes of www/openapi.json now', () => {
  const fresh = join(dir, 'openapi.d.ts');
  const r = spawnSync(join(BIN, 'openapi-typescript'), [join(ROOT, 'www', 'openapi.json'), '-o', fresh], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(join(CLIENT, 'openapi.d.ts'), 'utf8'), readFileSync(fresh, 'utf8'),
    'www/client/openapi.d.ts is stale: run `npm run client:types`');
});

test('the declarations type-check, and misuse does not', () => {
  const usage = join(dir, 'usage.ts');
  writeFileSync(usage, `
import { createClient, GatehouseError, request, type TokenPair, type Health } from ${JSON.stringify(join(CLIENT, 'index.js'))};
async function main(): Promise<void> {
  const client = createClient({ baseUrl: 'https://auth.example.com' });
  const health: Health = await client.health();
  const status: 'ok' = health.status;
  const pair: TokenPair = await client.login('a@example.com', 'correct horse battery', { transport: 'body' });
  const seconds: number = pair.expires_in;
  const claims = await client.whoami(pair.access_token);
  const sub: string = claims.sub;
  // @ts-expect-error a transport that does not exist
  await client.login('a@example.com', 'pw', { transport: 'carrier-pigeon' });
  // @ts-expect-error the token pair has no such field
  pair.id_token;
  try { await client.register('a@example.com', 'pw'); } catch (e) {
    if (e instanceof GatehouseError && e.code === 'email_taken') console.log(e.status, e.retryAfter);
  }
  const { error } = await request('/healthz');
  // @ts-expect-error not an error code of the API
  if (error === 'no_such_code') console.log(status, seconds, sub);
}
void main;
`);
  const r = spawnSync(join(BIN, 'tsc'), ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--lib', 'es2022,dom', '--skipLibCheck', 'false', usage], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tsc:\n${r.stdout}${r.stderr}`);
});

test('npm pack makes the package, and the packed module works from Node', async () => {
  const r = spawnSync('npm', ['pack', CLIENT, '--pack-destination', dir, '--json'], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  const [pack] = JSON.parse(r.stdout);
  assert.deepEqual(pack.files.map((f) => f.path).sort(), ['index.d.ts', 'index.js', 'openapi.d.ts', 'package.json']);
  const unpacked = join(dir, 'unpacked');
  mkdirSync(unpacked);
  assert.equal(spawnSync('tar', ['-xzf', join(dir, pack.filename), '-C', unpacked]).status, 0);
  const { createClient, GatehouseError } = await import(pathToFileURL(join(unpacked, 'package', 'index.js')));

  const client = createClient({ baseUrl: worker.url });
  assert.equal((await client.health()).status, 'ok');
  assert.ok((await client.jwks()).keys.length >= 1);
  const email = `client-${Date.now()}@example.com`;
  const { sub } = await client.register(email, 'correct horse battery');
  const pair = await client.login(email, 'correct horse battery');
  assert.equal((await client.whoami(pair.access_token)).sub, sub);
  assert.equal((await client.me(pair.access_token)).email, email);
  const next = await client.refresh(pair.refresh_token);
  assert.notEqual(next.refresh_token, pair.refresh_token);
  assert.equal(await client.logout(next.access_token), null);
  await assert.rejects(client.register(email, 'correct horse battery'), (e) => e instanceof GatehouseError && e.status === 409 && e.code === 'email_taken');
  await assert.rejects(client.login(email, 'wrong password!'), (e) => e.code === 'invalid_credentials' && e.status === 401);
  await assert.rejects(client.refresh(pair.refresh_token), (e) => e.code === 'invalid_grant');
  const nowhere = createClient({ baseUrl: 'http://127.0.0.1:9' });
  await assert.rejects(nowhere.health(), (e) => e.code === 'network' && e.status === 0);
});

test('the page can import the module; the manifest and declarations are not served', async () => {
  const js = await worker.fetch('/client/index.js');
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /javascript/);
  assert.equal(await js.text(), readFileSync(join(CLIENT, 'index.js'), 'utf8'));
  for (const hidden of ['/client/package.json', '/client/index.d.ts', '/client/openapi.d.ts']) {
    const res = await worker.fetch(hidden);
    await res.arrayBuffer();
    assert.equal(res.status, 404, hidden);
  }
});
