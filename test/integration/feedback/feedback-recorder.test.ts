import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { ConfigError, newMessageId } from '@mailroom/core';
import {
  feedbackEventOf,
  inboundRecipientCheck,
  startFeedbackReceiver,
  type FeedbackReport,
} from '@mailroom/feedback';
import { FeedbackRecorder, Ledger, SuppressionStore, type AcceptEntry } from '@mailroom/queue';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { CORPUS_VERP } from './feedback-corpus.js';

const PREFIX = '{mailroom}';
const GRACE = { graceMs: 1000, policy: 'resend' as const };

function entry(id: string, payload: object, extra: Partial<AcceptEntry> = {}): AcceptEntry {
  return {
    id,
    messageId: `<${id}@mailroom.example>`,
    expiresAt: Date.now() + 60_000,
    payload: JSON.stringify(payload),
    contentHash: 'c1',
    tags: [],
    ...extra,
  };
}

function single(id: string, to: string, from = 'news@mailroom.example') {
  return { v: 1, id, to: { address: to }, from: { address: from } };
}

describe('feedback events from reports (no I/O)', () => {
  it('maps class, reply code and source; a bounce without a class is soft', () => {
    const base: FeedbackReport = { kind: 'bounce', format: 'dsn', generator: 'gmail', bounceClass: 'hard' };
    const hard = feedbackEventOf(
      { ...base, status: '5.1.1', diagnostic: '550-5.1.1 The email account does not exist', mailroomId: 'x' },
      { toComplaintsAddress: false },
    );
    assert.equal(hard.kind, 'hard_bounce');
    assert.equal(hard.replyCode, 550);
    assert.equal(hard.source, 'dsn:gmail');
    assert.equal(hard.toComplaintsAddress, false);
    const { bounceClass: _class, ...unclassed } = base;
    assert.equal(feedbackEventOf(unclassed, { toComplaintsAddress: false }).kind, 'soft_bounce');
    assert.equal(
      feedbackEventOf({ ...base, bounceClass: 'soft' }, { toComplaintsAddress: false }).kind,
      'soft_bounce',
    );
    const complaint = feedbackEventOf(
      { kind: 'complaint', format: 'arf', generator: 'yahoo', feedbackType: 'abuse' },
      { toComplaintsAddress: true },
    );
    assert.deepEqual(complaint, {
      kind: 'complaint',
      source: 'arf:yahoo:abuse',
      toComplaintsAddress: true,
      feedbackType: 'abuse',
    });
    const noCode = feedbackEventOf(
      { ...base, diagnostic: 'host unreachable' },
      { toComplaintsAddress: false },
    );
    assert.equal(noCode.replyCode, undefined);
    assert.equal(
      feedbackEventOf({ kind: 'unknown', format: 'none' }, { toComplaintsAddress: false }).source,
      'none',
    );
  });

  it('takes the whole bounce domain and the exact complaints addresses, in any case; refuses bad settings', () => {
    const check = inboundRecipientCheck('Bounce.Example.COM', ['FBL@example.com']);
    assert.equal(check('bounces+x@bounce.example.com'), 'bounce');
    assert.equal(check('POSTMASTER@BOUNCE.EXAMPLE.COM'), 'bounce');
    assert.equal(check('fbl@EXAMPLE.com'), 'complaints');
    assert.equal(check('fbl@sub.example.com'), undefined);
    assert.equal(check('x@example.com'), undefined);
    assert.equal(check('x@notbounce.example.com'), undefined);
    assert.equal(check('bounce.example.com'), undefined);
    assert.equal(check(''), undefined);
    const idn = inboundRecipientCheck('bounce.bücher.example', []);
    assert.equal(idn('x@bounce.xn--bcher-kva.example'), 'bounce');
    assert.equal(idn('x@bounce.bücher.example'), 'bounce');
    assert.throws(
      () => inboundRecipientCheck('not a domain', ['fine@example.com', 'broken']),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.issues.some((i) => i.field === 'bounceDomain') &&
        err.issues.some((i) => i.field === 'complaintsAddresses[1]'),
    );
  });

  it('refuses unusable receiver options with ConfigError before listening', async () => {
    const record = () => Promise.resolve({ result: 'ignored' as const });
    await assert.rejects(
      startFeedbackReceiver({ verp: { ...CORPUS_VERP, secret: 'short' }, record }),
      (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.field === 'verp.secret'),
    );
    await assert.rejects(
      startFeedbackReceiver({ verp: CORPUS_VERP, record, maxMessageBytes: 0 }),
      (err: unknown) => err instanceof ConfigError && err.issues[0]?.field === 'maxMessageBytes',
    );
  });
});

describe('FeedbackRecorder against a real Redis', () => {
  let redis: RedisServer;
  let conn: Redis;
  let ledger: Ledger;
  let recorder: FeedbackRecorder;
  let suppressions: SuppressionStore;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    conn = redis.client();
    ledger = new Ledger(conn, { prefix: PREFIX, retentionSeconds: 3600 });
    recorder = new FeedbackRecorder(conn, { prefix: PREFIX });
    suppressions = new SuppressionStore(conn, PREFIX);
  });
  beforeEach(async () => {
    await conn.flushdb();
  });
  after(async () => {
    conn.disconnect();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  async function delivered(id: string, to: string): Promise<void> {
    await ledger.accept([entry(id, single(id, to))]);
    await ledger.markQueued([id]);
    assert.equal((await ledger.claim(id, 't', GRACE)).kind, 'send');
    assert.equal(await ledger.recordOutcome(id, 't', { outcome: 'delivered', code: 250 }), 'ok');
  }

  it('counts unknown, unlinked and unmatched reports without writing anything else', async () => {
    assert.deepEqual(await recorder.record({ kind: 'unknown', mailroomId: newMessageId() }), {
      result: 'ignored',
    });
    assert.deepEqual(await recorder.record({ kind: 'hard_bounce' }), { result: 'unlinked' });
    assert.deepEqual(await recorder.record({ kind: 'hard_bounce', mailroomId: 'NOT-AN-ID' }), {
      result: 'unlinked',
    });
    const ghost = newMessageId();
    assert.deepEqual(
      await recorder.record({ kind: 'complaint', mailroomId: ghost, recipient: 'a@b.example' }),
      {
        result: 'unmatched',
      },
    );
    assert.deepEqual(await ledger.stats(), {
      feedback_unknown: 1,
      feedback_unlinked: 2,
      feedback_unmatched: 1,
    });
    assert.deepEqual(await conn.keys('*'), [`${PREFIX}:stats`]);
  });

  it('a record that keeps `rcpt` and `from` after delivery is trusted like the payload', async () => {
    const id = newMessageId();
    await delivered(id, 'reader@example.test');
    assert.equal(await conn.hget(ledger.key(id), 'data'), null);
    // The fields a ledger keeps when it drops the payload (see docs/bounces.md), written at acceptance.
    assert.deepEqual(await conn.hmget(ledger.key(id), 'rcpt', 'from'), [
      'reader@example.test',
      'news@mailroom.example',
    ]);
    await conn.hset(ledger.key(id), 'from', 'news@brand.example');
    const recording = await recorder.record({
      kind: 'hard_bounce',
      mailroomId: id,
      linkedBy: 'message-id',
      recipient: 'reader@example.test',
      source: 'text:exim',
    });
    assert.equal(recording.result, 'recorded');
    assert.equal(recording.state, 'delivered');
    assert.deepEqual(recording.suppressed, {
      scope: 'brand.example',
      address: 'reader@example.test',
      reason: 'hard_bounce',
      recipientFrom: 'ledger',
    });
    assert.equal((await suppressions.get('brand.example', 'reader@example.test'))?.source, `text:exim:${id}`);
  });

  it('keeps only safe characters of the source a report gives, so a hostile Feedback-Type cannot fail recording', async () => {
    const id = newMessageId();
    await ledger.accept([entry(id, single(id, 'victim.of.typos@example.test'))]);
    const recording = await recorder.record({
      kind: 'complaint',
      mailroomId: id,
      linkedBy: 'verp',
      source: `arf:yahoo:AB\u0000use\t\r\n${'x'.repeat(500)}`,
    });
    assert.equal(recording.result, 'recorded');
    const listed = await suppressions.get('mailroom.example', 'victim.of.typos@example.test');
    assert.equal(listed?.source, `arf:yahoo:abuse${'x'.repeat(49)}:${id}`);
    const [logged] = (await ledger.status(id))?.history ?? [];
    assert.equal(logged?.reason, `arf:yahoo:abuse${'x'.repeat(49)}`);
  });

  it('after delivery, with no recipient anywhere, suppresses nobody (no_recipient); with one, only an authenticated link does', async () => {
    // Records written before the ledger kept `rcpt` and `from`: once delivered, only the report names anyone.
    const deliveredUnaddressed = async (id: string, to: string) => {
      await delivered(id, to);
      await conn.hdel(ledger.key(id), 'rcpt', 'from');
    };
    const id = newMessageId();
    await deliveredUnaddressed(id, 'reader@example.test');
    const none = await recorder.record({ kind: 'complaint', mailroomId: id, linkedBy: 'verp' });
    assert.equal(none.result, 'recorded');
    assert.equal(none.notSuppressed, 'no_recipient');

    const other = newMessageId();
    await deliveredUnaddressed(other, 'reader2@example.test');
    const byMessageId = await recorder.record({
      kind: 'hard_bounce',
      mailroomId: other,
      linkedBy: 'message-id',
      recipient: 'reader2@example.test',
    });
    assert.equal(byMessageId.notSuppressed, 'unverified');
    const atComplaints = await recorder.record({
      kind: 'complaint',
      mailroomId: other,
      linkedBy: 'message-id',
      recipient: 'Reader2@Example.test',
      toComplaintsAddress: true,
    });
    assert.deepEqual(atComplaints.suppressed, {
      scope: 'mailroom.example',
      address: 'reader2@example.test',
      reason: 'complaint',
      recipientFrom: 'report',
    });
    const stats = await ledger.stats();
    assert.equal(stats.feedback_not_suppressed, 2);
    assert.equal(stats.feedback_suppressed, 1);
    assert.equal(await suppressions.count('mailroom.example'), 1);
  });

  it('gives the history of a message ended without attempts the lifetime of its record, and returns when each kind came', async () => {
    const id = newMessageId();
    await ledger.accept([entry(id, single(id, 'late@example.test'), { expiresAt: Date.now() - 1 })]);
    await ledger.markQueued([id]);
    // Past its deadline: the claim ends it expired, unsent, without a history entry.
    assert.deepEqual(await ledger.claim(id, 't', GRACE), { kind: 'ended', state: 'expired' });
    assert.equal(await conn.exists(`${ledger.key(id)}:log`), 0);
    const at = Date.now();
    await recorder.record({ kind: 'delay', mailroomId: id, linkedBy: 'verp', status: '4.4.1' }, at);
    const [recordTtl, logTtl] = await Promise.all([
      conn.pttl(ledger.key(id)),
      conn.pttl(`${ledger.key(id)}:log`),
    ]);
    assert.ok(recordTtl > 0 && logTtl > 0 && logTtl <= recordTtl, `${recordTtl} ${logTtl}`);
    assert.deepEqual(await recorder.feedbackOf(id), { delay: at });
    assert.deepEqual(await recorder.feedbackOf(newMessageId()), {});
  });

  it('never creates a campaign hash that is gone, and leaves a non-terminal record without a TTL', async () => {
    const id = newMessageId();
    await ledger.accept([
      entry(id, { v: 1, campaign: 'c1', id, to: { address: 'm@example.test' } }, { campaign: 'c1' }),
    ]);
    await conn.del(`${PREFIX}:campaign:c1`);
    const recording = await recorder.record({ kind: 'hard_bounce', mailroomId: id, linkedBy: 'verp' });
    assert.equal(recording.result, 'recorded');
    // No template, and the Message-ID's domain stands in for the sender's.
    assert.equal(recording.suppressed?.scope, 'mailroom.example');
    assert.equal(await conn.exists(`${PREFIX}:campaign:c1`), 0);
    assert.equal(await conn.pttl(ledger.key(id)), -1);
    assert.equal(await conn.pttl(`${ledger.key(id)}:log`), -1);
    assert.equal((await ledger.status(id))?.state, 'accepted');
  });
});
