#!/usr/bin/env node
// Profiles one worker process draining N queued messages into the local sink.
//   node --cpu-prof --cpu-prof-dir=bench/results bench/profile-worker.mjs [count]
// The sink and the producer run in a child process so the profile shows the worker alone.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MailroomClient } from '@mailroom/client';
import { demoMessage, demoReader, ensureRedisServer, startLocalRedis } from '@mailroom/cli';
import { createLogger, loadWorkerConfig, startWorkerService } from '@mailroom/worker';

const count = Number(process.argv[2] ?? 5000);
if (process.argv[3] === '--sink') {
  const { startSink } = await import('@mailroom/sink');
  const sink = await startSink({});
  process.send({ port: sink.port });
  process.on('message', async (m) => {
    if (m === 'count') process.send({ count: sink.messages.length });
    if (m === 'stop') {
      await sink.close();
      process.exit(0);
    }
  });
} else {
  const found = ensureRedisServer(console.log);
  if (!('path' in found)) throw new Error(found.instruction);
  const redis = await startLocalRedis(found.path);
  const child = fork(fileURLToPath(import.meta.url), [String(count), '--sink']);
  const { port } = await new Promise((r) => child.once('message', r));
  const client = new MailroomClient({ redis: redis.url });
  await client.ready();
  for (let i = 0; i < count; i += 1000) {
    await client.sendMany(
      Array.from({ length: Math.min(1000, count - i) }, (_, j) => demoMessage(demoReader(i + j))),
    );
  }
  await client.close();
  const config = loadWorkerConfig({
    MAILROOM_REDIS_URL: redis.url,
    MAILROOM_SMTP_HOST: '127.0.0.1',
    MAILROOM_SMTP_PORT: String(port),
    MAILROOM_SMTP_TLS: 'none',
    MAILROOM_SMTP_MAX_CONNECTIONS: '10',
    MAILROOM_WORKER_CONCURRENCY: '100',
    MAILROOM_HTTP_PORT: '-1',
    MAILROOM_LOG_LEVEL: 'warn',
  });
  const started = performance.now();
  const worker = await startWorkerService(config, { logger: createLogger('warn') });
  for (;;) {
    child.send('count');
    const { count: got } = await new Promise((r) => child.once('message', r));
    if (got >= count) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `${count} messages in ${seconds.toFixed(2)} s: ${Math.round(count / seconds)} msgs/s (1 worker process)`,
  );
  await worker.close();
  child.send('stop');
  await redis.stop();
}
