import type { Redis } from 'ioredis';
import { campaignMemberOf } from './campaign-member-ids.js';
import { mailroomKeys } from './keys.js';
import type { MessageStatus } from './ledger.js';

/**
 * What can be said about an id that has no ledger record when it is a chunked campaign's member:
 * - `status`: the member has no record because it was never materialised: still `queued` in its chunk, or
 *   ended in bulk (`cancelled` by a cancel, `expired` before it was materialised);
 * - `materialised`: its chunk was materialised, so a record existed (or was created a moment ago);
 * - undefined: not a member of any chunked campaign.
 */
export type MemberLookup =
  { readonly kind: 'status'; readonly status: MessageStatus } | { readonly kind: 'materialised' };

/** Answers the status of a campaign member that has no ledger record, from its campaign and chunk. */
export async function unmaterialisedMemberStatus(
  redis: Redis,
  prefix: string,
  id: string,
): Promise<MemberLookup | undefined> {
  const member = campaignMemberOf(id);
  if (!member) return undefined;
  const keys = mailroomKeys(prefix);
  const f = await redis.hmget(
    keys.campaign(member.campaign),
    'v',
    'chunkSize',
    'n:chunked',
    'fed',
    'cancelledFrom',
    'cancelledAt',
    'midDomain',
    'sendAt',
    'maxAgeMs',
  );
  const [v, chunkSize, chunked, fed, cancelledFrom, cancelledAt, domain, sendAt, maxAgeMs] = f;
  if (v !== '2' || member.index >= Number(chunked)) return undefined;
  const chunk = Math.floor(member.index / Number(chunkSize));
  const [ended, at] = await Promise.all([
    redis.hget(keys.campaignEndedChunks(member.campaign), String(chunk)),
    redis.lindex(keys.campaignChunkTimes(member.campaign), chunk),
  ]);
  const acceptedAt = Number(at);
  const base = {
    id,
    messageId: `<${id}@${domain ?? ''}>`,
    attempts: 0,
    acceptedAt,
    expiresAt: Math.max(acceptedAt, Number(sendAt ?? 0)) + Number(maxAgeMs ?? 0),
    ambiguous: 0,
  };
  let end: { state: 'cancelled' | 'expired'; at: number; reason: string } | undefined;
  if (ended) {
    const [state, endedAt] = ended.split(' ');
    end = { state: state === 'cancelled' ? 'cancelled' : 'expired', at: Number(endedAt), reason: 'max_age' };
  } else if (typeof cancelledFrom === 'string' && chunk >= Number(cancelledFrom)) {
    end = { state: 'cancelled', at: Number(cancelledAt), reason: 'campaign_cancelled' };
  } else if (chunk < Number(fed)) {
    return { kind: 'materialised' };
  }
  if (!end)
    return { kind: 'status', status: { ...base, state: 'queued', updatedAt: acceptedAt, history: [] } };
  return {
    kind: 'status',
    status: {
      ...base,
      state: end.state,
      updatedAt: end.at,
      terminalAt: end.at,
      reason: end.reason,
      history: [{ at: end.at, outcome: end.state, reason: end.reason }],
    },
  };
}
