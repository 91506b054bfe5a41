import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError, type FieldIssue } from '@mailroom/core';
import { DEFAULT_METRIC_DOMAINS, metricDomainProblems, splitMetricDomains } from '@mailroom/metrics';
import type { RelayConfig, SenderKind } from '@mailroom/smtp';
import { DEFAULT_VERP_LOCAL_PREFIX, validateVerpOptions, type VerpOptions } from '@mailroom/feedback';
import { createDkimSigner, type DkimSigner } from '@mailroom/mime';
import { loadWebhookConfig, type WebhookEndpoint } from '@mailroom/webhooks';
import {
  parseRedisNodes,
  readRedisConnectionSpec,
  redisConnectionSettings,
  type RedisConnectionSpec,
} from '@mailroom/queue';
import { loadRoutingConfig, singleRelayRouting, type RoutingConfig } from './relays-config.js';
import { booleanString, loadSettings, setting, type SettingsValues } from './settings.js';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const ms = (min: number, max: number) => int(min, max);
const redisNodes = z
  .string()
  .refine((v) => parseRedisNodes(v) !== undefined, 'must be host:port[,host:port...] with ports 1-65535');

/** Every environment variable the worker reads. README's configuration table is generated from this. */
export const workerSettings = {
  MAILROOM_REDIS_URL: setting(z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'), {
    default: 'redis://127.0.0.1:6379',
    doc: "Redis holding the queues (one server, or a managed service's primary endpoint). Use `rediss://` for TLS. Set MAILROOM_REDIS_CLUSTER or MAILROOM_REDIS_SENTINELS instead for a cluster or Sentinel.",
  }),
  MAILROOM_REDIS_CLUSTER: setting(redisNodes, {
    doc: "Redis Cluster seed nodes, `host:port,host:port` (the other nodes are discovered); instead of MAILROOM_REDIS_URL. Every key of one prefix lives in one slot, so one prefix gets one shard's throughput: see docs/scaling.md.",
  }),
  MAILROOM_REDIS_SENTINELS: setting(redisNodes, {
    doc: 'Redis Sentinel addresses, `host:port,host:port`; instead of MAILROOM_REDIS_URL. Mailroom asks them for the master of MAILROOM_REDIS_SENTINEL_NAME and follows its failovers.',
  }),
  MAILROOM_REDIS_SENTINEL_NAME: setting(z.string().min(1), {
    doc: 'Master group name the Sentinels monitor (required with MAILROOM_REDIS_SENTINELS).',
  }),
  MAILROOM_REDIS_USERNAME: setting(z.string().min(1), {
    doc: 'ACL user for the cluster nodes or the Sentinel master (a URL carries its own).',
  }),
  MAILROOM_REDIS_PASSWORD: setting(z.string().min(1), {
    secret: true,
    doc: 'Password for the cluster nodes or the Sentinel master (a URL carries its own). Never logged.',
  }),
  MAILROOM_REDIS_TLS: setting(booleanString, {
    default: 'false',
    doc: 'TLS (verified against the system CAs) to the cluster nodes, or to the Sentinels and their master (a URL says `rediss://`).',
  }),
  MAILROOM_REDIS_SENTINEL_PASSWORD: setting(z.string().min(1), {
    secret: true,
    doc: 'Password of the Sentinels themselves, when they require AUTH. Never logged.',
  }),
  MAILROOM_QUEUE_PREFIX: setting(
    z.string().regex(/\{[^{}]+\}/, 'must contain a hash tag such as {mailroom}'),
    {
      default: '{mailroom}',
      doc: 'Key prefix of every queue and record; its `{hash tag}` keeps each script on one Redis Cluster slot. Producers and workers must agree.',
    },
  ),
  MAILROOM_WORKER_CONCURRENCY: setting(int(1, 5000), {
    default: '50',
    doc: 'Messages one worker process handles at once (SMTP connections are pooled separately).',
  }),
  MAILROOM_RELAY_NAME: setting(
    z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'must be 1-32 of a-z 0-9 _ -'),
    {
      default: 'default',
      doc: 'Name of the relay in logs and metric labels (never the host).',
    },
  ),
  MAILROOM_RELAYS_FILE: setting(z.string().min(1), {
    doc: 'JSON file of relays (weights, routing by sender domain or tag, limits per second, hour and day), recipient domain groups with their limits, campaign limits, adaptive throttling and circuit settings: see docs/rate-limits.md. When set, MAILROOM_RELAY_NAME and the per-relay MAILROOM_SMTP_* variables (host, port, TLS, credentials, CA, connections) are not used; the timeouts and the client name still are.',
  }),
  MAILROOM_SMTP_HOST: setting(z.string().min(1), {
    doc: 'Relay host name or IP (required unless MAILROOM_RELAYS_FILE is set).',
  }),
  MAILROOM_SMTP_PORT: setting(int(1, 65535), {
    default: '587',
    doc: 'Relay port (587 submission, 465 implicit TLS).',
  }),
  MAILROOM_SMTP_TLS: setting(z.enum(['starttls', 'tls', 'none']), {
    default: 'starttls',
    doc: '`starttls`: STARTTLS is required, never plaintext. `tls`: implicit TLS (port 465). `none`: no TLS, only for a sink on loopback.',
  }),
  MAILROOM_SMTP_USER: setting(z.string().min(1), {
    doc: 'AUTH user name (set together with MAILROOM_SMTP_PASS).',
  }),
  MAILROOM_SMTP_PASS: setting(z.string().min(1), {
    secret: true,
    doc: 'AUTH password or app password. Never logged.',
  }),
  MAILROOM_SMTP_CA_FILE: setting(z.string().min(1), {
    doc: 'PEM file of extra CA certificates to trust for the relay (private CA).',
  }),
  MAILROOM_SMTP_TLS_SERVERNAME: setting(z.string().min(1), {
    doc: 'Name the relay certificate must carry, when it differs from MAILROOM_SMTP_HOST.',
  }),
  MAILROOM_SMTP_TLS_VERIFY: setting(booleanString, {
    default: 'true',
    doc: 'Verify the relay certificate. Turning it off is logged as a warning at every start.',
  }),
  MAILROOM_SMTP_SENDER: setting(z.enum(['pipelining', 'nodemailer']), {
    default: 'pipelining',
    doc: "SMTP client: `pipelining` (Mailroom's RFC 2920 sender) or `nodemailer` (nodemailer's SMTP connections, e.g. for XOAUTH2). Both pass the same conformance and fault tests.",
  }),
  MAILROOM_SMTP_MAX_CONNECTIONS: setting(int(1, 1000), {
    default: '5',
    doc: 'Pooled SMTP connections per worker process.',
  }),
  MAILROOM_SMTP_MAX_MESSAGES_PER_CONNECTION: setting(int(1, 1_000_000), {
    default: '1000',
    doc: 'Messages sent on one connection before it is replaced.',
  }),
  MAILROOM_SMTP_CONNECTION_TIMEOUT_MS: setting(ms(100, 300_000), {
    default: '10000',
    doc: 'Time to establish the TCP connection.',
  }),
  MAILROOM_SMTP_GREETING_TIMEOUT_MS: setting(ms(100, 300_000), {
    default: '15000',
    doc: 'Time to wait for the 220 greeting.',
  }),
  MAILROOM_SMTP_SOCKET_TIMEOUT_MS: setting(ms(100, 900_000), {
    default: '120000',
    doc: 'Inactivity limit on a connection; also bounds the wait for the reply to the final dot.',
  }),
  MAILROOM_SMTP_CLIENT_NAME: setting(z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a host name'), {
    doc: 'Host name announced in EHLO (default: the OS host name).',
  }),
  MAILROOM_RETRY_BASE_MS: setting(ms(1, 86_400_000), {
    default: '30000',
    doc: 'First retry delay after a transient failure; doubles per attempt, with jitter.',
  }),
  MAILROOM_RETRY_MAX_MS: setting(ms(1, 86_400_000), {
    default: '1800000',
    doc: 'Longest delay between two attempts.',
  }),
  MAILROOM_CONFIG_FAULT_PAUSE_MS: setting(ms(10, 86_400_000), {
    default: '30000',
    doc: 'After an AUTH, TLS or relay-denied fault the worker stops sending for this long, then probes again. Messages are delayed, not bounced.',
  }),
  MAILROOM_LOCK_DURATION_MS: setting(ms(1000, 600_000), {
    default: '30000',
    doc: 'BullMQ job lock; a worker that stops renewing it for this long is considered dead and its jobs re-run.',
  }),
  MAILROOM_STALLED_INTERVAL_MS: setting(ms(500, 600_000), {
    default: '15000',
    doc: 'How often workers look for jobs of dead workers.',
  }),
  MAILROOM_SHUTDOWN_TIMEOUT_MS: setting(ms(0, 3_600_000), {
    default: '25000',
    doc: 'On SIGTERM/SIGINT, time allowed for SMTP transactions in flight to finish before the process exits anyway.',
  }),
  MAILROOM_AMBIGUITY_POLICY: setting(z.enum(['resend', 'stop']), {
    default: 'resend',
    doc: 'When the whole body was sent and no reply came (RFC 1047): `resend` with the same Message-ID (at-least-once) or `stop` as `ambiguous` (at-most-once). Counted either way.',
  }),
  MAILROOM_LEDGER_RETENTION_SECONDS: setting(int(60, 10 * 365 * 86400), {
    default: '2592000',
    doc: "How long a finished message's status and attempts stay queryable.",
  }),
  MAILROOM_RECONCILE_INTERVAL_MS: setting(ms(0, 3_600_000), {
    default: '30000',
    doc: 'Period of the reconciler (expires overdue messages, re-queues messages whose job vanished); one worker holds the lease at a time. 0 disables it in this process.',
  }),
  MAILROOM_CAMPAIGN_HIGH_WATER: setting(int(0, 10_000_000), {
    default: '20000',
    doc: 'Campaign recipients waiting in batch jobs above which no more are materialised from their compact chunks (backpressure: Redis holds about 1.6 KB per materialised recipient, under 100 bytes per recipient still in a chunk). One worker holds the feeder lease at a time. 0 disables the feeder in this process.',
  }),
  MAILROOM_WATCHDOG_MS: setting(ms(0, 86_400_000), {
    default: '120000',
    doc: 'A worker idle this long while jobs wait is considered stuck and exits (code 70) so its supervisor restarts it. 0 disables.',
  }),
  MAILROOM_REDIS_ALLOW_UNSAFE: setting(booleanString, {
    default: 'false',
    doc: 'Start even if Redis has a maxmemory-policy other than noeviction or AOF off (logged as a warning). For demos and tests only.',
  }),
  MAILROOM_HTTP_HOST: setting(z.string().min(1), {
    default: '127.0.0.1',
    doc: 'Address of the /healthz, /readyz and /metrics listener.',
  }),
  MAILROOM_HTTP_PORT: setting(int(-1, 65535), {
    default: '9465',
    doc: 'Port of that listener; 0 picks a free port, -1 disables it.',
  }),
  MAILROOM_METRICS_TOKEN: setting(z.string().min(16, 'must be at least 16 characters'), {
    secret: true,
    doc: 'Bearer token required on /metrics. Required when MAILROOM_HTTP_HOST is not a loopback address.',
  }),
  MAILROOM_METRIC_DOMAINS: setting(
    z
      .string()
      .transform(splitMetricDomains)
      .superRefine((domains, ctx) => {
        for (const message of metricDomainProblems(domains)) ctx.addIssue({ code: 'custom', message });
      }),
    {
      default: DEFAULT_METRIC_DOMAINS.join(','),
      doc: 'Recipient domains with their own `domain` metric label (at most 25; aliases such as googlemail.com count as gmail.com); every other domain is `other`.',
    },
  ),
  MAILROOM_QUEUE_GAUGES: setting(booleanString, {
    default: 'false',
    doc: 'This process also exports the queue gauges (jobs by state, oldest job age, overdue messages). Turn it on in exactly one process: scaled workers would repeat the same numbers.',
  }),
  MAILROOM_DKIM_CONFIG_FILE: setting(z.string().min(1), {
    doc: 'JSON list of DKIM keys, `[{ "domain", "selector", "algorithm": "rsa-sha256" | "ed25519-sha256", "privateKeyFile" | "privateKey", "subdomains" }]`: every message whose From domain has a key is signed (both algorithms when both are listed). See docs/dkim.md.',
  }),
  MAILROOM_BOUNCE_DOMAIN: setting(z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a domain name'), {
    doc: 'Domain whose MX is the `mailroom inbound` receiver. When set (with MAILROOM_VERP_SECRET), every message goes out with a VERP return path `bounces+<message id>.<mac>@<domain>`, so an asynchronous bounce names its message. See docs/bounces.md.',
  }),
  MAILROOM_VERP_SECRET: setting(z.string().min(16, 'must be at least 16 characters'), {
    secret: true,
    doc: 'HMAC key of the VERP return paths (the inbound receiver holds the same). Never logged.',
  }),
  MAILROOM_UNSUBSCRIBE_URL: setting(
    z
      .string()
      .url('must be a URL')
      .refine(
        (u) => /^https:\/\//.test(u) || /^http:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)[:/]/.test(u),
        {
          message: 'must be https (http only for a loopback host)',
        },
      ),
    {
      doc: "Base URL of the one-click unsubscribe endpoint (the API's `/u/`); each campaign message gets `List-Unsubscribe: <URL + signed token>` and `List-Unsubscribe-Post` (RFC 8058). Without it campaign messages carry no unsubscribe link and the worker warns at start.",
    },
  ),
  MAILROOM_UNSUBSCRIBE_SECRETS: setting(
    z
      .string()
      .transform((v) => v.split(',').map((s) => s.trim()))
      .refine((l) => l.every((s) => s.length >= 32), 'each secret must be at least 32 characters'),
    {
      secret: true,
      doc: 'Comma-separated HMAC secrets for unsubscribe tokens: the first signs, all verify (rotation). Never logged. Required with MAILROOM_UNSUBSCRIBE_URL; the API must hold the same list.',
    },
  ),
  MAILROOM_UNSUBSCRIBE_MAILTO: setting(z.string().email('must be an email address'), {
    doc: 'Optional mailbox added as a `mailto:` unsubscribe alternative (subject carries the token). Point its MX at `mailroom inbound`, set there with the same value and MAILROOM_UNSUBSCRIBE_SECRETS: see docs/bounces.md.',
  }),
  MAILROOM_WEBHOOKS_FILE: setting(z.string().min(1), {
    doc: 'JSON list of webhook endpoints, `[{ "name", "url", "secret" | "secretEnv", "events", "timeoutMs", "maxEventsPerRequest", "retryHours" }]`: delivery events (delivered, deferred, bounced, expired, failed, ambiguous, cancelled, suppressed, complained, unsubscribed) are posted to each as signed JSON and retried for up to a day. See docs/webhooks.md.',
  }),
  MAILROOM_WEBHOOK_CONCURRENCY: setting(int(1, 1000), {
    default: '16',
    doc: 'Webhook requests one worker process has in flight at once (with MAILROOM_WEBHOOKS_FILE).',
  }),
  MAILROOM_LOG_LEVEL: setting(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), {
    default: 'info',
    doc: 'Log level. Recipient addresses appear only at `debug` and below.',
  }),
} as const;

export type WorkerSettings = SettingsValues<typeof workerSettings>;

/** The worker's configuration: validated once at start, then frozen. */
export interface WorkerConfig {
  /** MAILROOM_REDIS_URL (its default when unset); the connection is {@link redis}. */
  readonly redisUrl: string;
  /** Where Redis is: a URL, a cluster or Sentinel (MAILROOM_REDIS_*). */
  readonly redis: RedisConnectionSpec;
  readonly prefix: string;
  readonly concurrency: number;
  /** The first relay (the only one when configured by environment). */
  readonly relay: RelayConfig;
  /** Every relay, routing, domain groups, limits, adaptive throttling and circuit settings. */
  readonly routing: RoutingConfig;
  /** The SMTP client used for the relays. */
  readonly sender: SenderKind;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly configFaultPauseMs: number;
  readonly lockDurationMs: number;
  readonly stalledIntervalMs: number;
  readonly shutdownTimeoutMs: number;
  readonly ambiguityPolicy: 'resend' | 'stop';
  readonly ledgerRetentionSeconds: number;
  readonly reconcileIntervalMs: number;
  /** Campaign recipients waiting in batch jobs at which the campaign feeder stops materialising; 0 = no feeder. */
  readonly campaignHighWater: number;
  readonly watchdogMs: number;
  readonly redisAllowUnsafe: boolean;
  readonly http: { readonly host: string; readonly port: number; readonly metricsToken?: string } | null;
  /** Recipient domains with their own `domain` metric label. */
  readonly metricDomains: readonly string[];
  /** This process exports the queue gauges. */
  readonly queueGauges: boolean;
  /** VERP return paths (undefined: the From address is the envelope sender). */
  readonly verp?: VerpOptions;
  /** DKIM keys by signing domain (undefined: nothing is signed, warned at start). */
  readonly dkim?: DkimSigner;
  /** One-click unsubscribe links on campaign messages (undefined: none, warned at start). */
  readonly unsubscribe?: {
    readonly baseUrl: string;
    readonly secrets: readonly string[];
    readonly mailto?: string;
  };
  /** Webhook endpoints (empty: no webhooks; nothing is emitted or delivered). */
  readonly webhooks: readonly WebhookEndpoint[];
  readonly webhookConcurrency: number;
  readonly logLevel: string;
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** Reads and validates the worker's environment. Throws ConfigError naming every bad variable. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv): WorkerConfig {
  const hostMissing =
    !env.MAILROOM_RELAYS_FILE && !env.MAILROOM_SMTP_HOST
      ? [{ field: 'MAILROOM_SMTP_HOST', message: 'is required (or set MAILROOM_RELAYS_FILE)' }]
      : [];
  let s: WorkerSettings;
  try {
    s = loadSettings(workerSettings, env);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError([...err.issues, ...hostMissing]);
    throw err;
  }
  const issues: FieldIssue[] = [...hostMissing];
  if ((s.MAILROOM_SMTP_USER === undefined) !== (s.MAILROOM_SMTP_PASS === undefined)) {
    issues.push({
      field: 'MAILROOM_SMTP_PASS',
      message: 'MAILROOM_SMTP_USER and MAILROOM_SMTP_PASS are set together',
    });
  }
  if ((s.MAILROOM_BOUNCE_DOMAIN === undefined) !== (s.MAILROOM_VERP_SECRET === undefined)) {
    issues.push({
      field: 'MAILROOM_VERP_SECRET',
      message: 'MAILROOM_BOUNCE_DOMAIN and MAILROOM_VERP_SECRET are set together',
    });
  }
  if ((s.MAILROOM_UNSUBSCRIBE_URL === undefined) !== (s.MAILROOM_UNSUBSCRIBE_SECRETS === undefined)) {
    issues.push({
      field: 'MAILROOM_UNSUBSCRIBE_SECRETS',
      message: 'MAILROOM_UNSUBSCRIBE_URL and MAILROOM_UNSUBSCRIBE_SECRETS are set together',
    });
  }
  if (s.MAILROOM_RETRY_MAX_MS < s.MAILROOM_RETRY_BASE_MS) {
    issues.push({ field: 'MAILROOM_RETRY_MAX_MS', message: 'must not be below MAILROOM_RETRY_BASE_MS' });
  }
  if (s.MAILROOM_SMTP_TLS === 'none' && s.MAILROOM_SMTP_USER !== undefined) {
    issues.push({
      field: 'MAILROOM_SMTP_TLS',
      message: 'AUTH over a connection without TLS is refused: use starttls or tls',
    });
  }
  if (
    s.MAILROOM_HTTP_PORT >= 0 &&
    !isLoopback(s.MAILROOM_HTTP_HOST) &&
    s.MAILROOM_METRICS_TOKEN === undefined
  ) {
    issues.push({
      field: 'MAILROOM_METRICS_TOKEN',
      message: `is required when MAILROOM_HTTP_HOST (${s.MAILROOM_HTTP_HOST}) is not a loopback address`,
    });
  }
  let ca: string | undefined;
  if (s.MAILROOM_SMTP_CA_FILE !== undefined) {
    try {
      ca = readFileSync(s.MAILROOM_SMTP_CA_FILE, 'utf8');
      if (!ca.includes('-----BEGIN CERTIFICATE-----')) {
        issues.push({ field: 'MAILROOM_SMTP_CA_FILE', message: 'holds no PEM certificate' });
      }
    } catch (err) {
      issues.push({
        field: 'MAILROOM_SMTP_CA_FILE',
        message: `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      });
    }
  }
  const redis = readRedisConnectionSpec(redisConnectionSettings(s, env), issues);
  if (issues.length > 0 || redis === undefined) throw new ConfigError(issues);

  const envRelay: RelayConfig = {
    name: s.MAILROOM_RELAY_NAME,
    host: s.MAILROOM_SMTP_HOST ?? '',
    port: s.MAILROOM_SMTP_PORT,
    tlsMode: s.MAILROOM_SMTP_TLS,
    ...(s.MAILROOM_SMTP_USER !== undefined && s.MAILROOM_SMTP_PASS !== undefined
      ? { auth: { user: s.MAILROOM_SMTP_USER, pass: s.MAILROOM_SMTP_PASS } }
      : {}),
    ...(ca === undefined ? {} : { ca }),
    ...(s.MAILROOM_SMTP_TLS_SERVERNAME === undefined
      ? {}
      : { tlsServername: s.MAILROOM_SMTP_TLS_SERVERNAME }),
    verifyCertificates: s.MAILROOM_SMTP_TLS_VERIFY,
    maxConnections: s.MAILROOM_SMTP_MAX_CONNECTIONS,
    maxMessagesPerConnection: s.MAILROOM_SMTP_MAX_MESSAGES_PER_CONNECTION,
    connectionTimeoutMs: s.MAILROOM_SMTP_CONNECTION_TIMEOUT_MS,
    greetingTimeoutMs: s.MAILROOM_SMTP_GREETING_TIMEOUT_MS,
    socketTimeoutMs: s.MAILROOM_SMTP_SOCKET_TIMEOUT_MS,
    ...(s.MAILROOM_SMTP_CLIENT_NAME === undefined ? {} : { clientName: s.MAILROOM_SMTP_CLIENT_NAME }),
  };
  const dkim = s.MAILROOM_DKIM_CONFIG_FILE === undefined ? undefined : loadDkim(s.MAILROOM_DKIM_CONFIG_FILE);
  const webhooks =
    s.MAILROOM_WEBHOOKS_FILE === undefined ? [] : loadWebhookConfig(s.MAILROOM_WEBHOOKS_FILE, env);
  const verp: VerpOptions | undefined =
    s.MAILROOM_BOUNCE_DOMAIN === undefined || s.MAILROOM_VERP_SECRET === undefined
      ? undefined
      : {
          localPrefix: DEFAULT_VERP_LOCAL_PREFIX,
          domain: s.MAILROOM_BOUNCE_DOMAIN,
          secret: s.MAILROOM_VERP_SECRET,
        };
  if (verp) {
    try {
      validateVerpOptions(verp);
    } catch (err) {
      if (err instanceof ConfigError) {
        throw new ConfigError(
          err.issues.map((i) => ({ field: 'MAILROOM_BOUNCE_DOMAIN', message: i.message })),
        );
      }
      throw err;
    }
  }
  const routing =
    s.MAILROOM_RELAYS_FILE === undefined
      ? singleRelayRouting(Object.freeze(envRelay))
      : loadRoutingConfig(s.MAILROOM_RELAYS_FILE, env, {
          connectionTimeoutMs: s.MAILROOM_SMTP_CONNECTION_TIMEOUT_MS,
          greetingTimeoutMs: s.MAILROOM_SMTP_GREETING_TIMEOUT_MS,
          socketTimeoutMs: s.MAILROOM_SMTP_SOCKET_TIMEOUT_MS,
          ...(s.MAILROOM_SMTP_CLIENT_NAME === undefined ? {} : { clientName: s.MAILROOM_SMTP_CLIENT_NAME }),
        });
  return Object.freeze({
    redisUrl: s.MAILROOM_REDIS_URL,
    redis: Object.freeze(redis),
    prefix: s.MAILROOM_QUEUE_PREFIX,
    concurrency: s.MAILROOM_WORKER_CONCURRENCY,
    relay: routing.relays[0]!,
    routing,
    sender: s.MAILROOM_SMTP_SENDER,
    retryBaseMs: s.MAILROOM_RETRY_BASE_MS,
    retryMaxMs: s.MAILROOM_RETRY_MAX_MS,
    configFaultPauseMs: s.MAILROOM_CONFIG_FAULT_PAUSE_MS,
    lockDurationMs: s.MAILROOM_LOCK_DURATION_MS,
    stalledIntervalMs: s.MAILROOM_STALLED_INTERVAL_MS,
    shutdownTimeoutMs: s.MAILROOM_SHUTDOWN_TIMEOUT_MS,
    ambiguityPolicy: s.MAILROOM_AMBIGUITY_POLICY,
    ledgerRetentionSeconds: s.MAILROOM_LEDGER_RETENTION_SECONDS,
    reconcileIntervalMs: s.MAILROOM_RECONCILE_INTERVAL_MS,
    campaignHighWater: s.MAILROOM_CAMPAIGN_HIGH_WATER,
    watchdogMs: s.MAILROOM_WATCHDOG_MS,
    redisAllowUnsafe: s.MAILROOM_REDIS_ALLOW_UNSAFE,
    http:
      s.MAILROOM_HTTP_PORT < 0
        ? null
        : Object.freeze({
            host: s.MAILROOM_HTTP_HOST,
            port: s.MAILROOM_HTTP_PORT,
            ...(s.MAILROOM_METRICS_TOKEN === undefined ? {} : { metricsToken: s.MAILROOM_METRICS_TOKEN }),
          }),
    metricDomains: Object.freeze([...s.MAILROOM_METRIC_DOMAINS]),
    queueGauges: s.MAILROOM_QUEUE_GAUGES,
    ...(dkim === undefined ? {} : { dkim }),
    ...(verp === undefined ? {} : { verp }),
    ...(s.MAILROOM_UNSUBSCRIBE_URL === undefined || s.MAILROOM_UNSUBSCRIBE_SECRETS === undefined
      ? {}
      : {
          unsubscribe: Object.freeze({
            baseUrl: s.MAILROOM_UNSUBSCRIBE_URL,
            secrets: Object.freeze([...s.MAILROOM_UNSUBSCRIBE_SECRETS]),
            ...(s.MAILROOM_UNSUBSCRIBE_MAILTO === undefined ? {} : { mailto: s.MAILROOM_UNSUBSCRIBE_MAILTO }),
          }),
        }),
    webhooks,
    webhookConcurrency: s.MAILROOM_WEBHOOK_CONCURRENCY,
    logLevel: s.MAILROOM_LOG_LEVEL,
  });
}

/** Reads the DKIM key list; every problem names its entry (`MAILROOM_DKIM_CONFIG_FILE[1].privateKeyFile`). */
function loadDkim(path: string): DkimSigner {
  const field = 'MAILROOM_DKIM_CONFIG_FILE';
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([
      { field, message: code ? `cannot be read (${code})` : `is not valid JSON (${(err as Error).message})` },
    ]);
  }
  return createDkimSigner(json, { field });
}
