import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { MailroomClient } from '@mailroom/client';
import {
  DEFAULT_VERP_LOCAL_PREFIX,
  decodeVerp,
  startFeedbackReceiver,
  type FeedbackReceiver,
  type VerpOptions,
} from '@mailroom/feedback';
import { FeedbackRecorder, mailroomKeys } from '@mailroom/queue';
import { startSink, type Sink } from '@mailroom/sink';
import type { WorkerService } from '@mailroom/worker';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { jobReader, message, startTestWorker, testClient, workerEnv } from '../fixtures.js';
import { corpus, deliver, rewriteSample } from './feedback-corpus.js';

const BOUNCE_DOMAIN = 'bounce.mailroom.example';
const VERP_SECRET = 'worker-and-receiver-share-this-secret';
/** What the worker derives from MAILROOM_BOUNCE_DOMAIN and MAILROOM_VERP_SECRET, and the receiver too. */
const VERP: VerpOptions = {
  localPrefix: DEFAULT_VERP_LOCAL_PREFIX,
  domain: BOUNCE_DOMAIN,
  secret: VERP_SECRET,
};

function sample(name: string) {
  const found = corpus().find((entry) => entry.name === name);
  assert.ok(found, `corpus has ${name}`);
  return found;
}

describe('a worker sends with a VERP return path; the bounce that comes back to it is recorded on its message', () => {
  let redis: RedisServer;
  let sink: Sink;
  let conn: Redis;
  let client: MailroomClient;
  let worker: WorkerService;
  let receiver: FeedbackReceiver;
  let jobs: ReturnType<typeof jobReader>;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    sink = await startSink();
    conn = redis.client();
    jobs = jobReader(conn);
    client = testClient(redis);
    const recorder = new FeedbackRecorder(conn, { prefix: '{mailroom}' });
    receiver = await startFeedbackReceiver({ verp: VERP, record: (event) => recorder.record(event) });
    worker = await startTestWorker(
      workerEnv(redis, sink, { MAILROOM_BOUNCE_DOMAIN: BOUNCE_DOMAIN, MAILROOM_VERP_SECRET: VERP_SECRET }),
    );
  });

  after(async () => {
    await worker.close();
    await receiver.close();
    await client.close();
    await jobs.queue.close();
    conn.disconnect();
    await sink.close();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  it('a single message: delivered, bounced later by Gmail, the recipient suppressed, the next message to it never sent', async () => {
    const to = 'absent.person@example.net';
    const receipt = await client.send(message(to));
    assert.equal((await jobs.finished(receipt.id)).state, 'delivered');
    const sent = sink.messages.find((m) => m.messageId === receipt.messageId);
    assert.ok(sent, 'the relay has the message');
    assert.equal(
      decodeVerp(sent.mailFrom, VERP),
      receipt.id,
      'MAIL FROM is the signed return path of its id',
    );

    // What Gmail sends back, addressed to that return path.
    const bounce = rewriteSample(sample('gmail-5.1.1.eml'), receipt.id, VERP);
    assert.equal(bounce.returnPath, sent.mailFrom);
    const reply = await deliver(receiver.port, [sent.mailFrom], bounce.raw);
    assert.match(reply.response ?? '', /^250 /, reply.errorResponse);

    const status = await jobs.status(receipt.id);
    assert.equal(status.state, 'delivered');
    assert.deepEqual(
      status.history.map((h) => h.outcome),
      ['delivered', 'feedback_hard_bounce'],
    );
    assert.equal((await client.suppressions.get('mailroom.example', to))?.reason, 'hard_bounce');

    const again = await client.send(message(to));
    assert.equal(again.status, 'suppressed');
    assert.deepEqual(again.suppression, { reason: 'hard_bounce', scope: 'mailroom.example' });
  });

  it("a campaign member: suppressed in the scope of the campaign template's From, not its Message-ID domain", async () => {
    // Message-IDs of this producer carry another domain than the From: only the template names the sender.
    const producer = new MailroomClient({ redis: redis.url, messageIdDomain: 'ids.mailroom.example' });
    try {
      const gone = 'gone.reader@yahoo.example';
      const campaign = await producer.createCampaign({
        template: {
          from: { name: 'Brand News', address: 'news@brand.example' },
          subject: 'Hi',
          text: 'Hello.\n',
        },
        recipients: [{ to: gone }, { to: 'still.here@example.test' }],
      });
      assert.equal(campaign.accepted, 2);
      let sent: (typeof sink.messages)[number] | undefined;
      await waitFor(
        () => {
          sent = sink.messages.find((m) => m.rcptTo.includes(gone));
          return sent !== undefined;
        },
        { timeoutMs: 15_000, what: 'the campaign message to reach the relay' },
      );
      const id = decodeVerp(sent!.mailFrom, VERP);
      assert.ok(id !== undefined, 'the member went out with its signed return path');
      assert.equal(sent!.messageId, `<${id}@ids.mailroom.example>`);
      assert.equal((await jobs.finished(id)).state, 'delivered');

      const bounce = rewriteSample(sample('yahoo-554.eml'), id, VERP);
      const reply = await deliver(receiver.port, [sent!.mailFrom], bounce.raw);
      assert.match(reply.response ?? '', /^250 /, reply.errorResponse);

      assert.equal((await client.suppressions.get('brand.example', gone))?.reason, 'hard_bounce');
      assert.equal(await client.suppressions.get('ids.mailroom.example', gone), undefined);
      const counts = await conn.hget(
        mailroomKeys('{mailroom}').campaign(campaign.id),
        'n:feedback_hard_bounce',
      );
      assert.equal(counts, '1', "counted in the campaign's hash");
      assert.deepEqual(
        (await jobs.status(id)).history.map((h) => h.outcome),
        ['delivered', 'feedback_hard_bounce'],
      );
    } finally {
      await producer.close();
    }
  });
});
