import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '@mailroom/sink';
import { freePort } from '../../harness/ports.js';
import { killAllChildren, spawnNode } from '../../harness/processes.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { message, testClient, workerEnv } from '../fixtures.js';

const BIN = fileURLToPath(new URL('../../../../apps/cli/bin/mailroom.js', import.meta.url));

describe('mailroom worker (the process)', () => {
  let redis: RedisServer;
  let sink: Sink;

  before(async () => {
    redis = await startRedis();
    sink = await startSink({});
  });

  after(async () => {
    await killAllChildren();
    await sink.close();
    await redis.stop();
  });

  it('prints every configuration problem as MAILROOM_X: reason and exits 1', async () => {
    const child = spawnNode(BIN, ['worker'], {
      env: { PATH: process.env.PATH, MAILROOM_SMTP_PORT: 'twenty-five', MAILROOM_SMTP_TLS: 'off' },
    });
    const exit = await child.exited;
    assert.equal(exit.code, 1);
    const lines = child.output().trim().split('\n');
    assert.ok(
      lines.includes('MAILROOM_SMTP_HOST: is required (or set MAILROOM_RELAYS_FILE)'),
      child.output(),
    );
    assert.ok(
      lines.some((l) => l.startsWith('MAILROOM_SMTP_PORT: ')),
      child.output(),
    );
    assert.ok(
      lines.some((l) => l.startsWith('MAILROOM_SMTP_TLS: must be one of starttls, tls, none')),
      child.output(),
    );
  });

  it('serves /healthz, /readyz and /metrics (behind its token) and delivers', async () => {
    const port = await freePort();
    const token = 'metrics-token-for-tests-0123456789';
    const child = spawnNode(BIN, ['worker'], {
      env: {
        ...process.env,
        ...workerEnv(redis, sink, {
          MAILROOM_HTTP_PORT: String(port),
          MAILROOM_METRICS_TOKEN: token,
          MAILROOM_LOG_LEVEL: 'info',
        }),
      },
    });
    await child.waitForOutput(/worker started/, 15_000);
    const base = `http://127.0.0.1:${port}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.equal((await fetch(`${base}/metrics`)).status, 401, 'metrics need the token');
    assert.equal(
      (await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer wrong-token-wrong-token-00' } }))
        .status,
      401,
    );

    const client = testClient(redis);
    try {
      const receipt = await client.send(message('ok-judy@example.test'));
      await waitFor(() => sink.messages.some((m) => m.messageId === receipt.messageId), { what: 'delivery' });
    } finally {
      await client.close();
    }
    await waitFor(
      async () => {
        const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } });
        const text = await res.text();
        return /mailroom_messages_terminal_total\{outcome="delivered",domain="other"\} 1/.test(text);
      },
      { what: 'the delivered counter in /metrics' },
    );
    const text = await (
      await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } })
    ).text();
    assert.match(text, /mailroom_build_info\{version="[^"]+",node_version="[^"]+"\} 1/);
    assert.match(text, /mailroom_smtp_send_duration_seconds_bucket/);
    assert.match(text, /process_cpu_seconds_total/);
    assert.ok(!text.includes('@'), 'no address in any metric label');

    child.kill('SIGTERM');
    const exit = await child.exited;
    assert.equal(exit.code, 0);
    assert.ok(!child.output().includes('judy@'), 'no recipient address in info logs');
  });

  it('reports not ready while the relay is unreachable', async () => {
    const port = await freePort();
    const closedPort = await freePort();
    const child = spawnNode(BIN, ['worker'], {
      env: {
        ...process.env,
        ...workerEnv(redis, sink, {
          MAILROOM_HTTP_PORT: String(port),
          MAILROOM_SMTP_PORT: String(closedPort),
          MAILROOM_LOG_LEVEL: 'info',
        }),
      },
    });
    await child.waitForOutput(/worker started/, 15_000);
    assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 503);
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    child.kill('SIGTERM');
    assert.equal((await child.exited).code, 0);
  });
});
