// Benchmark baseline: a JavaScript worker that answers what gatehouse's /api/whoami answers (a body of
// the same size and the same headers) without verifying anything. It is the ceiling for that answer on
// this machine: what remains between it and the no-op worker is the cost of the answer itself.
const HEADERS = [
  ['content-type', 'application/json'],
  ['cache-control', 'no-store'],
  ['x-content-type-options', 'nosniff'],
  ['referrer-policy', 'no-referrer'],
  ['content-security-policy', "default-src 'none'; frame-ancestors 'none'"],
  ['vary', 'Origin'],
];
const BODY = JSON.stringify({
  aud: ['bench'], client_id: 'bench', email: 'bench@example.com', exp: 1795603600, iat: 1795600000,
  iss: 'https://bench.gatehouse.test', jti: 'abcdefghijklmnopqrstuv', roles: ['user'], scope: 'api', sid: 'sid-123', sub: 'user-123',
});
let count = 0;

export default {
  fetch() {
    const headers = new Headers(HEADERS);
    headers.set('x-request-id', `0123456789abcdef${(count++).toString(16).padStart(16, '0')}`);
    return new Response(BODY, { headers });
  },
};
