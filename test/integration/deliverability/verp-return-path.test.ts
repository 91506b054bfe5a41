import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MailroomClient } from '@mailroom/client';
import { decodeVerp } from '@mailroom/feedback';
import { startSink, type Sink } from '@mailroom/sink';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { message, startTestWorker, workerEnv } from '../fixtures.js';

const VERP = {
  localPrefix: 'bounces',
  domain: 'bounce.mailroom.example',
  secret: 'verp-secret-for-tests-0123456789',
};

describe('worker: VERP return path', () => {
  let redis: RedisServer;
  let sink: Sink;
  let client: MailroomClient;
  before(async () => {
    redis = await startRedis();
    sink = await startSink();
    client = new MailroomClient({ redis: redis.url });
  });
  after(async () => {
    await client.close();
    await sink.close();
    await redis.stop();
  });

  it('every message goes out with a signed return path naming it, for single and campaign messages', async () => {
    const worker = await startTestWorker(
      workerEnv(redis, sink, { MAILROOM_BOUNCE_DOMAIN: VERP.domain, MAILROOM_VERP_SECRET: VERP.secret }),
    );
    try {
      const single = await client.send(message('ok-verp-single@example.test'));
      const campaign = await client.createCampaign({
        template: { from: { address: 'news@mailroom.example' }, subject: 'News', text: 'Hello.\n' },
        recipients: [{ to: 'ok-verp-member@example.test', vars: {} }],
      });
      assert.equal(campaign.accepted, 1);
      await sink.waitForMessages(2, 20_000);
      const byRcpt = new Map(sink.messages.map((m) => [m.rcptTo[0], m]));
      const singleFrom = byRcpt.get('ok-verp-single@example.test')!.mailFrom;
      assert.match(singleFrom, /^bounces\+[0-9a-z]{26}\.[0-9a-z]{16}@bounce\.mailroom\.example$/);
      assert.equal(decodeVerp(singleFrom, VERP), single.id, 'the return path decodes to the message id');
      const memberFrom = byRcpt.get('ok-verp-member@example.test')!.mailFrom;
      const memberId = decodeVerp(memberFrom, VERP);
      assert.ok(memberId, memberFrom);
      await waitFor(async () => (await client.status(memberId))?.state === 'delivered', {
        timeoutMs: 5000,
        what: 'the campaign member named by its return path to be recorded delivered',
      });
      // A forged return path (MAC of another secret) does not decode.
      assert.equal(decodeVerp(singleFrom, { ...VERP, secret: 'another-secret-0123456789abcdef' }), undefined);
    } finally {
      await worker.close();
    }
  });
});
