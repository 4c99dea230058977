// scripts/deploy.mjs against a fake wrangler that records its calls and keeps a fake account (KV
// namespaces, Workers' secrets) in a file: the steps each flavour takes, in order, what the
// generated configs hold, that a second run only deploys, and that the signing keys reach wrangler
// on stdin only (never in an argument or a file). Then the real wrangler's `deploy --dry-run` on the
// generated configs, offline (with the builds scripts/test.sh made).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

const FAKE = `#!/usr/bin/env node
// A fake wrangler: records each call, answers from a fake account kept in a JSON file.
const fs = require('fs');
const args = process.argv.slice(2);
const state = JSON.parse(fs.readFileSync(process.env.FAKE_STATE, 'utf8'));
let stdin = '';
try { stdin = fs.readFileSync(0, 'utf8'); } catch {}
const entry = { args };
const c = args.indexOf('-c');
if (c >= 0) entry.config = JSON.parse(fs.readFileSync(args[c + 1], 'utf8'));
if (stdin) {
  // What came on stdin, summarised (the test's own log must not hold the keys either).
  try {
    const set = JSON.parse(stdin);
    entry.stdin = { keys: set.keys.map((k) => ({ kid: k.kid, alg: k.alg, private: 'd' in k })), d: set.keys.map((k) => k.d.slice(0, 12)) };
  } catch { entry.stdin = { text: stdin.length }; }
}
fs.appendFileSync(process.env.FAKE_LOG, JSON.stringify(entry) + '\\n');
const name = entry.config?.name;
const cmd = args.filter((a) => !a.startsWith('-') && !a.includes('/')).slice(0, 3).join(' ');
const save = () => fs.writeFileSync(process.env.FAKE_STATE, JSON.stringify(state));
if (cmd === 'whoami') console.log('You are logged in (fake).');
else if (cmd === 'kv namespace list') console.log(JSON.stringify(state.namespaces, null, 2));
else if (cmd.startsWith('kv namespace create')) {
  const id = 'a'.repeat(24) + String(state.namespaces.length).padStart(8, '0');
  state.namespaces.push({ id, title: args[3] });
  save();
  console.log('Creating namespace with title "' + args[3] + '"\\nSuccess!\\n[[kv_namespaces]]\\nbinding = "' + args[3] + '"\\nid = "' + id + '"');
} else if (cmd === 'deploy') { state.deployed.push(name); save(); console.log('Deployed ' + name); }
else if (cmd === 'secret list') console.log(JSON.stringify((state.secrets[name] ?? []).map((n) => ({ name: n, type: 'secret_text' }))));
else if (cmd.startsWith('secret put')) { (state.secrets[name] ??= []).push(args[2]); save(); console.log('Success! Uploaded secret ' + args[2]); }
else { console.error('fake wrangler: unexpected ' + args.join(' ')); process.exit(1); }
`;

function account() {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-deploy-'));
  const bin = join(dir, 'wrangler');
  writeFileSync(bin, FAKE);
  chmodSync(bin, 0o755);
  const state = join(dir, 'state.json');
  writeFileSync(state, JSON.stringify({ namespaces: [{ id: 'f'.repeat(32), title: 'someone-else' }], deployed: [], secrets: {} }));
  const log = join(dir, 'calls.jsonl');
  return {
    dir,
    run(args) {
      writeFileSync(log, '');
      const r = spawnSync('node', [join(ROOT, 'scripts', 'deploy.mjs'), ...args, '--skip-build'], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, WRANGLER: bin, FAKE_STATE: state, FAKE_LOG: log },
      });
      const calls = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      return { status: r.status, out: r.stdout + r.stderr, calls, commands: calls.map((c) => c.args.filter((a) => !a.startsWith('-') && !a.includes('/')).join(' ')) };
    },
    state: () => JSON.parse(readFileSync(state, 'utf8')),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

test('all-in-one from a fresh account: namespace made, Worker deployed, keys stored once on stdin', () => {
  const acct = account();
  try {
    const first = acct.run(['--issuer', 'https://gatehouse.example.workers.dev']);
    assert.equal(first.status, 0, first.out);
    assert.deepEqual(first.commands, [
      'whoami',
      'kv namespace list',
      'kv namespace create gatehouse-denylist-production',
      'deploy',
      'secret list',
      'secret put SIGNING_KEYS',
    ]);
    const deployed = first.calls.find((c) => c.args[0] === 'deploy').config;
    const id = acct.state().namespaces.find((n) => n.title === 'gatehouse-denylist-production').id;
    assert.equal(deployed.name, 'gatehouse');
    assert.deepEqual(deployed.kv_namespaces, [{ binding: 'DENYLIST', id }]);
    assert.equal(deployed.vars.ISSUER, 'https://gatehouse.example.workers.dev');
    assert.equal(deployed.vars.AUDIENCE, 'gatehouse');
    assert.equal(deployed.main, '../js/entry.mjs');
    assert.equal(deployed.assets.directory, '../www');
    assert.equal(deployed.build, undefined, 'built beforehand, not by wrangler');
    assert.equal(deployed.env, undefined);
    assert.deepEqual(deployed.observability, { enabled: true });
    assert.deepEqual(deployed.durable_objects.bindings.map((b) => b.class_name), ['Account', 'KeyStore']);
    assert.deepEqual(deployed.migrations.map((m) => m.tag), ['v1', 'v2']);
    // The keys: a fresh private set, on stdin, never in an argument.
    const put = first.calls.find((c) => c.args[0] === 'secret');
    const put2 = first.calls.at(-1);
    assert.deepEqual(put2.stdin.keys.map((k) => [k.alg, k.private]), [['EdDSA', true], ['RS256', true]]);
    assert.ok(put.args.every((a) => !a.includes('"d"')));
    // ... and in no file of the checkout (the generated config included).
    for (const prefix of put2.stdin.d) {
      const grep = spawnSync('grep', ['-rl', '--exclude-dir=node_modules', '--exclude-dir=target', '--exclude-dir=.git', prefix, '.'], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(grep.stdout, '', `a private key is on disk: ${grep.stdout}`);
    }

    // Again: nothing to make, the keys are kept (a second run only deploys).
    const second = acct.run(['--issuer', 'https://gatehouse.example.workers.dev']);
    assert.equal(second.status, 0, second.out);
    assert.deepEqual(second.commands, ['whoami', 'kv namespace list', 'deploy', 'secret list']);
    assert.match(second.out, /SIGNING_KEYS is set; kept/);
    assert.equal(acct.state().namespaces.length, 2);
  } finally {
    acct.cleanup();
  }
});

test('split: the issuer first, then the edge bound to it; the custom domain is the edge\'s', () => {
  const acct = account();
  try {
    const r = acct.run(['split', '--domain', 'auth.example.com', '--metrics', 'gatehouse_metrics', '--var', 'ORIGIN_URL=https://api.internal.example.com']);
    assert.equal(r.status, 0, r.out);
    const deploys = r.calls.filter((c) => c.args[0] === 'deploy').map((c) => c.config);
    assert.deepEqual(deploys.map((d) => d.name), ['gatehouse-issuer', 'gatehouse-edge']);
    const [issuer, edge] = deploys;
    assert.equal(issuer.vars.ISSUER, 'https://auth.example.com');
    assert.equal(edge.vars.ISSUER, 'https://auth.example.com');
    assert.equal(edge.vars.ISSUER_JWKS_URL, 'service:ISSUER_SERVICE');
    assert.deepEqual(edge.services, [{ binding: 'ISSUER_SERVICE', service: 'gatehouse-issuer' }]);
    assert.deepEqual(edge.routes, [{ pattern: 'auth.example.com', custom_domain: true }]);
    assert.equal(issuer.routes, undefined);
    assert.equal(issuer.workers_dev, false);
    assert.equal(edge.kv_namespaces[0].id, issuer.kv_namespaces[0].id, 'one denylist: the issuer writes, the edge reads');
    assert.deepEqual(edge.analytics_engine_datasets, [{ binding: 'METRICS', dataset: 'gatehouse_metrics' }]);
    assert.equal(edge.vars.ORIGIN_URL, 'https://api.internal.example.com');
    // Only the issuer signs.
    const puts = r.calls.filter((c) => c.args[0] === 'secret' && c.args[1] === 'put').map((c) => c.config.name);
    assert.deepEqual(puts, ['gatehouse-issuer']);
  } finally {
    acct.cleanup();
  }
});

test('verifier only: needs keys to verify with, binds no issuer, stores no secret', () => {
  const acct = account();
  try {
    const none = acct.run(['verifier', '--issuer', 'https://edge.example.com']);
    assert.equal(none.status, 2);
    assert.match(none.out, /a verifier needs keys/);
    assert.equal(none.calls.length, 0, 'refused before any call');
    const jwks = 'https://example.eu.auth0.com/.well-known/jwks.json';
    const r = acct.run(['verifier', '--issuer', 'https://example.eu.auth0.com', '--var', `ISSUER_JWKS_URL=${jwks}`]);
    assert.equal(r.status, 0, r.out);
    const edge = r.calls.find((c) => c.args[0] === 'deploy').config;
    assert.equal(edge.services, undefined);
    assert.equal(edge.vars.ISSUER_JWKS_URL, jwks);
    assert.ok(!r.commands.some((c) => c.startsWith('secret')));
  } finally {
    acct.cleanup();
  }
});

test('managed keys: no SIGNING_KEYS secret at all; bad arguments are refused up front', () => {
  const acct = account();
  try {
    const r = acct.run(['--issuer', 'https://gatehouse.example.workers.dev', '--managed-keys']);
    assert.equal(r.status, 0, r.out);
    assert.equal(r.calls.find((c) => c.args[0] === 'deploy').config.vars.KEY_MANAGEMENT, 'managed');
    assert.ok(!r.commands.some((c) => c.startsWith('secret')));
    const outbox = ['--issuer', 'https://a.example', '--var', 'MAIL_TRANSPORT=outbox'];
    for (const bad of [[], ['--issuer', 'http://insecure.example.com'], ['--issuer', 'https://a.example/path'], ['nowhere', '--issuer', 'https://a.example'], outbox]) {
      const refused = acct.run(bad);
      assert.equal(refused.status, 2, `${bad.join(' ')}: ${refused.out}`);
      assert.equal(refused.calls.length, 0);
    }
  } finally {
    acct.cleanup();
  }
});

test('the generated configs pass the real wrangler deploy --dry-run (offline)', { skip: !['build', 'build-edge', 'build-issuer'].every((b) => existsSync(join(ROOT, b, 'index.js'))) && 'needs bash scripts/build.sh all' }, () => {
  for (const flavour of [['all-in-one'], ['split', '--metrics', 'm'], ['verifier', '--var', 'PUBLIC_KEYS={"keys":[]}']]) {
    const r = spawnSync('node', [join(ROOT, 'scripts', 'deploy.mjs'), ...flavour, '--issuer', 'https://gatehouse.example.com', '--dry-run', '--skip-build'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
    });
    assert.equal(r.status, 0, `${flavour[0]}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /dry run done/);
  }
  assert.ok(readdirSync(join(ROOT, '.deploy')).includes('gatehouse.json'));
});
