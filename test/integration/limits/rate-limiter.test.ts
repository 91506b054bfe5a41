import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { PACING_MARGIN, RateLimiter, type LimitScope } from '@mailroom/queue';
import { startRedis, type RedisServer } from '../../harness/redis.js';

const PREFIX = '{limits-test}';

/** Most grants inside any window [t, t + ms). */
function busiest(sorted: readonly number[], ms: number): number {
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i += 1) {
    while (j < sorted.length && sorted[j]! < sorted[i]! + ms) j += 1;
    best = Math.max(best, j - i);
  }
  return best;
}

/**
 * `callers` concurrent loops, each asking for a slot, sleeping what it was told, asking again; returns the
 * server times of the grants. Bounded: `total` grants, or `deadlineMs`.
 */
async function hammer(
  limiter: RateLimiter,
  scopes: readonly LimitScope[],
  total: number,
  callers: number,
  deadlineMs = 20_000,
): Promise<{ grants: number[]; holds: number }> {
  const grants: number[] = [];
  let holds = 0;
  const end = Date.now() + deadlineMs;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (grants.length < total && Date.now() < end) {
        const r = await limiter.acquire(scopes);
        if (r.allowed) grants.push(r.at);
        else {
          holds += 1;
          await new Promise((resolve) => setTimeout(resolve, r.waitMs));
        }
      }
    }),
  );
  return { grants: grants.sort((a, b) => a - b), holds };
}

describe('RateLimiter against a real Redis', () => {
  let redis: RedisServer;
  let conn: Redis;
  let limiter: RateLimiter;
  before(async () => {
    redis = await startRedis();
    conn = redis.client();
    limiter = new RateLimiter(conn, PREFIX);
  });
  after(async () => {
    conn.disconnect();
    await redis.stop();
  });

  it('never grants more than the rate in any 1-second window, whatever the burst tolerance', async () => {
    const scope: LimitScope = { name: 'relay:a', perSecond: 100, burstMs: 2000 };
    const { grants } = await hammer(limiter, [scope], 250, 20);
    assert.ok(grants.length >= 250, `${grants.length} grants`);
    assert.ok(busiest(grants, 1000) <= 100, `busiest second ${busiest(grants, 1000)}`);
  });

  it('takes a slot under every scope or none: a send blocked by one scope is counted by no other', async () => {
    const relay: LimitScope = { name: 'relay:b', perSecond: 1000 };
    const group: LimitScope = { name: 'group:slow', perSecond: 5, burstMs: 0 };
    const first = await limiter.acquire([relay, group]);
    assert.equal(first.allowed, true);
    const second = await limiter.acquire([relay, group]);
    assert.equal(second.allowed, false);
    assert.equal(!second.allowed && second.scope, 'group:slow');
    assert.equal(!second.allowed && second.kind, 'rate');
    // The relay counted only the granted send: its log holds one entry.
    assert.equal(await conn.zcard(`${PREFIX}:rl:relay:b:log`), 1);
  });

  it('gives held callers slots of their own, one emission interval apart, instead of one shared moment', async () => {
    const scope: LimitScope = { name: 'group:spread', perSecond: 10, burstMs: 0 };
    assert.equal((await limiter.acquire([scope])).allowed, true);
    const slots: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const asked = Date.now();
      const r = await limiter.acquire([scope]);
      assert.equal(r.allowed, false);
      if (!r.allowed) slots.push(asked + r.waitMs);
    }
    const gaps = slots.slice(1).map((s, i) => s - slots[i]!);
    assert.ok(
      gaps.every((g) => g >= 90 && g <= 110),
      `each held caller has its own slot, 100 ms after the previous one: gaps ${gaps.join(', ')} ms`,
    );
  });

  it('reserves send times up to a horizon ahead, every two at least one interval apart', async () => {
    const scope: LimitScope = { name: 'relay:reserve', perSecond: 200 };
    const times: number[] = [];
    await Promise.all(
      Array.from({ length: 300 }, async () => {
        const r = await limiter.acquire([scope], Date.now(), 2000);
        assert.equal(r.allowed, true, 'within the horizon: reserved');
        if (r.allowed) times.push(r.at);
      }),
    );
    times.sort((a, b) => a - b);
    const interval = 1000 / (200 * (1 - PACING_MARGIN));
    const closest = Math.min(...times.slice(1).map((t, i) => t - times[i]!));
    assert.ok(
      closest >= interval - 0.01,
      `closest two ${closest.toFixed(3)} ms apart (interval ${interval})`,
    );
    assert.ok(busiest(times, 1000) <= 200, `busiest second ${busiest(times, 1000)}`);
    // Booked back to back from the first: 300 sends over 300 intervals, no time left unused.
    const span = times[times.length - 1]! - times[0]!;
    assert.ok(Math.abs(span - 299 * interval) < 1, `300 sends over ${span.toFixed(1)} ms`);
    const held = await limiter.acquire([scope], Date.now(), 100);
    assert.equal(held.allowed, false, 'past the horizon: held, nothing reserved');
  });

  it('a send another scope holds later leaves the time before it free for this scope alone', async () => {
    const relay: LimitScope = { name: 'relay:shared', perSecond: 100 };
    const group: LimitScope = { name: 'group:slower', perSecond: 10 };
    const slow: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const r = await limiter.acquire([relay, group], Date.now(), 1000);
      assert.equal(r.allowed, true);
      if (r.allowed) slow.push(r.at);
    }
    const fast: number[] = [];
    for (let i = 0; i < 20; i += 1) {
      const r = await limiter.acquire([relay], Date.now(), 1000);
      assert.equal(r.allowed, true);
      if (r.allowed) fast.push(r.at);
    }
    // The group's five are ~400 ms apart end to end; the relay's own sends go in the gaps between them
    // (20 at 100/s take ~200 ms), not after the last of them.
    assert.ok(
      fast[19]! < slow[4]!,
      `fast ones fill the gaps: last fast +${(fast[19]! - slow[0]!).toFixed(0)} ms, last slow +${(slow[4]! - slow[0]!).toFixed(0)} ms`,
    );
    const all = [...slow, ...fast].sort((a, b) => a - b);
    const interval = 1000 / (100 * (1 - PACING_MARGIN));
    const closest = Math.min(...all.slice(1).map((t, i) => t - all[i]!));
    assert.ok(closest >= interval - 0.01, `relay sends ${closest.toFixed(3)} ms apart at the closest`);
  });

  it('a quota stops grants until its window ends, and counts only grants', async () => {
    const scope: LimitScope = { name: 'relay:quota', quotas: [{ limit: 3, windowSeconds: 3600 }] };
    for (let i = 0; i < 3; i += 1) assert.equal((await limiter.acquire([scope])).allowed, true);
    const held = await limiter.acquire([scope]);
    assert.equal(held.allowed, false);
    if (!held.allowed) {
      assert.equal(held.kind, 'quota');
      const windowEnd = (Math.floor(Date.now() / 3_600_000) + 1) * 3_600_000;
      assert.ok(Math.abs(Date.now() + held.waitMs - windowEnd) < 2000, 'held until the window ends');
    }
    const keys = await conn.keys(`${PREFIX}:rl:relay:quota:q3600:*`);
    assert.equal(keys.length, 1);
    assert.equal(await conn.get(keys[0]!), '3');
  });

  it('a throttle halves the rate once per cooldown, recovers additively, and lifts an unlimited scope when recovered', async () => {
    const fast = new RateLimiter(conn, PREFIX, { recoverPerSecond: 0.5, cooldownMs: 60_000 });
    assert.equal(await fast.throttled('group:gmail'), 0.5);
    const again = await fast.throttled('group:gmail');
    assert.ok(again >= 0.5 && again < 0.6, `a second reply within the cooldown is the same event (${again})`);
    const cut = await fast.cutScopes();
    assert.ok((cut.get('group:gmail') ?? 1) < 1);
    // An unlimited scope while cut: paced at its adaptive base rate times the factor.
    const unlimited: LimitScope = { name: 'group:gmail', adaptiveBasePerSecond: 4, burstMs: 0 };
    assert.equal((await fast.acquire([unlimited])).allowed, true);
    const held = await fast.acquire([unlimited]);
    assert.equal(held.allowed, false, 'paced while cut');
    // Recovery at 0.5 per second: back to 1 within about a second, then unlimited again.
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal((await fast.cutScopes()).has('group:gmail'), false, 'recovered scopes leave the cut set');
    for (let i = 0; i < 20; i += 1) assert.equal((await fast.acquire([unlimited])).allowed, true);
  });
});
