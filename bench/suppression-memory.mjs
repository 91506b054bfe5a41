#!/usr/bin/env node
// Memory one suppression list costs in Redis: fills a scope with N addresses through SuppressionStore and
// reports INFO memory's used_memory growth per entry, beside the same entries in one plain Redis hash (the
// obvious layout) for comparison.
//   npm run build && node bench/suppression-memory.mjs [--n 100000] [--compare]
// Each run uses a private redis-server (AOF on, like production); the AOF buffer is left out of the figure.
// Addresses look like a newsletter list's: first.last + digits at a few dozen domains, 20-35 characters;
// every entry carries a reason and a time, one in four a short source. Also times the send path's check of
// 1000 addresses.
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { SuppressionStore } from '@mailroom/queue';
import { startRedisServer } from './lib/redis-server.mjs';
import { installSignalCleanup, runCleanups } from './lib/cleanup.mjs';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '100000' },
    compare: { type: 'boolean', default: false },
  },
});
const N = Number(values.n);
if (!Number.isSafeInteger(N) || N <= 0 || N > 10_000_000)
  throw new Error('--n must be an integer 1..10000000');

const FIRST = ['ada', 'grace', 'alan', 'edsger', 'barbara', 'donald', 'frances', 'ken', 'radia', 'linus'];
const LAST = ['lovelace', 'hopper', 'turing', 'dijkstra', 'liskov', 'knuth', 'allen', 'thompson', 'perlman'];
const DOMAINS = [
  'gmail.com',
  'yahoo.com',
  'outlook.com',
  'gmx.net',
  'web.de',
  'example.org',
  'mail.example.com',
];
const REASONS = ['unsubscribe', 'hard_bounce', 'complaint', 'manual'];
const SCOPE = 'news.example.com';

function entry(i) {
  const address = `${FIRST[i % FIRST.length]}.${LAST[(i >> 3) % LAST.length]}${i}@${DOMAINS[i % DOMAINS.length]}`;
  return {
    address,
    reason: REASONS[i % 7 === 0 ? 1 : i % 50 === 0 ? 2 : 0],
    at: 1_700_000_000_000 + i * 1000,
    ...(i % 4 === 0 ? { source: 'list:weekly' } : {}),
  };
}

/** used_memory without the AOF buffer, which comes and goes with each write. */
async function dataMemory(redis) {
  const info = await redis.info('memory');
  const field = (name) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_memory') - field('mem_aof_buffer');
}

async function measure(redis, fill) {
  await redis.flushall();
  const before = await dataMemory(redis);
  await fill();
  return (await dataMemory(redis)) - before;
}

installSignalCleanup();
const server = await startRedisServer({ name: 'redis-server (suppression memory)' });
const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
try {
  const store = new SuppressionStore(redis, '{bench}');
  const started = performance.now();
  const bytes = await measure(redis, async () => {
    for (let start = 0; start < N; start += 1000) {
      const chunk = [];
      for (let i = start; i < Math.min(N, start + 1000); i++) chunk.push(entry(i));
      await store.add(SCOPE, chunk);
    }
  });
  const seconds = (performance.now() - started) / 1000;
  const count = await store.count(SCOPE);
  if (count !== N) throw new Error(`expected ${N} entries, the store counts ${count}`);
  const buckets = (await redis.keys(`{bench}:supp:${SCOPE}:*`)).length;
  const layout = await redis.hgetall(`{bench}:supp:${SCOPE}`);
  console.log(`SuppressionStore: ${N} entries, ${buckets} buckets (level ${layout.L}, split ${layout.s})`);
  console.log(`  used_memory +${bytes} bytes = ${(bytes / N).toFixed(1)} bytes/entry`);
  console.log(
    `  1,000,000 entries ~ ${(((bytes / N) * 1e6) / 2 ** 20).toFixed(0)} MiB; added in ${seconds.toFixed(1)} s`,
  );
  // The send path's check: 1000 recipients (half of them listed) against the scope and `*`, one round trip.
  const probe = Array.from({ length: 1000 }, (_, i) =>
    i % 2 ? entry(i * 97).address : `new${i}@example.net`,
  );
  const times = [];
  for (let round = 0; round < 21; round++) {
    const t0 = performance.now();
    const found = await store.check(SCOPE, probe);
    times.push(performance.now() - t0);
    if (found.size !== 500) throw new Error(`check found ${found.size} of 500 listed addresses`);
  }
  times.sort((a, b) => a - b);
  console.log(`  check of 1000 addresses (scope + "*"): median ${times[10].toFixed(1)} ms over 21 calls`);
  if (values.compare) {
    const plain = await measure(redis, async () => {
      for (let start = 0; start < N; start += 1000) {
        const pipeline = redis.pipeline();
        for (let i = start; i < Math.min(N, start + 1000); i++) {
          const e = entry(i);
          pipeline.hset('{bench}:plain', e.address, `u${e.at.toString(36)}${e.source ? ` ${e.source}` : ''}`);
        }
        await pipeline.exec();
      }
    });
    console.log(`one plain hash, same values: ${(plain / N).toFixed(1)} bytes/entry`);
  }
} finally {
  redis.disconnect();
  await server.stop();
  await runCleanups();
}
