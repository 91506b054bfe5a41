import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MailroomClient } from '@mailroom/client';
import { isTerminalState } from '@mailroom/core';
import type { RedisConnectionSpec } from '@mailroom/queue';
import { startSink, type Sink } from '@mailroom/sink';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { freePort } from '../../harness/ports.js';
import { orphanSafeCommand, spawnNode, type ChildProcessHandle } from '../../harness/processes.js';
import { sendRedisCommands, startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { message } from '../fixtures.js';
import { BIN } from './cluster-fixtures.js';

const MASTER_NAME = 'mailroom-master';

/** One Sentinel process on loopback watching `master`, in its own directory (it rewrites its config). */
async function startSentinel(master: RedisServer): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'mailroom-sentinel-'));
  const port = await freePort();
  const config = join(dir, 'sentinel.conf');
  await writeFile(
    config,
    [
      `bind 127.0.0.1`,
      `port ${port}`,
      `dir ${dir}`,
      `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${master.port} 1`,
      `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
      `sentinel failover-timeout ${MASTER_NAME} 5000`,
      '',
    ].join('\n'),
  );
  const { command, args } = orphanSafeCommand('/usr/bin/redis-server', [config, '--sentinel']);
  const child: ChildProcess = spawn(command, args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(async () => (await sendRedisCommands(port, [['PING']], { timeoutMs: 500 }))[0] === 'PONG', {
    timeoutMs: 15_000,
    what: 'the sentinel to answer',
  });
  return {
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe('Redis Sentinel: MAILROOM_REDIS_SENTINELS, and a failover the worker and producer follow', () => {
  let master: RedisServer;
  let replica: RedisServer;
  let sentinel: Awaited<ReturnType<typeof startSentinel>>;
  let sink: Sink;
  let worker: ChildProcessHandle;
  let client: MailroomClient;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    master = await startRedis();
    replica = await startRedis({ extraArgs: ['--replicaof', '127.0.0.1', String(master.port)] });
    await waitFor(
      async () =>
        String((await sendRedisCommands(replica.port, [['INFO', 'replication']]))[0]).includes(
          'master_link_status:up',
        ),
      { timeoutMs: 15_000, what: 'the replica to sync' },
    );
    sentinel = await startSentinel(master);
    // The Sentinel learns of the replica from the master's INFO (every 10 s at first): wait for it, or a
    // failover would have nothing to promote.
    await waitFor(
      async () =>
        String((await sendRedisCommands(sentinel.port, [['SENTINEL', 'REPLICAS', MASTER_NAME]]))[0]).includes(
          String(replica.port),
        ),
      { timeoutMs: 30_000, intervalMs: 200, what: 'the sentinel to know the replica' },
    );
    sink = await startSink({});
    worker = spawnNode(BIN, ['worker'], {
      env: {
        PATH: process.env.PATH,
        MAILROOM_REDIS_SENTINELS: `127.0.0.1:${sentinel.port}`,
        MAILROOM_REDIS_SENTINEL_NAME: MASTER_NAME,
        MAILROOM_SMTP_HOST: '127.0.0.1',
        MAILROOM_SMTP_PORT: String(sink.port),
        MAILROOM_SMTP_TLS: 'none',
        MAILROOM_LOCK_DURATION_MS: '4000',
        MAILROOM_STALLED_INTERVAL_MS: '2000',
        MAILROOM_RETRY_BASE_MS: '100',
        MAILROOM_RETRY_MAX_MS: '500',
        MAILROOM_RECONCILE_INTERVAL_MS: '1000',
        MAILROOM_HTTP_PORT: '-1',
        MAILROOM_LOG_LEVEL: 'info',
      },
    });
    await worker.waitForOutput(/worker started/, 30_000);
    const spec: RedisConnectionSpec = {
      kind: 'sentinel',
      sentinels: [{ host: '127.0.0.1', port: sentinel.port }],
      name: MASTER_NAME,
      tls: false,
    };
    client = new MailroomClient({ redis: spec });
    await client.ready();
  });

  after(async () => {
    worker.kill('SIGTERM');
    await worker.exited;
    await client.close();
    await sink.close();
    await sentinel.stop();
    await assertNoRedisClients(replica);
    await replica.stop();
    await master.stop();
    await assertNoResourceLeaks(baseline);
  });

  async function delivered(ids: readonly string[]): Promise<void> {
    const done = new Set<string>();
    await waitFor(
      async () => {
        for (const id of ids) {
          if (done.has(id)) continue;
          const status = await client.status(id);
          if (isTerminalState(status.state)) {
            assert.equal(status.state, 'delivered', `${id}`);
            done.add(id);
          }
        }
        return done.size === ids.length;
      },
      { timeoutMs: 60_000, intervalMs: 250, what: `${ids.length} deliveries` },
    );
  }

  it('a worker configured with the Sentinel delivers', async () => {
    const receipts = await client.sendMany(
      Array.from({ length: 100 }, (_, i) => message(`ok-sentinel${i}@example.test`)),
    );
    await delivered(receipts.map((r) => r.id));
    assert.equal(sink.messages.length, 100);
  });

  it('after the master dies the Sentinel promotes the replica; the worker and the producer follow it', async () => {
    sink.reset();
    await master.kill('SIGKILL');
    await waitFor(
      async () => {
        const [addr] = await sendRedisCommands(sentinel.port, [
          ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME],
        ]);
        return Array.isArray(addr) && addr[1] === String(replica.port);
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'the sentinel to promote the replica' },
    );
    // The producer fails fast while there is no master; once there is one, sends go through again.
    let receipts: Awaited<ReturnType<MailroomClient['sendMany']>> = [];
    await waitFor(
      async () => {
        try {
          receipts = await client.sendMany(
            Array.from({ length: 50 }, (_, i) => message(`ok-after${i}@example.test`)),
            { idempotencyKeys: Array.from({ length: 50 }, (_, i) => `after-failover-${i}`) },
          );
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'a send to the new master' },
    );
    await delivered(receipts.map((r) => r.id));
    const copies = new Set(sink.messages.map((m) => m.messageId));
    for (const r of receipts) assert.ok(copies.has(r.messageId), `${r.id} delivered by the worker`);
    const [role] = await sendRedisCommands(replica.port, [['ROLE']]);
    assert.equal(Array.isArray(role) ? role[0] : role, 'master', 'the old replica is the master now');
  });
});
