import type { Redis } from 'ioredis';
import { LuaScript } from './lua-script.js';
import { ACQUIRE_SEND_SLOT, READ_CUT_SCOPES, THROTTLE_SCOPE } from './rate-limit-scripts.js';

const scripts = {
  acquire: new LuaScript('acquireSendSlot', ACQUIRE_SEND_SLOT),
  throttle: new LuaScript('throttleScope', THROTTLE_SCOPE),
  cutScopes: new LuaScript('readCutScopes', READ_CUT_SCOPES),
};

/** A fixed-window quota: at most `limit` sends per window of `windowSeconds`, windows aligned to the epoch. */
export interface Quota {
  readonly limit: number;
  readonly windowSeconds: number;
}

/**
 * One limited scope, e.g. `relay:ses`, `group:gmail`, `domain:example.org`, `campaign:<id>`. The name goes
 * into Redis keys only (never into metric labels).
 */
export interface LimitScope {
  readonly name: string;
  /** Messages per second; undefined = no rate (quotas and adaptive cuts may still apply). */
  readonly perSecond?: number | undefined;
  /** Burst tolerance of the pacing, in ms (default: max(100 ms, 4 emission intervals)). */
  readonly burstMs?: number | undefined;
  readonly quotas?: readonly Quota[] | undefined;
  /**
   * The rate a scope without `perSecond` starts from when a throttling reply cuts it (it stays unlimited
   * until then, and again once it has recovered).
   */
  readonly adaptiveBasePerSecond?: number | undefined;
}

/** How throttling replies change a scope's rate. */
export interface AdaptiveOptions {
  /** Multiplier on a throttling reply (default 0.5). */
  readonly decrease: number;
  /** Recovery of the factor per second (default 0.01: from half rate to full in 50 s). */
  readonly recoverPerSecond: number;
  /** The factor never goes below this (default 0.05). */
  readonly minFactor: number;
  /** Throttling replies within this long after a cut count as the same event (default 2000 ms). */
  readonly cooldownMs: number;
}

export const DEFAULT_ADAPTIVE: AdaptiveOptions = {
  decrease: 0.5,
  recoverPerSecond: 0.01,
  minFactor: 0.05,
  cooldownMs: 2000,
};

export type AcquireResult =
  | {
      readonly allowed: true;
      /** The Redis server time of the grant (ms since the epoch). */
      readonly at: number;
    }
  | {
      readonly allowed: false;
      /** When the message may try again (ms from now): its own slot, not a moment shared with others. */
      readonly waitMs: number;
      /** The scope that held it back. */
      readonly scope: string;
      /** `short`: the slot frees within the short wait asked for; nothing was reserved, ask again then. */
      readonly kind: 'rate' | 'quota' | 'short';
    };

/** Limits shared by every worker through Redis (see rate-limit-scripts.ts for the algorithm). */
export class RateLimiter {
  private readonly adaptive: AdaptiveOptions;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    adaptive: Partial<AdaptiveOptions> = {},
  ) {
    this.adaptive = { ...DEFAULT_ADAPTIVE, ...adaptive };
  }

  private key(scope: string, part: string): string {
    return `${this.prefix}:rl:${scope}:${part}`;
  }

  /**
   * Takes a send slot under every scope at once, or tells how long to hold the message. A rate wait of at
   * most `shortWaitMs` comes back as `short` without a reservation.
   */
  async acquire(scopes: readonly LimitScope[], now = Date.now(), shortWaitMs = 0): Promise<AcquireResult> {
    const keys: string[] = [];
    const quotaKeys: string[] = [];
    const args: (string | number)[] = [now, scopes.length, this.adaptive.recoverPerSecond, shortWaitMs];
    for (const scope of scopes) {
      keys.push(
        this.key(scope.name, 'tat'),
        this.key(scope.name, 'log'),
        this.key(scope.name, 'sched'),
        this.key(scope.name, 'adapt'),
      );
      const adaptiveOnly = scope.perSecond === undefined;
      const rate = scope.perSecond ?? scope.adaptiveBasePerSecond ?? 0;
      const tau = scope.burstMs ?? (rate > 0 ? Math.max(100, 4000 / rate) : 0);
      const quotas = scope.quotas ?? [];
      args.push(rate, adaptiveOnly ? '1' : '0', tau, quotas.length);
      for (const quota of quotas) {
        const windowMs = quota.windowSeconds * 1000;
        const index = Math.floor(now / windowMs);
        quotaKeys.push(this.key(scope.name, `q${quota.windowSeconds}:${index}`));
        args.push(quota.limit, (index + 1) * windowMs);
      }
    }
    const result = (await scripts.acquire.run(this.redis, [...keys, ...quotaKeys], args)) as [
      number,
      (number | string)?,
      string?,
    ];
    if (result[0] === 0) return { allowed: true, at: Number(result[1]) };
    return {
      allowed: false,
      waitMs: Number(result[0]),
      scope: scopes[Number(result[1]) - 1]!.name,
      kind: result[2] === 'quota' || result[2] === 'short' ? result[2] : 'rate',
    };
  }

  /** A throttling reply from this scope: its rate is cut (once per cooldown). Resolves the factor now. */
  async throttled(scope: string, now = Date.now()): Promise<number> {
    const a = this.adaptive;
    const factor = await scripts.throttle.run(
      this.redis,
      [this.key(scope, 'adapt'), `${this.prefix}:rl:cut`],
      [now, a.decrease, a.minFactor, a.cooldownMs, a.recoverPerSecond, scope],
    );
    return Number(factor);
  }

  /** Every scope with an adaptive cut in force, cluster-wide, and its factor (< 1). */
  async cutScopes(now = Date.now()): Promise<Map<string, number>> {
    const flat = (await scripts.cutScopes.run(
      this.redis,
      [`${this.prefix}:rl:cut`],
      [now, this.adaptive.recoverPerSecond, `${this.prefix}:rl:`],
    )) as string[];
    const out = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, Number(flat[i + 1]));
    return out;
  }
}
