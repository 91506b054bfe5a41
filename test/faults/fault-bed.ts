import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { MailroomClient, type CampaignReceipt, type CampaignUploadOptions } from '@mailroom/client';
import { campaignMemberId } from '@mailroom/queue';
import { isTerminalState, type MessageState } from '@mailroom/core';
import { startSink, type ReceivedMessage, type Sink, type SinkOptions } from '@mailroom/sink';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';
import { spawnNode, type ChildProcessHandle } from '../harness/processes.js';
import { startRedis, type RedisServer, type RedisServerOptions } from '../harness/redis.js';
import { waitFor } from '../harness/wait-for.js';
import { account, DeliveryTimeline, report, type AccountingRow, type Receipt } from './accounting.js';

const BIN = fileURLToPath(new URL('../../../apps/cli/bin/mailroom.js', import.meta.url));
export const PREFIX = '{mailroom}';

export interface FaultBedOptions {
  /** Worker processes, each restarted when it exits (as a supervisor would). */
  workers: number;
  /** MAILROOM_* settings on top of the fault defaults. */
  workerEnv?: Record<string, string>;
  sink?: SinkOptions;
  /** Put a fault proxy between the workers and the sink. */
  proxy?: boolean;
  redis?: RedisServerOptions;
  /** Client max age per message (default 10 minutes). */
  maxAgeMs?: number;
}

/** One supervised worker slot: its current process and how many times it was started. */
interface Slot {
  current: ChildProcessHandle;
  starts: number;
  supervise: boolean;
  /** Environment overrides for the next start (e.g. a fixed relay configuration). */
  env: Record<string, string>;
}

/**
 * A whole Mailroom on loopback for one fault case: a real redis-server (AOF on), a real SMTP sink, an
 * optional fault proxy, worker processes under a restart-on-exit supervisor, and a producer that keeps
 * what it was told. Ends with {@link FaultBed.settle}, which waits for every accepted message to reach a
 * terminal state and returns the accounting row.
 */
export class FaultBed {
  readonly receipts: Receipt[] = [];
  readonly timeline: DeliveryTimeline;
  /** Other SMTP servers the workers deliver to (more relays); their messages count in the books too. */
  readonly otherSinks: Sink[] = [];
  private readonly slots: Slot[] = [];
  private stopping = false;
  private extraEnv: Record<string, string> = {};

  private constructor(
    readonly redis: RedisServer,
    readonly sink: Sink,
    readonly proxy: FaultProxy | undefined,
    readonly client: MailroomClient,
    readonly conn: Redis,
    private readonly options: FaultBedOptions,
  ) {
    this.timeline = new DeliveryTimeline(() => this.received().length);
  }

  static async start(options: FaultBedOptions): Promise<FaultBed> {
    const redis = await startRedis(options.redis ?? {});
    const sink = await startSink(options.sink ?? {});
    const proxy = options.proxy ? await startFaultProxy({ targetPort: sink.port }) : undefined;
    const client = new MailroomClient({ redis: redis.url, maxAgeMs: options.maxAgeMs ?? 10 * 60_000 });
    await client.ready();
    const conn = redis.client({ maxRetriesPerRequest: null });
    conn.on('error', () => undefined); // outages are the point here; commands that fail say so
    const bed = new FaultBed(redis, sink, proxy, client, conn, options);
    bed.timeline.start();
    return bed;
  }

  /** The environment every worker gets: short locks and timeouts so faults resolve within seconds. */
  workerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      ...process.env,
      MAILROOM_REDIS_URL: this.redis.url,
      MAILROOM_SMTP_HOST: '127.0.0.1',
      MAILROOM_SMTP_PORT: String(this.proxy?.port ?? this.sink.port),
      MAILROOM_SMTP_TLS: 'none',
      MAILROOM_WORKER_CONCURRENCY: '10',
      MAILROOM_SMTP_MAX_CONNECTIONS: '5',
      MAILROOM_RETRY_BASE_MS: '100',
      MAILROOM_RETRY_MAX_MS: '1000',
      MAILROOM_CONFIG_FAULT_PAUSE_MS: '500',
      MAILROOM_LOCK_DURATION_MS: '4000',
      MAILROOM_STALLED_INTERVAL_MS: '2000',
      MAILROOM_SHUTDOWN_TIMEOUT_MS: '8000',
      MAILROOM_SMTP_GREETING_TIMEOUT_MS: '2000',
      MAILROOM_SMTP_CONNECTION_TIMEOUT_MS: '2000',
      MAILROOM_SMTP_SOCKET_TIMEOUT_MS: '3000',
      MAILROOM_RECONCILE_INTERVAL_MS: '1000',
      MAILROOM_WATCHDOG_MS: '15000',
      MAILROOM_HTTP_PORT: '-1',
      MAILROOM_LOG_LEVEL: 'warn',
      ...this.options.workerEnv,
      ...this.extraEnv,
      ...extra,
    };
  }

  /** Adds settings for every worker started from now on (e.g. a relays file naming this bed's sinks). */
  withWorkerEnv(env: Record<string, string>): this {
    this.extraEnv = { ...this.extraEnv, ...env };
    return this;
  }

  /** Starts the worker processes and waits until each says it started. */
  async startWorkers(): Promise<void> {
    for (let i = 0; i < this.options.workers; i += 1) {
      const slot: Slot = { current: this.spawn({}), starts: 1, supervise: true, env: {} };
      this.slots.push(slot);
      this.superviseSlot(slot);
    }
    await Promise.all(this.slots.map((s) => s.current.waitForOutput(/worker started/, 20_000)));
  }

  /**
   * Scales up: starts `count` more supervised workers while the others run, waits until each says it
   * started, and returns their slot indices (for {@link kill} and {@link workers}).
   */
  async addWorkers(count: number, env: Record<string, string> = {}): Promise<number[]> {
    const added: Slot[] = [];
    for (let i = 0; i < count; i += 1) {
      const slot: Slot = { current: this.spawn(env), starts: 1, supervise: true, env };
      this.slots.push(slot);
      added.push(slot);
      this.superviseSlot(slot);
    }
    await Promise.all(added.map((s) => s.current.waitForOutput(/worker started/, 20_000)));
    return added.map((s) => this.slots.indexOf(s));
  }

  private spawn(env: Record<string, string>): ChildProcessHandle {
    return spawnNode(BIN, ['worker'], { env: this.workerEnv({ MAILROOM_LOG_LEVEL: 'info', ...env }) });
  }

  private superviseSlot(slot: Slot): void {
    const watched = slot.current;
    void watched.exited.then(() => {
      if (this.stopping || !slot.supervise || slot.current !== watched) return;
      setTimeout(() => {
        if (this.stopping || !slot.supervise || slot.current !== watched) return;
        slot.current = this.spawn(slot.env);
        slot.starts += 1;
        this.superviseSlot(slot);
      }, 200);
    });
  }

  get workers(): readonly ChildProcessHandle[] {
    return this.slots.map((s) => s.current);
  }

  /** Total worker process starts (first starts plus restarts). */
  get starts(): number {
    return this.slots.reduce((n, s) => n + s.starts, 0);
  }

  /** Kills worker `i` with `signal`; the supervisor starts a new one unless `restart` is false. */
  async kill(i: number, signal: NodeJS.Signals, restart = true): Promise<void> {
    const slot = this.slots[i];
    assert.ok(slot, `worker slot ${i}`);
    slot.supervise = restart;
    slot.current.kill(signal);
    await slot.current.exited;
  }

  /** Stops every worker with `signal` and waits for the exits; none is restarted until {@link restartAll}. */
  async stopAll(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }[]> {
    for (const s of this.slots) s.supervise = false;
    for (const s of this.slots) s.current.kill(signal);
    return Promise.all(this.slots.map((s) => s.current.exited));
  }

  /** Starts every slot again (with `env` overrides from now on) and supervises it. */
  async restartAll(env: Record<string, string> = {}): Promise<void> {
    for (const s of this.slots) {
      s.supervise = false;
      s.current.kill('SIGKILL');
    }
    await Promise.all(this.slots.map((s) => s.current.exited));
    for (const s of this.slots) {
      s.env = env;
      s.current = this.spawn(env);
      s.starts += 1;
      s.supervise = true;
      this.superviseSlot(s);
    }
    await Promise.all(this.slots.map((s) => s.current.waitForOutput(/worker started/, 20_000)));
  }

  /** Enqueues through the SDK in batches, keeping the receipts (what the producer was told). */
  async enqueue(inputs: readonly unknown[], options: { maxAgeMs?: number } = {}): Promise<Receipt[]> {
    const batch = 500;
    const client =
      options.maxAgeMs === undefined
        ? this.client
        : new MailroomClient({ redis: this.redis.url, maxAgeMs: options.maxAgeMs });
    const out: Receipt[] = [];
    try {
      for (let i = 0; i < inputs.length; i += batch) {
        const receipts = await client.sendMany(inputs.slice(i, i + batch));
        for (const r of receipts) out.push({ id: r.id, messageId: r.messageId });
      }
    } finally {
      if (client !== this.client) await client.close();
    }
    this.receipts.push(...out);
    return out;
  }

  /**
   * Creates a campaign through the SDK and keeps a receipt for each recipient it accepted, so the books
   * include every campaign message. Member ids and Message-IDs follow from the campaign id and position
   * (ledger records appear only as the feeder materialises chunks).
   */
  async enqueueCampaign(
    template: unknown,
    recipients: Iterable<{ to: unknown; vars?: unknown }>,
    options?: CampaignUploadOptions,
  ): Promise<CampaignReceipt> {
    const receipt = await this.client.createCampaign({ template, recipients }, options);
    const domain = await this.conn.hget(`${PREFIX}:campaign:${receipt.id}`, 'midDomain');
    assert.ok(domain, 'the campaign records its Message-ID domain');
    for (let i = 0; i < receipt.accepted; i += 1) {
      const id = campaignMemberId(receipt.id, i);
      this.receipts.push({ id, messageId: `<${id}@${domain}>` });
    }
    return receipt;
  }

  /** Messages of the receipts that reached a terminal state. */
  async terminalCount(): Promise<number> {
    let done = 0;
    for (let i = 0; i < this.receipts.length; i += 1000) {
      const pipe = this.conn.pipeline();
      for (const r of this.receipts.slice(i, i + 1000)) pipe.hget(`${PREFIX}:msg:${r.id}`, 'state');
      const replies = (await pipe.exec()) ?? [];
      for (const [, state] of replies) if (state && isTerminalState(state as MessageState)) done += 1;
    }
    return done;
  }

  /** Waits until deliveries reach `count`: at the bed's sink, or at every sink with `allSinks`. */
  async delivered(count: number, timeoutMs = 30_000, allSinks = false): Promise<void> {
    const received = () => (allSinks ? this.received().length : this.sink.messages.length);
    await waitFor(() => received() >= count, { timeoutMs, what: `${count} deliveries` });
  }

  /**
   * Waits (bounded) for every accepted message to be terminal, then joins the books and reports the row.
   * `fault` gives the fault window for the recovery figure.
   */
  async settle(
    name: string,
    fault: { startedAt: number; endedAt: number } | undefined,
    timeoutMs = 90_000,
  ): Promise<AccountingRow> {
    let done = 0;
    try {
      await waitFor(
        async () => {
          done = await this.terminalCount();
          return done === this.receipts.length;
        },
        { timeoutMs, intervalMs: 250, what: `${this.receipts.length} messages to finish` },
      );
    } catch {
      // Reported below as lost messages, with examples.
    }
    this.timeline.stop();
    let recovery: number | null = null;
    if (fault) {
      const before = this.timeline.rate(fault.startedAt - 2000, fault.startedAt);
      recovery = this.timeline.recoverySeconds(fault.endedAt, before, this.received().length);
    }
    const row = await account({
      name,
      redis: this.conn,
      prefix: PREFIX,
      receipts: this.receipts,
      received: this.received(),
      recoverySeconds: recovery,
    });
    report(row);
    return row;
  }

  /** Every message the SMTP servers received: the bed's sink and the other sinks. */
  received(): ReceivedMessage[] {
    return [...this.sink.messages, ...this.otherSinks.flatMap((s) => s.messages)];
  }

  /** Output tails of the workers, for assertion messages. */
  outputs(chars = 1500): string {
    return this.slots.map((s, i) => `--- worker ${i}\n${s.current.output().slice(-chars)}`).join('\n');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.timeline.stop();
    for (const s of this.slots) s.current.kill('SIGKILL');
    await Promise.all(this.slots.map((s) => s.current.exited));
    await this.client.close();
    this.conn.disconnect();
    await this.proxy?.close();
    await this.sink.close();
    for (const other of this.otherSinks) await other.close();
    await this.redis.stop();
  }
}

/** The standard checks every case ends with: nothing lost, one terminal state each, duplicates explained. */
export function assertBooksBalance(row: AccountingRow, context = ''): void {
  const detail = `${row.case}: ${JSON.stringify(row)}${context ? `\n${context}` : ''}`;
  assert.equal(row.lost, 0, `no accepted message lost (${detail})`);
  assert.equal(row.secondTerminal, 0, `terminal states written once (${detail})`);
  assert.equal(row.unexplainedDuplicates, 0, `every extra copy is a counted ambiguous attempt (${detail})`);
}

/** Recipients `<script><index>@example.test` for `n` messages. */
export function newsletter(n: number, script: (i: number) => string = () => 'ok-') {
  return Array.from({ length: n }, (_, i) => ({
    from: { name: 'Mailroom Faults', address: 'faults@mailroom.example' },
    to: `${script(i)}r${i}@example.test`,
    subject: `Fault suite message ${i}`,
    text: `Hello reader ${i}.\n`,
    html: `<p>Hello reader ${i}.</p>`,
  }));
}
