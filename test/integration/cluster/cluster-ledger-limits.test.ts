import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Cluster } from 'ioredis';
import { MailroomClient } from '@mailroom/client';
import { isTerminalState } from '@mailroom/core';
import {
  RateLimiter,
  SEND_JOB,
  SuppressionStore,
  asStoreConnection,
  createMailQueue,
  createRedisConnection,
  type LimitScope,
  type MailQueue,
} from '@mailroom/queue';
import { startSink, type Sink } from '@mailroom/sink';
import { assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { spawnNode, type ChildProcessHandle } from '../../harness/processes.js';
import { startRedisCluster, type RedisCluster } from '../../harness/redis-cluster.js';
import { waitFor } from '../../harness/wait-for.js';
import { message } from '../fixtures.js';
import { BIN, PREFIX, assertNoClusterClients, clusterSpec, clusterWorkerEnv } from './cluster-fixtures.js';

/** Most grants inside any window [t, t + ms). */
function busiest(sorted: readonly number[], ms: number): number {
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i += 1) {
    while (j < sorted.length && sorted[j]! < sorted[i]! + ms) j += 1;
    best = Math.max(best, j - i);
  }
  return best;
}

describe('Redis Cluster: the ledger, rate limits and the suppression list work unchanged', () => {
  let cluster: RedisCluster;
  let sink: Sink;
  let client: MailroomClient;
  let conn: Cluster;
  let queue: MailQueue;
  const workers: ChildProcessHandle[] = [];
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    cluster = await startRedisCluster();
    sink = await startSink({});
    for (let i = 0; i < 2; i += 1) {
      workers.push(spawnNode(BIN, ['worker'], { env: clusterWorkerEnv(cluster, sink) }));
    }
    await Promise.all(workers.map((w) => w.waitForOutput(/worker started/, 30_000)));
    client = new MailroomClient({ redis: clusterSpec(cluster) });
    await client.ready();
    conn = createRedisConnection(clusterSpec(cluster), { maxRetriesPerRequest: null }) as Cluster;
    conn.on('error', () => undefined);
    queue = createMailQueue(asStoreConnection(conn), { prefix: PREFIX });
  });

  after(async () => {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    await queue.close();
    conn.disconnect();
    await client.close();
    await sink.close();
    await assertNoClusterClients(cluster);
    await cluster.stop();
    await assertNoResourceLeaks(baseline);
  });

  async function terminal(id: string, timeoutMs = 30_000) {
    let status = await client.status(id);
    await waitFor(
      async () => {
        status = await client.status(id);
        return isTerminalState(status.state);
      },
      { timeoutMs, intervalMs: 100, what: `message ${id} to finish` },
    );
    return status;
  }

  const copiesOf = (messageId: string) => sink.messages.filter((m) => m.messageId === messageId).length;

  it('a second job for a message, while it is on the wire or after it was delivered, does not send it again', async () => {
    // Two jobs per message race on two worker processes: the ledger's claim lets one attempt send.
    const receipts = await client.sendMany(
      Array.from({ length: 60 }, (_, i) => message(`slow-300-race${i}@example.test`)),
    );
    await queue.addBulk(
      receipts.map((r) => ({ name: SEND_JOB, data: { id: r.id }, opts: { jobId: `${r.id}-again` } })),
    );
    for (const r of receipts) {
      const status = await terminal(r.id);
      assert.equal(status.state, 'delivered');
      assert.equal(status.attempts, 1, `${r.id}: one attempt`);
    }
    await waitFor(
      async () => (await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized')).active === 0,
      { timeoutMs: 30_000, what: 'the second jobs to finish' },
    );
    // And once more after delivery: a job re-run (as after a lost lock) finds the message done.
    const [first] = receipts;
    await queue.add(SEND_JOB, { id: first!.id }, { jobId: `${first!.id}-rerun` });
    await waitFor(async () => (await queue.getJob(`${first!.id}-rerun`)) === undefined, {
      timeoutMs: 30_000,
      what: 'the re-run job to be consumed',
    });
    for (const r of receipts) assert.equal(copiesOf(r.messageId), 1, `${r.id} sent once`);
    assert.equal((await client.status(first!.id)).attempts, 1);
  });

  it('an idempotency key returns the first message', async () => {
    const input = message('ok-idem@example.test');
    const a = await client.send(input, { idempotencyKey: 'cluster-order-1' });
    const b = await client.send(input, { idempotencyKey: 'cluster-order-1' });
    assert.equal(b.id, a.id);
    assert.equal(b.duplicate, true);
    assert.equal((await terminal(a.id)).state, 'delivered');
    assert.equal(copiesOf(a.messageId), 1);
  });

  it('the rate limiter never grants more than the rate in any second, and takes every scope or none', async () => {
    const limiter = new RateLimiter(asStoreConnection(conn), PREFIX);
    const scope: LimitScope = { name: 'relay:cluster', perSecond: 50, burstMs: 1000 };
    const grants: number[] = [];
    const end = Date.now() + 20_000;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (grants.length < 120 && Date.now() < end) {
          const r = await limiter.acquire([scope]);
          if (r.allowed) grants.push(r.at);
          else await new Promise((resolve) => setTimeout(resolve, r.waitMs));
        }
      }),
    );
    grants.sort((a, b) => a - b);
    assert.ok(grants.length >= 120, `${grants.length} grants`);
    assert.ok(busiest(grants, 1000) <= 50, `busiest second ${busiest(grants, 1000)}`);

    const relay: LimitScope = { name: 'relay:both', perSecond: 1000 };
    const group: LimitScope = { name: 'group:slow', perSecond: 5, burstMs: 0 };
    assert.equal((await limiter.acquire([relay, group])).allowed, true);
    const second = await limiter.acquire([relay, group]);
    assert.equal(!second.allowed && second.scope, 'group:slow');
    assert.equal(await conn.zcard(`${PREFIX}:rl:relay:both:log`), 1, 'the blocked send was counted nowhere');

    const factor = await limiter.throttled('group:slow');
    assert.ok(factor < 1, `cut to ${factor}`);
    const cut = (await limiter.cutScopes()).get('group:slow');
    // The cut recovers with time (recoverPerSecond), so the second read may be a hair above the first.
    assert.ok(cut !== undefined && cut >= factor && cut < factor + 0.05, `cut ${cut}, was ${factor}`);
  });

  it('a message to a suppressed address is recorded suppressed at enqueue and never sent', async () => {
    assert.equal(await client.suppressions.add('*', [{ address: 'gone@example.test', reason: 'manual' }]), 1);
    // One message per call, each acceptance of a suppressed message its own ledger transaction: a
    // transaction sent to a master that does not hold the prefix's slot would fail 2 times in 3.
    for (let i = 0; i < 12; i += 1) {
      const r = await client.send(message('gone@example.test', { subject: `try ${i}` }));
      assert.equal(r.status, 'suppressed');
      assert.equal((await client.status(r.id)).state, 'suppressed');
    }
    assert.equal(sink.messages.filter((m) => m.rcptTo.includes('gone@example.test')).length, 0);
  });

  it('the suppression list: checked again by the worker, imported, counted, listed, removed', async () => {
    const store = new SuppressionStore(asStoreConnection(conn), PREFIX);
    // Queued while sending is paused, suppressed before a worker takes it: the worker's own check stops it.
    await queue.pause();
    let late;
    try {
      late = await client.send(message('ok-late@example.test'));
      assert.equal(late.status, 'queued');
      await client.suppressions.add('mailroom.example', [
        { address: 'ok-late@example.test', reason: 'manual' },
      ]);
    } finally {
      await queue.resume();
    }
    assert.equal((await terminal(late.id)).state, 'suppressed');
    assert.equal(copiesOf(late.messageId), 0, 'never sent');

    const imported = await store.import(
      'mailroom.example',
      Array.from({ length: 2500 }, (_, i) => `imported${i}@example.test`),
      { reason: 'manual', source: 'cluster-test' },
    );
    assert.equal(imported.added, 2500);
    assert.equal(await store.count('mailroom.example'), 2501);
    const found = await store.check('mailroom.example', ['imported17@example.test', 'ok-other@example.test']);
    assert.deepEqual([...found.keys()], ['imported17@example.test']);
    assert.equal(await store.remove('mailroom.example', ['imported17@example.test']), 1);
    let listed = 0;
    for await (const entry of store.export('mailroom.example')) if (entry.address) listed += 1;
    assert.equal(listed, 2500);
  });
});
