/**
 * Cluster-wide send limits, shared by every worker process through Redis. Each limited scope (a relay, a
 * recipient domain group, a campaign) has:
 *
 *   <scope>:tat    GCRA theoretical arrival time (ms): sends are paced one emission interval T = 1000/rate
 *                  apart, with a burst tolerance tau (ms) that absorbs the jitter of many workers;
 *   <scope>:log    the newest `cap` send times (a list, newest first): a send is allowed only if fewer than
 *                  `cap` sends happened in the last 1000 ms, so no 1-second window ever exceeds the rate,
 *                  whatever tau allows;
 *   <scope>:sched  the next free slot for messages that were held back: each held message gets its own slot,
 *                  T apart, so held messages come back one by one at the rate instead of all at once;
 *   <scope>:adapt  the adaptive factor (0..1] after throttling replies: cut multiplicatively by `throttle`,
 *                  recovering additively (`recover` per second) on every read; deleted when back at 1;
 *   quota keys     one counter per fixed window (hour, day, or any window length), aligned to the epoch (UTC).
 *
 * All keys of one call carry the same hash tag, so a call touches one Redis Cluster slot. Time is the Redis
 * server's (TIME), so worker hosts whose clocks differ still share one timeline; quota windows are computed
 * by the caller from its own clock and only name the counter.
 */

/**
 * acquireSendSlot: may one message go now under every limit given? All or nothing: either every limit
 * counts the send, or none does.
 * KEYS: per scope i, four keys: tat, log, sched, adapt; then every quota key, scope by scope.
 * ARGV[1] unused (the server's TIME is used), ARGV[2] number of scopes, ARGV[3] recovery per second (factor units), ARGV[4] short
 * wait (ms): a rate wait up to this long reserves nothing (the caller waits in place and asks again),
 * then per scope: rate (per second; 0 = no rate), adaptive-only ('1': rate applies only while a throttle
 * cut is in force), tau (ms), number of quotas q, then q pairs: limit, window end (ms).
 * Result: { 0, now } allowed and counted (now: the server time of the grant, ms); or { wait ms, blocking scope index (1-based), 'rate' | 'quota' | 'short' }.
 */
export const ACQUIRE_SEND_SLOT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n, recover, short = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local scopes = {}
local a, q = 5, 4 * n + 1
local wait, blocking, kind = 0, 0, ''
for i = 1, n do
  local s = { tat = KEYS[4 * i - 3], log = KEYS[4 * i - 2], sched = KEYS[4 * i - 1], adapt = KEYS[4 * i],
    rate = tonumber(ARGV[a]), only = ARGV[a + 1] == '1', tau = tonumber(ARGV[a + 2]), quotas = {} }
  local nq = tonumber(ARGV[a + 3])
  a = a + 4
  for j = 1, nq do
    s.quotas[j] = { key = KEYS[q], limit = tonumber(ARGV[a]), ends = tonumber(ARGV[a + 1]) }
    q = q + 1
    a = a + 2
  end
  -- The adaptive factor, recovered for the time since the last cut.
  local factor = 1
  local st = redis.call('HMGET', s.adapt, 'factor', 'at')
  if st[1] then
    factor = tonumber(st[1]) + recover * (now - tonumber(st[2])) / 1000
    if factor >= 1 then
      factor = 1
      redis.call('DEL', s.adapt)
    end
  end
  if s.only and factor >= 1 then s.rate = 0 end
  s.rate = s.rate * factor
  if s.rate > 0 then
    s.T = 1000 / s.rate
    s.cap = math.max(1, math.floor(s.rate))
    s.tatv = math.max(tonumber(redis.call('GET', s.tat) or '0'), now)
    local w = s.tatv - s.tau - now
    if w < 0 then w = 0 end
    local full = redis.call('LINDEX', s.log, s.cap - 1)
    if full and tonumber(full) > now - 1000 then
      w = math.max(w, tonumber(full) + 1000 - now)
    end
    if w > wait then wait, blocking, kind = w, i, 'rate' end
  end
  for _, quota in ipairs(s.quotas) do
    local used = tonumber(redis.call('GET', quota.key) or '0')
    if used >= quota.limit then
      local w = quota.ends - now
      if w > wait then wait, blocking, kind = w, i, 'quota' end
    end
  end
  scopes[i] = s
end
if wait > 0 then
  if kind == 'rate' and wait <= short then return { math.ceil(wait), blocking, 'short' } end
  -- Held: the message gets the next free slot of the blocking scope, so held messages return spaced out.
  local s = scopes[blocking]
  if s.T then
    local slot = math.max(now + wait, tonumber(redis.call('GET', s.sched) or '0'))
    redis.call('SET', s.sched, tostring(slot + s.T), 'PX', math.ceil(slot + s.T - now) + 1000)
    wait = slot - now
  end
  return { math.ceil(wait), blocking, kind }
end
for _, s in ipairs(scopes) do
  if s.T then
    redis.call('SET', s.tat, tostring(s.tatv + s.T), 'PX', math.ceil(s.tatv + s.T - now) + 1000)
    redis.call('LPUSH', s.log, now)
    redis.call('LTRIM', s.log, 0, s.cap - 1)
    redis.call('PEXPIRE', s.log, 2000)
  end
  for _, quota in ipairs(s.quotas) do
    redis.call('INCR', quota.key)
    redis.call('PEXPIREAT', quota.key, quota.ends + 60000)
  end
end
return { 0, now }
`;

/**
 * throttleScope: a throttling reply (421, 4.7.x, "try again later") came from this scope: cut its factor.
 * KEYS[1] adapt key, KEYS[2] the set of scopes with a cut in force (scope names). ARGV[1] unused (TIME), ARGV[2] multiplier (e.g. 0.5), ARGV[3] lowest factor, ARGV[4] cooldown
 * (ms: replies within it after a cut count as the same event), ARGV[5] recovery per second, ARGV[6] scope.
 * Result: the factor now in force, as a string.
 */
export const THROTTLE_SCOPE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mult, floor, cooldown, recover = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local st = redis.call('HMGET', KEYS[1], 'factor', 'at', 'cutAt')
local factor = 1
if st[1] then factor = math.min(1, tonumber(st[1]) + recover * (now - tonumber(st[2])) / 1000) end
if st[3] and now - tonumber(st[3]) < cooldown then return tostring(factor) end
factor = math.max(floor, factor * mult)
redis.call('HSET', KEYS[1], 'factor', tostring(factor), 'at', now, 'cutAt', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((1 - factor) / recover * 1000) + 60000)
redis.call('SADD', KEYS[2], ARGV[6])
return tostring(factor)
`;

/**
 * readCutScopes: the scopes with an adaptive cut in force and their factors (recovered to now); scopes that
 * have recovered leave the set. KEYS[1] the set of cut scopes. ARGV[1] unused (TIME), ARGV[2] recovery per second,
 * ARGV[3] key prefix of the scopes (`<prefix>:rl:`). Result: a flat list scope, factor, scope, factor...
 */
export const READ_CUT_SCOPES = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local recover, base = tonumber(ARGV[2]), ARGV[3]
local out = {}
for _, scope in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local st = redis.call('HMGET', base .. scope .. ':adapt', 'factor', 'at')
  local factor = 1
  if st[1] then factor = math.min(1, tonumber(st[1]) + recover * (now - tonumber(st[2])) / 1000) end
  if factor >= 1 then
    redis.call('SREM', KEYS[1], scope)
  else
    out[#out + 1] = scope
    out[#out + 1] = tostring(factor)
  end
end
return out
`;
