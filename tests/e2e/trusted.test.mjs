// Trusted third-party issuers end to end, against wrangler dev and a fake issuer on loopback that
// serves its JWK Set and counts the fetches: their tokens under the same strict rules, the token
// source pinned per issuer, single-flight fetches, failing and hanging JWKS endpoints, rotation.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { KeyObject, sign as cryptoSign } from 'node:crypto';
import { generateKeyPair, SignJWT } from 'jose';
import { startWorker, startFakeIssuer, signToken, challenge } from './harness.mjs';

/** Signs raw header and claims with a fake issuer's RS256 key, bypassing jose's own header checks. */
function rawSign(key, header, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64({ alg: 'RS256', typ: 'at+jwt', kid: key.kid, ...header })}.${b64(claims)}`;
  return `${input}.${cryptoSign('sha256', Buffer.from(input), KeyObject.from(key.privateKey)).toString('base64url')}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const bearer = (t) => ({ authorization: `Bearer ${t}` });

async function status(worker, headers) {
  const res = await worker.fetch('/api/whoami', { headers });
  const body = await res.json();
  return { status: res.status, body, res };
}

describe('trusted issuers', () => {
  let worker, idp, access;
  before(async () => {
    idp = await startFakeIssuer({ algs: ['RS256', 'ES256'] });
    access = await startFakeIssuer({ algs: ['RS256'] });
    worker = await startWorker({
      vars: {
        TRUSTED_ISSUERS: JSON.stringify([
          { issuer: idp.url, jwks_url: idp.jwksUrl, audience: 'third-aud', algorithms: ['RS256', 'ES256'] },
          {
            issuer: access.url, jwks_url: access.jwksUrl, audience: 'access-aud', algorithms: ['RS256'],
            token_from: 'header:Cf-Access-Jwt-Assertion', require_typ: false,
          },
        ]),
        JWKS_COOLDOWN_SECONDS: '2',
        JWKS_CACHE_SECONDS: '10',
        JWKS_TIMEOUT_MS: '700',
      },
    });
  });
  after(async () => {
    await worker?.cleanup();
    await idp?.close();
    await access?.close();
  });

  test('100 concurrent first requests cause exactly one JWKS fetch; RS256 and ES256 tokens pass', async () => {
    const token = await idp.sign({}, { alg: 'RS256' });
    const results = await Promise.all(Array.from({ length: 100 }, () => status(worker, bearer(token))));
    assert.deepEqual([...new Set(results.map((r) => r.status))], [200]);
    assert.equal(idp.fetches, 1, 'one fetch for all of them');
    assert.equal(results[0].body.iss, idp.url);
    assert.equal(results[0].body.sub, 'third-party-user');
    const es = await idp.sign({}, { alg: 'ES256' });
    assert.equal((await status(worker, bearer(es))).status, 200);
    assert.equal(idp.fetches, 1);
    // gatehouse's own tokens still pass beside them.
    assert.equal((await status(worker, bearer(await signToken(worker.keys)))).status, 200);
  });

  test('a new isolate takes the set from the shared cache, without a fetch', async () => {
    const before = idp.fetches;
    await worker.restart();
    assert.equal((await status(worker, bearer(await idp.sign({}, { alg: 'RS256' })))).status, 200);
    assert.equal(idp.fetches, before, 'served from the Cache API copy');
  });

  test('their tokens pass the same strict rules', async () => {
    const refused = async (token, why) => {
      const r = await status(worker, bearer(token));
      assert.equal(r.status, 401, why);
      assert.equal(r.body.error, 'invalid_token', why);
      assert.equal(challenge(r.res).params.error, 'invalid_token', why);
    };
    await refused(await idp.sign({ aud: 'someone-else' }), 'wrong audience');
    await refused(await idp.sign({ exp: Math.floor(Date.now() / 1000) - 120 }), 'expired');
    await refused(await idp.sign({}, { typ: null }), 'this issuer must type its tokens');
    await refused(await idp.sign({}, { typ: 'JWT' }), 'JWT is not at+jwt');
    await refused(rawSign(idp.keys.find((k) => k.alg === 'RS256'), { crit: ['exp'] }, { iss: idp.url, aud: 'third-aud', sub: 'x', exp: Math.floor(Date.now() / 1000) + 60 }), 'crit');
    // An RS256 header on the ES256 kid: the key decides.
    const es = idp.keys.find((k) => k.alg === 'ES256');
    const rs = idp.keys.find((k) => k.alg === 'RS256');
    await refused(await idp.sign({}, { key: { ...rs, kid: es.kid } }), 'alg does not fit the kid');
    // HS256 keyed with the public key's bytes.
    const hs = await new SignJWT({ iss: idp.url, sub: 'x', aud: 'third-aud', exp: Math.floor(Date.now() / 1000) + 60 })
      .setProtectedHeader({ alg: 'HS256', kid: rs.kid, typ: 'at+jwt' })
      .sign(new TextEncoder().encode(JSON.stringify(rs.jwk)));
    await refused(hs, 'HS256 with the public key');
    // A token claiming the issuer but signed by a key it never published, under its kid.
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await new SignJWT({ iss: idp.url, sub: 'x', aud: 'third-aud', exp: Math.floor(Date.now() / 1000) + 60 })
      .setProtectedHeader({ alg: 'RS256', kid: rs.kid, typ: 'at+jwt' }).sign(privateKey);
    await refused(forged, 'forged signature');
    // ES256 at the edge (WebCrypto): a flipped bit, and the DER form of a valid signature.
    const esToken = await idp.sign({}, { alg: 'ES256' });
    const [eh, ep, esig] = esToken.split('.');
    const raw = Buffer.from(esig, 'base64url');
    const flipped = Buffer.from(raw);
    flipped[5] ^= 1;
    await refused(`${eh}.${ep}.${flipped.toString('base64url')}`, 'ES256 bit flip');
    const int = (x) => { let v = [...x]; while (v.length > 1 && v[0] === 0 && v[1] < 0x80) v.shift(); if (v[0] >= 0x80) v.unshift(0); return [0x02, v.length, ...v]; };
    const body = [...int(raw.subarray(0, 32)), ...int(raw.subarray(32))];
    await refused(`${eh}.${ep}.${Buffer.from([0x30, body.length, ...body]).toString('base64url')}`, 'ES256 DER signature');
    // An issuer nobody configured.
    const stranger = await new SignJWT({ iss: 'https://stranger.example', sub: 'x', aud: 'third-aud', exp: Math.floor(Date.now() / 1000) + 60 })
      .setProtectedHeader({ alg: 'RS256', kid: rs.kid, typ: 'at+jwt' }).sign(rs.privateKey);
    await refused(stranger, 'unknown issuer');
  });

  test('each issuer is accepted only from its own token source', async () => {
    const assertion = (t) => ({ 'cf-access-jwt-assertion': t });
    const accessToken = await access.sign({ aud: 'access-aud' }, { typ: null });
    const ok = await status(worker, assertion(accessToken));
    assert.equal(ok.status, 200, 'untyped Access token in its header');
    assert.equal(ok.body.iss, access.url);
    assert.equal((await status(worker, assertion(await access.sign({ aud: 'access-aud' }, { typ: 'JWT' })))).status, 200);
    assert.equal((await status(worker, assertion(await access.sign({ aud: 'access-aud' }, { typ: 'logout+jwt' })))).status, 401);
    // The same token in Authorization is refused: that issuer's tokens come in its header only.
    assert.equal((await status(worker, bearer(accessToken))).status, 401);
    // gatehouse's own tokens and the other issuer's are refused in the Access header.
    assert.equal((await status(worker, assertion(await signToken(worker.keys)))).status, 401);
    assert.equal((await status(worker, assertion(await idp.sign({})))).status, 401);
    // Junk in the header.
    assert.equal((await status(worker, assertion('not a token'))).status, 401);
    // Third-party tokens are refused on the issuer's own routes (they name no gatehouse account).
    const me = await worker.fetch('/auth/me', { headers: bearer(await idp.sign({})) });
    assert.equal(me.status, 401);
    const logout = await worker.fetch('/auth/logout', { method: 'POST', headers: bearer(await idp.sign({})) });
    assert.equal(logout.status, 401);
  });

  test('an unknown kid: 100 concurrent requests cause one fetch, then none until the cooldown ends', async () => {
    await sleep(2100); // past the cooldown of earlier fetches
    const before = idp.fetches;
    const unpublished = await idp.addKey('ES256');
    idp.keys = idp.keys.filter((k) => k !== unpublished); // signs, but is not published yet
    const token = await idp.sign({}, { key: unpublished });
    const results = await Promise.all(Array.from({ length: 100 }, () => status(worker, bearer(token))));
    assert.deepEqual([...new Set(results.map((r) => r.status))], [401]);
    assert.equal(idp.fetches, before + 1, 'exactly one fetch for 100 unknown-kid requests');
    // Published now, but within the cooldown: still refused, and still no fetch.
    idp.keys.push(unpublished);
    assert.equal((await status(worker, bearer(token))).status, 401);
    assert.equal(idp.fetches, before + 1);
    // After the cooldown the new key is picked up with one more fetch.
    await sleep(2100);
    assert.equal((await status(worker, bearer(token))).status, 200);
    assert.equal(idp.fetches, before + 2);
  });

  test('the same kid with new key material is followed as a rotation', async () => {
    await sleep(2100);
    const old = idp.keys.find((k) => k.alg === 'RS256');
    const oldToken = await idp.sign({}, { key: old });
    assert.equal((await status(worker, bearer(oldToken))).status, 200);
    const rotated = await idp.addKey('RS256', old.kid); // replaces the material under the same kid
    const newToken = await idp.sign({}, { key: rotated });
    const before = idp.fetches;
    assert.equal((await status(worker, bearer(newToken))).status, 200, 'the new material is fetched and used');
    assert.equal(idp.fetches, before + 1);
    // The old material is gone from the issuer's set, so tokens signed with it stop at once
    // (the verified-token cache is dropped when key material changes).
    assert.equal((await status(worker, bearer(oldToken))).status, 401);
  });

  test('a failing or hanging JWKS endpoint never poisons the cache: the old keys keep working', async () => {
    const token = await idp.sign({ jti: 'fresh-1' }, { alg: 'ES256' });
    assert.equal((await status(worker, bearer(token))).status, 200);
    await sleep(10_500); // past JWKS_CACHE_SECONDS: the next request refreshes
    idp.mode = 'error';
    let before = idp.fetches;
    assert.equal((await status(worker, bearer(await idp.sign({ jti: 'fresh-2' }, { alg: 'ES256' })))).status, 200);
    assert.equal(idp.fetches, before + 1, 'the refresh was tried');
    await sleep(2100);
    idp.mode = 'hang';
    before = idp.fetches;
    const started = Date.now();
    const during = await Promise.all(Array.from({ length: 20 }, async (_, i) => status(worker, bearer(await idp.sign({ jti: `h${i}` }, { alg: 'ES256' })))));
    assert.deepEqual([...new Set(during.map((r) => r.status))], [200]);
    assert.ok(Date.now() - started < 5000, 'the hanging fetch was abandoned at its timeout');
    assert.equal(idp.fetches, before + 1, 'one attempt, shared');
    // An unknown kid while the endpoint hangs: a clean 401, never a 500.
    await sleep(2100);
    const unpublished = await idp.addKey('RS256');
    idp.keys = idp.keys.filter((k) => k !== unpublished);
    const r = await status(worker, bearer(await idp.sign({}, { key: unpublished })));
    assert.equal(r.status, 401);
    idp.mode = 'ok';
  });
});

describe('trusted issuers: an issuer whose JWKS is down from the start', () => {
  let worker, idp;
  before(async () => {
    idp = await startFakeIssuer({ algs: ['RS256'] });
    idp.mode = 'error';
    worker = await startWorker({
      vars: {
        TRUSTED_ISSUERS: JSON.stringify([{ issuer: idp.url, jwks_url: idp.jwksUrl, audience: 'third-aud' }]),
        JWKS_COOLDOWN_SECONDS: '2',
      },
    });
  });
  after(async () => { await worker?.cleanup(); await idp?.close(); });

  test('no keys yet: 503 with Retry-After, one fetch per cooldown, then it recovers', async () => {
    const token = await idp.sign({});
    const results = await Promise.all(Array.from({ length: 20 }, () => worker.fetch('/api/whoami', { headers: bearer(token) })));
    for (const res of results) {
      assert.equal(res.status, 503);
      assert.equal((await res.json()).error, 'temporarily_unavailable');
      assert.ok(res.headers.get('retry-after'));
    }
    assert.equal(idp.fetches, 1);
    idp.mode = 'ok';
    await sleep(2100);
    assert.equal((await worker.fetch('/api/whoami', { headers: bearer(token) })).status, 200);
    assert.equal(idp.fetches, 2);
  });
});
