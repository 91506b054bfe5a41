import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError, type FieldIssue } from '@mailroom/core';
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from './webhook-event.js';

/** One configured receiver, validated and frozen. */
export interface WebhookEndpoint {
  /** The endpoint's name in logs and metric labels (never the URL). */
  readonly name: string;
  /** Where events are posted. Never logged (it may carry a token in its query). */
  readonly url: string;
  /**
   * Signing secrets, the first being the current one; every one signs each request (rotation). Not
   * enumerable, so that logging the endpoint object cannot print them.
   */
  readonly secrets: readonly string[];
  /** The event types this endpoint receives. */
  readonly events: ReadonlySet<WebhookEventType>;
  /** One request's time limit, response included, ms. */
  readonly timeoutMs: number;
  /** Events in one request at most. */
  readonly maxEventsPerRequest: number;
  /** A delivery is retried until it is this old, ms; then it fails and is kept for inspection. */
  readonly retryForMs: number;
}

/** The variable that names the file; problems are reported as `MAILROOM_WEBHOOKS_FILE [1].url: ...`. */
export const WEBHOOKS_FILE_VARIABLE = 'MAILROOM_WEBHOOKS_FILE';

export const WEBHOOK_DEFAULTS = Object.freeze({
  timeoutMs: 10_000,
  maxEventsPerRequest: 100,
  retryHours: 24,
});

/** At least 32 characters: `openssl rand -hex 32` gives 64. */
const MIN_SECRET_CHARS = 32;
const MAX_ENDPOINTS = 32;
const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

function isLoopbackHost(hostname: string): boolean {
  if (hostname === 'localhost') return true;
  if (hostname === '[::1]') return true;
  return isIP(hostname) === 4 && hostname.startsWith('127.');
}

// Messages never repeat the URL: it may hold credentials or a token.
const urlSchema = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not a URL' });
    return;
  }
  if (url.username !== '' || url.password !== '') {
    ctx.addIssue({
      code: 'custom',
      message: 'must not carry credentials (user:password@); receivers authenticate requests by signature',
    });
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    ctx.addIssue({ code: 'custom', message: 'must be https (http only for a loopback host)' });
  } else if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    ctx.addIssue({ code: 'custom', message: 'must be https (http only for a loopback host)' });
  }
  if (url.hash !== '') ctx.addIssue({ code: 'custom', message: 'must not have a #fragment' });
});

const secret = z.string().min(MIN_SECRET_CHARS, `must be at least ${MIN_SECRET_CHARS} characters`);

const endpointSchema = z
  .object({
    name: z.string().regex(NAME, 'must be 1-32 of a-z 0-9 _ - (it becomes a metric label)'),
    url: urlSchema,
    /** The secret inline, or several during a rotation (the first is the new one). */
    secret: z.union([secret, z.array(secret).min(1).max(4)]).optional(),
    /** ... or the name of the environment variable holding it (several: comma-separated). */
    secretEnv: z.string().regex(ENV_NAME, 'must be an environment variable name').optional(),
    events: z.array(z.enum(WEBHOOK_EVENT_TYPES)).min(1).optional(),
    timeoutMs: z.number().int().min(100).max(60_000).optional(),
    // 200 ids in Mailroom-Event-Id make a 7.4 KB header line, under the common 8 KB limit of proxies.
    maxEventsPerRequest: z.number().int().min(1).max(200).optional(),
    retryHours: z.number().positive().max(72).optional(),
  })
  .strict();

const fileSchema = z.array(endpointSchema).max(MAX_ENDPOINTS);

export type WebhooksFile = z.input<typeof fileSchema>;

function fieldOf(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

/**
 * Reads and validates the webhooks file (JSON): `[{ name, url, secret | secretEnv, events?, timeoutMs?,
 * maxEventsPerRequest?, retryHours? }]`. Every problem names its path (`MAILROOM_WEBHOOKS_FILE [0].url: must
 * be https ...`); secrets named by `secretEnv` are read from `env`.
 */
export function loadWebhookConfig(path: string, env: NodeJS.ProcessEnv): readonly WebhookEndpoint[] {
  const field = WEBHOOKS_FILE_VARIABLE;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([
      { field, message: `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})` },
    ]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([{ field, message: `is not valid JSON (${(err as Error).message})` }]);
  }
  return parseWebhookConfig(json, env);
}

/** Validates a webhooks document already parsed (see {@link loadWebhookConfig}). */
export function parseWebhookConfig(json: unknown, env: NodeJS.ProcessEnv): readonly WebhookEndpoint[] {
  const field = WEBHOOKS_FILE_VARIABLE;
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => ({
        field: `${field} ${fieldOf(i.path)}`.trimEnd(),
        message: i.message,
      })),
    );
  }
  const issues: FieldIssue[] = [];
  const seen = new Set<string>();
  const endpoints = parsed.data.map((e, i) => {
    const at = `${field} [${i}]`;
    if (seen.has(e.name)) issues.push({ field: `${at}.name`, message: `"${e.name}" is used twice` });
    seen.add(e.name);
    let secrets: string[] = [];
    if ((e.secret === undefined) === (e.secretEnv === undefined)) {
      issues.push({ field: `${at}.secret`, message: 'set exactly one of secret and secretEnv' });
    } else if (e.secret !== undefined) {
      secrets = typeof e.secret === 'string' ? [e.secret] : e.secret;
    } else if (e.secretEnv !== undefined) {
      const value = env[e.secretEnv];
      if (value === undefined || value.trim() === '') {
        issues.push({ field: `${at}.secretEnv`, message: `names ${e.secretEnv}, which is not set` });
      } else {
        secrets = value.split(',').map((s) => s.trim());
        if (secrets.some((s) => s.length < MIN_SECRET_CHARS)) {
          issues.push({
            field: `${at}.secretEnv`,
            message: `${e.secretEnv}: each secret must be at least ${MIN_SECRET_CHARS} characters`,
          });
        }
      }
    }
    const endpoint = {
      name: e.name,
      url: e.url,
      events: new Set<WebhookEventType>(e.events ?? WEBHOOK_EVENT_TYPES),
      timeoutMs: e.timeoutMs ?? WEBHOOK_DEFAULTS.timeoutMs,
      maxEventsPerRequest: e.maxEventsPerRequest ?? WEBHOOK_DEFAULTS.maxEventsPerRequest,
      retryForMs: Math.round((e.retryHours ?? WEBHOOK_DEFAULTS.retryHours) * 3_600_000),
    };
    Object.defineProperty(endpoint, 'secrets', { value: Object.freeze(secrets), enumerable: false });
    return Object.freeze(endpoint as unknown as WebhookEndpoint);
  });
  if (issues.length > 0) throw new ConfigError(issues);
  return Object.freeze(endpoints);
}

/** An endpoint built in code (tests, embedding); the same checks as the file, the same defaults. */
export function webhookEndpoint(input: WebhooksFile[number]): WebhookEndpoint {
  const [endpoint] = parseWebhookConfig([input], {});
  return endpoint!;
}
