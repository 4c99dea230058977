// examples/check-config.rs on the tracked configs: each loads with the secrets its Worker needs (and
// the production environments with an ISSUER given as a deployment gives it), and a configuration
// with several problems gets every one listed at once. The example runs the Worker's own parser
// natively (cargo builds it once; `cargo test` has built it already).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './harness.mjs';
import { devKeys } from '../../scripts/dev-keys.mjs';

const run = async (args, env = {}) => {
  try {
    const { stdout, stderr } = await promisify(execFile)('cargo', ['run', '-q', '--example', 'check-config', '--', ...args], {
      cwd: ROOT, env: { ...process.env, ...env }, timeout: 600_000,
    });
    return { code: 0, out: stdout + stderr };
  } catch (e) {
    return { code: e.code, out: `${e.stdout}${e.stderr}` };
  }
};

test('every tracked config loads, top level and production', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-check-'));
  try {
    const secrets = join(dir, 'secrets.env');
    writeFileSync(secrets, `SIGNING_KEYS='${JSON.stringify(await devKeys())}'\n`);
    for (const config of ['wrangler.toml', 'wrangler.edge.toml', 'wrangler.issuer.toml']) {
      for (const env of [[], ['--env', 'production']]) {
        const r = await run(['-c', config, ...env, '--secrets', secrets], env.length ? { ISSUER: 'https://auth.example.com' } : {});
        assert.equal(r.code, 0, `${config} ${env.join(' ')}: ${r.out}`);
        assert.match(r.out, /^ok: /);
      }
    }
    // Production without ISSUER: a deployment must give one (scripts/deploy.sh --issuer).
    const r = await run(['-c', 'wrangler.toml', '--env', 'production', '--secrets', secrets]);
    assert.equal(r.code, 1);
    assert.match(r.out, /ISSUER is not set/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every problem at once, and bad usage', async () => {
  const r = await run(['-c', 'wrangler.issuer.toml', '--secrets', '/dev/null'],
    { ACCESS_TTL_SECONDS: '0', ALLOWED_ORIGINS: 'not-an-origin', KEY_MANAGEMENT: 'sometimes' });
  assert.equal(r.code, 1, r.out);
  for (const name of ['ACCESS_TTL_SECONDS', 'ALLOWED_ORIGINS', 'KEY_MANAGEMENT', 'SIGNING_KEYS']) assert.match(r.out, new RegExp(`configuration ${name} is`), name);
  assert.match(r.out, /4 problems/);
  assert.equal((await run(['--worker', 'nonsense'])).code, 2);
  assert.equal((await run(['-c', 'wrangler.toml', '--env', 'staging'])).code, 2);
});
