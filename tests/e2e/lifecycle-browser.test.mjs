// The browser client's account lifecycle (issue 13) in a real Chromium (playwright-core) against
// wrangler dev, with the dev mail outbox (MAIL_TRANSPORT=outbox, read at GET /dev/outbox): verify the
// email from the registration mail's link, forget the password and set a new one from the reset
// mail's link, change it, see the sessions and sign out another browser's, download the account's
// data, and delete the account. Every mail link is opened in the page, as a mail client would.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startWorker, until, launchChromium, registerAndSignIn } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const RESET_PASSWORD = 'a new horse, battery included';
const CHANGED_PASSWORD = 'yet another staple, changed';
const SECOND_DEVICE = 'gatehouse-e2e second device';

/** Signs in through the page's form. */
async function signIn(page, email, password) {
  await page.fill('#login-email', email);
  await page.fill('#login-password', password);
  await page.click('#login-form button[type=submit]');
}

describe('browser client: account lifecycle', () => {
  let worker;
  let browser;
  /** The ids of the mails a link was taken from already. */
  const used = new Set();

  /** The newest mail to `to` with a `#<kind>=<token>` link not used yet: waits for it (it is sent after the answer). */
  async function mailLink(to, kind) {
    let found = null;
    await until(`a ${kind} mail to ${to}`, async () => {
      const res = await worker.fetch(`/dev/outbox?to=${encodeURIComponent(to)}`);
      assert.equal(res.status, 200, 'GET /dev/outbox');
      const { mails } = await res.json();
      for (const mail of mails) {
        assert.equal(mail.to, to, 'the outbox filters by recipient');
        const match = new RegExp(`\\S*#${kind}=([A-Za-z0-9._~%+/=-]+)`).exec(mail.text ?? '');
        // A sentence's full stop after the link is not part of the token.
        if (match && !used.has(mail.id)) found = { mail, link: match[0].replace(/[.,]+$/, ''), token: match[1].replace(/[.,]+$/, '') };
      }
      return found !== null;
    }, 15_000);
    used.add(found.mail.id);
    // The link points at the app's page (APP_URL, by default the issuer) with the token in the fragment.
    assert.match(found.link, new RegExp(`^https?://\\S*/#${kind}=`), found.link);
    return found;
  }

  before(async () => {
    // wrangler.toml's local config has MAIL_TRANSPORT=outbox and the OUTBOX binding.
    worker = await startWorker();
    const res = await worker.fetch('/dev/outbox');
    assert.equal(res.status, 200, 'the dev outbox is on (MAIL_TRANSPORT=outbox and the OUTBOX KV binding in wrangler.toml)');
    await res.arrayBuffer();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await worker?.cleanup();
  });

  test('verify, forget and reset, change the password, sessions, export, delete', async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    await page.goto(worker.url);
    await page.locator('#signed-out').waitFor({ state: 'visible' });

    // Register and sign in through the page; the registration sent a verification mail.
    const email = `lifecycle-${Date.now()}@example.com`;
    await registerAndSignIn(page, email, PASSWORD);
    await page.locator('#who-verified').filter({ hasText: 'not yet' }).waitFor();
    assert.equal(await page.isVisible('#verify-email-button'), true, 'an unverified account is offered a new link');
    const verification = await mailLink(email, 'verify');

    // Asking for another link within the minute is refused (one mail of a kind a minute per
    // account, the registration's included): the page says to use the one sent.
    await page.click('#verify-email-button');
    await page.locator('#error').filter({ hasText: 'a moment ago' }).waitFor();

    // A made-up token is refused with the table's message, and leaves the address bar too.
    const bogus = await context.newPage();
    await bogus.goto(`${worker.url}/#verify=not-a-real-token`);
    await bogus.locator('#error').filter({ hasText: 'does not work any more' }).waitFor();
    assert.ok(!bogus.url().includes('#verify'), bogus.url());
    await bogus.close();

    // The link, opened in a new tab as from a mail client: verified, and the token is gone from the address.
    const linkPage = await context.newPage();
    await linkPage.goto(`${worker.url}/#verify=${verification.token}`);
    await linkPage.locator('#status').filter({ hasText: 'Email verified' }).waitFor();
    assert.equal(new URL(linkPage.url()).hash, '', 'the token left the address bar');
    assert.ok(!linkPage.url().includes(verification.token));
    // The new tab has the session (from the first tab) and shows the account verified; so does the first tab.
    await linkPage.locator('#who-verified').filter({ hasText: 'yes' }).waitFor();
    assert.equal(await linkPage.isVisible('#verify-email-button'), false);
    await page.locator('#who-verified').filter({ hasText: 'yes' }).waitFor();
    assert.equal(await page.isVisible('#verify-email-button'), false);
    await linkPage.close();
    // A used link is dead.
    const again = await api('/auth/email/verify', { method: 'POST', body: { token: verification.token } });
    assert.equal(again.status, 400);
    assert.equal(again.body.error, 'invalid_or_expired_token');

    // Sign out, then "Forgot password?".
    await page.click('#logout-button');
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    await page.click('#forgot-link');
    await page.locator('#forgot-form').waitFor({ state: 'visible' });
    assert.equal(await page.isVisible('#login-form'), false);
    await page.fill('#forgot-email', email);
    await page.click('#forgot-form button[type=submit]');
    await page.locator('#status').filter({ hasText: 'If an account exists for that address, we sent a link.' }).waitFor();
    await page.locator('#login-form').waitFor({ state: 'visible' });
    assert.equal(await page.inputValue('#login-email'), email);
    // An unknown address gets the very same answer (and no mail).
    const unknown = await api('/auth/password/forgot', { method: 'POST', body: { email: `nobody-${Date.now()}@example.com` } });
    assert.equal(unknown.status, 202);
    assert.equal(unknown.body.status, 'accepted');
    const reset = await mailLink(email, 'reset');

    // The reset link, opened in the same tab (only the fragment changes): the form for the new password.
    await page.goto(`${worker.url}/#reset=${reset.token}`);
    await page.locator('#reset-form').waitFor({ state: 'visible' });
    assert.equal(new URL(page.url()).hash, '', 'the token left the address bar');
    await page.fill('#reset-password', RESET_PASSWORD);
    await page.fill('#reset-password2', `${RESET_PASSWORD}!`);
    await page.click('#reset-form button[type=submit]');
    await page.locator('#error').filter({ hasText: 'not the same' }).waitFor();
    await page.fill('#reset-password', 'short');
    await page.fill('#reset-password2', 'short');
    await page.click('#reset-form button[type=submit]');
    await page.locator('#error').filter({ hasText: '8 to 256' }).waitFor();
    await page.fill('#reset-password', RESET_PASSWORD);
    await page.fill('#reset-password2', RESET_PASSWORD);
    await page.click('#reset-form button[type=submit]');
    await page.locator('#status').filter({ hasText: 'Password changed; sign in with the new password' }).waitFor();
    assert.equal(await page.isVisible('#reset-form'), false);
    assert.equal(await page.isVisible('#error'), false);
    const reused = await api('/auth/password/reset', { method: 'POST', body: { token: reset.token, password: 'something else entirely' } });
    assert.equal(reused.status, 400, 'a reset link works once');
    assert.equal(reused.body.error, 'invalid_or_expired_token');

    // The old password is gone; the new one signs in.
    await signIn(page, email, PASSWORD);
    await page.locator('#error').filter({ hasText: 'do not match' }).waitFor();
    await signIn(page, email, RESET_PASSWORD);
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    assert.equal(await page.textContent('#who-email'), email);

    // Change the password: a wrong current one is refused, a short new one never sent.
    await page.fill('#current-password', 'not my password');
    await page.fill('#new-password', CHANGED_PASSWORD);
    await page.click('#change-password-form button[type=submit]');
    await page.locator('#error').filter({ hasText: 'not your current password' }).waitFor();
    await page.fill('#current-password', RESET_PASSWORD);
    await page.fill('#new-password', 'short');
    await page.click('#change-password-form button[type=submit]');
    await page.locator('#error').filter({ hasText: '8 to 256' }).waitFor();
    await page.fill('#current-password', RESET_PASSWORD);
    await page.fill('#new-password', CHANGED_PASSWORD);
    await page.click('#change-password-form button[type=submit]');
    await page.locator('#status').filter({ hasText: 'Every other device was signed out' }).waitFor();
    assert.equal(await page.isVisible('#error'), false);
    assert.equal(await page.inputValue('#current-password'), '', 'the form is emptied');

    // The sessions list: this session alone, marked as this device, with its times.
    const sid = (await page.textContent('#who-sid')).trim();
    const rows = page.locator('#sessions-list li');
    await until('the list to show this session alone', async () => (await rows.count()) === 1
      && (await rows.first().getAttribute('data-sid')) === sid, 10_000);
    assert.match(await rows.first().textContent(), /This device/);
    assert.match(await rows.first().textContent(), /Signed in .+ · last used /);
    assert.equal(await page.locator('#sessions-list button.session-revoke').count(), 0, 'no sign-out button for this device');

    // A second browser (its own cookies, DPoP key and user agent) signs in with the changed password.
    const other = await browser.newContext({ userAgent: SECOND_DEVICE });
    const otherPage = await other.newPage();
    const otherRefreshes = [];
    otherPage.on('response', (res) => {
      if (new URL(res.url()).pathname === '/auth/refresh') otherRefreshes.push(res.status());
    });
    await otherPage.goto(worker.url);
    await otherPage.locator('#signed-out').waitFor({ state: 'visible' });
    await signIn(otherPage, email, CHANGED_PASSWORD);
    await otherPage.locator('#signed-in').waitFor({ state: 'visible' });
    const otherSid = (await otherPage.textContent('#who-sid')).trim();
    assert.notEqual(otherSid, sid);
    await otherPage.locator('#sessions-list li').nth(1).waitFor();

    // The first browser sees two sessions, and signs the other device out.
    await page.click('#sessions-refresh-button');
    await until('the list to show two sessions', async () => (await rows.count()) === 2, 10_000);
    const otherRow = page.locator(`#sessions-list li[data-sid="${otherSid}"]`);
    assert.match(await otherRow.textContent(), new RegExp(SECOND_DEVICE));
    assert.doesNotMatch(await otherRow.textContent(), /This device/);
    assert.match(await page.locator(`#sessions-list li[data-sid="${sid}"]`).textContent(), /This device/);
    const revoke = page.locator('#sessions-list button.session-revoke');
    assert.equal(await revoke.count(), 1);
    assert.equal(await revoke.getAttribute('data-sid'), otherSid);
    await revoke.click();
    await page.locator('#status').filter({ hasText: 'That device was signed out' }).waitFor();
    await until('the list to show this session alone again', async () => (await rows.count()) === 1
      && (await rows.first().getAttribute('data-sid')) === sid, 10_000);

    // The other browser's session is over: its refresh is refused and it shows signed out.
    otherRefreshes.length = 0;
    await otherPage.reload();
    await otherPage.locator('#signed-out').waitFor({ state: 'visible' });
    await otherPage.locator('#error').filter({ hasText: 'session has ended' }).waitFor();
    assert.ok(otherRefreshes.length >= 1 && otherRefreshes.every((status) => status === 401), `the revoked session cannot refresh: ${otherRefreshes}`);
    await other.close();
    // This browser is still signed in.
    await page.click('#whoami-button');
    await page.locator('#status').filter({ hasText: `The API says you are ${email}` }).waitFor();

    // Download my data: a JSON file with the account, and never a secret.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-button')]);
    assert.match(download.suggestedFilename(), /\.json$/);
    const text = await readFile(await download.path(), 'utf8');
    const exported = JSON.parse(text);
    assert.equal(exported.account.email, email);
    assert.equal(exported.account.email_verified, true);
    assert.ok(Array.isArray(exported.sessions) && exported.sessions.some((s) => s.sid === sid), 'the export lists this session');
    assert.doesNotMatch(text, /argon2|password_hash|refresh_token|ghr1/i, 'no secret in the export');
    await page.locator('#status').filter({ hasText: 'downloaded' }).waitFor();

    // Delete the account: the password is asked and checked, and the page asks to confirm.
    const dialogs = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      dialog.accept();
    });
    await page.fill('#delete-password', 'not my password');
    await page.click('#delete-account-form button[type=submit]');
    await page.locator('#error').filter({ hasText: 'not your current password' }).waitFor();
    assert.equal(await page.isVisible('#signed-in'), true);
    await page.fill('#delete-password', CHANGED_PASSWORD);
    await page.click('#delete-account-form button[type=submit]');
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    await page.locator('#status').filter({ hasText: 'account was deleted' }).waitFor();
    assert.equal(dialogs.length, 2, 'each deletion was confirmed first');
    assert.match(dialogs[0], /cannot be undone/);

    // The account is gone: signing in fails.
    await signIn(page, email, CHANGED_PASSWORD);
    await page.locator('#error').filter({ hasText: 'do not match' }).waitFor();
    assert.equal(await page.isVisible('#signed-in'), false);
    await context.close();
  });

  test('a verification link opened signed out asks for the account\'s password', async () => {
    const email = `verify-out-${Date.now()}@example.com`;
    assert.equal((await api('/auth/register', { method: 'POST', body: { email, password: PASSWORD } })).status, 201);
    const verification = await mailLink(email, 'verify');
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${worker.url}/#verify=${verification.token}`);
    await page.locator('#verify-form').waitFor({ state: 'visible' });
    assert.equal(new URL(page.url()).hash, '', 'the token left the address bar');
    // Someone who has the mailbox but not the password cannot verify the account.
    await page.fill('#verify-password', 'not the password');
    await page.click('#verify-form button[type=submit]');
    await page.locator('#error').filter({ hasText: 'not the password of this account' }).waitFor();
    assert.equal(await page.isVisible('#verify-form'), true, 'the link stays usable');
    await page.fill('#verify-password', PASSWORD);
    await page.click('#verify-form button[type=submit]');
    await page.locator('#status').filter({ hasText: 'Email verified' }).waitFor();
    assert.equal(await page.isVisible('#verify-form'), false);
    const login = await api('/auth/login', { method: 'POST', body: { email, password: PASSWORD } });
    const claims = JSON.parse(Buffer.from(login.body.access_token.split('.')[1], 'base64url'));
    assert.equal(claims.email_verified, true);
    await context.close();
  });

  /** A JSON call straight to the worker: `{ status, body }`. */
  async function api(path, { method = 'GET', body } = {}) {
    const res = await worker.fetch(path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }
});
