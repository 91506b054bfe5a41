import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { MailroomClient, type CampaignRecipientInput } from '@mailroom/client';
import { ValidationError } from '@mailroom/core';
import { startSink, type Sink } from '@mailroom/sink';
import type { WorkerService } from '@mailroom/worker';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { startTestWorker, workerEnv } from '../fixtures.js';

const TEMPLATE = {
  from: { name: 'Mailroom News', address: 'news@mailroom.example' },
  subject: 'Hello {{name}}, the November issue',
  text: 'Dear {{name}},\n\nThis month: {{topic}}.\n',
  html: '<p>Dear <b>{{name}}</b>,</p><p>This month: {{topic}}.</p>',
};

function* readers(n: number, script = 'ok-'): Generator<CampaignRecipientInput> {
  for (let i = 0; i < n; i += 1) {
    yield {
      to: { name: `Reader ${i}`, address: `${script}reader${i}@example.test` },
      vars: { name: `Reader ${i}`, topic: `topic <${i}>` },
    };
  }
}

describe('campaigns: a template and a streamed recipient list, sent in batches', () => {
  let redis: RedisServer;
  let sink: Sink;
  let worker: WorkerService;
  let client: MailroomClient;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    sink = await startSink({ keepRaw: true });
    worker = await startTestWorker(
      workerEnv(redis, sink, { MAILROOM_WORKER_CONCURRENCY: '20', MAILROOM_SMTP_MAX_CONNECTIONS: '10' }),
    );
    client = new MailroomClient({ redis: redis.url });
  });

  after(async () => {
    await worker.close();
    await client.close();
    await sink.close();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  async function settled(id: string, timeoutMs = 120_000) {
    let status = await client.campaignStatus(id);
    await waitFor(
      async () => {
        status = await client.campaignStatus(id);
        return status.uploaded && status.counts.pending === 0;
      },
      { timeoutMs, intervalMs: 200, what: `campaign ${id} to finish` },
    );
    return status;
  }

  it('delivers a 10,000-recipient campaign once each, personalized, with exact counts; bad rows are refused by row', async () => {
    sink.reset();
    const rows = (function* () {
      yield* readers(5000);
      yield { to: 'not an address', vars: { name: 'x' } };
      yield* (function* () {
        for (const r of readers(10_000)) {
          const address = (r.to as { address: string }).address;
          if (Number(/reader(\d+)@/.exec(address)![1]) >= 5000) yield r;
        }
      })();
      yield { to: 'ok-late@example.test', vars: 'not an object' };
    })();
    const progress: number[] = [];
    const receipt = await client.createCampaign(
      { name: 'November issue', template: TEMPLATE, recipients: rows },
      { onProgress: (p) => progress.push(p.accepted) },
    );
    assert.equal(receipt.accepted, 10_000);
    assert.equal(receipt.refused, 2);
    assert.deepEqual(
      receipt.refusals.map((r) => [r.row, r.field]),
      [
        [5001, 'to'],
        [10_002, 'vars'],
      ],
    );
    assert.ok(progress.length >= 10 && progress.at(-1) === 10_000, 'progress reported chunk by chunk');

    const status = await settled(receipt.id);
    assert.equal(status.counts.accepted, 10_000);
    assert.equal(status.counts.terminal.delivered, 10_000);
    assert.equal(status.counts.pending, 0);
    assert.equal(sink.messages.length, 10_000, 'the SMTP server stored exactly 10,000 messages');
    const ids = new Set(sink.messages.map((m) => m.messageId));
    assert.equal(ids.size, 10_000, 'each with its own Message-ID');
    const rcpts = new Set(sink.messages.map((m) => m.rcptTo[0]));
    assert.equal(rcpts.size, 10_000, 'each to its own recipient');
    assert.ok(sink.messages.every((m) => m.mailFrom === 'news@mailroom.example'));

    const sample = sink.messages.find((m) => m.rcptTo[0] === 'ok-reader4321@example.test');
    assert.ok(sample?.raw, 'the sink kept the raw message');
    const parsed = await simpleParser(sample.raw);
    assert.equal(parsed.subject, 'Hello Reader 4321, the November issue');
    assert.equal(parsed.text, 'Dear Reader 4321,\n\nThis month: topic <4321>.\n');
    assert.equal(parsed.html, '<p>Dear <b>Reader 4321</b>,</p><p>This month: topic &lt;4321&gt;.</p>');
    assert.equal(parsed.to && 'value' in parsed.to ? parsed.to.value[0]?.name : undefined, 'Reader 4321');
  });

  it('pauses, resumes and cancels mid-run; every recipient ends delivered or cancelled, none twice', async () => {
    sink.reset();
    const receipt = await client.createCampaign({ template: TEMPLATE, recipients: readers(2000, 'slow-5-') });
    await waitFor(() => sink.messages.length >= 200, { timeoutMs: 30_000, what: '200 deliveries' });
    await client.pauseCampaign(receipt.id);
    assert.equal((await client.campaignStatus(receipt.id)).state, 'paused');
    // Messages already on the wire finish; after that nothing more goes out while paused.
    await new Promise((r) => setTimeout(r, 1500));
    const whilePaused = sink.messages.length;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(sink.messages.length, whilePaused, 'nothing sent while paused');
    assert.ok(whilePaused < 2000);

    await client.resumeCampaign(receipt.id);
    await waitFor(() => sink.messages.length >= whilePaused + 200, {
      timeoutMs: 30_000,
      what: 'sending resumed',
    });
    const cancelled = await client.cancelCampaign(receipt.id);
    assert.ok(cancelled > 0, 'messages not yet sent were cancelled');
    const status = await settled(receipt.id);
    assert.equal(status.state, 'cancelled');
    const { delivered, cancelled: ended } = status.counts.terminal;
    assert.equal(delivered + ended, 2000, `delivered ${delivered} + cancelled ${ended}`);
    assert.equal(sink.messages.length, delivered, 'the server has exactly the delivered ones');
    assert.equal(new Set(sink.messages.map((m) => m.messageId)).size, delivered, 'none twice');
    await assert.rejects(client.resumeCampaign('nosuchcampaign'), /no campaign/);
  });

  it('sends transactional mail before a campaign already in the queue', async () => {
    sink.reset();
    const campaign = await client.createCampaign({
      template: TEMPLATE,
      recipients: readers(1500, 'slow-5-'),
    });
    await waitFor(() => sink.messages.length >= 50, { timeoutMs: 30_000, what: 'the campaign to start' });
    const receipt = await client.send({
      from: 'orders@mailroom.example',
      to: 'ok-buyer@example.test',
      subject: 'Your order',
      text: 'Thanks for your order.\n',
    });
    await waitFor(() => sink.messages.some((m) => m.messageId === receipt.messageId), {
      timeoutMs: 30_000,
      what: 'the transactional message',
    });
    const behind = (await client.campaignStatus(campaign.id)).counts.pending;
    assert.ok(
      behind > 500,
      `the transactional message went ahead of the campaign (${behind} campaign messages still pending)`,
    );
    await settled(campaign.id);
  });

  it('refuses an invalid template naming the field, storing nothing', async () => {
    const conn = redis.client();
    const campaignKeys = async () => (await conn.keys('{mailroom}:campaign:*')).length;
    const messagesBefore = (await conn.hget('{mailroom}:stats', 'accepted')) ?? '0';
    const keysBefore = await campaignKeys();
    await assert.rejects(
      client.createCampaign({ template: { ...TEMPLATE, subject: 'Hi {{#if}}' }, recipients: readers(3) }),
      (err: unknown) => err instanceof ValidationError && err.issues.some((i) => i.field === 'subject'),
    );
    await assert.rejects(
      client.createCampaign({ template: { ...TEMPLATE, from: 'nope' }, recipients: readers(3) }),
      (err: unknown) => err instanceof ValidationError && err.issues.some((i) => i.field.startsWith('from')),
    );
    assert.equal(await campaignKeys(), keysBefore, 'no campaign was stored');
    assert.equal(
      (await conn.hget('{mailroom}:stats', 'accepted')) ?? '0',
      messagesBefore,
      'no message was accepted',
    );
    conn.disconnect();
  });
});
