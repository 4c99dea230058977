// A Node (20+) client of gatehouse with DPoP (RFC 9449), using the same module as the browser
// (www/dpop.js) on Node's WebCrypto; the key lives in memory for the life of the process.
//
//   node examples/dpop-client.mjs <base URL> <email> <password> [protected path]
//   DPOP_ALG=EdDSA node examples/dpop-client.mjs http://127.0.0.1:8787 a@example.com 'a long password'
//
// It logs in with a DPoP proof, calls a protected route with `Authorization: DPoP <token>` and a
// proof, refreshes with a proof from the same key, calls again, and shows that the access token
// alone (copied without the key) is refused. Exit code 0 when every step went as expected.
import { pathToFileURL } from 'node:url';
import { createDpopClient, memoryStorage } from '../www/dpop.js';

const json = { 'content-type': 'application/json' };

/** Runs the flow against `base`; returns the steps' outcomes. Logs each step with `log`. */
export async function run({ base, email, password, path = '/api/whoami', alg = 'ES256', log = console.log }) {
  const client = createDpopClient({ storage: memoryStorage(), alg });
  const { alg: keyAlg } = await client.publicKey();
  log(`key: ${keyAlg}, thumbprint (cnf.jkt) ${await client.thumbprint()}`);

  // 1. Login with a proof (no access token yet, so no ath). A DPoP-enabled issuer answers
  //    token_type "DPoP" and binds the token (cnf.jkt) and the refresh family to this key.
  const login = await client.fetch(`${base}/auth/login`, { method: 'POST', headers: json, body: JSON.stringify({ email, password }) });
  const tokens = await login.json();
  if (!login.ok) throw new Error(`login: ${login.status} ${tokens.error}`);
  log(`login: ${login.status}, token_type ${tokens.token_type}`);
  const bound = tokens.token_type === 'DPoP';
  if (!bound) log('the issuer did not bind the token (DPOP_MODE=off, or no DPoP support): it is a bearer token');

  // 2. The protected route: `Authorization: DPoP <token>` and a proof with ath = SHA-256(token).
  const call = async (accessToken) => (bound
    ? client.fetch(`${base}${path}`, {}, { accessToken })
    : fetch(`${base}${path}`, { headers: { authorization: `Bearer ${accessToken}` } }));
  const first = await call(tokens.access_token);
  log(`GET ${path}: ${first.status}`);

  // 3. Refresh with a proof from the same key (another key is refused, and counts as reuse).
  const refresh = await client.fetch(`${base}/auth/refresh`, {
    method: 'POST', headers: json, body: JSON.stringify({ refresh_token: tokens.refresh_token }),
  });
  const renewed = await refresh.json();
  log(`refresh: ${refresh.status}, token_type ${renewed.token_type}`);
  const second = await call(renewed.access_token ?? tokens.access_token);
  log(`GET ${path} with the new token: ${second.status}`);

  // 4. The token copied without the key: no proof, or presented as a bearer token.
  const noProof = await fetch(`${base}${path}`, { headers: { authorization: `DPoP ${renewed.access_token}` } });
  const asBearer = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${renewed.access_token}` } });
  log(`copied token without a proof: ${noProof.status}; as Bearer: ${asBearer.status}`);
  log(`challenge: ${noProof.headers.get('www-authenticate')}`);

  const ok = login.ok && first.ok && refresh.ok && second.ok && (!bound || (noProof.status === 401 && asBearer.status === 401));
  return { ok, bound, statuses: [login.status, first.status, refresh.status, second.status, noProof.status, asBearer.status] };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [base, email, password, path] = process.argv.slice(2);
  if (!base || !email || !password) {
    console.error('usage: node examples/dpop-client.mjs <base URL> <email> <password> [protected path]');
    process.exit(2);
  }
  run({ base: base.replace(/\/$/, ''), email, password, path, alg: process.env.DPOP_ALG ?? 'ES256' })
    .then(({ ok }) => process.exit(ok ? 0 : 1))
    .catch((e) => {
      console.error(String(e));
      process.exit(1);
    });
}
