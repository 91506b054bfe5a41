import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '@mailroom/sink';
import type { WorkerService } from '@mailroom/worker';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { waitFor } from '../../harness/wait-for.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { jobReader, message, startTestWorker, testClient, workerEnv } from '../fixtures.js';

describe('delivery outcomes: transient, permanent, expired', () => {
  let redis: RedisServer;
  let sink: Sink;
  let worker: WorkerService;
  let client: ReturnType<typeof testClient>;
  let jobs: ReturnType<typeof jobReader>;
  let conn: ReturnType<RedisServer['client']>;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    sink = await startSink({});
    worker = await startTestWorker(workerEnv(redis, sink));
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

  it('retries transient failures (451 twice) and then delivers once', async () => {
    const to = 'temp451-2-erin@example.test';
    const receipt = await client.send(message(to));
    const result = await jobs.finished(receipt.id);
    assert.equal(result.state, 'delivered');
    assert.equal(result.attempts, 3);
    assert.deepEqual(
      result.history.map((h) => [h.outcome, h.code]),
      [
        ['deferred', 451],
        ['deferred', 451],
        ['delivered', 250],
      ],
    );
    assert.equal(sink.attempts(to), 3, 'the relay saw three attempts');
    const copies = sink.messages.filter((m) => m.messageId === receipt.messageId);
    assert.equal(copies.length, 1, 'delivered exactly once');
  });

  it('retries after a 421 that closes the connection, with the same Message-ID', async () => {
    const to = 'temp421-1-frank@example.test';
    const receipt = await client.send(message(to));
    const result = await jobs.finished(receipt.id);
    assert.equal(result.state, 'delivered');
    assert.equal(result.attempts, 2);
    assert.deepEqual(
      sink.messages.filter((m) => m.rcptTo.includes(to)).map((m) => m.messageId),
      [receipt.messageId],
    );
  });

  it('ends a message that cannot be encoded as failed at once, without sending or retrying it', async () => {
    // Core accepts a 998-character References value; no encoder can fold an unbroken run that long into a
    // 998-octet line with its header name, so the message fails on its first attempt with the reason named.
    const to = 'ok-unencodable@example.test';
    const receipt = await client.send(
      message(to, { headers: { References: `<${'r'.repeat(989)}@x.test>` } }),
    );
    const status = await jobs.finished(receipt.id);
    assert.equal(status.state, 'failed');
    assert.equal(status.reason, 'unencodable');
    assert.equal(status.attempts, 1);
    assert.equal(sink.attempts(to), 0, 'nothing was sent');
  });

  it('bounces a permanent refusal after exactly one attempt', async () => {
    const to = 'bounce-grace@example.test';
    const receipt = await client.send(message(to));
    const result = await jobs.finished(receipt.id);
    assert.equal(result.state, 'bounced');
    assert.equal(result.attempts, 1);
    assert.equal(result.code, 550);
    assert.equal(result.enhanced, '5.1.1');
    const job = await jobs.job(receipt.id);
    assert.ok(job === undefined || (await job.getState()) === 'completed', 'terminal: no retry is scheduled');
    assert.deepEqual(
      result.history.map((h) => h.outcome),
      ['bounced'],
      'one attempt, recorded with its reply',
    );
    assert.match(result.response ?? '', /^550 5\.1\.1/);
    assert.equal(sink.attempts(to), 1);
    assert.equal(sink.messages.filter((m) => m.rcptTo.includes(to)).length, 0);
  });

  it('bounces a message the relay finds too large, once', async () => {
    const to = 'toobig-heidi@example.test';
    const receipt = await client.send(message(to));
    const result = await jobs.finished(receipt.id);
    assert.equal(result.state, 'bounced');
    assert.equal(result.attempts, 1);
    assert.equal(result.code, 552);
  });

  it('expires a message that keeps failing transiently past its max age', async () => {
    const short = testClient(redis, { maxAgeMs: 1500 });
    try {
      const to = 'temp451-1000-ivan@example.test';
      const receipt = await short.send(message(to));
      const result = await jobs.finished(receipt.id, 10_000);
      assert.equal(result.state, 'expired');
      assert.ok(result.attempts >= 2, `retried before expiring (${result.attempts} attempts)`);
      assert.equal(result.code, 451);
      assert.equal(sink.messages.filter((m) => m.rcptTo.includes(to)).length, 0);
    } finally {
      await short.close();
    }
  });

  it('counts every outcome in the metrics', async () => {
    // The ledger write comes first and the metric right after it, so a reader may see the state a moment
    // before the count: wait for the last outcome's count, then check them all.
    await waitFor(
      async () =>
        /mailroom_messages_terminal_total\{outcome="expired",domain="other"\} 1/.test(
          await worker.registry.metrics(),
        ),
      { timeoutMs: 5000, what: 'the expired message to be counted' },
    );
    const text = await worker.registry.metrics();
    // Every recipient here is @example.test, which is not a listed domain: the `other` series.
    assert.match(text, /mailroom_messages_terminal_total\{outcome="delivered",domain="other"\} 2/);
    assert.match(text, /mailroom_messages_terminal_total\{outcome="bounced",domain="other"\} 2/);
    assert.match(text, /mailroom_messages_terminal_total\{outcome="expired",domain="other"\} 1/);
    assert.match(
      text,
      /mailroom_delivery_attempts_total\{result="deferred",reply_class="4xx",relay="default",domain="other"\} [3-9]/,
    );
    assert.match(text, /mailroom_smtp_send_duration_seconds_count\{relay="default",result="delivered"\} 2/);
  });
});
