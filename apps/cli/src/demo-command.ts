import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { SingleBar, Presets } from 'cli-progress';
import { Redis } from 'ioredis';
import { ApiKeyStore, loadApiConfig, startApiServer } from '@mailroom/api';
import { MailroomClient } from '@mailroom/client';
import { TERMINAL_STATES } from '@mailroom/core';
import { Ledger } from '@mailroom/queue';
import { startSink, type Sink } from '@mailroom/sink';
import { DEMO_TEMPLATE, demoRecipients } from './demo-newsletter.js';
import { ensureRedisServer, freePort, startLocalRedis } from './local-redis.js';
import { sumMetric } from './prom-text.js';

export interface DemoFlags {
  /** Recipients in the newsletter (default 10,000). */
  count: number;
  /** Worker processes (default 2). */
  workers: number;
  /** Keep everything running after the summary until Ctrl-C. */
  keep: boolean;
  /** Redis to use instead of a private one (REDIS_URL). */
  redisUrl?: string;
}

const BIN = fileURLToPath(new URL('../bin/mailroom.js', import.meta.url));
const DELIVERY_TIMEOUT_MS = 10 * 60 * 1000;

interface Progress {
  start(total: number): void;
  update(value: number): void;
  stop(): void;
}

/** A progress bar on a terminal; a line every 2 s elsewhere (CI logs). */
function progress(label: string, out: NodeJS.WriteStream): Progress {
  if (out.isTTY) {
    const bar = new SingleBar(
      {
        format: `${label.padEnd(10)} [{bar}] {percentage}% | {value}/{total} | {rate} msgs/s`,
        hideCursor: true,
      },
      Presets.shades_classic,
    );
    const started = Date.now();
    return {
      start: (total) => bar.start(total, 0, { rate: 0 }),
      update: (value) =>
        bar.update(value, { rate: Math.round(value / Math.max(0.001, (Date.now() - started) / 1000)) }),
      stop: () => bar.stop(),
    };
  }
  let total = 0;
  let last = 0;
  let value = 0;
  return {
    start: (t) => {
      total = t;
    },
    update: (v) => {
      value = v;
      if (Date.now() - last >= 2000) {
        last = Date.now();
        out.write(`${label}: ${v}/${total}\n`);
      }
    },
    stop: () => out.write(`${label}: ${value}/${total}\n`),
  };
}

async function waitForHttp(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`a worker exited during start-up (code ${child.exitCode})`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() - started > timeoutMs) throw new Error(`worker not ready after ${timeoutMs} ms (${url})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * `mailroom demo`: the whole path on one machine. A private redis-server (unless REDIS_URL is set), a local
 * SMTP sink, N worker processes, a personalized newsletter to `count` recipients, a progress bar, a summary,
 * then everything it started is stopped.
 */
export async function demoCommand(
  flags: DemoFlags,
  out: NodeJS.WriteStream,
  err: NodeJS.WriteStream,
): Promise<number> {
  const cleanups: (() => Promise<void> | void)[] = [];
  const say = (line: string) => out.write(`${line}\n`);
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        err.write(`cleanup: ${(e as Error).message}\n`);
      }
    }
    cleanups.length = 0;
  };
  const onSignal = () => {
    say('\ninterrupted: stopping everything the demo started');
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // 1. Redis
    let redisUrl = flags.redisUrl;
    let prefix = '{mailroom}';
    if (redisUrl) {
      prefix = `{mailroom-demo-${randomBytes(4).toString('hex')}}`;
      say(`redis     ${redisUrl} (from REDIS_URL; demo keys under ${prefix}, removed afterwards)`);
      const url = redisUrl;
      cleanups.push(async () => {
        const r = new Redis(url, { maxRetriesPerRequest: 1 });
        try {
          let cursor = '0';
          do {
            const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
            cursor = next;
            if (keys.length > 0) await r.del(...keys);
          } while (cursor !== '0');
        } finally {
          r.disconnect();
        }
      });
    } else {
      const found = ensureRedisServer(say);
      if ('instruction' in found) {
        err.write(`mailroom demo: ${found.instruction}\n`);
        return 1;
      }
      const local = await startLocalRedis(found.path);
      cleanups.push(() => local.stop());
      redisUrl = local.url;
      say(`redis     ${redisUrl} (private redis-server, AOF on, data in ${local.dir})`);
    }

    // 2. SMTP sink
    const sink: Sink = await startSink({});
    cleanups.push(() => sink.close());
    say(`smtp sink 127.0.0.1:${sink.port} (local sink, plaintext on loopback)`);

    // 3. The HTTP API (loopback), which also serves the one-click unsubscribe links of the newsletter
    const apiPort = await freePort();
    const unsubscribeSecret = randomBytes(32).toString('hex');
    const apiConfig = loadApiConfig({
      MAILROOM_REDIS_URL: redisUrl,
      MAILROOM_QUEUE_PREFIX: prefix,
      MAILROOM_API_PORT: String(apiPort),
      MAILROOM_API_KEY_PEPPER: randomBytes(32).toString('hex'),
      MAILROOM_UNSUBSCRIBE_SECRETS: unsubscribeSecret,
      MAILROOM_LOG_LEVEL: 'warn',
    });
    const api = await startApiServer(apiConfig, { logger: false });
    cleanups.push(() => api.close());
    say(`http api  ${api.url} (OpenAPI at ${api.url}/v1/openapi.json)`);

    // 4. Workers
    const workers: { child: ChildProcess; metricsUrl: string }[] = [];
    for (let i = 0; i < flags.workers; i += 1) {
      const port = await freePort();
      const child = spawn(process.execPath, [BIN, 'worker'], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: {
          ...process.env,
          MAILROOM_REDIS_URL: redisUrl,
          MAILROOM_QUEUE_PREFIX: prefix,
          MAILROOM_SMTP_HOST: '127.0.0.1',
          MAILROOM_SMTP_PORT: String(sink.port),
          MAILROOM_SMTP_TLS: 'none',
          MAILROOM_SMTP_MAX_CONNECTIONS: '10',
          MAILROOM_WORKER_CONCURRENCY: '100',
          MAILROOM_HTTP_HOST: '127.0.0.1',
          MAILROOM_HTTP_PORT: String(port),
          MAILROOM_UNSUBSCRIBE_URL: `${api.url}/u/`,
          MAILROOM_UNSUBSCRIBE_SECRETS: unsubscribeSecret,
          MAILROOM_LOG_LEVEL: 'error',
        },
      });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      cleanups.push(async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await exited;
      });
      workers.push({ child, metricsUrl: `http://127.0.0.1:${port}/metrics` });
    }
    for (const w of workers) await waitForHttp(w.metricsUrl.replace('/metrics', '/readyz'), w.child, 20_000);
    say(`workers   ${flags.workers} processes, metrics at ${workers.map((w) => w.metricsUrl).join(' ')}`);

    // 5. Enqueue the newsletter
    const client = new MailroomClient({ redis: redisUrl, prefix });
    cleanups.push(() => client.close());
    await client.ready();
    const counter = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    cleanups.push(() => counter.disconnect());
    const ledger = new Ledger(counter, { prefix });

    const started = Date.now();
    const queued = progress('queued', out);
    queued.start(flags.count);
    await client.createCampaign(
      { name: 'Mailroom Weekly (demo)', template: DEMO_TEMPLATE, recipients: demoRecipients(flags.count) },
      { onProgress: (p) => queued.update(p.accepted) },
    );
    queued.stop();
    const enqueuedAt = Date.now();

    // 6. Delivery
    const finished = progress('finished', out);
    finished.start(flags.count);
    let done = 0;
    while (done < flags.count) {
      if (Date.now() - started > DELIVERY_TIMEOUT_MS)
        throw new Error('delivery did not finish within 10 minutes');
      const stats = await ledger.stats();
      done = TERMINAL_STATES.reduce((sum, state) => sum + (stats[state] ?? 0), 0);
      finished.update(done);
      if (done < flags.count) await new Promise((r) => setTimeout(r, 200));
    }
    finished.stop();
    const seconds = (Date.now() - started) / 1000;

    // 7. Summary, from the workers' own metrics, checked against what the sink received
    const texts = await Promise.all(workers.map(async (w) => (await fetch(w.metricsUrl)).text()));
    const sum = (name: string, label?: { name: string; value: string }) =>
      texts.reduce((acc, t) => acc + sumMetric(t, name, label), 0);
    const delivered = sum('mailroom_messages_terminal_total', { name: 'outcome', value: 'delivered' });
    const bounced = sum('mailroom_messages_terminal_total', { name: 'outcome', value: 'bounced' });
    const expired = sum('mailroom_messages_terminal_total', { name: 'outcome', value: 'expired' });
    const deferred = sum('mailroom_delivery_attempts_total', { name: 'result', value: 'deferred' });
    say('');
    say('summary');
    say(`  delivered      ${delivered}`);
    say(`  deferred       ${deferred} (attempts retried later)`);
    say(`  bounced        ${bounced}`);
    say(`  expired        ${expired}`);
    say(`  sink received  ${sink.messages.length}`);
    say(
      `  enqueue        ${((enqueuedAt - started) / 1000).toFixed(2)} s (${Math.round(flags.count / Math.max(0.001, (enqueuedAt - started) / 1000))} msgs/s)`,
    );
    say(`  end to end     ${seconds.toFixed(2)} s (${Math.round(flags.count / seconds)} msgs/s)`);
    say(`  metrics        ${workers.map((w) => w.metricsUrl).join(' ')}`);
    const ok = delivered === flags.count && sink.messages.length === flags.count;
    if (!ok) err.write('mailroom demo: not every message was delivered exactly once to the sink\n');

    if (flags.keep) {
      const keys = new ApiKeyStore(counter, prefix, apiConfig.keyPepper);
      const { key } = await keys.create({ name: 'demo', scopes: ['send', 'read'], domains: ['*'] });
      const body = JSON.stringify({
        from: 'Demo <demo@mailroom.example>',
        to: 'ada@example.org',
        subject: 'Hello from the API',
        text: 'Hi Ada',
      });
      say('\nstill running (--keep): press Ctrl-C to stop. Send through the HTTP API with:');
      say(
        `  curl -sS ${api.url}/v1/messages -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' -d '${body}'`,
      );
      say(`  curl -sS ${api.url}/v1/messages/<id> -H 'Authorization: Bearer ${key}'`);
      await new Promise<never>(() => undefined);
    }
    return ok ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}
