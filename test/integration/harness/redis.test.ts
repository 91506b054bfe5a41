import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { RedisServerError, sendRedisCommands, startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';

/** One field of `INFO <section>`. */
async function info(redis: RedisServer, section: string, field: string): Promise<string | undefined> {
  const [text] = await sendRedisCommands(redis.port, [['INFO', section]]);
  return new RegExp(`^${field}:(.*)\\r?$`, 'm').exec(String(text))?.[1];
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

void describe('startRedis', { timeout: 60_000 }, () => {
  let baseline: string[];
  let redis: RedisServer;

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis({ maxmemory: '64mb' });
  });

  after(async () => {
    // Idempotent: the last test has stopped it already.
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  void it('runs on 127.0.0.1 from its own directory with the requested configuration', async () => {
    assert.equal(redis.host, '127.0.0.1');
    assert.equal(redis.url, `redis://127.0.0.1:${redis.port}`);
    assert.ok(redis.running);
    assert.equal(typeof redis.pid, 'number');
    assert.equal(Number(await info(redis, 'server', 'process_id')), redis.pid);
    const config = await sendRedisCommands(redis.port, [
      ['CONFIG', 'GET', 'dir'],
      ['CONFIG', 'GET', 'bind'],
      ['CONFIG', 'GET', 'appendonly'],
      ['CONFIG', 'GET', 'appendfsync'],
      ['CONFIG', 'GET', 'maxmemory-policy'],
      ['CONFIG', 'GET', 'maxmemory'],
      ['CONFIG', 'GET', 'save'],
    ]);
    assert.deepEqual(config, [
      ['dir', redis.dir],
      ['bind', '127.0.0.1'],
      ['appendonly', 'yes'],
      ['appendfsync', 'everysec'],
      ['maxmemory-policy', 'noeviction'],
      ['maxmemory', String(64 * 1024 * 1024)],
      ['save', ''],
    ]);
    assert.ok(existsSync(`${redis.dir}/redis.log`));
  });

  void it('answers SET and GET through a tracked ioredis client', async () => {
    const client = redis.client();
    assert.equal(await client.set('greeting', 'hello'), 'OK');
    assert.equal(await client.get('greeting'), 'hello');
    await client.quit();
  });

  void it('keeps the writes made before a SIGKILL across restart() on the same port and directory', async () => {
    const client = redis.client();
    const values = Array.from({ length: 200 }, (_, i) => `value-${i}`);
    await client.rpush('kept', ...values);
    // everysec: the AOF write() happens before the reply, the fsync within a second. Wait for both, so the
    // test does not depend on the kernel keeping unsynced pages (it does when only the process dies).
    await waitFor(
      async () =>
        (await info(redis, 'persistence', 'aof_buffer_length')) === '0' &&
        (await info(redis, 'persistence', 'aof_pending_bio_fsync')) === '0',
      { what: 'the AOF to be written and synced' },
    );
    const { port, dir } = redis;
    const firstPid = redis.pid;

    await redis.kill();
    assert.equal(redis.running, false);
    assert.equal(redis.pid, undefined);
    assert.ok(await refusesConnections(port), 'nothing listens after the kill');
    assert.ok(readdirSync(`${dir}/appendonlydir`).length > 0, 'the AOF survives the kill');

    await redis.restart();
    assert.ok(redis.running);
    assert.notEqual(redis.pid, firstPid);
    assert.equal(redis.port, port);
    assert.equal(redis.dir, dir);
    // The same client reconnects by itself and sees the data replayed from the AOF.
    assert.deepEqual(await client.lrange('kept', 0, -1), values);
    await client.quit();
  });

  void it('pause() holds every client for about the pause', async () => {
    const client = redis.client();
    await client.ping();
    const started = performance.now();
    await redis.pause(300);
    assert.equal(await client.get('greeting'), 'hello');
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 290, `a command sent during the pause took ${elapsed.toFixed(0)}ms`);
    await client.quit();
  });

  void it('assertNoRedisClients names a client left open, and passes once it is closed', async () => {
    const forgotten = redis.client();
    await forgotten.ping();
    await assert.rejects(assertNoRedisClients(redis, { timeoutMs: 200 }), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.equal((err as Error & { code?: string }).code, 'ERR_REDIS_CLIENT_LEAK');
      assert.match(err.message, /mailroom-test-\d+/);
      return true;
    });
    await assertNoRedisClients(redis, { allow: 1, timeoutMs: 200 });
    await forgotten.quit();
    await assertNoRedisClients(redis);
  });

  void it('restart() retries its own port while another process holds it', async () => {
    const { port } = redis;
    await redis.kill();
    // It hangs up on whoever connects (our start-up probes included), so that it can close at once.
    const squatter = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      squatter.once('error', reject);
      squatter.listen({ host: '127.0.0.1', port }, resolve);
    });
    const restarted = redis.restart();
    try {
      await waitFor(
        async () => /address already in use/i.test(await readFile(`${redis.dir}/redis.log`, 'utf8')),
        { what: 'a start to fail on the taken port' },
      );
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
    await restarted;
    assert.equal(redis.port, port);
    assert.equal(Number(await info(redis, 'server', 'process_id')), redis.pid);
  });

  void it('stop() closes the tracked clients, ends the process and removes the directory, once', async () => {
    const open = redis.client();
    await open.ping();
    const { port, dir } = redis;
    await Promise.all([redis.stop(), redis.stop()]);
    assert.equal(open.status, 'end');
    assert.equal(redis.running, false);
    assert.equal(existsSync(dir), false);
    assert.ok(await refusesConnections(port));
    await redis.stop();
    await assert.rejects(redis.restart(), { code: 'ERR_REDIS_STOPPED' });
    assert.throws(() => redis.client(), RedisServerError);
  });
});

void describe('startRedis failures', { timeout: 60_000 }, () => {
  void it('rejects with the log tail when redis-server dies, and leaves no directory behind', async () => {
    await assert.rejects(startRedis({ extraArgs: ['--no-such-directive', 'x'] }), (err: unknown) => {
      assert.ok(err instanceof RedisServerError);
      assert.equal(err.code, 'ERR_REDIS_START');
      assert.match(err.message, /no-such-directive/);
      const dir = /--- (\S+)\/redis\.log/.exec(err.message)?.[1];
      assert.ok(dir !== undefined, 'the message names the directory');
      assert.equal(existsSync(dir), false);
      return true;
    });
  });
});
