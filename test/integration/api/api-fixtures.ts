import { Writable } from 'node:stream';
import { ApiKeyStore, loadApiConfig, startApiServer, type ApiServer } from '@mailroom/api';
import type { RedisServer } from '../../harness/redis.js';

/** The pepper every API test runs with (the API and the key store must agree). */
export const PEPPER = 'test-pepper-0123456789abcdef0123456789abcdef';
/** The sender domain of fixtures.ts' messages (sender@mailroom.example). */
export const SENDER_DOMAIN = 'mailroom.example';

export interface TestApi {
  readonly server: ApiServer;
  readonly url: string;
  /** Keys in the API's Redis, created with the same pepper. */
  readonly keys: ApiKeyStore;
  /** Creates a key and returns it (the `mr_...` string). */
  key(scopes: string[], domains?: string[]): Promise<string>;
  /** Everything the API logged, as text. */
  logs(): string;
  close(): Promise<void>;
}

/**
 * Starts the API on 127.0.0.1 and a free port against `redis`, with generous rate limits unless `env` says
 * otherwise, logging at `logLevel` (default info) into memory.
 */
export async function startTestApi(
  redis: RedisServer,
  env: Record<string, string> = {},
  logLevel = 'info',
): Promise<TestApi> {
  const config = loadApiConfig({
    MAILROOM_REDIS_URL: redis.url,
    MAILROOM_API_KEY_PEPPER: PEPPER,
    MAILROOM_API_HOST: '127.0.0.1',
    MAILROOM_API_PORT: '0',
    MAILROOM_API_RATE_PER_SECOND: '10000',
    MAILROOM_API_RATE_BURST: '10000',
    MAILROOM_API_SHUTDOWN_TIMEOUT_MS: '2000',
    ...env,
  });
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  const server = await startApiServer(config, { logger: { level: logLevel, stream } });
  const admin = redis.client();
  const keys = new ApiKeyStore(admin, config.prefix, PEPPER);
  return {
    server,
    url: server.url,
    keys,
    async key(scopes, domains = [SENDER_DOMAIN]) {
      return (await keys.create({ scopes, domains })).key;
    },
    logs: () => chunks.join(''),
    async close() {
      await server.close();
      admin.disconnect();
    },
  };
}

/** JSON request headers with a Bearer key. */
export function auth(key: string, extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...extra };
}

/** The error body every refusal carries. */
export interface ErrorBody {
  error: { code: string; message: string; fields?: { field: string; message: string }[] };
}

export async function post(
  url: string,
  body: unknown,
  headers: Record<string, string>,
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: response.status, body: parsed, headers: response.headers };
}
