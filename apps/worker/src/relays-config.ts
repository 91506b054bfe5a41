import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, type FieldIssue } from '@mailroom/core';
import type { RelayConfig, TlsMode } from '@mailroom/smtp';
import type { AdaptiveOptions, Quota } from '@mailroom/queue';

/** Limits of one scope (a relay, a domain group, a campaign), as the relays file writes them. */
export interface ScopeLimits {
  /** Messages per second, paced evenly; no 1-second window ever holds more. */
  readonly perSecond?: number;
  /** Burst tolerance of the pacing in ms (default: 50 ms or two emission intervals, whichever is longer). */
  readonly burstMs?: number;
  /** Fixed windows aligned to UTC: perHour, perDay, and any other window length. */
  readonly quotas: readonly Quota[];
}

/** A relay with what the worker needs besides its connection: weight, routing, limits. */
export interface RelayDefinition extends RelayConfig {
  /** Share of the traffic among the relays a message may use (smooth weighted round robin). */
  readonly weight: number;
  readonly limits: ScopeLimits;
  /** Messages whose From domain is listed, or that carry a listed tag, go to this relay (and the others
   * that list them). Relays without routing rules take everything else. */
  readonly route: { readonly senderDomains: readonly string[]; readonly tags: readonly string[] };
}

/** A group of recipient domains limited together (one mailbox provider). */
export interface DomainGroup {
  readonly name: string;
  readonly domains: readonly string[];
  readonly limits: ScopeLimits;
  /** Sends to this group in flight at once in one worker process (undefined: no local bound). */
  readonly maxConcurrency?: number;
}

/** Everything about relays, routing and limits. */
export interface RoutingConfig {
  readonly relays: readonly RelayDefinition[];
  readonly domainGroups: readonly DomainGroup[];
  /** Domains in no group: limited per domain (`per-domain`) or all together as `other`. */
  readonly ungrouped: { readonly scope: 'per-domain' | 'other'; readonly limits: ScopeLimits };
  /** Limits applied to each campaign on its own (e.g. to keep one big newsletter from starving others). */
  readonly campaignLimits: ScopeLimits;
  readonly adaptive: AdaptiveOptions & {
    /** The rate a scope without a configured rate starts from when throttled (messages per second). */
    readonly basePerSecond: number;
  };
  readonly circuit: {
    /** Consecutive connection, TLS or AUTH failures that open a relay's circuit. */
    readonly failureThreshold: number;
    /** How long an open circuit stays open before a probe (doubles on each failed probe, at most 16x). */
    readonly openMs: number;
  };
}

/**
 * Recipient domains grouped by mailbox provider when the relays file names no groups: adaptive throttling
 * then works per provider out of the box (no limits until a provider says slow down).
 */
export const DEFAULT_DOMAIN_GROUPS: Readonly<Record<string, readonly string[]>> = {
  gmail: ['gmail.com', 'googlemail.com'],
  microsoft: ['outlook.com', 'hotmail.com', 'live.com', 'msn.com', 'hotmail.co.uk', 'outlook.fr', 'live.fr'],
  yahoo: ['yahoo.com', 'ymail.com', 'rocketmail.com', 'aol.com', 'yahoo.co.uk', 'yahoo.fr'],
  apple: ['icloud.com', 'me.com', 'mac.com'],
};

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$/;
const name = z.string().regex(NAME, 'must be 1-32 of a-z 0-9 _ - (it becomes a metric label)');
const domain = z
  .string()
  .transform((d) => d.toLowerCase())
  .refine((d) => DOMAIN.test(d), 'must be a domain name');

const limitsSchema = z
  .object({
    perSecond: z.number().positive().max(100_000).optional(),
    burstMs: z.number().int().min(0).max(60_000).optional(),
    perHour: z.number().int().positive().optional(),
    perDay: z.number().int().positive().optional(),
    quotas: z
      .array(
        z
          .object({
            limit: z.number().int().positive(),
            windowSeconds: z
              .number()
              .int()
              .min(1)
              .max(31 * 86400),
          })
          .strict(),
      )
      .max(8)
      .optional(),
  })
  .strict();

const relaySchema = z
  .object({
    name,
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(587),
    tls: z.enum(['starttls', 'tls', 'none']).default('starttls'),
    user: z.string().min(1).optional(),
    /** The password inline (discouraged) ... */
    pass: z.string().min(1).optional(),
    /** ... or the name of the environment variable holding it. */
    passEnv: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name')
      .optional(),
    caFile: z.string().min(1).optional(),
    tlsServername: z.string().min(1).optional(),
    tlsVerify: z.boolean().default(true),
    weight: z.number().int().min(1).max(1000).default(1),
    maxConnections: z.number().int().min(1).max(1000).default(5),
    maxMessagesPerConnection: z.number().int().min(1).max(1_000_000).default(1000),
    limits: limitsSchema.optional(),
    route: z
      .object({
        senderDomains: z.array(domain).max(1000).default([]),
        tags: z
          .array(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be a tag'))
          .max(100)
          .default([]),
      })
      .strict()
      .optional(),
  })
  .strict();

const fileSchema = z
  .object({
    relays: z.array(relaySchema).min(1).max(32),
    domainGroups: z
      .record(
        name,
        z
          .object({
            domains: z.array(domain).min(1).max(10_000),
            limits: limitsSchema.optional(),
            maxConcurrency: z.number().int().min(1).max(10_000).optional(),
          })
          .strict(),
      )
      .optional(),
    ungroupedDomains: z
      .object({
        scope: z.enum(['per-domain', 'other']).default('per-domain'),
        limits: limitsSchema.optional(),
      })
      .strict()
      .optional(),
    campaigns: z.object({ limits: limitsSchema.optional() }).strict().optional(),
    adaptive: z
      .object({
        decrease: z.number().gt(0).lt(1).optional(),
        recoverPerSecond: z.number().gt(0).max(1).optional(),
        minFactor: z.number().gt(0).max(1).optional(),
        cooldownMs: z.number().int().min(0).max(600_000).optional(),
        basePerSecond: z.number().positive().max(100_000).optional(),
      })
      .strict()
      .optional(),
    circuit: z
      .object({
        failureThreshold: z.number().int().min(1).max(100).optional(),
        openMs: z.number().int().min(100).max(3_600_000).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type RelaysFile = z.input<typeof fileSchema>;

/** Connection settings shared by every relay (from the environment). */
export interface SharedRelaySettings {
  readonly connectionTimeoutMs: number;
  readonly greetingTimeoutMs: number;
  readonly socketTimeoutMs: number;
  readonly clientName?: string;
}

function toLimits(l: z.output<typeof limitsSchema> | undefined): ScopeLimits {
  const quotas: Quota[] = [];
  if (l?.perHour !== undefined) quotas.push({ limit: l.perHour, windowSeconds: 3600 });
  if (l?.perDay !== undefined) quotas.push({ limit: l.perDay, windowSeconds: 86400 });
  for (const q of l?.quotas ?? []) quotas.push(q);
  return {
    ...(l?.perSecond === undefined ? {} : { perSecond: l.perSecond }),
    ...(l?.burstMs === undefined ? {} : { burstMs: l.burstMs }),
    quotas,
  };
}

function fieldOf(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

/**
 * Reads and validates a relays file (JSON). Every problem is reported with its path, e.g.
 * `MAILROOM_RELAYS_FILE relays[1].limits.perSecond: ...`. Passwords come from `passEnv` variables of `env`.
 */
export function loadRoutingConfig(
  path: string,
  env: NodeJS.ProcessEnv,
  shared: SharedRelaySettings,
): RoutingConfig {
  const field = 'MAILROOM_RELAYS_FILE';
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
  return parseRoutingConfig(json, env, shared);
}

/** Validates a relays document already parsed (see loadRoutingConfig). */
export function parseRoutingConfig(
  json: unknown,
  env: NodeJS.ProcessEnv,
  shared: SharedRelaySettings,
): RoutingConfig {
  const field = 'MAILROOM_RELAYS_FILE';
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => ({ field: `${field} ${fieldOf(i.path)}`, message: i.message })),
    );
  }
  const file = parsed.data;
  const issues: FieldIssue[] = [];
  const seen = new Set<string>();
  const relays: RelayDefinition[] = file.relays.map((r, i) => {
    const at = `${field} relays[${i}]`;
    if (seen.has(r.name)) issues.push({ field: `${at}.name`, message: `"${r.name}" is used twice` });
    seen.add(r.name);
    let pass = r.pass;
    if (r.passEnv !== undefined) {
      pass = env[r.passEnv];
      if (pass === undefined || pass === '') {
        issues.push({ field: `${at}.passEnv`, message: `names ${r.passEnv}, which is not set` });
      }
    }
    if ((r.user === undefined) !== (pass === undefined)) {
      issues.push({ field: `${at}.user`, message: 'user and pass (or passEnv) are set together' });
    }
    if (r.tls === 'none' && r.user !== undefined) {
      issues.push({ field: `${at}.tls`, message: 'AUTH over a connection without TLS is refused' });
    }
    let ca: string | undefined;
    if (r.caFile !== undefined) {
      try {
        ca = readFileSync(r.caFile, 'utf8');
        if (!ca.includes('-----BEGIN CERTIFICATE-----')) {
          issues.push({ field: `${at}.caFile`, message: 'holds no PEM certificate' });
        }
      } catch (err) {
        issues.push({
          field: `${at}.caFile`,
          message: `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        });
      }
    }
    const tlsMode: TlsMode = r.tls;
    return Object.freeze({
      name: r.name,
      host: r.host,
      port: r.port,
      tlsMode,
      ...(r.user !== undefined && pass !== undefined ? { auth: { user: r.user, pass } } : {}),
      ...(ca === undefined ? {} : { ca }),
      ...(r.tlsServername === undefined ? {} : { tlsServername: r.tlsServername }),
      verifyCertificates: r.tlsVerify,
      maxConnections: r.maxConnections,
      maxMessagesPerConnection: r.maxMessagesPerConnection,
      connectionTimeoutMs: shared.connectionTimeoutMs,
      greetingTimeoutMs: shared.greetingTimeoutMs,
      socketTimeoutMs: shared.socketTimeoutMs,
      ...(shared.clientName === undefined ? {} : { clientName: shared.clientName }),
      weight: r.weight,
      limits: toLimits(r.limits),
      route: { senderDomains: r.route?.senderDomains ?? [], tags: r.route?.tags ?? [] },
    });
  });
  if (!relays.some((r) => r.route.senderDomains.length === 0 && r.route.tags.length === 0)) {
    issues.push({
      field: `${field} relays`,
      message: 'at least one relay must have no route rules: it takes the mail no rule matches',
    });
  }
  type GroupInput = {
    domains: string[];
    limits?: z.output<typeof limitsSchema> | undefined;
    maxConcurrency?: number | undefined;
  };
  const groups: [string, GroupInput][] = file.domainGroups
    ? Object.entries(file.domainGroups)
    : Object.entries(DEFAULT_DOMAIN_GROUPS).map(([g, d]) => [g, { domains: [...d] }]);
  const owner = new Map<string, string>();
  const domainGroups: DomainGroup[] = groups.map(([groupName, g]) => {
    for (const d of g.domains) {
      const other = owner.get(d);
      if (other !== undefined && other !== groupName) {
        issues.push({
          field: `${field} domainGroups.${groupName}.domains`,
          message: `${d} is already in group ${other}`,
        });
      }
      owner.set(d, groupName);
    }
    return Object.freeze({
      name: groupName,
      domains: g.domains,
      limits: toLimits(g.limits),
      ...(g.maxConcurrency === undefined ? {} : { maxConcurrency: g.maxConcurrency }),
    });
  });
  if (domainGroups.some((g) => g.name === 'other')) {
    issues.push({
      field: `${field} domainGroups.other`,
      message: '"other" is reserved for ungrouped domains',
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return Object.freeze({
    relays: Object.freeze(relays),
    domainGroups: Object.freeze(domainGroups),
    ungrouped: {
      scope: file.ungroupedDomains?.scope ?? 'per-domain',
      limits: toLimits(file.ungroupedDomains?.limits),
    },
    campaignLimits: toLimits(file.campaigns?.limits),
    adaptive: {
      decrease: file.adaptive?.decrease ?? 0.5,
      recoverPerSecond: file.adaptive?.recoverPerSecond ?? 0.01,
      minFactor: file.adaptive?.minFactor ?? 0.1,
      cooldownMs: file.adaptive?.cooldownMs ?? 2000,
      basePerSecond: file.adaptive?.basePerSecond ?? 200,
    },
    circuit: {
      failureThreshold: file.circuit?.failureThreshold ?? 3,
      openMs: file.circuit?.openMs ?? 30_000,
    },
  });
}

/** The routing of a worker configured by environment alone: one relay, default groups, no limits. */
export function singleRelayRouting(relay: RelayConfig): RoutingConfig {
  const none: ScopeLimits = { quotas: [] };
  return Object.freeze({
    relays: [Object.freeze({ ...relay, weight: 1, limits: none, route: { senderDomains: [], tags: [] } })],
    domainGroups: Object.entries(DEFAULT_DOMAIN_GROUPS).map(([groupName, domains]) => ({
      name: groupName,
      domains,
      limits: none,
    })),
    ungrouped: { scope: 'per-domain' as const, limits: none },
    campaignLimits: none,
    adaptive: { decrease: 0.5, recoverPerSecond: 0.01, minFactor: 0.1, cooldownMs: 2000, basePerSecond: 200 },
    circuit: { failureThreshold: 3, openMs: 30_000 },
  });
}
