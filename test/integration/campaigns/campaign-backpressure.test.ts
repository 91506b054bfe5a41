import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { MailroomClient, type CampaignRecipientInput } from '@mailroom/client';
import { CampaignStore, createMailQueue, type MailQueue } from '@mailroom/queue';
import { startSink, type Sink } from '@mailroom/sink';
import { CampaignFeeder, createLogger, type WorkerService } from '@mailroom/worker';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { startTestWorker, workerEnv } from '../fixtures.js';
import { countKeys, messageRecords, queueJobs, tallyMembers } from './campaign-tally.js';

const TEMPLATE = {
  from: { name: 'Mailroom News', address: 'news@mailroom.example' },
  subject: 'Hello {{name}}',
  text: 'Dear {{name}}.\n',
};

function* readers(n: number, script = 'ok-'): Generator<CampaignRecipientInput> {
  for (let i = 0; i < n; i += 1) yield { to: `${script}r${i}@example.test`, vars: { name: `Reader ${i}` } };
}

const HIGH_WATER = 2000;
const CHUNK = 1000;
const BATCH = 50;
const CONCURRENCY = 10;

describe('campaigns: records and jobs are made as the queue drains (backpressure)', () => {
  let redis: RedisServer;
  let sink: Sink;
  let client: MailroomClient;
  let conn: Redis;
  let queue: MailQueue;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    sink = await startSink();
    client = new MailroomClient({ redis: redis.url });
    conn = redis.client();
    queue = createMailQueue(conn, { prefix: '{mailroom}' });
  });

  after(async () => {
    await queue.close();
    await client.close();
    conn.disconnect();
    await sink.close();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  const env = (extra: Record<string, string> = {}) =>
    workerEnv(redis, sink, {
      MAILROOM_CAMPAIGN_HIGH_WATER: String(HIGH_WATER),
      MAILROOM_WORKER_CONCURRENCY: String(CONCURRENCY),
      ...extra,
    });

  it('holds at most the high-water mark of records and jobs, however long the list', async (t) => {
    await conn.flushall();
    sink.reset();
    const n = 12_000;
    const receipt = await client.createCampaign(
      { template: TEMPLATE, recipients: readers(n) },
      { chunkSize: CHUNK, batchSize: BATCH },
    );
    assert.equal(receipt.accepted, n);
    assert.equal(await messageRecords(conn), 0, 'nothing materialised with no worker running');
    assert.equal(await countKeys(conn, `{mailroom}:campaign:${receipt.id}:chunk:*`), n / CHUNK);

    // A feeder with no worker taking jobs: it stops at the mark and stays there.
    const feeder = new CampaignFeeder({
      redis: conn,
      queue,
      chunks: new CampaignStore(conn, '{mailroom}').chunks,
      prefix: '{mailroom}',
      logger: createLogger('silent'),
      highWater: HIGH_WATER,
    });
    let fed = 0;
    for (let pass = 0; pass < 10; pass += 1) fed += (await feeder.runOnce()).fed;
    await feeder.stop();
    const records = await messageRecords(conn);
    assert.equal(records, fed);
    assert.ok(records > 0 && records < HIGH_WATER + CHUNK, `${records} records for ${n} recipients`);
    assert.ok((await queueJobs(conn)) <= Math.ceil((HIGH_WATER + CHUNK) / BATCH), 'jobs bounded too');
    assert.equal(
      await countKeys(conn, `{mailroom}:campaign:${receipt.id}:chunk:*`),
      (n - records) / CHUNK,
      'the rest stays in chunks',
    );
    const progress = await new CampaignStore(conn, '{mailroom}').progress(receipt.id);
    assert.equal(progress?.materialised, records);
    assert.equal(progress?.unmaterialised, n - records);
    assert.equal((await client.campaignStatus(receipt.id)).counts.pending, n);

    // A worker sends; at no moment do more than mark + one chunk + the jobs it holds have records pending.
    let worker: WorkerService | undefined;
    let peakOpen = 0;
    let samples = 0;
    try {
      worker = await startTestWorker(env());
      await waitFor(
        async () => {
          peakOpen = Math.max(peakOpen, await conn.zcard('{mailroom}:deadline'));
          samples += 1;
          return (await client.campaignStatus(receipt.id)).counts.pending === 0;
        },
        { timeoutMs: 180_000, intervalMs: 50, what: 'the campaign to finish' },
      );
    } finally {
      await worker?.close();
    }
    const bound = HIGH_WATER + CHUNK + CONCURRENCY * BATCH;
    assert.ok(samples > 10, `${samples} samples while sending`);
    assert.ok(peakOpen <= bound, `at most ${peakOpen} records pending at once (bound ${bound})`);
    t.diagnostic(`feeder alone: ${records} records; sending: at most ${peakOpen} pending (bound ${bound})`);
    const status = await client.campaignStatus(receipt.id);
    assert.equal(status.counts.terminal.delivered, n);
    assert.equal(sink.messages.length, n);
    assert.equal(new Set(sink.messages.map((m) => m.messageId)).size, n, 'each recipient once');
    assert.equal(await countKeys(conn, `{mailroom}:campaign:${receipt.id}:chunk:*`), 0);
    assert.equal(await conn.zcard('{mailroom}:campaigns:feeding'), 0, 'retired once fed');
  });

  it('pause holds the feed; progress counts reconcile with every member’s status, paused and at the end', async () => {
    await conn.flushall();
    sink.reset();
    const n = 3000;
    const receipt = await client.createCampaign(
      { template: TEMPLATE, recipients: readers(n, 'slow-5-') },
      { chunkSize: 500 },
    );
    let worker: WorkerService | undefined;
    try {
      worker = await startTestWorker(env({ MAILROOM_CAMPAIGN_HIGH_WATER: '500' }));
      await waitFor(() => sink.messages.length >= 200, { timeoutMs: 30_000, what: '200 deliveries' });
      await client.pauseCampaign(receipt.id);
      // Messages on the wire finish; then nothing moves.
      let last = -1;
      await waitFor(
        async () => {
          const now = (await client.campaignStatus(receipt.id)).counts.terminal.delivered;
          const still = now === last && now === sink.messages.length;
          last = now;
          return still;
        },
        { timeoutMs: 30_000, intervalMs: 1000, what: 'the paused campaign to stand still' },
      );
      const paused = await client.campaignStatus(receipt.id);
      assert.equal(paused.state, 'paused');
      assert.ok(paused.counts.terminal.delivered < n, 'paused before the end');
      const progress = await new CampaignStore(conn, '{mailroom}').progress(receipt.id);
      assert.ok((progress?.unmaterialised ?? 0) > 0, 'part of the list is still in chunks');
      const tally = await tallyMembers(client, receipt.id, n);
      assert.equal(tally.delivered, paused.counts.terminal.delivered, JSON.stringify(tally));
      assert.equal(n - (tally.delivered ?? 0), paused.counts.pending, JSON.stringify(tally));
      // Held members of a paused campaign are claimed and released again every second: queued or sending.
      assert.equal(
        (tally.queued ?? 0) + (tally.sending ?? 0),
        paused.counts.pending,
        'every pending member is queued (in a chunk or not) or briefly claimed',
      );
      assert.equal(await messageRecords(conn), progress?.materialised);

      await client.resumeCampaign(receipt.id);
      await waitFor(async () => (await client.campaignStatus(receipt.id)).counts.pending === 0, {
        timeoutMs: 120_000,
        intervalMs: 200,
        what: 'the resumed campaign to finish',
      });
    } finally {
      await worker?.close();
    }
    const done = await client.campaignStatus(receipt.id);
    assert.equal(done.counts.terminal.delivered, n);
    assert.deepEqual(await tallyMembers(client, receipt.id, n), { delivered: n });
    assert.equal(sink.messages.length, n);
    assert.equal(new Set(sink.messages.map((m) => m.messageId)).size, n);
  });
});
