// Types of gatehouse's client (index.js). The shapes come from openapi.d.ts, generated from
// www/openapi.json by openapi-typescript (tests/e2e/client.test.mjs fails when it is stale).
import type { components } from './openapi.js';

type Schemas = components['schemas'];

/** The stable error codes of API.md, plus `network` when the server could not be reached. */
export type ErrorCode = Schemas['ErrorCode'] | 'network';
export type TokenPair = Schemas['TokenPair'];
export type Registered = Schemas['Registered'];
export type Me = Schemas['Me'];
export type AccessClaims = Schemas['AccessClaims'];
export type JwkSet = Schemas['JwkSet'];
export type Health = Schemas['Health'];

export declare class GatehouseError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  /** Seconds, from `Retry-After` (429 and 503). */
  readonly retryAfter?: number;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  token?: string;
  headers?: Record<string, string>;
  baseUrl?: string;
  fetch?: typeof fetch;
  credentials?: RequestCredentials;
}

export declare function request<T = unknown>(
  path: string,
  options?: RequestOptions,
): Promise<{ res: Response | null; data: T | null; error: ErrorCode | null }>;

export interface ClientOptions {
  baseUrl?: string;
  fetch?: typeof fetch;
  credentials?: RequestCredentials;
}

export interface Client {
  health(): Promise<Health>;
  jwks(): Promise<JwkSet>;
  register(email: string, password: string): Promise<Registered>;
  login(email: string, password: string, options?: { transport?: 'body' | 'cookie' }): Promise<TokenPair>;
  refresh(refreshToken?: string): Promise<TokenPair>;
  logout(accessToken: string): Promise<null>;
  logoutAll(accessToken: string): Promise<null>;
  me(accessToken: string): Promise<Me>;
  whoami(accessToken: string): Promise<AccessClaims>;
}

export declare function createClient(options?: ClientOptions): Client;
