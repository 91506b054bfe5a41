import type { Writable } from 'node:stream';
import { ConfigError } from '@mailroom/core';
import {
  DEFAULT_PREFIX,
  RateLimiter,
  asStoreConnection,
  createMailQueue,
  createRedisConnection,
  type RedisTarget,
} from '@mailroom/queue';
import { loadRoutingConfig, type RoutingConfig } from '@mailroom/worker';

export interface StatusFlags {
  /** Redis: a URL, or a cluster or Sentinel spec (from MAILROOM_REDIS_*). */
  redisUrl: RedisTarget;
  prefix?: string;
  /** The workers' relays file, to show configured limits next to the rates in force. */
  relaysFile?: string;
}

const SHARED = { connectionTimeoutMs: 1, greetingTimeoutMs: 1, socketTimeoutMs: 1 };

function rate(perSecond: number | undefined): string {
  return perSecond === undefined ? 'unlimited' : `${Number(perSecond.toFixed(2))}/s`;
}

/**
 * `mailroom status`: the queue (jobs by state) and the rate limits in force cluster-wide: every limited or
 * throttled relay and domain group with its configured rate and the rate after adaptive cuts.
 */
export async function statusCommand(flags: StatusFlags, out: Writable, err: Writable): Promise<number> {
  let routing: RoutingConfig | undefined;
  if (flags.relaysFile !== undefined) {
    try {
      routing = loadRoutingConfig(flags.relaysFile, process.env, SHARED);
    } catch (e) {
      if (e instanceof ConfigError) {
        for (const issue of e.issues) err.write(`${issue.field}: ${issue.message}\n`);
        return 2;
      }
      throw e;
    }
  }
  const prefix = flags.prefix ?? DEFAULT_PREFIX;
  const redis = asStoreConnection(
    createRedisConnection(flags.redisUrl, {
      maxRetriesPerRequest: 1,
      connectTimeout: 3000,
      lazyConnect: true,
    }),
  );
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const queue = createMailQueue(redis, { prefix });
    try {
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed');
      out.write(
        `queue: ${Object.entries(counts)
          .map(([state, n]) => `${state} ${n}`)
          .join(', ')}\n`,
      );
    } finally {
      await queue.close();
    }
    const cut = await new RateLimiter(redis, prefix).cutScopes();
    const rows: string[][] = [['scope', 'configured', 'now', 'factor']];
    const shown = new Set<string>();
    const row = (scope: string, configured: number | undefined, base: number) => {
      const factor = cut.get(scope) ?? 1;
      const effective = configured ?? (factor < 1 ? base : undefined);
      rows.push([
        scope,
        rate(configured),
        rate(effective === undefined ? undefined : effective * factor),
        factor.toFixed(3),
      ]);
      shown.add(scope);
    };
    if (routing) {
      const base = routing.adaptive.basePerSecond;
      for (const r of routing.relays) row(`relay:${r.name}`, r.limits.perSecond, base);
      for (const g of routing.domainGroups) row(`group:${g.name}`, g.limits.perSecond, base);
      row('group:other', routing.ungrouped.limits.perSecond, base);
    }
    for (const [scope, factor] of cut) {
      if (!shown.has(scope)) rows.push([scope, '?', '?', factor.toFixed(3)]);
    }
    if (rows.length === 1) {
      out.write('rate limits: none configured here (pass --relays-file) and no scope throttled\n');
    } else {
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows)
        out.write(
          `${r
            .map((c, i) => c.padEnd(widths[i]!))
            .join('  ')
            .trimEnd()}\n`,
        );
    }
    return 0;
  } catch (e) {
    err.write(`cannot read status from Redis: ${(e as Error).message}\n`);
    return 1;
  } finally {
    redis.disconnect();
  }
}
