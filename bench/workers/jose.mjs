// Benchmark peer: what a user would write instead of gatehouse, with panva/jose. The same checks as
// gatehouse's edge (issuer, audience, typ at+jwt, algorithms by key, exp with leeway) and the same
// one KV read for revocation, so the comparison is like for like.
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
      const revoked = await env.DENYLIST.get(`rev:${payload.sub}`);
      if (revoked !== null) return new Response('{"error":"invalid_token"}', { status: 401 });
      return Response.json(payload, { headers: { 'cache-control': 'no-store' } });
    } catch {
      return new Response('{"error":"invalid_token"}', { status: 401 });
    }
  },
};
