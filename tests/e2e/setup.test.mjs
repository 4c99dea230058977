// scripts/setup.sh on simulated machines: fake rustup, cargo, npm, apt-get and tools on PATH that
// record what they are asked, with HOME in a temporary directory. A new machine gets each pinned tool
// installed (dev: only what running needs; quick: also rustfmt and clippy; test: also the test
// tools), a set-up machine gets nothing installed, and a machine without apt or rustup is told what
// it needs instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

// Each fake logs "<name> <args>" and answers as the machine's `have` list says. rustup's listings
// go on for more than a pipe buffer after the line looked for, so a script that pipes them into
// `grep -q` under pipefail sees rustup killed by SIGPIPE, every time rather than now and then (CI of
// 12-05 failed on that race, with a two-line listing).
const FAKES = {
  rustup: `more() { for ((i = 0; i < 4000; i++)); do echo "rust-std-padding-$i-x86_64-unknown-linux-gnu"; done; }
case "$*" in
  "target list --installed") has wasm && echo wasm32-unknown-unknown; more ;;
  "component list --installed") has rustfmt && echo "rustfmt-x86_64-unknown-linux-gnu"; more; has clippy && echo "clippy-x86_64-unknown-linux-gnu"; more ;;
esac`,
  cargo: `case "$1 $2" in
  "deny --version") has cargo-deny && echo "cargo-deny 0.20.2" || exit 1 ;;
  "fuzz --version") has cargo-fuzz && echo "cargo-fuzz 0.13.2" || exit 1 ;;
esac`,
  'worker-build': 'has worker-build && echo "worker-build 0.8.7" || exit 1',
  'wasm-bindgen': 'has wasm-bindgen && echo "wasm-bindgen 0.2.130" || echo "wasm-bindgen 0.2.100"',
  npm: '[ "$1" = ls ] && { has npm-deps || exit 1; }; true',
  'apt-get': 'true',
  chromium: 'true',
  cc: 'true',
};

function machine(have) {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-setup-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const log = join(dir, 'calls.log');
  writeFileSync(log, '');
  // The few system tools the script uses, and nothing else of the real machine (its Chromium, say).
  const sys = join(dir, 'sys');
  mkdirSync(sys);
  for (const tool of ['bash', 'dirname', 'grep', 'id', 'cat']) {
    const found = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    symlinkSync(found, join(sys, tool));
  }
  symlinkSync(process.execPath, join(sys, 'node'));
  for (const [name, body] of Object.entries(FAKES)) {
    if ((name === 'apt-get' || name === 'chromium' || name === 'rustup') && !have.includes(name)) continue;
    const file = join(bin, name);
    writeFileSync(file, `#!/bin/bash\nhas() { case " ${have.join(' ')} " in *" $1 "*) return 0;; *) return 1;; esac; }\necho "${name} $*" >> ${log}\n${body}\n`);
    chmodSync(file, 0o755);
  }
  return {
    run(mode) {
      writeFileSync(log, '');
      const r = spawnSync('bash', [join(ROOT, 'scripts', 'setup.sh'), mode], {
        cwd: ROOT,
        encoding: 'utf8',
        // The fakes, then the few system tools; HOME with no ~/.cargo/bin.
        env: { PATH: `${bin}:${sys}`, HOME: dir },
      });
      const calls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
      return { status: r.status, out: r.stdout + r.stderr, calls, installs: calls.filter((c) => / (install|add|ci) /.test(`${c} `)) };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const EVERYTHING = ['rustup', 'wasm', 'rustfmt', 'clippy', 'worker-build', 'wasm-bindgen', 'npm-deps', 'cargo-deny', 'cargo-fuzz', 'chromium', 'apt-get'];

test('a new machine: dev installs only what running needs, quick adds rustfmt and clippy, test the rest', () => {
  const m = machine(['rustup', 'apt-get']);
  try {
    const dev = m.run('dev');
    assert.equal(dev.status, 0, dev.out);
    assert.deepEqual(dev.installs, [
      'rustup target add wasm32-unknown-unknown',
      'cargo install worker-build --version 0.8.7 --locked --force',
      'cargo install wasm-bindgen-cli --version 0.2.130 --force',
      'npm ci --no-audit --no-fund',
    ]);
    const quick = m.run('quick');
    assert.equal(quick.status, 0, quick.out);
    assert.deepEqual(quick.installs, [...dev.installs, 'rustup component add rustfmt', 'rustup component add clippy']);
    const full = m.run('test');
    assert.equal(full.status, 0, full.out);
    for (const wanted of [
      'rustup component add rustfmt',
      'rustup component add clippy',
      'cargo install cargo-deny --version 0.20.2 --locked --force',
      'cargo install cargo-fuzz --version 0.13.2 --locked --force',
      'apt-get install -y -qq chromium',
    ]) {
      assert.ok(full.installs.includes(wanted), `${wanted} in ${full.installs.join('\n')}`);
    }
  } finally {
    m.cleanup();
  }
});

test('a machine that has everything installs nothing', () => {
  const m = machine(EVERYTHING);
  try {
    for (const mode of ['dev', 'quick', 'test']) {
      const r = m.run(mode);
      assert.equal(r.status, 0, r.out);
      assert.deepEqual(r.installs, [], `${mode}: ${r.installs.join('\n')}`);
    }
  } finally {
    m.cleanup();
  }
});

test('without apt and without a Chromium, or without rustup, it says what to install', () => {
  const noApt = machine(EVERYTHING.filter((t) => t !== 'apt-get' && t !== 'chromium'));
  try {
    assert.equal(noApt.run('dev').status, 0, 'running needs no browser');
    const r = noApt.run('test');
    assert.equal(r.status, 1);
    assert.match(r.out, /MISSING: a Chromium for the browser tests.*CHROMIUM_PATH/);
  } finally {
    noApt.cleanup();
  }
  const noRust = machine(EVERYTHING.filter((t) => t !== 'rustup'));
  try {
    const r = noRust.run('dev');
    assert.equal(r.status, 1);
    assert.match(r.out, /MISSING: rustup/);
    assert.deepEqual(r.installs, []);
  } finally {
    noRust.cleanup();
  }
});
