/**
 * Cluster-wide send limits, shared by every worker process through Redis. Each limited scope (a relay, a
 * recipient domain group, a campaign) has:
 *
 *   <scope>:log    the scope's calendar: every send time booked from a second ago on (a sorted set, score and
 *                  member the time in ms). Any two are at least one interval T apart, T = 1000 / pace, where
 *                  the pace is the rate less a margin (and never above floor(rate)), so no 1-second window
 *                  holds more than the rate, and the margin leaves room for the spread between a send's time
 *                  and the moment the relay has the message;
 *   <scope>:tat    the end of the calendar's fully booked stretch: from now to here there is no free time, so
 *                  a search starts here (GCRA's theoretical arrival time); bookings further on are isolated
 *                  ones, made for a message that another scope held later, and the gaps before them stay free
 *                  for messages this scope alone paces;
 *   <scope>:sched  the next free slot for messages that were held back: each held message gets its own slot,
 *                  T apart, so held messages come back one by one at the rate instead of all at once;
 *   <scope>:adapt  the adaptive factor (0..1] after throttling replies: cut multiplicatively by `throttle`,
 *                  recovering additively (`recover` per second) on every read; deleted when back at 1;
 *   quota keys     one counter per fixed window (hour, day, or any window length), aligned to the epoch (UTC).
 *
 * Send times are reservations: a caller is given the earliest time free in every scope's calendar, up to a
 * horizon ahead, booked in all of them at once, and sends at that moment without asking again. All keys of
 * one call carry the same hash tag, so a call touches one Redis Cluster slot. Time is the Redis server's
 * (TIME), so worker hosts whose clocks differ still share one timeline; quota windows are computed by the
 * caller from its own clock and only name the counter.
 */

/**
 * acquireSendSlot: when may one message go under every limit given? All or nothing: either every limit books
 * the same send time, or none does.
 * KEYS: per scope i, four keys: tat, log, sched, adapt; then every quota key, scope by scope.
 * ARGV[1] unused (the server's TIME is used), ARGV[2] number of scopes, ARGV[3] recovery per second (factor
 * units), ARGV[4] horizon (ms): a send time at most this far ahead is reserved (0: only a send right now),
 * ARGV[5] pacing margin (the share of the rate left unused, e.g. 0.01), ARGV[6] '1' for a message that came
 * back for its slot and could not try to reserve (it is told the next free time, without a new place in
 * line), ARGV[7] depth: the horizon is at most this many intervals of the message's slowest scope (0: no
 * bound), ARGV[8] lead (ms): a held message comes back this long before its slot (at most half the horizon),
 * then per scope: rate (per second; 0 = no rate), adaptive-only ('1': rate applies only while a throttle cut
 * is in force), number of quotas q, then q pairs: limit, window end (ms).
 * Result: { 0, at, wait } reserved and counted (at: the server time of the send, ms; wait: ms from now, 0 =
 * go now); or { wait, blocking scope index (1-based), 'rate' | 'quota' }: nothing reserved, ask again after
 * the wait (for a rate, a lead before the held message's own slot). Times are decimal strings (ms).
 */
export const ACQUIRE_SEND_SLOT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n, recover, horizon, margin = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local returning, depth, lead = ARGV[6] == '1', tonumber(ARGV[7]), tonumber(ARGV[8])
local eps = 0.001
local function ms(x) return string.format('%.6f', x) end
local scopes = {}
local a, q = 9, 4 * n + 1
local at, blocking, kind = now, 0, ''
local windowEnd, exhausted = nil, false
for i = 1, n do
  local s = { tat = KEYS[4 * i - 3], log = KEYS[4 * i - 2], sched = KEYS[4 * i - 1], adapt = KEYS[4 * i],
    rate = tonumber(ARGV[a]), only = ARGV[a + 1] == '1', quotas = {} }
  local nq = tonumber(ARGV[a + 2])
  a = a + 3
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
    local pace = s.rate * (1 - margin)
    if s.rate >= 1 and pace > math.floor(s.rate) then pace = math.floor(s.rate) end
    s.T = 1000 / pace
    redis.call('ZREMRANGEBYSCORE', s.log, '-inf', '(' .. ms(now - math.max(1000, s.T)))
    s.tatv = math.max(tonumber(redis.call('GET', s.tat) or '0'), now)
    if s.tatv > at then at, blocking, kind = s.tatv, i, 'rate' end
  end
  for _, quota in ipairs(s.quotas) do
    local used = tonumber(redis.call('GET', quota.key) or '0')
    if used >= quota.limit then
      exhausted = true
      if quota.ends > at then at, blocking, kind = quota.ends, i, 'quota' end
    elseif windowEnd == nil or quota.ends < windowEnd then
      windowEnd = quota.ends
    end
  end
  scopes[i] = s
end
-- A send is reserved at most depth intervals of the message's slowest scope ahead (and never past the
-- horizon): each scope books a bounded stretch of its own future, and a slower scope, booking further
-- ahead, keeps its share of a faster scope it shares.
local slowest = 0
for _, s in ipairs(scopes) do
  if s.T and s.T > slowest then slowest = s.T end
end
if depth > 0 and slowest > 0 then horizon = math.min(horizon, depth * slowest) end
-- A held message is told to come back this long before its slot, so that it can reserve it then.
lead = math.min(lead, horizon / 2)
-- The earliest time at least T away from every booking of every scope: each booking closer than T moves
-- the candidate to T after it, until one round moves nothing (or the candidate is past the horizon).
local settled = true
if not exhausted then
  local moved, rounds = true, 0
  while moved and at - now <= horizon and rounds < 1000 do
    moved, rounds = false, rounds + 1
    for i, s in ipairs(scopes) do
      if s.T then
        local near = redis.call('ZRANGEBYSCORE', s.log, '(' .. ms(at - s.T + eps), '(' .. ms(at + s.T - eps))
        if #near > 0 then
          at, blocking, kind, moved = tonumber(near[#near]) + s.T, i, 'rate', true
        end
      end
    end
  end
  settled = not moved
end
local wait = at - now
-- A send time in a later quota window than the one counted now is not reserved: asked again then.
local crossesWindow = windowEnd ~= nil and at >= windowEnd and wait > 0
if exhausted or wait > horizon or crossesWindow or not settled then
  if kind == 'rate' and not exhausted and not crossesWindow then
    local slot = at
    if not returning then
      -- Held: the message gets the next free slot of the blocking scope, so held messages return spaced out;
      -- every other scope it is paced by counts one more send among the held ones, so messages held by those
      -- scopes come back at the pace left to them, not at the whole rate.
      for i, s in ipairs(scopes) do
        if s.T then
          local free = tonumber(redis.call('GET', s.sched) or '0')
          if i == blocking then
            slot = math.max(at, free)
            free = slot
          else
            free = math.max(free, s.tatv)
          end
          redis.call('SET', s.sched, ms(free + s.T), 'PX', math.ceil(free + s.T - now) + 1000)
        end
      end
    end
    wait = slot - lead - now
  end
  return { ms(math.max(wait, 1)), blocking, kind }
end
for _, s in ipairs(scopes) do
  if s.T then
    redis.call('ZADD', s.log, at, ms(at))
    local ttl = math.ceil(wait + math.max(1000, s.T)) + 1000
    if redis.call('PTTL', s.log) < ttl then redis.call('PEXPIRE', s.log, ttl) end
    if at - s.tatv < s.T then
      -- No free time left before this booking: the fully booked stretch now ends T after it, and after any
      -- isolated booking that leaves no room before it.
      local cursor, tat = at, at + s.T
      while true do
        local nxt = redis.call('ZRANGEBYSCORE', s.log, '(' .. ms(cursor), '(' .. ms(tat + s.T - eps), 'LIMIT', 0, 1)
        if #nxt == 0 then break end
        cursor = tonumber(nxt[1])
        tat = cursor + s.T
      end
      redis.call('SET', s.tat, ms(tat), 'PX', math.ceil(tat - now) + 1000)
    end
  end
  for _, quota in ipairs(s.quotas) do
    redis.call('INCR', quota.key)
    redis.call('PEXPIREAT', quota.key, quota.ends + 60000)
  end
end
return { 0, ms(at), ms(wait) }
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
