import type { Redis } from 'ioredis';
import { NotFoundError, TERMINAL_STATES, type TerminalState } from '@mailroom/core';
import { mailroomKeys } from './keys.js';

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

/** Exact counts of a campaign's messages. `pending` = accepted and not yet in a terminal state. */
export interface CampaignCounts {
  readonly accepted: number;
  readonly pending: number;
  readonly terminal: Readonly<Record<TerminalState, number>>;
}

/** A campaign id: lower-case letters and digits, as message ids. */
const CAMPAIGN_ID = /^[0-9a-z]{1,64}$/;

/**
 * Campaigns in Redis: one hash per campaign (`<prefix>:campaign:<id>`) with the template stored once, the
 * state, and the counters the ledger scripts keep (`n:accepted`, `n:<terminal state>`).
 */
export class CampaignStore {
  private readonly keys: ReturnType<typeof mailroomKeys>;

  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
  ) {
    this.keys = mailroomKeys(prefix);
  }

  static isId(id: string): boolean {
    return CAMPAIGN_ID.test(id);
  }

  /** Writes a new campaign. Resolves false when the id is taken (nothing written). */
  async create(record: Omit<CampaignRecord, 'uploaded'>): Promise<boolean> {
    const created = await this.redis.hsetnx(this.keys.campaign(record.id), 'template', record.template);
    if (created !== 1) return false;
    await this.redis.hset(this.keys.campaign(record.id), {
      name: record.name,
      state: record.state,
      createdAt: String(record.createdAt),
      sendAt: String(record.sendAt),
      uploaded: '0',
    });
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

  async state(id: string): Promise<CampaignState | undefined> {
    return ((await this.redis.hget(this.keys.campaign(id), 'state')) ?? undefined) as
      CampaignState | undefined;
  }

  async markUploaded(id: string): Promise<void> {
    await this.redis.hset(this.keys.campaign(id), 'uploaded', '1');
  }

  /**
   * Moves the campaign to `state`. A cancelled campaign stays cancelled. Resolves with the state it is in
   * afterwards; rejects with NotFoundError for an unknown id.
   */
  async setState(id: string, state: CampaignState): Promise<CampaignState> {
    const after = (await this.redis.eval(
      `local s = redis.call('HGET', KEYS[1], 'state')
       if not s then return false end
       if s == 'cancelled' then return s end
       redis.call('HSET', KEYS[1], 'state', ARGV[1])
       return ARGV[1]`,
      1,
      this.keys.campaign(id),
      state,
    )) as string | null;
    if (after === null) throw new NotFoundError(`no campaign ${id}`);
    return after as CampaignState;
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

  /** Ids of the campaign's messages, in pages (the ledger's tag index). */
  async *members(id: string, pageSize = 1000): AsyncGenerator<string[]> {
    let cursor = '0';
    do {
      const [next, ids] = await this.redis.sscan(this.keys.campaignMembers(id), cursor, 'COUNT', pageSize);
      cursor = next;
      if (ids.length > 0) yield ids;
    } while (cursor !== '0');
  }
}
