import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser, type AddressObject } from 'mailparser';
import { startSink, type ReceivedMessage, type Sink } from '@mailroom/sink';
import type { WorkerService } from '@mailroom/worker';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { jobReader, message, startTestWorker, workerEnv } from '../fixtures.js';
import { auth, post, startTestApi, type ErrorBody, type TestApi } from './api-fixtures.js';

const SENDER = 'sender@mailroom.example';

interface Receipt {
  id: string;
  messageId: string;
  duplicate: boolean;
  state: string;
}

/** Bad input that must be refused with 422 naming `field` (a prefix of the field named). */
const REFUSED: { name: string; extra: Record<string, unknown>; to?: string; field: string }[] = [
  { name: 'CR in the subject', extra: { subject: 'Hi\rBcc: victim@example.test' }, field: 'subject' },
  { name: 'LF in the subject', extra: { subject: 'Hi\nBcc: victim@example.test' }, field: 'subject' },
  { name: 'CRLF in the subject', extra: { subject: 'Hi\r\nBcc: victim@example.test' }, field: 'subject' },
  { name: 'NUL in the subject', extra: { subject: 'Hi\u0000there' }, field: 'subject' },
  { name: 'U+2028 in the subject', extra: { subject: 'Hi\u2028Bcc: victim@example.test' }, field: 'subject' },
  { name: 'U+2029 in the subject', extra: { subject: 'Hi\u2029there' }, field: 'subject' },
  {
    name: 'CRLF in the From display name',
    extra: { from: { name: 'Eve\r\nBcc: victim@example.test', address: SENDER } },
    field: 'from',
  },
  {
    name: 'LF in the To display name',
    extra: {},
    to: 'unused',
    field: 'to',
  },
  {
    name: 'CRLF in a display name written inline',
    extra: {},
    to: 'Bob\r\nBcc: victim@example.test <ok-inline@example.test>',
    field: 'to',
  },
  {
    name: 'CRLF in Reply-To',
    extra: { replyTo: 'r@example.test\r\nBcc: victim@example.test' },
    field: 'replyTo',
  },
  {
    name: 'U+2028 in the Reply-To display name',
    extra: { replyTo: { name: 'R\u2028Bcc: victim@example.test', address: 'r@example.test' } },
    field: 'replyTo',
  },
  {
    name: 'CRLF in a custom header value',
    extra: { headers: { 'X-Note': 'a\r\nBcc: victim@example.test' } },
    field: 'headers.X-Note',
  },
  {
    name: 'bare LF in a custom header value',
    extra: { headers: { 'X-Note': 'a\nBcc: v@example.test' } },
    field: 'headers.X-Note',
  },
  {
    name: 'NUL in a custom header value',
    extra: { headers: { 'X-Note': 'a\u0000b' } },
    field: 'headers.X-Note',
  },
  {
    name: 'U+2028 in a custom header value',
    extra: { headers: { 'X-Note': 'a\u2028b' } },
    field: 'headers.X-Note',
  },
  {
    name: 'CRLF in a custom header name',
    extra: { headers: { 'X-A\r\nBcc': 'v@example.test' } },
    field: 'headers.X-A',
  },
  { name: 'a structural header', extra: { headers: { Bcc: 'victim@example.test' } }, field: 'headers.Bcc' },
  { name: 'two addresses in To', extra: {}, to: 'a@example.test, victim@example.test', field: 'to' },
  {
    name: 'two addresses with a semicolon',
    extra: {},
    to: 'a@example.test; victim@example.test',
    field: 'to',
  },
  { name: 'a group in To', extra: {}, to: 'friends: a@example.test, victim@example.test;', field: 'to' },
  {
    name: 'two addresses in Reply-To',
    extra: { replyTo: 'r@example.test, victim@example.test' },
    field: 'replyTo',
  },
  { name: 'a quoted local part holding @', extra: {}, to: '"victim@evil.test"@example.test', field: 'to' },
  { name: 'a local part over 64 octets', extra: {}, to: `${'a'.repeat(65)}@example.test`, field: 'to' },
  {
    name: 'an address over 254 octets',
    extra: {},
    to: `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.test`,
    field: 'to',
  },
  { name: 'a Cc field', extra: { cc: 'victim@example.test' }, field: 'cc' },
  { name: 'an envelope field', extra: { envelope: { to: ['victim@example.test'] } }, field: 'envelope' },
];

describe('HTTP API with a worker and a sink: injection, idempotency, campaigns', () => {
  let redis: RedisServer;
  let sink: Sink;
  let worker: WorkerService;
  let api: TestApi;
  let key: string;
  let conn: ReturnType<RedisServer['client']>;
  let jobs: ReturnType<typeof jobReader>;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    sink = await startSink({ keepRaw: true });
    worker = await startTestWorker(workerEnv(redis, sink));
    // A generous Redis timeout: on a busy machine the default 750 ms turns slow answers into 503s.
    api = await startTestApi(redis, {
      MAILROOM_API_UPLOAD_LIMIT_BYTES: String(256 * 1024),
      MAILROOM_API_REDIS_TIMEOUT_MS: '5000',
    });
    key = await api.key(['send', 'read']);
    conn = redis.client();
    jobs = jobReader(conn);
  });

  after(async () => {
    await api.close();
    await worker.close();
    await jobs.queue.close();
    conn.disconnect();
    await sink.close();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  async function send(body: unknown, headers: Record<string, string> = {}) {
    return post(`${api.url}/v1/messages`, body, auth(key, headers));
  }

  /** Waits for the message to be delivered and returns what the sink received for it. */
  async function delivered(receipt: Receipt): Promise<ReceivedMessage> {
    const status = await jobs.finished(receipt.id);
    assert.equal(status.state, 'delivered', `message ${receipt.id} delivered`);
    const copies = sink.messages.filter((m) => m.messageId === receipt.messageId);
    assert.equal(copies.length, 1, 'exactly one copy reached the sink');
    return copies[0]!;
  }

  /** The sink's view holds one recipient, one To, no Bcc or Cc, and nothing addressed to the victim. */
  async function assertNoInjection(received: ReceivedMessage, to: string): Promise<void> {
    assert.deepEqual(received.rcptTo, [to], 'one envelope recipient');
    const names = received.headers.map(([name]) => name.toLowerCase());
    assert.equal(names.filter((n) => n === 'to').length, 1, 'one To header');
    for (const forbidden of ['bcc', 'cc', 'x-injected'])
      assert.ok(!names.includes(forbidden), `no ${forbidden} header`);
    const parsed = await simpleParser(received.raw!);
    const toField = parsed.to as AddressObject;
    assert.deepEqual(
      toField.value.map((a) => a.address),
      [to],
      'the To header parses to the one recipient',
    );
    assert.equal(sink.attempts('victim@example.test'), 0, 'nothing was addressed to the victim');
  }

  for (const c of REFUSED) {
    it(`refuses ${c.name} with 422 naming ${c.field}`, async () => {
      const to =
        c.name === 'LF in the To display name'
          ? { name: 'Bob\nBcc: victim@example.test', address: 'ok@example.test' }
          : (c.to ?? 'ok-refused@example.test');
      const r = await send({ ...message('placeholder@example.test', c.extra), to });
      assert.equal(r.status, 422, JSON.stringify(r.body));
      const body = r.body as ErrorBody;
      assert.equal(body.error.code, 'ERR_VALIDATION');
      assert.ok(
        body.error.fields?.some((f) => f.field.startsWith(c.field)),
        `a field named ${c.field}: ${JSON.stringify(body.error.fields)}`,
      );
    });
  }

  it('sends bare LF lines and a fake header block in the body as body, encoded', async () => {
    const to = 'ok-bodylf@example.test';
    const text = 'Hello\nBcc: victim@example.test\nX-Injected: yes\n\nstill the body\n';
    const r = await send(message(to, { text, html: undefined }));
    assert.equal(r.status, 202);
    const received = await delivered(r.body as Receipt);
    await assertNoInjection(received, to);
    const parsed = await simpleParser(received.raw!);
    assert.equal(parsed.text?.replace(/\r\n/g, '\n'), text, 'the body arrives as written');
  });

  it('sends lone-dot lines and SMTP commands in bodies without ending the message early', async () => {
    const to = 'ok-dots@example.test';
    const text =
      'one\r\n.\r\nMAIL FROM:<x@evil.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n.\nlast line\n';
    const html = '<p>a</p>\r\n.\r\n<p>b</p>\n.\n';
    const r = await send(message(to, { text, html }));
    assert.equal(r.status, 202);
    const received = await delivered(r.body as Receipt);
    await assertNoInjection(received, to);
    const parsed = await simpleParser(received.raw!);
    assert.equal(parsed.text?.replace(/\r\n/g, '\n'), text.replace(/\r\n/g, '\n'), 'the whole text arrived');
    assert.match(String(parsed.html), /<p>b<\/p>/, 'the whole html arrived');
  });

  it('encodes display names full of address syntax as names, not addresses', async () => {
    const to = 'ok-name@example.test';
    const r = await send(
      message(to, {
        to: { name: 'Victim, <victim@example.test>; "x" (y)', address: to },
        from: { name: 'News "Weekly", <victim@example.test>', address: SENDER },
        subject: '=?UTF-8?Q?Bcc=3A_victim@example.test?= Grüße',
      }),
    );
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const received = await delivered(r.body as Receipt);
    await assertNoInjection(received, to);
    const parsed = await simpleParser(received.raw!);
    assert.equal((parsed.from as AddressObject).value.length, 1, 'one From mailbox');
    assert.equal((parsed.from as AddressObject).value[0]?.address, SENDER);
  });

  it('turns 100 concurrent identical POSTs with one Idempotency-Key into one message', async (t) => {
    const to = 'ok-idempotent@example.test';
    const body = message(to, { subject: 'Exactly once' });
    const acceptedBefore = (await jobs.ledger.stats()).accepted ?? 0;
    const responses = await Promise.all(
      Array.from({ length: 100 }, () => send(body, { 'idempotency-key': 'order-4711' })),
    );
    const statuses = responses.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 202).length, 1, `one 202: ${statuses.join(',')}`);
    assert.equal(statuses.filter((s) => s === 200).length, 99, 'the rest answer 200 (duplicate)');
    const ids = new Set(responses.map((r) => (r.body as Receipt).id));
    assert.equal(ids.size, 1, 'every answer names the same message');
    assert.ok(responses.every((r) => r.status === 202 || (r.body as Receipt).duplicate));
    assert.equal((await jobs.ledger.stats()).accepted ?? 0, acceptedBefore + 1, 'one message in the ledger');
    const receipt = responses.find((r) => r.status === 202)!.body as Receipt;
    await delivered(receipt);
    assert.equal(sink.messages.filter((m) => m.rcptTo.includes(to)).length, 1, 'one message at the sink');
    t.diagnostic(
      `100 concurrent POSTs: ${statuses.filter((s) => s === 202).length} x 202, ${statuses.filter((s) => s === 200).length} x 200`,
    );

    const conflict = await send({ ...body, subject: 'Something else' }, { 'idempotency-key': 'order-4711' });
    assert.equal(conflict.status, 409);
    assert.equal((conflict.body as ErrorBody).error.code, 'ERR_IDEMPOTENCY_CONFLICT');
    assert.equal((conflict.body as ErrorBody).error.fields?.[0]?.field, 'Idempotency-Key');

    const otherKey = await api.key(['send']);
    const other = await post(
      `${api.url}/v1/messages`,
      body,
      auth(otherKey, { 'idempotency-key': 'order-4711' }),
    );
    assert.equal(other.status, 202, 'idempotency keys are per API key');
    assert.notEqual((other.body as Receipt).id, receipt.id);
    await delivered(other.body as Receipt);
  });

  it('makes a batch idempotent as a whole', async () => {
    const batch = { messages: [message('ok-batch1@example.test'), message('ok-batch2@example.test')] };
    const first = await post(
      `${api.url}/v1/messages/batch`,
      batch,
      auth(key, { 'idempotency-key': 'batch-1' }),
    );
    assert.equal(first.status, 202);
    const again = await post(
      `${api.url}/v1/messages/batch`,
      batch,
      auth(key, { 'idempotency-key': 'batch-1' }),
    );
    assert.equal(again.status, 200);
    const ids = (b: unknown) => (b as { messages: Receipt[] }).messages.map((m) => m.id);
    assert.deepEqual(ids(again.body), ids(first.body));
    const longer = { messages: [...batch.messages, message('ok-batch3@example.test')] };
    const conflict = await post(
      `${api.url}/v1/messages/batch`,
      longer,
      auth(key, { 'idempotency-key': 'batch-1' }),
    );
    assert.equal(conflict.status, 409);
    for (const receipt of (first.body as { messages: Receipt[] }).messages) await delivered(receipt);
  });

  it('reports status with attempts, and cancels a message not sent yet', async () => {
    const retrying = await send(message('temp451-1000-cancel@example.test'));
    assert.equal(retrying.status, 202);
    const id = (retrying.body as Receipt).id;
    await waitFor(() => sink.attempts('temp451-1000-cancel@example.test') >= 1, {
      what: 'a first attempt',
    });
    // Cancel acts on a message waiting for its next attempt (one on the wire finishes its attempt first).
    await waitFor(async () => (await jobs.status(id)).state === 'queued', {
      what: 'the deferral to be recorded',
    });
    const cancelled = await post(`${api.url}/v1/messages/${id}/cancel`, '', auth(key));
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    await waitFor(async () => (await jobs.status(id)).state === 'cancelled', {
      what: 'the message to end cancelled',
    });
    const status = (await (await fetch(`${api.url}/v1/messages/${id}`, { headers: auth(key) })).json()) as {
      state: string;
      attempts: number;
      history: { outcome: string; code?: number }[];
    };
    assert.equal(status.state, 'cancelled');
    assert.ok(
      status.history.some((h) => h.outcome === 'deferred' && h.code === 451),
      'the deferral is in the history',
    );
    const missing = await fetch(`${api.url}/v1/messages/01m84hek00000000000000000a`, { headers: auth(key) });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as ErrorBody).error.code, 'ERR_NOT_FOUND');
  });

  it('creates a campaign, streams its CSV recipients, and delivers them with their merge fields', async () => {
    const draft = await post(
      `${api.url}/v1/campaigns`,
      {
        name: 'spring',
        template: {
          from: `News <${SENDER}>`,
          subject: 'Hello {{name}}',
          text: 'Hi {{name}}, your code is {{code}}.',
        },
      },
      auth(key),
    );
    assert.equal(draft.status, 201, JSON.stringify(draft.body));
    const { id: draftId, recipientsUrl } = draft.body as { id: string; recipientsUrl: string };
    const csv =
      'email,name,code\nok-c1@example.test,Ada,A1\nnot-an-address,Bob,B2\nok-c2@example.test,Cy,C3\n';
    const upload = await fetch(`${api.url}${recipientsUrl}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'text/csv; charset=utf-8' },
      body: csv,
    });
    assert.equal(upload.status, 202);
    const receipt = (await upload.json()) as {
      id: string;
      accepted: number;
      refused: number;
      refusals: { row: number; field: string }[];
    };
    assert.equal(receipt.accepted, 2);
    assert.equal(receipt.refused, 1);
    assert.deepEqual(
      receipt.refusals.map((r) => [r.row, r.field]),
      [[2, 'to.address']],
    );
    await waitFor(
      async () => {
        const c = (await (
          await fetch(`${api.url}/v1/campaigns/${receipt.id}`, { headers: auth(key) })
        ).json()) as {
          counts: { terminal: { delivered: number } };
        };
        return c.counts.terminal.delivered === 2;
      },
      { timeoutMs: 20_000, what: 'the campaign to be delivered' },
    );
    const subjects = sink.messages
      .filter((m) => m.rcptTo[0]?.startsWith('ok-c'))
      .map((m) => m.subject)
      .sort();
    assert.deepEqual(subjects, ['Hello Ada', 'Hello Cy']);
    const resolved = (await (
      await fetch(`${api.url}/v1/campaigns/${draftId}`, { headers: auth(key) })
    ).json()) as {
      state: string;
      campaignId: string;
    };
    assert.deepEqual([resolved.state, resolved.campaignId], ['uploaded', receipt.id]);
    const twice = await fetch(`${api.url}${recipientsUrl}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'text/csv' },
      body: csv,
    });
    assert.equal(twice.status, 409, 'a draft is uploaded once');
  });

  it('resends the failed messages of a campaign, and only those', async () => {
    const draft = await post(
      `${api.url}/v1/campaigns`,
      { template: { from: `News <${SENDER}>`, subject: 'Hi {{name}}', text: 'Hello.' } },
      auth(key),
    );
    assert.equal(draft.status, 201, JSON.stringify(draft.body));
    const { recipientsUrl } = draft.body as { recipientsUrl: string };
    // A merge value with a line break cannot go into the Subject: that message fails at send time.
    const jsonl = [
      JSON.stringify({ to: 'ok-r1@example.test', vars: { name: 'Ada' } }),
      JSON.stringify({ to: 'ok-r2@example.test', vars: { name: 'Eve\r\nBcc: x@example.test' } }),
    ].join('\n');
    const upload = await fetch(`${api.url}${recipientsUrl}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson' },
      body: jsonl,
    });
    assert.equal(upload.status, 202);
    const { id } = (await upload.json()) as { id: string };
    const counts = async () =>
      (
        (await (await fetch(`${api.url}/v1/campaigns/${id}`, { headers: auth(key) })).json()) as {
          counts: { pending: number; terminal: { delivered: number; failed: number } };
        }
      ).counts;
    await waitFor(async () => (await counts()).pending === 0, {
      timeoutMs: 20_000,
      what: 'the campaign to end',
    });
    assert.deepEqual([(await counts()).terminal.delivered, (await counts()).terminal.failed], [1, 1]);
    const resend = await post(`${api.url}/v1/campaigns/${id}/resend-failed`, {}, auth(key));
    assert.equal(resend.status, 200, JSON.stringify(resend.body));
    const body = resend.body as { resent: number; ids: string[] };
    assert.equal(body.resent, 1, 'the failed message only');
    const again = await fetch(`${api.url}/v1/messages/${body.ids[0]}`, { headers: auth(key) });
    assert.equal(again.status, 200);
    const missing = await post(`${api.url}/v1/campaigns/nosuchcampaign/resend-failed`, {}, auth(key));
    assert.equal(missing.status, 404);
  });

  it('streams JSON Lines recipients, and cancels the campaign of an upload over the limit', async () => {
    const template = { from: SENDER, subject: 'Hi {{name}}', text: 'Hello {{name}}' };
    const draft = await post(
      `${api.url}/v1/campaigns`,
      { template, sendAt: new Date(Date.now() + 3_600_000).toISOString() },
      auth(key),
    );
    const { recipientsUrl, id: draftId } = draft.body as { recipientsUrl: string; id: string };
    // Bigger than the 256 KiB upload limit, sent without a Content-Length: cut off while streaming.
    const line = (i: number) =>
      `${JSON.stringify({ to: `ok-big${i}@example.test`, vars: { name: `N${i}` } })}\n`;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 10_000; i++) controller.enqueue(new TextEncoder().encode(line(i)));
        controller.close();
      },
    });
    const upload = await fetch(`${api.url}${recipientsUrl}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson' },
      body: stream,
      duplex: 'half',
    }).catch((err: unknown) => err);
    if (upload instanceof Response) {
      assert.equal(upload.status, 413);
      assert.match(((await upload.json()) as ErrorBody).error.message, /cancelled/);
    }
    // Whether or not the answer reached the client before the connection closed, the draft says failed and
    // the campaign it started is cancelled: nothing of a cut-short upload is sent.
    let campaignId = '';
    await waitFor(
      async () => {
        const d = (await (
          await fetch(`${api.url}/v1/campaigns/${draftId}`, { headers: auth(key) })
        ).json()) as {
          state: string;
          campaignId?: string;
        };
        campaignId = d.campaignId ?? '';
        return d.state === 'failed';
      },
      { what: 'the draft to be marked failed' },
    );
    assert.notEqual(campaignId, '', 'the failed upload knows its campaign');
    const campaign = (await (
      await fetch(`${api.url}/v1/campaigns/${campaignId}`, { headers: auth(key) })
    ).json()) as {
      state: string;
      counts: { accepted: number; pending: number };
    };
    assert.equal(campaign.state, 'cancelled');
    assert.ok(campaign.counts.accepted > 0, 'part of the upload had been accepted');
    assert.equal(campaign.counts.pending, 0, 'and none of it is left to send');

    const small = await post(`${api.url}/v1/campaigns`, { template }, auth(key));
    const jsonl = `${line(1)}{"broken json\n${line(2)}`;
    const ok = await fetch(`${api.url}${(small.body as { recipientsUrl: string }).recipientsUrl}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson' },
      body: jsonl,
    });
    assert.equal(ok.status, 202);
    const receipt = (await ok.json()) as { accepted: number; refused: number; refusals: { row: number }[] };
    assert.deepEqual([receipt.accepted, receipt.refused, receipt.refusals[0]?.row], [2, 1, 2]);
  });
});
