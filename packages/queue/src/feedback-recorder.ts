import type { Redis } from 'ioredis';
import { isMessageId, parseMailbox, ValidationError, type MessageState } from '@mailroom/core';
import { CampaignStore } from './campaign-store.js';
import { RECORD_FEEDBACK } from './feedback-scripts.js';
import { mailroomKeys } from './keys.js';
import { LuaScript } from './lua-script.js';
import {
  MAX_SUPPRESSION_SOURCE_CHARS,
  SuppressionStore,
  canonicalSuppressionAddress,
  isSuppressionScope,
  suppressionScopeOf,
} from './suppression-store.js';

const script = new LuaScript('recordFeedback', RECORD_FEEDBACK);
/** Longest stored source: with `:` and a 26-character message id it stays within MAX_SUPPRESSION_SOURCE_CHARS. */
const MAX_SOURCE_CHARS = Math.min(64, MAX_SUPPRESSION_SOURCE_CHARS - 27);

/** What an inbound report means for its message (the same list as @mailroom/feedback's FEEDBACK_EVENT_KINDS). */
export const FEEDBACK_KINDS = ['hard_bounce', 'soft_bounce', 'complaint', 'delay', 'unknown'] as const;
export type FeedbackKind = (typeof FEEDBACK_KINDS)[number];

/** One event to record: @mailroom/feedback's FeedbackEvent fits (only these fields are read). */
export interface FeedbackInput {
  readonly kind: FeedbackKind;
  /** The Mailroom message id the report names. */
  readonly mailroomId?: string | undefined;
  /** How the id was found: a VERP return path whose MAC checked out, or a Message-ID anyone could copy. */
  readonly linkedBy?: 'verp' | 'message-id' | undefined;
  /** The recipient the report names (unauthenticated). */
  readonly recipient?: string | undefined;
  /** RFC 3463 status. */
  readonly status?: string | undefined;
  readonly replyCode?: number | undefined;
  readonly diagnostic?: string | undefined;
  /** Where the report came from (`dsn:gmail`, `arf:yahoo:abuse`); the history's `reason`. */
  readonly source?: string | undefined;
  /** The report came to a complaints address (given only to feedback loops) rather than to the bounce domain. */
  readonly toComplaintsAddress?: boolean | undefined;
}

/** See @mailroom/feedback's FEEDBACK_RECORD_RESULTS. */
export type FeedbackRecordResult = 'recorded' | 'duplicate' | 'unmatched' | 'unlinked' | 'ignored';

/**
 * Why a hard bounce or complaint suppressed nobody:
 * - `no_recipient`: the ledger no longer holds the recipient and the report names none (or no valid one);
 * - `recipient_mismatch`: the report is linked by Message-ID only and names another recipient than the ledger's;
 * - `unverified`: the ledger no longer holds the recipient, and the report is linked by Message-ID only and
 *   came to the bounce domain, whose addresses anyone can mail: its recipient cannot be trusted;
 * - `no_scope`: the sender of the message is not known any more (nor its Message-ID's domain).
 */
export type SuppressionSkip = 'no_recipient' | 'recipient_mismatch' | 'unverified' | 'no_scope';

export interface FeedbackRecording {
  readonly result: FeedbackRecordResult;
  /** The message's state, which feedback never changes. */
  readonly state?: MessageState;
  /** The recipient the event is about: the ledger's when it still holds it, else the report's. */
  readonly recipient?: string;
  /**
   * Whom the event can be attributed to, by the same rules as suppression (see FeedbackRecorder): the
   * ledger's recipient, or the report's when the report is authenticated. Absent when the recipient is not
   * known or the report cannot be trusted with it (then no `complained` or `bounced` webhook is emitted).
   */
  readonly attributedTo?: { readonly address: string; readonly recipientFrom: 'ledger' | 'report' };
  /** The message's Message-ID header, with angle brackets (for the webhook event). */
  readonly messageIdHeader?: string;
  /** The campaign the message belongs to. */
  readonly campaign?: string;
  /** The suppression entry written for a hard bounce or complaint. */
  readonly suppressed?: {
    readonly scope: string;
    readonly address: string;
    readonly reason: 'hard_bounce' | 'complaint';
    /** Whose recipient it is: the ledger's (trusted), or the report's (see FeedbackRecorder). */
    readonly recipientFrom: 'ledger' | 'report';
  };
  readonly notSuppressed?: SuppressionSkip;
}

export interface FeedbackRecorderOptions {
  /** Key prefix with a hash tag, the same as the queue's and the ledger's. */
  readonly prefix: string;
  /** Where hard bounces and complaints are suppressed. Default: a SuppressionStore on the same Redis and prefix. */
  readonly suppressions?: SuppressionStore;
}

/** What the ledger still knows about a message. */
interface LedgerFacts {
  readonly state: MessageState;
  readonly recipient?: string;
  readonly from?: string;
  readonly campaign?: string;
  readonly messageIdHeader?: string;
  readonly messageIdDomain?: string;
  /** An event of this kind was recorded before. */
  readonly seen: boolean;
}

/**
 * Records asynchronous bounces, complaints and delay notices on the ledger records of the messages they are
 * about (one atomic script, feedback-scripts.ts), counts them, and suppresses the recipient of a hard bounce
 * or a complaint in the sender scope of the message.
 *
 * - Idempotent per (message, kind): the second hard bounce of a message is counted as `feedback_duplicate`
 *   and writes nothing else, so a DSN sent twice counts once.
 * - States stay write-once: a `delivered` message that bounces later stays `delivered`; its history shows
 *   the `feedback_hard_bounce` entry after the delivery.
 * - Soft bounces and delays are recorded and counted, never suppressed; `unknown` events are counted only.
 *
 * Whom to suppress. Mailroom sends one recipient per message, so the recipient is the ledger's as long as
 * the record holds the payload (until the message is delivered or bounced) or its `rcpt` field (written at
 * acceptance and kept for the record's retention); the report's own recipient is only a claim. Once the
 * ledger no longer has it (a record written before `rcpt` was kept), the report's recipient is used when the
 * report is authenticated as far as it can be: linked by a VERP return path whose MAC checked out, or sent
 * to a complaints address. A report linked by Message-ID only (which anyone who saw the message can copy)
 * suppresses nobody unless its recipient is the ledger's. The scope is the message's From domain, from the
 * payload (or a `from` field), the campaign's template, or else the domain of its Message-ID, which is the
 * From domain unless the producer set `messageIdDomain`.
 */
export class FeedbackRecorder {
  readonly prefix: string;
  private readonly suppressions: SuppressionStore;
  private readonly campaigns: CampaignStore;
  private readonly keys: ReturnType<typeof mailroomKeys>;

  constructor(
    private readonly redis: Redis,
    options: FeedbackRecorderOptions,
  ) {
    this.prefix = options.prefix;
    this.suppressions = options.suppressions ?? new SuppressionStore(redis, options.prefix);
    this.campaigns = new CampaignStore(redis, options.prefix);
    this.keys = mailroomKeys(options.prefix);
  }

  private messageKey(id: string): string {
    return `${this.prefix}:msg:${id}`;
  }

  private async count(field: string): Promise<void> {
    await this.redis.hincrby(`${this.prefix}:stats`, field, 1);
  }

  /** Records one event. Rejects only when Redis does (the caller should have the report sent again). */
  async record(input: FeedbackInput, now = Date.now()): Promise<FeedbackRecording> {
    if (input.kind === 'unknown') {
      await this.count('feedback_unknown');
      return { result: 'ignored' };
    }
    const id = input.mailroomId;
    if (id === undefined || !isMessageId(id)) {
      await this.count('feedback_unlinked');
      return { result: 'unlinked' };
    }
    const facts = await this.facts(id, input.kind);
    if (facts === undefined) {
      await this.count('feedback_unmatched');
      return { result: 'unmatched' };
    }
    const reported = canonicalOrUndefined(input.recipient);
    const recipient = facts.recipient ?? reported;
    const source = cleanSource(input.source);
    const attribution = attribute(input, facts, reported);
    let suppressed: FeedbackRecording['suppressed'];
    let notSuppressed: SuppressionSkip | undefined;
    if ((input.kind === 'hard_bounce' || input.kind === 'complaint') && !facts.seen) {
      const decision = await this.suppressionTarget(attribution, facts);
      if ('skip' in decision) notSuppressed = decision.skip;
      else {
        await this.suppressions.add(decision.scope, [
          {
            address: decision.address,
            reason: input.kind,
            source: `${source === '' ? 'feedback' : source}:${id}`,
            at: now,
          },
        ]);
        suppressed = { ...decision, reason: input.kind };
      }
    }
    const keys = [this.messageKey(id), `${this.messageKey(id)}:log`, `${this.prefix}:stats`];
    if (facts.campaign !== undefined) keys.push(this.keys.campaign(facts.campaign));
    const [result, state] = (await script.run(this.redis, keys, [
      input.kind,
      now,
      input.replyCode === undefined ? '' : String(input.replyCode),
      input.status ?? '',
      input.diagnostic ?? '',
      source,
      suppressed !== undefined ? 'yes' : notSuppressed !== undefined ? 'no' : '',
    ])) as [string, string];
    if (result === 'missing') return { result: 'unmatched' };
    return {
      result: result === 'duplicate' ? 'duplicate' : 'recorded',
      state: state as MessageState,
      ...(recipient === undefined ? {} : { recipient }),
      ...('skip' in attribution
        ? {}
        : {
            // As sent (the ledger's spelling), like the worker's events; the report's canonical otherwise.
            attributedTo: {
              address: attribution.recipientFrom === 'ledger' ? facts.recipient! : attribution.address,
              recipientFrom: attribution.recipientFrom,
            },
          }),
      ...(facts.messageIdHeader === undefined ? {} : { messageIdHeader: facts.messageIdHeader }),
      ...(facts.campaign === undefined ? {} : { campaign: facts.campaign }),
      ...(suppressed === undefined ? {} : { suppressed }),
      ...(notSuppressed === undefined || result === 'duplicate' ? {} : { notSuppressed }),
    };
  }

  /** When each kind of event was first recorded for the message (ms since the epoch); {} when none or no record. */
  async feedbackOf(id: string): Promise<Partial<Record<Exclude<FeedbackKind, 'unknown'>, number>>> {
    const kinds = ['hard_bounce', 'soft_bounce', 'complaint', 'delay'] as const;
    const values = await this.redis.hmget(this.messageKey(id), ...kinds.map((kind) => `fb:${kind}`));
    const out: Partial<Record<(typeof kinds)[number], number>> = {};
    kinds.forEach((kind, i) => {
      const value = values[i];
      if (value !== null && value !== undefined) out[kind] = Number(value);
    });
    return out;
  }

  /**
   * The ledger's record as far as feedback needs it. `rcpt` and `from` are read for records that keep them
   * after the payload is dropped; the payload (`data`) holds both until the message is delivered or bounced.
   */
  private async facts(id: string, kind: FeedbackKind): Promise<LedgerFacts | undefined> {
    const [state, data, campaign, messageId, rcpt, from, seen] = await this.redis.hmget(
      this.messageKey(id),
      'state',
      'data',
      'campaign',
      'messageId',
      'rcpt',
      'from',
      `fb:${kind}`,
    );
    if (!state) return undefined;
    const payload = parsePayload(data);
    const recipient = payload.to ?? nonEmpty(rcpt);
    const sender = payload.from ?? nonEmpty(from);
    const at = messageId?.lastIndexOf('@') ?? -1;
    const messageIdDomain = messageId && at > 0 ? messageId.slice(at + 1).replace(/>$/, '') : undefined;
    return {
      state: state as MessageState,
      seen: seen !== null && seen !== undefined,
      ...(recipient === undefined ? {} : { recipient }),
      ...(sender === undefined ? {} : { from: sender }),
      ...(campaign ? { campaign } : {}),
      ...(messageId ? { messageIdHeader: messageId } : {}),
      ...(messageIdDomain ? { messageIdDomain } : {}),
    };
  }

  private async suppressionTarget(
    attribution: Attribution,
    facts: LedgerFacts,
  ): Promise<
    { scope: string; address: string; recipientFrom: 'ledger' | 'report' } | { skip: SuppressionSkip }
  > {
    if ('skip' in attribution) return attribution;
    const scope = await this.scopeOf(facts);
    return scope === undefined ? { skip: 'no_scope' } : { scope, ...attribution };
  }

  /** The sender scope: the From domain (payload, campaign template), else the Message-ID's domain. */
  private async scopeOf(facts: LedgerFacts): Promise<string | undefined> {
    let from = facts.from;
    if (from === undefined && facts.campaign !== undefined) {
      const template = await this.campaigns.template(facts.campaign);
      if (template !== undefined) from = templateFrom(template);
    }
    if (from !== undefined) {
      try {
        const scope = suppressionScopeOf(from);
        if (isSuppressionScope(scope)) return scope;
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
      }
    }
    return facts.messageIdDomain !== undefined && isSuppressionScope(facts.messageIdDomain)
      ? facts.messageIdDomain
      : undefined;
  }
}

type Attribution =
  | { readonly address: string; readonly recipientFrom: 'ledger' | 'report' }
  | { readonly skip: Exclude<SuppressionSkip, 'no_scope'> };

/**
 * Whom a report is about, when that can be trusted: the ledger's recipient (unless a report linked by
 * Message-ID only names another), else the report's own when the report is authenticated (a VERP return
 * path whose MAC checked out, or a complaints address).
 */
function attribute(input: FeedbackInput, facts: LedgerFacts, reported: string | undefined): Attribution {
  const ledger = canonicalOrUndefined(facts.recipient);
  if (ledger !== undefined) {
    if (input.linkedBy !== 'verp' && reported !== undefined && reported !== ledger) {
      return { skip: 'recipient_mismatch' };
    }
    return { address: ledger, recipientFrom: 'ledger' };
  }
  if (reported === undefined) return { skip: 'no_recipient' };
  if (input.linkedBy === 'verp' || input.toComplaintsAddress === true) {
    return { address: reported, recipientFrom: 'report' };
  }
  return { skip: 'unverified' };
}

/**
 * The report's source as stored (history reason, suppression source): it comes from the report (an ARF
 * Feedback-Type is free text), so only `a-z 0-9 . _ : -` are kept, at most 64 characters. A character the
 * suppression list refuses would otherwise fail the recording every time, and the sender would retry for days.
 */
function cleanSource(source: string | undefined): string {
  return (source ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9._:-]/g, '')
    .slice(0, MAX_SOURCE_CHARS);
}

function nonEmpty(value: string | null | undefined): string | undefined {
  return value === null || value === undefined || value === '' ? undefined : value;
}

/** `to` and `from` addresses of a ledger payload (a campaign member's has no `from`); {} when unreadable. */
function parsePayload(data: string | null | undefined): { to?: string; from?: string } {
  if (!data) return {};
  try {
    const payload = JSON.parse(data) as { to?: { address?: unknown }; from?: { address?: unknown } };
    const to = payload.to?.address;
    const from = payload.from?.address;
    return {
      ...(typeof to === 'string' ? { to } : {}),
      ...(typeof from === 'string' ? { from } : {}),
    };
  } catch {
    return {};
  }
}

function templateFrom(template: string): string | undefined {
  try {
    return parseMailbox((JSON.parse(template) as { from?: unknown }).from, 'from').address;
  } catch {
    return undefined;
  }
}

function canonicalOrUndefined(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  try {
    return canonicalSuppressionAddress(address, 'recipient');
  } catch (err) {
    if (err instanceof ValidationError) return undefined;
    throw err;
  }
}
