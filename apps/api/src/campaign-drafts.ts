import type { Redis } from 'ioredis';
import { newMessageId } from '@mailroom/core';
import { LuaScript } from '@mailroom/queue';

export type DraftState = 'draft' | 'uploading' | 'uploaded' | 'failed' | 'cancelled';

/** A campaign created over HTTP before its recipients arrive: the template and options, for a while. */
export interface CampaignDraft {
  readonly id: string;
  /** Lineage of the API key that created it: only that key, its rotations or an admin key may upload or cancel it. */
  readonly owner: string;
  readonly state: DraftState;
  readonly name?: string;
  /** The template as JSON. */
  readonly template: string;
  readonly sendAt?: number;
  readonly tags: readonly string[];
  readonly batchSize?: number;
  readonly expiresAt: number;
  /** The campaign the upload created. */
  readonly campaignId?: string;
}

/** moveDraft: KEYS[1] the draft. ARGV[1] expected state, ARGV[2] new state. Result: state before, or false. */
const MOVE_DRAFT = `
local s = redis.call('HGET', KEYS[1], 'state')
if not s then return false end
if s == ARGV[1] then redis.call('HSET', KEYS[1], 'state', ARGV[2]) end
return s
`;
const move = new LuaScript('moveDraft', MOVE_DRAFT);

/**
 * Campaign drafts in Redis (`<prefix>:api:draft:<id>`), kept `ttlSeconds` from creation. A draft moves
 * draft -> uploading -> uploaded (or failed), or draft -> cancelled, each step atomic, so a draft's
 * recipients are uploaded at most once.
 */
export class CampaignDrafts {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
  ) {}

  private keyOf(id: string): string {
    return `${this.prefix}:api:draft:${id}`;
  }

  async create(
    input: Omit<CampaignDraft, 'id' | 'state' | 'expiresAt' | 'campaignId'>,
  ): Promise<CampaignDraft> {
    const id = newMessageId();
    const expiresAt = Date.now() + this.ttlSeconds * 1000;
    const fields: Record<string, string> = {
      owner: input.owner,
      state: 'draft',
      template: input.template,
      tags: JSON.stringify(input.tags),
      expiresAt: String(expiresAt),
      ...(input.name === undefined ? {} : { name: input.name }),
      ...(input.sendAt === undefined ? {} : { sendAt: String(input.sendAt) }),
      ...(input.batchSize === undefined ? {} : { batchSize: String(input.batchSize) }),
    };
    await this.redis.multi().hset(this.keyOf(id), fields).expire(this.keyOf(id), this.ttlSeconds).exec();
    return { ...input, id, state: 'draft', expiresAt };
  }

  async get(id: string): Promise<CampaignDraft | undefined> {
    const h = await this.redis.hgetall(this.keyOf(id));
    if (h.state === undefined || h.template === undefined || h.owner === undefined) return undefined;
    return {
      id,
      owner: h.owner,
      state: h.state as DraftState,
      template: h.template,
      tags: JSON.parse(h.tags ?? '[]') as string[],
      expiresAt: Number(h.expiresAt),
      ...(h.name === undefined ? {} : { name: h.name }),
      ...(h.sendAt === undefined ? {} : { sendAt: Number(h.sendAt) }),
      ...(h.batchSize === undefined ? {} : { batchSize: Number(h.batchSize) }),
      ...(h.campaignId === undefined ? {} : { campaignId: h.campaignId }),
    };
  }

  /** Moves the draft from `from` to `to`; resolves with the state it was in (undefined: no such draft). */
  async move(id: string, from: DraftState, to: DraftState): Promise<DraftState | undefined> {
    const before = (await move.run(this.redis, [this.keyOf(id)], [from, to])) as string | null;
    return before === null ? undefined : (before as DraftState);
  }

  async setCampaign(id: string, campaignId: string): Promise<void> {
    await this.redis.hset(this.keyOf(id), 'campaignId', campaignId);
  }
}
