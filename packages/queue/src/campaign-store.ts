import type { Redis } from 'ioredis';
import { NotFoundError, TERMINAL_STATES, type TerminalState } from '@mailroom/core';
import { CampaignChunks } from './campaign-chunks.js';
import { campaignMemberId } from './campaign-member-ids.js';
import { SET_CAMPAIGN_STATE } from './campaign-scripts.js';
import { mailroomKeys } from './keys.js';
import { LuaScript } from './lua-script.js';

/** running: batches are sent; paused: batches wait; cancelled: what was not sent yet ends `cancelled`. */
export type CampaignState = 'running' | 'paused' | 'cancelled';

/** A campaign as stored: its template once, its state, and when it may start. */
export interface CampaignRecord {
  readonly id: string;
  readonly name: string;
  readonly state: CampaignState;
  /** The validated template, as JSON (see @mailroom/mime's MessageTemplate). */
  readonly template: string;
  readonly createdAt: number;
  /** Not before this instant (ms). */
  readonly sendAt: number;
  /** True once every recipient of the upload has been accepted (or refused). */
  readonly uploaded: boolean;
}

/**
 * How a chunked campaign's recipients are kept and turned into messages. Stored with the campaign; the
 * upload writes chunks of `chunkSize`, the feeder materialises them and queues batch jobs of `batchSize`.
 */
export interface CampaignLayout {
  /** Recipients per stored chunk (the last chunk may hold fewer). */
  readonly chunkSize: number;
  /** Messages per `send-batch` job. */
  readonly batchSize: number;
  /** A member expires this long after its chunk was accepted, or after `sendAt` if later (ms). */
  readonly maxAgeMs: number;
  /** Domain of the members' Message-ID headers (`<id@domain>`), already normalised. */
  readonly messageIdDomain: string;
  /** The producer's tags, given to every member's ledger record (besides `campaign:<id>`). */
  readonly tags: readonly string[];
}

/** Exact counts of a campaign's messages. `pending` = accepted and not yet in a terminal state. */
export interface CampaignCounts {
  readonly accepted: number;
  readonly pending: number;
  readonly terminal: Readonly<Record<TerminalState, number>>;
}

/**
 * Where the feeder is with a chunked campaign: recipients still in compact chunks, and those that have
 * ledger records. `unmaterialised` are pending (accepted, not terminal) without a record; members that
 * ended without one (a cancel, or expiry before materialisation) are in neither.
 */
export interface CampaignFeedProgress {
  readonly chunks: number;
  /** Chunks materialised or ended. */
  readonly fed: number;
  /** Chunks whose batch jobs are in the queue. */
  readonly queued: number;
  readonly materialised: number;
  readonly unmaterialised: number;
}

/** A campaign id: lower-case letters and digits, as message ids. */
const CAMPAIGN_ID = /^[0-9a-z]{1,64}$/;

const setStateScript = new LuaScript('setCampaignState', SET_CAMPAIGN_STATE);

/**
 * Campaigns in Redis: one hash per campaign (`<prefix>:campaign:<id>`) with the template stored once, the
 * state, and the counters the ledger scripts keep (`n:accepted`, `n:<terminal state>`).
 *
 * A chunked campaign (the hash's `v` is 2) keeps its recipients compactly in chunks until a worker's
 * feeder materialises them into ledger records and batch jobs, only as fast as the queue drains (see
 * CampaignChunks and campaign-scripts.ts). Its members' ids follow from the campaign id and their index
 * (campaign-member-ids.ts). Earlier campaigns, whose members were all recorded at upload, are read as
 * before.
 */
export class CampaignStore {
  private readonly keys: ReturnType<typeof mailroomKeys>;
  /** The chunks of the store's campaigns: appended by the upload, materialised by the feeder. */
  readonly chunks: CampaignChunks;

  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
  ) {
    this.keys = mailroomKeys(prefix);
    this.chunks = new CampaignChunks(redis, prefix);
  }

  static isId(id: string): boolean {
    return CAMPAIGN_ID.test(id);
  }

  /**
   * Writes a new chunked campaign, empty, and puts it on the feeder's list. Resolves false when the id is
   * taken (nothing written).
   */
  async create(record: Omit<CampaignRecord, 'uploaded'>, layout: CampaignLayout): Promise<boolean> {
    const key = this.keys.campaign(record.id);
    const created = await this.redis.hsetnx(key, 'template', record.template);
    if (created !== 1) return false;
    await this.redis
      .multi()
      .hset(key, {
        name: record.name,
        state: record.state,
        createdAt: String(record.createdAt),
        sendAt: String(record.sendAt),
        uploaded: '0',
        v: '2',
        chunkSize: String(layout.chunkSize),
        batchSize: String(layout.batchSize),
        maxAgeMs: String(layout.maxAgeMs),
        midDomain: layout.messageIdDomain,
        tags: layout.tags.join(','),
        chunks: '0',
        fed: '0',
        queued: '0',
        'n:chunked': '0',
        'n:accepted': '0',
      })
      .zadd(this.keys.campaignsFeeding(), record.createdAt, record.id)
      .exec();
    return true;
  }

  async get(id: string): Promise<CampaignRecord | undefined> {
    const h = await this.redis.hgetall(this.keys.campaign(id));
    if (h.template === undefined) return undefined;
    return {
      id,
      name: h.name ?? '',
      state: (h.state ?? 'running') as CampaignState,
      template: h.template,
      createdAt: Number(h.createdAt ?? 0),
      sendAt: Number(h.sendAt ?? 0),
      uploaded: h.uploaded === '1',
    };
  }

  async template(id: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.campaign(id), 'template')) ?? undefined;
  }

  /** The producer's tags of a campaign (chunked campaigns keep them in the hash), in the order given. */
  async tags(id: string): Promise<string[]> {
    const joined = await this.redis.hget(this.keys.campaign(id), 'tags');
    return joined ? joined.split(',').filter((t) => t !== '') : [];
  }

  async state(id: string): Promise<CampaignState | undefined> {
    return ((await this.redis.hget(this.keys.campaign(id), 'state')) ?? undefined) as
      CampaignState | undefined;
  }

  async markUploaded(id: string): Promise<void> {
    await this.redis.hset(this.keys.campaign(id), 'uploaded', '1');
  }

  /**
   * Moves the campaign to `state`. A cancelled campaign stays cancelled. Cancelling ends every recipient
   * that has no ledger record yet as `cancelled` at once, in bulk (counted exactly, its chunk deleted);
   * members with a record are ended by the caller (see members()) or by the worker that meets them.
   * Resolves with the state it is in afterwards; rejects with NotFoundError for an unknown id.
   */
  async setState(id: string, state: CampaignState, now = Date.now()): Promise<CampaignState> {
    return (await this.changeState(id, state, now)).state;
  }

  /**
   * Cancels the campaign (see setState) and resolves with the number of recipients it ended in bulk, those
   * that had no ledger record yet; 0 when it was cancelled already. Members with a record are the
   * caller's to end (members()). Rejects with NotFoundError for an unknown id.
   */
  async cancel(id: string, now = Date.now()): Promise<number> {
    return (await this.changeState(id, 'cancelled', now)).endedInBulk;
  }

  private async changeState(
    id: string,
    state: CampaignState,
    now: number,
  ): Promise<{ state: CampaignState; endedInBulk: number }> {
    const reply = (await setStateScript.run(this.redis, [], [this.prefix, id, state, now])) as
      [string, number] | null;
    if (reply === null) throw new NotFoundError(`no campaign ${id}`);
    return { state: reply[0] as CampaignState, endedInBulk: Number(reply[1]) };
  }

  async counts(id: string): Promise<CampaignCounts> {
    const h = await this.redis.hgetall(this.keys.campaign(id));
    if (h.template === undefined) throw new NotFoundError(`no campaign ${id}`);
    const terminal = Object.fromEntries(TERMINAL_STATES.map((s) => [s, Number(h[`n:${s}`] ?? 0)])) as Record<
      TerminalState,
      number
    >;
    const accepted = Number(h['n:accepted'] ?? 0);
    const ended = Object.values(terminal).reduce((a, b) => a + b, 0);
    return { accepted, pending: accepted - ended, terminal };
  }

  /** The feeder's progress through a chunked campaign; undefined for an unknown or earlier campaign. */
  async progress(id: string): Promise<CampaignFeedProgress | undefined> {
    const layout = await this.memberLayout(id);
    if (!layout) return undefined;
    const materialised = layout.materialisedChunks.reduce((n, k) => n + layout.countOf(k), 0);
    let unmaterialised = 0;
    for (let k = layout.fed; k < layout.chunks; k += 1) unmaterialised += layout.countOf(k);
    return { chunks: layout.chunks, fed: layout.fed, queued: layout.queued, materialised, unmaterialised };
  }

  /**
   * Ids of the campaign's messages that have ledger records, in pages. For a chunked campaign these are
   * the members of the chunks materialised so far (members still in chunks have no record to end).
   */
  async *members(id: string, pageSize = 1000): AsyncGenerator<string[]> {
    const layout = await this.memberLayout(id);
    if (!layout) {
      yield* this.taggedMembers(id, pageSize);
      return;
    }
    let page: string[] = [];
    for (const k of layout.materialisedChunks) {
      const first = k * layout.chunkSize;
      for (let i = first; i < first + layout.countOf(k); i += 1) {
        page.push(campaignMemberId(id, i));
        if (page.length >= pageSize) {
          yield page;
          page = [];
        }
      }
    }
    if (page.length > 0) yield page;
  }

  private async *taggedMembers(id: string, pageSize: number): AsyncGenerator<string[]> {
    let cursor = '0';
    do {
      const [next, ids] = await this.redis.sscan(this.keys.campaignMembers(id), cursor, 'COUNT', pageSize);
      cursor = next;
      if (ids.length > 0) yield ids;
    } while (cursor !== '0');
  }

  private async memberLayout(id: string) {
    const [[, fields], [, endedChunks]] = (await this.redis
      .multi()
      .hmget(
        this.keys.campaign(id),
        'v',
        'chunkSize',
        'n:chunked',
        'chunks',
        'fed',
        'queued',
        'cancelledFrom',
      )
      .hkeys(this.keys.campaignEndedChunks(id))
      .exec()) as [[null, (string | null)[]], [null, string[]]];
    const [v, chunkSize, chunked, chunks, fed, queued, cancelledFrom] = fields;
    if (v !== '2') return undefined;
    const size = Number(chunkSize);
    const total = Number(chunked);
    const ended = new Set(endedChunks.map(Number));
    const upTo = Math.min(Number(fed), typeof cancelledFrom === 'string' ? Number(cancelledFrom) : Infinity);
    const materialisedChunks: number[] = [];
    for (let k = 0; k < upTo; k += 1) if (!ended.has(k)) materialisedChunks.push(k);
    return {
      chunkSize: size,
      chunks: Number(chunks),
      fed: Number(fed),
      queued: Number(queued),
      materialisedChunks,
      countOf: (k: number) => Math.max(0, Math.min(size, total - k * size)),
    };
  }
}
