import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { Cluster } from 'ioredis';
import { MailroomClient } from '@mailroom/client';
import { isTerminalState, type MessageState } from '@mailroom/core';
import { asStoreConnection, createRedisConnection } from '@mailroom/queue';
import { startSink, type ReceivedMessage, type Sink } from '@mailroom/sink';
import { spawnNode, type ChildProcessHandle } from '../harness/processes.js';
import { sendRedisCommands } from '../harness/redis.js';
import { startRedisCluster, type ClusterNode, type RedisCluster } from '../harness/redis-cluster.js';
import { waitFor } from '../harness/wait-for.js';
import { BIN, PREFIX, clusterSpec, clusterWorkerEnv } from '../integration/cluster/cluster-fixtures.js';
import { account, DeliveryTimeline, report } from './accounting.js';
import { newsletter } from './fault-bed.js';

const WORKERS = 2;
/** Enqueued before the workers start, and while the master is killed (in batches, retried with their keys). */
const BEFORE = 1500;
const DURING = 1500;
const PRODUCER_BATCH = 50;
/** Pause between the producer's batches while the master is killed: about 3 s of sending. */
const PRODUCER_PAUSE_MS = 100;
/** Deliveries before the kill. */
const KILL_AT = 700;

/** What the producer was told, and when. */
interface TimedReceipt {
  readonly id: string;
  readonly messageId: string;
  readonly at: number;
  readonly duplicate: boolean;
}

/** One message's fate, joined from the receipt, the ledger after the failover and the SMTP server. */
interface Fate {
  readonly receipt: TimedReceipt;
  readonly state: string | null;
  readonly reason: string | null;
  readonly ambiguous: number;
  readonly copies: readonly ReceivedMessage[];
}

/** Worker processes restarted when they exit, as a supervisor would. */
class Supervisor {
  readonly slots: { current: ChildProcessHandle; starts: number }[] = [];
  private stopping = false;

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  async start(n: number): Promise<void> {
    for (let i = 0; i < n; i += 1) {
      const slot = { current: spawnNode(BIN, ['worker'], { env: this.env }), starts: 1 };
      this.slots.push(slot);
      this.watch(slot);
    }
    await Promise.all(this.slots.map((s) => s.current.waitForOutput(/worker started/, 30_000)));
  }

  private watch(slot: { current: ChildProcessHandle; starts: number }): void {
    const watched = slot.current;
    void watched.exited.then(() => {
      if (this.stopping || slot.current !== watched) return;
      setTimeout(() => {
        if (this.stopping || slot.current !== watched) return;
        slot.current = spawnNode(BIN, ['worker'], { env: this.env });
        slot.starts += 1;
        this.watch(slot);
      }, 200);
    });
  }

  get restarts(): number {
    return this.slots.reduce((n, s) => n + s.starts - 1, 0);
  }

  outputs(chars = 3000): string {
    return this.slots.map((s, i) => `--- worker ${i}\n${s.current.output().slice(-chars)}`).join('\n');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const s of this.slots) s.current.kill('SIGKILL');
    await Promise.all(this.slots.map((s) => s.current.exited));
  }
}

/**
 * Sends `inputs` in batches with one idempotency key per message, retrying a batch that fails (Redis away)
 * with the same keys, so a retry never makes a second message. Bounded: each batch gives up after
 * `deadlineMs`.
 */
async function produce(
  client: MailroomClient,
  inputs: readonly unknown[],
  keyPrefix: string,
  out: TimedReceipt[],
  options: { pauseMs?: number; deadlineMs?: number } = {},
): Promise<{ failedCalls: number; lastError: string | undefined }> {
  const deadlineMs = options.deadlineMs ?? 60_000;
  let failedCalls = 0;
  let lastError: string | undefined;
  for (let start = 0; start < inputs.length; start += PRODUCER_BATCH) {
    const batch = inputs.slice(start, start + PRODUCER_BATCH);
    const keys = batch.map((_, i) => `${keyPrefix}-${start + i}`);
    const end = Date.now() + deadlineMs;
    for (;;) {
      try {
        const receipts = await client.sendMany(batch, { idempotencyKeys: keys });
        const at = Date.now();
        for (const r of receipts) out.push({ id: r.id, messageId: r.messageId, at, duplicate: r.duplicate });
        if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
        break;
      } catch (err) {
        failedCalls += 1;
        lastError = (err as Error).message;
        if (Date.now() > end) throw new Error(`producer gave up on a batch: ${lastError}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }
  return { failedCalls, lastError };
}

/** The port of the replica of the master on `port` (from its INFO replication). */
async function replicaOf(cluster: RedisCluster, master: ClusterNode): Promise<ClusterNode> {
  const [info] = await sendRedisCommands(master.port, [['INFO', 'replication']]);
  const port = Number(/slave0:ip=[^,]+,port=(\d+)/.exec(String(info))?.[1]);
  const replica = cluster.nodes.find((n) => n.port === port);
  assert.ok(replica, `the replica of ${master.port} (${String(info)})`);
  return replica;
}

interface FailoverCase {
  readonly name: string;
  /**
   * `kill`: SIGKILL of the master (a crashed process or host). `freeze`: SIGSTOP (a hung or partitioned
   * master): its replica is promoted, then the old master is let go on (SIGCONT) and finds itself demoted.
   */
  readonly fault: 'kill' | 'freeze';
}

/** Waits until `node` reports itself a master (its promotion), bounded by `timeoutMs`. */
async function promotion(node: ClusterNode, timeoutMs: number): Promise<void> {
  await waitFor(
    async () => String((await sendRedisCommands(node.port, [['ROLE']]))[0]).startsWith('master'),
    { timeoutMs, intervalMs: 100, what: `node ${node.port} to be promoted` },
  );
}

describe('fault: Redis Cluster failover of the master holding the {mailroom} slot', () => {
  let cluster: RedisCluster | undefined;
  let sink: Sink | undefined;
  let client: MailroomClient | undefined;
  let conn: Cluster | undefined;
  let workers: Supervisor | undefined;
  let timeline: DeliveryTimeline | undefined;
  afterEach(async () => {
    timeline?.stop();
    await workers?.stop();
    await client?.close();
    conn?.disconnect();
    await sink?.close();
    await cluster?.stop();
    timeline = workers = client = conn = sink = cluster = undefined;
  });

  const cases: FailoverCase[] = [
    { name: 'master SIGKILL', fault: 'kill' },
    { name: 'master frozen (SIGSTOP), then back', fault: 'freeze' },
  ];
  for (const c of cases) {
    it(`${c.name}: ${BEFORE + DURING} messages, the master fails mid-run; what replication kept is sent once, the rest counted`, async () => {
      cluster = await startRedisCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 2000 });
      sink = await startSink({});
      const received = sink;
      const line = new DeliveryTimeline(() => received.messages.length);
      timeline = line;
      line.start();
      client = new MailroomClient({ redis: clusterSpec(cluster), maxAgeMs: 10 * 60_000 });
      await client.ready();
      conn = createRedisConnection(clusterSpec(cluster), { maxRetriesPerRequest: null }) as Cluster;
      conn.on('error', () => undefined);
      const reader = conn;

      const receipts: TimedReceipt[] = [];
      // slow-10: each reply to the final dot comes 10 ms late, so the run lasts long enough for the kill to
      // land in the middle of it, with SMTP transactions in flight.
      await produce(
        client,
        newsletter(BEFORE, () => 'slow-10-'),
        'before',
        receipts,
      );
      workers = new Supervisor(
        clusterWorkerEnv(cluster, sink, {
          MAILROOM_RETRY_BASE_MS: '100',
          MAILROOM_RETRY_MAX_MS: '1000',
          MAILROOM_LOCK_DURATION_MS: '4000',
          MAILROOM_STALLED_INTERVAL_MS: '2000',
          MAILROOM_SMTP_SOCKET_TIMEOUT_MS: '3000',
          MAILROOM_SHUTDOWN_TIMEOUT_MS: '8000',
          MAILROOM_WATCHDOG_MS: '15000',
        }),
      );
      await workers.start(WORKERS);

      // The producer keeps sending, paced, through the failover.
      await waitFor(() => received.messages.length >= KILL_AT / 2, { timeoutMs: 60_000, what: 'deliveries' });
      const producing = produce(
        client,
        newsletter(DURING, (i) => `slow-10-during${i}-`),
        'during',
        receipts,
        {
          pauseMs: PRODUCER_PAUSE_MS,
        },
      );
      await waitFor(() => received.messages.length >= KILL_AT && receipts.length >= BEFORE + 300, {
        timeoutMs: 60_000,
        what: 'deliveries and acceptances before the kill',
      });

      const home = await cluster.masterOf(PREFIX);
      const replica = await replicaOf(cluster, home);
      const deliveredAtKill = received.messages.length;
      const acceptedAtKill = receipts.length;
      const killAt = Date.now();
      if (c.fault === 'kill') {
        await cluster.kill(home);
        await cluster.waitHealthy(60_000);
      } else {
        home.process?.kill('SIGSTOP');
        await promotion(replica, 60_000);
      }
      const healthyAt = Date.now();
      if (c.fault === 'freeze') {
        home.process?.kill('SIGCONT');
        await cluster.waitHealthy(60_000);
      }
      const promoted = await cluster.masterOf(PREFIX);
      assert.equal(promoted.port, replica.port, 'the replica took over the slot');

      const producer = await producing;
      assert.equal(receipts.length, BEFORE + DURING, 'the producer got a receipt for every message');

      // Every message the ledger still knows must end; a record left `accepted` without its job (its queue
      // write lost) is ended by the reconciler after its 60 s grace, so the wait allows for that.
      const openCount = async (): Promise<number> => {
        let open = 0;
        for (let i = 0; i < receipts.length; i += 500) {
          const pipe = reader.pipeline();
          for (const r of receipts.slice(i, i + 500)) pipe.hget(`${PREFIX}:msg:${r.id}`, 'state');
          for (const [, state] of (await pipe.exec()) ?? []) {
            if (state !== null && !isTerminalState(state as MessageState)) open += 1;
          }
        }
        return open;
      };
      let open = -1;
      try {
        await waitFor(async () => (open = await openCount()) === 0, {
          timeoutMs: 100_000,
          intervalMs: 500,
          what: 'every message the ledger knows to end',
        });
      } catch {
        // Asserted below, with the numbers.
      }
      line.stop();

      const byMessageId = new Map<string, ReceivedMessage[]>();
      for (const m of received.messages) {
        const list = byMessageId.get(m.messageId ?? '') ?? [];
        list.push(m);
        byMessageId.set(m.messageId ?? '', list);
      }
      const fates: Fate[] = [];
      for (let i = 0; i < receipts.length; i += 500) {
        const chunk = receipts.slice(i, i + 500);
        const pipe = reader.pipeline();
        for (const r of chunk) pipe.hmget(`${PREFIX}:msg:${r.id}`, 'state', 'ambiguous', 'reason');
        const replies = (await pipe.exec()) ?? [];
        chunk.forEach((receipt, j) => {
          const [state, ambiguous, reason] = (replies[j]?.[1] as (string | null)[] | undefined) ?? [];
          fates.push({
            receipt,
            state: state ?? null,
            reason: reason ?? null,
            ambiguous: Number(ambiguous ?? 0),
            copies: byMessageId.get(receipt.messageId) ?? [],
          });
        });
      }

      const forgotten = fates.filter((f) => f.state === null);
      const duplicated = fates.filter((f) => f.copies.length > 1);
      const firstCopyAt = (f: Fate) => Math.min(...f.copies.map((m) => m.receivedAt));
      const unexplained = duplicated.filter(
        (f) => f.copies.length - 1 > f.ambiguous && firstCopyAt(f) > healthyAt,
      );
      const states: Record<string, number> = {};
      for (const f of fates) {
        const name = f.state === null ? 'no record' : f.state === 'failed' ? `failed (${f.reason})` : f.state;
        states[name] = (states[name] ?? 0) + 1;
      }
      const before = line.rate(killAt - 3000, killAt);
      const figures = {
        case: c.name,
        accepted: receipts.length,
        acceptedAtKill,
        deliveredAtKill,
        states,
        lostRecords: forgotten.length,
        lostRecordsAlreadySent: forgotten.filter((f) => f.copies.length > 0).length,
        duplicatedMessages: duplicated.length,
        extraCopies: duplicated.reduce((n, f) => n + f.copies.length - 1, 0),
        duplicatesCountedAmbiguous: duplicated.filter((f) => f.copies.length - 1 <= f.ambiguous).length,
        countedAmbiguous: fates.filter((f) => f.ambiguous > 0).length,
        failoverSeconds: (healthyAt - killAt) / 1000,
        deliveriesPerSecondBefore: Math.round(before),
        recoverySecondsAfterFailover: line.recoverySeconds(healthyAt, before, received.messages.length),
        recoverySecondsAfterKill: line.recoverySeconds(killAt, before, received.messages.length),
        producerFailedCalls: producer.failedCalls,
        producerLastError: producer.lastError,
        workerRestarts: workers.restarts,
      };
      process.stdout.write(`# cluster failover ${JSON.stringify(figures)}\n`);
      const row = await account({
        name: `cluster failover, ${c.name}`,
        redis: asStoreConnection(reader),
        prefix: PREFIX,
        receipts,
        received: received.messages,
        recoverySeconds: figures.recoverySecondsAfterFailover,
      });
      report(row);

      const context = `${JSON.stringify(figures)}\n${workers.outputs()}`;
      // What asynchronous replication can and cannot take away.
      assert.equal(open, 0, `every message the ledger still knows ended (${context})`);
      assert.equal(row.secondTerminal, 0, `no message has two terminal outcomes (${context})`);
      assert.ok(
        forgotten.every((f) => f.receipt.at <= healthyAt),
        `only acceptances acknowledged before the failover completed can be forgotten (${context})`,
      );
      assert.equal(
        unexplained.length,
        0,
        `every extra copy is a counted ambiguity or was first sent before the failover completed (${context})`,
      );
      assert.equal(
        fates.filter((f) => f.state === 'delivered' && f.copies.length === 0).length,
        0,
        `no message recorded delivered without a copy (${context})`,
      );
      assert.equal(
        (states.delivered ?? 0) + forgotten.length + (states['failed (enqueue_incomplete)'] ?? 0),
        receipts.length,
        `every message is delivered, forgotten by the failover, or failed for a lost queue write (${context})`,
      );
      assert.ok(figures.recoverySecondsAfterFailover !== null, `deliveries resumed (${context})`);
    });
  }
});
