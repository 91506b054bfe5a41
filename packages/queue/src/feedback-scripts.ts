/**
 * The feedback recorder's Lua script: an asynchronous bounce, complaint or delay notice written on the
 * message's ledger record. Keys are passed in KEYS (all under the prefix's hash tag, so one Redis Cluster
 * slot); the ledger's own fields and its scripts (ledger-scripts.ts) are never changed by it.
 *
 * What it writes (P = prefix, <kind> = hard_bounce | soft_bounce | complaint | delay):
 *   P:msg:<id>        field `fb:<kind>`: when the first event of that kind was recorded (ms). It makes
 *                     recording idempotent per (message, kind) and lives and expires with the record.
 *   P:msg:<id>:log    one entry `{ at, outcome: 'feedback_<kind>', code, enhanced, response, reason }`,
 *                     newest last, capped at 50 like the attempts; given the record's remaining lifetime.
 *   P:stats           `feedback_<kind>`, `feedback_duplicate`, `feedback_unmatched`, `feedback_suppressed`,
 *                     `feedback_not_suppressed`.
 *   P:campaign:<c>    `n:feedback_<kind>` for a campaign member, when the campaign's hash still exists.
 *
 * The message's `state` is never touched: terminal states stay write-once. A message `delivered` that bounces
 * later stays `delivered` and its history shows the `feedback_hard_bounce` entry after the delivery, as
 * Postfix's log shows `status=sent` and then the bounce that came back, and KumoMTA logs a Delivery record
 * and then an OOB (out-of-band) one.
 */

/**
 * recordFeedback: one event on one message, once per kind.
 * KEYS[1] P:msg:<id>, KEYS[2] P:msg:<id>:log, KEYS[3] P:stats, KEYS[4] (optional) P:campaign:<campaign id>.
 * ARGV[1] kind, ARGV[2] now (ms), ARGV[3] SMTP reply code or '', ARGV[4] enhanced status or '',
 * ARGV[5] diagnostic or '', ARGV[6] reason (the report's source, e.g. `dsn:gmail`) or '',
 * ARGV[7] suppression: 'yes' (the recipient was added to the suppression list), 'no' (a hard bounce or
 * complaint whose recipient could not be trusted) or '' (nothing to suppress: soft bounces and delays).
 * Result: { 'recorded', state }, { 'duplicate', state } (this kind was recorded before: nothing written but
 * the duplicate counter) or { 'missing', '' } (no record).
 */
export const RECORD_FEEDBACK = `
local kind, now = ARGV[1], ARGV[2]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HINCRBY', KEYS[3], 'feedback_unmatched', 1)
  return { 'missing', '' }
end
if redis.call('HSETNX', KEYS[1], 'fb:' .. kind, now) == 0 then
  redis.call('HINCRBY', KEYS[3], 'feedback_duplicate', 1)
  return { 'duplicate', state }
end
redis.call('RPUSH', KEYS[2], cjson.encode({ at = tonumber(now), outcome = 'feedback_' .. kind, code = ARGV[3],
  enhanced = ARGV[4], response = ARGV[5], reason = ARGV[6] }))
redis.call('LTRIM', KEYS[2], -50, -1)
-- A finished record expires after its retention; its log goes with it (a message ended before any attempt
-- may have had no log until now). An unfinished record has no TTL yet: finishing it sets both.
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('HINCRBY', KEYS[3], 'feedback_' .. kind, 1)
if ARGV[7] == 'yes' then
  redis.call('HINCRBY', KEYS[3], 'feedback_suppressed', 1)
elseif ARGV[7] == 'no' then
  redis.call('HINCRBY', KEYS[3], 'feedback_not_suppressed', 1)
end
if KEYS[4] and redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'n:feedback_' .. kind, 1)
end
return { 'recorded', state }
`;
