/**
 * The suppression list's Lua scripts. A scope's list is a linear-hashing table of small Redis hashes, so each
 * bucket stays in Redis's compact listpack encoding (at most 128 fields by default) however large the list
 * grows: about 55 bytes per entry instead of about 98 for one big hash (bench/suppression-memory.mjs).
 *
 * Keys (M = the scope's key, `<prefix>:supp:<scope>`; every key carries the prefix's hash tag):
 *   M                hash: L (level), s (split pointer), n (entries). Absent = empty list, one bucket.
 *   M:<d>:<i>        hash, one bucket: canonical address -> value. The bucket holds the addresses whose hash
 *                    (the first 32 bits of SHA-1 of the address) has `i` as its top `d` bits, so each bucket
 *                    is one contiguous range of hashes: listing in hash order does not depend on the layout.
 *   M:import:<id>    list of "<address> <value>" staged by an import until every row is known to be valid.
 *
 * Layout: buckets with index >= s have depth L; those below s have been split into two of depth L + 1.
 * When the list holds more than LOAD entries per bucket, bucket (L, s) is split into (L + 1, 2s) and
 * (L + 1, 2s + 1) (both rewritten, so they are listpacks again) and s moves on; when s reaches 2^L, L grows.
 * With LOAD = 40 an unsplit bucket holds about 80 entries before its turn comes, under the 128 that keeps it
 * a listpack. Buckets are never merged: removals leave them smaller.
 *
 * Value: one reason code (`m` manual, `h` hard_bounce, `u` unsubscribe, `c` complaint, weakest first), the
 * first time the address was suppressed in ms since the epoch in base 36, then optionally a space and the
 * source: `ulz3k5q8w list:weekly` is an unsubscribe first recorded at lz3k5q8w (base 36 ms), from `list:weekly`.
 */

const LAYOUT = `
local LOAD = 40
local MAX_LEVEL = 24
local RANK = { m = 1, h = 2, u = 3, c = 4 }
local function hash32(address)
  return tonumber(string.sub(redis.sha1hex(address), 1, 8), 16)
end
local function readLayout(meta)
  local f = redis.call('HMGET', meta, 'L', 's', 'n')
  return tonumber(f[1]) or 0, tonumber(f[2]) or 0, tonumber(f[3]) or 0
end
local function bucketKey(meta, L, s, h)
  local i = math.floor(h / 2 ^ (32 - L))
  if i < s then return meta .. ':' .. (L + 1) .. ':' .. math.floor(h / 2 ^ (31 - L)) end
  return meta .. ':' .. L .. ':' .. i
end
`;

const WRITE = `
local function hsetAll(key, flat)
  for j = 1, #flat, 400 do
    redis.call('HSET', key, unpack(flat, j, math.min(j + 399, #flat)))
  end
end
local function split(meta, L, s)
  local old = meta .. ':' .. L .. ':' .. s
  local flat = redis.call('HGETALL', old)
  redis.call('DEL', old)
  local low, high = {}, {}
  for j = 1, #flat, 2 do
    local half = (math.floor(hash32(flat[j]) / 2 ^ (31 - L)) % 2 == 0) and low or high
    half[#half + 1] = flat[j]
    half[#half + 1] = flat[j + 1]
  end
  if #low > 0 then hsetAll(meta .. ':' .. (L + 1) .. ':' .. (2 * s), low) end
  if #high > 0 then hsetAll(meta .. ':' .. (L + 1) .. ':' .. (2 * s + 1), high) end
  s = s + 1
  if s == 2 ^ L then
    L = L + 1
    s = 0
  end
  return L, s
end
-- flat: address, value, address, value, ... A new address is added; an existing one keeps its first time
-- and takes the new reason and source only when the new reason is stronger.
local function addEntries(meta, flat)
  local L, s, n = readLayout(meta)
  local added, upgraded = 0, 0
  for j = 1, #flat, 2 do
    local address, value = flat[j], flat[j + 1]
    local key = bucketKey(meta, L, s, hash32(address))
    local old = redis.call('HGET', key, address)
    if not old then
      redis.call('HSET', key, address, value)
      n = n + 1
      added = added + 1
      if L < MAX_LEVEL and n > LOAD * (2 ^ L + s) then L, s = split(meta, L, s) end
    elseif RANK[string.sub(value, 1, 1)] > (RANK[string.sub(old, 1, 1)] or 0) then
      local at = string.match(old, '^.([0-9a-z]+)') or string.match(value, '^.([0-9a-z]+)')
      local source = string.match(value, '^.[0-9a-z]+( .*)$') or ''
      redis.call('HSET', key, address, string.sub(value, 1, 1) .. at .. source)
      upgraded = upgraded + 1
    end
  end
  if added > 0 then redis.call('HSET', meta, 'L', L, 's', s, 'n', n) end
  return { added, upgraded }
end
`;

/**
 * addSuppressions: add entries to one scope's list.
 * KEYS[1] the scope's key. ARGV: address, value, address, value, ... (canonical addresses, encoded values).
 * Result: { added (new addresses), upgraded (existing addresses given a stronger reason) }.
 */
export const ADD_SUPPRESSIONS =
  LAYOUT +
  WRITE +
  `
return addEntries(KEYS[1], ARGV)
`;

/**
 * commitSuppressionImport: move up to ARGV[1] staged entries from the import's list into the scope's list.
 * KEYS[1] the scope's key, KEYS[2] the staging list ("<address> <value>" per element).
 * Result: { added, upgraded, entries still staged }.
 */
export const COMMIT_SUPPRESSION_IMPORT =
  LAYOUT +
  WRITE +
  `
local items = redis.call('LPOP', KEYS[2], ARGV[1])
if not items then return { 0, 0, 0 } end
local flat = {}
for _, item in ipairs(items) do
  local space = string.find(item, ' ', 1, true)
  flat[#flat + 1] = string.sub(item, 1, space - 1)
  flat[#flat + 1] = string.sub(item, space + 1)
end
local result = addEntries(KEYS[1], flat)
result[3] = redis.call('LLEN', KEYS[2])
return result
`;

/**
 * removeSuppressions: remove addresses from one scope's list.
 * KEYS[1] the scope's key. ARGV: canonical addresses. Result: the number removed.
 */
export const REMOVE_SUPPRESSIONS =
  LAYOUT +
  `
local L, s, n = readLayout(KEYS[1])
if n == 0 then return 0 end
local removed = 0
for _, address in ipairs(ARGV) do
  removed = removed + redis.call('HDEL', bucketKey(KEYS[1], L, s, hash32(address)), address)
end
if removed > 0 then redis.call('HSET', KEYS[1], 'n', n - removed) end
return removed
`;

/**
 * checkSuppressions: look addresses up, each in its own scope and in the global scope, in one call.
 * KEYS: the keys of the scopes involved. ARGV[1] index in KEYS of the global scope's key (0: none), then
 * for each address: the canonical address, the index in KEYS of its scope's key.
 * Result: two values per address: the value in its own scope and the value in the global scope (nil when
 * absent; nil for the second when the address's own scope is the global one).
 */
export const CHECK_SUPPRESSIONS =
  LAYOUT +
  `
local layouts = {}
for k, meta in ipairs(KEYS) do
  local L, s, n = readLayout(meta)
  layouts[k] = { L, s, n }
end
local function lookup(k, address, h)
  local layout = layouts[k]
  if layout[3] == 0 then return false end
  return redis.call('HGET', bucketKey(KEYS[k], layout[1], layout[2], h), address)
end
local global = tonumber(ARGV[1])
local out = {}
for j = 2, #ARGV, 2 do
  local address, k = ARGV[j], tonumber(ARGV[j + 1])
  local h = hash32(address)
  out[#out + 1] = lookup(k, address, h)
  if global > 0 and global ~= k then out[#out + 1] = lookup(global, address, h) else out[#out + 1] = false end
end
return out
`;

/**
 * readSuppressionBuckets: read whole buckets in hash order, starting with the bucket that holds hash ARGV[1],
 * until at least ARGV[2] entries or ARGV[3] buckets were read, or the last bucket.
 * KEYS[1] the scope's key. Result: { the first hash after the buckets read (2^32 at the end), address,
 * value, address, value, ... }.
 */
export const READ_SUPPRESSION_BUCKETS =
  LAYOUT +
  `
local L, s = readLayout(KEYS[1])
local v, want, maxBuckets = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = { 0 }
local got, buckets = 0, 0
while v < 2 ^ 32 and got < want and buckets < maxBuckets do
  local d, i = L, math.floor(v / 2 ^ (32 - L))
  if i < s then
    d = L + 1
    i = math.floor(v / 2 ^ (31 - L))
  end
  local flat = redis.call('HGETALL', KEYS[1] .. ':' .. d .. ':' .. i)
  for j = 1, #flat do out[#out + 1] = flat[j] end
  got = got + #flat / 2
  buckets = buckets + 1
  v = (i + 1) * 2 ^ (32 - d)
end
out[1] = v
return out
`;
