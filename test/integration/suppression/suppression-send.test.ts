import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { ValidationError } from '@mailroom/core';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { jobReader, message, testClient } from '../fixtures.js';

/** The fixtures' sender is sender@mailroom.example: its suppression scope is its domain. */
const SENDER_SCOPE = 'mailroom.example';

describe('sending to suppressed addresses: recorded as suppressed, never queued', () => {
  let redis: RedisServer;
  let client: ReturnType<typeof testClient>;
  let conn: Redis;
  let jobs: ReturnType<typeof jobReader>;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    client = testClient(redis);
    conn = redis.client();
    jobs = jobReader(conn);
  });

  beforeEach(async () => {
    await conn.flushdb();
  });

  after(async () => {
    await client.close();
    await jobs.queue.close();
    conn.disconnect();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  /** Jobs in the queue in any state a worker could still take. */
  async function jobCount(): Promise<number> {
    const counts = await jobs.queue.getJobCounts(
      'waiting',
      'prioritized',
      'delayed',
      'active',
      'waiting-children',
    );
    return Object.values(counts).reduce((a, b) => a + b, 0);
  }

  it('a send to an address in the sender scope ends suppressed at once, with the reason, and no job', async () => {
    await client.suppressions.add(SENDER_SCOPE, [
      { address: 'Ada@Example.test', reason: 'unsubscribe', source: 'list:weekly' },
    ]);
    const receipt = await client.send(message('ada@EXAMPLE.test'));
    assert.equal(receipt.status, 'suppressed');
    assert.equal(receipt.duplicate, false);
    assert.deepEqual(receipt.suppression, { reason: 'unsubscribe', scope: SENDER_SCOPE });
    assert.match(receipt.messageId, /^<.+@mailroom\.example>$/);

    const status = await client.status(receipt.id);
    assert.equal(status.state, 'suppressed');
    assert.equal(status.reason, 'unsubscribe');
    assert.equal(status.attempts, 0);
    assert.ok(status.terminalAt !== undefined);
    assert.deepEqual(
      status.history.map((h) => [h.outcome, h.reason]),
      [['suppressed', 'unsubscribe']],
    );

    assert.equal(await jobs.job(receipt.id), undefined, 'no BullMQ job');
    assert.equal(await jobCount(), 0);
    assert.equal(await conn.hget(jobs.ledger.key(receipt.id), 'data'), null, 'the payload was dropped');
    assert.equal(await conn.zscore('{mailroom}:deadline', receipt.id), null, 'nothing left to expire');
    const stats = await jobs.ledger.stats();
    assert.equal(stats.accepted, 1);
    assert.equal(stats.suppressed, 1);
    assert.equal(stats.queued ?? 0, 0);
  });

  it('a batch mixes queued and suppressed messages (sender scope and "*"), counts exact', async () => {
    await client.suppressions.add(SENDER_SCOPE, [{ address: 'ada@example.test', reason: 'hard_bounce' }]);
    await client.suppressions.add('*', [{ address: 'bob@example.test', reason: 'complaint' }]);
    const receipts = await client.sendMany([
      message('bob@example.test'),
      message('carol@example.test'),
      message('ada@example.test'),
      message('ada@example.test', { from: 'Other <news@other.example>' }),
      message('bob@example.test', { from: 'Other <news@other.example>' }),
    ]);
    assert.deepEqual(
      receipts.map((r) => [r.status, r.suppression?.scope, r.suppression?.reason]),
      [
        ['suppressed', '*', 'complaint'],
        ['queued', undefined, undefined],
        ['suppressed', SENDER_SCOPE, 'hard_bounce'],
        ['queued', undefined, undefined],
        ['suppressed', '*', 'complaint'],
      ],
    );
    const states = await Promise.all(receipts.map(async (r) => (await client.status(r.id)).state));
    assert.deepEqual(states, ['suppressed', 'queued', 'suppressed', 'queued', 'suppressed']);
    assert.equal(await jobCount(), 2);
    for (const r of receipts) {
      assert.equal((await jobs.job(r.id)) !== undefined, r.status === 'queued', `job of ${r.id}`);
    }
    const stats = await jobs.ledger.stats();
    assert.deepEqual([stats.accepted, stats.queued, stats.suppressed], [5, 2, 3]);
  });

  it('1,500 messages, every third suppressed: 500 suppressed, 1,000 jobs', async () => {
    const suppressed = Array.from({ length: 500 }, (_, i) => `reader.${i * 3}@example.test`);
    await client.suppressions.add(
      SENDER_SCOPE,
      suppressed.map((address) => ({ address, reason: 'unsubscribe' }) as const),
    );
    const receipts = await client.sendMany(
      Array.from({ length: 1500 }, (_, i) => message(`reader.${i}@example.test`)),
    );
    assert.equal(receipts.filter((r) => r.status === 'suppressed').length, 500);
    receipts.forEach((r, i) => assert.equal(r.status, i % 3 === 0 ? 'suppressed' : 'queued', `message ${i}`));
    assert.equal(await jobCount(), 1000);
    const stats = await jobs.ledger.stats();
    assert.deepEqual([stats.accepted, stats.queued, stats.suppressed], [1500, 1000, 500]);
  });

  it('an idempotent retry of a suppressed send returns the first message; removal lets mail through again', async () => {
    await client.suppressions.add(SENDER_SCOPE, [{ address: 'dan@example.test', reason: 'manual' }]);
    const first = await client.send(message('dan@example.test'), { idempotencyKey: 'welcome-dan' });
    const again = await client.send(message('dan@example.test'), { idempotencyKey: 'welcome-dan' });
    assert.equal(first.status, 'suppressed');
    assert.equal(again.status, 'duplicate');
    assert.equal(again.duplicate, true);
    assert.equal(again.id, first.id);
    assert.equal(await jobCount(), 0);

    assert.equal(await client.suppressions.remove(SENDER_SCOPE, ['DAN@example.test']), 1);
    const later = await client.send(message('dan@example.test'));
    assert.equal(later.status, 'queued');
    assert.equal((await client.status(later.id)).state, 'queued');
    assert.equal(await jobCount(), 1);
  });

  it('the SDK surface: list, count, check, get, export, import; bad input is a ValidationError', async () => {
    const s = client.suppressions;
    assert.equal(
      await s.add(SENDER_SCOPE, [
        { address: 'e1@example.test', reason: 'unsubscribe' },
        { address: 'e2@example.test', reason: 'complaint' },
      ]),
      2,
    );
    const imported = await s.import(SENDER_SCOPE, ['e3@example.test', 'e4@example.test'], {
      reason: 'manual',
    });
    assert.equal(imported.added, 2);
    assert.equal(await s.count(SENDER_SCOPE), 4);
    const page = await s.list(SENDER_SCOPE, { count: 3 });
    assert.equal(page.entries.length, 3);
    assert.ok(page.cursor !== undefined);
    const rest = await s.list(SENDER_SCOPE, { count: 3, cursor: page.cursor });
    assert.equal(rest.entries.length, 1);
    assert.equal(rest.cursor, undefined);
    const exported: string[] = [];
    for await (const e of s.export(SENDER_SCOPE)) exported.push(e.address);
    assert.deepEqual(exported.sort(), [
      'e1@example.test',
      'e2@example.test',
      'e3@example.test',
      'e4@example.test',
    ]);
    assert.equal((await s.get(SENDER_SCOPE, 'e2@example.test'))?.reason, 'complaint');
    assert.deepEqual(
      [...(await s.check(SENDER_SCOPE, ['e1@example.test', 'x@example.test'])).keys()],
      ['e1@example.test'],
    );
    assert.equal((await s.checkEach([{ scope: 'x.example', address: 'e1@example.test' }]))[0], undefined);
    await assert.rejects(
      s.add('*.example', [{ address: 'a@example.test', reason: 'manual' }]),
      ValidationError,
    );
    await assert.rejects(s.check(SENDER_SCOPE, ['nope']), ValidationError);
  });
});
