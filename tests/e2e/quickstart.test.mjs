// The README's quickstart, run as printed: the shell lines between the `quickstart` markers, with
// bash and curl, against wrangler dev running the all-in-one Worker as scripts/dev.sh runs it (the
// harness's wrangler dev on a free port, so `127.0.0.1:8787` becomes that port; nothing else
// changes). Also the workerd smoke test of `bash scripts/test.sh quick`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startWorker } from './harness.mjs';

/** The shell lines of the README's quickstart block. */
export function quickstartLines() {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = readme.match(/<!-- quickstart[^>]*-->\n```sh\n([\s\S]*?)```\n<!-- \/quickstart -->/);
  assert.ok(block, 'README.md has a quickstart block between the markers');
  return block[1];
}

let worker;
before(async () => { worker = await startWorker(); });
after(async () => { await worker?.cleanup(); });

test('the quickstart lines work as printed', () => {
  const lines = quickstartLines();
  assert.match(lines, /127\.0\.0\.1:8787/, 'the README speaks of the port scripts/dev.sh uses');
  const script = lines.replaceAll('127.0.0.1:8787', `127.0.0.1:${worker.port}`);
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `the quickstart failed:\n${r.stdout}\n${r.stderr}`);
  // One line each: healthz, register's answer, whoami's claims, the status without a token.
  const [health, registered, whoami, refused] = r.stdout.trimEnd().split('\n');
  assert.deepEqual(Object.keys(JSON.parse(health)).sort(), ['build', 'status', 'version', 'worker']);
  assert.equal(JSON.parse(health).status, 'ok');
  assert.match(JSON.parse(health).version, /^\d+\.\d+\.\d+$/);
  assert.match(JSON.parse(registered).sub, /^[0-9a-f]{64}$/);
  assert.equal(JSON.parse(whoami).email, 'ada@example.com');
  assert.equal(JSON.parse(whoami).sub, JSON.parse(registered).sub);
  assert.deepEqual(JSON.parse(whoami).roles, ['user']);
  assert.equal(refused, '401');

  // Run again, as a reader would: registering answers email_taken, and the rest still works.
  const again = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(again.status, 0, again.stderr);
  const [, taken, claims, status] = again.stdout.trimEnd().split('\n');
  assert.equal(JSON.parse(taken).error, 'email_taken');
  assert.equal(JSON.parse(claims).email, 'ada@example.com');
  assert.equal(status, '401');
});
