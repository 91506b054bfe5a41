/**
 * The campaign feed's state changes, each one atomic Lua script (as the ledger's, ledger-scripts.ts). Keys
 * are built inside the scripts from the prefix, so every key carries its hash tag.
 *
 * Keys (P = prefix, C = P:campaign:<id>):
 *   C              the campaign hash. Besides template, state and counts (campaign-store.ts), a chunked
 *                  campaign (`v` = 2) keeps: chunkSize, batchSize, maxAgeMs, sendAt, midDomain (Message-ID
 *                  domain), tags (the producer's tags, joined by ','), chunks (chunks appended), n:chunked
 *                  (recipients in them), fed (chunks before it are materialised or ended), queued (chunks
 *                  before it have their batch jobs), cancelledAt and cancelledFrom (first chunk ended by
 *                  the cancel, never materialised)
 *   C:chunk:<k>    string, recipients k*chunkSize .. in the compact form of CampaignChunkWriter, until
 *                  materialised (then deleted)
 *   C:times        list, the acceptance instant (ms) of each chunk by index
 *   C:ended        hash, chunk index -> "expired <ms>" for chunks that ended without being materialised
 *   P:campaigns:feeding  sorted set of campaigns with feeder work left, by creation time
 */

/** Splits a string on a one-character separator, keeping empty fields. */
const SPLIT = `
local function split(s, sep)
  local out, pos = {}, 1
  while true do
    local i = string.find(s, sep, pos, true)
    if not i then
      out[#out + 1] = string.sub(s, pos)
      return out
    end
    out[#out + 1] = string.sub(s, pos, i - 1)
    pos = i + 1
  end
end
`;

/**
 * appendCampaignChunk: accept one chunk of recipients (they count as accepted and queued from here on).
 * ARGV[1] prefix, ARGV[2] campaign id, ARGV[3] chunk index (must be the next one), ARGV[4] recipients in
 * the chunk, ARGV[5] now (ms, the chunk's acceptance instant), ARGV[6] the chunk's text.
 * A chunk appended to a cancelled campaign ends `cancelled` at once and its text is not stored.
 * Result: { 'ok' } | { 'cancelled' } | { 'order', chunks } (not the next index: nothing written) |
 * { 'missing' } (no chunked campaign of that id).
 */
export const APPEND_CAMPAIGN_CHUNK = `
local P, id, k, count, at = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local C = P .. ':campaign:' .. id
local f = redis.call('HMGET', C, 'v', 'chunks', 'state')
if f[1] ~= '2' then return { 'missing' } end
if tonumber(f[2]) ~= k then return { 'order', f[2] } end
redis.call('HSET', C, 'chunks', k + 1)
redis.call('HINCRBY', C, 'n:chunked', count)
redis.call('HINCRBY', C, 'n:accepted', count)
redis.call('RPUSH', C .. ':times', at)
redis.call('HINCRBY', P .. ':stats', 'accepted', count)
redis.call('HINCRBY', P .. ':stats', 'queued', count)
if f[3] == 'cancelled' then
  redis.call('HSET', C, 'fed', k + 1)
  redis.call('HINCRBY', C, 'n:cancelled', count)
  redis.call('HINCRBY', P .. ':stats', 'cancelled', count)
  return { 'cancelled' }
end
redis.call('SET', C .. ':chunk:' .. k, ARGV[6])
return { 'ok' }
`;

/**
 * materialiseCampaignChunk: turn chunk k into ledger records, or end it `expired` when its recipients are
 * past their maximum age. Advances the `fed` cursor, so each chunk is materialised at most once.
 * ARGV[1] prefix, ARGV[2] campaign id, ARGV[3] chunk index (must equal `fed`), ARGV[4] now (ms),
 * ARGV[5] mode: 'feed' (expire or materialise) or 'expire' (only expire; used for paused campaigns),
 * ARGV[6] the chunk's member ids, 26 characters each, in order (campaignMemberId; '' with 'expire').
 * Each member gets the record the ledger scripts expect (state `queued`, the payload as `data`, its
 * recipient as `rcpt`, its campaign, its batch job id `<campaign>-<k>-<batch>`), a deadline and the
 * campaign's tags; ids and
 * Message-IDs are derived from the campaign id and the member's index (campaign-member-ids.ts, given in
 * ARGV[6]), and a record that already exists is left alone. A member whose line is missing (the chunk
 * was lost) gets a record without payload, which the claim ends as `failed` (content_missing).
 * Result: { 'fed', count } | { 'expired', count } | { 'later' } (mode 'expire', not due) |
 * { 'state', state } (not running) | { 'moved', fed } | { 'none' } (no such chunk yet) | { 'missing' } |
 * { 'ids', count } (ARGV[6] does not hold count ids: nothing written).
 */
export const MATERIALISE_CAMPAIGN_CHUNK =
  SPLIT +
  `
local P, id, k, now, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local C = P .. ':campaign:' .. id
local f = redis.call('HMGET', C, 'v', 'state', 'chunks', 'fed', 'queued', 'n:chunked', 'chunkSize', 'batchSize',
  'maxAgeMs', 'sendAt', 'midDomain', 'tags')
if f[1] ~= '2' then return { 'missing' } end
local fed = tonumber(f[4])
if fed ~= k then return { 'moved', fed } end
if k >= tonumber(f[3]) then return { 'none' } end
local size = tonumber(f[7])
local count = math.min(size, tonumber(f[6]) - k * size)
local at = tonumber(redis.call('LINDEX', C .. ':times', k))
local exp = math.max(at, tonumber(f[10])) + tonumber(f[9])
local chunkKey = C .. ':chunk:' .. k
if exp <= now then
  redis.call('HSET', C .. ':ended', k, 'expired ' .. ARGV[4])
  redis.call('HINCRBY', C, 'n:expired', count)
  redis.call('HINCRBY', P .. ':stats', 'expired', count)
  redis.call('UNLINK', chunkKey)
  redis.call('HSET', C, 'fed', k + 1)
  if tonumber(f[5]) == k then redis.call('HSET', C, 'queued', k + 1) end
  return { 'expired', count }
end
if mode ~= 'feed' then return { 'later' } end
if f[2] ~= 'running' then return { 'state', f[2] } end
local ids = ARGV[6]
if #ids ~= count * 26 then return { 'ids', count } end
local body = redis.call('GET', chunkKey)
local names, lines = {}, {}
if body then
  lines = split(body, '\\n')
  names = split(table.remove(lines, 1), '\\t')
end
local atText, expText = string.format('%.0f', at), string.format('%.0f', exp)
local batch = tonumber(f[8])
local tags = { P .. ':tag:campaign:' .. id }
if f[12] and f[12] ~= '' then
  for tag in string.gmatch(f[12], '[^,]+') do tags[#tags + 1] = P .. ':tag:' .. tag end
end
local head = '{"v":1,"campaign":"' .. id .. '","id":"'
local job
for j = 0, count - 1 do
  if j % batch == 0 then job = id .. '-' .. k .. '-' .. (j / batch) end
  local mid = string.sub(ids, j * 26 + 1, j * 26 + 26)
  local key = P .. ':msg:' .. mid
  if redis.call('EXISTS', key) == 0 then
    local header = '<' .. mid .. '@' .. f[11] .. '>'
    local fields = { 'state', 'queued', 'acceptedAt', atText, 'updatedAt', ARGV[4], 'expiresAt', expText,
      'messageId', header, 'attempts', '0', 'campaign', id, 'job', job }
    local line = lines[j + 1]
    if line then
      local values = split(line, '\\t')
      local to = '{"address":' .. values[1]
      if values[2] and values[2] ~= '' then to = to .. ',"name":' .. values[2] end
      local vars = {}
      for c = 3, #values do
        if values[c] ~= '' then vars[#vars + 1] = names[c - 2] .. ':' .. values[c] end
      end
      -- The recipient stays on the record after the payload is dropped (ledger-scripts.ts: rcpt).
      local ok, rcpt = pcall(cjson.decode, values[1])
      if ok and type(rcpt) == 'string' and rcpt ~= '' then
        fields[#fields + 1] = 'rcpt'
        fields[#fields + 1] = rcpt
      end
      fields[#fields + 1] = 'data'
      fields[#fields + 1] = head .. mid .. '","messageIdHeader":"' .. header .. '","acceptedAt":' .. atText ..
        ',"expiresAt":' .. expText .. ',"to":' .. to .. '},"vars":{' .. table.concat(vars, ',') .. '}}'
    end
    redis.call('HSET', key, unpack(fields))
    redis.call('ZADD', P .. ':deadline', expText, mid)
    for _, tag in ipairs(tags) do redis.call('SADD', tag, mid) end
  end
end
redis.call('HSET', C, 'fed', k + 1)
redis.call('UNLINK', chunkKey)
return { 'fed', count }
`;

/**
 * markCampaignChunkQueued: the batch jobs of chunk k are in the queue. ARGV[1] prefix, ARGV[2] campaign id,
 * ARGV[3] k. Moves `queued` from k to k + 1; result 1, or 0 when `queued` was not k (nothing written).
 */
export const MARK_CAMPAIGN_CHUNK_QUEUED = `
local C = ARGV[1] .. ':campaign:' .. ARGV[2]
if redis.call('HGET', C, 'queued') ~= ARGV[3] then return 0 end
redis.call('HSET', C, 'queued', tonumber(ARGV[3]) + 1)
return 1
`;

/**
 * retireFedCampaign: drop a campaign from the feeding set once the feeder has nothing left to do for it
 * (every chunk materialised or ended and every materialised chunk's jobs queued; the upload over or the
 * campaign cancelled). ARGV[1] prefix, ARGV[2] campaign id. Result 1 if dropped, else 0.
 */
export const RETIRE_FED_CAMPAIGN = `
local P, id = ARGV[1], ARGV[2]
local C = P .. ':campaign:' .. id
local f = redis.call('HMGET', C, 'v', 'state', 'chunks', 'fed', 'queued', 'uploaded', 'cancelledFrom')
if not f[1] then
  redis.call('ZREM', P .. ':campaigns:feeding', id)
  return 1
end
local fed = tonumber(f[4])
local limit = fed
if f[7] then limit = math.min(fed, tonumber(f[7])) end
if tonumber(f[5]) < limit then return 0 end
if f[2] == 'cancelled' or (f[6] == '1' and fed >= tonumber(f[3])) then
  redis.call('ZREM', P .. ':campaigns:feeding', id)
  return 1
end
return 0
`;

/**
 * setCampaignState: move a campaign to running, paused or cancelled (a cancelled campaign stays
 * cancelled). Cancelling a chunked campaign also ends every recipient not materialised yet as `cancelled`,
 * in bulk: counted in the campaign and the stats, chunks deleted, `cancelledFrom` marking where they start.
 * ARGV[1] prefix, ARGV[2] campaign id, ARGV[3] state, ARGV[4] now (ms).
 * Result: { state afterwards, recipients ended here in bulk }, or nil for an unknown campaign.
 */
export const SET_CAMPAIGN_STATE = `
local P, id, state = ARGV[1], ARGV[2], ARGV[3]
local C = P .. ':campaign:' .. id
local s = redis.call('HGET', C, 'state')
if not s then return false end
if s == 'cancelled' then return { s, 0 } end
redis.call('HSET', C, 'state', state)
local total = 0
if state == 'cancelled' then
  redis.call('HSET', C, 'cancelledAt', ARGV[4])
  local f = redis.call('HMGET', C, 'v', 'fed', 'chunks', 'chunkSize', 'n:chunked')
  if f[1] == '2' then
    local fed, chunks, size, chunked = tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), tonumber(f[5])
    for k = fed, chunks - 1 do
      total = total + math.min(size, chunked - k * size)
      redis.call('UNLINK', C .. ':chunk:' .. k)
    end
    redis.call('HSET', C, 'cancelledFrom', fed, 'fed', chunks)
    if total > 0 then
      redis.call('HINCRBY', C, 'n:cancelled', total)
      redis.call('HINCRBY', P .. ':stats', 'cancelled', total)
    end
  end
end
return { state, total }
`;
