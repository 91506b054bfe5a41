import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '@mailroom/sink';
import type { WorkerService } from '@mailroom/worker';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { jobReader, message, startTestWorker, workerEnv } from '../fixtures.js';
import { auth, post, startTestApi, type ErrorBody, type TestApi } from './api-fixtures.js';

interface Receipt {
  id: string;
  messageId: string;
}

describe('HTTP API while Redis is down', () => {
  let redis: RedisServer;
  let sink: Sink;
  let worker: WorkerService;
  let api: TestApi;
  let key: string;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    // Every write reaches the disk before Redis answers: a 202 must survive the SIGKILL below.
    redis = await startRedis({ appendfsync: 'always' });
    sink = await startSink({});
    worker = await startTestWorker(workerEnv(redis, sink));
    api = await startTestApi(redis);
    key = await api.key(['send', 'read']);
  });

  after(async () => {
    await api.close();
    await worker.close();
    await sink.close();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  it('answers 503 with Retry-After within a second, and delivers every message it answered 202', async (t) => {
    const accepted: Receipt[] = [];
    const outcomes = new Map<number, number>();
    const count = (status: number) => outcomes.set(status, (outcomes.get(status) ?? 0) + 1);
    let next = 0;
    let killed = false;
    /** Sends messages one after another (bounded), recording every 202, until told to stop. */
    const sender = async (): Promise<void> => {
      for (let i = 0; i < 200; i++) {
        if (killed && (outcomes.get(503) ?? 0) >= 10) return;
        const n = next++;
        const r = await post(
          `${api.url}/v1/messages`,
          message(`ok-outage${n}@example.test`),
          auth(key),
        ).catch(() => ({ status: 0, body: undefined, headers: new Headers() }));
        count(r.status);
        if (r.status === 202) accepted.push(r.body as Receipt);
        else assert.ok(r.status === 503 || r.status === 0, `only 202 or 503 (got ${r.status})`);
      }
    };
    const senders = Array.from({ length: 4 }, () => sender());
    await waitFor(() => accepted.length >= 20, { what: 'some messages accepted before the outage' });
    await redis.kill('SIGKILL');
    killed = true;
    await Promise.all(senders);

    // Measured on their own: each request while Redis is down, from send to answer.
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = performance.now();
      const r = await post(`${api.url}/v1/messages`, message(`ok-down${i}@example.test`), auth(key));
      latencies.push(performance.now() - started);
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal((r.body as ErrorBody).error.code, 'ERR_REDIS_UNAVAILABLE');
    }
    const status = await fetch(`${api.url}/v1/messages/${accepted[0]!.id}`, { headers: auth(key) });
    assert.equal(status.status, 503, 'reads too');
    assert.equal((await fetch(`${api.url}/readyz`)).status, 503);
    const worst = Math.max(...latencies);
    t.diagnostic(
      `503 while Redis is down: max ${worst.toFixed(1)} ms, median ${latencies.sort((a, b) => a - b)[5]!.toFixed(1)} ms over ${latencies.length} requests; during the kill: ${JSON.stringify(Object.fromEntries(outcomes))}`,
    );
    assert.ok(worst < 1000, `every 503 within a second (worst ${worst.toFixed(1)} ms)`);

    await redis.restart();
    await waitFor(async () => (await fetch(`${api.url}/readyz`)).status === 200, {
      timeoutMs: 15_000,
      what: 'the API to see Redis again',
    });
    const after = await post(`${api.url}/v1/messages`, message('ok-after@example.test'), auth(key));
    assert.equal(after.status, 202, 'accepting again once Redis is back');
    accepted.push(after.body as Receipt);

    const conn = redis.client();
    const jobs = jobReader(conn);
    try {
      for (const receipt of accepted) {
        const final = await jobs.finished(receipt.id, 30_000);
        assert.equal(final.state, 'delivered', `202'd message ${receipt.id} delivered`);
      }
      const delivered = new Set(sink.messages.map((m) => m.messageId));
      for (const receipt of accepted)
        assert.ok(delivered.has(receipt.messageId), `${receipt.messageId} at the sink`);
      t.diagnostic(`${accepted.length} messages answered 202, all delivered after Redis came back`);
    } finally {
      await jobs.queue.close();
      conn.disconnect();
    }
  });

  it('answers 503 when Redis is frozen too, after the command timeout rather than when Redis wakes', async (t) => {
    const pauseMs = 3000;
    await redis.pause(pauseMs);
    const started = performance.now();
    const r = await post(`${api.url}/v1/messages`, message('ok-frozen@example.test'), auth(key));
    const elapsed = performance.now() - started;
    t.diagnostic(
      `503 while Redis is frozen (CLIENT PAUSE): ${elapsed.toFixed(1)} ms (command timeout 750 ms)`,
    );
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '1');
    assert.ok(elapsed < pauseMs, 'answered before Redis woke up');
    await waitFor(
      async () =>
        (await post(`${api.url}/v1/messages`, message('ok-thawed@example.test'), auth(key))).status === 202,
      { timeoutMs: 15_000, what: 'sending to work again once Redis wakes' },
    );
  });
});
