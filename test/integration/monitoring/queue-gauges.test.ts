import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Registry } from '@mailroom/metrics';
import { Ledger, createMailQueue, type MailQueue } from '@mailroom/queue';
import type { Redis } from 'ioredis';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { memoryLogger, message, testClient } from '../fixtures.js';
import type * as QueueGaugesModule from '../../../apps/worker/src/queue-gauges.js';

// The role's module, compiled; `@mailroom/worker` exports it once the worker wires the role in.
const { startQueueGauges } = (await import(
  new URL('../../../../apps/worker/dist/queue-gauges.js', import.meta.url).href
)) as typeof QueueGaugesModule;

const PREFIX = '{mailroom}';
const GRACE_MS = 1000;

/** The gauge samples of the registry, `name{labels}` -> value. */
async function gauges(registry: Registry): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await registry.metrics()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

const jobs = (state: string) => `mailroom_queue_jobs{queue="mail",state="${state}"}`;
const age = (state: string) => `mailroom_queue_oldest_job_age_seconds{queue="mail",state="${state}"}`;

describe('queue gauges (the queue-gauge role, against a real Redis)', () => {
  let baseline: string[];
  let redis: RedisServer;
  let conn: Redis;
  let queue: MailQueue;
  let ledger: Ledger;

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    // The worker's connection settings: a command waits for Redis to come back instead of failing.
    conn = redis.client({ maxRetriesPerRequest: null });
    // Reconnect attempts while Redis is down (the last test) report errors; the client retries them itself.
    conn.on('error', () => undefined);
    queue = createMailQueue(conn, { prefix: PREFIX });
    queue.on('error', () => undefined);
    ledger = new Ledger(conn, { prefix: PREFIX });
  });

  after(async () => {
    await queue.close();
    conn.disconnect();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  it('reads counts by state, the age of the job next in line, the paused flag and overdue messages', async () => {
    const registry = new Registry();
    const role = startQueueGauges({
      registry,
      redis: conn,
      queues: [queue],
      ledger,
      overdueGraceMs: GRACE_MS,
    });
    try {
      await role.refresh();
      let g = await gauges(registry);
      for (const state of ['waiting', 'prioritized', 'delayed', 'active', 'failed'])
        assert.equal(g.get(jobs(state)), 0);
      for (const state of ['waiting', 'prioritized', 'delayed']) assert.equal(g.get(age(state)), 0);
      assert.equal(g.get('mailroom_messages_overdue'), 0);
      assert.equal(g.get('mailroom_queue_paused{queue="mail"}'), 0);

      await queue.pause();
      await queue.add('send', { id: 'a' }, { jobId: 'a' });
      await queue.add('send', { id: 'b' }, { jobId: 'b' });
      await queue.add('send', { id: 'c' }, { jobId: 'c' });
      await queue.add('send-batch', { ids: ['d1', 'd2'], campaign: 'spring' }, { jobId: 'd', priority: 10 });
      await queue.add('send', { id: 'e' }, { jobId: 'e', delay: 60_000 });
      const timestamp = async (id: string) => (await queue.getJob(id))!.timestamp;
      const [a, b, d, e] = [
        await timestamp('a'),
        await timestamp('b'),
        await timestamp('d'),
        await timestamp('e'),
      ];

      const now = Math.max(a, d) + 30_000;
      await role.refresh(now);
      g = await gauges(registry);
      assert.equal(g.get(jobs('waiting')), 3);
      assert.equal(g.get(jobs('prioritized')), 1);
      assert.equal(g.get(jobs('delayed')), 1);
      assert.equal(g.get('mailroom_queue_paused{queue="mail"}'), 1);
      assert.equal(g.get(age('waiting')), (now - a) / 1000, 'the first job in is next in line');
      assert.equal(g.get(age('prioritized')), (now - d) / 1000);
      assert.equal(g.get(age('delayed')), 0, 'its delay has not run out');
      assert.equal(g.get('mailroom_queue_gauges_last_success_timestamp_seconds'), now / 1000);

      // Its delay ran out 5 s ago and no worker took it.
      await role.refresh(e + 65_000);
      assert.equal((await gauges(registry)).get(age('delayed')), 5);

      // A job that was attempted already: BullMQ keeps no "ready since", so the next never-attempted job
      // tells the age; when every job was attempted, the head's last attempt is the bound.
      await conn.hset(queue.toKey('a'), 'processedOn', String(now - 1000));
      await role.refresh(now);
      assert.equal((await gauges(registry)).get(age('waiting')), (now - b) / 1000);
      for (const id of ['b', 'c']) await conn.hset(queue.toKey(id), 'processedOn', String(now - 2000));
      await role.refresh(now);
      assert.equal((await gauges(registry)).get(age('waiting')), 1);

      // Overdue: a message past its deadline (plus the grace) without a terminal state.
      const client = testClient(redis, { maxAgeMs: 60_000 });
      try {
        const receipt = await client.send(message('ok-overdue@example.test'));
        const status = await ledger.status(receipt.id);
        assert.ok(status);
        await role.refresh(status.expiresAt + GRACE_MS - 1);
        assert.equal((await gauges(registry)).get('mailroom_messages_overdue'), 0, 'within the grace');
        await role.refresh(status.expiresAt + GRACE_MS + 1);
        assert.equal((await gauges(registry)).get('mailroom_messages_overdue'), 1);
      } finally {
        await client.close();
      }
    } finally {
      await role.stop();
      await queue.resume();
      await queue.obliterate({ force: true });
      await conn.del(`${PREFIX}:deadline`);
    }
  });

  it('keeps the last values when a read fails, says so once, and reads again once it can', async () => {
    const registry = new Registry();
    const { logger, lines } = memoryLogger('info');
    const role = startQueueGauges({
      registry,
      redis: conn,
      queues: [queue],
      ledger,
      overdueGraceMs: GRACE_MS,
      intervalMs: 20,
      logger,
    });
    const lastRead = async () =>
      (await gauges(registry)).get('mailroom_queue_gauges_last_success_timestamp_seconds') ?? 0;
    try {
      await queue.add('send', { id: 'x' }, { jobId: 'x' });
      await waitFor(async () => (await gauges(registry)).get(jobs('waiting')) === 1, {
        what: 'the timer to read the queue',
      });
      // Redis answers, but with an error (WRONGTYPE) for every read of this queue.
      await conn.rename(queue.toKey('wait'), 'parked-wait-list');
      await conn.set(queue.toKey('wait'), 'not a list');
      await waitFor(() => lines().includes('queue gauges not read'), { what: 'the failure to be logged' });
      const frozen = await lastRead();
      const failedTicks = async () => {
        const before = await conn.info('commandstats');
        return /cmdstat_lrange:calls=(\d+)/.exec(before)?.[1];
      };
      const calls = Number(await failedTicks());
      await waitFor(async () => Number(await failedTicks()) >= calls + 5, { what: 'five more failed reads' });
      assert.equal((await gauges(registry)).get(jobs('waiting')), 1, 'the last value stays');
      assert.equal(await lastRead(), frozen, 'and says how old it is');
      assert.equal(lines().split('queue gauges not read').length - 1, 1, 'logged once per outage');

      await conn.del(queue.toKey('wait'));
      await conn.rename('parked-wait-list', queue.toKey('wait'));
      await waitFor(async () => (await lastRead()) > frozen, { what: 'a read after the repair' });
      assert.ok(lines().includes('queue gauges read again'));
    } finally {
      await role.stop();
      await queue.obliterate({ force: true });
    }
  });

  it('stops while Redis is down, without waiting for the read that hangs', async () => {
    const registry = new Registry();
    const role = startQueueGauges({
      registry,
      redis: conn,
      queues: [queue],
      ledger,
      overdueGraceMs: GRACE_MS,
      intervalMs: 20,
    });
    const lastRead = async () =>
      (await gauges(registry)).get('mailroom_queue_gauges_last_success_timestamp_seconds') ?? 0;
    await waitFor(async () => (await lastRead()) > 0, { what: 'a first read' });
    await redis.kill('SIGKILL');
    // With the worker's connection settings a command waits for Redis to come back, so a read started now
    // hangs. Half a second without a read at a 20 ms interval means one is hanging.
    await waitFor(async () => Date.now() / 1000 - (await lastRead()) > 0.5, { what: 'a hanging read' });
    await role.stop(100);
    assert.equal(redis.running, false, 'stop() returned while Redis was still down');
    await redis.restart();
    await waitFor(async () => (await conn.ping()) === 'PONG', { timeoutMs: 15_000, what: 'the reconnect' });
  });
});
