// Passkeys in a real Chromium (playwright-core) against wrangler dev, with Chromium's virtual
// authenticator (CDP WebAuthn domain: CTAP2, internal, resident keys, user verification): add a
// passkey from the signed-in view, sign in with it and no password (amr hwk mfa) through a step-up
// route of the edge (ROUTE_POLICIES amr ["mfa"], max_age), use it as the second step of a password
// login, and replay each captured assertion from here: both are refused.
//
// WebAuthn needs a secure context and a domain as RP ID (not an IP address), so the page is opened
// at http://localhost:<port> with WEBAUTHN_RP_ID=localhost and that origin in WEBAUTHN_ORIGINS.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, freePort, launchChromium, registerAndSignIn } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const claimsOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));

describe('browser client: passkeys', () => {
  let worker;
  let browser;
  let base;

  before(async () => {
    const port = await freePort();
    base = `http://localhost:${port}`;
    worker = await startWorker({
      port,
      vars: {
        ROUTE_POLICIES: JSON.stringify([{ prefix: '/api/whoami', amr: ['mfa'], max_age: 300 }]),
        WEBAUTHN_RP_ID: 'localhost',
        WEBAUTHN_ORIGINS: base,
      },
    });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await worker?.cleanup();
  });

  test('add a passkey, sign in with it through a step-up route, use it as a second step; replays are refused', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
    });
    // The bodies the page sends (a Request's stream, which CDP does not show): kept for the replays.
    await page.addInitScript(() => {
      const original = globalThis.fetch;
      globalThis.sentBodies = {};
      globalThis.fetch = (input, init) => {
        if (input instanceof Request && input.method === 'POST') {
          const path = new URL(input.url).pathname;
          input.clone().text().then((text) => { globalThis.sentBodies[path] = text; });
        }
        return original(input, init);
      };
    });
    const sent = async (path) => page.evaluate((p) => globalThis.sentBodies[p], path);
    const tokens = {};
    page.on('response', async (r) => {
      const path = new URL(r.url()).pathname;
      if (r.ok() && (path === '/auth/webauthn/login/verify' || path === '/auth/mfa/verify')) tokens[path] = (await r.json()).access_token;
    });

    await page.goto(base);
    const email = `passkey-browser-${Date.now()}@example.com`;
    await registerAndSignIn(page, email, PASSWORD);
    // A password alone falls short of the route's amr ["mfa"]: the page asks for a second factor.
    await page.locator('#mfa-form').waitFor({ state: 'visible' });

    // Add a passkey (the password login is recent enough).
    await page.click('#passkey-add-button');
    await page.locator('#status').filter({ hasText: 'Passkey added' }).waitFor();
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].isResidentCredential, true);
    assert.equal(credentials[0].rpId, 'localhost');

    // Sign out, then sign in with the passkey alone: the step-up route admits the session.
    await page.click('#logout-button');
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    await page.fill('#login-email', email);
    await page.click('#passkey-login-button');
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    assert.deepEqual(claimsOf(tokens['/auth/webauthn/login/verify']).amr, ['hwk', 'mfa']);
    assert.equal(claimsOf(tokens['/auth/webauthn/login/verify']).acr, 'aal2');
    await page.click('#whoami-button');
    await page.locator('#status').filter({ hasText: 'The API says you are' }).waitFor();
    assert.equal(await page.isVisible('#mfa-form'), false);

    // The captured assertion, sent again: its challenge is spent.
    const replay = await fetch(`${base}/auth/webauthn/login/verify`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: await sent('/auth/webauthn/login/verify'),
    });
    assert.equal(replay.status, 401);
    assert.equal((await replay.json()).error, 'invalid_credentials');

    // A password login now asks for the second factor, and the passkey is offered.
    await page.click('#logout-button');
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    await page.fill('#login-email', email);
    await page.fill('#login-password', PASSWORD);
    await page.click('#login-form button[type=submit]');
    await page.locator('#mfa-form').waitFor({ state: 'visible' });
    assert.equal(await page.isVisible('#mfa-passkey-button'), true);
    await page.click('#mfa-passkey-button');
    // (The status line may already show the API's answer: the page asks it as soon as it signs in.)
    await page.locator('#mfa-form').waitFor({ state: 'hidden' });
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    assert.equal(await page.textContent('#error'), '');
    assert.deepEqual(claimsOf(tokens['/auth/mfa/verify']).amr, ['pwd', 'hwk', 'mfa']);
    await page.click('#whoami-button');
    await page.locator('#status').filter({ hasText: 'The API says you are' }).waitFor();

    // That second step, sent again: its ticket is spent.
    const again = await fetch(`${base}/auth/mfa/verify`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: await sent('/auth/mfa/verify'),
    });
    assert.equal(again.status, 401);
    assert.equal((await again.json()).error, 'invalid_mfa_ticket');
    await context.close();
  });
});
