// Benchmark peer: what a user would write instead of gatehouse, with panva/jose. The same checks as
// gatehouse's edge (issuer, audience, typ at+jwt, algorithms by key, exp with leeway), and, with
// READ_DENYLIST set, the same one KV read for revocation on every request (like for like); without
// it, no revocation at all (what a plain jose verifier does).
import { createLocalJWKSet, jwtVerify } from 'jose';

let jwks;

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
      return Response.json(payload, { headers: { 'cache-control': 'no-store' } });
    } catch {
      return new Response('{"error":"invalid_token"}', { status: 401 });
    }
  },
};
