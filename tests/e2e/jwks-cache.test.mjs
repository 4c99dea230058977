// The runtime's shared cache (Cache API) holding trusted issuers' JWK Sets is shared with whatever
// else runs in the zone, so gatehouse must not take an entry there on trust. Miniflare runs the real
// wasm worker in workerd; the test writes forged entries into its shared cache at the issuers' JWKS
// URLs before the worker first needs them, and shows that only an entry bound to the issuer and URL,
// fetched no later than now and younger than JWKS_CACHE_SECONDS, is used.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Miniflare, Response } from 'miniflare';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { devKeys } from '../../scripts/dev-keys.mjs';
import { startFakeIssuer, workerModules, ISSUER, AUDIENCE } from './harness.mjs';

/** The tag gatehouse stores with a set (jwt::remote::shared_binding): SHA-256 over the issuer and the
 *  URL, each after its length as 8 big-endian bytes, in base64url. */
function binding(issuer, url) {
  const hash = createHash('sha256');
  for (const part of [issuer, url]) {
    const bytes = Buffer.from(part, 'utf8');
    const length = Buffer.alloc(8);
    length.writeBigUInt64BE(BigInt(bytes.length));
    hash.update(length).update(bytes);
  }
  return hash.digest('base64url');
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

describe('the shared JWKS cache (Miniflare)', () => {
  let mf, caches, attacker;
  const idps = {};
  const fetchW = (path, init) => mf.dispatchFetch(`http://gatehouse.test${path}`, init);
  const whoami = async (token) => {
    const res = await fetchW('/api/whoami', { headers: { authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    return res.status;
  };
  /** A token claiming `idp` as its issuer, signed by the attacker's key under its kid. */
  const forged = (idp) => new SignJWT({ iss: idp.url, sub: 'mallory', aud: 'third-aud', iat: nowSeconds(), exp: nowSeconds() + 300 })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: attacker.jwk.kid }).sign(attacker.privateKey);
  /** Puts a JWK Set into the shared cache at `url`, with the headers given. */
  const plant = (url, keys, headers) => caches.default.put(url, new Response(JSON.stringify({ keys }), {
    headers: { 'content-type': 'application/json', 'cache-control': 'public, max-age=600', ...headers },
  }));

  before(async () => {
    for (const name of ['untagged', 'otherIssuer', 'future', 'stale', 'genuine']) idps[name] = await startFakeIssuer({ algs: ['ES256'] });
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    attacker = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid: 'attacker-key', alg: 'ES256', use: 'sig' } };
    mf = new Miniflare({
      workers: [{
        name: 'gatehouse',
        ...workerModules(process.env.GATEHOUSE_BUILD),
        compatibilityDate: '2026-04-20',
        bindings: {
          ISSUER, AUDIENCE, SIGNING_KEYS: JSON.stringify(await devKeys()),
          TRUSTED_ISSUERS: JSON.stringify(Object.values(idps).map((idp) => ({
            issuer: idp.url, jwks_url: idp.jwksUrl, audience: 'third-aud', algorithms: ['ES256'],
          }))),
        },
        kvNamespaces: ['DENYLIST'],
        durableObjects: { ACCOUNTS: { className: 'Account', useSQLite: true } },
      }],
    });
    await mf.ready;
    caches = await mf.getCaches();
  });
  after(async () => {
    await mf?.dispose();
    for (const idp of Object.values(idps)) await idp.close();
  });

  test('an entry without gatehouse\'s tag (stored by something else) is ignored: the keys come from the issuer', async () => {
    const idp = idps.untagged;
    await plant(idp.jwksUrl, [attacker.jwk], { 'x-gatehouse-fetched-at': String(nowSeconds()) });
    assert.equal(await whoami(await forged(idp)), 401, 'the planted key must not verify a token');
    assert.equal(idp.fetches, 1, 'fetched from the issuer instead');
    assert.equal(await whoami(await idp.sign({}, { alg: 'ES256' })), 200);
    // What gatehouse stores in its place carries the tag of this issuer and URL.
    const stored = await caches.default.match(idp.jwksUrl);
    assert.equal(stored.headers.get('x-gatehouse-jwks-for'), binding(idp.url, idp.jwksUrl));
    assert.deepEqual((await stored.json()).keys.map((k) => k.kid), idp.keys.map((k) => k.kid));
  });

  test('an entry tagged for another issuer is ignored', async () => {
    const idp = idps.otherIssuer;
    await plant(idp.jwksUrl, [attacker.jwk], {
      'x-gatehouse-fetched-at': String(nowSeconds()),
      'x-gatehouse-jwks-for': binding(idps.genuine.url, idp.jwksUrl),
    });
    assert.equal(await whoami(await forged(idp)), 401);
    assert.equal(idp.fetches, 1);
    assert.equal(await whoami(await idp.sign({}, { alg: 'ES256' })), 200);
  });

  test('an entry whose fetch time lies in the future is ignored', async () => {
    const idp = idps.future;
    await plant(idp.jwksUrl, [attacker.jwk], {
      'x-gatehouse-fetched-at': String(nowSeconds() + 86_400),
      'x-gatehouse-jwks-for': binding(idp.url, idp.jwksUrl),
    });
    assert.equal(await whoami(await forged(idp)), 401, 'a future fetch time must not make an entry usable');
    assert.equal(idp.fetches, 1);
    assert.equal(await whoami(await idp.sign({}, { alg: 'ES256' })), 200);
  });

  test('an entry older than the cache age is ignored', async () => {
    const idp = idps.stale;
    await plant(idp.jwksUrl, [attacker.jwk], {
      'x-gatehouse-fetched-at': String(nowSeconds() - 600),
      'x-gatehouse-jwks-for': binding(idp.url, idp.jwksUrl),
    });
    assert.equal(await whoami(await forged(idp)), 401);
    assert.equal(idp.fetches, 1);
  });

  test('an entry gatehouse itself stored for this issuer and URL is used without a fetch', async () => {
    const idp = idps.genuine;
    await plant(idp.jwksUrl, idp.keys.map((k) => k.jwk), {
      'x-gatehouse-fetched-at': String(nowSeconds() - 10),
      'x-gatehouse-jwks-for': binding(idp.url, idp.jwksUrl),
    });
    assert.equal(await whoami(await idp.sign({}, { alg: 'ES256' })), 200);
    assert.equal(idp.fetches, 0, 'served from the shared cache');
  });
});
