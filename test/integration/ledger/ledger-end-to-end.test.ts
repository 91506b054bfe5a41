import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, IdempotencyConflictError, NotFoundError } from '@mailroom/core';
import { startSink, type Sink } from '@mailroom/sink';
import { createLogger, loadWorkerConfig, startWorkerService, type WorkerService } from '@mailroom/worker';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { jobReader, message, startTestWorker, testClient, workerEnv } from '../fixtures.js';

describe('ledger end to end: idempotency, status, cancel, re-drive, reconciler', () => {
  let redis: RedisServer;
  let sink: Sink;
  let worker: WorkerService;
  let client: ReturnType<typeof testClient>;
  let conn: ReturnType<RedisServer['client']>;
  let jobs: ReturnType<typeof jobReader>;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    sink = await startSink({});
    worker = await startTestWorker(workerEnv(redis, sink, { MAILROOM_RECONCILE_INTERVAL_MS: '0' }));
    client = testClient(redis);
    conn = redis.client();
    jobs = jobReader(conn);
  });

  after(async () => {
    await worker.close();
    await client.close();
    await jobs.queue.close();
    conn.disconnect();
    await sink.close();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  it('100 concurrent identical sends with one idempotency key produce one message, also after its job is gone', async () => {
    const input = message('ok-idem@example.test');
    const receipts = await Promise.all(
      Array.from({ length: 100 }, () => client.send(input, { idempotencyKey: 'order-1234-confirmation' })),
    );
    const ids = new Set(receipts.map((r) => r.id));
    assert.equal(ids.size, 1, 'one id for all');
    assert.equal(receipts.filter((r) => !r.duplicate).length, 1);
    const [id] = [...ids];
    await jobs.finished(id!);
    assert.equal(await jobs.job(id!), undefined, 'the finished job was removed from BullMQ');
    const again = await client.send(input, { idempotencyKey: 'order-1234-confirmation' });
    assert.equal(again.id, id);
    assert.equal(again.duplicate, true);
    assert.equal(again.messageId, receipts[0]!.messageId);
    await assert.rejects(
      client.send(message('ok-idem@example.test', { subject: 'different' }), {
        idempotencyKey: 'order-1234-confirmation',
      }),
      IdempotencyConflictError,
    );
    assert.equal(sink.messages.filter((m) => m.rcptTo.includes('ok-idem@example.test')).length, 1);
  });

  it('a retry with the same idempotency key finishes an enqueue whose job write was lost', async () => {
    const input = message('ok-stranded@example.test');
    const key = 'order-5678-stranded';
    // The first call records the message, then loses Redis for the job write and for ending it failed.
    const cut = testClient(redis);
    const parts = cut as unknown as {
      queue: { addBulk: () => Promise<never> };
      ledger: { finish: () => Promise<never> };
    };
    parts.queue.addBulk = () => Promise.reject(new Error('Connection is closed.'));
    parts.ledger.finish = () => Promise.reject(new Error('Connection is closed.'));
    await assert.rejects(cut.send(input, { idempotencyKey: key }), /Connection is closed/);
    await cut.close();
    const pending = await jobs.ledger.pending({ limit: 1000 });
    const states = await jobs.ledger.states(pending);
    const accepted = pending.filter((_, i) => states[i] === 'accepted');
    assert.equal(accepted.length, 1, 'the message was left recorded as accepted');
    const stranded = accepted[0]!;
    assert.equal(await jobs.job(stranded), undefined);

    const retry = await client.send(input, { idempotencyKey: key });
    assert.equal(retry.id, stranded);
    assert.equal(retry.duplicate, true);
    assert.equal((await jobs.finished(stranded)).state, 'delivered', 'the retry gave it its job');
    assert.equal(sink.messages.filter((m) => m.rcptTo.includes('ok-stranded@example.test')).length, 1);
    const again = await client.send(input, { idempotencyKey: key });
    assert.equal(again.id, stranded, 'a later retry changes nothing');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sink.messages.filter((m) => m.rcptTo.includes('ok-stranded@example.test')).length, 1);
  });

  it('status() reports state, attempts and the relay replies', async () => {
    const receipt = await client.send(message('temp451-1-status@example.test'));
    const status = await jobs.finished(receipt.id);
    const viaClient = await client.status(receipt.id);
    assert.equal(viaClient.state, 'delivered');
    assert.equal(viaClient.messageId, receipt.messageId);
    assert.equal(viaClient.attempts, 2);
    assert.deepEqual(
      viaClient.history.map((h) => [h.outcome, h.code, h.enhanced]),
      [
        ['deferred', 451, '4.3.0'],
        ['delivered', 250, undefined],
      ],
    );
    assert.ok(viaClient.terminalAt! >= viaClient.acceptedAt);
    assert.equal(status.state, 'delivered');
    await assert.rejects(client.status('0000000000000000000000000z'), NotFoundError);
  });

  it('cancel() withdraws a queued message; it is never sent', async () => {
    await worker.worker.pause(false);
    try {
      const receipt = await client.send(message('ok-cancel@example.test'));
      assert.equal(await client.cancel(receipt.id), true);
      assert.equal(await client.cancel(receipt.id), false, 'already ended');
      await worker.worker.resume();
      await waitFor(async () => (await jobs.job(receipt.id)) === undefined, {
        what: 'the job to be consumed',
      });
      assert.equal((await client.status(receipt.id)).state, 'cancelled');
      assert.equal(sink.messages.filter((m) => m.messageId === receipt.messageId).length, 0);
    } finally {
      await worker.worker.resume();
    }
  });

  it('redrive() resends the expired messages of a tag as new messages', async () => {
    const short = testClient(redis, { maxAgeMs: 1200 });
    try {
      const r1 = await short.send(message('temp451-6-redrive@example.test', { tags: ['spring-sale'] }));
      const r2 = await short.send(message('ok-redrive@example.test', { tags: ['spring-sale'] }));
      assert.equal((await jobs.finished(r1.id)).state, 'expired');
      assert.equal((await jobs.finished(r2.id)).state, 'delivered');
      const again = await client.redrive('spring-sale');
      assert.equal(again.length, 1, 'only the expired one');
      assert.notEqual(again[0]!.id, r1.id);
      assert.equal((await jobs.finished(again[0]!.id)).state, 'delivered');
      assert.equal((await client.status(r1.id)).state, 'expired', 'the old record keeps its terminal state');
    } finally {
      await short.close();
    }
  });

  it('the reconciler re-queues a message whose job vanished, expires overdue ones, and fails half-done enqueues', async () => {
    await worker.worker.pause(false);
    try {
      const lost = await client.send(message('ok-lost@example.test'));
      await conn.del(`{mailroom}:mail:${lost.id}`);
      await conn.lrem('{mailroom}:mail:wait', 0, lost.id);
      const lateClient = testClient(redis, { maxAgeMs: 1 });
      const late = await lateClient.send(message('ok-late@example.test'));
      await lateClient.close();
      // A record written by a producer that died before adding the job:
      await jobs.ledger.accept(
        [
          {
            id: 'halfdone00000000000000000a',
            messageId: '<x@y.test>',
            expiresAt: Date.now() + 60_000,
            payload: '{}',
            contentHash: 'h',
            tags: [],
          },
        ],
        Date.now() - 120_000,
      );
      const report = await worker.reconciler?.runOnce();
      assert.equal(report, undefined, 'reconciler is off in this worker (interval 0)');
      const { Reconciler } = await import('@mailroom/worker');
      const { Registry } = await import('prom-client');
      const { createWorkerMetrics } = await import('@mailroom/metrics');
      const metrics = createWorkerMetrics({
        registry: new Registry(),
        version: 'test',
        defaultMetrics: false,
      });
      const reconciler = new Reconciler({
        redis: conn,
        ledger: jobs.ledger,
        queue: jobs.queue,
        prefix: '{mailroom}',
        metrics,
        logger: createLogger('silent'),
        intervalMs: 1000,
        enqueueGraceMs: 60_000,
        overdueGraceMs: 0,
      });
      const pass = await reconciler.runOnce();
      assert.equal(pass.leader, true);
      assert.equal(pass.requeued, 1);
      assert.equal(pass.expired, 1);
      assert.equal(pass.enqueueFailed, 1);
      assert.equal(pass.overdue, 0);
      assert.equal((await client.status(late.id)).state, 'expired');
      assert.equal((await client.status('halfdone00000000000000000a')).reason, 'enqueue_incomplete');
      await reconciler.stop();
      await worker.worker.resume();
      assert.equal((await jobs.finished(lost.id)).state, 'delivered', 'the re-queued message was delivered');
      assert.equal((await jobs.ledger.stats()).repaired, 1);
    } finally {
      await worker.worker.resume();
    }
  });

  it('refuses to start on a Redis that can evict or has no AOF, naming the setting; allowed only explicitly', async () => {
    const unsafe = await startRedis({ appendonly: false, maxmemoryPolicy: 'allkeys-lru' });
    try {
      const env = workerEnv(unsafe, sink);
      await assert.rejects(
        startWorkerService(loadWorkerConfig(env), { logger: createLogger('silent') }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          const fields = err.issues.map((i) => i.field);
          assert.deepEqual(fields, ['redis maxmemory-policy', 'redis appendonly']);
          assert.match(err.issues[0]!.message, /allkeys-lru/);
          return true;
        },
      );
      const allowed = await startWorkerService(
        loadWorkerConfig({ ...env, MAILROOM_REDIS_ALLOW_UNSAFE: 'true' }),
        {
          logger: createLogger('silent'),
        },
      );
      await allowed.close();
    } finally {
      await unsafe.stop();
    }
  });
});
