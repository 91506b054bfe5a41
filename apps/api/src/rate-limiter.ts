import type { Redis } from 'ioredis';
import { LuaScript } from '@mailroom/queue';

/**
 * takeToken: a token bucket per API key, in Redis so that every API process shares it. Time comes from Redis
 * (TIME), so API hosts with skewed clocks agree.
 * KEYS[1] the bucket hash. ARGV[1] tokens per second, ARGV[2] burst (bucket size).
 * Result: { 1, 0 } taken, or { 0, ms } refused, with the wait until a token is there.
 */
const TAKE_TOKEN = `
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(h[1]) or burst
local ts = tonumber(h[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end
local ttl = math.ceil(burst / rate * 1000) + 1000
if tokens >= 1 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', now)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return { 1, 0 }
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return { 0, math.ceil((1 - tokens) * 1000 / rate) }
`;
const script = new LuaScript('takeToken', TAKE_TOKEN);

export interface RateLimitOptions {
  /** Requests per second per key. */
  readonly ratePerSecond: number;
  /** Requests an idle key may make at once. */
  readonly burst: number;
}

/** Requests per second per API key, shared by every API process through Redis. */
export class RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly options: RateLimitOptions,
  ) {}

  /** Takes one token for `keyPrefix`: `{ ok: true }`, or `{ ok: false, retryAfterMs }`. */
  async take(keyPrefix: string): Promise<{ ok: true } | { ok: false; retryAfterMs: number }> {
    const [ok, wait] = (await script.run(
      this.redis,
      [`${this.prefix}:api:rate:${keyPrefix}`],
      [this.options.ratePerSecond, this.options.burst],
    )) as [number, number];
    return ok === 1 ? { ok: true } : { ok: false, retryAfterMs: Math.max(1, Number(wait)) };
  }
}
