import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError, MAX_ATTACHMENTS, MAX_EXTRA_HEADERS, type FieldIssue } from '@mailroom/core';
import {
  parseRedisNodes,
  readRedisConnectionSpec,
  redisConnectionSettings,
  type RedisConnectionSpec,
} from '@mailroom/queue';
import { loadWebhookConfig, type WebhookEndpoint } from '@mailroom/webhooks';
import { booleanString, loadSettings, setting, type SettingsValues } from './settings.js';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const redisNodes = z
  .string()
  .refine((v) => parseRedisNodes(v) !== undefined, 'must be host:port[,host:port...] with ports 1-65535');

/** Every environment variable the API reads. docs/api.md's configuration table is generated from this. */
export const apiSettings = {
  MAILROOM_REDIS_URL: setting(z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'), {
    default: 'redis://127.0.0.1:6379',
    doc: 'Redis holding the queues, the ledger and the API keys. Use `rediss://` for TLS. Set MAILROOM_REDIS_CLUSTER or MAILROOM_REDIS_SENTINELS instead for a cluster or Sentinel.',
  }),
  MAILROOM_REDIS_CLUSTER: setting(redisNodes, {
    doc: 'Redis Cluster seed nodes, `host:port,host:port`; instead of MAILROOM_REDIS_URL (the same as the workers use).',
  }),
  MAILROOM_REDIS_SENTINELS: setting(redisNodes, {
    doc: 'Redis Sentinel addresses, `host:port,host:port`; instead of MAILROOM_REDIS_URL.',
  }),
  MAILROOM_REDIS_SENTINEL_NAME: setting(z.string().min(1), {
    doc: 'Master group name the Sentinels monitor (required with MAILROOM_REDIS_SENTINELS).',
  }),
  MAILROOM_REDIS_USERNAME: setting(z.string().min(1), {
    doc: 'ACL user for the cluster nodes or the Sentinel master (a URL carries its own).',
  }),
  MAILROOM_REDIS_PASSWORD: setting(z.string().min(1), {
    doc: 'Password for the cluster nodes or the Sentinel master (a URL carries its own). Never logged.',
  }),
  MAILROOM_REDIS_TLS: setting(booleanString, {
    default: 'false',
    doc: 'TLS (verified against the system CAs) to the cluster nodes, or to the Sentinels and their master.',
  }),
  MAILROOM_REDIS_SENTINEL_PASSWORD: setting(z.string().min(1), {
    doc: 'Password of the Sentinels themselves, when they require AUTH. Never logged.',
  }),
  MAILROOM_QUEUE_PREFIX: setting(
    z.string().regex(/\{[^{}]+\}/, 'must contain a hash tag such as {mailroom}'),
    {
      default: '{mailroom}',
      doc: 'Key prefix of every queue and record (API keys included); the same as the workers use.',
    },
  ),
  MAILROOM_API_HOST: setting(z.string().min(1), {
    default: '127.0.0.1',
    doc: 'Address the API listens on. Loopback by default: put a TLS-terminating proxy in front to serve others.',
  }),
  MAILROOM_API_PORT: setting(int(0, 65535), {
    default: '8465',
    doc: 'Port the API listens on; 0 picks a free port.',
  }),
  MAILROOM_API_KEY_PEPPER: setting(z.string().min(32, 'must be at least 32 characters'), {
    required: true,
    doc: 'Server-side secret mixed into every stored API key hash (HMAC-SHA256). Generate it once (`openssl rand -hex 32`), keep it out of Redis, never change it without re-issuing keys. Never logged.',
  }),
  MAILROOM_API_BODY_LIMIT_BYTES: setting(int(1024, 1024 * 1024 * 1024), {
    default: String(16 * 1024 * 1024),
    doc: 'Largest JSON request body; a larger one is refused with 413 before it is read (Content-Length) or as soon as it passes the limit (chunked).',
  }),
  MAILROOM_API_UPLOAD_LIMIT_BYTES: setting(int(1024, 64 * 1024 * 1024 * 1024), {
    default: String(256 * 1024 * 1024),
    doc: 'Largest campaign recipient upload (CSV or JSON Lines), streamed, never held in memory.',
  }),
  MAILROOM_API_MAX_BATCH_MESSAGES: setting(int(1, 1000), {
    default: '100',
    doc: 'Most messages in one POST /v1/messages/batch.',
  }),
  MAILROOM_API_MAX_CAMPAIGN_RECIPIENTS: setting(int(1, 100_000_000), {
    default: '1000000',
    doc: 'Most recipients in one campaign upload; rows beyond it are refused, each counted.',
  }),
  MAILROOM_API_MAX_ATTACHMENTS: setting(int(0, MAX_ATTACHMENTS), {
    default: '20',
    doc: `Most attachments on one message (core allows at most ${MAX_ATTACHMENTS}).`,
  }),
  MAILROOM_API_MAX_EXTRA_HEADERS: setting(int(0, MAX_EXTRA_HEADERS), {
    default: '20',
    doc: `Most extra headers on one message (core allows at most ${MAX_EXTRA_HEADERS}).`,
  }),
  MAILROOM_API_MAX_MESSAGE_BYTES: setting(int(1024, 1024 * 1024 * 1024), {
    default: String(10 * 1024 * 1024),
    doc: 'Largest message as encoded MIME (attachments included).',
  }),
  MAILROOM_API_MAX_AGE_SECONDS: setting(int(60, 30 * 86400), {
    default: '86400',
    doc: 'How long an accepted message may keep being retried before it ends as expired.',
  }),
  MAILROOM_API_IDEMPOTENCY_WINDOW_SECONDS: setting(int(60, 30 * 86400), {
    default: '86400',
    doc: 'How long an Idempotency-Key keeps answering with the first message.',
  }),
  MAILROOM_LEDGER_RETENTION_SECONDS: setting(int(60, 10 * 365 * 86400), {
    default: '2592000',
    doc: "How long a finished message's status stays queryable (the same as the workers').",
  }),
  MAILROOM_API_RATE_PER_SECOND: setting(int(1, 1_000_000), {
    default: '50',
    doc: 'Requests per second each API key may make (token bucket in Redis, shared by every API process); beyond it 429 with Retry-After.',
  }),
  MAILROOM_API_RATE_BURST: setting(int(1, 1_000_000), {
    default: '100',
    doc: 'Requests an idle key may make at once before the per-second rate applies.',
  }),
  MAILROOM_API_REDIS_TIMEOUT_MS: setting(int(50, 60_000), {
    default: '750',
    doc: 'A Redis command that has not answered in this long fails, and the request gets 503 with Retry-After (commands are never queued while Redis is down).',
  }),
  MAILROOM_API_REQUEST_TIMEOUT_MS: setting(int(1000, 24 * 3600 * 1000), {
    default: '600000',
    doc: 'Longest time a client may take to send one whole request, uploads included (256 MiB in 10 minutes needs about 0.5 MB/s).',
  }),
  MAILROOM_API_SHUTDOWN_TIMEOUT_MS: setting(int(0, 3_600_000), {
    default: '10000',
    doc: 'On SIGTERM/SIGINT, time allowed for requests in flight to finish before connections are closed.',
  }),
  MAILROOM_API_QUEUE_UI: setting(booleanString, {
    default: 'true',
    doc: 'Serve the read-only bull-board queue UI at /admin/queues (admin keys only).',
  }),
  MAILROOM_API_DOCS_UI: setting(booleanString, {
    default: 'true',
    doc: 'Serve Swagger UI at /v1/docs (any valid key). /v1/openapi.json is always served.',
  }),
  MAILROOM_UNSUBSCRIBE_SECRETS: setting(
    z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''),
      )
      .refine((list) => list.length > 0 && list.every((s) => s.length >= 32), {
        message: 'must be a comma-separated list of secrets of at least 32 characters each',
      }),
    {
      doc: 'Secrets that verify one-click unsubscribe tokens (the first is the one mail is signed with; older ones stay listed until their mail is old). Unset: /u/:token is not served. Never logged.',
    },
  ),
  MAILROOM_WEBHOOKS_FILE: setting(z.string().min(1), {
    doc: 'The webhook endpoints file of the workers (docs/webhooks.md): an unsubscribe at /u/:token queues an `unsubscribed` event for the endpoints that take it; the workers deliver it. Unset: no events.',
  }),
  MAILROOM_LOG_LEVEL: setting(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), {
    default: 'info',
    doc: 'Log level. API keys and Authorization headers are never logged; recipient addresses never at info.',
  }),
} as const;

export type ApiSettings = SettingsValues<typeof apiSettings>;

const SECRET_SETTINGS: ReadonlySet<string> = new Set([
  'MAILROOM_REDIS_PASSWORD',
  'MAILROOM_REDIS_SENTINEL_PASSWORD',
  'MAILROOM_API_KEY_PEPPER',
  'MAILROOM_UNSUBSCRIBE_SECRETS',
]);

/** Request limits, enforced before or while a request is read. */
export interface ApiLimits {
  readonly bodyLimitBytes: number;
  readonly uploadLimitBytes: number;
  readonly maxBatchMessages: number;
  readonly maxCampaignRecipients: number;
  readonly maxAttachments: number;
  readonly maxExtraHeaders: number;
  readonly maxMessageBytes: number;
  readonly ratePerSecond: number;
  readonly rateBurst: number;
  readonly requestTimeoutMs: number;
}

/** The API's configuration: validated once at start, then frozen. */
export interface ApiConfig {
  /** MAILROOM_REDIS_URL (its default when unset); the connection is {@link redis}. */
  readonly redisUrl: string;
  /** Where Redis is: a URL, a cluster or Sentinel (MAILROOM_REDIS_*). */
  readonly redis: RedisConnectionSpec;
  readonly prefix: string;
  readonly host: string;
  readonly port: number;
  readonly keyPepper: string;
  readonly limits: ApiLimits;
  readonly maxAgeMs: number;
  readonly idempotencyWindowSeconds: number;
  readonly retentionSeconds: number;
  readonly redisTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly queueUi: boolean;
  readonly docsUi: boolean;
  /** Secrets verifying one-click unsubscribe tokens; empty: /u/:token is not served. */
  readonly unsubscribeSecrets: readonly string[];
  /** Webhook endpoints (MAILROOM_WEBHOOKS_FILE) the API queues `unsubscribed` events for; empty: none. */
  readonly webhooks: readonly WebhookEndpoint[];
  readonly logLevel: string;
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** Reads and validates the API's environment. Throws ConfigError naming every bad variable. */
export function loadApiConfig(env: NodeJS.ProcessEnv): ApiConfig {
  const s = loadSettings(apiSettings, env, SECRET_SETTINGS);
  const issues: FieldIssue[] = [];
  const redis = readRedisConnectionSpec(redisConnectionSettings(s, env), issues);
  let webhooks: readonly WebhookEndpoint[] = [];
  if (s.MAILROOM_WEBHOOKS_FILE !== undefined) {
    try {
      webhooks = loadWebhookConfig(s.MAILROOM_WEBHOOKS_FILE, env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      issues.push(...err.issues);
    }
  }
  if (redis === undefined || issues.length > 0) throw new ConfigError(issues);
  return Object.freeze({
    redisUrl: s.MAILROOM_REDIS_URL,
    redis: Object.freeze(redis),
    prefix: s.MAILROOM_QUEUE_PREFIX,
    host: s.MAILROOM_API_HOST,
    port: s.MAILROOM_API_PORT,
    keyPepper: s.MAILROOM_API_KEY_PEPPER,
    limits: Object.freeze({
      bodyLimitBytes: s.MAILROOM_API_BODY_LIMIT_BYTES,
      uploadLimitBytes: s.MAILROOM_API_UPLOAD_LIMIT_BYTES,
      maxBatchMessages: s.MAILROOM_API_MAX_BATCH_MESSAGES,
      maxCampaignRecipients: s.MAILROOM_API_MAX_CAMPAIGN_RECIPIENTS,
      maxAttachments: s.MAILROOM_API_MAX_ATTACHMENTS,
      maxExtraHeaders: s.MAILROOM_API_MAX_EXTRA_HEADERS,
      maxMessageBytes: s.MAILROOM_API_MAX_MESSAGE_BYTES,
      ratePerSecond: s.MAILROOM_API_RATE_PER_SECOND,
      rateBurst: s.MAILROOM_API_RATE_BURST,
      requestTimeoutMs: s.MAILROOM_API_REQUEST_TIMEOUT_MS,
    }),
    maxAgeMs: s.MAILROOM_API_MAX_AGE_SECONDS * 1000,
    idempotencyWindowSeconds: s.MAILROOM_API_IDEMPOTENCY_WINDOW_SECONDS,
    retentionSeconds: s.MAILROOM_LEDGER_RETENTION_SECONDS,
    redisTimeoutMs: s.MAILROOM_API_REDIS_TIMEOUT_MS,
    shutdownTimeoutMs: s.MAILROOM_API_SHUTDOWN_TIMEOUT_MS,
    queueUi: s.MAILROOM_API_QUEUE_UI,
    docsUi: s.MAILROOM_API_DOCS_UI,
    unsubscribeSecrets: Object.freeze([...(s.MAILROOM_UNSUBSCRIBE_SECRETS ?? [])]),
    webhooks,
    logLevel: s.MAILROOM_LOG_LEVEL,
  });
}
