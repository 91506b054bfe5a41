import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { MailroomClient } from '@mailroom/client';
import { verifyUnsubscribeToken } from '@mailroom/core';
import { SuppressionStore } from '@mailroom/queue';
import { startSink, type Sink } from '@mailroom/sink';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { message, startTestWorker, workerEnv } from '../fixtures.js';

const SECRET = 'a-test-secret-of-at-least-32-characters!';
const BASE = 'https://mail.example.test/u/';

/**
 * The worker's side of compliance: the suppression list is read again right before sending, and every
 * campaign message carries a signed one-click unsubscribe link.
 */
describe('worker: suppression before sending, one-click unsubscribe headers', () => {
  let redis: RedisServer;
  let sink: Sink;
  let client: MailroomClient;
  let conn: Redis;

  before(async () => {
    redis = await startRedis();
    sink = await startSink();
    client = new MailroomClient({ redis: redis.url });
    conn = redis.client();
  });
  after(async () => {
    await client.close();
    conn.disconnect();
    await sink.close();
    await redis.stop();
  });

  it('a recipient suppressed after the message was accepted ends suppressed and never reaches the relay', async () => {
    const late = 'ok-unsubscribed-late@example.test';
    const receipts = await client.sendMany([message(late), message('ok-still-wanted@example.test')]);
    assert.deepEqual(
      receipts.map((r) => r.status),
      ['queued', 'queued'],
      'both accepted while nobody was suppressed',
    );
    // The unsubscribe arrives while the messages wait in the queue.
    await new SuppressionStore(conn, '{mailroom}').add('mailroom.example', [
      { address: late, reason: 'unsubscribe', source: 'test' },
    ]);
    const worker = await startTestWorker(workerEnv(redis, sink));
    try {
      await waitFor(async () => (await client.status(receipts[0]!.id))?.state === 'suppressed', {
        timeoutMs: 10_000,
        what: 'the late-suppressed message to end suppressed',
      });
      await sink.waitForMessages(1);
      const status = await client.status(receipts[0]!.id);
      assert.equal(status?.state, 'suppressed');
      assert.equal(sink.attempts(late), 0, 'the relay never saw the suppressed recipient');
      assert.equal((await client.status(receipts[1]!.id))?.state, 'delivered');
    } finally {
      await worker.close();
    }
  });

  it('every campaign message carries List-Unsubscribe (https and mailto) and List-Unsubscribe-Post, with a token for its recipient', async () => {
    sink.reset();
    const worker = await startTestWorker(
      workerEnv(redis, sink, {
        MAILROOM_UNSUBSCRIBE_URL: BASE,
        MAILROOM_UNSUBSCRIBE_SECRETS: SECRET,
        MAILROOM_UNSUBSCRIBE_MAILTO: 'unsubscribe@mailroom.example',
      }),
    );
    try {
      const recipients = Array.from({ length: 20 }, (_, i) => ({
        to: `ok-reader${i}@example.test`,
        vars: {},
      }));
      const receipt = await client.createCampaign({
        template: {
          from: { name: 'Mailroom News', address: 'news@mailroom.example' },
          subject: 'News',
          text: 'Hello.\n',
        },
        recipients,
      });
      assert.equal(receipt.accepted, 20);
      await sink.waitForMessages(20, 20_000);
      for (const m of sink.messages) {
        const header = (name: string) => m.headers.find(([n]) => n.toLowerCase() === name)?.[1];
        const list = header('list-unsubscribe');
        assert.ok(list, 'List-Unsubscribe present');
        assert.equal(header('list-unsubscribe-post'), 'List-Unsubscribe=One-Click');
        const https = /<(https:\/\/[^>]+)>/.exec(list)?.[1];
        assert.ok(https?.startsWith(BASE), list);
        assert.match(list, /<mailto:unsubscribe@mailroom\.example\?subject=unsubscribe-[^>]+>/);
        const token = (https ?? '').slice(BASE.length);
        const claims = verifyUnsubscribeToken(token, { secrets: [SECRET] });
        assert.equal(claims.address, m.rcptTo[0], 'the token names this message recipient');
        assert.equal(claims.scope, 'mailroom.example');
      }
    } finally {
      await worker.close();
    }
  });
});
