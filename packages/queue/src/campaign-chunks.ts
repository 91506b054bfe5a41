import type { Redis } from 'ioredis';
import { MailroomError } from '@mailroom/core';
import { campaignMemberId } from './campaign-member-ids.js';
import {
  APPEND_CAMPAIGN_CHUNK,
  MARK_CAMPAIGN_CHUNK_QUEUED,
  RETIRE_FED_CAMPAIGN,
  MATERIALISE_CAMPAIGN_CHUNK,
} from './campaign-scripts.js';
import type { CampaignState } from './campaign-store.js';
import { mailroomKeys } from './keys.js';
import { LuaScript } from './lua-script.js';

const scripts = {
  append: new LuaScript('appendCampaignChunk', APPEND_CAMPAIGN_CHUNK),
  materialise: new LuaScript('materialiseCampaignChunk', MATERIALISE_CAMPAIGN_CHUNK),
  markQueued: new LuaScript('markCampaignChunkQueued', MARK_CAMPAIGN_CHUNK_QUEUED),
  retire: new LuaScript('retireFedCampaign', RETIRE_FED_CAMPAIGN),
};

/** A chunk could not be appended: the campaign is gone, or the chunk is not the next one. */
export class CampaignChunkError extends MailroomError {
  override readonly name = 'CampaignChunkError';
  constructor(message: string) {
    super('ERR_INTERNAL', message);
  }
}

/** What the feeder needs to know about one campaign, read in one round trip. */
export interface CampaignFeedState {
  readonly id: string;
  /** Undefined when the campaign hash is gone. */
  readonly state: CampaignState | undefined;
  readonly sendAt: number;
  readonly uploaded: boolean;
  readonly chunkSize: number;
  readonly batchSize: number;
  readonly chunks: number;
  readonly chunked: number;
  readonly fed: number;
  readonly queued: number;
  /** First chunk ended by a cancel (never materialised); chunks from here on need no jobs. */
  readonly cancelledFrom: number | undefined;
}

/** The outcome of one materialise call (see materialiseCampaignChunk in campaign-scripts.ts). */
export type MaterialiseResult =
  | { readonly kind: 'fed' | 'expired'; readonly count: number }
  | { readonly kind: 'later' | 'none' | 'missing' }
  | { readonly kind: 'state'; readonly state: string }
  | { readonly kind: 'moved'; readonly fed: number };

/** One `send-batch` job of a chunk: its deterministic job id and its members. */
export interface ChunkBatch {
  readonly jobId: string;
  readonly ids: readonly string[];
}

/**
 * The compact side of chunked campaigns: appending recipient chunks (the upload), and materialising them
 * into ledger records and batch jobs (the worker's feeder). Every step is one atomic script with a cursor
 * in the campaign hash, so a crash between steps repeats a step at most, and a repeated step writes nothing
 * twice: `fed` says which chunks have records, `queued` which have their jobs (job ids are derived, so
 * adding them again is a no-op for BullMQ).
 */
export class CampaignChunks {
  private readonly keys: ReturnType<typeof mailroomKeys>;

  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
  ) {
    this.keys = mailroomKeys(prefix);
  }

  /**
   * Appends chunk `index` (count recipients, text from CampaignChunkWriter). Chunks must come in order;
   * several may be in flight on one connection (Redis runs them in the order sent). Resolves 'cancelled'
   * when the campaign was cancelled meanwhile (the recipients are accepted and ended `cancelled`).
   */
  async append(
    campaign: string,
    index: number,
    count: number,
    text: string,
    now = Date.now(),
  ): Promise<'ok' | 'cancelled'> {
    const reply = (await scripts.append.run(
      this.redis,
      [],
      [this.prefix, campaign, index, count, now, text],
    )) as string[];
    if (reply[0] === 'ok' || reply[0] === 'cancelled') return reply[0];
    if (reply[0] === 'order') {
      throw new CampaignChunkError(`campaign ${campaign}: chunk ${index} is not next (${reply[1]} stored)`);
    }
    throw new CampaignChunkError(`no chunked campaign ${campaign}`);
  }

  /** Campaigns the feeder still has work for, oldest first. */
  async feeding(limit = 1000): Promise<string[]> {
    return this.redis.zrange(this.keys.campaignsFeeding(), String(0), String(limit - 1));
  }

  async feedState(id: string): Promise<CampaignFeedState> {
    const f = await this.redis.hmget(
      this.keys.campaign(id),
      'state',
      'sendAt',
      'uploaded',
      'chunkSize',
      'batchSize',
      'chunks',
      'n:chunked',
      'fed',
      'queued',
      'cancelledFrom',
    );
    const num = (i: number) => Number(f[i] ?? 0);
    return {
      id,
      state: (f[0] ?? undefined) as CampaignState | undefined,
      sendAt: num(1),
      uploaded: f[2] === '1',
      chunkSize: num(3),
      batchSize: num(4),
      chunks: num(5),
      chunked: num(6),
      fed: num(7),
      queued: num(8),
      cancelledFrom: typeof f[9] === 'string' ? Number(f[9]) : undefined,
    };
  }

  /**
   * Materialises (or expires) chunk `index`, which must be the campaign's next unfed chunk. `feed` is the
   * campaign as read by feedState (any time after the chunk was appended): it sizes the chunk, whose
   * member ids are derived here and handed to the script.
   */
  async materialise(
    feed: CampaignFeedState,
    index: number,
    mode: 'feed' | 'expire',
    now = Date.now(),
  ): Promise<MaterialiseResult> {
    let ids = '';
    if (mode === 'feed') {
      const first = index * feed.chunkSize;
      for (let i = first; i < first + this.countOf(feed, index); i += 1) ids += campaignMemberId(feed.id, i);
    }
    const reply = (await scripts.materialise.run(
      this.redis,
      [],
      [this.prefix, feed.id, index, now, mode, ids],
    )) as (string | number)[];
    switch (reply[0]) {
      case 'fed':
      case 'expired':
        return { kind: reply[0], count: Number(reply[1]) };
      case 'state':
        return { kind: 'state', state: String(reply[1]) };
      case 'moved':
        return { kind: 'moved', fed: Number(reply[1]) };
      case 'later':
      case 'none':
        return { kind: reply[0] };
      case 'ids':
        throw new CampaignChunkError(
          `campaign ${feed.id}: chunk ${index} holds ${reply[1]} recipients, not what its state read said`,
        );
      default:
        return { kind: 'missing' };
    }
  }

  /** Recipients in chunk `index` (every chunk is full but the last). */
  private countOf(feed: CampaignFeedState, index: number): number {
    return Math.max(0, Math.min(feed.chunkSize, feed.chunked - index * feed.chunkSize));
  }

  /** True when chunk `index` ended without being materialised (expired): it has no members to queue. */
  async endedUnmaterialised(campaign: string, index: number): Promise<boolean> {
    return (await this.redis.hexists(this.keys.campaignEndedChunks(campaign), String(index))) === 1;
  }

  /** The batch jobs of chunk `index`: ids and members derived from the campaign id, as the script did. */
  batches(feed: CampaignFeedState, index: number): ChunkBatch[] {
    const first = index * feed.chunkSize;
    const count = this.countOf(feed, index);
    const out: ChunkBatch[] = [];
    for (let b = 0; b * feed.batchSize < count; b += 1) {
      const ids: string[] = [];
      const end = Math.min(count, (b + 1) * feed.batchSize);
      for (let j = b * feed.batchSize; j < end; j += 1) ids.push(campaignMemberId(feed.id, first + j));
      out.push({ jobId: `${feed.id}-${index}-${b}`, ids });
    }
    return out;
  }

  /** Records that chunk `index`'s jobs are queued. Resolves false if another feeder did it first. */
  async markQueued(campaign: string, index: number): Promise<boolean> {
    return Number(await scripts.markQueued.run(this.redis, [], [this.prefix, campaign, index])) === 1;
  }

  /** Drops the campaign from the feeding set if nothing is left to do for it. Resolves true if dropped. */
  async retire(campaign: string): Promise<boolean> {
    return Number(await scripts.retire.run(this.redis, [], [this.prefix, campaign])) === 1;
  }
}

/** The chunk a batch job id `<campaign>-<chunk>-<batch>` belongs to, or undefined for other job ids. */
export function chunkOfBatchJob(jobId: string): { campaign: string; chunk: number } | undefined {
  const match = /^([0-9a-z]+)-(\d+)-\d+$/.exec(jobId);
  return match ? { campaign: match[1]!, chunk: Number(match[2]) } : undefined;
}
