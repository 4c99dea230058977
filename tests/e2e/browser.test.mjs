// The browser client (www/) in a real Chromium (Debian's, driven by playwright-core) against
// wrangler dev with a short access-token lifetime: sign-in, silent refresh, two tabs sharing one
// refresh, sign-out everywhere, storage hygiene, security headers, and a foreign origin refused.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startWorker, ROOT, sleep, until, launchChromium } from './harness.mjs';

const TTL = 10;
const ARTIFACTS = join(ROOT, 'test-artifacts');


/** Registers through the page's form, then signs in with the prefilled email. */
async function registerAndSignIn(page, email, password = 'correct horse battery') {
  await page.fill('#register-email', email);
  await page.fill('#register-password', password);
  await page.click('#register-form button');
  await page.locator('#status').filter({ hasText: 'Account created' }).waitFor();
  assert.equal(await page.inputValue('#login-email'), email, 'the sign-in form is prefilled');
  await page.fill('#login-password', password);
  await page.keyboard.press('Enter');
  await page.locator('#signed-in').waitFor({ state: 'visible' });
}


describe('browser client', () => {
  let worker;
  let browser;
  let context;
  let foreign;
  const refreshes = []; // { at, status, page }
  const issued = []; // access tokens seen on the wire, in order

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    worker = await startWorker({ vars: { ACCESS_TTL_SECONDS: String(TTL), CLOCK_LEEWAY_SECONDS: '0' } });
    browser = await launchChromium();
    context = await browser.newContext();
    context.on('response', async (res) => {
      const url = new URL(res.url());
      if (url.pathname === '/auth/refresh') refreshes.push({ at: Date.now(), status: res.status(), origin: res.request().headers().origin });
      if ((url.pathname === '/auth/refresh' || url.pathname === '/auth/login') && res.status() === 200) {
        try { issued.push((await res.json()).access_token); } catch { /* body not kept */ }
      }
    });
    // A page on another origin and site (localhost vs 127.0.0.1) that tries to use the cookie.
    foreign = createServer((req, res) => {
      const body = `<!doctype html><title>foreign</title><script>
        window.attempt = fetch(${JSON.stringify(worker.url)} + '/auth/refresh', { method: 'POST', credentials: 'include' })
          .then((r) => 'status ' + r.status, (e) => 'blocked: ' + e.message);
      </script>`;
      res.writeHead(200, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise((r) => foreign.listen(0, '127.0.0.1', r));
  });

  after(async () => {
    await context?.close();
    await browser?.close();
    await new Promise((r) => (foreign ? foreign.close(r) : r()));
    await worker?.cleanup();
  });

  test('register, sign in, whoami, silent refresh, two tabs, sign out everywhere', async () => {
    const page = await context.newPage();
    const main = await page.goto(worker.url);
    // Security headers on the page and its assets.
    const csp = main.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.equal(main.headers()['x-content-type-options'], 'nosniff');
    assert.ok(main.headers()['referrer-policy']);
    for (const asset of ['/app.js', '/style.css']) {
      const res = await page.request.get(worker.url + asset);
      assert.match(res.headers()['content-security-policy'], /frame-ancestors 'none'/, asset);
      assert.equal(res.headers()['x-content-type-options'], 'nosniff', asset);
    }
    await page.locator('#signed-out').waitFor({ state: 'visible' });

    const email = `browser-${Date.now()}@example.com`;
    await page.fill('#register-email', email);
    await page.fill('#register-password', 'short');
    await page.click('#register-form button');
    await page.locator('#error').filter({ hasText: '8 to 256' }).waitFor();
    await page.fill('#register-password', 'correct horse battery');
    await page.click('#register-form button');
    await page.locator('#status').filter({ hasText: 'Account created' }).waitFor();
    assert.equal(await page.inputValue('#login-email'), email, 'the sign-in form is prefilled');

    // A wrong password first: the error is shown and the form stays.
    await page.fill('#login-password', 'wrong password');
    await page.keyboard.press('Enter');
    await page.locator('#error').filter({ hasText: 'do not match' }).waitFor();
    await page.fill('#login-password', 'correct horse battery');
    await page.keyboard.press('Enter');
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    assert.equal(await page.textContent('#who-email'), email);
    const firstToken = issued.at(-1);
    const firstExp = JSON.parse(Buffer.from(firstToken.split('.')[1], 'base64url')).exp * 1000;

    await page.click('#whoami-button');
    await page.locator('#status').filter({ hasText: `The API says you are ${email}` }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'signed-in.png'), fullPage: true });

    // Nothing readable holds a token.
    const storage = await page.evaluate(() => ({
      local: JSON.stringify({ ...localStorage }),
      session: JSON.stringify({ ...sessionStorage }),
      cookie: document.cookie,
    }));
    assert.equal(storage.cookie, '', 'the refresh cookie is HttpOnly');
    for (const where of ['local', 'session']) {
      assert.ok(!storage[where].includes(firstToken.split('.')[2]), `no access token in ${where}Storage`);
      assert.ok(!storage[where].includes('ghr1'), `no refresh token in ${where}Storage`);
    }
    const cookies = await context.cookies(worker.url);
    const rt = cookies.find((c) => c.name === '__Host-gatehouse_rt');
    assert.ok(rt && rt.httpOnly && rt.secure && rt.sameSite === 'Strict' && rt.path === '/');

    // The silent refresh happens before the first token expires.
    await until('the silent refresh', () => refreshes.some((r) => r.status === 200), TTL * 1000 + 2000);
    const silent = refreshes.find((r) => r.status === 200);
    assert.ok(silent.at < firstExp, `refreshed ${firstExp - silent.at} ms before expiry`);
    await until('the old token to expire', () => Date.now() > firstExp + 500, TTL * 1000);
    await page.click('#whoami-button');
    await page.locator('#status').filter({ hasText: 'The API says' }).waitFor();
    assert.equal(await page.locator('#error').isVisible(), false);

    // A second tab takes the session from the first without a refresh of its own...
    const before = refreshes.length;
    const page2 = await context.newPage();
    await page2.goto(worker.url);
    await page2.locator('#signed-in').waitFor({ state: 'visible' });
    assert.equal(refreshes.length, before, 'the new tab got the token over BroadcastChannel');
    assert.equal(await page2.textContent('#who-email'), email);
    // ...and from then on the two tabs share exactly one refresh per cycle.
    const cycleStart = refreshes.length;
    await until('the next refresh', () => refreshes.length > cycleStart, TTL * 1000 + 2000);
    await sleep(2500);
    assert.equal(refreshes.length - cycleStart, 1, 'exactly one refresh request between two tabs');
    assert.equal(refreshes.at(-1).status, 200);
    assert.ok(await page.locator('#signed-in').isVisible());
    assert.ok(await page2.locator('#signed-in').isVisible());
    assert.equal(await page.textContent('#who-sid'), await page2.textContent('#who-sid'));

    // Signing out in one tab signs out the other, and the edge refuses the last access token.
    const lastToken = issued.at(-1);
    await page2.click('#logout-button');
    await page2.locator('#signed-out').waitFor({ state: 'visible' });
    await page.locator('#signed-out').waitFor({ state: 'visible', timeout: 5000 });
    await page.locator('#status').filter({ hasText: 'another tab' }).waitFor();
    const res = await fetch(`${worker.url}/api/whoami`, { headers: { authorization: `Bearer ${lastToken}` } });
    assert.equal(res.status, 401);
    await res.arrayBuffer();
    assert.equal((await context.cookies(worker.url)).find((c) => c.name === '__Host-gatehouse_rt'), undefined, 'cookie cleared');
    await page.screenshot({ path: join(ARTIFACTS, 'signed-out.png'), fullPage: true });

    // After a reload the tab stays signed out (no session left in the cookie).
    await page.reload();
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    await page2.close();
    await page.close();
  });

  test('a 401 is followed by one silent refresh; signing out with a dead token still ends the session', async () => {
    // A context of its own, so the other tests' cookies and counters stay apart.
    const ctx = await browser.newContext();
    const seen = { refreshes: 0, issued: [] };
    ctx.on('response', async (res) => {
      const path = new URL(res.url()).pathname;
      if (path === '/auth/refresh') seen.refreshes += 1;
      if ((path === '/auth/refresh' || path === '/auth/login') && res.status() === 200) {
        try { seen.issued.push((await res.json()).access_token); } catch { /* body not kept */ }
      }
    });
    const revoke = async (token) => {
      const res = await fetch(`${worker.url}/oauth/revoke`, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }),
      });
      assert.equal(res.status, 200);
    };
    const page = await ctx.newPage();
    await page.goto(worker.url);
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    await registerAndSignIn(page, `dead-${Date.now()}@example.com`);
    // Entering the signed-in view asks the edge who we are.
    await page.locator('#status').filter({ hasText: 'The API says you are' }).waitFor();

    // The access token is revoked behind the page's back: the next call gets a 401, refreshes once,
    // and succeeds on the retry.
    const first = seen.issued.at(-1);
    await revoke(first);
    let before = seen.refreshes;
    await page.evaluate(() => { document.getElementById('status').textContent = ''; });
    await page.click('#whoami-button');
    await page.locator('#status').filter({ hasText: 'The API says you are' }).waitFor();
    assert.equal(seen.refreshes - before, 1, 'exactly one refresh after the 401');
    // The listener reads the refresh answer's body asynchronously: wait for it, not for a race.
    await until('the refreshed token to be seen', () => seen.issued.at(-1) !== first, 5000);
    assert.equal(await page.locator('#error').isVisible(), false);

    // Signing out with a dead access token refreshes first, so the session really ends on the server.
    await revoke(seen.issued.at(-1));
    const cookie = (await ctx.cookies(worker.url)).find((c) => c.name === '__Host-gatehouse_rt').value;
    before = seen.refreshes;
    await page.click('#logout-button');
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    assert.equal(seen.refreshes - before, 1, 'refreshed to be able to sign out');
    const res = await fetch(`${worker.url}/auth/refresh`, {
      method: 'POST', headers: { cookie: `__Host-gatehouse_rt=${cookie}`, origin: worker.url },
    });
    assert.equal(res.status, 401, 'the session ended on the server, not just in the page');
    await res.arrayBuffer();
    await ctx.close();
  });

  test('a refresh failing in a newly opened tab signs no tab out: retried with the same cookie, a lost answer is recovered', async () => {
    const ctx = await browser.newContext();
    const answers = []; // what the server answered each refresh that reached it: { page, status, access }
    const page = await ctx.newPage();
    await page.goto(worker.url);
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    await registerAndSignIn(page, `flaky-${Date.now()}@example.com`);
    await page.locator('#status').filter({ hasText: 'The API says you are' }).waitFor();
    // The new tab's first refresh gets a 503; the second reaches the server, which rotates the
    // token, but the answer is lost on the way back (the cookie jar never sees its Set-Cookie); the
    // third goes through.
    const page2 = await ctx.newPage();
    let attempts = 0;
    let presented = null;
    await page2.route('**/auth/refresh', async (route) => {
      attempts += 1;
      const request = route.request();
      const cookie = (await request.allHeaders()).cookie ?? '';
      if (presented !== null) assert.equal(cookie, presented, `attempt ${attempts} presents the same cookie`);
      presented = cookie;
      if (attempts === 1) {
        await route.fulfill({ status: 503, contentType: 'application/json', headers: { 'retry-after': '1' }, body: '{"error":"temporarily_unavailable"}' });
      } else if (attempts === 2) {
        const res = await fetch(request.url(), { method: 'POST', headers: await request.allHeaders() });
        answers.push({ status: res.status, access: (await res.json()).access_token });
        await route.abort('connectionreset');
      } else {
        await route.continue();
      }
    });
    page2.on('response', async (res) => {
      if (new URL(res.url()).pathname === '/auth/refresh' && res.status() === 200) {
        answers.push({ status: 200, access: (await res.json()).access_token });
      }
    });
    // The first tab is busy with a long task for 3 s, so it cannot hand its token to the new tab
    // within the new tab's wait: the new tab refreshes with the cookie itself.
    const busy = page.evaluate(() => { const end = Date.now() + 3000; while (Date.now() < end); });
    await page2.goto(worker.url);
    await page2.locator('#signed-in').waitFor({ state: 'visible', timeout: 15_000 });
    // The busy tab comes back: nobody told it to sign out, and it takes the new tab's token.
    await busy;
    await sleep(500);
    assert.doesNotMatch(await page.textContent('#status'), /another tab/, 'the first tab was not told to sign out');
    assert.ok(await page.locator('#signed-in').isVisible(), 'the first tab is still signed in');
    assert.ok(await page2.locator('#signed-in').isVisible(), 'the new tab is still signed in');
    assert.equal(attempts, 3, 'a 503, a lost answer, then the answer');
    assert.equal(answers[0].status, 200, 'the lost attempt was committed by the server');
    assert.equal(answers[1].status, 200);
    assert.equal(answers[1].access, answers[0].access, 'the retry within the grace period got the very pair the lost answer carried');
    await until('the reconnecting notice to clear', async () => !(await page2.locator('#error').isVisible()), 5000);
    // The session lives on: the next refresh (either tab's) rotates normally, and the API answers.
    await page2.unroute('**/auth/refresh');
    const rotated = answers[1].access;
    const seen = [];
    ctx.on('response', async (res) => {
      if (new URL(res.url()).pathname === '/auth/refresh') seen.push(res.status());
    });
    await until('the next refresh', () => seen.length > 0, TTL * 1000 + 3000);
    assert.deepEqual(seen, [200], 'the cookie was not taken for reuse');
    await page.click('#whoami-button');
    await page.locator('#status').filter({ hasText: 'The API says you are' }).waitFor();
    assert.notEqual(rotated, null);
    await ctx.close();
  });

  test('a page from a foreign origin cannot refresh with the cookie', async () => {
    const page = await context.newPage();
    await page.goto(worker.url);
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    await registerAndSignIn(page, `foreign-${Date.now()}@example.com`);
    const cookieBefore = (await context.cookies(worker.url)).find((c) => c.name === '__Host-gatehouse_rt').value;

    const evil = await context.newPage();
    const logMark = worker.logs.length;
    await evil.goto(`http://localhost:${foreign.address().port}/`);
    const outcome = await evil.evaluate(() => window.attempt);
    assert.match(outcome, /^blocked/, `the foreign page read a response: ${outcome}`);
    // The browser hides a CORS-refused response from the page (and from the test's network events),
    // so what the worker answered is read from its log.
    await until('the worker to log the attempt', () => /POST \/auth\/refresh/.test(worker.logs.slice(logMark)), 5000);
    const answered = [...worker.logs.slice(logMark).matchAll(/POST \/auth\/refresh (\d{3})/g)].map((m) => Number(m[1]));
    assert.ok(answered.length >= 1, 'the attempt reached the worker');
    // SameSite=Strict already keeps the cookie off this cross-site request, so the worker sees no
    // cookie (400 invalid_request) before its Origin check would answer 403; the Origin check
    // itself is shown in issuer.test.mjs ("cookie transport"). Either way nothing is rotated.
    for (const status of answered) assert.ok(status === 400 || status === 403, `the worker refused it (${status})`);
    const cookieAfter = (await context.cookies(worker.url)).find((c) => c.name === '__Host-gatehouse_rt').value;
    assert.equal(cookieAfter, cookieBefore, 'the session was not rotated by the foreign page');

    // The real app still refreshes fine.
    await page.click('#whoami-button');
    await page.locator('#status').filter({ hasText: 'The API says' }).waitFor();
    await evil.close();
    await page.close();
  });
});
