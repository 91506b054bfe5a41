import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MailroomClient } from '@mailroom/client';
import { startSink, type Sink } from '@mailroom/sink';
import { verifyWebhookSignature, type WebhookEvent } from '@mailroom/webhooks';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { message, startTestWorker, workerEnv } from '../fixtures.js';
import { TEST_SECRET } from './webhook-kit.js';
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver.js';

/** The worker emits an event for every outcome, signed, and a failing receiver gets them on a retry. */
describe('worker: delivery events posted to webhooks', () => {
  let redis: RedisServer;
  let sink: Sink;
  let receiver: WebhookReceiver;
  let client: MailroomClient;

  before(async () => {
    redis = await startRedis();
    sink = await startSink();
    // The first request fails: the events come again with the next try.
    receiver = await startWebhookReceiver((_path, n) => (n === 0 ? 503 : 200));
    client = new MailroomClient({ redis: redis.url });
  });
  after(async () => {
    await client.close();
    await receiver.close();
    await sink.close();
    await redis.stop();
  });

  it('delivered, deferred and bounced events arrive signed, with the message id and SMTP reply', async () => {
    const file = join(redis.dir, 'webhooks.json');
    writeFileSync(file, JSON.stringify([{ name: 'app', url: `${receiver.url}/hooks`, secret: TEST_SECRET }]));
    const worker = await startTestWorker(workerEnv(redis, sink, { MAILROOM_WEBHOOKS_FILE: file }));
    try {
      const [delivered, deferredThenDelivered, bounced] = await client.sendMany([
        message('ok-hooks@example.test'),
        message('temp451-1-hooks@example.test'),
        message('bounce-hooks@example.test'),
      ]);
      const events = new Map<string, WebhookEvent[]>();
      await waitFor(
        () => {
          events.clear();
          for (const r of receiver.on('/hooks').filter((q) => q.answer === 200)) {
            for (const e of JSON.parse(r.body.toString('utf8')) as WebhookEvent[]) {
              events.set(e.messageId ?? '', [...(events.get(e.messageId ?? '') ?? []), e]);
            }
          }
          return (
            events.get(delivered!.id)?.some((e) => e.type === 'delivered') === true &&
            events.get(deferredThenDelivered!.id)?.some((e) => e.type === 'delivered') === true &&
            events.get(bounced!.id)?.some((e) => e.type === 'bounced') === true
          );
        },
        { timeoutMs: 30_000, what: 'the delivery events at the receiver' },
      );
      const first = receiver.on('/hooks')[0]!;
      assert.equal(first.answer, 503, 'the first request failed and was retried');
      for (const r of receiver.on('/hooks')) {
        const verdict = verifyWebhookSignature(r.body, String(r.headers['mailroom-signature']), [
          TEST_SECRET,
        ]);
        assert.equal(verdict.ok, true, 'every request is signed');
      }
      const ok = events.get(delivered!.id)!.find((e) => e.type === 'delivered')!;
      assert.equal(ok.recipient, 'ok-hooks@example.test');
      assert.equal(ok.smtp?.code, 250);
      assert.equal(ok.messageIdHeader, delivered!.messageId);
      assert.deepEqual(
        events
          .get(deferredThenDelivered!.id)!
          .map((e) => e.type)
          .sort(),
        ['deferred', 'delivered'],
      );
      const bounce = events.get(bounced!.id)!.find((e) => e.type === 'bounced')!;
      assert.equal(bounce.smtp?.code, 550);
      assert.equal(bounce.smtp?.enhanced, '5.1.1');
    } finally {
      await worker.close();
    }
  });
});
