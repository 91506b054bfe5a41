#!/usr/bin/env node
// Webhook throughput: events/s from WebhookEmitter.emit through the `webhooks` queue (BullMQ on Redis) and a
// WebhookDispatcher to an HTTP receiver, medians of 3 rounds; and the Redis bytes one queued event costs.
// Compares requests of 100 events (one job per endpoint and batch, the default) with one event per request
// (one job per event).
//   npm run build && node bench/webhooks.mjs [--n 20000] [--rounds 3] [--per-request 100,1]
// Redis is a private redis-server (AOF on, like production). The receiver is a separate Node process on
// 127.0.0.1 that answers 204 at once and counts events (by the Mailroom-Event-Id header), so the figure is
// Mailroom's side: emit, write, queue, sign, POST. Emitter and dispatcher share one process, as in a worker.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import {
  WebhookDispatcher,
  WebhookEmitter,
  createWebhookMetrics,
  createWebhookQueue,
  webhookEndpoint,
} from '@mailroom/webhooks';
import { startRedisServer } from './lib/redis-server.mjs';
import { installSignalCleanup, registerCleanup, runCleanups } from './lib/cleanup.mjs';
import { spread } from './lib/stats.mjs';
import { waitUntil } from './lib/wait-until.mjs';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    'per-request': { type: 'string', default: '100,1' },
    concurrency: { type: 'string', default: '16' },
  },
});
const N = Number(values.n);
const ROUNDS = Number(values.rounds);
const PER_REQUEST = values['per-request'].split(',').map(Number);
const CONCURRENCY = Number(values.concurrency);
if (!Number.isSafeInteger(N) || N < 1 || N > 1_000_000) throw new Error('--n must be 1..1000000');
if (!Number.isSafeInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 20) throw new Error('--rounds must be 1..20');
if (PER_REQUEST.some((p) => !Number.isSafeInteger(p) || p < 1 || p > 500))
  throw new Error('--per-request must list integers 1..500');

const SECRET = 'bench-secret-0123456789abcdef0123456789';
const say = (line) => process.stderr.write(`${line}\n`);

/** A receiver in its own process: 204 to every POST, GET /count answers the events seen so far. */
const RECEIVER = `
const { createServer } = require('node:http');
let events = 0;
const server = createServer((req, res) => {
  if (req.method === 'GET') { res.end(String(events)); return; }
  req.resume();
  req.on('end', () => {
    const ids = req.headers['mailroom-event-id'] || '';
    events += ids === '' ? 0 : ids.split(',').length;
    res.writeHead(204).end();
  });
});
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => console.log('port=' + server.address().port));
process.on('SIGTERM', () => process.exit(0));
`;

async function startReceiver() {
  const child = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const drop = registerCleanup('webhook receiver', () => child.kill('SIGKILL'));
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => (out += chunk));
  const port = await waitUntil(
    () => {
      if (child.exitCode !== null) throw new Error('the receiver exited at start');
      return /port=(\d+)/.exec(out)?.[1];
    },
    { timeoutMs: 10_000, what: 'the receiver to listen' },
  );
  return {
    url: `http://127.0.0.1:${port}`,
    async count() {
      return Number(await (await fetch(`http://127.0.0.1:${port}/count`)).text());
    },
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
      drop();
    },
  };
}

function event(i) {
  return {
    type: i % 10 === 0 ? 'bounced' : 'delivered',
    messageId: `m${i.toString(36).padStart(10, '0')}`,
    messageIdHeader: `<m${i}.1700000000@news.example.com>`,
    campaign: 'spring-2025',
    recipient: `reader.number${i}@example.org`,
    relay: 'primary',
    smtp: { code: 250, enhanced: '2.0.0', response: '250 2.0.0 OK 1700000000 a1b2c3d4e5.123 - gsmtp' },
    attempt: 1,
  };
}

async function usedMemory(redis) {
  const info = await redis.info('memory');
  const field = (name) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_memory') - field('mem_aof_buffer');
}

/** One round: N events emitted at once, timed until the receiver has counted all of them. */
async function round(redisUrl, receiver, perRequest, index) {
  const prefix = `{bench-${perRequest}-${index}}`;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const endpoint = webhookEndpoint({
    name: 'bench',
    url: `${receiver.url}/hook`,
    secret: SECRET,
    maxEventsPerRequest: perRequest,
  });
  const metrics = createWebhookMetrics({ registry: new Registry(), endpoints: ['bench'] });
  const queue = createWebhookQueue(redis, { prefix });
  const emitter = new WebhookEmitter({ queue, endpoints: [endpoint], metrics, maxBufferedEvents: N });
  await queue.waitUntilReady();
  const before = await usedMemory(redis);
  const start = await receiver.count();

  // Redis bytes per queued event: written with no dispatcher running.
  const emitStarted = performance.now();
  for (let i = 0; i < N; i++) emitter.emit(event(i));
  const emitMs = performance.now() - emitStarted;
  await emitter.flush();
  const bytesPerEvent = ((await usedMemory(redis)) - before) / N;

  const dispatcher = new WebhookDispatcher({
    connection: redis,
    prefix,
    endpoints: [endpoint],
    metrics,
    concurrency: CONCURRENCY,
  });
  const started = performance.now();
  await dispatcher.start();
  await waitUntil(async () => (await receiver.count()) - start >= N, {
    timeoutMs: 600_000,
    intervalMs: 10,
    what: `${N} events at the receiver`,
  });
  const deliverSeconds = (performance.now() - started) / 1000;

  // The whole path in one go: emit -> queue -> receiver, with the dispatcher already running.
  const start2 = await receiver.count();
  const flowStarted = performance.now();
  for (let i = 0; i < N; i++) emitter.emit(event(i));
  await waitUntil(async () => (await receiver.count()) - start2 >= N, {
    timeoutMs: 600_000,
    intervalMs: 10,
    what: `${N} events at the receiver`,
  });
  const flowSeconds = (performance.now() - flowStarted) / 1000;

  await emitter.close();
  await dispatcher.close();
  await queue.obliterate({ force: true });
  await queue.close();
  redis.disconnect();
  if (emitter.stats().dropped !== 0) throw new Error(`${emitter.stats().dropped} events dropped`);
  return {
    emitMicros: (emitMs * 1000) / N,
    bytesPerEvent,
    deliverPerSecond: N / deliverSeconds,
    flowPerSecond: N / flowSeconds,
  };
}

installSignalCleanup();
const server = await startRedisServer({ name: 'redis-server (webhooks bench)' });
let receiver;
try {
  receiver = await startReceiver();
  say(
    `webhooks bench: N=${N}, ${ROUNDS} rounds, dispatcher concurrency ${CONCURRENCY}, node ${process.version}`,
  );
  const rows = [];
  for (const perRequest of PER_REQUEST) {
    const results = [];
    for (let r = 0; r < ROUNDS; r++) {
      const result = await round(server.url, receiver, perRequest, r);
      say(
        `  ${perRequest}/request round ${r + 1}: emit ${result.emitMicros.toFixed(2)} us/event, ` +
          `${result.bytesPerEvent.toFixed(0)} B/event in Redis, queued->receiver ${result.deliverPerSecond.toFixed(0)} ev/s, ` +
          `emit->receiver ${result.flowPerSecond.toFixed(0)} ev/s`,
      );
      results.push(result);
    }
    const median = (key) => spread(results.map((x) => x[key]))?.median ?? NaN;
    rows.push({
      perRequest,
      emitMicros: median('emitMicros'),
      bytesPerEvent: median('bytesPerEvent'),
      deliverPerSecond: median('deliverPerSecond'),
      flowPerSecond: median('flowPerSecond'),
    });
  }
  console.log(
    '| events per request | emit() us/event | Redis bytes/event (queued) | queued -> receiver ev/s | emit -> receiver ev/s |',
  );
  console.log('|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.perRequest} | ${r.emitMicros.toFixed(2)} | ${r.bytesPerEvent.toFixed(0)} | ${r.deliverPerSecond.toFixed(0)} | ${r.flowPerSecond.toFixed(0)} |`,
    );
  }
  console.log(`(medians of ${ROUNDS} rounds, N=${N} events per round)`);
} finally {
  await receiver?.stop();
  await server.stop();
  await runCleanups();
}
