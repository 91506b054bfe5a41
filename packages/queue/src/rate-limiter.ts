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
  /**
   * Accepted for older configurations and not used: send times are reserved ahead, one interval apart, so
   * there is no late caller to absorb and no burst to allow.
   */
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

/**
 * The share of a rate that pacing leaves unused: sends are spaced for rate x (1 - margin), so that a spread
 * of up to margin x 1 s between the moment a send may start and the moment the relay has the message does
 * not push a 1-second window over the rate.
 */
export const PACING_MARGIN = 0.01;

export const DEFAULT_ADAPTIVE: AdaptiveOptions = {
  decrease: 0.5,
  recoverPerSecond: 0.01,
  minFactor: 0.05,
  cooldownMs: 2000,
};

export type AcquireResult =
  | {
      readonly allowed: true;
      /** The Redis server time the send is reserved for (ms since the epoch). */
      readonly at: number;
      /** How long until then (ms, 0 = now): the caller sends after this wait, without asking again. */
      readonly waitMs: number;
    }
  | {
      readonly allowed: false;
      /** When the message may ask again (ms from now): its own slot, not a moment shared with others. */
      readonly waitMs: number;
      /** The scope that held it back. */
      readonly scope: string;
      readonly kind: 'rate' | 'quota';
    };

/** How {@link RateLimiter.acquire} reserves, and what it tells a message it holds. */
export interface AcquireOptions {
  /**
   * At most this many send intervals of the message's slowest scope ahead (and never past the horizon):
   * each scope books a bounded stretch of its future, and a slower scope books further ahead than a faster
   * one it shares, so it keeps its share of it. 0 or undefined: the horizon alone.
   */
  readonly depth?: number;
  /** A held message is told to come back this long before its slot (at most half the horizon). */
  readonly leadMs?: number;
  /**
   * The message came back for its slot and could not try to reserve (no job slot free for the wait): it is
   * told the next free time, without taking a new place among the held messages.
   */
  readonly returning?: boolean;
}

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
   * Reserves one send time under every scope at once: the earliest time they all allow, if it is at most
   * `horizonMs` ahead (0: only a send right now); otherwise reserves nothing and tells how long to hold
   * the message (see {@link AcquireOptions}).
   */
  async acquire(
    scopes: readonly LimitScope[],
    now = Date.now(),
    horizonMs = 0,
    options: AcquireOptions = {},
  ): Promise<AcquireResult> {
    const keys: string[] = [];
    const quotaKeys: string[] = [];
    const args: (string | number)[] = [
      now,
      scopes.length,
      this.adaptive.recoverPerSecond,
      horizonMs,
      PACING_MARGIN,
      options.returning ? '1' : '0',
      options.depth ?? 0,
      options.leadMs ?? 0,
    ];
    for (const scope of scopes) {
      keys.push(
        this.key(scope.name, 'tat'),
        this.key(scope.name, 'log'),
        this.key(scope.name, 'sched'),
        this.key(scope.name, 'adapt'),
      );
      const adaptiveOnly = scope.perSecond === undefined;
      const rate = scope.perSecond ?? scope.adaptiveBasePerSecond ?? 0;
      const quotas = scope.quotas ?? [];
      args.push(rate, adaptiveOnly ? '1' : '0', quotas.length);
      for (const quota of quotas) {
        const windowMs = quota.windowSeconds * 1000;
        const index = Math.floor(now / windowMs);
        quotaKeys.push(this.key(scope.name, `q${quota.windowSeconds}:${index}`));
        args.push(quota.limit, (index + 1) * windowMs);
      }
    }
    const result = (await scripts.acquire.run(this.redis, [...keys, ...quotaKeys], args)) as [
      number | string,
      number | string,
      string,
    ];
    if (result[0] === 0) return { allowed: true, at: Number(result[1]), waitMs: Number(result[2]) };
    return {
      allowed: false,
      waitMs: Number(result[0]),
      scope: scopes[Number(result[1]) - 1]!.name,
      kind: result[2] === 'quota' ? 'quota' : 'rate',
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
