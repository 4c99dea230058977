// gatehouse's client for browsers and Node 18+: plain ESM with no dependencies and no build step
// (www/app.js imports this very file). Types: index.d.ts, on the ones generated from the OpenAPI
// document (openapi.d.ts, `npm run client:types`). docs/CLIENT.md has the guide.

/** An error answer of gatehouse's: its HTTP status and its stable `error` code (API.md). */
export class GatehouseError extends Error {
  constructor(status, code, description, retryAfter) {
    super(description || code);
    this.name = 'GatehouseError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * One API call; never throws. Resolves to `{ res, data, error }`: the Response (null when the network
 * failed), the JSON body (null when there is none), and the error code (`null` on success, `network`
 * when the server could not be reached). `token` is sent as a bearer token.
 */
export async function request(path, { method = 'GET', body, token, headers = {}, baseUrl = '', fetch: fetcher = globalThis.fetch, credentials = 'same-origin' } = {}) {
  const sent = { ...headers };
  if (body !== undefined) sent['content-type'] = 'application/json';
  if (token) sent.authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetcher(`${baseUrl}${path}`, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials,
      cache: 'no-store',
    });
  } catch {
    return { res: null, data: null, error: 'network' };
  }
  let data = null;
  if (res.status !== 204 && method !== 'HEAD') {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  return { res, data, error: res.ok ? null : (data?.error ?? 'server_error') };
}

/** A client bound to one gatehouse (`baseUrl`, e.g. `https://auth.example.com`; '' for the page's own). */
export function createClient({ baseUrl = '', fetch: fetcher = globalThis.fetch, credentials = 'same-origin' } = {}) {
  const call = async (path, options = {}) => {
    const { res, data, error } = await request(path, { baseUrl, fetch: fetcher, credentials, ...options });
    if (error) {
      const retry = res?.headers.get('retry-after');
      throw new GatehouseError(res?.status ?? 0, error, data?.error_description ?? '', retry ? Number(retry) : undefined);
    }
    return data;
  };
  return {
    /** `GET /healthz`. */
    health: () => call('/healthz'),
    /** `GET /.well-known/jwks.json`. */
    jwks: () => call('/.well-known/jwks.json'),
    /** `POST /auth/register`. */
    register: (email, password) => call('/auth/register', { method: 'POST', body: { email, password } }),
    /** `POST /auth/login`; `transport: 'cookie'` puts the refresh token in the HttpOnly cookie. */
    login: (email, password, { transport = 'body' } = {}) =>
      call('/auth/login', { method: 'POST', body: { email, password, transport } }),
    /** `POST /auth/refresh`, with the refresh token, or without one from the cookie. */
    refresh: (refreshToken) =>
      call('/auth/refresh', { method: 'POST', body: refreshToken === undefined ? undefined : { refresh_token: refreshToken } }),
    /** `POST /auth/logout`. */
    logout: (accessToken) => call('/auth/logout', { method: 'POST', token: accessToken }),
    /** `POST /auth/logout-all`. */
    logoutAll: (accessToken) => call('/auth/logout-all', { method: 'POST', token: accessToken }),
    /** `GET /auth/me`. */
    me: (accessToken) => call('/auth/me', { token: accessToken }),
    /** `GET /api/whoami` (the edge's verified claims, when no ORIGIN_URL is set). */
    whoami: (accessToken) => call('/api/whoami', { token: accessToken }),
  };
}
