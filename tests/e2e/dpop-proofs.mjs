// DPoP helpers for the end-to-end tests: hand-made proofs (RFC 9449 §4.2) from a client key (ES256
// or EdDSA) that can carry any header member or claim, right or wrong, signed with node:crypto; and
// oauth4webapi's refresh grant with its retry on `use_dpop_nonce`.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign as cryptoSign, randomBytes } from 'node:crypto';
import * as oauth from 'oauth4webapi';

export const b64u = (bytes) => Buffer.from(bytes).toString('base64url');
export const sha256 = (text) => b64u(createHash('sha256').update(text).digest());
const now = () => Math.floor(Date.now() / 1000);

/** The RFC 7638 thumbprint of a public EC or OKP JWK. */
export function thumbprint(jwk) {
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return sha256(JSON.stringify(members));
}

/**
 * A client key (ES256 or EdDSA) that makes proofs by hand: `proof({ htm, htu, token, nonce, iat,
 * header, claims, signWith })`, where `header` and `claims` override members (`undefined` removes
 * one) and `signWith(input)` replaces the signature. `jwk` is public, `full` the private JWK,
 * `jkt` the thumbprint.
 */
export function makeKey(alg = 'ES256') {
  const pair = alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const full = pair.privateKey.export({ format: 'jwk' });
  const jwk = pair.publicKey.export({ format: 'jwk' });
  return {
    alg, jwk, full, jkt: thumbprint(jwk),
    proof({ htm = 'GET', htu, token, nonce, iat = now(), header = {}, claims = {}, signWith } = {}) {
      const h = { typ: 'dpop+jwt', alg, jwk, ...header };
      const c = { jti: b64u(randomBytes(16)), htm, htu, iat, ...(token ? { ath: sha256(token) } : {}), ...(nonce ? { nonce } : {}), ...claims };
      for (const o of [h, c]) for (const [k, v] of Object.entries(o)) if (v === undefined) delete o[k];
      const input = `${b64u(JSON.stringify(h))}.${b64u(JSON.stringify(c))}`;
      const signature = signWith
        ? signWith(Buffer.from(input))
        : alg === 'EdDSA'
          ? cryptoSign(null, Buffer.from(input), pair.privateKey)
          : cryptoSign('sha256', Buffer.from(input), { key: pair.privateKey, dsaEncoding: 'ieee-p1363' });
      return `${input}.${b64u(signature)}`;
    },
  };
}

/**
 * oauth4webapi's refresh grant against a token endpoint that requires a nonce the client does not
 * have yet: the first answer must be `use_dpop_nonce` (RFC 9449 §8), and the retry, with the nonce
 * the DPoP handle in `options` kept, must succeed. Returns the token response.
 */
export async function refreshWithNonceRetry(as, clientId, refreshToken, options) {
  const client = { client_id: clientId };
  const grant = async () => oauth.processRefreshTokenResponse(
    as, client, await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, options),
  );
  try {
    await grant();
  } catch (e) {
    assert.equal(oauth.isDPoPNonceError(e), true, String(e));
    return grant();
  }
  return assert.fail('the first request has no nonce');
}
