// gatehouse example client.
//
// - The access token lives only in this module's memory. The refresh token lives only in the
//   HttpOnly `__Host-gatehouse_rt` cookie (login with "transport": "cookie"). Nothing is written to
//   localStorage, sessionStorage or a readable cookie.
// - The token is refreshed silently shortly before it expires, and after a 401.
// - Across tabs, one tab refreshes at a time (Web Locks). The new access token is handed to the
//   others over a BroadcastChannel, as is "signed out": signing out in one tab signs out every tab.
// - Only the server's 401 to a refresh ends the session. A network error or a 5xx is retried with
//   the same cookie (capped, jittered backoff), so a refresh whose answer was lost is recovered
//   within the server's reuse grace period instead of being taken for reuse.
// - DPoP (RFC 9449, www/dpop.js): sign-in and refresh carry a proof made with this origin's
//   non-extractable key (kept in IndexedDB, the same for every tab). When the server binds the
//   tokens (`token_type: "DPoP"`, DPOP_MODE optional or required), every call with the access token
//   sends `Authorization: DPoP` and a fresh proof, and the refresh cookie only works with a proof
//   from that key: a copied token or cookie is useless without it. Server nonces are handled by
//   dpop.js. A server with DPoP off ignores the proofs, and the page uses bearer tokens.

import { createDpopClient } from '/dpop.js';

import { request } from './client/index.js';

const LOCK = 'gatehouse-refresh';
const channel = new BroadcastChannel('gatehouse');
/**
 * The origin's DPoP client (key in IndexedDB, shared by the tabs). Ed25519 where the browser has it
 * (the edge checks EdDSA proofs at once, on its synchronous path), else P-256.
 */
const dpop = createDpopClient({ alg: 'EdDSA' });
/** Whether this browser can make proofs at all (WebCrypto and IndexedDB): checked once. */
let dpopUsable;

/** @type {{ accessToken: string, exp: number, tokenType: string } | null} exp is in ms since the epoch. */
let session = null;
let refreshTimer = 0;
let clockTimer = 0;

const MESSAGES = {
  invalid_request: 'Please check what you entered: the request was not valid.',
  weak_password: 'Passwords must be 8 to 256 characters long.',
  email_taken: 'An account with that email already exists. Sign in instead.',
  invalid_credentials: 'That email and password do not match an account.',
  too_many_attempts: 'Too many failed attempts. Please wait {retry} seconds and try again.',
  invalid_grant: 'Your session has ended. Please sign in again.',
  invalid_token: 'Your session has expired. Please sign in again.',
  invalid_dpop_proof: 'This browser could not prove it holds the session key. Check the device clock and try again.',
  use_dpop_nonce: 'The server asked for a fresh proof. Please try again.',
  insufficient_scope: 'Your account is not allowed to do that.',
  method_not_allowed: 'That action is not available.',
  not_found: 'That resource does not exist.',
  server_error: 'Something went wrong on our side. Please try again.',
  temporarily_unavailable: 'The service is briefly unavailable. Please try again in a moment.',
  network: 'The server cannot be reached. Check your connection and try again.',
  invalid_mfa_code: 'That code is not right, or was used already. Try the next one.',
  invalid_mfa_ticket: 'The sign-in took too long or the code was wrong too often. Please sign in again.',
  mfa_already_enabled: 'Two-step sign-in is on already.',
  mfa_not_enabled: 'Two-step sign-in is not set up.',
  invalid_passkey: 'The passkey could not be added. Please try again.',
  passkey_limit: 'This account has as many passkeys as it may.',
  insufficient_user_authentication: 'This needs a recent two-step sign-in. Enter a code to continue.',
};

const $ = (id) => document.getElementById(id);

function messageFor(code, res) {
  const template = MESSAGES[code] ?? MESSAGES.server_error;
  return template.replace('{retry}', res?.headers.get('retry-after') ?? 'a few');
}

function showStatus(text) {
  $('status').textContent = text;
}

function showError(text) {
  const box = $('error');
  box.textContent = text;
  box.hidden = !text;
}

/** Whether proofs can be made here (the key loads or is made); false once means false for the page. */
async function canProve() {
  dpopUsable ??= dpop.thumbprint().then(() => true, () => false);
  return dpopUsable;
}

/** The token endpoints: a proof goes with every request, so the server can bind the session. */
const TOKEN_PATHS = new Set(['/auth/login', '/auth/refresh', '/auth/mfa/verify', '/auth/webauthn/login/verify']);

/** The email and MFA ticket of a login waiting for its second factor, and what to retry after it. */
let pendingMfa = null;

/**
 * Calls the API through the client package's `request` (www/client/); never throws. Returns
 * { res, data, error } where error is an API error code. With `auth` the access token goes along:
 * with a DPoP proof when it is bound, else as a bearer token. Requests to the token endpoints carry a
 * proof whenever this browser can make one.
 */
async function api(path, { method = 'GET', body, auth = false } = {}) {
  const bound = auth && session?.tokenType === 'DPoP';
  const prove = bound || (TOKEN_PATHS.has(path) && (await canProve()));
  const accessToken = bound ? session.accessToken : undefined;
  return request(path, {
    method,
    body,
    token: auth && session && !bound ? session.accessToken : undefined,
    ...(prove ? { fetch: (url, init) => dpop.fetch(url, init, { accessToken }) } : {}),
  });
}

function claimsOf(token) {
  const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(atob(payload));
}

/** Adopts a new access token; `announce` hands it to the other tabs. */
function setSession(accessToken, exp, announce, tokenType = 'Bearer') {
  session = { accessToken, exp, tokenType };
  if (announce) channel.postMessage({ type: 'token', accessToken, exp, tokenType });
  scheduleRefresh();
  renderSignedIn();
}

function clearSession() {
  session = null;
  clearTimeout(refreshTimer);
  clearInterval(clockTimer);
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!session) return;
  const lifetime = Math.max(0, session.exp - Date.now());
  // Refresh when a quarter of the lifetime (at most a minute, at least two seconds) is left.
  const margin = Math.min(60_000, Math.max(2_000, lifetime / 4));
  refreshTimer = setTimeout(() => refresh(), Math.max(0, lifetime - margin));
}

/** The first and the longest wait between two attempts of a refresh, in ms. */
const REFRESH_RETRY_FIRST_MS = 250;
const REFRESH_RETRY_MAX_MS = 4_000;
/** Attempts in one go (about 4 to 8 s of waiting in all, inside the server's default 10 s grace). */
const REFRESH_ATTEMPTS = 6;

/** The wait before retry `n` (0 for the first) of a refresh: doubling from REFRESH_RETRY_FIRST_MS up to
 *  REFRESH_RETRY_MAX_MS, half of it random ("equal jitter"), so tabs and clients do not retry in step. */
function backoff(n) {
  const ceiling = Math.min(REFRESH_RETRY_MAX_MS, REFRESH_RETRY_FIRST_MS * 2 ** n);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/**
 * Whether a refresh answer is a passing failure, to retry with the same cookie: the network failed,
 * the answer was lost or cut short (it may have been committed: the server gives the very same pair
 * to a retry within REFRESH_REUSE_GRACE_SECONDS), or the server was briefly unable to answer.
 */
function passing(res, data) {
  return !res || res.status >= 500 || res.status === 408 || res.status === 429 || (res.ok && !data?.access_token);
}

/**
 * Refreshes with the cookie, one tab at a time. A tab that waited for the lock while another tab
 * refreshed finds a newer token already adopted and does not refresh again.
 *
 * Only the server's authoritative answer (401 `invalid_grant`) ends the session, for every tab. A
 * passing failure is retried with backoff while the lock is held, so no other tab presents the same
 * cookie meanwhile; after REFRESH_ATTEMPTS the lock is let go and the tab keeps what it has and tries
 * again later. Any other refusal (no cookie, a foreign origin) concerns this tab alone.
 */
async function refresh() {
  const stale = session?.accessToken ?? null;
  return navigator.locks.request(LOCK, async () => {
    if (session && session.accessToken !== stale) return true;
    for (let attempt = 1; ; attempt++) {
      const { res, data, error } = await api('/auth/refresh', { method: 'POST' });
      if (!error && data?.access_token) {
        showError('');
        setSession(data.access_token, Date.now() + data.expires_in * 1000, true, data.token_type);
        return true;
      }
      if (!passing(res, data)) {
        endSession(res, error);
        return false;
      }
      // A token another tab hands over meanwhile is adopted, but this refresh goes on: its cookie
      // may have been rotated by an attempt whose answer was lost.
      showError(`${messageFor(error ?? 'network', res)} Reconnecting…`);
      if (attempt >= REFRESH_ATTEMPTS) {
        clearTimeout(refreshTimer);
        refreshTimer = setTimeout(() => refresh(), backoff(attempt));
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, backoff(attempt - 1)));
    }
  });
}

/** Ends the session after a refresh the server refused: for every tab on 401, else for this one. */
function endSession(res, error) {
  if (res?.status === 401) {
    // The session is over for every tab (they share the cookie).
    channel.postMessage({ type: 'logout' });
    renderSignedOut(messageFor('invalid_grant', res));
  } else {
    // No cookie (a first visit) or a refusal that says nothing about the session.
    renderSignedOut(session ? messageFor(error, res) : '');
  }
}

/** An API call that needs the access token: one silent refresh and retry after a 401 (not after a
 *  step-up refusal, which a refresh cannot answer: it keeps the session's authentication). */
async function authorized(path, options = {}) {
  let result = await api(path, { ...options, auth: true });
  if (result.res?.status === 401 && result.error !== 'insufficient_user_authentication' && (await refresh())) {
    result = await api(path, { ...options, auth: true });
  }
  return result;
}

function renderSignedIn() {
  if (!session) return;
  const claims = claimsOf(session.accessToken);
  $('who-email').textContent = claims.email ?? '';
  $('who-sub').textContent = claims.sub;
  $('who-sid').textContent = claims.sid ?? '';
  $('who-roles').textContent = (claims.roles ?? []).join(', ') || '(none)';
  $('who-scope').textContent = claims.scope || '(none)';
  $('who-binding').textContent = claims.cnf?.jkt ? `this browser's DPoP key (${claims.cnf.jkt})` : 'nothing (a bearer token)';
  const wasHidden = $('signed-in').hidden;
  $('loading').hidden = true;
  $('signed-out').hidden = true;
  $('signed-in').hidden = false;
  clearInterval(clockTimer);
  const tick = () => {
    if (!session) return;
    const seconds = Math.max(0, Math.round((session.exp - Date.now()) / 1000));
    const at = new Date(session.exp).toLocaleTimeString();
    $('who-exp').textContent = `at ${at} (in ${seconds} s)`;
  };
  tick();
  clockTimer = setInterval(tick, 1000);
  if (wasHidden) {
    $('whoami-button').focus();
    askWhoami();
  }
}

/** Asks the edge who we are (as the protected API sees it) and shows its answer. */
async function askWhoami() {
  const { res, data, error } = await authorized('/api/whoami');
  if (error === 'insufficient_user_authentication' && session) {
    // RFC 9470: the API wants a (recent) second factor; sign in again with it, then retry.
    showError(messageFor(error, res));
    askSecondFactor({ email: claimsOf(session.accessToken).email, ticket: null, retry: askWhoami });
    return;
  }
  if (error) {
    if (session) showError(messageFor(error, res));
    return;
  }
  $('who-email').textContent = data.email ?? '';
  $('who-sub').textContent = data.sub;
  $('who-sid').textContent = data.sid ?? '';
  $('who-roles').textContent = (data.roles ?? []).join(', ') || '(none)';
  $('who-scope').textContent = data.scope || '(none)';
  showStatus(`The API says you are ${data.email ?? data.sub} (token expires at ${new Date(data.exp * 1000).toLocaleTimeString()}).`);
}

function renderSignedOut(reason) {
  clearSession();
  pendingMfa = null;
  $('mfa-form').hidden = true;
  $('loading').hidden = true;
  $('signed-in').hidden = true;
  $('signed-out').hidden = false;
  showStatus('');
  showError(reason ?? '');
  $('login-email').focus();
}

async function withButton(button, work) {
  button.disabled = true;
  try {
    await work();
  } finally {
    button.disabled = false;
  }
}

async function onLogin(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await withButton(form.querySelector('button'), async () => {
    showError('');
    const email = form.email.value.trim();
    const { res, data, error } = await api('/auth/login', {
      method: 'POST',
      body: { email, password: form.password.value, transport: 'cookie' },
    });
    const password = form.password.value;
    form.password.value = '';
    if (error === 'mfa_required') {
      askSecondFactor({ email, ticket: data.mfa_ticket, methods: data.methods });
      return;
    }
    if (error) {
      showError(messageFor(error, res));
      form.password.focus();
      return;
    }
    setSession(data.access_token, Date.now() + data.expires_in * 1000, true, data.token_type);
    showStatus(data.token_type === 'DPoP' ? 'Signed in. Your session is bound to this browser\'s key.' : 'Signed in.');
  });
}

/** Shows the code form for a login that needs its second factor (`ticket`), or for a step-up the
 *  API asked for (no ticket: the form asks for the password too and signs in again with both). */
function askSecondFactor(pending) {
  pendingMfa = pending;
  $('mfa-form').hidden = false;
  // A step-up has no ticket yet: the password comes again, for a new login with the second factor.
  $('mfa-password-row').hidden = Boolean(pending.ticket);
  $('mfa-code').value = '';
  // A passkey is offered when the login said the account has one, and for a step-up (the login
  // made then will say; the button is harmless if it has none).
  $('mfa-passkey-button').hidden = !(pending.ticket === null || pending.methods?.includes('webauthn'));
  $('mfa-code').focus();
  showStatus('Enter the six-digit code from your authenticator app (or a recovery code).');
}

/** The pending login's ticket; for a step-up, a new login with the password in `form` gives one. */
async function ticketFor(form) {
  if (pendingMfa.ticket) return pendingMfa.ticket;
  const login = await api('/auth/login', { method: 'POST', body: { email: pendingMfa.email, password: form.password.value, transport: 'cookie' } });
  if (login.error !== 'mfa_required') {
    showError(messageFor(login.error ?? 'invalid_request', login.res));
    return null;
  }
  pendingMfa = { ...pendingMfa, ticket: login.data.mfa_ticket, methods: login.data.methods };
  return pendingMfa.ticket;
}

/** Redeems the ticket at /auth/mfa/verify and adopts the session (then retries a step-up's call). */
async function finishSecondFactor(body) {
  const form = $('mfa-form');
  const { res, data, error } = await api('/auth/mfa/verify', { method: 'POST', body });
  form.code.value = '';
  form.password.value = '';
  if (error) {
    showError(messageFor(error, res));
    if (error === 'invalid_mfa_ticket') pendingMfa = { ...pendingMfa, ticket: null };
    return;
  }
  const retry = pendingMfa.retry;
  pendingMfa = null;
  form.hidden = true;
  setSession(data.access_token, Date.now() + data.expires_in * 1000, true, data.token_type);
  showStatus('Signed in with two steps.');
  if (retry) await retry();
}

async function onMfaCode(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await withButton(form.querySelector('button'), async () => {
    showError('');
    if (!pendingMfa) return;
    const code = form.code.value.trim();
    const method = /^[0-9 ]+$/.test(code) ? 'totp' : 'recovery_code';
    const ticket = await ticketFor(form);
    if (!ticket) return;
    await finishSecondFactor({ mfa_ticket: ticket, method, code, transport: 'cookie' });
  });
}

// ---- passkeys (WebAuthn): the options and credentials travel as JSON with base64url bytes ----

function fromB64u(text) {
  const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function toB64u(buffer) {
  let bin = '';
  for (const b of new Uint8Array(buffer)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const descriptors = (list = []) => list.map((c) => ({ ...c, id: fromB64u(c.id) }));

/** `PublicKeyCredential.toJSON()`, by hand (not every browser has it yet). */
function credentialJSON(credential) {
  const r = credential.response;
  const response = { clientDataJSON: toB64u(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toB64u(r.attestationObject);
    response.transports = r.getTransports?.() ?? [];
  } else {
    response.authenticatorData = toB64u(r.authenticatorData);
    response.signature = toB64u(r.signature);
    response.userHandle = r.userHandle ? toB64u(r.userHandle) : null;
  }
  return { id: credential.id, type: credential.type, response };
}

/** Runs `navigator.credentials.get()` with the server's options; null when the user cancels. */
async function getAssertion(options) {
  try {
    const publicKey = { ...options.publicKey, challenge: fromB64u(options.publicKey.challenge), allowCredentials: descriptors(options.publicKey.allowCredentials) };
    return credentialJSON(await navigator.credentials.get({ publicKey }));
  } catch (e) {
    showError(`The passkey was not used (${e.name}).`);
    return null;
  }
}

/** Adds a passkey to the signed-in account (a recent sign-in is needed). */
async function onAddPasskey(event) {
  await withButton(event.currentTarget, async () => {
    showError('');
    const options = await authorized('/auth/webauthn/register/options', { method: 'POST' });
    if (options.error) {
      showError(messageFor(options.error, options.res));
      return;
    }
    const o = options.data.publicKey;
    const publicKey = { ...o, challenge: fromB64u(o.challenge), user: { ...o.user, id: fromB64u(o.user.id) }, excludeCredentials: descriptors(o.excludeCredentials) };
    let credential;
    try {
      credential = credentialJSON(await navigator.credentials.create({ publicKey }));
    } catch (e) {
      showError(`No passkey was made (${e.name}).`);
      return;
    }
    const { res, error } = await authorized('/auth/webauthn/register/verify', { method: 'POST', body: { credential } });
    if (error) {
      showError(messageFor(error, res));
      return;
    }
    showStatus('Passkey added. You can sign in with it, with no password.');
  });
}

/** Passwordless sign-in with a passkey of the email typed in the sign-in form. */
async function onPasskeyLogin(event) {
  await withButton(event.currentTarget, async () => {
    showError('');
    const email = $('login-email').value.trim();
    const options = await api('/auth/webauthn/login/options', { method: 'POST', body: { email } });
    if (options.error) {
      showError(messageFor(options.error, options.res));
      return;
    }
    const credential = await getAssertion(options.data);
    if (!credential) return;
    const { res, data, error } = await api('/auth/webauthn/login/verify', { method: 'POST', body: { email, credential, transport: 'cookie' } });
    if (error) {
      showError(messageFor(error, res));
      return;
    }
    pendingMfa = null;
    $('mfa-form').hidden = true;
    setSession(data.access_token, Date.now() + data.expires_in * 1000, true, data.token_type);
    showStatus('Signed in with a passkey.');
  });
}

/** The second step with a passkey instead of a code. */
async function onMfaPasskey(event) {
  await withButton(event.currentTarget, async () => {
    showError('');
    if (!pendingMfa) return;
    const ticket = await ticketFor($('mfa-form'));
    if (!ticket) return;
    const options = await api('/auth/webauthn/login/options', { method: 'POST', body: { mfa_ticket: ticket } });
    if (options.error) {
      showError(messageFor(options.error, options.res));
      return;
    }
    const credential = await getAssertion(options.data);
    if (!credential) return;
    await finishSecondFactor({ mfa_ticket: ticket, method: 'webauthn', credential, transport: 'cookie' });
  });
}

/** Starts the TOTP enrolment: shows the QR code and the secret, and asks for the first code. */
async function onEnrollTotp(event) {
  await withButton(event.currentTarget, async () => {
    showError('');
    const { res, data, error } = await authorized('/auth/mfa/totp/enroll', { method: 'POST' });
    if (error) {
      showError(messageFor(error, res));
      return;
    }
    $('totp-qr').src = data.qr_svg;
    $('totp-secret').textContent = data.secret;
    $('totp-enroll').hidden = false;
    $('totp-confirm-code').focus();
  });
}

async function onConfirmTotp(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await withButton(form.querySelector('button'), async () => {
    showError('');
    const { res, data, error } = await authorized('/auth/mfa/totp/confirm', { method: 'POST', body: { code: form.code.value.trim() } });
    form.code.value = '';
    if (error) {
      showError(messageFor(error, res));
      return;
    }
    $('totp-enroll').hidden = true;
    $('recovery-codes').textContent = data.recovery_codes.join('\n');
    $('recovery').hidden = false;
    showStatus('Two-step sign-in is on. Keep the recovery codes somewhere safe: they are shown only now.');
  });
}

async function onRegister(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await withButton(form.querySelector('button'), async () => {
    showError('');
    const email = form.email.value.trim();
    const { res, error } = await api('/auth/register', {
      method: 'POST',
      body: { email, password: form.password.value },
    });
    if (error) {
      showError(messageFor(error, res));
      return;
    }
    form.reset();
    $('login-email').value = email;
    $('login-password').focus();
    showStatus('Account created. Sign in with your new password.');
  });
}

async function onWhoami(event) {
  await withButton(event.currentTarget, async () => {
    showError('');
    await askWhoami();
  });
}

/**
 * Signs out with the server. An expired or revoked access token is first refreshed (so the session
 * really ends server-side, not just in this page); only when the session is already over for the
 * server (no token can be had) does the page simply show signed out.
 */
async function onLogout(path, announcement) {
  const { res, error } = await authorized(path, { method: 'POST' });
  if (error && session) {
    showError(messageFor(error, res));
    return;
  }
  channel.postMessage({ type: 'logout' });
  renderSignedOut('');
  showStatus(announcement);
}

channel.onmessage = ({ data }) => {
  if (data?.type === 'hello' && session) {
    channel.postMessage({ type: 'token', accessToken: session.accessToken, exp: session.exp, tokenType: session.tokenType });
  } else if (data?.type === 'token' && typeof data.accessToken === 'string') {
    if (!session || data.exp > session.exp) setSession(data.accessToken, data.exp, false, data.tokenType === 'DPoP' ? 'DPoP' : 'Bearer');
  } else if (data?.type === 'logout' && session) {
    renderSignedOut('');
    showStatus('You were signed out in another tab.');
  }
};

/** On load: take the session from another open tab, or else restore it from the cookie. */
async function start() {
  $('login-form').addEventListener('submit', onLogin);
  $('register-form').addEventListener('submit', onRegister);
  $('whoami-button').addEventListener('click', onWhoami);
  $('mfa-form').addEventListener('submit', onMfaCode);
  $('totp-enroll-button').addEventListener('click', onEnrollTotp);
  $('totp-confirm-form').addEventListener('submit', onConfirmTotp);
  $('passkey-add-button').addEventListener('click', onAddPasskey);
  $('passkey-login-button').addEventListener('click', onPasskeyLogin);
  $('mfa-passkey-button').addEventListener('click', onMfaPasskey);
  $('logout-button').addEventListener('click', (e) =>
    withButton(e.currentTarget, () => onLogout('/auth/logout', 'Signed out.')));
  $('logout-all-button').addEventListener('click', (e) =>
    withButton(e.currentTarget, () => onLogout('/auth/logout-all', 'Signed out on every device.')));
  channel.postMessage({ type: 'hello' });
  await new Promise((resolve) => setTimeout(resolve, 250));
  if (!session) await refresh();
}

start();
