import { appendFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { isTerminalState } from '@mailroom/core';
import type { ReceivedMessage } from '@mailroom/sink';

/** What the producer was told for one accepted message. */
export interface Receipt {
  readonly id: string;
  readonly messageId: string;
}

/** One fault case's books, joined from the producer's receipts, the ledger and what the SMTP server recorded. */
export interface AccountingRow {
  readonly case: string;
  readonly accepted: number;
  readonly delivered: number;
  readonly bounced: number;
  readonly expired: number;
  /** Messages that hit the RFC 1047 window at least once (resent or stopped, per policy). */
  readonly ambiguous: number;
  /** Copies at the SMTP server beyond the first, over all messages. */
  readonly duplicates: number;
  /** Duplicates not explained by a counted ambiguous attempt of the same message. Must be 0. */
  readonly unexplainedDuplicates: number;
  /** Accepted messages with no terminal state, or recorded delivered without a copy at the server. Must be 0. */
  readonly lost: number;
  /** Messages whose history shows more than one terminal outcome. Must be 0. */
  readonly secondTerminal: number;
  /** Seconds from the end of the fault to deliveries at full speed again (see recoverySeconds). */
  readonly recoverySeconds: number | null;
  /** Terminal states by name (delivered, bounced, expired, ambiguous, failed, cancelled, suppressed). */
  readonly states: Readonly<Record<string, number>>;
  /** A few examples of what went wrong, for the assertion message. */
  readonly problems: readonly string[];
}

/**
 * Joins the three views of a run. For every accepted message: the ledger has exactly one terminal state
 * (and its history at most one terminal entry); a message recorded delivered has a copy at the server; the
 * copies beyond one are at most the number of ambiguous attempts the ledger counted for that message.
 */
export async function account(input: {
  name: string;
  redis: Redis;
  prefix: string;
  receipts: readonly Receipt[];
  received: readonly ReceivedMessage[];
  recoverySeconds: number | null;
  /** False when the server may store a message without it being delivered (not used by the current cases). */
  serverIsAuthoritative?: boolean;
}): Promise<AccountingRow> {
  const copies = new Map<string, number>();
  for (const m of input.received) {
    if (m.messageId === undefined) continue;
    copies.set(m.messageId, (copies.get(m.messageId) ?? 0) + 1);
  }
  const states: Record<string, number> = {};
  const problems: string[] = [];
  let ambiguous = 0;
  let duplicates = 0;
  let unexplained = 0;
  let lost = 0;
  let secondTerminal = 0;
  const CHUNK = 500;
  for (let start = 0; start < input.receipts.length; start += CHUNK) {
    const chunk = input.receipts.slice(start, start + CHUNK);
    const pipe = input.redis.pipeline();
    for (const r of chunk) {
      pipe.hmget(`${input.prefix}:msg:${r.id}`, 'state', 'ambiguous', 'messageId');
      pipe.lrange(`${input.prefix}:msg:${r.id}:log`, 0, -1);
    }
    const replies = (await pipe.exec()) ?? [];
    chunk.forEach((r, i) => {
      const [state, ambiguousCount, messageId] = (replies[2 * i]?.[1] as (string | null)[] | undefined) ?? [];
      const log = (replies[2 * i + 1]?.[1] as string[] | undefined) ?? [];
      const n = copies.get(r.messageId) ?? 0;
      const timesAmbiguous = Number(ambiguousCount ?? 0);
      if (timesAmbiguous > 0 || state === 'ambiguous') ambiguous += 1;
      if (n > 1) {
        duplicates += n - 1;
        const extra = Math.max(0, n - 1 - timesAmbiguous);
        if (extra > 0) {
          unexplained += extra;
          if (problems.length < 5)
            problems.push(`${r.id}: ${n} copies, ${timesAmbiguous} ambiguous attempts`);
        }
      }
      if (!state) {
        lost += 1;
        if (problems.length < 5) problems.push(`${r.id}: no ledger record`);
        return;
      }
      if (messageId !== r.messageId && problems.length < 5) {
        problems.push(`${r.id}: ledger Message-ID ${messageId} differs from the receipt ${r.messageId}`);
      }
      states[state] = (states[state] ?? 0) + 1;
      if (!isTerminalState(state)) {
        lost += 1;
        if (problems.length < 5) problems.push(`${r.id}: still ${state}`);
        return;
      }
      const terminalEntries = log.filter((line) => {
        const outcome = (JSON.parse(line) as { outcome?: string }).outcome ?? '';
        // An 'ambiguous' entry also marks a resend, so only the other terminal outcomes are counted here.
        return outcome !== 'ambiguous' && isTerminalState(outcome);
      }).length;
      // Terminal states are write-once: a second terminal entry in the history would be a broken promise.
      if (terminalEntries > 1) {
        if (problems.length < 5) problems.push(`${r.id}: ${terminalEntries} terminal entries in its history`);
        secondTerminal += 1;
      }
      if (state === 'delivered' && n === 0 && input.serverIsAuthoritative !== false) {
        lost += 1;
        if (problems.length < 5) problems.push(`${r.id}: recorded delivered, the server has no copy`);
      }
    });
  }
  return {
    case: input.name,
    accepted: input.receipts.length,
    delivered: states.delivered ?? 0,
    bounced: states.bounced ?? 0,
    expired: states.expired ?? 0,
    ambiguous,
    duplicates,
    unexplainedDuplicates: unexplained,
    lost,
    secondTerminal,
    recoverySeconds: input.recoverySeconds,
    states,
    problems,
  };
}

/** Deliveries counted over time, to tell when a run is back to full speed after a fault. */
export class DeliveryTimeline {
  private readonly samples: { at: number; count: number }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly count: () => number) {}

  start(everyMs = 100): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
  }

  sample(): void {
    this.samples.push({ at: Date.now(), count: this.count() });
  }

  /** Deliveries per second over [from, to]. */
  rate(from: number, to: number): number {
    const a = this.at(from);
    const b = this.at(to);
    return to > from ? ((b - a) * 1000) / (to - from) : 0;
  }

  /** Count at time t (the last sample at or before t). */
  at(t: number): number {
    let value = this.samples[0]?.count ?? 0;
    for (const s of this.samples) {
      if (s.at > t) break;
      value = s.count;
    }
    return value;
  }

  /**
   * Seconds from `faultEnd` until a one-second window delivers at least half of `baselineRate`, or until
   * `total` deliveries are reached (the work ran out first). Null if neither happened.
   */
  recoverySeconds(faultEnd: number, baselineRate: number, total: number): number | null {
    const target = Math.max(1, baselineRate / 2);
    for (const s of this.samples) {
      if (s.at < faultEnd) continue;
      if (s.count >= total) return (s.at - faultEnd) / 1000;
      const later = this.at(s.at + 1000);
      const last = this.samples[this.samples.length - 1];
      if (last && last.at < s.at + 1000) break;
      if (later - s.count >= target) return (s.at - faultEnd) / 1000;
    }
    return null;
  }
}

/** Appends the row to the report file the test runner prints after the fault suite (MAILROOM_FAULT_REPORT). */
export function report(row: AccountingRow): void {
  const line = JSON.stringify(row);
  process.stdout.write(`# fault accounting ${line}\n`);
  const file = process.env.MAILROOM_FAULT_REPORT;
  if (file) appendFileSync(file, `${line}\n`);
}
