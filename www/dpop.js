// gatehouse DPoP client (RFC 9449): proofs of possession for browsers and Node, as a plain ES module.
//
// - One key pair per origin, made with WebCrypto as NON-EXTRACTABLE (ECDSA P-256 by default, or
//   Ed25519 on request where the browser has it): scripts can sign with it but never read it, so
//   an XSS can use the key while the page is open but cannot carry it away.
// - The CryptoKeyPair is kept in IndexedDB (structured clone keeps it non-extractable), so it
//   survives reloads and every tab of the origin uses the same key. Two tabs that start at once
//   agree on one key: the first one stored wins (IndexedDB `add`) and the other adopts it.
//   Without IndexedDB (Node) the key lives in memory.
// - Each request gets a fresh proof (§4.2): `typ: dpop+jwt`, the public `jwk`, a random `jti`,
//   `htm`, `htu` (the URL without query and fragment), `iat`, `ath` when an access token goes with
//   it (§7.1), and the origin's latest server nonce (§8, §9) when it has given one.
// - `dpopFetch` remembers every `DPoP-Nonce` answer per origin and retries ONCE when the server
//   asks for a nonce: 400 `{"error": "use_dpop_nonce"}` (token endpoint, §8) or 401 with
//   `WWW-Authenticate: DPoP error="use_dpop_nonce"` (resource, §9). It also corrects for a client
//   clock that is off: when the server's `Date` shows our clock more than 30 s away, proofs use the
//   server's time, and a refused proof is retried once with it.
//
// Cross-origin use needs the server to allow the `DPoP` request header and to expose `DPoP-Nonce`,
// `WWW-Authenticate` and `Date` (CORS).

const DB_NAME = 'gatehouse-dpop';
const DB_STORE = 'keys';
const KEY_ID = 'default';
/** A clock further off than this, per the server's `Date`, is corrected for (ms). */
const MAX_CLOCK_SKEW_MS = 30_000;

const encoder = new TextEncoder();

/** base64url without padding (RFC 7515 §2). */
export function b64u(bytes) {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let binary = '';
  for (const b of view) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

const b64uJson = (value) => b64u(encoder.encode(JSON.stringify(value)));

/** The `htu` of a URL (RFC 9449 §4.2): scheme, host, port and path, no query, no fragment. */
export function htuOf(url) {
  const u = new URL(url, globalThis.location?.href);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** The `ath` of an access token (RFC 9449 §4.2): base64url(SHA-256(ASCII(token))). */
export async function accessTokenHash(accessToken) {
  return b64u(await crypto.subtle.digest('SHA-256', encoder.encode(accessToken)));
}

/** The method as fetch sends it: the six standard methods upper-cased, others as given (Fetch §2.2.1). */
export function normalizeMethod(method) {
  const upper = method.toUpperCase();
  return ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT'].includes(upper) ? upper : method;
}

/** The required members of a public JWK, and nothing else (RFC 7638 §3.2). */
function requiredMembers(jwk) {
  if (jwk.kty === 'EC') return { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  if (jwk.kty === 'OKP') return { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  throw new Error(`unsupported DPoP key type ${jwk.kty}`);
}

/** The RFC 7638 SHA-256 thumbprint of a public JWK: what the server puts in `cnf.jkt`. */
export async function jwkThumbprint(jwk) {
  // Members in lexicographic order, no whitespace: `requiredMembers` builds them in that order.
  const canonical = JSON.stringify(requiredMembers(jwk));
  return b64u(await crypto.subtle.digest('SHA-256', encoder.encode(canonical)));
}

const ALGORITHMS = {
  ES256: { generate: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  EdDSA: { generate: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
};

/** Makes a non-extractable key pair and its public JWK; Ed25519 falls back to ES256 where unsupported. */
async function generateRecord(alg) {
  let chosen = ALGORITHMS[alg] ? alg : 'ES256';
  let keyPair;
  try {
    keyPair = await crypto.subtle.generateKey(ALGORITHMS[chosen].generate, false, ['sign', 'verify']);
  } catch (e) {
    if (chosen === 'ES256') throw e;
    chosen = 'ES256';
    keyPair = await crypto.subtle.generateKey(ALGORITHMS.ES256.generate, false, ['sign', 'verify']);
  }
  // A generated public key is always exportable; the private key is not.
  const jwk = requiredMembers(await crypto.subtle.exportKey('jwk', keyPair.publicKey));
  return { keyPair, alg: chosen, jwk, jkt: await jwkThumbprint(jwk), created: Date.now() };
}

function idbRequest(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Key storage in IndexedDB, shared by the tabs of the origin. */
export function indexedDbStorage(factory = globalThis.indexedDB) {
  let db;
  const open = () => {
    db ??= new Promise((resolve, reject) => {
      const request = factory.open(DB_NAME, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(DB_STORE);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    return db;
  };
  const store = async (mode) => (await open()).transaction(DB_STORE, mode).objectStore(DB_STORE);
  return {
    async load() {
      return idbRequest((await store('readonly')).get(KEY_ID));
    },
    /** Stores the record unless another tab stored one first; returns the one that is stored. */
    async add(record) {
      try {
        await idbRequest((await store('readwrite')).add(record, KEY_ID));
        return record;
      } catch (e) {
        if (e?.name !== 'ConstraintError') throw e;
        return idbRequest((await store('readonly')).get(KEY_ID));
      }
    },
    async clear() {
      await idbRequest((await store('readwrite')).delete(KEY_ID));
    },
  };
}

/** Key storage in this process's memory (Node, or browsers without IndexedDB). */
export function memoryStorage() {
  let stored;
  return {
    async load() {
      return stored;
    },
    async add(record) {
      stored ??= record;
      return stored;
    },
    async clear() {
      stored = undefined;
    },
  };
}

/** Whether a response asks for a (new) nonce: RFC 9449 §8 (400 body) or §9 (401 challenge). */
async function asksForNonce(res) {
  if (res.status === 401) {
    const challenge = res.headers.get('www-authenticate') ?? '';
    return /(^|[\s,])DPoP(\s|$)/i.test(challenge) && /error\s*=\s*"?use_dpop_nonce"?/.test(challenge);
  }
  if (res.status === 400) {
    try {
      return (await res.clone().json())?.error === 'use_dpop_nonce';
    } catch {
      return false;
    }
  }
  return false;
}

/** Whether a response refuses the proof itself (`invalid_dpop_proof`), in a header or a 400 body. */
async function refusesProof(res) {
  if (res.status !== 400 && res.status !== 401) return false;
  if (/invalid_dpop_proof/.test(res.headers.get('www-authenticate') ?? '')) return true;
  try {
    return (await res.clone().json())?.error === 'invalid_dpop_proof';
  } catch {
    return false;
  }
}

/**
 * A DPoP client. Options: `storage` (default IndexedDB where present, else memory), `alg`
 * ('ES256' default, or 'EdDSA'), `fetch` (default the global one), `now` (ms clock, for tests).
 */
export function createDpopClient(options = {}) {
  const storage = options.storage ?? (globalThis.indexedDB ? indexedDbStorage() : memoryStorage());
  const alg = options.alg ?? 'ES256';
  const fetchImpl = options.fetch ?? ((...args) => globalThis.fetch(...args));
  const now = options.now ?? (() => Date.now());
  const nonces = new Map();
  let skewMs = 0;
  let record;

  /** The origin's key record, loaded or made once per client (and per origin, across tabs). */
  function key() {
    record ??= (async () => (await storage.load()) ?? storage.add(await generateRecord(alg)))().catch((e) => {
      record = undefined;
      throw e;
    });
    return record;
  }

  /** A DPoP proof JWT for one request (RFC 9449 §4.2). */
  async function proofFor(method, url, accessToken, nonce = nonces.get(new URL(url, globalThis.location?.href).origin)) {
    const { keyPair, alg: keyAlg, jwk } = await key();
    const header = { typ: 'dpop+jwt', alg: keyAlg, jwk };
    const claims = {
      jti: b64u(crypto.getRandomValues(new Uint8Array(16))),
      htm: normalizeMethod(method),
      htu: htuOf(url),
      iat: Math.floor((now() + skewMs) / 1000),
    };
    if (accessToken) claims.ath = await accessTokenHash(accessToken);
    if (nonce) claims.nonce = nonce;
    const input = `${b64uJson(header)}.${b64uJson(claims)}`;
    const signature = await crypto.subtle.sign(ALGORITHMS[keyAlg].sign, keyPair.privateKey, encoder.encode(input));
    return `${input}.${b64u(signature)}`;
  }

  /** Notes the nonce and the server's clock from any answer; returns whether our clock was off. */
  function learn(res, url) {
    const nonce = res.headers.get('dpop-nonce');
    if (nonce) nonces.set(new URL(url).origin, nonce);
    const date = Date.parse(res.headers.get('date') ?? '');
    if (Number.isNaN(date)) return false;
    const measured = date - now();
    const wasOff = Math.abs(measured - skewMs) > MAX_CLOCK_SKEW_MS;
    skewMs = Math.abs(measured) > MAX_CLOCK_SKEW_MS ? measured : 0;
    return wasOff;
  }

  /**
   * `fetch` with a DPoP proof, and `Authorization: DPoP <token>` when `accessToken` is given;
   * retried once when the server asks for a nonce or our clock was found off.
   */
  async function dpopFetch(input, init = {}, { accessToken } = {}) {
    const first = new Request(input, init);
    const spare = first.clone();
    const send = async (request) => {
      const nonce = nonces.get(new URL(request.url).origin);
      request.headers.set('dpop', await proofFor(request.method, request.url, accessToken, nonce));
      if (accessToken) request.headers.set('authorization', `DPoP ${accessToken}`);
      const res = await fetchImpl(request);
      const clockWasOff = learn(res, request.url);
      const newNonce = nonces.get(new URL(request.url).origin);
      const retry = ((await asksForNonce(res)) && newNonce && newNonce !== nonce) || (clockWasOff && (await refusesProof(res)));
      return { res, retry };
    };
    const { res, retry } = await send(first);
    return retry ? (await send(spare)).res : res;
  }

  return {
    proofFor,
    fetch: dpopFetch,
    /** The key's RFC 7638 thumbprint (the `cnf.jkt` tokens bound to it carry). */
    async thumbprint() {
      return (await key()).jkt;
    },
    /** The key's algorithm and public JWK. */
    async publicKey() {
      const { alg: keyAlg, jwk, keyPair } = await key();
      return { alg: keyAlg, jwk, cryptoKey: keyPair.publicKey };
    },
    /** The CryptoKeyPair itself (non-extractable private key), for libraries that take one. */
    async keyPair() {
      return (await key()).keyPair;
    },
    /** The latest nonce an origin gave, if any. */
    nonceFor(origin) {
      return nonces.get(origin);
    },
    /** Forgets the key (e.g. on sign-out everywhere): the next proof makes a new one. */
    async resetKey() {
      record = undefined;
      nonces.clear();
      await storage.clear();
    },
  };
}

let shared;
const client = () => (shared ??= createDpopClient());

/** A DPoP proof for a request, with the page's shared client. */
export const proofFor = (method, url, accessToken) => client().proofFor(method, url, accessToken);

/** `fetch` with DPoP (see `createDpopClient`), with the page's shared client. */
export const dpopFetch = (input, init, options) => client().fetch(input, init, options);

/** The page's key thumbprint. */
export const thumbprint = () => client().thumbprint();
