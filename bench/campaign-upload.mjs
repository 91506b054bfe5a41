#!/usr/bin/env node
// How fast MailroomClient.createCampaign accepts a recipient list, and how much Redis the accepted list
// takes before anything is sent (no worker runs, so nothing is materialised): the newsletter campaign of
// the benchmark (bench/lib/newsletter.mjs), generated as the client reads it, into a fresh durable Redis
// per run. Prints a Markdown table and writes the figures as JSON.
//   npm run build && node bench/campaign-upload.mjs                 N = 100,000 and 1,000,000, 3 runs each
//   node bench/campaign-upload.mjs --n 100000 --rounds 1 --chunk-size 1000
//   node bench/campaign-upload.mjs --feed    then materialise it all with a worker's feeder (no high-water
//                                            mark, no worker sending): its rate, and Redis memory with every
//                                            recipient a ledger record and in a batch job
// See docs/benchmarks.md ("Campaign fan-out").
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { snapshotBuild } from './lib/build-snapshot.mjs';
import { installSignalCleanup, runCleanups } from './lib/cleanup.mjs';
import { machineFacts } from './lib/machine-facts.mjs';
import { newsletterRecipient, newsletterTemplate } from './lib/newsletter.mjs';
import { startProcessSampler } from './lib/process-sampler.mjs';
import { REDIS_SETTINGS, redisUsedMemory, startRedisServer } from './lib/redis-server.mjs';
import { spread } from './lib/stats.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const USAGE =
  'usage: node bench/campaign-upload.mjs [--n 100000,1000000] [--rounds 3] [--chunk-size 1000] [--feed]';

/** @param {string} line */
const say = (line) => process.stderr.write(`${line}\n`);

/**
 * @typedef {object} Modules the build snapshot's packages
 * @property {typeof import('@mailroom/client')} client
 * @property {typeof import('@mailroom/queue')} queue
 * @property {typeof import('@mailroom/worker')} worker
 */

/**
 * One upload of `n` recipients into a fresh Redis; with `feed`, then a feeder materialises all of them.
 * @param {Modules} mods
 * @param {number} n
 * @param {number} chunkSize
 * @param {boolean} feed
 */
async function uploadOnce(mods, n, chunkSize, feed) {
  const sdk = mods.client;
  const redis = await startRedisServer({ name: 'redis (campaign upload)' });
  const client = new sdk.MailroomClient({ redis: redis.url });
  try {
    await client.ready();
    const before = await redisUsedMemory(redis.url);
    const sampler = startProcessSampler([
      { name: 'redis-server', pid: redis.pid },
      { name: 'producer', pid: process.pid },
    ]);
    const started = performance.now();
    const receipt = await client.createCampaign(
      {
        name: 'Mailroom Weekly (upload benchmark)',
        template: newsletterTemplate(),
        recipients: recipients(n),
      },
      { chunkSize },
    );
    const seconds = (performance.now() - started) / 1000;
    const cpu = sampler.stop();
    if (receipt.accepted !== n) throw new Error(`accepted ${receipt.accepted} of ${n}`);
    const after = await redisUsedMemory(redis.url);
    const keys = await keyCounts(redis.url);
    const fed = feed ? await feedAll(mods, redis.url, n, before) : undefined;
    return {
      ...(fed ? { feed: fed } : {}),
      n,
      seconds,
      recipientsPerSecond: n / seconds,
      redisBytesPerRecipient: (after - before) / n,
      redisUsedMemoryBefore: before,
      redisUsedMemoryAfter: after,
      keys,
      cpuPercent: Object.fromEntries(cpu.processes.map((p) => [p.name, Math.round(p.percent)])),
      machineBusyPercent: Math.round(cpu.box.busyPercent),
      othersPercentOfOneCore: Math.round(cpu.box.othersPercent),
    };
  } finally {
    await client.close();
    await redis.stop();
  }
}

/**
 * Keys by kind after the upload: chunks, ledger records (none expected) and jobs (none expected).
 * @param {string} url
 */
async function keyCounts(url) {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const counts = { chunks: 0, records: 0, jobs: 0, other: 0 };
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        if (/:chunk:\d+$/.test(key)) counts.chunks += 1;
        else if (/:msg:[^:]+$/.test(key)) counts.records += 1;
        else if (/:mail:[^:]+$/.test(key) && !/:mail:(meta|events|id|prioritized|pc|marker)$/.test(key))
          counts.jobs += 1;
        else counts.other += 1;
      }
    } while (cursor !== '0');
    return counts;
  } finally {
    redis.disconnect();
  }
}

/**
 * Materialises every chunk with a worker's CampaignFeeder (no high-water mark, nobody taking the jobs).
 * @param {Modules} mods
 * @param {string} url
 * @param {number} n
 * @param {number} before used_memory of the empty server
 */
async function feedAll(mods, url, n, before) {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  const queue = mods.queue.createMailQueue(redis, { prefix: mods.queue.DEFAULT_PREFIX });
  const feeder = new mods.worker.CampaignFeeder({
    redis,
    queue,
    chunks: new mods.queue.CampaignStore(redis, mods.queue.DEFAULT_PREFIX).chunks,
    prefix: mods.queue.DEFAULT_PREFIX,
    logger: mods.worker.createLogger('silent'),
    highWater: Number.MAX_SAFE_INTEGER,
    chunksPerPass: 100_000,
  });
  try {
    const started = performance.now();
    let fed = 0;
    for (let pass = 0; pass < 100; pass++) {
      const report = await feeder.runOnce();
      fed += report.fed;
      if (report.fed === 0 && !report.more) break;
    }
    const seconds = (performance.now() - started) / 1000;
    if (fed !== n) throw new Error(`the feeder materialised ${fed} of ${n}`);
    return {
      seconds,
      recipientsPerSecond: n / seconds,
      redisBytesPerRecipient: ((await redisUsedMemory(url)) - before) / n,
      keys: await keyCounts(url),
    };
  } finally {
    await feeder.stop();
    await queue.close();
    redis.disconnect();
  }
}

/** @param {number} n */
function* recipients(n) {
  for (let i = 0; i < n; i++) yield newsletterRecipient(i);
}

async function main() {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '100000,1000000' },
      rounds: { type: 'string', default: '3' },
      'chunk-size': { type: 'string', default: '1000' },
      feed: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const sizes = values.n.split(',').map(Number);
  const rounds = Number(values.rounds);
  const chunkSize = Number(values['chunk-size']);
  if (sizes.some((n) => !Number.isInteger(n) || n < 1) || !Number.isInteger(rounds) || rounds < 1) {
    say(USAGE);
    return 2;
  }
  installSignalCleanup();
  const build = snapshotBuild();
  const load = (/** @type {string} */ path) => import(pathToFileURL(build.path(path)).href);
  /** @type {Modules} */
  const mods = {
    client: await load('packages/client/dist/index.js'),
    queue: await load('packages/queue/dist/index.js'),
    worker: await load('apps/worker/dist/index.js'),
  };
  const machine = machineFacts();
  const startedAt = new Date();
  say(
    `campaign upload: N = ${sizes.join(', ')}, ${rounds} round(s), chunks of ${chunkSize}; ` +
      `build ${build.fingerprint}; load average ${machine.loadAverage.join(' ')}`,
  );
  /** @type {Record<string, Awaited<ReturnType<typeof uploadOnce>>[]>} */
  const runs = {};
  for (let round = 1; round <= rounds; round++) {
    for (const n of sizes) {
      const run = await uploadOnce(mods, n, chunkSize, values.feed);
      (runs[n] ??= []).push(run);
      say(
        `round ${round}/${rounds} N=${n}: ${Math.round(run.recipientsPerSecond)} recipients/s ` +
          `(${run.seconds.toFixed(2)} s), ${run.redisBytesPerRecipient.toFixed(1)} bytes of Redis each, ` +
          `${run.keys.records} records, ${run.keys.jobs} jobs, ${run.keys.chunks} chunks; ` +
          `CPU % producer ${run.cpuPercent.producer}, redis ${run.cpuPercent['redis-server']}, ` +
          `others ${run.othersPercentOfOneCore}` +
          (run.feed
            ? `; fed at ${Math.round(run.feed.recipientsPerSecond)} recipients/s, then ` +
              `${run.feed.redisBytesPerRecipient.toFixed(0)} bytes each (${run.feed.keys.records} records, ` +
              `${run.feed.keys.jobs} jobs)`
            : ''),
      );
    }
  }
  const summary = Object.fromEntries(
    Object.entries(runs).map(([n, list]) => [
      n,
      {
        recipientsPerSecond: spread(list.map((r) => r.recipientsPerSecond)),
        redisBytesPerRecipient: spread(list.map((r) => r.redisBytesPerRecipient)),
        seconds: spread(list.map((r) => r.seconds)),
        ...(values.feed
          ? {
              feedRecipientsPerSecond: spread(list.map((r) => r.feed?.recipientsPerSecond ?? NaN)),
              fedRedisBytesPerRecipient: spread(list.map((r) => r.feed?.redisBytesPerRecipient ?? NaN)),
            }
          : {}),
      },
    ]),
  );
  const lines = [
    '| recipients | accepted per second | seconds | Redis bytes per recipient (used_memory) |',
    '|---|---|---|---|',
  ];
  for (const [n, s] of Object.entries(summary)) {
    const f = (/** @type {import('./lib/stats.mjs').Spread | undefined} */ v, d = 0) =>
      v ? `${v.median.toFixed(d)} [${v.min.toFixed(d)}–${v.max.toFixed(d)}]` : '–';
    lines.push(
      `| ${Number(n).toLocaleString('en')} | ${f(s.recipientsPerSecond)} | ${f(s.seconds, 2)} | ${f(s.redisBytesPerRecipient, 1)} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const out = join(
    RESULTS_DIR,
    `campaign-upload-${startedAt.toISOString().replace(/[-:]/g, '').slice(0, 15)}.json`,
  );
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        argv: process.argv.slice(2),
        machine,
        loadAverageAtEnd: machineFacts().loadAverage,
        build: build.fingerprint,
        settings: {
          sizes,
          rounds,
          chunkSize,
          feed: values.feed,
          redis: REDIS_SETTINGS,
          workers: 'none (nothing is sent)',
        },
        runs,
        summary,
      },
      null,
      2,
    )}\n`,
  );
  say(`results: ${out}`);
  return 0;
}

main()
  .then(async (code) => {
    await runCleanups();
    process.exit(code);
  })
  .catch(async (/** @type {unknown} */ err) => {
    say(
      `campaign upload benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    await runCleanups();
    process.exit(1);
  });
