import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '@mailroom/sink';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { killAllChildren, spawnNode, type ChildProcessHandle } from '../../harness/processes.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { jobReader, message, testClient, workerEnv } from '../fixtures.js';

const BIN = fileURLToPath(new URL('../../../../apps/cli/bin/mailroom.js', import.meta.url));
const TOTAL = 500;

describe('SIGTERM during a run (a deploy)', () => {
  let redis: RedisServer;
  let sink: Sink;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    sink = await startSink({});
  });

  after(async () => {
    await killAllChildren();
    await sink.close();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  function startWorkers(n: number): ChildProcessHandle[] {
    const env = {
      ...process.env,
      ...workerEnv(redis, sink, {
        MAILROOM_LOG_LEVEL: 'info',
        MAILROOM_WORKER_CONCURRENCY: '10',
        MAILROOM_SMTP_MAX_CONNECTIONS: '5',
        MAILROOM_SHUTDOWN_TIMEOUT_MS: '10000',
      }),
    };
    return Array.from({ length: n }, () => spawnNode(BIN, ['worker'], { env }));
  }

  it('stops taking jobs, finishes what is in flight, and loses or repeats nothing', async () => {
    const client = testClient(redis);
    const conn = redis.client();
    const jobs = jobReader(conn);
    try {
      await client.ready();
      const inputs = Array.from({ length: TOTAL }, (_, i) => message(`slow-25-reader${i}@example.test`));
      const receipts = await client.sendMany(inputs);

      const first = startWorkers(2);
      await Promise.all(first.map((w) => w.waitForOutput(/worker started/, 15_000)));
      await waitFor(() => sink.messages.length >= 100, { timeoutMs: 20_000, what: '100 deliveries' });
      const signalledAt = Date.now();
      for (const w of first) w.kill('SIGTERM');
      const exits = await Promise.all(first.map((w) => w.exited));
      const stopSeconds = (Date.now() - signalledAt) / 1000;
      for (const [i, exit] of exits.entries()) {
        assert.equal(
          exit.code,
          0,
          `worker ${i} drained and exited cleanly:\n${first[i]!.output().slice(-2000)}`,
        );
        assert.match(first[i]!.output(), /"drained":true/);
      }
      assert.ok(stopSeconds < 10, `workers stopped within the shutdown deadline (${stopSeconds}s)`);
      const afterStop = sink.messages.length;
      assert.ok(afterStop < TOTAL, 'the run was really interrupted');
      const counts = await jobs.queue.getJobCounts('active');
      assert.equal(counts.active, 0, 'no job was left half-done (none will stall)');

      const second = startWorkers(2);
      await waitFor(async () => ((await jobs.ledger.stats()).delivered ?? 0) === TOTAL, {
        timeoutMs: 60_000,
        what: `all ${TOTAL} messages to finish`,
      });
      for (const w of second) w.kill('SIGTERM');
      await Promise.all(second.map((w) => w.exited));

      const copies = new Map<string, number>();
      for (const m of sink.messages) copies.set(m.messageId ?? '', (copies.get(m.messageId ?? '') ?? 0) + 1);
      for (const r of receipts)
        assert.equal(copies.get(r.messageId), 1, `${r.messageId} delivered exactly once`);
      assert.equal(sink.messages.length, TOTAL, 'nothing extra was delivered');
      for (const r of receipts) assert.equal((await jobs.status(r.id)).state, 'delivered');
      const stats = await jobs.ledger.stats();
      assert.equal(stats.duplicate_suppressed ?? 0, 0, 'no job found its message already sent');
      assert.equal(stats.crash_resent ?? 0, 0);
      assert.equal(stats.ambiguous_resent ?? 0, 0);
    } finally {
      await client.close();
      await jobs.queue.close();
      conn.disconnect();
    }
  });
});
