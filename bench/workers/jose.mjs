// Benchmark peer: what a user would write instead of gatehouse, with panva/jose. The same checks as
// gatehouse's edge (issuer, audience, typ at+jwt, algorithms by key, exp with leeway), and, with
// READ_DENYLIST set, the same one KV read for revocation on every request (like for like); without
// it, no revocation at all (what a plain jose verifier does). With WHOAMI_HEADERS set it answers with
// the headers gatehouse's /api/whoami answers with (bench/workers/same-answer.mjs), not jose's one:
// a diagnostic row that tells the cost of gatehouse's answer apart from its verification.
import { createLocalJWKSet, jwtVerify } from 'jose';

let jwks;
let count = 0;
const WHOAMI_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  vary: 'Origin',
};

export default {
  async fetch(request, env) {
    jwks ??= createLocalJWKSet(JSON.parse(env.JWKS));
    const auth = request.headers.get('authorization') ?? '';
    if (!auth.startsWith('Bearer ')) return new Response('{"error":"invalid_token"}', { status: 401 });
    try {
      const { payload } = await jwtVerify(auth.slice(7), jwks, {
        issuer: env.ISSUER,
        audience: env.AUDIENCE,
        typ: 'at+jwt',
        algorithms: ['EdDSA', 'RS256'],
        clockTolerance: 30,
      });
      if (env.READ_DENYLIST) {
        const revoked = await env.DENYLIST.get(`rev:${payload.sub}`);
        if (revoked !== null) return new Response('{"error":"invalid_token"}', { status: 401 });
      }
      if (env.WHOAMI_HEADERS) {
        // Built as gatehouse's entry builds them (js/front.mjs): a plain object, no Headers object.
        const requestId = `0123456789abcdef${(count++).toString(16).padStart(16, '0')}`;
        return Response.json(payload, { headers: { ...WHOAMI_HEADERS, 'x-request-id': requestId } });
      }
      return Response.json(payload, { headers: { 'cache-control': 'no-store' } });
    } catch {
      return new Response('{"error":"invalid_token"}', { status: 401 });
    }
  },
};
