/**
 * Every key Mailroom writes, and every key BullMQ writes for Mailroom's queues, starts with one prefix that
 * holds a Redis Cluster hash tag (`{...}`), so each Lua script touches a single slot.
 */
export const DEFAULT_PREFIX = '{mailroom}';

/** The queue of single messages (transactional mail and messages sent one by one). */
export const MAIL_QUEUE = 'mail';

/** Name of the BullMQ job that carries one message. */
export const SEND_JOB = 'send';

/** Name of the BullMQ job that carries a batch of one campaign's messages. */
export const SEND_BATCH_JOB = 'send-batch';

/** Queue priority of campaign batches: transactional mail (no priority) always goes first. */
export const CAMPAIGN_PRIORITY = 10;

/** Throws unless the prefix carries a non-empty hash tag. */
export function assertPrefix(prefix: string): void {
  if (!/\{[^{}]+\}/.test(prefix)) {
    throw new Error(`queue prefix "${prefix}" must contain a Redis Cluster hash tag such as {mailroom}`);
  }
}

/** Redis keys owned by Mailroom (BullMQ's own keys are derived by BullMQ from the same prefix). */
export function mailroomKeys(prefix: string) {
  return {
    /** A content-addressed body part or attachment: `<prefix>:content:<sha256>`. */
    content: (sha256: string) => `${prefix}:content:${sha256}`,
    /** A campaign's hash: template, state, counts. */
    campaign: (id: string) => `${prefix}:campaign:${id}`,
    /** Ids of a campaign's messages (the ledger's tag index). */
    campaignMembers: (id: string) => `${prefix}:tag:${campaignTag(id)}`,
    /** A scope's suppression list: its layout hash; its buckets are `<this>:<depth>:<index>`. */
    suppressions: (scope: string) => `${prefix}:supp:${scope}`,
    /** One chunk of a campaign's recipients, stored compactly until the feeder materialises it. */
    campaignChunk: (id: string, chunk: number) => `${prefix}:campaign:${id}:chunk:${chunk}`,
    /** List of the acceptance instants (ms) of a campaign's chunks, by chunk index. */
    campaignChunkTimes: (id: string) => `${prefix}:campaign:${id}:times`,
    /** Hash of the chunks that ended without being materialised (expired): chunk index -> "state at". */
    campaignEndedChunks: (id: string) => `${prefix}:campaign:${id}:ended`,
    /** Sorted set of campaigns the feeder still has work for, by creation time. */
    campaignsFeeding: () => `${prefix}:campaigns:feeding`,
    /** The lease of the campaign feeder (one worker materialises chunks at a time). */
    campaignFeederLease: () => `${prefix}:campaign-feeder:lease`,
  };
}

/** The ledger tag that indexes a campaign's messages. */
export function campaignTag(campaignId: string): string {
  return `campaign:${campaignId}`;
}
