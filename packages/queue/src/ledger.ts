import type { Redis } from 'ioredis';
import {
  IdempotencyConflictError,
  type AmbiguityPolicy,
  type MessageState,
  type TerminalState,
} from '@mailroom/core';
import {
  ACCEPT_MESSAGES,
  CLAIM_MESSAGE,
  FINISH_MESSAGES,
  MARK_BODY_WRITTEN,
  MARK_QUEUED,
  RECORD_OUTCOME,
} from './ledger-scripts.js';
import { LuaScript } from './lua-script.js';
import { unmaterialisedMemberStatus } from './campaign-member-status.js';

const scripts = {
  accept: new LuaScript('acceptMessages', ACCEPT_MESSAGES),
  markQueued: new LuaScript('markQueued', MARK_QUEUED),
  claim: new LuaScript('claimMessage', CLAIM_MESSAGE),
  bodyWritten: new LuaScript('markBodyWritten', MARK_BODY_WRITTEN),
  outcome: new LuaScript('recordOutcome', RECORD_OUTCOME),
  finish: new LuaScript('finishMessages', FINISH_MESSAGES),
};

export interface LedgerOptions {
  /** Key prefix with a hash tag, the same as the queue's. */
  prefix: string;
  /** How long a finished message's record (status and attempts) is kept, in seconds (default 30 days). */
  retentionSeconds?: number;
  /** How long an idempotency key keeps returning the first message's id, in seconds (default 24 h). */
  idempotencyWindowSeconds?: number;
}

export const DEFAULT_RETENTION_SECONDS = 30 * 24 * 3600;
export const DEFAULT_IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600;

export interface AcceptEntry {
  readonly id: string;
  readonly messageId: string;
  readonly expiresAt: number;
  /** The message payload the worker will send (JSON). */
  readonly payload: string;
  /** SHA-256 of the producer's idempotency key, when one was given. */
  readonly idempotencyKeyHash?: string;
  /** SHA-256 of the validated message, compared under the idempotency key. */
  readonly contentHash: string;
  readonly tags: readonly string[];
  /** The campaign the message belongs to, counted in its campaign's totals. */
  readonly campaign?: string;
  /** The batch job that carries the message, when it is not a job of its own. */
  readonly batchJobId?: string;
  /**
   * The recipient's and the sender's (From) addresses, kept on the record (`rcpt`, `from`) for its whole
   * retention so that a bounce or complaint arriving after the payload is dropped can still suppress the
   * recipient in the sender's scope. Read from the payload when not given; a campaign member has no `from`.
   */
  readonly recipient?: string;
  readonly from?: string;
  /**
   * The recipient is on the suppression list: the message is recorded and ended `suppressed` with this
   * reason in the same transaction, and gets no job (its outcome's status is `suppressed`).
   */
  readonly suppressedReason?: string;
}

export type AcceptOutcome = { readonly status: 'new' | 'duplicate' | 'suppressed'; readonly id: string };

export type Claim =
  | {
      readonly kind: 'send';
      readonly payload: string;
      readonly attempt: number;
      readonly resend?: 'ambiguous' | 'crash';
    }
  | { readonly kind: 'done'; readonly state: TerminalState }
  | { readonly kind: 'ended'; readonly state: TerminalState }
  | { readonly kind: 'wait'; readonly ms: number }
  | { readonly kind: 'missing' };

export type AttemptOutcome =
  | 'delivered'
  | 'deferred'
  | 'released'
  | 'bounced'
  | 'expired'
  | 'failed'
  | 'ambiguous'
  | 'cancelled'
  | 'suppressed';

export interface OutcomeReport {
  readonly outcome: AttemptOutcome;
  readonly code?: number;
  readonly enhanced?: string;
  readonly response?: string;
  readonly reason?: string;
}

export type RecordResult = 'ok' | 'terminal' | 'fenced' | 'missing';

export interface AttemptRecord {
  readonly at: number;
  readonly outcome: string;
  readonly code?: number;
  readonly enhanced?: string;
  readonly response?: string;
  readonly reason?: string;
}

/** What `status(id)` returns: the message's state and its attempts. */
export interface MessageStatus {
  readonly id: string;
  readonly messageId: string;
  readonly state: MessageState;
  readonly attempts: number;
  readonly acceptedAt: number;
  readonly expiresAt: number;
  readonly updatedAt: number;
  readonly terminalAt?: number;
  readonly code?: number;
  readonly enhanced?: string;
  readonly response?: string;
  readonly reason?: string;
  /** Times the RFC 1047 window (body sent, no reply) was hit for this message. */
  readonly ambiguous: number;
  readonly history: readonly AttemptRecord[];
}

/**
 * The delivery ledger: one record per message in Redis, every change an atomic script (ledger-scripts.ts).
 * It is the source of truth for "what happened to this message"; BullMQ jobs only point at it.
 */
export class Ledger {
  readonly prefix: string;
  readonly retentionSeconds: number;
  readonly idempotencyWindowSeconds: number;

  constructor(
    private readonly redis: Redis,
    options: LedgerOptions,
  ) {
    this.prefix = options.prefix;
    this.retentionSeconds = options.retentionSeconds ?? DEFAULT_RETENTION_SECONDS;
    this.idempotencyWindowSeconds = options.idempotencyWindowSeconds ?? DEFAULT_IDEMPOTENCY_WINDOW_SECONDS;
  }

  key(id: string): string {
    return `${this.prefix}:msg:${id}`;
  }

  /** Records accepted messages. Throws IdempotencyConflictError (and writes nothing) on a reused key. */
  async accept(entries: readonly AcceptEntry[], now = Date.now()): Promise<AcceptOutcome[]> {
    const args: (string | number)[] = [this.prefix, now, this.idempotencyWindowSeconds, entries.length];
    for (const e of entries) {
      args.push(
        e.id,
        e.expiresAt,
        e.messageId,
        e.payload,
        e.idempotencyKeyHash ?? '',
        e.contentHash,
        e.tags.join(','),
        e.campaign ?? '',
        e.batchJobId ?? '',
        ...addressesOf(e),
      );
    }
    const { reply, ended } = await this.acceptRun(args, entries, now);
    if (reply[0] === 'conflict') {
      throw new IdempotencyConflictError(
        `idempotency key of message ${Number(reply[1])} was already used for a different message`,
      );
    }
    const out: AcceptOutcome[] = [];
    for (let i = 0; i < reply.length; i += 2) {
      const id = String(reply[i + 1]);
      const status = reply[i] === 'duplicate' ? 'duplicate' : ended.has(id) ? 'suppressed' : 'new';
      out.push({ status, id });
    }
    return out;
  }

  /**
   * Runs acceptMessages. Entries with a `suppressedReason` are ended `suppressed` by finishMessages in the
   * same MULTI/EXEC, so no reader (the reconciler included) ever sees them `accepted`, and a crash cannot
   * separate the two (Redis replays or drops a transaction whole). Returns the accept reply and the ids ended.
   */
  private async acceptRun(
    args: readonly (string | number)[],
    entries: readonly AcceptEntry[],
    now: number,
  ): Promise<{ reply: (string | number)[]; ended: ReadonlySet<string> }> {
    const byReason = new Map<string, string[]>();
    for (const e of entries) {
      if (e.suppressedReason === undefined) continue;
      const ids = byReason.get(e.suppressedReason);
      if (ids) ids.push(e.id);
      else byReason.set(e.suppressedReason, [e.id]);
    }
    if (byReason.size === 0) {
      return {
        reply: (await scripts.accept.run(this.redis, [], args)) as (string | number)[],
        ended: new Set(),
      };
    }
    // The prefix is declared as each script's key (the scripts read only ARGV) so that on a Redis Cluster the
    // transaction goes to the master of the prefix's hash slot, as LuaScript.run does for single scripts.
    const tx = this.redis.multi().eval(ACCEPT_MESSAGES, 1, this.prefix, ...args);
    for (const [reason, ids] of byReason) {
      tx.eval(
        FINISH_MESSAGES,
        1,
        this.prefix,
        this.prefix,
        now,
        'suppressed',
        reason,
        this.retentionSeconds,
        'accepted',
        ...ids,
      );
    }
    const results = (await tx.exec()) ?? [];
    const ended = new Set<string>();
    results.forEach(([err, value], i) => {
      if (err) throw err;
      if (i > 0) for (const id of value as string[]) ended.add(id);
    });
    return { reply: (results[0]?.[1] ?? []) as (string | number)[], ended };
  }

  async markQueued(ids: readonly string[], now = Date.now()): Promise<number> {
    if (ids.length === 0) return 0;
    return Number(await scripts.markQueued.run(this.redis, [], [this.prefix, now, ...ids]));
  }

  async claim(
    id: string,
    token: string,
    options: { graceMs: number; policy: AmbiguityPolicy },
    now = Date.now(),
  ): Promise<Claim> {
    const reply = (await scripts.claim.run(
      this.redis,
      [],
      [this.prefix, id, token, now, options.graceMs, options.policy, this.retentionSeconds],
    )) as (string | number)[];
    switch (reply[0]) {
      case 'send': {
        const flag = reply[3];
        return {
          kind: 'send',
          payload: String(reply[1]),
          attempt: Number(reply[2]),
          ...(flag === 'ambiguous_resend' ? { resend: 'ambiguous' as const } : {}),
          ...(flag === 'crash_resend' ? { resend: 'crash' as const } : {}),
        };
      }
      case 'done':
      case 'ended':
        return { kind: reply[0], state: String(reply[1]) as TerminalState };
      case 'wait':
        return { kind: 'wait', ms: Math.max(1, Number(reply[1])) };
      default:
        return { kind: 'missing' };
    }
  }

  async markBodyWritten(id: string, token: string, now = Date.now()): Promise<boolean> {
    return Number(await scripts.bodyWritten.run(this.redis, [], [this.prefix, id, token, now])) === 1;
  }

  async recordOutcome(
    id: string,
    token: string,
    report: OutcomeReport,
    now = Date.now(),
  ): Promise<RecordResult> {
    return (await scripts.outcome.run(
      this.redis,
      [],
      [
        this.prefix,
        id,
        token,
        now,
        report.outcome,
        report.code === undefined ? '' : String(report.code),
        report.enhanced ?? '',
        report.response ?? '',
        report.reason ?? '',
        this.retentionSeconds,
      ],
    )) as RecordResult;
  }

  /**
   * Ends non-terminal messages without an attempt: `from` limits which states may be ended (default: any
   * non-terminal state except `sending`, which belongs to a running attempt). Returns the ids ended.
   */
  async finish(
    ids: readonly string[],
    state: TerminalState,
    reason: string,
    options: { from?: readonly MessageState[] } = {},
    now = Date.now(),
  ): Promise<string[]> {
    if (ids.length === 0) return [];
    const reply = (await scripts.finish.run(
      this.redis,
      [],
      [this.prefix, now, state, reason, this.retentionSeconds, (options.from ?? []).join(','), ...ids],
    )) as string[];
    return reply;
  }

  /**
   * The message's state and attempts. A campaign member still in its compact chunk (never materialised)
   * has no record yet: its status is answered from the campaign (queued, or ended in bulk).
   */
  async status(id: string): Promise<MessageStatus | undefined> {
    const found = await this.recordStatus(id);
    if (found) return found;
    const member = await unmaterialisedMemberStatus(this.redis, this.prefix, id);
    if (member?.kind === 'status') return member.status;
    // Materialised between the two reads: the record is there now.
    return member?.kind === 'materialised' ? this.recordStatus(id) : undefined;
  }

  private async recordStatus(id: string): Promise<MessageStatus | undefined> {
    const [record, log] = await Promise.all([
      this.redis.hgetall(this.key(id)),
      this.redis.lrange(`${this.key(id)}:log`, 0, -1),
    ]);
    if (!record.state) return undefined;
    const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
    const str = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);
    const history = log.map((line) => {
      const raw = JSON.parse(line) as Record<string, unknown>;
      const entry: Record<string, unknown> = { at: raw.at, outcome: raw.outcome };
      for (const k of ['enhanced', 'response', 'reason'] as const) if (raw[k]) entry[k] = raw[k];
      if (raw.code) entry.code = Number(raw.code);
      return entry as unknown as AttemptRecord;
    });
    const optional = {
      terminalAt: num(record.terminalAt),
      code: num(record.code),
      enhanced: str(record.enhanced),
      response: str(record.response),
      reason: str(record.reason),
    };
    return {
      id,
      messageId: record.messageId ?? '',
      state: record.state as MessageState,
      attempts: Number(record.attempts ?? 0),
      acceptedAt: Number(record.acceptedAt),
      expiresAt: Number(record.expiresAt),
      updatedAt: Number(record.updatedAt),
      ambiguous: Number(record.ambiguous ?? 0),
      ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
      history,
    };
  }

  /** The payload of a message that still has one (not yet delivered or bounced). */
  async payload(id: string): Promise<string | undefined> {
    return (await this.redis.hget(this.key(id), 'data')) ?? undefined;
  }

  /** Counters kept by the scripts (accepted, queued, each terminal state, duplicates suppressed, ...). */
  async stats(): Promise<Record<string, number>> {
    const raw = await this.redis.hgetall(`${this.prefix}:stats`);
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }

  async count(name: string, by = 1): Promise<void> {
    await this.redis.hincrby(`${this.prefix}:stats`, name, by);
  }

  /** Non-terminal messages whose deadline has passed (should be 0 in a healthy system after a reconcile). */
  async overdue(now = Date.now()): Promise<number> {
    return this.redis.zcount(`${this.prefix}:deadline`, '-inf', `(${now}`);
  }

  /** Ids of non-terminal messages by deadline, oldest first. */
  async pending(options: { upTo?: number; offset?: number; limit: number }): Promise<string[]> {
    return this.redis.zrangebyscore(
      `${this.prefix}:deadline`,
      '-inf',
      options.upTo === undefined ? '+inf' : `(${options.upTo}`,
      'LIMIT',
      options.offset ?? 0,
      options.limit,
    );
  }

  async tagged(tag: string): Promise<string[]> {
    return this.redis.smembers(`${this.prefix}:tag:${tag}`);
  }

  async states(ids: readonly string[]): Promise<(string | null)[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hget(this.key(id), 'state');
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([err, value]) => (err ? null : ((value as string | null) ?? null)));
  }
}

/** `[recipient, from]` of an entry ('' when unknown): as given, else read from its payload. */
function addressesOf(entry: AcceptEntry): [string, string] {
  if (entry.recipient !== undefined) return [entry.recipient, entry.from ?? ''];
  try {
    const payload = JSON.parse(entry.payload) as { to?: { address?: unknown }; from?: { address?: unknown } };
    const to = payload.to?.address;
    const from = entry.from ?? payload.from?.address;
    return [typeof to === 'string' ? to : '', typeof from === 'string' ? from : ''];
  } catch {
    return ['', entry.from ?? ''];
  }
}
