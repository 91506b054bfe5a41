import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { IdempotencyConflictError } from '@mailroom/core';
import { Ledger, type AcceptEntry } from '@mailroom/queue';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';

const PREFIX = '{mailroom}';
const GRACE = { graceMs: 1000, policy: 'resend' as const };

function entry(id: string, extra: Partial<AcceptEntry> = {}): AcceptEntry {
  return {
    id,
    messageId: `<${id}@example.test>`,
    expiresAt: Date.now() + 60_000,
    payload: JSON.stringify({ id }),
    contentHash: 'c1',
    tags: [],
    ...extra,
  };
}

describe('delivery ledger scripts (real Redis)', () => {
  let redis: RedisServer;
  let conn: Redis;
  let ledger: Ledger;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    conn = redis.client();
    ledger = new Ledger(conn, { prefix: PREFIX, retentionSeconds: 3600 });
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

  async function queued(id: string, extra: Partial<AcceptEntry> = {}) {
    await ledger.accept([entry(id, extra)]);
    await ledger.markQueued([id]);
  }

  it('accepted -> queued -> sending -> delivered, with history and counters', async () => {
    await ledger.accept([entry('m1')]);
    assert.equal((await ledger.status('m1'))?.state, 'accepted');
    assert.equal(await ledger.markQueued(['m1']), 1);
    const claim = await ledger.claim('m1', 't1', GRACE);
    assert.equal(claim.kind, 'send');
    assert.equal((await ledger.status('m1'))?.state, 'sending');
    assert.equal(
      await ledger.recordOutcome('m1', 't1', { outcome: 'delivered', code: 250, response: '250 ok' }),
      'ok',
    );
    const status = await ledger.status('m1');
    assert.equal(status?.state, 'delivered');
    assert.equal(status?.attempts, 1);
    assert.equal(status?.code, 250);
    assert.deepEqual(
      status?.history.map((h) => h.outcome),
      ['delivered'],
    );
    assert.equal(await ledger.payload('m1'), undefined, 'payload dropped once delivered');
    assert.equal(await ledger.overdue(Date.now() + 120_000), 0, 'no longer pending');
    const stats = await ledger.stats();
    assert.equal(stats.accepted, 1);
    assert.equal(stats.delivered, 1);
    assert.ok((await conn.ttl(ledger.key('m1'))) > 0, 'finished records expire after the retention');
  });

  it('terminal states are written once', async () => {
    await queued('m2');
    await ledger.claim('m2', 't1', GRACE);
    await ledger.recordOutcome('m2', 't1', { outcome: 'bounced', code: 550 });
    assert.equal(await ledger.recordOutcome('m2', 't1', { outcome: 'delivered', code: 250 }), 'terminal');
    assert.equal(await ledger.recordOutcome('m2', 't1', { outcome: 'deferred' }), 'terminal');
    assert.equal((await ledger.status('m2'))?.state, 'bounced');
    assert.deepEqual(await ledger.finish(['m2'], 'cancelled', 'x'), []);
  });

  it('fencing: an older attempt cannot move the message, but its late "delivered" wins over a non-terminal state', async () => {
    await queued('m3');
    await ledger.claim('m3', 'old', GRACE);
    // the old attempt's lock is lost; a new attempt claims after the grace
    const claim = await ledger.claim('m3', 'new', GRACE, Date.now() + 5000);
    assert.equal(claim.kind, 'send');
    assert.equal(claim.kind === 'send' ? claim.resend : undefined, 'crash');
    assert.equal(await ledger.recordOutcome('m3', 'old', { outcome: 'deferred', code: 451 }), 'fenced');
    assert.equal(await ledger.recordOutcome('m3', 'old', { outcome: 'bounced', code: 550 }), 'fenced');
    assert.equal((await ledger.status('m3'))?.state, 'sending');
    assert.equal(await ledger.recordOutcome('m3', 'old', { outcome: 'delivered', code: 250 }), 'ok');
    assert.equal((await ledger.status('m3'))?.state, 'delivered');
    assert.equal(await ledger.recordOutcome('m3', 'new', { outcome: 'delivered', code: 250 }), 'terminal');
  });

  it('a finished message is acknowledged without sending, and counted', async () => {
    await queued('m4');
    await ledger.claim('m4', 't1', GRACE);
    await ledger.recordOutcome('m4', 't1', { outcome: 'delivered', code: 250 });
    assert.deepEqual(await ledger.claim('m4', 't2', GRACE), { kind: 'done', state: 'delivered' });
    assert.equal((await ledger.stats()).duplicate_suppressed, 1);
  });

  it('an attempt in flight makes the next claim wait for the grace, not send', async () => {
    await queued('m5');
    await ledger.claim('m5', 't1', GRACE);
    const claim = await ledger.claim('m5', 't2', GRACE);
    assert.equal(claim.kind, 'wait');
    assert.ok(claim.kind === 'wait' && claim.ms > 0 && claim.ms <= 1000);
  });

  it('body written and no outcome (RFC 1047): resend under "resend", ambiguous under "stop"', async () => {
    await queued('m6');
    await ledger.claim('m6', 't1', GRACE);
    assert.equal(await ledger.markBodyWritten('m6', 't1'), true);
    const later = Date.now() + 5000;
    const resend = await ledger.claim('m6', 't2', GRACE, later);
    assert.equal(resend.kind === 'send' ? resend.resend : resend.kind, 'ambiguous');
    assert.equal((await ledger.status('m6'))?.ambiguous, 1);

    await queued('m7');
    await ledger.claim('m7', 't1', GRACE);
    await ledger.markBodyWritten('m7', 't1');
    assert.deepEqual(await ledger.claim('m7', 't2', { graceMs: 1000, policy: 'stop' }, later), {
      kind: 'ended',
      state: 'ambiguous',
    });
    const status = await ledger.status('m7');
    assert.equal(status?.state, 'ambiguous');
    const stats = await ledger.stats();
    assert.equal(stats.ambiguous_resent, 1);
    assert.equal(stats.ambiguous_stopped, 1);
    assert.equal(await ledger.markBodyWritten('m7', 't1'), false, 'fenced after the end');
  });

  it('deferred goes back to queued; released takes the attempt back', async () => {
    await queued('m8');
    await ledger.claim('m8', 't1', GRACE);
    await ledger.recordOutcome('m8', 't1', { outcome: 'deferred', code: 451, enhanced: '4.3.0' });
    let status = await ledger.status('m8');
    assert.equal(status?.state, 'queued');
    assert.equal(status?.attempts, 1);
    await ledger.claim('m8', 't2', GRACE);
    await ledger.recordOutcome('m8', 't2', { outcome: 'released', reason: 'tls_failed' });
    status = await ledger.status('m8');
    assert.equal(status?.state, 'queued');
    assert.equal(status?.attempts, 1, 'a configuration fault spends no attempt');
    assert.deepEqual(
      status?.history.map((h) => [h.outcome, h.code]),
      [['deferred', 451]],
    );
  });

  it('a claim past the deadline ends the message as expired, unsent', async () => {
    await queued('m9', { expiresAt: Date.now() - 1 });
    assert.deepEqual(await ledger.claim('m9', 't1', GRACE), { kind: 'ended', state: 'expired' });
    assert.equal((await ledger.status('m9'))?.reason, 'max_age');
  });

  it('idempotency: same key and content returns the first id; other content is a conflict and writes nothing', async () => {
    const first = await ledger.accept([entry('a1', { idempotencyKeyHash: 'k', contentHash: 'same' })]);
    assert.deepEqual(first, [{ status: 'new', id: 'a1' }]);
    const again = await ledger.accept([entry('a2', { idempotencyKeyHash: 'k', contentHash: 'same' })]);
    assert.deepEqual(again, [{ status: 'duplicate', id: 'a1' }]);
    assert.equal(await ledger.status('a2'), undefined);
    await assert.rejects(
      ledger.accept([entry('a3'), entry('a4', { idempotencyKeyHash: 'k', contentHash: 'other' })]),
      IdempotencyConflictError,
    );
    assert.equal(await ledger.status('a3'), undefined, 'a conflicting batch writes nothing');
  });

  it('finish ends only the states it is allowed to', async () => {
    await queued('f1');
    await queued('f2');
    await ledger.claim('f2', 't', GRACE);
    assert.deepEqual(await ledger.finish(['f1', 'f2', 'nope'], 'cancelled', 'test'), ['f1']);
    assert.equal((await ledger.status('f2'))?.state, 'sending');
  });
});
