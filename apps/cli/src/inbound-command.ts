import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import { ConfigError, type FieldIssue } from '@mailroom/core';
import {
  DEFAULT_FEEDBACK_MAX_MESSAGE_BYTES,
  DEFAULT_VERP_LOCAL_PREFIX,
  inboundRecipientCheck,
  startFeedbackReceiver,
  validateVerpOptions,
  type FeedbackReceiver,
  type VerpOptions,
} from '@mailroom/feedback';
import {
  DEFAULT_METRIC_DOMAINS,
  Registry,
  createFeedbackMetrics,
  metricDomainProblems,
  splitMetricDomains,
} from '@mailroom/metrics';
import {
  FeedbackRecorder,
  SuppressionStore,
  asStoreConnection,
  createRedisConnection,
  readRedisConnectionSpec,
  redisConnectionSettings,
  type RedisConnectionSpec,
} from '@mailroom/queue';
import {
  feedbackWebhookEvent,
  unsubscribeWebhookEvent,
  loadWebhookConfig,
  startWebhooks,
  type WebhookEndpoint,
  type Webhooks,
} from '@mailroom/webhooks';
import {
  REDACT_PATHS,
  VERSION,
  loadSettings,
  setting,
  settingsTable,
  workerSettings,
} from '@mailroom/worker';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Every environment variable `mailroom inbound` reads. */
const inboundSettings = {
  MAILROOM_REDIS_URL: setting(z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'), {
    default: 'redis://127.0.0.1:6379',
    doc: 'Redis holding the ledger and the suppression lists (the same Redis as the workers).',
  }),
  // Cluster and Sentinel: the same settings as the workers'.
  MAILROOM_REDIS_CLUSTER: workerSettings.MAILROOM_REDIS_CLUSTER,
  MAILROOM_REDIS_SENTINELS: workerSettings.MAILROOM_REDIS_SENTINELS,
  MAILROOM_REDIS_SENTINEL_NAME: workerSettings.MAILROOM_REDIS_SENTINEL_NAME,
  MAILROOM_REDIS_USERNAME: workerSettings.MAILROOM_REDIS_USERNAME,
  MAILROOM_REDIS_PASSWORD: workerSettings.MAILROOM_REDIS_PASSWORD,
  MAILROOM_REDIS_TLS: workerSettings.MAILROOM_REDIS_TLS,
  MAILROOM_REDIS_SENTINEL_PASSWORD: workerSettings.MAILROOM_REDIS_SENTINEL_PASSWORD,
  MAILROOM_QUEUE_PREFIX: setting(
    z.string().regex(/\{[^{}]+\}/, 'must contain a hash tag such as {mailroom}'),
    { default: '{mailroom}', doc: 'Key prefix, the same as the workers and producers use.' },
  ),
  MAILROOM_INBOUND_HOST: setting(z.string().min(1), {
    default: '127.0.0.1',
    doc: 'Address the SMTP receiver listens on (`0.0.0.0` or `::` to be the MX of the bounce domain).',
  }),
  MAILROOM_INBOUND_PORT: setting(int(0, 65535), {
    default: '2525',
    doc: 'SMTP port; 0 picks a free one. An MX is reached on 25: forward 25 to it, or run with CAP_NET_BIND_SERVICE and set 25.',
  }),
  MAILROOM_BOUNCE_DOMAIN: setting(z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a domain name'), {
    required: true,
    doc: 'The domain of the VERP return paths (the MAILROOM_BOUNCE_DOMAIN of the workers); mail to any address there is taken.',
  }),
  MAILROOM_VERP_SECRET: setting(z.string().min(16, 'must be at least 16 characters'), {
    secret: true,
    required: true,
    doc: 'The MAILROOM_VERP_SECRET of the workers, to check return paths. Never logged.',
  }),
  MAILROOM_COMPLAINTS_ADDRESSES: setting(
    z.string().transform((text) =>
      text
        .split(',')
        .map((part) => part.trim())
        .filter((part) => part !== ''),
    ),
    {
      doc: 'Comma-separated addresses registered with feedback loops (Microsoft JMRP, Yahoo CFL); taken besides the bounce domain.',
    },
  ),
  MAILROOM_UNSUBSCRIBE_MAILTO: setting(z.string().email('must be an email address'), {
    doc: "The workers' MAILROOM_UNSUBSCRIBE_MAILTO (List-Unsubscribe's `mailto:`): mail to it is taken as an unsubscribe request, its token (subject `unsubscribe-<token>`, else the first line of the text) checked with MAILROOM_UNSUBSCRIBE_SECRETS. Its domain's MX must reach this receiver. Set together with MAILROOM_UNSUBSCRIBE_SECRETS.",
  }),
  MAILROOM_UNSUBSCRIBE_SECRETS: setting(
    z
      .string()
      .transform((text) =>
        text
          .split(',')
          .map((part) => part.trim())
          .filter((part) => part !== ''),
      )
      .refine((list) => list.length > 0 && list.every((secret) => secret.length >= 32), {
        message: 'must be a comma-separated list of secrets of at least 32 characters each',
      }),
    {
      secret: true,
      doc: "The workers' MAILROOM_UNSUBSCRIBE_SECRETS (the API holds the same list), to verify the tokens of unsubscribe mails. Never logged.",
    },
  ),
  MAILROOM_INBOUND_MAX_MESSAGE_BYTES: setting(int(1024, 1024 * 1024 * 1024), {
    default: String(DEFAULT_FEEDBACK_MAX_MESSAGE_BYTES),
    doc: 'Largest message taken (SIZE); larger ones get 552 5.3.4. Only the first MiB of each is read.',
  }),
  MAILROOM_INBOUND_MAX_CONNECTIONS: setting(int(1, 10_000), {
    default: '100',
    doc: 'Simultaneous SMTP connections.',
  }),
  MAILROOM_INBOUND_SERVER_NAME: setting(z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a host name'), {
    doc: 'Host name in the greeting (default: the OS host name); the name of the MX record.',
  }),
  MAILROOM_INBOUND_TLS_KEY_FILE: setting(z.string().min(1), {
    doc: 'PEM private key for STARTTLS (set together with MAILROOM_INBOUND_TLS_CERT_FILE). Without both, STARTTLS is not offered.',
  }),
  MAILROOM_INBOUND_TLS_CERT_FILE: setting(z.string().min(1), {
    doc: 'PEM certificate chain for STARTTLS.',
  }),
  MAILROOM_HTTP_HOST: setting(z.string().min(1), {
    default: '127.0.0.1',
    doc: 'Address of the /healthz, /readyz and /metrics listener.',
  }),
  MAILROOM_HTTP_PORT: setting(int(-1, 65535), {
    default: '9466',
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
      doc: 'Recipient domains with their own `domain` label, the same list as the workers use.',
    },
  ),
  MAILROOM_WEBHOOKS_FILE: setting(z.string().min(1), {
    doc: 'The webhook endpoints file of the workers (docs/webhooks.md): `bounced` (a bounce after sending), `complained` and `unsubscribed` (an unsubscribe mail) events are queued for the endpoints that take them; the workers deliver them. Unset: no events.',
  }),
  MAILROOM_LOG_LEVEL: setting(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), {
    default: 'info',
    doc: 'Log level. Recipient addresses appear only at `debug` and below.',
  }),
} as const;

/** The configuration table of docs/bounces.md: one row per variable (a test keeps the two identical). */
export function inboundSettingsTable(): string {
  return settingsTable(inboundSettings);
}

/** `mailroom inbound`'s configuration: validated once, then frozen. */
export interface InboundConfig {
  /** MAILROOM_REDIS_URL (its default when unset); the connection is {@link redis}. */
  readonly redisUrl: string;
  /** Where Redis is: a URL, a cluster or Sentinel (MAILROOM_REDIS_*). */
  readonly redis: RedisConnectionSpec;
  readonly prefix: string;
  readonly host: string;
  readonly port: number;
  readonly verp: VerpOptions;
  readonly complaintsAddresses: readonly string[];
  /** The unsubscribe mailbox (MAILROOM_UNSUBSCRIBE_MAILTO) and the secrets of its tokens; undefined: none. */
  readonly unsubscribe?: { readonly address: string; readonly secrets: readonly string[] };
  readonly maxMessageBytes: number;
  readonly maxConnections: number;
  readonly serverName?: string;
  readonly tls?: { readonly key: string; readonly cert: string };
  readonly http: { readonly host: string; readonly port: number; readonly metricsToken?: string } | null;
  readonly metricDomains: readonly string[];
  /** Webhook endpoints (MAILROOM_WEBHOOKS_FILE); empty: no events are emitted. */
  readonly webhooks: readonly WebhookEndpoint[];
  readonly logLevel: string;
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

function readPem(path: string, field: string, issues: FieldIssue[]): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    issues.push({ field, message: `cannot be read: ${(err as Error).message}` });
    return undefined;
  }
}

/** Reads and validates the environment. Throws ConfigError naming every bad variable (`MAILROOM_X`). */
export function loadInboundConfig(env: NodeJS.ProcessEnv): InboundConfig {
  const s = loadSettings(inboundSettings, env);
  const issues: FieldIssue[] = [];
  const verp: VerpOptions = {
    localPrefix: DEFAULT_VERP_LOCAL_PREFIX,
    domain: s.MAILROOM_BOUNCE_DOMAIN,
    secret: s.MAILROOM_VERP_SECRET,
  };
  const complaintsAddresses = s.MAILROOM_COMPLAINTS_ADDRESSES ?? [];
  const unsubscribeAddress = s.MAILROOM_UNSUBSCRIBE_MAILTO;
  if ((unsubscribeAddress === undefined) !== (s.MAILROOM_UNSUBSCRIBE_SECRETS === undefined)) {
    issues.push({
      field: 'MAILROOM_UNSUBSCRIBE_SECRETS',
      message: 'MAILROOM_UNSUBSCRIBE_MAILTO and MAILROOM_UNSUBSCRIBE_SECRETS are set together',
    });
  }
  for (const [check, field] of [
    [() => validateVerpOptions(verp), 'MAILROOM_BOUNCE_DOMAIN'],
    [
      () => inboundRecipientCheck(verp.domain, complaintsAddresses, unsubscribeAddress),
      'MAILROOM_COMPLAINTS_ADDRESSES',
    ],
  ] as const) {
    try {
      check();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const issue of err.issues) {
        const name =
          issue.field === 'verp.secret'
            ? 'MAILROOM_VERP_SECRET'
            : issue.field.startsWith('unsubscribeAddress')
              ? 'MAILROOM_UNSUBSCRIBE_MAILTO'
              : field;
        // The recipient check repeats a bad bounce domain; it is reported once, by the VERP check.
        if (issue.field !== 'bounceDomain') issues.push({ field: name, message: issue.message });
      }
    }
  }
  if ((s.MAILROOM_INBOUND_TLS_KEY_FILE === undefined) !== (s.MAILROOM_INBOUND_TLS_CERT_FILE === undefined)) {
    issues.push({
      field: 'MAILROOM_INBOUND_TLS_CERT_FILE',
      message: 'MAILROOM_INBOUND_TLS_KEY_FILE and MAILROOM_INBOUND_TLS_CERT_FILE are set together',
    });
  }
  let tls: { key: string; cert: string } | undefined;
  if (s.MAILROOM_INBOUND_TLS_KEY_FILE !== undefined && s.MAILROOM_INBOUND_TLS_CERT_FILE !== undefined) {
    const key = readPem(s.MAILROOM_INBOUND_TLS_KEY_FILE, 'MAILROOM_INBOUND_TLS_KEY_FILE', issues);
    const cert = readPem(s.MAILROOM_INBOUND_TLS_CERT_FILE, 'MAILROOM_INBOUND_TLS_CERT_FILE', issues);
    if (key !== undefined && cert !== undefined) tls = { key, cert };
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
  if (issues.length > 0 || redis === undefined) throw new ConfigError(issues);
  return Object.freeze({
    redisUrl: s.MAILROOM_REDIS_URL,
    redis: Object.freeze(redis),
    prefix: s.MAILROOM_QUEUE_PREFIX,
    host: s.MAILROOM_INBOUND_HOST,
    port: s.MAILROOM_INBOUND_PORT,
    verp: Object.freeze(verp),
    complaintsAddresses: Object.freeze([...complaintsAddresses]),
    ...(unsubscribeAddress === undefined || s.MAILROOM_UNSUBSCRIBE_SECRETS === undefined
      ? {}
      : {
          unsubscribe: Object.freeze({
            address: unsubscribeAddress,
            secrets: Object.freeze([...s.MAILROOM_UNSUBSCRIBE_SECRETS]),
          }),
        }),
    maxMessageBytes: s.MAILROOM_INBOUND_MAX_MESSAGE_BYTES,
    maxConnections: s.MAILROOM_INBOUND_MAX_CONNECTIONS,
    ...(s.MAILROOM_INBOUND_SERVER_NAME === undefined ? {} : { serverName: s.MAILROOM_INBOUND_SERVER_NAME }),
    ...(tls === undefined ? {} : { tls: Object.freeze(tls) }),
    http:
      s.MAILROOM_HTTP_PORT < 0
        ? null
        : Object.freeze({
            host: s.MAILROOM_HTTP_HOST,
            port: s.MAILROOM_HTTP_PORT,
            ...(s.MAILROOM_METRICS_TOKEN === undefined ? {} : { metricsToken: s.MAILROOM_METRICS_TOKEN }),
          }),
    metricDomains: Object.freeze([...s.MAILROOM_METRIC_DOMAINS]),
    webhooks,
    logLevel: s.MAILROOM_LOG_LEVEL,
  });
}

/** A running `mailroom inbound`: the SMTP receiver, its Redis and its HTTP listener. */
export interface InboundService {
  readonly receiver: FeedbackReceiver;
  /** `http://host:port` of /healthz, /readyz and /metrics, when enabled. */
  readonly httpUrl?: string;
  readonly registry: Registry;
  /** The webhook emitter's side (MAILROOM_WEBHOOKS_FILE): events are queued here, delivered by the workers. */
  readonly webhooks?: Webhooks;
  /** Stops taking mail, lets the reports being recorded finish, closes the listener and Redis. */
  close(): Promise<void>;
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** /healthz (alive), /readyz (Redis answers), /metrics (behind the token when one is set). */
async function startHttp(
  options: { host: string; port: number; metricsToken?: string },
  registry: Registry,
  ready: () => Promise<boolean>,
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    if (path === '/healthz') return send(200, 'ok\n');
    if (path === '/readyz') {
      ready().then(
        (ok) => send(ok ? 200 : 503, ok ? 'ready\n' : 'not ready\n'),
        () => send(503, 'not ready\n'),
      );
      return;
    }
    if (path === '/metrics') {
      if (
        options.metricsToken !== undefined &&
        !tokenMatches(req.headers.authorization, options.metricsToken)
      ) {
        res.setHeader('www-authenticate', 'Bearer');
        return send(401, 'unauthorized\n');
      }
      registry.metrics().then(
        (text) => send(200, text, registry.contentType),
        () => send(500, 'metrics unavailable\n'),
      );
      return;
    }
    send(404, 'not found\n');
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { url: `http://${host}:${address.port}`, server };
}

export function createInboundLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, app: 'mailroom-inbound' },
      redact: { paths: [...REDACT_PATHS, 'secret', '*.secret'], censor: '[redacted]' },
    },
    destination ?? process.stdout,
  );
}

/**
 * Starts the receiver: Redis (checked with a PING first), the recorder, the metrics, the SMTP listener and
 * the HTTP listener. Rejects when Redis does not answer or a port cannot be bound.
 */
export async function startInbound(config: InboundConfig, deps: { logger: Logger }): Promise<InboundService> {
  const log = deps.logger;
  // A report whose recording fails is answered 451 and comes again: fail a command after a few retries
  // instead of holding the sender's transaction while Redis is away.
  const redis = asStoreConnection(
    createRedisConnection(config.redis, {
      maxRetriesPerRequest: 2,
      connectTimeout: 5000,
      connectionName: 'mailroom:inbound',
    }),
  );
  redis.on('error', (err) => log.warn({ err: { message: err.message } }, 'redis connection error'));
  try {
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  const registry = new Registry();
  const metrics = createFeedbackMetrics({ registry, domains: config.metricDomains });
  const recorder = new FeedbackRecorder(redis, { prefix: config.prefix });
  const suppressions = new SuppressionStore(redis, config.prefix);
  // `bounced`, `complained` and `unsubscribed` events are only queued here (never waiting for Redis, never
  // failing the recording); the workers' dispatchers deliver them.
  let webhooks: Webhooks | undefined;
  if (config.webhooks.length > 0) {
    try {
      webhooks = await startWebhooks({
        redis,
        prefix: config.prefix,
        endpoints: config.webhooks,
        registry,
        logger: log.child({ component: 'webhooks' }),
        dispatch: false,
      });
    } catch (err) {
      redis.disconnect();
      throw err;
    }
  }
  const emitter = webhooks?.emitter;
  let receiver: FeedbackReceiver;
  try {
    receiver = await startFeedbackReceiver({
      verp: config.verp,
      complaintsAddresses: config.complaintsAddresses,
      record: async (event) => {
        const recording = await recorder.record(event);
        if (webhooks !== undefined) {
          try {
            const webhookEvent = feedbackWebhookEvent(event, recording);
            if (webhookEvent !== undefined) emitter?.emit(webhookEvent);
          } catch (err) {
            webhooks.metrics.dropped.inc({ reason: 'error' });
            log.warn({ err: { message: (err as Error).message } }, 'webhook event not emitted');
          }
        }
        return recording;
      },
      ...(config.unsubscribe === undefined
        ? {}
        : {
            unsubscribe: {
              address: config.unsubscribe.address,
              secrets: config.unsubscribe.secrets,
              // What the API's POST /u/:token does with the same token: the address on its scope's
              // list, reason `unsubscribe`; the event only when the address is new there (a second mail
              // adds nobody).
              record: async (token) => {
                const added = await suppressions.add(token.scope, [
                  { address: token.address, reason: 'unsubscribe', source: `list:${token.list}` },
                ]);
                if (added > 0 && webhooks !== undefined) {
                  try {
                    emitter?.emit(unsubscribeWebhookEvent(token, 'mailto'));
                  } catch (err) {
                    webhooks.metrics.dropped.inc({ reason: 'error' });
                    log.warn({ err: { message: (err as Error).message } }, 'unsubscribed event not emitted');
                  }
                }
                return added > 0 ? 'unsubscribed' : 'already_suppressed';
              },
            },
          }),
      host: config.host,
      port: config.port,
      maxMessageBytes: config.maxMessageBytes,
      maxConnections: config.maxConnections,
      ...(config.serverName === undefined ? {} : { serverName: config.serverName }),
      ...(config.tls === undefined ? {} : { tls: config.tls }),
      metrics,
      logger: log.child({ component: 'receiver' }),
    });
  } catch (err) {
    await webhooks?.close(1000);
    redis.disconnect();
    throw err;
  }
  let http: { url: string; server: Server } | undefined;
  if (config.http !== null) {
    try {
      http = await startHttp(config.http, registry, async () => (await redis.ping()) === 'PONG');
    } catch (err) {
      await receiver.close();
      await webhooks?.close(1000);
      redis.disconnect();
      throw err;
    }
  }
  log.info(
    {
      version: VERSION,
      host: receiver.host,
      port: receiver.port,
      bounceDomain: config.verp.domain,
      complaintsAddresses: config.complaintsAddresses.length,
      unsubscribeMailto: config.unsubscribe !== undefined,
      starttls: config.tls !== undefined,
      http: http?.url,
      webhookEndpoints: config.webhooks.length,
    },
    'inbound started',
  );
  let closing: Promise<void> | undefined;
  return {
    receiver,
    registry,
    ...(webhooks === undefined ? {} : { webhooks }),
    ...(http === undefined ? {} : { httpUrl: http.url }),
    close: () => {
      closing ??= (async () => {
        await receiver.close();
        // What the last reports emitted is written before the connection goes.
        await webhooks?.close();
        if (http) {
          const server = http.server;
          await new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          });
        }
        await redis.quit().catch(() => redis.disconnect());
        log.info({ stats: receiver.stats }, 'inbound stopped');
      })();
      return closing;
    },
  };
}

/**
 * Runs `mailroom inbound` from the environment until SIGTERM or SIGINT. Invalid configuration prints one
 * line per problem, `MAILROOM_X: reason`, and exits 1.
 */
export async function runInboundFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config: InboundConfig;
  try {
    config = loadInboundConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) process.stderr.write(`${issue.field}: ${issue.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
  const logger = createInboundLogger(config.logLevel);
  let service: InboundService;
  try {
    service = await startInbound(config, { logger });
  } catch (err) {
    logger.error({ err: { message: (err as Error).message } }, 'inbound could not start');
    process.exitCode = 1;
    return;
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ signal }, 'signal received');
    service.close().then(
      () => {
        process.exitCode = 0;
      },
      (err: unknown) => {
        logger.error({ err: { message: (err as Error).message } }, 'error while stopping');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Registers `mailroom inbound`: receives bounces, complaints and unsubscribe mails (docs/bounces.md). */
export function registerInboundCommand(program: Command): void {
  program
    .command('inbound')
    .description(
      'receive bounces, complaints and unsubscribe mails over SMTP (the MX of the bounce domain), configured from MAILROOM_* variables (see docs/bounces.md)',
    )
    .action(async () => {
      await runInboundFromEnv(process.env);
    });
}
