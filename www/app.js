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
// - Mail links land here with their one-time token in the fragment (`#verify=<token>`,
//   `#reset=<token>`), so it never reaches a server log or a Referer. The page takes the token out of
//   the address bar at once (history.replaceState) and keeps it only in memory.

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
  too_many_requests: 'Too many requests from this browser. Please wait {retry} seconds and try again.',
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
  invalid_or_expired_token: 'That link does not work any more: it was used already, or it expired. Please ask for a new one.',
  mail_unavailable: 'This server cannot send mail right now. Please try again later.',
  mail_throttled: 'We sent you a link a moment ago: please use that one, or ask again in {retry} seconds.',
  account_disabled: 'This account is disabled.',
  email_not_verified: 'Please verify your email address first: we sent you a new link.',
  forbidden: 'Your account is not allowed to do that.',
  // The page's own checks, before anything is sent.
  passwords_differ: 'The two passwords are not the same.',
  wrong_current_password: 'That is not your current password.',
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

/** The whoami call the signed-in view started (a mail link's result is shown after its line). */
let whoamiInFlight = null;
/** The token of a password-reset link, while its form is shown. */
let resetToken = null;
/** Counts account-panel loads: an answer of an older one (or of a session since ended) is dropped. */
let accountGeneration = 0;

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
  $('change-username').defaultValue = claims.email ?? '';
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
    whoamiInFlight = askWhoami();
    loadAccount();
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
  accountGeneration += 1;
  $('sessions-list').replaceChildren();
  $('sessions-note').hidden = true;
  $('verify-email').hidden = true;
  $('who-verified').textContent = '';
  $('change-username').defaultValue = '';
  $('change-password-form').reset();
  $('delete-account-form').reset();
  $('forgot-form').hidden = true;
  $('login-form').hidden = false;
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

// ---- account lifecycle: email verification, password reset and change, sessions, your data ----

/** Whether a new password has a length the server takes (8 to 256 characters). */
function acceptableLength(password) {
  const length = [...password].length;
  return length >= 8 && length <= 256;
}

/** A new element with a class and text (never HTML: user agents and countries come from requests). */
function element(tag, className, text = '') {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.textContent = text;
  return node;
}

/** A unix time (seconds) as local date and time. */
const localTime = (seconds) => new Date(seconds * 1000).toLocaleString();

/**
 * The action and token of a mail link in the address (`#verify=<token>`, `#reset=<token>`), or
 * null. The fragment is removed from the address bar and from this history entry at once.
 */
function takeLink() {
  const match = /^#(verify|reset)=(.+)$/.exec(location.hash);
  if (!match) return null;
  history.replaceState(history.state, '', location.pathname + location.search);
  let token = match[2];
  try {
    token = decodeURIComponent(token);
  } catch {
    // Not percent-encoded after all: the token as it came.
  }
  return { action: match[1], token };
}

async function followLink(link) {
  if (link.action === 'verify') await verifyEmail(link.token);
  else showResetForm(link.token);
}

/** A mail link opened while the page is open (the fragment changed, no reload). */
async function onHashChange() {
  const link = takeLink();
  if (link) await followLink(link);
}

/** The token of a verification link waiting for the account's password (signed out). */
let verifyToken = null;

/**
 * Redeems a verification link's token. The link alone is not enough: a signed-in page sends it with
 * its access token (the server checks the session is the link's account); a signed-out page asks
 * for the account's password first.
 */
async function verifyEmail(token) {
  showError('');
  if (!session) {
    verifyToken = token;
    $('verify-form').hidden = false;
    showStatus('Enter your password to confirm your email address.');
    $('verify-password').focus();
    return;
  }
  showStatus('Verifying your email address…');
  const { res, error } = await authorized('/auth/email/verify', { method: 'POST', body: { token } });
  await verified(res, error);
}

/** Sends the waiting verification link with the password typed in. */
async function onVerifyWithPassword(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await withButton(form.querySelector('button'), async () => {
    showError('');
    const { res, error } = await api('/auth/email/verify', {
      method: 'POST',
      body: { token: verifyToken, password: form.password.value },
    });
    // A wrong password leaves the link usable: the form stays for another try.
    if (error === 'invalid_credentials') {
      showError('That is not the password of this account.');
      form.password.select();
      return;
    }
    hideVerifyForm();
    await verified(res, error);
  });
}

function hideVerifyForm() {
  verifyToken = null;
  $('verify-form').reset();
  $('verify-form').hidden = true;
}

/** Shows how a verification ended. */
async function verified(res, error) {
  if (error) {
    showStatus('');
    showError(messageFor(error, res));
    return;
  }
  showStatus('Email verified. Thank you!');
  await accountChanged();
}

/**
 * After the account changed (its email verified): a signed-in page takes a new access token (the
 * token, and /auth/me which reads it, say what the account was when it was issued), and every tab
 * shows the account anew.
 */
async function accountChanged() {
  if (session) await refresh();
  channel.postMessage({ type: 'account' });
  if (session) await loadAccount();
}

/** Asks for a (new) verification mail for the signed-in account. */
async function onRequestVerification(event) {
  await withButton(event.currentTarget, async () => {
    showError('');
    const { res, data, error } = await authorized('/auth/email/verify/request', { method: 'POST' });
    if (error) {
      // At most one mail a minute goes out per kind (the registration's counts): a 429 says so.
      showError(messageFor(res?.status === 429 ? 'mail_throttled' : error, res));
      return;
    }
    if (data?.status === 'already_verified') {
      showStatus('Your email address is verified already.');
      await accountChanged();
      return;
    }
    showStatus(`We sent a link to ${$('who-email').textContent || 'your email address'}. Open it to verify your address.`);
  });
}

function showForgotForm(show) {
  $('forgot-form').hidden = !show;
  $('login-form').hidden = show;
  if (show) {
    $('forgot-email').value = $('login-email').value.trim();
    $('forgot-email').focus();
  } else {
    $('login-email').focus();
  }
}

/** Asks for a password-reset mail. The answer is the same whether the address has an account or not. */
async function onForgot(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await withButton(form.querySelector('button'), async () => {
    showError('');
    const email = form.email.value.trim();
    const { res, error } = await api('/auth/password/forgot', { method: 'POST', body: { email } });
    if (error) {
      showError(messageFor(error, res));
      form.email.focus();
      return;
    }
    showForgotForm(false);
    $('login-email').value = email;
    showStatus('If an account exists for that address, we sent a link.');
  });
}

function showResetForm(token) {
  resetToken = token;
  // The request for the link is done: under the form, the sign-in form waits for the new password.
  $('forgot-form').hidden = true;
  $('login-form').hidden = false;
  const form = $('reset-form');
  form.reset();
  form.hidden = false;
  showError('');
  showStatus('Choose a new password for your account.');
  $('reset-password').focus();
}

function hideResetForm() {
  resetToken = null;
  $('reset-form').reset();
  $('reset-form').hidden = true;
}

/** Sets the new password with the reset link's token; the server ends every session of the account. */
async function onReset(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await withButton(form.querySelector('button'), async () => {
    showError('');
    const password = form.password.value;
    if (password !== form.password2.value) {
      showError(MESSAGES.passwords_differ);
      form.password2.focus();
      return;
    }
    if (!acceptableLength(password)) {
      showError(MESSAGES.weak_password);
      form.password.focus();
      return;
    }
    const { res, error } = await api('/auth/password/reset', { method: 'POST', body: { token: resetToken, password } });
    if (error) {
      showError(messageFor(error, res));
      // A dead link stays dead: the form goes (a weak password may be tried again).
      if (error === 'invalid_or_expired_token') hideResetForm();
      return;
    }
    hideResetForm();
    if (session) {
      // Every session of the account was ended, this browser's too.
      channel.postMessage({ type: 'logout' });
      renderSignedOut('');
    }
    showStatus('Password changed; sign in with the new password.');
    $('login-email').focus();
  });
}

/** Changes the password of the signed-in account; the server ends every other session. */
async function onChangePassword(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await withButton(form.querySelector('button'), async () => {
    showError('');
    const next = form.new_password.value;
    if (!acceptableLength(next)) {
      showError(MESSAGES.weak_password);
      form.new_password.focus();
      return;
    }
    const { res, error } = await authorized('/auth/password/change', {
      method: 'POST',
      body: { current_password: form.current_password.value, new_password: next },
    });
    form.current_password.value = '';
    if (error) {
      showError(error === 'invalid_credentials' ? MESSAGES.wrong_current_password : messageFor(error, res));
      (error === 'weak_password' ? form.new_password : form.current_password).focus();
      return;
    }
    form.reset();
    showStatus('Password changed. Every other device was signed out; this one stays signed in.');
    await loadSessions();
  });
}

/** Loads the account panel: whether the email is verified, and the sessions. */
async function loadAccount() {
  const generation = ++accountGeneration;
  const [me] = await Promise.all([authorized('/auth/me'), loadSessions(generation)]);
  if (generation !== accountGeneration || !session) return;
  const verified = me.error ? undefined : me.data?.email_verified;
  $('who-verified').textContent = verified === true ? 'yes' : verified === false ? 'not yet' : '';
  $('verify-email').hidden = verified !== false;
}

/** Loads and shows the sessions list. Its problems are told in the list's card, not the page's alert. */
async function loadSessions(generation = accountGeneration) {
  const { res, data, error } = await authorized('/auth/sessions');
  if (generation !== accountGeneration || !session) return;
  const list = $('sessions-list');
  const note = $('sessions-note');
  list.replaceChildren();
  if (error || !Array.isArray(data?.sessions)) {
    note.textContent = `The sessions could not be loaded. ${messageFor(error ?? 'server_error', res)}`;
    note.hidden = false;
    return;
  }
  note.hidden = true;
  for (const s of data.sessions) {
    const row = element('li', 'session');
    row.dataset.sid = s.sid;
    row.append(element('span', 'session-device', s.user_agent || 'Unknown device'));
    const details = element('span', 'session-details');
    if (s.country) details.append(element('span', 'session-country', s.country), ' · ');
    details.append('Signed in ', element('span', 'session-created', localTime(s.created_at)));
    details.append(' · last used ', element('span', 'session-last-used', localTime(s.last_used_at)));
    row.append(details);
    if (s.current) {
      row.classList.add('current');
      row.append(element('span', 'session-current', 'This device'));
    } else {
      const button = element('button', 'session-revoke secondary', 'Sign out');
      button.type = 'button';
      button.dataset.sid = s.sid;
      button.setAttribute('aria-label', `Sign out ${s.user_agent || 'the unknown device'}`);
      row.append(button);
    }
    list.append(row);
  }
}

/** Signs out another session (a click on one of the list's "Sign out" buttons). */
async function onSessionsClick(event) {
  const button = event.target.closest('button.session-revoke');
  if (!button) return;
  await withButton(button, async () => {
    showError('');
    const { res, error } = await authorized(`/auth/sessions/${encodeURIComponent(button.dataset.sid)}`, { method: 'DELETE' });
    // not_found: it ended meanwhile, which is what was asked.
    if (error && error !== 'not_found') {
      showError(messageFor(error, res));
      return;
    }
    showStatus('That device was signed out.');
    await loadSessions();
  });
}

/** Downloads the account's export as a JSON file (made here from the answer, through a Blob link). */
async function onExport(event) {
  await withButton(event.currentTarget, async () => {
    showError('');
    const { res, data, error } = await authorized('/auth/me/export');
    if (error) {
      showError(messageFor(error, res));
      return;
    }
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' });
    const url = URL.createObjectURL(blob);
    const link = document.createElement('a');
    link.href = url;
    link.download = `gatehouse-export-${new Date().toISOString().slice(0, 10)}.json`;
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    showStatus('Your data was downloaded as a JSON file.');
  });
}

/** Deletes the account, with its password and a confirmation; then this page (and every tab) signs out. */
async function onDeleteAccount(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await withButton(form.querySelector('button'), async () => {
    showError('');
    const password = form.password.value;
    if (!password) {
      showError('Enter your password to delete the account.');
      form.password.focus();
      return;
    }
    if (!window.confirm('Delete your account and everything stored about it? This cannot be undone.')) return;
    const { res, error } = await authorized('/auth/me', { method: 'DELETE', body: { password } });
    form.password.value = '';
    if (error) {
      showError(error === 'invalid_credentials' ? MESSAGES.wrong_current_password : messageFor(error, res));
      form.password.focus();
      return;
    }
    channel.postMessage({ type: 'logout' });
    renderSignedOut('');
    showStatus('Your account was deleted, with everything stored about it.');
  });
}

channel.onmessage = ({ data }) => {
  if (data?.type === 'hello' && session) {
    channel.postMessage({ type: 'token', accessToken: session.accessToken, exp: session.exp, tokenType: session.tokenType });
  } else if (data?.type === 'token' && typeof data.accessToken === 'string') {
    if (!session || data.exp > session.exp) setSession(data.accessToken, data.exp, false, data.tokenType === 'DPoP' ? 'DPoP' : 'Bearer');
  } else if (data?.type === 'logout' && session) {
    renderSignedOut('');
    showStatus('You were signed out in another tab.');
  } else if (data?.type === 'account' && session) {
    // Another tab verified the email address (or otherwise changed the account).
    loadAccount();
  }
};

/**
 * On load: take the session from another open tab, or else restore it from the cookie; then follow a
 * mail link the page was opened with (its token is out of the address bar before anything else).
 */
async function start() {
  const link = takeLink();
  window.addEventListener('hashchange', onHashChange);
  $('login-form').addEventListener('submit', onLogin);
  $('register-form').addEventListener('submit', onRegister);
  $('whoami-button').addEventListener('click', onWhoami);
  $('mfa-form').addEventListener('submit', onMfaCode);
  $('totp-enroll-button').addEventListener('click', onEnrollTotp);
  $('totp-confirm-form').addEventListener('submit', onConfirmTotp);
  $('passkey-add-button').addEventListener('click', onAddPasskey);
  $('passkey-login-button').addEventListener('click', onPasskeyLogin);
  $('mfa-passkey-button').addEventListener('click', onMfaPasskey);
  $('forgot-link').addEventListener('click', () => showForgotForm(true));
  $('forgot-cancel-button').addEventListener('click', () => showForgotForm(false));
  $('forgot-form').addEventListener('submit', onForgot);
  $('reset-form').addEventListener('submit', onReset);
  $('verify-form').addEventListener('submit', onVerifyWithPassword);
  $('verify-cancel-button').addEventListener('click', () => {
    hideVerifyForm();
    showStatus('');
  });
  $('reset-cancel-button').addEventListener('click', () => {
    hideResetForm();
    showStatus('');
  });
  $('verify-email-button').addEventListener('click', onRequestVerification);
  $('change-password-form').addEventListener('submit', onChangePassword);
  $('sessions-list').addEventListener('click', onSessionsClick);
  $('sessions-refresh-button').addEventListener('click', (e) => withButton(e.currentTarget, () => loadSessions()));
  $('export-button').addEventListener('click', onExport);
  $('delete-account-form').addEventListener('submit', onDeleteAccount);
  $('logout-button').addEventListener('click', (e) =>
    withButton(e.currentTarget, () => onLogout('/auth/logout', 'Signed out.')));
  $('logout-all-button').addEventListener('click', (e) =>
    withButton(e.currentTarget, () => onLogout('/auth/logout-all', 'Signed out on every device.')));
  channel.postMessage({ type: 'hello' });
  await new Promise((resolve) => setTimeout(resolve, 250));
  if (!session) await refresh();
  if (link) {
    // The signed-in view's first status line comes first, the link's result after it.
    await whoamiInFlight;
    await followLink(link);
  }
}

start();
