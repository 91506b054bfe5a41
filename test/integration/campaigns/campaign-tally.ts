import type { Redis } from 'ioredis';
import type { MailroomClient } from '@mailroom/client';
import { campaignMemberId } from '@mailroom/queue';

/** Redis keys matching a pattern, counted with SCAN (never KEYS on a busy server). */
export async function countKeys(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  for (let rounds = 0; rounds < 100_000; rounds += 1) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    n += keys.length;
    cursor = next;
    if (cursor === '0') return n;
  }
  throw new Error(`SCAN ${pattern} did not finish`);
}

/** Ledger records of messages (`<prefix>:msg:<id>`, not their logs). */
export async function messageRecords(redis: Redis): Promise<number> {
  return (await countKeys(redis, '{mailroom}:msg:*')) - (await countKeys(redis, '{mailroom}:msg:*:log'));
}

/** Jobs in the mail queue, in every state. */
export async function queueJobs(redis: Redis): Promise<number> {
  const key = '{mailroom}:mail:';
  const [wait, prioritized, delayed, active] = await Promise.all([
    redis.llen(`${key}wait`),
    redis.zcard(`${key}prioritized`),
    redis.zcard(`${key}delayed`),
    redis.llen(`${key}active`),
  ]);
  return wait + prioritized + delayed + active;
}

/**
 * Every member's state as the producer sees it (`client.status`, one by one), counted by state: what the
 * ledger says message by message, to compare with the campaign's own counters.
 */
export async function tallyMembers(
  client: MailroomClient,
  campaignId: string,
  accepted: number,
): Promise<Record<string, number>> {
  const tally: Record<string, number> = {};
  for (let i = 0; i < accepted; i += 1) {
    const { state } = await client.status(campaignMemberId(campaignId, i));
    tally[state] = (tally[state] ?? 0) + 1;
  }
  return tally;
}
