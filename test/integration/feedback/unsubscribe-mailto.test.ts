import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { createInboundLogger, loadInboundConfig, startInbound, type InboundService } from '@mailroom/cli';
import { MailroomClient } from '@mailroom/client';
import { ConfigError, createUnsubscribeToken } from '@mailroom/core';
import { startSink, type ReceivedMessage, type Sink } from '@mailroom/sink';
import type { WorkerService } from '@mailroom/worker';
import { verifyWebhookSignature, type WebhookEvent } from '@mailroom/webhooks';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { startTestWorker, workerEnv } from '../fixtures.js';
import { TEST_SECRET } from '../webhooks/webhook-kit.js';
import { startWebhookReceiver, type WebhookReceiver } from '../webhooks/webhook-receiver.js';
import { COMPLAINTS_ADDRESS } from './feedback-corpus.js';

const BOUNCE_DOMAIN = 'bounce.mailroom.example';
const VERP_SECRET = 'unsubscribe-mailto-verp-secret-0123';
const UNSUBSCRIBE_SECRET = 'unsubscribe-mailto-test-secret-0123456789abcdef';
/** The List-Unsubscribe mailbox: a domain of its own, whose MX would be `mailroom inbound`. */
const MAILTO = 'unsubscribe@lists.brand.example';
/** The campaigns' sender, and so the scope (and list) of their tokens. */
const BRAND = 'brand.example';

interface Reply {
  readonly code?: number;
  readonly response: string;
}

/** Mails `to` over SMTP as a mail client or a mailbox provider would: envelope and message from `from`. */
async function mail(
  port: number,
  to: string,
  content: { from: string; subject?: string; text: string },
): Promise<Reply> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    name: 'mx.reader.example',
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 20_000,
  });
  try {
    const info = (await transport.sendMail({
      from: content.from,
      to,
      ...(content.subject === undefined ? {} : { subject: content.subject }),
      text: content.text,
    })) as { response: string };
    return { response: info.response };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; message: string };
    return {
      ...(e.responseCode === undefined ? {} : { code: e.responseCode }),
      response: e.response ?? e.message,
    };
  } finally {
    transport.close();
  }
}

function header(m: ReceivedMessage, name: string): string[] {
  return m.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

/** The `mailto:` of a delivered message's List-Unsubscribe, as a mail client reads it (RFC 6068). */
function mailtoOf(m: ReceivedMessage): { address: string; subject: string } {
  const [value] = header(m, 'list-unsubscribe');
  assert.ok(value, 'the message has List-Unsubscribe');
  const uri = /<(mailto:[^>]+)>/.exec(value)?.[1];
  assert.ok(uri, `a mailto: in ${value}`);
  const url = new URL(uri);
  const subject = url.searchParams.get('subject');
  assert.ok(subject !== null, 'the mailto: has a subject');
  return { address: decodeURIComponent(url.pathname), subject };
}

/** The token of a `subject=unsubscribe-TOKEN`. */
function tokenOf(subject: string): string {
  const token = /^unsubscribe-([A-Za-z0-9_-]+)$/.exec(subject)?.[1];
  assert.ok(token, `an unsubscribe subject: ${subject}`);
  return token;
}

/** `token` with one character in its middle changed: another payload or MAC, same length and alphabet. */
function altered(token: string): string {
  const i = Math.floor(token.length / 2);
  const swapped = token[i] === 'A' ? 'B' : 'A';
  return `${token.slice(0, i)}${swapped}${token.slice(i + 1)}`;
}

/**
 * RFC 2369 unsubscribe by mail: the `mailto:` of a campaign message's List-Unsubscribe, mailed back to the
 * real `mailroom inbound` SMTP receiver by a real SMTP client, suppresses the recipient in the campaign's
 * scope and gives one `unsubscribed` webhook (posted by a worker's dispatcher to a real HTTP receiver);
 * forged tokens and strangers' mail change nothing.
 */
describe('mailroom inbound: unsubscribe requests to the List-Unsubscribe mailto address', () => {
  let redis: RedisServer;
  let sink: Sink;
  let receiver: WebhookReceiver;
  let inbound: InboundService;
  let inboundLogs: string[];
  let worker: WorkerService;
  let producer: MailroomClient;
  /** Members of the first campaign, and the message each got. */
  const members = {
    gmail: 'leaving.reader@gmail.example',
    replying: 'replying.reader@example.org',
    bodyOnly: 'body.only@example.net',
    staying: 'staying.reader@example.com',
  };
  const delivered = new Map<string, ReceivedMessage>();

  before(async () => {
    redis = await startRedis();
    sink = await startSink({ keepRaw: true });
    receiver = await startWebhookReceiver();
    const webhooksFile = join(redis.dir, 'webhooks.json');
    writeFileSync(
      webhooksFile,
      JSON.stringify([
        {
          name: 'crm',
          url: `${receiver.url}/crm`,
          secret: TEST_SECRET,
          events: ['unsubscribed', 'suppressed'],
        },
      ]),
    );
    inboundLogs = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        inboundLogs.push(chunk.toString('utf8'));
        callback();
      },
    });
    inbound = await startInbound(
      loadInboundConfig({
        MAILROOM_REDIS_URL: redis.url,
        MAILROOM_INBOUND_PORT: '0',
        MAILROOM_BOUNCE_DOMAIN: BOUNCE_DOMAIN,
        MAILROOM_VERP_SECRET: VERP_SECRET,
        MAILROOM_COMPLAINTS_ADDRESSES: COMPLAINTS_ADDRESS,
        MAILROOM_UNSUBSCRIBE_MAILTO: MAILTO,
        // A rotated list: the old secret still verifies, the current one signs.
        MAILROOM_UNSUBSCRIBE_SECRETS: `${UNSUBSCRIBE_SECRET}, old-unsubscribe-secret-0123456789abcdef`,
        MAILROOM_HTTP_PORT: '0',
        MAILROOM_WEBHOOKS_FILE: webhooksFile,
      }),
      { logger: createInboundLogger('info', stream) },
    );
    worker = await startTestWorker(
      workerEnv(redis, sink, {
        MAILROOM_BOUNCE_DOMAIN: BOUNCE_DOMAIN,
        MAILROOM_VERP_SECRET: VERP_SECRET,
        // Nothing serves it here: the mailto is what this test follows.
        MAILROOM_UNSUBSCRIBE_URL: 'http://127.0.0.1:9/u/',
        MAILROOM_UNSUBSCRIBE_SECRETS: UNSUBSCRIBE_SECRET,
        MAILROOM_UNSUBSCRIBE_MAILTO: MAILTO,
        MAILROOM_WEBHOOKS_FILE: webhooksFile,
      }),
    );
    producer = new MailroomClient({ redis: redis.url });

    const campaign = await producer.createCampaign({
      template: {
        from: { name: 'Brand News', address: `news@${BRAND}` },
        subject: 'Spring news',
        text: 'Hello.\n',
      },
      recipients: Object.values(members).map((to) => ({ to })),
      tags: ['spring'],
    });
    assert.equal(campaign.accepted, 4);
    await waitFor(
      () => Object.values(members).every((to) => sink.messages.some((m) => m.rcptTo.includes(to))),
      { timeoutMs: 20_000, what: 'the campaign at the relay' },
    );
    for (const to of Object.values(members)) {
      delivered.set(
        to,
        sink.messages.find((m) => m.rcptTo.includes(to))!,
      );
    }
  });

  after(async () => {
    await producer.close();
    await worker.close();
    await inbound.close();
    await receiver.close();
    await sink.close();
    await redis.stop();
  });

  /** Every event posted to /crm so far, each request's signature checked. */
  function events(): WebhookEvent[] {
    const out: WebhookEvent[] = [];
    for (const request of receiver.on('/crm').filter((r) => r.answer === 200)) {
      const verdict = verifyWebhookSignature(request.body, String(request.headers['mailroom-signature']), [
        TEST_SECRET,
      ]);
      assert.equal(verdict.ok, true, 'a signed request');
      out.push(...(JSON.parse(request.body.toString('utf8')) as WebhookEvent[]));
    }
    return out;
  }

  const unsubscribedOf = (to: string) =>
    events().filter((e) => e.type === 'unsubscribed' && e.recipient === to);

  async function metrics(): Promise<string> {
    return (await fetch(`${inbound.httpUrl}/metrics`)).text();
  }

  it("a campaign message's own List-Unsubscribe mailto, mailed back: suppressed in its scope, one event, later mail suppressed", async () => {
    const to = members.gmail;
    const link = mailtoOf(delivered.get(to)!);
    assert.equal(link.address, MAILTO);
    // What Gmail sends for a mailto unsubscribe: the link's subject, an automatic line of text.
    const request = {
      from: to,
      subject: link.subject,
      text: 'This message was automatically generated by Gmail.\n',
    };
    const reply = await mail(inbound.receiver.port, link.address, request);
    assert.match(reply.response, /^250 2\.0\.0 Unsubscribe request received/, reply.response);

    const entry = await producer.suppressions.get(BRAND, to);
    assert.equal(entry?.reason, 'unsubscribe');
    assert.equal(entry?.source, `list:${BRAND}`);
    assert.equal(await producer.suppressions.get('*', to), undefined, 'not in the global scope');
    assert.equal(await producer.suppressions.get('mailroom.example', to), undefined, 'not in another scope');

    await waitFor(() => unsubscribedOf(to).length === 1, {
      timeoutMs: 20_000,
      what: 'the unsubscribed event',
    });
    const [event] = unsubscribedOf(to);
    assert.equal(event!.list, BRAND);
    assert.equal(event!.reason, 'mailto');
    assert.equal(event!.messageId, undefined, 'the token names no message');

    // The same mail again (a client retrying, a person clicking twice): nothing new, no second event.
    const emitted = inbound.webhooks!.emitter.stats().emitted;
    const again = await mail(inbound.receiver.port, link.address, request);
    assert.match(again.response, /^250 /, again.response);
    assert.equal(inbound.webhooks!.emitter.stats().emitted, emitted, 'a second mail emits nothing');
    assert.equal((await producer.suppressions.get(BRAND, to))?.at, entry?.at, 'the entry is unchanged');
    assert.equal(inbound.receiver.stats.unsubscribes.unsubscribed, 1);
    assert.equal(inbound.receiver.stats.unsubscribes.already_suppressed, 1);

    // The next campaign from the same sender: that member ends `suppressed` and never reaches the relay.
    const other = 'new.reader@example.com';
    const sentBefore = sink.messages.filter((m) => m.rcptTo.includes(to)).length;
    const next = await producer.createCampaign({
      template: {
        from: { name: 'Brand News', address: `news@${BRAND}` },
        subject: 'Summer news',
        text: 'Hi.\n',
      },
      recipients: [{ to }, { to: other }],
    });
    await waitFor(async () => (await producer.campaignStatus(next.id)).counts.pending === 0, {
      timeoutMs: 20_000,
      what: 'the second campaign to finish',
    });
    const counts = (await producer.campaignStatus(next.id)).counts;
    assert.equal(counts.terminal.suppressed, 1);
    assert.equal(counts.terminal.delivered, 1);
    assert.ok(sink.messages.some((m) => m.rcptTo.includes(other)));
    assert.equal(
      sink.messages.filter((m) => m.rcptTo.includes(to)).length,
      sentBefore,
      'nothing more reached the relay',
    );
    // The worker's `suppressed` event comes after both unsubscribe mails were answered: still one `unsubscribed`.
    await waitFor(() => events().some((e) => e.type === 'suppressed' && e.recipient === to), {
      timeoutMs: 20_000,
      what: 'the suppressed event of the later message',
    });
    assert.equal(unsubscribedOf(to).length, 1, 'exactly one unsubscribed event');
    assert.match(await metrics(), /^mailroom_unsubscribe_mails_total\{outcome="unsubscribed"\} 1$/m);
    assert.match(await metrics(), /^mailroom_unsubscribe_mails_total\{outcome="already_suppressed"\} 1$/m);
  });

  it('a reply with `Re:` and spaces around the token, and a mail whose token is only in the first line of its text', async () => {
    const replying = mailtoOf(delivered.get(members.replying)!);
    const reply = await mail(inbound.receiver.port, replying.address.toUpperCase(), {
      from: members.replying,
      subject: `Re:   ${replying.subject}  `,
      text: 'Please take me off this list.\n',
    });
    assert.match(reply.response, /^250 /, reply.response);

    const bodyOnly = mailtoOf(delivered.get(members.bodyOnly)!);
    const noSubject = await mail(inbound.receiver.port, bodyOnly.address, {
      from: members.bodyOnly,
      text: `\n  ${bodyOnly.subject}\n\nSent from my phone\n`,
    });
    assert.match(noSubject.response, /^250 /, noSubject.response);

    for (const to of [members.replying, members.bodyOnly]) {
      assert.equal((await producer.suppressions.get(BRAND, to))?.reason, 'unsubscribe', to);
      await waitFor(() => unsubscribedOf(to).length === 1, { timeoutMs: 20_000, what: `the event of ${to}` });
    }
  });

  it('forged, altered and missing tokens: answered 250, nobody suppressed, no event, counted', async () => {
    const to = members.staying;
    const token = tokenOf(mailtoOf(delivered.get(to)!).subject);
    const emitted = inbound.webhooks!.emitter.stats().emitted;
    const before = await metrics();
    const countOf = (text: string, outcome: string) =>
      Number(
        new RegExp(`^mailroom_unsubscribe_mails_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(
          text,
        )?.[1],
      );

    const forged = createUnsubscribeToken({
      secret: 'a-secret-mailroom-never-had-0123456789abcdef',
      address: to,
      list: BRAND,
      scope: BRAND,
    });
    const everywhere = createUnsubscribeToken({
      secret: 'a-secret-mailroom-never-had-0123456789abcdef',
      address: to,
      list: 'all',
      scope: '*',
    });
    for (const subject of [
      `unsubscribe-${altered(token)}`,
      `unsubscribe-${forged}`,
      `Re: unsubscribe-${everywhere}`,
    ]) {
      const reply = await mail(inbound.receiver.port, MAILTO, { from: to, subject, text: 'unsubscribe\n' });
      assert.match(reply.response, /^250 /, reply.response);
    }
    const noToken = await mail(inbound.receiver.port, MAILTO, {
      from: to,
      subject: 'Please remove me',
      text: 'I never signed up for this.\n',
    });
    assert.match(noToken.response, /^250 /, noToken.response);

    for (const scope of [BRAND, '*', 'mailroom.example']) {
      assert.equal(await producer.suppressions.get(scope, to), undefined, `not suppressed in ${scope}`);
    }
    assert.equal(inbound.webhooks!.emitter.stats().emitted, emitted, 'no event');
    const after = await metrics();
    assert.equal(countOf(after, 'invalid_token') - countOf(before, 'invalid_token'), 3);
    assert.equal(countOf(after, 'no_token') - countOf(before, 'no_token'), 1);
    assert.equal(countOf(after, 'unsubscribed'), countOf(before, 'unsubscribed'));
    assert.match(inboundLogs.join(''), /"outcome":"invalid_token","problem":"bad_signature"/);

    // The real token still works afterwards: the failures changed nothing.
    const real = await mail(inbound.receiver.port, MAILTO, {
      from: to,
      subject: `unsubscribe-${token}`,
      text: '\n',
    });
    assert.match(real.response, /^250 /);
    assert.equal((await producer.suppressions.get(BRAND, to))?.reason, 'unsubscribe');
  });

  it('mail to any other address at the mailto domain is still refused at RCPT', async () => {
    const refusedBefore = inbound.receiver.stats.refusedRecipients;
    for (const stranger of [
      'someone@lists.brand.example',
      'unsubscribe+x@lists.brand.example',
      'unsubscribe@brand.example',
    ]) {
      const reply = await mail(inbound.receiver.port, stranger, {
        from: 'x@example.org',
        subject: 'hi',
        text: 'hi\n',
      });
      assert.equal(reply.code, 550, `${stranger}: ${reply.response}`);
      assert.match(reply.response, /5\.7\.1 Relaying denied/);
    }
    assert.equal(inbound.receiver.stats.refusedRecipients - refusedBefore, 3);
  });

  it('logs no recipient address nor secret at info', () => {
    const logs = inboundLogs.join('');
    assert.match(logs, /"msg":"unsubscribe mail received"/);
    assert.match(logs, /"unsubscribeMailto":true/);
    for (const address of Object.values(members)) assert.ok(!logs.includes(address), `${address} not logged`);
    assert.ok(!logs.includes(UNSUBSCRIBE_SECRET), 'the secret is never logged');
  });

  it('refuses an incomplete or clashing unsubscribe configuration, naming the variable', () => {
    const fieldsOf = (env: Record<string, string>) => {
      try {
        loadInboundConfig({
          MAILROOM_BOUNCE_DOMAIN: BOUNCE_DOMAIN,
          MAILROOM_VERP_SECRET: VERP_SECRET,
          ...env,
        });
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.issues.map((i) => `${i.field}: ${i.message}`);
      }
      return [];
    };
    assert.deepEqual(fieldsOf({ MAILROOM_UNSUBSCRIBE_MAILTO: MAILTO }), [
      'MAILROOM_UNSUBSCRIBE_SECRETS: MAILROOM_UNSUBSCRIBE_MAILTO and MAILROOM_UNSUBSCRIBE_SECRETS are set together',
    ]);
    const short = fieldsOf({
      MAILROOM_UNSUBSCRIBE_MAILTO: MAILTO,
      MAILROOM_UNSUBSCRIBE_SECRETS: 'too-short-secret',
    });
    assert.equal(short.length, 1);
    assert.match(short[0]!, /^MAILROOM_UNSUBSCRIBE_SECRETS: /);
    assert.ok(!short[0]!.includes('too-short-secret'), 'a secret is never echoed');
    assert.deepEqual(
      fieldsOf({
        MAILROOM_COMPLAINTS_ADDRESSES: 'FBL@example.com',
        MAILROOM_UNSUBSCRIBE_MAILTO: 'fbl@example.com',
        MAILROOM_UNSUBSCRIBE_SECRETS: UNSUBSCRIBE_SECRET,
      }),
      ['MAILROOM_UNSUBSCRIBE_MAILTO: must not be a complaints address too'],
    );
  });
});
