import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import type { MailroomClient } from '@mailroom/client';
import {
  FEEDBACK_EVENT_KINDS,
  startFeedbackReceiver,
  type FeedbackEventKind,
  type FeedbackReceiver,
  type FeedbackReceiverStats,
} from '@mailroom/feedback';
import { Registry, createFeedbackMetrics, type FeedbackMetrics } from '@mailroom/metrics';
import { FeedbackRecorder, Ledger, type MessageStatus } from '@mailroom/queue';
import { createTestCertificateAuthority } from '../../harness/certs.js';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { memoryLogger, message, testClient } from '../fixtures.js';
import {
  COMPLAINTS_ADDRESS,
  CORPUS_VERP,
  corpus,
  deliver,
  expectedKind,
  rewriteSample,
  type CorpusEntry,
} from './feedback-corpus.js';

const PREFIX = '{mailroom}';
/** The fixtures' sender is sender@mailroom.example: its suppression scope is its domain. */
const SENDER_SCOPE = 'mailroom.example';
const BOUNCE_BOX = `bounces@${CORPUS_VERP.domain}`;
const SUPPRESSING: readonly FeedbackEventKind[] = ['hard_bounce', 'complaint'];

function sample(name: string): CorpusEntry {
  const found = corpus().find((entry) => entry.name === name);
  assert.ok(found, `corpus has ${name}`);
  return found;
}

/** The history entries feedback wrote (outcome `feedback_<kind>`). */
function feedbackEntries(status: MessageStatus) {
  return status.history.filter((h) => h.outcome.startsWith('feedback_'));
}

function snapshot(stats: Readonly<FeedbackReceiverStats>): FeedbackReceiverStats {
  return { ...stats, kinds: { ...stats.kinds }, results: { ...stats.results } };
}

describe('feedback receiver and recorder: real SMTP in, real Redis ledger and suppression list', () => {
  let redis: RedisServer;
  let conn: Redis;
  let client: MailroomClient;
  let ledger: Ledger;
  let receiver: FeedbackReceiver;
  let metrics: FeedbackMetrics;
  let logs: ReturnType<typeof memoryLogger>;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    conn = redis.client();
    client = testClient(redis);
    ledger = new Ledger(conn, { prefix: PREFIX });
    const recorder = new FeedbackRecorder(conn, { prefix: PREFIX });
    metrics = createFeedbackMetrics({ registry: new Registry(), defaultMetrics: false });
    logs = memoryLogger('info');
    receiver = await startFeedbackReceiver({
      verp: CORPUS_VERP,
      complaintsAddresses: [COMPLAINTS_ADDRESS],
      record: (event) => recorder.record(event),
      metrics,
      logger: logs.logger,
    });
  });

  beforeEach(async () => {
    await conn.flushdb();
  });

  after(async () => {
    await receiver.close();
    await client.close();
    conn.disconnect();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  async function stats(): Promise<Record<string, number>> {
    return ledger.stats();
  }

  /** Accepts a real message to `to` through the client: a ledger record, a payload, a Message-ID. */
  async function accept(to: string): Promise<{ id: string; messageId: string }> {
    const receipt = await client.send(message(to));
    assert.equal(receipt.status, 'queued', `message to ${to} queued`);
    return receipt;
  }

  /** Moves a queued message to delivered through the ledger's own scripts, as a worker does. */
  async function markDelivered(id: string): Promise<void> {
    const claim = await ledger.claim(id, 'token-1', { graceMs: 1000, policy: 'resend' });
    assert.equal(claim.kind, 'send');
    assert.equal(
      await ledger.recordOutcome(id, 'token-1', {
        outcome: 'delivered',
        code: 250,
        response: '250 2.0.0 OK',
      }),
      'ok',
    );
  }

  it('reads every corpus sample sent over SMTP and records it on the message it names, with the right class', async () => {
    const samples = corpus();
    assert.ok(samples.length >= 30);
    const before = snapshot(receiver.stats);
    const addresses: string[] = [];
    const expectedStats: Record<string, number> = {};
    const bump = (field: string) => (expectedStats[field] = (expectedStats[field] ?? 0) + 1);
    let suppressedCount = 0;
    for (const [n, entry] of samples.entries()) {
      const kind = expectedKind(entry.expected);
      if (entry.expected.mailroomId === undefined) {
        // Names no Mailroom message (forged-verp.eml: a return path whose MAC does not check out).
        const reply = await deliver(receiver.port, [BOUNCE_BOX], entry.raw);
        assert.match(reply.response ?? '', /^250 /, `${entry.name}: ${reply.errorResponse}`);
        bump(kind === 'unknown' ? 'feedback_unknown' : 'feedback_unlinked');
        continue;
      }
      const to = (entry.expected.recipient ?? `reader.${n}@example.test`).toLowerCase();
      addresses.push(to);
      const { id } = await accept(to);
      const rewritten = rewriteSample(entry, id, CORPUS_VERP);
      // Real routes: ARF reports go to the address registered with the feedback loop, everything else to
      // the return path the message was sent with (or, without a usable one, to the bounce domain).
      const rcptTo =
        rewritten.rcptTo ??
        (entry.expected.format === 'arf'
          ? [COMPLAINTS_ADDRESS]
          : entry.expected.mailroomIdSource === 'verp'
            ? [rewritten.returnPath]
            : [BOUNCE_BOX]);
      const reply = await deliver(receiver.port, rcptTo, rewritten.raw);
      assert.match(reply.response ?? '', /^250 2\.0\.0 /, `${entry.name}: ${reply.errorResponse}`);

      const status = await client.status(id);
      assert.equal(status.state, 'queued', `${entry.name}: feedback never changes the state`);
      const entries = feedbackEntries(status);
      const listed = await client.suppressions.get(SENDER_SCOPE, to);
      if (kind === 'unknown') {
        bump('feedback_unknown');
        assert.deepEqual(entries, [], `${entry.name}: an unknown report is counted only`);
        assert.equal(listed, undefined, entry.name);
        continue;
      }
      bump(`feedback_${kind}`);
      assert.equal(entries.length, 1, `${entry.name}: one history entry`);
      const [recorded] = entries;
      assert.equal(recorded?.outcome, `feedback_${kind}`, entry.name);
      assert.equal(recorded?.enhanced, entry.expected.status, `${entry.name}: status`);
      assert.equal(recorded?.response, entry.expected.diagnostic, `${entry.name}: diagnostic`);
      assert.ok(recorded?.reason?.startsWith(entry.expected.format), `${entry.name}: ${recorded?.reason}`);
      if (SUPPRESSING.includes(kind)) {
        suppressedCount += 1;
        bump('feedback_suppressed');
        assert.equal(listed?.reason, kind, `${entry.name}: ${to} suppressed`);
        assert.ok(listed?.source?.endsWith(`:${id}`), `${entry.name}: source names the message`);
      } else {
        assert.equal(listed, undefined, `${entry.name}: soft bounces and delays suppress nobody`);
      }
    }

    const actual = await stats();
    for (const [field, count] of Object.entries(expectedStats)) {
      assert.equal(actual[field], count, `stats ${field}`);
    }
    assert.equal(actual.feedback_duplicate, undefined);
    assert.equal(actual.feedback_not_suppressed, undefined);
    assert.equal(actual.feedback_unlinked, 1, 'the forged return path links nothing');
    assert.equal(await client.suppressions.count(SENDER_SCOPE), suppressedCount);
    assert.equal(await client.suppressions.get(SENDER_SCOPE, 'victim@example.net'), undefined);

    // Each message carries exactly the one entry of its own sample: nothing was attributed elsewhere.
    const linkedKinds = samples
      .filter((e) => e.expected.mailroomId !== undefined && expectedKind(e.expected) !== 'unknown')
      .map((e) => expectedKind(e.expected));
    let total = 0;
    for (const id of await conn.zrange(`${PREFIX}:deadline`, '0', '-1')) {
      total += feedbackEntries(await client.status(id)).length;
    }
    assert.equal(total, linkedKinds.length);

    const after = receiver.stats;
    assert.equal(after.accepted - before.accepted, samples.length);
    for (const kind of FEEDBACK_EVENT_KINDS) {
      const want = samples.filter((e) => expectedKind(e.expected) === kind).length;
      assert.equal(after.kinds[kind] - before.kinds[kind], want, `receiver kinds.${kind}`);
    }
    assert.equal(after.results.recorded - before.results.recorded, linkedKinds.length);
    // The counter of mailroom_feedback_events_total: recorded events only, by type.
    const counted = await metrics.feedbackEvents.get();
    for (const kind of ['hard_bounce', 'soft_bounce', 'complaint', 'delay'] as const) {
      const sum = counted.values.filter((v) => v.labels.type === kind).reduce((a, v) => a + v.value, 0);
      assert.equal(sum, linkedKinds.filter((k) => k === kind).length, `metric type=${kind}`);
    }

    // Never a recipient address at info level.
    const lines = logs.lines();
    assert.ok(lines.includes('feedback received'));
    for (const address of [...addresses, 'victim@example.net']) {
      assert.ok(!lines.toLowerCase().includes(address), `${address} is not logged at info`);
    }
  });

  it('counts a report sent again once (per message and kind), and suppresses once', async () => {
    const cases = [
      { name: 'gmail-5.1.1.eml', kind: 'hard_bounce' },
      { name: 'yahoo-arf-abuse.eml', kind: 'complaint' },
      { name: 'gmail-delayed-4.4.1.eml', kind: 'delay' },
      { name: 'postfix-expired-4.2.2.eml', kind: 'soft_bounce' },
    ] as const;
    const before = snapshot(receiver.stats);
    const ids: string[] = [];
    for (const { name } of cases) {
      const entry = sample(name);
      const to = entry.expected.recipient!.toLowerCase();
      const { id } = await accept(to);
      ids.push(id);
      const rewritten = rewriteSample(entry, id, CORPUS_VERP);
      const rcptTo = entry.expected.format === 'arf' ? [COMPLAINTS_ADDRESS] : [rewritten.returnPath];
      for (let copy = 0; copy < 3; copy++) {
        const reply = await deliver(receiver.port, rcptTo, rewritten.raw);
        assert.match(reply.response ?? '', /^250 /, `${name} copy ${copy}`);
      }
    }
    const actual = await stats();
    for (const { kind } of cases) assert.equal(actual[`feedback_${kind}`], 1, kind);
    assert.equal(actual.feedback_duplicate, 2 * cases.length);
    assert.equal(actual.feedback_suppressed, 2);
    for (const [i, id] of ids.entries()) {
      const entries = feedbackEntries(await client.status(id));
      assert.deepEqual(
        entries.map((e) => e.outcome),
        [`feedback_${cases[i]!.kind}`],
      );
    }
    assert.equal(receiver.stats.results.duplicate - before.results.duplicate, 2 * cases.length);
    assert.equal(receiver.stats.results.recorded - before.results.recorded, cases.length);
    assert.equal(await client.suppressions.count(SENDER_SCOPE), 2);
  });

  it('refuses RCPT TO anywhere else with 550 5.7.1 (no open relay) and records nothing', async () => {
    const before = snapshot(receiver.stats);
    const gmail = sample('gmail-5.1.1.eml').raw;
    const foreign = await deliver(receiver.port, ['someone@elsewhere.example'], gmail);
    assert.equal(foreign.errorCode, 550);
    assert.match(foreign.errorResponse ?? '', /^550 5\.7\.1 /);
    const relay = await deliver(
      receiver.port,
      ['victim@gmail.com'],
      Buffer.from('Subject: hi\r\n\r\nspam\r\n'),
      {
        from: 'spammer@bad.example',
      },
    );
    assert.equal(relay.errorCode, 550);
    // A complaints address is exact: another local part at its domain is not ours.
    const near = await deliver(receiver.port, ['fbl2@example.com'], gmail);
    assert.equal(near.errorCode, 550);
    // Of a mixed envelope only the foreign recipient is refused.
    const mixed = await deliver(receiver.port, [BOUNCE_BOX, 'other@elsewhere.example'], gmail);
    assert.deepEqual(mixed.rejected, ['other@elsewhere.example']);
    assert.deepEqual(mixed.accepted, [BOUNCE_BOX]);

    assert.equal(receiver.stats.refusedRecipients - before.refusedRecipients, 4);
    assert.equal(receiver.stats.accepted - before.accepted, 1, 'only the mixed message got in');
    // The mixed message is the corpus's Gmail bounce, whose message this ledger never had.
    assert.deepEqual(await stats(), { feedback_unmatched: 1 }, 'nothing else was written');
  });

  it('accepts what it cannot read with 250 (no retry storm) and counts it as unknown', async () => {
    const before = snapshot(receiver.stats);
    const garbage = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 131 + 7) % 256));
    const inputs = [
      garbage,
      Buffer.from('Subject: hello\r\nFrom: someone@remote.example\r\n\r\nJust a message, not a report.\r\n'),
      Buffer.from('Content-Type: multipart/report; report-type=delivery-status; boundary="x"\r\n\r\n--x\r\n'),
    ];
    for (const raw of inputs) {
      const reply = await deliver(receiver.port, [BOUNCE_BOX], raw);
      assert.match(reply.response ?? '', /^250 /, reply.errorResponse);
    }
    assert.equal(receiver.stats.kinds.unknown - before.kinds.unknown, inputs.length);
    assert.equal(receiver.stats.results.ignored - before.results.ignored, inputs.length);
    assert.deepEqual(await stats(), { feedback_unknown: inputs.length });
  });

  it('a delivered message that bounces later stays delivered; the bounce is in its history; its recipient is suppressed', async () => {
    const entry = sample('gmail-5.1.1.eml');
    const to = 'absent.person@example.net';
    const { id } = await accept(to);
    await markDelivered(id);
    const delivered = await client.status(id);
    assert.equal(await conn.hget(ledger.key(id), 'data'), null, 'the payload is gone once delivered');

    const rewritten = rewriteSample(entry, id, CORPUS_VERP);
    const reply = await deliver(receiver.port, [rewritten.returnPath], rewritten.raw);
    assert.match(reply.response ?? '', /^250 /);

    const status = await client.status(id);
    assert.equal(status.state, 'delivered', 'terminal states are write-once');
    assert.equal(status.terminalAt, delivered.terminalAt);
    assert.equal(status.code, 250, "the record's own reply is the delivery's");
    assert.deepEqual(
      status.history.map((h) => [h.outcome, h.code, h.enhanced]),
      [
        ['delivered', 250, undefined],
        ['feedback_hard_bounce', 550, '5.1.1'],
      ],
    );
    // Linked by a return path whose MAC checked out: the report's recipient is used, as the ledger has none.
    const listed = await client.suppressions.get(SENDER_SCOPE, to);
    assert.equal(listed?.reason, 'hard_bounce');
    // The history lives as long as the record.
    const [recordTtl, logTtl] = await Promise.all([
      conn.pttl(ledger.key(id)),
      conn.pttl(`${ledger.key(id)}:log`),
    ]);
    assert.ok(recordTtl > 0 && logTtl > 0 && Math.abs(recordTtl - logTtl) < 60_000, `${recordTtl} ${logTtl}`);
    assert.equal((await stats()).feedback_suppressed, 1);
  });

  it('after delivery, a bounce linked by Message-ID only (return path no longer valid) is recorded but suppresses nobody', async () => {
    const entry = sample('exim-5.1.1.eml');
    const to = 'robin@example.net';
    const { id } = await accept(to);
    await markDelivered(id);
    // A record written before the ledger kept `rcpt` and `from`: only the report names the recipient.
    await conn.hdel(ledger.key(id), 'rcpt', 'from');
    // Signed with a secret the receiver no longer has (rotated): only the Message-ID links it.
    const rotated = { ...CORPUS_VERP, secret: 'an-older-verp-secret-0123456789' };
    const rewritten = rewriteSample(entry, id, CORPUS_VERP, rotated);
    const reply = await deliver(receiver.port, [rewritten.returnPath], rewritten.raw);
    assert.match(reply.response ?? '', /^250 /, 'a stale return path at the bounce domain is still taken');

    const status = await client.status(id);
    assert.equal(status.state, 'delivered');
    assert.deepEqual(
      feedbackEntries(status).map((h) => h.outcome),
      ['feedback_hard_bounce'],
    );
    assert.equal(await client.suppressions.get(SENDER_SCOPE, to), undefined, 'anyone can copy a Message-ID');
    const actual = await stats();
    assert.equal(actual.feedback_hard_bounce, 1);
    assert.equal(actual.feedback_not_suppressed, 1);
  });

  it('after delivery, a complaint at the complaints address suppresses its recipient; one linked by Message-ID that names another recipient does not', async () => {
    const entry = sample('yahoo-arf-abuse.eml');
    const complainer = 'reader.one@yahoo.example';
    const first = await accept(complainer);
    await markDelivered(first.id);
    const one = rewriteSample(entry, first.id, CORPUS_VERP);
    assert.match((await deliver(receiver.port, [COMPLAINTS_ADDRESS], one.raw)).response ?? '', /^250 /);
    assert.equal((await client.suppressions.get(SENDER_SCOPE, complainer))?.reason, 'complaint');
    assert.equal((await client.status(first.id)).state, 'delivered');

    // Still queued (the ledger holds its recipient), and the report names someone else: no suppression.
    const other = 'someone.else@example.test';
    const second = await accept(other);
    await client.suppressions.remove(SENDER_SCOPE, [complainer]);
    const two = rewriteSample(entry, second.id, CORPUS_VERP);
    assert.match((await deliver(receiver.port, [COMPLAINTS_ADDRESS], two.raw)).response ?? '', /^250 /);
    assert.deepEqual(
      feedbackEntries(await client.status(second.id)).map((h) => h.outcome),
      ['feedback_complaint'],
    );
    assert.equal(await client.suppressions.get(SENDER_SCOPE, other), undefined);
    assert.equal(await client.suppressions.get(SENDER_SCOPE, complainer), undefined);
    const actual = await stats();
    assert.equal(actual.feedback_complaint, 2);
    assert.equal(actual.feedback_suppressed, 1);
    assert.equal(actual.feedback_not_suppressed, 1);
  });

  it('a report about a message whose record is gone is counted unmatched', async () => {
    const entry = sample('gmail-5.1.1.eml');
    const { id } = await accept('absent.person@example.net');
    await conn.del(ledger.key(id));
    const rewritten = rewriteSample(entry, id, CORPUS_VERP);
    const before = snapshot(receiver.stats);
    assert.match(
      (await deliver(receiver.port, [rewritten.returnPath], rewritten.raw)).response ?? '',
      /^250 /,
    );
    assert.equal(receiver.stats.results.unmatched - before.results.unmatched, 1);
    const actual = await stats();
    assert.equal(actual.feedback_unmatched, 1);
    assert.equal(actual.feedback_hard_bounce, undefined);
    assert.equal(await conn.exists(ledger.key(id)), 0, 'no record was created');
  });
});

describe('feedback receiver limits, STARTTLS, and Redis going away', () => {
  let redis: RedisServer;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    // Every write reaches the disk before its reply: the Redis-down case kills the server.
    redis = await startRedis({ appendfsync: 'always' });
  });

  after(async () => {
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  it('refuses a message over its size with 552 5.3.4 and an 11th recipient with 452', async () => {
    const conn = redis.client();
    const recorder = new FeedbackRecorder(conn, { prefix: PREFIX });
    const receiver = await startFeedbackReceiver({
      verp: CORPUS_VERP,
      record: (event) => recorder.record(event),
      maxMessageBytes: 8192,
    });
    try {
      const big = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(20_000, 'a')]);
      const tooBig = await deliver(receiver.port, [BOUNCE_BOX], big);
      assert.equal(tooBig.errorCode, 552);
      assert.match(tooBig.errorResponse ?? '', /5\.3\.4/);
      assert.equal(receiver.stats.tooBig, 1);

      const many = Array.from({ length: 11 }, (_, i) => `bounces+${i}@${CORPUS_VERP.domain}`);
      const reply = await deliver(receiver.port, many, Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
      assert.equal(reply.accepted.length, 10);
      assert.deepEqual(reply.rejected, [many[10]]);
      assert.equal(receiver.stats.accepted, 1);
    } finally {
      await receiver.close();
      conn.disconnect();
    }
  });

  it('offers STARTTLS with its certificate and takes reports over it', async () => {
    const ca = await createTestCertificateAuthority();
    const cert = await ca.issue({ commonName: 'mx.bounce.example.com', altNames: ['127.0.0.1'] });
    const conn = redis.client();
    await conn.flushdb();
    const recorder = new FeedbackRecorder(conn, { prefix: PREFIX });
    const receiver = await startFeedbackReceiver({
      verp: CORPUS_VERP,
      record: (event) => recorder.record(event),
      tls: cert,
    });
    try {
      const reply = await deliver(
        receiver.port,
        [BOUNCE_BOX],
        Buffer.from('Subject: x\r\n\r\nnot a report\r\n'),
        {
          tls: { ca: ca.cert },
        },
      );
      assert.match(reply.response ?? '', /^250 /, reply.errorResponse);
      assert.deepEqual(await new Ledger(conn, { prefix: PREFIX }).stats(), { feedback_unknown: 1 });
    } finally {
      await receiver.close();
      conn.disconnect();
    }
  });

  it('answers 451 while Redis is down (the sender retries) and records the retry once Redis is back', async () => {
    const conn = redis.client({ maxRetriesPerRequest: 1, connectTimeout: 1000 });
    conn.on('error', () => undefined);
    const client = testClient(redis);
    const recorder = new FeedbackRecorder(conn, { prefix: PREFIX });
    const receiver = await startFeedbackReceiver({
      verp: CORPUS_VERP,
      record: (event) => recorder.record(event),
    });
    try {
      await conn.flushdb();
      const entry = sample('gmail-5.1.1.eml');
      const receipt = await client.send(message('absent.person@example.net'));
      const rewritten = rewriteSample(entry, receipt.id, CORPUS_VERP);

      await redis.kill();
      const refused = await deliver(receiver.port, [rewritten.returnPath], rewritten.raw);
      assert.equal(refused.errorCode, 451);
      assert.match(refused.errorResponse ?? '', /^451 4\.3\.0 /);
      assert.equal(receiver.stats.deferred, 1);

      await redis.restart();
      await waitFor(
        () =>
          conn.ping().then(
            () => true,
            () => false,
          ),
        { what: 'the recorder to reconnect' },
      );
      const retried = await deliver(receiver.port, [rewritten.returnPath], rewritten.raw);
      assert.match(retried.response ?? '', /^250 /, retried.errorResponse);
      const status = await client.status(receipt.id);
      assert.deepEqual(
        feedbackEntries(status).map((h) => h.outcome),
        ['feedback_hard_bounce'],
      );
      assert.equal(
        (await client.suppressions.get(SENDER_SCOPE, 'absent.person@example.net'))?.reason,
        'hard_bounce',
      );
    } finally {
      await receiver.close();
      await client.close();
      conn.disconnect();
    }
  });
});
