import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { MailroomClient, type CampaignRecipientInput } from '@mailroom/client';
import { isMessageId, parseMailbox } from '@mailroom/core';
import {
  CampaignStore,
  Ledger,
  campaignMemberId,
  campaignMemberOf,
  createMailQueue,
  isChunkedCampaignId,
  newCampaignId,
  type CampaignMemberPayload,
  type MailQueue,
} from '@mailroom/queue';
import { startSink, type Sink } from '@mailroom/sink';
import { CampaignFeeder, createLogger, Reconciler, type WorkerService } from '@mailroom/worker';
import { createWorkerMetrics } from '@mailroom/metrics';
import { Registry } from 'prom-client';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { startTestWorker, workerEnv } from '../fixtures.js';
import { countKeys, messageRecords, queueJobs, tallyMembers } from './campaign-tally.js';

const TEMPLATE = {
  from: { name: 'Mailroom News', address: 'news@mailroom.example' },
  subject: 'Hello {{name}}',
  text: 'Dear {{name}}, number {{n}}.\n',
  html: '<p>Dear {{name}}, number {{n}}.</p>',
};

function* readers(n: number, script = 'ok-'): Generator<CampaignRecipientInput> {
  for (let i = 0; i < n; i += 1) {
    yield { to: `${script}r${i}@example.test`, vars: { name: `Reader ${i}`, n: i } };
  }
}

describe('campaigns: compact chunks until the feeder materialises them', () => {
  let redis: RedisServer;
  let sink: Sink;
  let client: MailroomClient;
  let conn: Redis;
  let queue: MailQueue;
  let baseline: string[];
  const silent = createLogger('silent');

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

  /** A feeder driven pass by pass by the test (no timer). */
  function feeder(highWater = 1_000_000): CampaignFeeder {
    return new CampaignFeeder({
      redis: conn,
      queue,
      chunks: new CampaignStore(conn, '{mailroom}').chunks,
      prefix: '{mailroom}',
      logger: silent,
      highWater,
    });
  }

  /** Runs passes until one has nothing left to do (bounded). */
  async function feedAll(f: CampaignFeeder, now?: number) {
    const total = { fed: 0, expired: 0, requeuedChunks: 0 };
    for (let pass = 0; pass < 1000; pass += 1) {
      const r = await f.runOnce(now);
      assert.ok(r.leader, 'the test feeder holds the lease');
      total.fed += r.fed;
      total.expired += r.expired;
      total.requeuedChunks += r.requeuedChunks;
      if (!r.more && r.fed === 0 && r.expired === 0) return total;
    }
    throw new Error('the feeder kept finding work');
  }

  it('derives member ids from the campaign id, reversibly, as valid message ids', () => {
    const campaign = newCampaignId(Date.UTC(2026, 10, 23));
    assert.ok(isChunkedCampaignId(campaign) && isMessageId(campaign), campaign);
    const ids = [0, 1, 31, 32, 999_999, 34_359_738_366].map((i) => campaignMemberId(campaign, i));
    assert.equal(new Set(ids).size, ids.length);
    for (const [n, i] of [0, 1, 31, 32, 999_999, 34_359_738_366].entries()) {
      assert.ok(isMessageId(ids[n]!), ids[n]);
      assert.notEqual(ids[n], campaign);
      assert.deepEqual(campaignMemberOf(ids[n]!), { campaign, index: i });
    }
    assert.equal(campaignMemberOf(campaign), undefined, 'the campaign id is no member');
    assert.throws(() => campaignMemberId(campaign, 34_359_738_367), RangeError);
  });

  it('stores an upload as chunks (no records, no jobs) in under 200 bytes of Redis per recipient', async (t) => {
    await conn.flushall();
    const before = Number(/used_memory:(\d+)/.exec(await conn.info('memory'))?.[1]);
    const n = 20_000;
    const receipt = await client.createCampaign({ template: TEMPLATE, recipients: readers(n) });
    assert.equal(receipt.accepted, n);
    const afterUpload = Number(/used_memory:(\d+)/.exec(await conn.info('memory'))?.[1]);
    const perRecipient = (afterUpload - before) / n;
    assert.ok(perRecipient < 200, `${perRecipient.toFixed(0)} bytes of Redis per recipient`);
    t.diagnostic(`${perRecipient.toFixed(1)} bytes of Redis per recipient after the upload`);
    assert.equal(await messageRecords(conn), 0, 'no ledger record yet');
    assert.equal(await queueJobs(conn), 0, 'no job yet');
    assert.equal(await countKeys(conn, `{mailroom}:campaign:${receipt.id}:chunk:*`), 20);
    const status = await client.campaignStatus(receipt.id);
    assert.equal(status.counts.accepted, n);
    assert.equal(status.counts.pending, n, 'every recipient counts as pending');
    assert.equal(status.uploaded, true);
    const member = await client.status(campaignMemberId(receipt.id, 12_345));
    assert.equal(member.state, 'queued');
    assert.equal(member.messageId, `<${campaignMemberId(receipt.id, 12_345)}@mailroom.example>`);
    await assert.rejects(client.status(campaignMemberId(receipt.id, n)), /no message/, 'past the last one');
  });

  it('materialises exactly what was uploaded: payloads, ids and Message-IDs as the old upload wrote them', async () => {
    await conn.flushall();
    const awkward: CampaignRecipientInput[] = [
      {
        to: { name: 'Zoë "Z"', address: 'ok-zoe@example.test' },
        vars: { name: 'Zoë\n"quoted"\tand tabbed' },
      },
      { to: 'ok-plain@example.test' },
      {
        to: 'ok-nested@example.test',
        vars: { n: 2 ** 60, list: [], deep: { a: [1, null, { b: '\u2028' }] }, empty: {}, t: true },
      },
      { to: 'ok-sparse@example.test', vars: { other: 'x', name: '', skip: undefined } },
    ];
    const receipt = await client.createCampaign(
      { template: TEMPLATE, recipients: awkward, tags: ['spring', 'news:2026'] },
      { chunkSize: 3, batchSize: 2 },
    );
    assert.equal(receipt.accepted, 4);
    const f = feeder();
    const fed = await feedAll(f);
    await f.stop();
    assert.equal(fed.fed, 4);
    for (const [i, input] of awkward.entries()) {
      const id = campaignMemberId(receipt.id, i);
      const record = await conn.hgetall(`{mailroom}:msg:${id}`);
      assert.equal(record.state, 'queued');
      assert.equal(record.messageId, `<${id}@mailroom.example>`);
      assert.equal(record.job, `${receipt.id}-${Math.floor(i / 3)}-${Math.floor((i % 3) / 2)}`);
      const payload = JSON.parse(record.data!) as CampaignMemberPayload;
      const to = parseMailbox(input.to, 'to');
      const expectedVars = JSON.parse(JSON.stringify(input.vars ?? {})) as unknown;
      assert.deepEqual(payload, {
        v: 1,
        campaign: receipt.id,
        id,
        messageIdHeader: record.messageId,
        acceptedAt: Number(record.acceptedAt),
        expiresAt: Number(record.expiresAt),
        to,
        vars: expectedVars,
      });
      assert.equal(await conn.sismember(`{mailroom}:tag:news:2026`, id), 1);
      assert.equal(await conn.zscore('{mailroom}:deadline', id), record.expiresAt);
    }
    const jobs = await queue.getJobs(['prioritized']);
    assert.deepEqual(jobs.map((j) => j.id).sort(), [
      `${receipt.id}-0-0`,
      `${receipt.id}-0-1`,
      `${receipt.id}-1-0`,
    ]);
    assert.deepEqual(jobs.find((j) => j.id === `${receipt.id}-0-1`)?.data, {
      ids: [campaignMemberId(receipt.id, 2)],
      campaign: receipt.id,
    });
    assert.equal(await countKeys(conn, `{mailroom}:campaign:${receipt.id}:chunk:*`), 0, 'chunks deleted');
    assert.equal(await conn.zcard('{mailroom}:campaigns:feeding'), 0, 'campaign retired from the feed');
  });

  it('cancel before materialisation ends every recipient cancelled, exactly, and sends nothing', async () => {
    await conn.flushall();
    sink.reset();
    let campaignId = '';
    // The cancel comes in the middle of the upload: later chunks are accepted and ended at once.
    const rows = async function* () {
      yield* readers(2500);
      const [id] = await conn.zrange('{mailroom}:campaigns:feeding', '0', '0');
      campaignId = id!;
      await client.cancelCampaign(campaignId);
      yield* readers(2500, 'late-');
    };
    const receipt = await client.createCampaign(
      { template: TEMPLATE, recipients: rows() },
      { chunkSize: 500 },
    );
    assert.equal(receipt.id, campaignId);
    assert.equal(receipt.accepted, 5000);
    const status = await client.campaignStatus(receipt.id);
    assert.equal(status.state, 'cancelled');
    assert.equal(status.counts.accepted, 5000);
    assert.equal(status.counts.terminal.cancelled, 5000);
    assert.equal(status.counts.pending, 0);
    assert.equal(await countKeys(conn, `{mailroom}:campaign:${receipt.id}:chunk:*`), 0, 'chunks freed');
    assert.equal(await messageRecords(conn), 0, 'not one record was materialised to cancel it');
    assert.deepEqual(await tallyMembers(client, receipt.id, 5000), { cancelled: 5000 });
    const one = await client.status(campaignMemberId(receipt.id, 4999));
    assert.equal(one.reason, 'campaign_cancelled');
    assert.equal(one.history[0]?.outcome, 'cancelled');
    assert.equal((await conn.hget('{mailroom}:stats', 'cancelled')) ?? '0', '5000');

    const f = feeder();
    assert.deepEqual(await feedAll(f), { fed: 0, expired: 0, requeuedChunks: 0 });
    await f.stop();
    assert.equal(await queueJobs(conn), 0);
    assert.equal(await conn.zcard('{mailroom}:campaigns:feeding'), 0);
  });

  it('cancel after part was materialised: records cancelled by the client, the rest in bulk, counts exact', async () => {
    await conn.flushall();
    const receipt = await client.createCampaign(
      { template: TEMPLATE, recipients: readers(3000) },
      { chunkSize: 500 },
    );
    const f = feeder(600); // two chunks: 1,000 members get records and jobs
    await feedAll(f);
    await f.stop();
    assert.equal(await messageRecords(conn), 1000);
    const store = new CampaignStore(conn, '{mailroom}');
    assert.equal(await store.cancel(receipt.id), 2000, 'the members still in chunks end in bulk');
    assert.equal(await store.cancel(receipt.id), 0, 'a second cancel ends nothing');
    const endedHere = await client.cancelCampaign(receipt.id);
    assert.equal(endedHere, 1000, 'the client ended the members with records');
    const status = await client.campaignStatus(receipt.id);
    assert.equal(status.counts.terminal.cancelled, 3000);
    assert.equal(status.counts.pending, 0);
    assert.deepEqual(await tallyMembers(client, receipt.id, 3000), { cancelled: 3000 });
  });

  it('a paused campaign is not materialised, but its recipients still expire at their maximum age', async () => {
    await conn.flushall();
    const shortLived = new MailroomClient({ redis: redis.url, maxAgeMs: 60_000 });
    try {
      const receipt = await shortLived.createCampaign(
        { template: TEMPLATE, recipients: readers(1200) },
        { chunkSize: 500 },
      );
      await shortLived.pauseCampaign(receipt.id);
      const f = feeder();
      assert.deepEqual(await feedAll(f), { fed: 0, expired: 0, requeuedChunks: 0 }, 'paused: nothing fed');
      assert.equal(await messageRecords(conn), 0);
      const later = Date.now() + 61_000;
      assert.deepEqual(await feedAll(f, later), { fed: 0, expired: 1200, requeuedChunks: 0 });
      await f.stop();
      const status = await shortLived.campaignStatus(receipt.id);
      assert.equal(status.counts.terminal.expired, 1200);
      assert.equal(status.counts.pending, 0);
      assert.equal(await messageRecords(conn), 0);
      const one = await shortLived.status(campaignMemberId(receipt.id, 700));
      assert.equal(one.state, 'expired');
      assert.equal(one.terminalAt, later);
      assert.equal(await conn.zcard('{mailroom}:campaigns:feeding'), 0);
    } finally {
      await shortLived.close();
    }
  });

  it('waits for sendAt before materialising', async () => {
    await conn.flushall();
    const sendAt = Date.now() + 3_600_000;
    const receipt = await client.createCampaign({ template: TEMPLATE, recipients: readers(700), sendAt });
    const f = feeder();
    assert.equal((await feedAll(f)).fed, 0, 'not before sendAt');
    assert.equal(await messageRecords(conn), 0);
    assert.equal((await feedAll(f, sendAt)).fed, 700, 'at sendAt');
    await f.stop();
    assert.equal((await client.campaignStatus(receipt.id)).counts.pending, 700);
    const one = await client.status(campaignMemberId(receipt.id, 0));
    assert.equal(one.state, 'queued');
    assert.equal(one.expiresAt, sendAt + 24 * 3600 * 1000, 'the maximum age counts from sendAt');
  });

  it('a feeder stopped between records and jobs: the next pass adds the jobs, the reconciler waits, nothing twice', async () => {
    await conn.flushall();
    sink.reset();
    const receipt = await client.createCampaign(
      { template: TEMPLATE, recipients: readers(3000) },
      { chunkSize: 500 },
    );
    const store = new CampaignStore(conn, '{mailroom}');
    // Chunk 0 materialised, then the feeder "dies" before adding its jobs.
    const feed = await store.chunks.feedState(receipt.id);
    assert.deepEqual(await store.chunks.materialise(feed, 0, 'feed'), { kind: 'fed', count: 500 });
    assert.deepEqual(await store.chunks.materialise(feed, 0, 'feed'), { kind: 'moved', fed: 1 }, 'once only');
    assert.equal(await messageRecords(conn), 500);
    assert.equal(await queueJobs(conn), 0);
    const reconciler = new Reconciler({
      redis: conn,
      ledger: new Ledger(conn, { prefix: '{mailroom}' }),
      queue,
      prefix: '{mailroom}',
      metrics: createWorkerMetrics({ registry: new Registry(), version: 'test', defaultMetrics: false }),
      logger: silent,
      intervalMs: 1000,
      enqueueGraceMs: 0,
      overdueGraceMs: 0,
    });
    const repair = await reconciler.runOnce();
    await reconciler.stop();
    assert.equal(repair.requeued, 0, 'the members of a chunk whose jobs are pending are the feeder’s');
    assert.equal(await queueJobs(conn), 0);

    let worker: WorkerService | undefined;
    try {
      worker = await startTestWorker(
        workerEnv(redis, sink, {
          MAILROOM_CAMPAIGN_HIGH_WATER: '1000',
          MAILROOM_RECONCILE_INTERVAL_MS: '500',
        }),
      );
      await waitFor(async () => (await client.campaignStatus(receipt.id)).counts.pending === 0, {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: 'the campaign to finish',
      });
    } finally {
      await worker?.close();
    }
    const status = await client.campaignStatus(receipt.id);
    assert.equal(status.counts.terminal.delivered, 3000);
    assert.equal(sink.messages.length, 3000, 'each recipient once');
    assert.equal(new Set(sink.messages.map((m) => m.messageId)).size, 3000);
    const stats = await conn.hgetall('{mailroom}:stats');
    assert.equal(stats.repaired ?? '0', '0', 'no job was repaired');
    assert.equal(stats.duplicate_suppressed ?? '0', '0', 'no message was claimed twice');
  });
});
