// www/dpop.js in a real Chromium (Debian's, driven by playwright-core). First without a worker: the
// key is non-extractable, kept in IndexedDB across reloads and shared by tabs (also when two tabs
// start at once), and the browser's own fetch does the nonce dance with a loopback server that
// checks every proof with gatehouse's Rust verifier. Then the app (www/app.js) against the worker
// under wrangler dev, with DPOP_MODE=required and server nonces: it signs in with DPoP, calls the
// protected route through the edge, refreshes silently, shares the session with a second tab, and
// the access token copied into a plain fetch without the key is refused (and so is the refresh
// cookie without a proof, which ends the session as reuse).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startVerifier, startDpopServer } from './dpop-server.mjs';
import { startWorker, until, launchChromium } from './harness.mjs';


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
    browser = await launchChromium();
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

describe('the app with DPoP against the worker (DPOP_MODE=required, server nonces)', () => {
  const TTL = 8;
  let worker, browser, context;
  const wire = []; // every request to the worker: { path, method, authorization, dpop, status }
  const issued = []; // { path, token_type, access_token }

  before(async () => {
    worker = await startWorker({
      vars: {
        ACCESS_TTL_SECONDS: String(TTL), CLOCK_LEEWAY_SECONDS: '0', DPOP_MODE: 'required',
        DPOP_NONCE_SECRET: randomBytes(32).toString('base64url'),
      },
    });
    browser = await launchChromium();
    context = await browser.newContext();
    context.on('response', async (res) => {
      const url = new URL(res.url());
      if (url.origin !== worker.url) return;
      const headers = await res.request().allHeaders();
      wire.push({ path: url.pathname, method: res.request().method(), authorization: headers.authorization, dpop: headers.dpop, status: res.status() });
      if ((url.pathname === '/auth/login' || url.pathname === '/auth/refresh') && res.status() === 200) {
        try {
          const body = await res.json();
          issued.push({ path: url.pathname, token_type: body.token_type, access_token: body.access_token });
        } catch { /* body not kept */ }
      }
    });
  });
  after(async () => {
    await context?.close();
    await browser?.close();
    await worker?.cleanup();
  });

  test('sign in with DPoP, call the edge, refresh, second tab; the copied token and cookie are refused', async () => {
    const page = await context.newPage();
    await page.goto(worker.url);
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    const email = `dpop-browser-${Date.now()}@example.com`;
    await page.fill('#register-email', email);
    await page.fill('#register-password', 'correct horse battery');
    await page.click('#register-form button');
    await page.locator('#status').filter({ hasText: 'Account created' }).waitFor();
    await page.fill('#login-password', 'correct horse battery');
    await page.keyboard.press('Enter');
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    await page.locator('#status').filter({ hasText: 'The API says you are' }).waitFor();

    // The login carried a proof, after one nonce round trip, and the answer is a bound token.
    const logins = wire.filter((r) => r.path === '/auth/login');
    assert.deepEqual(logins.map((r) => [r.status, Boolean(r.dpop)]), [[400, true], [200, true]], 'use_dpop_nonce, then signed in');
    const login = issued.find((t) => t.path === '/auth/login');
    assert.equal(login.token_type, 'DPoP');
    const jkt = JSON.parse(Buffer.from(login.access_token.split('.')[1], 'base64url')).cnf?.jkt;
    assert.match(jkt ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.match(await page.textContent('#who-binding'), new RegExp(jkt));
    // The edge saw the DPoP scheme with a proof, never the token as a bearer token.
    const calls = wire.filter((r) => r.path === '/api/whoami');
    assert.ok(calls.some((r) => r.status === 200));
    for (const r of calls) {
      assert.match(r.authorization, /^DPoP /);
      assert.ok(r.dpop, 'a proof with every call');
    }
    // The key is the page's non-extractable IndexedDB key.
    const key = await page.evaluate(async () => {
      const m = await import('/dpop.js');
      const client = m.createDpopClient();
      const pair = await client.keyPair();
      return { jkt: await client.thumbprint(), extractable: pair.privateKey.extractable, alg: (await client.publicKey()).alg };
    });
    assert.deepEqual({ ...key, alg: undefined }, { jkt, extractable: false, alg: undefined });
    // Ed25519 where the browser has it (the app asks for it), else the fallback to P-256.
    assert.ok(['EdDSA', 'ES256'].includes(key.alg), key.alg);

    // The silent refresh before expiry: with a proof of the same key, a bound token again.
    const before = issued.length;
    await until('the silent refresh', () => issued.length > before, TTL * 1000 + 3000);
    const refreshed = issued.at(-1);
    assert.deepEqual([refreshed.path, refreshed.token_type], ['/auth/refresh', 'DPoP']);
    assert.equal(JSON.parse(Buffer.from(refreshed.access_token.split('.')[1], 'base64url')).cnf.jkt, jkt);
    assert.ok(wire.filter((r) => r.path === '/auth/refresh').every((r) => r.dpop), 'every refresh carried a proof');
    await page.click('#whoami-button');
    await page.locator('#status').filter({ hasText: 'The API says you are' }).waitFor();

    // A second tab adopts the session and proves with the same key (IndexedDB, shared by the tabs).
    const page2 = await context.newPage();
    await page2.goto(worker.url);
    await page2.locator('#signed-in').waitFor({ state: 'visible' });
    await page2.locator('#status').filter({ hasText: 'The API says you are' }).waitFor();
    assert.equal(await page2.textContent('#who-binding'), await page.textContent('#who-binding'));

    // The access token copied into a plain fetch, without the key: refused in every form.
    const token = issued.at(-1).access_token;
    const copied = await page.evaluate(async (t) => {
      const asDpop = await fetch('/api/whoami', { headers: { authorization: `DPoP ${t}` } });
      const asBearer = await fetch('/api/whoami', { headers: { authorization: `Bearer ${t}` } });
      return [asDpop.status, asDpop.headers.get('www-authenticate'), asBearer.status, asBearer.headers.get('www-authenticate')];
    }, token);
    assert.equal(copied[0], 401);
    assert.match(copied[1], /^DPoP .*error="invalid_dpop_proof"/);
    assert.equal(copied[2], 401);
    assert.match(copied[3], /^DPoP .*error="invalid_token"/);
    // From outside the browser too.
    const outside = await fetch(`${worker.url}/api/whoami`, { headers: { authorization: `DPoP ${token}` } });
    assert.equal(outside.status, 401);
    await outside.arrayBuffer();

    // The refresh cookie copied out of the browser, presented without a proof of the key: refused,
    // and the session ends for every tab (it counts as reuse).
    const cookie = (await context.cookies(worker.url)).find((c) => c.name === '__Host-gatehouse_rt').value;
    const stolen = await fetch(`${worker.url}/auth/refresh`, { method: 'POST', headers: { cookie: `__Host-gatehouse_rt=${cookie}`, origin: worker.url } });
    assert.equal(stolen.status, 401);
    assert.equal((await stolen.json()).error, 'invalid_grant');
    await page.click('#whoami-button');
    await page.locator('#signed-out').waitFor({ state: 'visible', timeout: 10_000 });
    await page2.locator('#signed-out').waitFor({ state: 'visible', timeout: 10_000 });
    await page2.close();
    await page.close();
  });
});
