// The browser client's second factor in a real Chromium (playwright-core) against wrangler dev:
// enrol an authenticator app (QR code and key shown, first code, recovery codes shown once), react to
// the edge's RFC 9470 step-up refusal by asking for the password and a code and retrying, and sign
// in with a recovery code. The codes are computed here from the key the page shows, as an app would.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startWorker, launchChromium, registerAndSignIn } from './harness.mjs';

const PASSWORD = 'correct horse battery';

function totp(secret, offset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0; let value = 0; const key = [];
  for (const c of secret) { value = (value << 5) | alphabet.indexOf(c); bits += 5; if (bits >= 8) { bits -= 8; key.push((value >> bits) & 0xff); } }
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30_000) + offset));
  const mac = createHmac('sha1', Buffer.from(key)).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

describe('browser client: two-step sign-in and step-up', () => {
  let worker;
  let browser;

  before(async () => {
    worker = await startWorker({
      vars: { ROUTE_POLICIES: JSON.stringify([{ prefix: '/api/whoami', amr: ['otp', 'mfa'], max_age: 300 }]) },
    });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await worker?.cleanup();
  });

  test('enrol TOTP, step up when the API asks, then sign in with a recovery code', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(worker.url);
    const email = `mfa-browser-${Date.now()}@example.com`;
    await registerAndSignIn(page, email, PASSWORD);
    // The API asks for a second factor (RFC 9470): the page asks for the password and a code.
    await page.locator('#mfa-form').waitFor({ state: 'visible' });
    assert.equal(await page.isVisible('#mfa-password-row'), true);
    assert.match(await page.textContent('#error'), /two-step/);

    // Enrol: the QR code and the key, then the first code; the recovery codes are shown once.
    await page.click('#totp-enroll-button');
    await page.locator('#totp-enroll').waitFor({ state: 'visible' });
    const qr = await page.getAttribute('#totp-qr', 'src');
    assert.ok(qr.startsWith('data:image/svg+xml'), qr.slice(0, 30));
    const naturalWidth = await page.$eval('#totp-qr', (img) => img.complete && img.naturalWidth);
    assert.ok(naturalWidth > 0, 'the QR code renders under the page CSP');
    const secret = (await page.textContent('#totp-secret')).trim();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    await page.fill('#totp-confirm-code', totp(secret));
    await page.click('#totp-confirm-form button');
    await page.locator('#recovery').waitFor({ state: 'visible' });
    const recovery = (await page.textContent('#recovery-codes')).trim().split('\n');
    assert.equal(recovery.length, 10);

    // Step up: password and the next code; the page signs in again and retries the API call.
    await page.fill('#mfa-password', PASSWORD);
    await page.fill('#mfa-code', totp(secret, 1));
    await page.click('#mfa-form button');
    await page.locator('#status').filter({ hasText: 'The API says you are' }).waitFor();
    assert.equal(await page.isVisible('#mfa-form'), false);

    // Sign out; signing in again asks for the code (no password row), and a recovery code works.
    await page.click('#logout-button');
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    await page.fill('#login-email', email);
    await page.fill('#login-password', PASSWORD);
    await page.click('#login-form button');
    await page.locator('#mfa-form').waitFor({ state: 'visible' });
    assert.equal(await page.isVisible('#mfa-password-row'), false);
    await page.fill('#mfa-code', 'not-a-code');
    await page.click('#mfa-form button');
    await page.locator('#error').filter({ hasText: 'not right' }).waitFor();
    await page.fill('#mfa-code', recovery[0]);
    await page.click('#mfa-form button');
    await page.locator('#status').filter({ hasText: 'The API says you are' }).waitFor();
    await context.close();
  });
});
