import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { loadApiConfig } from '@mailroom/api';
import { createInboundLogger, loadInboundConfig, startInbound, type InboundService } from '@mailroom/cli';
import { MailroomClient } from '@mailroom/client';
import { ConfigError } from '@mailroom/core';
import { DEFAULT_VERP_LOCAL_PREFIX, decodeVerp, type VerpOptions } from '@mailroom/feedback';
import { dkimDnsRecord, loadDkimKeys, type DkimKeyConfig } from '@mailroom/mime';
import { startSink, type Sink, type ReceivedMessage } from '@mailroom/sink';
import type { WorkerService } from '@mailroom/worker';
import { verifyWebhookSignature, type WebhookEvent } from '@mailroom/webhooks';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { startTestApi, type TestApi } from '../api/api-fixtures.js';
import { verifyWithDkimpy } from '../deliverability/dkim-verifier.js';
import { COMPLAINTS_ADDRESS, corpus, deliver, rewriteSample } from '../feedback/feedback-corpus.js';
import { jobReader, message, startTestWorker, workerEnv } from '../fixtures.js';
import { TEST_SECRET } from './webhook-kit.js';
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver.js';

const BOUNCE_DOMAIN = 'bounce.mailroom.example';
const VERP_SECRET = 'feedback-webhooks-verp-secret-0123';
const VERP: VerpOptions = {
  localPrefix: DEFAULT_VERP_LOCAL_PREFIX,
  domain: BOUNCE_DOMAIN,
  secret: VERP_SECRET,
};
const UNSUBSCRIBE_SECRET = 'feedback-webhooks-unsubscribe-secret-0123456789';
/** The campaign's sender: DKIM-signed, and a scope of its own. */
const BRAND = 'brand.example';
/** Message-IDs carry this domain, not the From's: the scope must come from the sender kept on the record. */
const ID_DOMAIN = 'ids.mailroom.example';

function sample(name: string) {
  const found = corpus().find((entry) => entry.name === name);
  assert.ok(found, `corpus has ${name}`);
  return found;
}

const pem = (key: { export(options: { type: 'pkcs8'; format: 'pem' }): string | Buffer }): string =>
  key.export({ type: 'pkcs8', format: 'pem' }).toString();

function header(m: ReceivedMessage, name: string): string[] {
  return m.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

/**
 * Feedback that arrives after sending becomes webhook events: a complaint and a late bounce through the real
 * `mailroom inbound` SMTP receiver (`complained`, `bounced`), a one-click unsubscribe on the API
 * (`unsubscribed`). Those processes only queue the events; a worker's dispatcher posts them, signed, to a
 * real HTTP receiver. Campaign messages carry a DKIM-signed Feedback-ID.
 */
describe('webhooks for feedback after sending: inbound reports and one-click unsubscribes', () => {
  let redis: RedisServer;
  let conn: Redis;
  let sink: Sink;
  let receiver: WebhookReceiver;
  let api: TestApi;
  let inbound: InboundService;
  let inboundLogs: string[];
  let worker: WorkerService;
  let producer: MailroomClient;
  let jobs: ReturnType<typeof jobReader>;
  const keys: DkimKeyConfig[] = [
    {
      domain: BRAND,
      selector: 'rsa1',
      privateKey: pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey),
    },
  ];
  const records: Record<string, string> = {};
  for (const key of loadDkimKeys(keys))
    records[`${key.selector}._domainkey.${key.domain}`] = dkimDnsRecord(key);

  before(async () => {
    redis = await startRedis();
    conn = redis.client();
    jobs = jobReader(conn);
    sink = await startSink({ keepRaw: true });
    receiver = await startWebhookReceiver();
    const webhooksFile = join(redis.dir, 'webhooks.json');
    writeFileSync(
      webhooksFile,
      JSON.stringify([
        { name: 'app', url: `${receiver.url}/hooks`, secret: TEST_SECRET },
        // Takes only the feedback events: the emitting processes queue for it, not for `app` alone.
        {
          name: 'crm',
          url: `${receiver.url}/crm`,
          secret: TEST_SECRET,
          events: ['bounced', 'complained', 'unsubscribed'],
        },
      ]),
    );
    const dkimFile = join(redis.dir, 'dkim.json');
    writeFileSync(dkimFile, JSON.stringify(keys));
    api = await startTestApi(
      redis,
      { MAILROOM_UNSUBSCRIBE_SECRETS: UNSUBSCRIBE_SECRET, MAILROOM_WEBHOOKS_FILE: webhooksFile },
      'warn',
    );
    inboundLogs = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        inboundLogs.push(chunk.toString('utf8'));
        callback();
      },
    });
    const inboundConfig = loadInboundConfig({
      MAILROOM_REDIS_URL: redis.url,
      MAILROOM_INBOUND_PORT: '0',
      MAILROOM_BOUNCE_DOMAIN: BOUNCE_DOMAIN,
      MAILROOM_VERP_SECRET: VERP_SECRET,
      MAILROOM_COMPLAINTS_ADDRESSES: COMPLAINTS_ADDRESS,
      MAILROOM_HTTP_PORT: '-1',
      MAILROOM_WEBHOOKS_FILE: webhooksFile,
    });
    inbound = await startInbound(inboundConfig, { logger: createInboundLogger('info', stream) });
    worker = await startTestWorker(
      workerEnv(redis, sink, {
        MAILROOM_BOUNCE_DOMAIN: BOUNCE_DOMAIN,
        MAILROOM_VERP_SECRET: VERP_SECRET,
        MAILROOM_UNSUBSCRIBE_URL: `${api.url}/u/`,
        MAILROOM_UNSUBSCRIBE_SECRETS: UNSUBSCRIBE_SECRET,
        MAILROOM_DKIM_CONFIG_FILE: dkimFile,
        MAILROOM_WEBHOOKS_FILE: webhooksFile,
      }),
    );
    producer = new MailroomClient({ redis: redis.url, messageIdDomain: ID_DOMAIN });
  });

  after(async () => {
    await producer.close();
    await worker.close();
    await inbound.close();
    await api.close();
    await jobs.queue.close();
    conn.disconnect();
    await receiver.close();
    await sink.close();
    await redis.stop();
  });

  /** Every event posted to `path` so far (answered 200), each request's signature checked. */
  function eventsAt(path: string): WebhookEvent[] {
    const out: WebhookEvent[] = [];
    for (const request of receiver.on(path).filter((r) => r.answer === 200)) {
      const verdict = verifyWebhookSignature(request.body, String(request.headers['mailroom-signature']), [
        TEST_SECRET,
      ]);
      assert.equal(verdict.ok, true, `a signed request to ${path}`);
      out.push(...(JSON.parse(request.body.toString('utf8')) as WebhookEvent[]));
    }
    return out;
  }

  async function eventOf(
    path: string,
    what: string,
    match: (e: WebhookEvent) => boolean,
  ): Promise<WebhookEvent> {
    let found: WebhookEvent | undefined;
    await waitFor(
      () => {
        found = eventsAt(path).find(match);
        return found !== undefined;
      },
      { timeoutMs: 20_000, what: `${what} at ${path}` },
    );
    return found!;
  }

  it('a complaint through the inbound SMTP receiver: a signed `complained` event with its message id', async () => {
    const complainer = 'reader.one@yahoo.example';
    const receipt = await producer.send(message(complainer));
    assert.equal((await jobs.finished(receipt.id)).state, 'delivered');
    // The payload is gone; what a late report needs stays on the record.
    const record = await conn.hmget(`{mailroom}:msg:${receipt.id}`, 'data', 'rcpt', 'from');
    assert.deepEqual(record, [null, complainer, 'sender@mailroom.example']);

    // Yahoo's ARF report, to the complaints address, tied to the message by its Message-ID.
    const report = rewriteSample(sample('yahoo-arf-abuse.eml'), receipt.id, VERP);
    const reply = await deliver(inbound.receiver.port, [COMPLAINTS_ADDRESS], report.raw);
    assert.match(reply.response ?? '', /^250 /, reply.errorResponse);

    for (const path of ['/hooks', '/crm']) {
      const event = await eventOf(path, 'the complained event', (e) => e.type === 'complained');
      assert.equal(event.messageId, receipt.id);
      assert.equal(event.messageIdHeader, receipt.messageId);
      assert.equal(event.recipient, complainer);
      assert.equal(event.reason, 'complaint');
    }
    assert.equal((await producer.suppressions.get('mailroom.example', complainer))?.reason, 'complaint');
    assert.equal(
      eventsAt('/crm').filter((e) => e.type === 'delivered').length,
      0,
      'an endpoint gets only the types it takes',
    );
  });

  it('a bounce after delivery: suppressed in the sender scope kept on the record, and one `bounced` event', async () => {
    const gone = 'absent.person@example.net';
    const receipt = await producer.send(message(gone));
    assert.equal((await jobs.finished(receipt.id)).state, 'delivered');
    assert.equal(receipt.messageId, `<${receipt.id}@${ID_DOMAIN}>`);
    const sent = sink.messages.find((m) => m.messageId === receipt.messageId)!;
    assert.equal(decodeVerp(sent.mailFrom, VERP), receipt.id);

    const bounce = rewriteSample(sample('gmail-5.1.1.eml'), receipt.id, VERP);
    const reply = await deliver(inbound.receiver.port, [sent.mailFrom], bounce.raw);
    assert.match(reply.response ?? '', /^250 /, reply.errorResponse);

    assert.equal((await producer.suppressions.get('mailroom.example', gone))?.reason, 'hard_bounce');
    assert.equal(await producer.suppressions.get(ID_DOMAIN, gone), undefined, 'not the Message-ID domain');
    const event = await eventOf(
      '/crm',
      'the bounced event',
      (e) => e.type === 'bounced' && e.messageId === receipt.id,
    );
    assert.equal(event.recipient, gone);
    assert.equal(event.reason, 'hard_bounce');
    assert.equal(event.smtp?.code, 550);
    assert.equal(event.smtp?.enhanced, '5.1.1');
    assert.equal(event.messageIdHeader, receipt.messageId);

    // Gmail sends the same DSN again: recorded once, no second event.
    const emitted = inbound.webhooks!.emitter.stats().emitted;
    const again = await deliver(inbound.receiver.port, [sent.mailFrom], bounce.raw);
    assert.match(again.response ?? '', /^250 /, again.errorResponse);
    assert.equal(inbound.webhooks!.emitter.stats().emitted, emitted, 'a duplicate report emits nothing');
    const status = await jobs.status(receipt.id);
    assert.equal(status.state, 'delivered');
    assert.deepEqual(
      status.history.map((h) => h.outcome),
      ['delivered', 'feedback_hard_bounce'],
    );
  });

  it('a campaign: Feedback-ID signed by DKIM, a late bounce of a member, unsubscribes on the API', async () => {
    const gone = 'gone.reader@yahoo.example';
    const leaving = 'ok-leaving@example.test';
    const viaForm = 'ok-form@example.test';
    const campaign = await producer.createCampaign({
      template: {
        from: { name: 'Brand News', address: `news@${BRAND}` },
        subject: 'Spring news',
        text: 'Hello.\n',
      },
      recipients: [{ to: gone }, { to: leaving }, { to: viaForm }],
      tags: ['spring', 'news:2026'],
    });
    assert.equal(campaign.accepted, 3);
    await waitFor(
      () => [gone, leaving, viaForm].every((to) => sink.messages.some((m) => m.rcptTo.includes(to))),
      { timeoutMs: 20_000, what: 'the campaign messages at the relay' },
    );
    const received = [gone, leaving, viaForm].map((to) => sink.messages.find((m) => m.rcptTo.includes(to))!);

    // Gmail's feedback loop: one Feedback-ID, the same for every member, covered by the DKIM signature.
    for (const m of received) {
      assert.deepEqual(header(m, 'feedback-id'), [`${campaign.id}:spring:${BRAND}:mailroom`]);
      const [dkim] = header(m, 'dkim-signature');
      assert.match(dkim!.replace(/\s+/g, ''), /h=[^;]*feedback-id:feedback-id/i, 'signed and oversigned');
    }
    const verdicts = await verifyWithDkimpy(
      received.map((m) => m.raw!),
      records,
    );
    for (const [i, verdict] of verdicts.entries()) {
      assert.ok(verdict.verify && verdict.signatures.every((s) => s.ok), `${i}: ${JSON.stringify(verdict)}`);
    }

    // A member bounces after delivery: the template's From gives the scope, the event names the campaign.
    const sent = received[0]!;
    const id = decodeVerp(sent.mailFrom, VERP);
    assert.ok(id !== undefined);
    assert.equal((await jobs.finished(id)).state, 'delivered');
    assert.equal(await conn.hget(`{mailroom}:msg:${id}`, 'rcpt'), gone, 'the member keeps its recipient');
    const bounce = rewriteSample(sample('yahoo-554.eml'), id, VERP);
    assert.match((await deliver(inbound.receiver.port, [sent.mailFrom], bounce.raw)).response ?? '', /^250 /);
    assert.equal((await producer.suppressions.get(BRAND, gone))?.reason, 'hard_bounce');
    const bounced = await eventOf(
      '/hooks',
      'the member bounced',
      (e) => e.type === 'bounced' && e.messageId === id,
    );
    assert.equal(bounced.campaign, campaign.id);
    assert.equal(bounced.recipient, gone);

    // One-click (RFC 8058), as a mailbox provider POSTs it.
    const linkOf = (m: ReceivedMessage) =>
      /<(http:\/\/127\.0\.0\.1:\d+\/u\/[^>]+)>/.exec(header(m, 'list-unsubscribe')[0] ?? '')?.[1];
    const oneClick = (link: string) =>
      fetch(link, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      });
    const leavingLink = linkOf(received[1]!);
    assert.ok(leavingLink);
    assert.equal((await oneClick(leavingLink)).status, 200);
    const left = await eventOf(
      '/crm',
      'the unsubscribed event',
      (e) => e.type === 'unsubscribed' && e.recipient === leaving,
    );
    assert.equal(left.list, BRAND, "the list: the template's, else the sender's domain");
    assert.equal(left.reason, 'one_click');
    assert.equal((await producer.suppressions.get(BRAND, leaving))?.reason, 'unsubscribe');

    // The page a person reaches with GET, and the form it shows, POSTed as a browser does.
    const formLink = linkOf(received[2]!);
    assert.ok(formLink);
    const page = await fetch(formLink);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<form method="post"[^>]*>.*name="List-Unsubscribe" value="One-Click"/);
    const form = new FormData();
    form.set('List-Unsubscribe', 'One-Click');
    assert.equal((await fetch(formLink, { method: 'POST', body: form })).status, 200);
    await eventOf(
      '/hooks',
      'the form unsubscribe',
      (e) => e.type === 'unsubscribed' && e.recipient === viaForm,
    );

    // A second click unsubscribes nobody new and emits nothing.
    const emitted = api.server.webhooks!.emitter.stats().emitted;
    assert.equal((await oneClick(leavingLink)).status, 200);
    assert.equal(api.server.webhooks!.emitter.stats().emitted, emitted);

    const logs = inboundLogs.join('');
    assert.match(logs, /"msg":"feedback received"/);
    for (const address of [gone, 'absent.person@example.net', 'reader.one@yahoo.example']) {
      assert.ok(!logs.includes(address), 'no recipient address in the inbound info logs');
    }
  });

  it('inbound and the API refuse a bad webhooks file at start, naming the entry', () => {
    const bad = join(redis.dir, 'bad-webhooks.json');
    writeFileSync(
      bad,
      JSON.stringify([{ name: 'x', url: 'http://hooks.example.com/', secret: TEST_SECRET }]),
    );
    const fieldsOf = (load: () => unknown) => {
      try {
        load();
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.issues.map((i) => i.field);
      }
      return [];
    };
    assert.deepEqual(
      fieldsOf(() =>
        loadInboundConfig({
          MAILROOM_BOUNCE_DOMAIN: BOUNCE_DOMAIN,
          MAILROOM_VERP_SECRET: VERP_SECRET,
          MAILROOM_WEBHOOKS_FILE: bad,
        }),
      ),
      ['MAILROOM_WEBHOOKS_FILE [0].url'],
    );
    assert.deepEqual(
      fieldsOf(() =>
        loadApiConfig({
          MAILROOM_API_KEY_PEPPER: 'test-pepper-0123456789abcdef0123456789abcdef',
          MAILROOM_WEBHOOKS_FILE: bad,
        }),
      ),
      ['MAILROOM_WEBHOOKS_FILE [0].url'],
    );
  });
});
