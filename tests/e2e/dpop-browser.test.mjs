// www/dpop.js in a real Chromium (Debian's, driven by playwright-core), without a worker: the key is
// non-extractable, kept in IndexedDB across reloads and shared by tabs (also when two tabs start at
// once), and the browser's own fetch does the nonce dance with a loopback server that checks every
// proof with gatehouse's Rust verifier.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startVerifier, startDpopServer } from './dpop-server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Loads www/dpop.js in a page and runs `fn(module, arg)` there. */
const inPage = (page, fn, arg) => page.evaluate(
  async ([source, arg]) => {
    const m = await import('/dpop.js');
    // eslint-disable-next-line no-new-func
    return new Function('m', 'arg', `return (${source})(m, arg);`)(m, arg);
  },
  [fn.toString(), arg],
);

describe('www/dpop.js in Chromium', () => {
  let verifier, server, browser;
  before(async () => {
    verifier = await startVerifier();
    server = await startDpopServer(verifier);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  });
  after(async () => {
    await browser?.close();
    server?.close();
    verifier?.stop();
  });

  test('the key is non-extractable, survives a reload and is shared by tabs', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.base);
    const first = await inPage(page, async (m) => {
      const client = m.createDpopClient();
      const pair = await client.keyPair();
      let exported = 'exported';
      try {
        await crypto.subtle.exportKey('jwk', pair.privateKey);
      } catch (e) {
        exported = e.name;
      }
      return { jkt: await client.thumbprint(), extractable: pair.privateKey.extractable, exported, alg: (await client.publicKey()).alg };
    });
    assert.equal(first.extractable, false);
    assert.equal(first.exported, 'InvalidAccessError', 'the private key cannot be exported');
    assert.equal(first.alg, 'ES256');
    await page.reload();
    assert.equal(await inPage(page, (m) => m.thumbprint()), first.jkt, 'the same key after a reload');
    const tab = await context.newPage();
    await tab.goto(server.base);
    assert.equal(await inPage(tab, (m) => m.thumbprint()), first.jkt, 'the same key in another tab');
    // Forgetting the key makes a new one next time.
    const renewed = await inPage(tab, async (m) => {
      const client = m.createDpopClient();
      await client.resetKey();
      return client.thumbprint();
    });
    assert.notEqual(renewed, first.jkt);
    await context.close();
  });

  test('two tabs that start at once agree on one key', async () => {
    const context = await browser.newContext();
    const pages = await Promise.all([context.newPage(), context.newPage(), context.newPage()]);
    await Promise.all(pages.map((p) => p.goto(server.base)));
    const jkts = await Promise.all(pages.map((p) => inPage(p, (m) => m.thumbprint())));
    assert.equal(new Set(jkts).size, 1, jkts.join(' '));
    // And the key they then read back from storage is that one.
    await pages[0].reload();
    assert.equal(await inPage(pages[0], (m) => m.thumbprint()), jkts[0]);
    await context.close();
  });

  for (const alg of ['ES256', 'EdDSA']) {
    test(`the browser's fetch: login with the nonce dance, then the resource (${alg})`, async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(server.base);
      const mark = server.seen.length;
      const out = await inPage(page, async (m, alg) => {
        const client = m.createDpopClient({ alg, storage: m.memoryStorage() });
        const login = await client.fetch('/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"a@b.test"}' });
        const tokens = await login.json();
        const api = await client.fetch('/api/orders?page=2', {}, { accessToken: tokens.access_token });
        // The token copied into a plain fetch, without the key.
        const copied = await fetch('/api/orders', { headers: { authorization: `DPoP ${tokens.access_token}` } });
        return {
          login: login.status, api: api.status, copied: copied.status, tokenType: tokens.token_type,
          bound: tokens.access_token === `at-${await client.thumbprint()}`, alg: (await client.publicKey()).alg,
        };
      }, alg);
      assert.deepEqual(
        { ...out, alg: undefined },
        { login: 200, api: 200, copied: 401, tokenType: 'DPoP', bound: true, alg: undefined },
      );
      // Ed25519 where Chromium has it, else the documented fallback to P-256.
      assert.ok(out.alg === alg || out.alg === 'ES256', out.alg);
      const verdicts = server.seen.slice(mark).map((t) => t.verdict.error ?? 'ok');
      assert.deepEqual(verdicts, ['NonceMissing', 'ok', 'ok', 'Missing'], JSON.stringify(server.seen.slice(mark).map((t) => [t.method, t.path, t.verdict.error])));
      await context.close();
    });
  }
});
