/**
 * The delivery ledger's state changes, each one atomic Lua script. Keys are built inside the scripts from the
 * prefix passed in ARGV[1], as BullMQ does for its own keys: every key carries the prefix's hash tag, so each
 * script touches one Redis Cluster slot.
 *
 * Keys (P = prefix):
 *   P:msg:<id>       hash, one per message: state, acceptedAt, expiresAt, updatedAt, attempts, token, sendingAt,
 *                    bodyAt, terminalAt, code, enhanced, response, reason, messageId, data (payload until sent),
 *                    idem (idempotency key hash), ambiguous (times the RFC 1047 window was hit), rcpt and from
 *                    (the recipient's and the sender's address, written at acceptance and kept for the record's
 *                    whole retention: a late bounce or complaint suppresses and reports the recipient with them
 *                    after the payload is gone; a campaign member has `rcpt` only, its sender is its campaign's)
 *   P:msg:<id>:log   list of JSON attempt records, newest last, capped at 50
 *   P:deadline       sorted set of non-terminal message ids by expiresAt
 *   P:idem:<sha256>  "<id> <content sha256>" for the idempotency window
 *   P:tag:<tag>      set of message ids carrying the tag
 *   P:campaign:<id>  a campaign: its template, state and counts (`n:accepted`, `n:<terminal state>`)
 *   P:stats          hash of counters: accepted, queued, <terminal state>, duplicate_suppressed, ambiguous_*,
 *                    enqueue_incomplete, repaired
 */

const TERMINAL = `local TERMINAL = { delivered = true, bounced = true, expired = true, failed = true,
  ambiguous = true, cancelled = true, suppressed = true }`;

/**
 * Shared helper: make a message terminal. Drops the payload once it can no longer be needed (delivered,
 * bounced, suppressed) and keeps it for re-drive otherwise; the record then lives for `retention` seconds.
 * The small `rcpt` and `from` fields stay: feedback that comes after sending needs them (feedback-recorder.ts).
 */
const FINISH = `
local function finish(P, id, key, state, now, retention, code, enhanced, response, reason)
  redis.call('HSET', key, 'state', state, 'terminalAt', now, 'updatedAt', now)
  if code ~= '' then redis.call('HSET', key, 'code', code) end
  if enhanced ~= '' then redis.call('HSET', key, 'enhanced', enhanced) end
  if response ~= '' then redis.call('HSET', key, 'response', response) end
  if reason ~= '' then redis.call('HSET', key, 'reason', reason) end
  redis.call('HDEL', key, 'token')
  if state == 'delivered' or state == 'bounced' or state == 'suppressed' then redis.call('HDEL', key, 'data') end
  redis.call('ZREM', P .. ':deadline', id)
  redis.call('HINCRBY', P .. ':stats', state, 1)
  local campaign = redis.call('HGET', key, 'campaign')
  if campaign then redis.call('HINCRBY', P .. ':campaign:' .. campaign, 'n:' .. state, 1) end
  redis.call('EXPIRE', key, retention)
  redis.call('EXPIRE', key .. ':log', retention)
end
local function log(key, entry)
  redis.call('RPUSH', key .. ':log', entry)
  redis.call('LTRIM', key .. ':log', -50, -1)
end
`;

/**
 * acceptMessages: record a batch of accepted messages (state `accepted`), honouring idempotency keys.
 * ARGV[1] prefix, ARGV[2] now (ms), ARGV[3] idempotency window (s), ARGV[4] n,
 * then for each message 11 values: id, expiresAt, messageId header, payload JSON, idempotency key hash or '',
 * content hash, tags joined by ',', campaign id or '', id of the batch job that carries it or '', the
 * recipient's address, the sender's (From) address or '' (a campaign member's sender is its template's). A campaign member is also counted in its campaign's
 * hash (`P:campaign:<id>`, field `n:accepted`), whose `n:<state>` fields count its terminal states.
 * Two passes: if any key conflicts (same key, other content) nothing is written.
 * Result: { 'conflict', index } or a flat list of { status, id } per message, status 'new' or 'duplicate'
 * (a duplicate returns the id first accepted under its key, and writes nothing).
 */
export const ACCEPT_MESSAGES = `
local P, now, idemTtl, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local existing = {}
for i = 0, n - 1 do
  local b = 5 + i * 11
  local idem, hash = ARGV[b + 4], ARGV[b + 5]
  if idem ~= '' then
    local held = redis.call('GET', P .. ':idem:' .. idem)
    if held then
      local sep = string.find(held, ' ', 1, true)
      if string.sub(held, sep + 1) ~= hash then return { 'conflict', i } end
      existing[i] = string.sub(held, 1, sep - 1)
    end
  end
end
local out = {}
for i = 0, n - 1 do
  local b = 5 + i * 11
  local id, expiresAt, messageId, data, idem, hash, tags, campaign, job =
    ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 8]
  local rcpt, from = ARGV[b + 9], ARGV[b + 10]
  if existing[i] then
    out[#out + 1] = 'duplicate'
    out[#out + 1] = existing[i]
  else
    local key = P .. ':msg:' .. id
    redis.call('HSET', key, 'state', 'accepted', 'acceptedAt', now, 'updatedAt', now, 'expiresAt', expiresAt,
      'messageId', messageId, 'attempts', 0, 'data', data)
    redis.call('ZADD', P .. ':deadline', expiresAt, id)
    if idem ~= '' then
      redis.call('SET', P .. ':idem:' .. idem, id .. ' ' .. hash, 'EX', idemTtl)
      redis.call('HSET', key, 'idem', idem)
    end
    if tags ~= '' then
      for tag in string.gmatch(tags, '[^,]+') do redis.call('SADD', P .. ':tag:' .. tag, id) end
    end
    if job ~= '' then redis.call('HSET', key, 'job', job) end
    if rcpt ~= '' then redis.call('HSET', key, 'rcpt', rcpt) end
    if from ~= '' then redis.call('HSET', key, 'from', from) end
    if campaign ~= '' then
      redis.call('HSET', key, 'campaign', campaign)
      redis.call('HINCRBY', P .. ':campaign:' .. campaign, 'n:accepted', 1)
    end
    redis.call('HINCRBY', P .. ':stats', 'accepted', 1)
    out[#out + 1] = 'new'
    out[#out + 1] = id
  end
end
return out
`;

/**
 * markQueued: the jobs of these accepted messages are in the queue; only now is the producer told "yes".
 * ARGV[1] prefix, ARGV[2] now, ARGV[3..] ids. Result: number moved from accepted to queued.
 */
export const MARK_QUEUED = `
local P, now = ARGV[1], ARGV[2]
local moved = 0
for i = 3, #ARGV do
  local key = P .. ':msg:' .. ARGV[i]
  if redis.call('HGET', key, 'state') == 'accepted' then
    redis.call('HSET', key, 'state', 'queued', 'updatedAt', now)
    redis.call('HINCRBY', P .. ':stats', 'queued', 1)
    moved = moved + 1
  end
end
return moved
`;

/**
 * claimMessage: one worker attempt takes a message before sending, fenced by its token.
 * ARGV[1] prefix, ARGV[2] id, ARGV[3] token, ARGV[4] now, ARGV[5] ambiguity grace (ms),
 * ARGV[6] ambiguity policy ('resend' | 'stop'), ARGV[7] retention (s).
 * Result, one of:
 *   { 'send', payload, attempts, flag }  send now; flag '' or 'ambiguous_resend' or 'crash_resend'
 *   { 'done', state }                    already terminal: acknowledge the job without sending
 *   { 'ended', state }                   made terminal now, unsent (expired, ambiguous under 'stop', failed)
 *   { 'wait', ms }                       another attempt may still be finishing: look again in ms
 *   { 'missing' }                        no record (nothing to send)
 * A message past its deadline ends here as expired, unsent. A previous attempt that wrote the whole body and
 * recorded no outcome is the RFC 1047 case: after the grace (so a slow but living worker can still commit
 * its result) the policy decides between resending (same Message-ID) and ending as ambiguous.
 */
export const CLAIM_MESSAGE =
  TERMINAL +
  FINISH +
  `
local P, id, token, now, grace, policy, retention =
  ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7]
local key = P .. ':msg:' .. id
local f = redis.call('HMGET', key, 'state', 'expiresAt', 'token', 'sendingAt', 'bodyAt', 'data', 'attempts')
local state = f[1]
if not state then return { 'missing' } end
if TERMINAL[state] then
  redis.call('HINCRBY', P .. ':stats', 'duplicate_suppressed', 1)
  return { 'done', state }
end
local flag = ''
if state == 'sending' and f[3] ~= token then
  local since = now - tonumber(f[4] or '0')
  if since < grace then return { 'wait', grace - since } end
  if f[5] then
    redis.call('HINCRBY', key, 'ambiguous', 1)
    log(key, cjson.encode({ at = now, outcome = 'ambiguous', reason = 'no_outcome_after_body' }))
    if policy == 'stop' then
      redis.call('HINCRBY', P .. ':stats', 'ambiguous_stopped', 1)
      finish(P, id, key, 'ambiguous', now, retention, '', '', '', 'no_reply_after_body')
      return { 'ended', 'ambiguous' }
    end
    redis.call('HINCRBY', P .. ':stats', 'ambiguous_resent', 1)
    flag = 'ambiguous_resend'
  else
    redis.call('HINCRBY', P .. ':stats', 'crash_resent', 1)
    flag = 'crash_resend'
  end
end
if now >= tonumber(f[2]) then
  finish(P, id, key, 'expired', now, retention, '', '', '', 'max_age')
  return { 'ended', 'expired' }
end
if not f[6] then
  finish(P, id, key, 'failed', now, retention, '', '', '', 'content_missing')
  return { 'ended', 'failed' }
end
local attempts = redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'state', 'sending', 'token', token, 'sendingAt', now, 'updatedAt', now)
redis.call('HDEL', key, 'bodyAt')
return { 'send', f[6], attempts, flag }
`;

/**
 * markBodyWritten: this attempt handed the whole body to the socket; from now on a lost connection is
 * ambiguous. ARGV[1] prefix, ARGV[2] id, ARGV[3] token, ARGV[4] now. Result 1 if recorded, 0 if fenced out.
 */
export const MARK_BODY_WRITTEN = `
local key = ARGV[1] .. ':msg:' .. ARGV[2]
if redis.call('HGET', key, 'token') ~= ARGV[3] then return 0 end
redis.call('HSET', key, 'bodyAt', ARGV[4])
return 1
`;

/**
 * recordOutcome: the result of one attempt.
 * ARGV[1] prefix, ARGV[2] id, ARGV[3] token, ARGV[4] now, ARGV[5] outcome (delivered | deferred | released |
 * bounced | expired | failed | ambiguous; `released` hands the message back unattempted, e.g. after a relay
 * configuration fault, and takes back the attempt the claim counted), ARGV[6] reply code or '', ARGV[7] enhanced status or '', ARGV[8] reply
 * text or '', ARGV[9] reason or '', ARGV[10] retention (s).
 * Terminal states are written once. Only the attempt holding the token may change the state (fencing), with
 * one exception: `delivered` is a fact the relay reported and wins over any non-terminal state.
 * An outcome without a reply code from an attempt that had written its body counts as ambiguous (RFC 1047).
 * Result: 'ok', 'terminal' (already final, nothing written) or 'fenced' (another attempt owns the message).
 */
export const RECORD_OUTCOME =
  TERMINAL +
  FINISH +
  `
local P, id, token, now, outcome, code, enhanced, response, reason, retention =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local key = P .. ':msg:' .. id
local f = redis.call('HMGET', key, 'state', 'token', 'bodyAt')
if not f[1] then return 'missing' end
if TERMINAL[f[1]] then return 'terminal' end
if outcome ~= 'delivered' and f[2] ~= token then return 'fenced' end
-- The body went out and no reply came back: the relay may have the message (RFC 1047). Counted per message
-- and in the stats, whatever happens next (resent after a deferral, stopped, or expired).
if outcome ~= 'delivered' and outcome ~= 'released' and code == '' and f[3] then
  redis.call('HINCRBY', key, 'ambiguous', 1)
  if outcome == 'ambiguous' then
    redis.call('HINCRBY', P .. ':stats', 'ambiguous_stopped', 1)
  elseif outcome == 'deferred' then
    redis.call('HINCRBY', P .. ':stats', 'ambiguous_resent', 1)
  else
    redis.call('HINCRBY', P .. ':stats', 'ambiguous_ended', 1)
  end
end
if outcome == 'released' then
  redis.call('HSET', key, 'state', 'queued', 'updatedAt', now)
  redis.call('HINCRBY', key, 'attempts', -1)
  redis.call('HDEL', key, 'token', 'bodyAt')
  return 'ok'
end
log(key, cjson.encode({ at = tonumber(now), outcome = outcome, code = code, enhanced = enhanced,
  response = response, reason = reason }))
if outcome == 'deferred' then
  redis.call('HSET', key, 'state', 'queued', 'updatedAt', now, 'code', code, 'enhanced', enhanced,
    'response', response, 'reason', reason)
  redis.call('HDEL', key, 'token', 'bodyAt')
  redis.call('HINCRBY', P .. ':stats', 'deferred', 1)
  return 'ok'
end
finish(P, id, key, outcome, now, retention, code, enhanced, response, reason)
return 'ok'
`;

/**
 * finishMessages: end non-terminal messages without an attempt (cancel, expire by the reconciler, fail an
 * enqueue that never completed). ARGV[1] prefix, ARGV[2] now, ARGV[3] state, ARGV[4] reason,
 * ARGV[5] retention (s), ARGV[6] only-from states joined by ',' ('' = any non-terminal except sending),
 * ARGV[7..] ids. Result: ids that were ended.
 */
export const FINISH_MESSAGES =
  TERMINAL +
  FINISH +
  `
local P, now, state, reason, retention, from = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local allowed = {}
for s in string.gmatch(from, '[^,]+') do allowed[s] = true end
local ended = {}
for i = 7, #ARGV do
  local id = ARGV[i]
  local key = P .. ':msg:' .. id
  local current = redis.call('HGET', key, 'state')
  if current and not TERMINAL[current] then
    local ok
    if from == '' then ok = current ~= 'sending' else ok = allowed[current] == true end
    if ok then
      log(key, cjson.encode({ at = tonumber(now), outcome = state, reason = reason }))
      finish(P, id, key, state, now, retention, '', '', '', reason)
      ended[#ended + 1] = id
    end
  end
end
return ended
`;
