import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MailroomClient } from '@mailroom/client';
import { startSink, type Sink } from '@mailroom/sink';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { startTestApi, type TestApi } from '../api/api-fixtures.js';
import { startTestWorker, workerEnv } from '../fixtures.js';

const SECRET = 'one-click-secret-of-at-least-32-characters';
const TEMPLATE = {
  from: { name: 'Mailroom News', address: 'news@mailroom.example' },
  subject: 'Weekly news',
  text: 'Hello.\n',
};

/**
 * The whole RFC 8058 loop with real parts: a campaign message carries the one-click link, the mailbox
 * provider POSTs it to the API, and the next message to that address ends `suppressed` without reaching
 * the SMTP server.
 */
describe('one-click unsubscribe, end to end', () => {
  let redis: RedisServer;
  let sink: Sink;
  let api: TestApi;
  let client: MailroomClient;

  before(async () => {
    redis = await startRedis();
    sink = await startSink();
    api = await startTestApi(redis, { MAILROOM_UNSUBSCRIBE_SECRETS: SECRET }, 'warn');
    client = new MailroomClient({ redis: redis.url });
  });
  after(async () => {
    await client.close();
    await api.close();
    await sink.close();
    await redis.stop();
  });

  it('the link in a campaign message suppresses its recipient; the next message to it is never sent', async () => {
    const worker = await startTestWorker(
      workerEnv(redis, sink, {
        MAILROOM_UNSUBSCRIBE_URL: `${api.url}/u/`,
        MAILROOM_UNSUBSCRIBE_SECRETS: SECRET,
      }),
    );
    try {
      const reader = 'ok-leaving-reader@example.test';
      const first = await client.createCampaign({
        template: TEMPLATE,
        recipients: [{ to: reader }, { to: 'ok-staying-reader@example.test' }],
      });
      assert.equal(first.accepted, 2);
      await sink.waitForMessages(2, 20_000);
      const received = sink.messages.find((m) => m.rcptTo.includes(reader))!;
      const header = received.headers.find(([n]) => n.toLowerCase() === 'list-unsubscribe')?.[1] ?? '';
      const link = /<(http:\/\/127\.0\.0\.1:\d+\/u\/[^>]+)>/.exec(header)?.[1];
      assert.ok(link, `a one-click link in ${header}`);

      // What Gmail or Yahoo do when the reader clicks "Unsubscribe".
      const click = await fetch(link, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      });
      assert.equal(click.status, 200);

      const second = await client.createCampaign({
        template: TEMPLATE,
        recipients: [{ to: reader }, { to: 'ok-staying-reader@example.test' }],
      });
      assert.equal(second.accepted, 2);
      await waitFor(async () => (await client.campaignStatus(second.id))?.counts.pending === 0, {
        timeoutMs: 20_000,
        what: 'the second campaign to finish',
      });
      const status = await client.campaignStatus(second.id);
      assert.equal(status?.counts.terminal.suppressed, 1, 'the unsubscribed reader ends suppressed');
      assert.equal(status?.counts.terminal.delivered, 1, 'the other reader still gets it');
      assert.equal(
        sink.messages.filter((m) => m.rcptTo.includes(reader)).length,
        1,
        'the SMTP server saw the unsubscribed reader once: the first campaign only',
      );
    } finally {
      await worker.close();
    }
  });
});
