import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it, type TestContext } from 'node:test';
import { DEFAULT_METRIC_DOMAINS, OTHER_DOMAIN } from '@mailroom/metrics';
import { createMailQueue, type MailQueue } from '@mailroom/queue';
import { startSink, type Sink } from '@mailroom/sink';
import type { Redis } from 'ioredis';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { killAllChildren, spawnNode, type ChildProcessHandle } from '../../harness/processes.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor, waitForValue } from '../../harness/wait-for.js';
import { message, testClient, workerEnv } from '../fixtures.js';
import { startPrometheus, type PrometheusServer } from './prometheus-server.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const BIN = `${ROOT}apps/cli/bin/mailroom.js`;
const RULES = `${ROOT}deploy/prometheus/rules/*.yml`;
const TOKEN = 'prometheus-scrape-test-token-0123456789';
const DISTINCT_RECIPIENTS = 10_000;
/** Every 20th of them bounces (`bounce-` recipients get 550 5.1.1 at RCPT). */
const BOUNCE_EVERY = 20;
/** The whole run, bounded: 10,000 messages take well under a minute here even on a busy machine. */
const DELIVERY_TIMEOUT_MS = 180_000;
const SCRAPE_TIMEOUT_MS = 30_000;

interface MailroomProcess {
  readonly name: string;
  readonly child: ChildProcessHandle;
  readonly port: number;
}

/** A `mailroom worker` process with a /metrics listener on a port it picks; resolves once it has started. */
async function startWorker(
  name: string,
  redis: RedisServer,
  sink: Sink,
  extra: Record<string, string>,
): Promise<MailroomProcess> {
  const child = spawnNode(BIN, ['worker'], {
    env: {
      ...process.env,
      ...workerEnv(redis, sink, {
        MAILROOM_HTTP_PORT: '0',
        MAILROOM_METRICS_TOKEN: TOKEN,
        MAILROOM_WORKER_CONCURRENCY: '50',
        MAILROOM_LOG_LEVEL: 'info',
        ...extra,
      }),
    },
  });
  const started = await child.waitForOutput(
    /"http":"http:\/\/127\.0\.0\.1:(\d+)"[^\n]*worker started/,
    20_000,
  );
  return { name, child, port: Number(started[1]) };
}

function prometheusConfig(workers: readonly MailroomProcess[], gauges: MailroomProcess): string {
  const targets = (ps: readonly MailroomProcess[]) => ps.map((p) => `'127.0.0.1:${p.port}'`).join(', ');
  // The shipped deploy/prometheus/prometheus.yml, with static loopback targets instead of Compose DNS.
  return `
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ['${RULES}']
scrape_configs:
  - job_name: mailroom
    authorization: { credentials_file: metrics-token }
    static_configs: [{ targets: [${targets(workers)}], labels: { role: worker } }]
  - job_name: mailroom-gauges
    authorization: { credentials_file: metrics-token }
    static_configs: [{ targets: [${targets([gauges])}], labels: { role: queue-gauges } }]
`;
}

describe('Prometheus scraping two workers and the queue-gauge role (real prometheus, redis-server, SMTP sinks)', () => {
  let baseline: string[];
  let redis: RedisServer;
  let sinkA: Sink;
  let sinkB: Sink;
  let workers: MailroomProcess[];
  let gauges: MailroomProcess;
  let prometheus: PrometheusServer | undefined;
  let conn: Redis;
  let queue: MailQueue;
  const client = () => testClient(redis);

  const delivered = () => sinkA.messages.length + sinkB.messages.length;
  const bounced = () => sinkA.stats.rejectedRcpts + sinkB.stats.rejectedRcpts;

  /** Waits until Prometheus answers `expr` with `expected` (it scrapes every second). */
  async function settlesAt(expr: string, expected: number, what: string): Promise<void> {
    let last: number | undefined;
    try {
      await waitFor(
        async () => {
          last = await prometheus!.value(expr);
          return last === expected;
        },
        { timeoutMs: SCRAPE_TIMEOUT_MS, intervalMs: 250, what },
      );
    } catch (err) {
      assert.fail(
        `${what}: Prometheus says ${last} for ${expr}, expected ${expected} (${(err as Error).message})`,
      );
    }
  }

  const seriesCount = async (selector: string) => (await prometheus!.value(`count(${selector})`)) ?? 0;

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    sinkA = await startSink();
    sinkB = await startSink();
    conn = redis.client();
    queue = createMailQueue(conn, { prefix: '{mailroom}' });
    workers = await Promise.all([
      startWorker('worker-a', redis, sinkA, { MAILROOM_RELAY_NAME: 'relay-a' }),
      startWorker('worker-b', redis, sinkB, { MAILROOM_RELAY_NAME: 'relay-b' }),
    ]);
    gauges = await startWorker('queue-gauges', redis, sinkA, {
      MAILROOM_RELAY_NAME: 'relay-a',
      MAILROOM_QUEUE_GAUGES: 'true',
      MAILROOM_WORKER_CONCURRENCY: '10',
    });
    prometheus = await startPrometheus(prometheusConfig(workers, gauges), { 'metrics-token': TOKEN });
    await settlesAt('count(up{job=~"mailroom|mailroom-gauges"} == 1)', 3, 'all three targets up');
  });

  after(async () => {
    await prometheus?.stop();
    for (const p of [...(workers ?? []), ...(gauges ? [gauges] : [])]) p.child.kill('SIGTERM');
    await Promise.all([...(workers ?? []), ...(gauges ? [gauges] : [])].map((p) => p.child.exited));
    await killAllChildren();
    await queue?.close();
    conn?.disconnect();
    await sinkA?.close();
    await sinkB?.close();
    if (redis) {
      await assertNoRedisClients(redis);
      await redis.stop();
    }
    await assertNoResourceLeaks(baseline);
  });

  it('shows the queue from one process only: jobs waiting in a paused queue, their age, then drained', async () => {
    await queue.pause();
    const sender = client();
    try {
      await sender.sendMany(Array.from({ length: 40 }, (_, i) => message(`ok-paused-${i}@example.test`)));
      await settlesAt('sum(mailroom_queue_jobs{state="waiting"})', 40, 'the 40 waiting jobs in Prometheus');
      await settlesAt('max(mailroom_queue_paused)', 1, 'the paused flag');
      const age = await prometheus!.value('max(mailroom_queue_oldest_job_age_seconds{state="waiting"})');
      assert.ok(age !== undefined && age > 0, `the next job in line has waited (${age} s)`);
      assert.equal(
        await seriesCount('count by (instance) (mailroom_queue_jobs)'),
        1,
        'one process exports it',
      );
      assert.equal(
        (await prometheus!.query('count by (job) (mailroom_messages_overdue)'))[0]?.metric.job,
        'mailroom-gauges',
      );
    } finally {
      // Whatever failed above, the later tests need a running queue.
      await queue.resume();
      await sender.close();
    }
    await waitFor(() => delivered() >= 40, { timeoutMs: DELIVERY_TIMEOUT_MS, what: 'the 40 deliveries' });
    await settlesAt('sum(mailroom_queue_jobs{state=~"waiting|active"})', 0, 'the queue drained');
    await settlesAt('max(mailroom_messages_overdue)', 0, 'no overdue message');
  });

  it('counts what the SMTP servers recorded, and its series do not grow with 10,000 distinct recipients', async (t: TestContext) => {
    // Warm-up: every outcome, relay and listed domain the big run will touch, so that the baseline is fair.
    const warmUp = [
      ...Array.from({ length: 60 }, (_, i) => message(`ok-warm-${i}@gmail.com`)),
      ...Array.from({ length: 30 }, (_, i) => message(`ok-warm-${i}@googlemail.com`)),
      ...Array.from({ length: 30 }, (_, i) => message(`ok-warm-${i}@hotmail.com`)),
      ...Array.from({ length: 60 }, (_, i) => message(`ok-warm-${i}@warm.example`)),
      ...Array.from({ length: 20 }, (_, i) => message(`bounce-warm-${i}@gmail.com`)),
      ...Array.from({ length: 20 }, (_, i) => message(`bounce-warm-${i}@warm.example`)),
    ];
    const sender = client();
    try {
      await sender.sendMany(warmUp);
      await waitFor(() => delivered() === 40 + 180 && bounced() === 40, {
        timeoutMs: DELIVERY_TIMEOUT_MS,
        what: 'the warm-up to finish',
      });
      await settlesAt(
        'sum(mailroom_messages_terminal_total{outcome="delivered"})',
        delivered(),
        'delivered after the warm-up',
      );
      await settlesAt(
        'sum(mailroom_messages_terminal_total{outcome="bounced"})',
        bounced(),
        'bounced after the warm-up',
      );
      const before = {
        mailroom: await seriesCount('{__name__=~"mailroom_.+"}'),
        all: await seriesCount('{job=~"mailroom|mailroom-gauges"}'),
      };

      // 10,000 recipients, every address and every domain different.
      const recipients = Array.from({ length: DISTINCT_RECIPIENTS }, (_, i) =>
        i % BOUNCE_EVERY === 0 ? `bounce-${i}@r${i}.example` : `ok-${i}@r${i}.example`,
      );
      assert.equal(new Set(recipients).size, DISTINCT_RECIPIENTS);
      const expectedBounced = 40 + DISTINCT_RECIPIENTS / BOUNCE_EVERY;
      const expectedDelivered = 220 + DISTINCT_RECIPIENTS - DISTINCT_RECIPIENTS / BOUNCE_EVERY;
      const started = performance.now();
      await sender.sendMany(recipients.map((to) => message(to)));
      await waitFor(() => delivered() === expectedDelivered && bounced() === expectedBounced, {
        timeoutMs: DELIVERY_TIMEOUT_MS,
        intervalMs: 200,
        what: `${DISTINCT_RECIPIENTS} messages to finish`,
      });
      const seconds = (performance.now() - started) / 1000;

      // The totals Prometheus holds equal what the two SMTP servers recorded.
      await settlesAt(
        'sum(mailroom_messages_terminal_total{outcome="delivered"})',
        delivered(),
        'delivered total',
      );
      await settlesAt('sum(mailroom_messages_terminal_total{outcome="bounced"})', bounced(), 'bounced total');
      await settlesAt(
        'sum(mailroom_delivery_attempts_total{result="delivered",relay="relay-a"})',
        sinkA.messages.length,
        'relay-a deliveries = what sink A stored',
      );
      await settlesAt(
        'sum(mailroom_delivery_attempts_total{result="delivered",relay="relay-b"})',
        sinkB.messages.length,
        'relay-b deliveries = what sink B stored',
      );
      await settlesAt(
        'sum(mailroom_smtp_replies_total{stage="rcpt",code="550"})',
        bounced(),
        '550 replies at RCPT = the rejections',
      );
      await settlesAt(
        'sum(mailroom_smtp_enhanced_status_total{enhanced="5.1.1"})',
        bounced(),
        '5.1.1 = the rejections',
      );
      await settlesAt(
        'sum(mailroom_messages_terminal_total{domain="gmail.com"})',
        110,
        'gmail.com with googlemail.com',
      );
      await settlesAt(
        'sum(mailroom_messages_terminal_total{domain="outlook.com"})',
        30,
        'hotmail.com as outlook.com',
      );
      assert.ok(sinkA.messages.length > 0 && sinkB.messages.length > 0, 'both workers delivered');

      const after = {
        mailroom: await seriesCount('{__name__=~"mailroom_.+"}'),
        all: await seriesCount('{job=~"mailroom|mailroom-gauges"}'),
      };
      assert.equal(after.mailroom, before.mailroom, 'mailroom_ series do not grow with distinct recipients');
      const domains = (
        await prometheus!.query('count by (domain) ({__name__=~"mailroom_.+",domain!=""})')
      ).map((s) => s.metric.domain ?? '');
      assert.deepEqual(
        domains.filter((d) => d !== OTHER_DOMAIN && !DEFAULT_METRIC_DOMAINS.includes(d)),
        [],
        'every domain label value is a listed domain or other',
      );
      assert.ok(domains.includes(OTHER_DOMAIN));

      t.diagnostic(
        `series: mailroom_* ${before.mailroom} before, ${after.mailroom} after ${DISTINCT_RECIPIENTS} distinct recipients; ` +
          `all series of the three targets ${before.all} before, ${after.all} after`,
      );
      t.diagnostic(
        `delivered ${delivered()} (sink A ${sinkA.messages.length}, sink B ${sinkB.messages.length}), bounced ${bounced()}, ` +
          `${DISTINCT_RECIPIENTS} messages in ${seconds.toFixed(1)} s`,
      );
      await settlesAt(
        'sum(mailroom_queue_jobs{state=~"waiting|active"})',
        0,
        'the queue gauges to show it drained',
      );
      const sample = await (
        await fetch(`http://127.0.0.1:${workers[0]!.port}/metrics`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        })
      ).text();
      const gaugeSample = await (
        await fetch(`http://127.0.0.1:${gauges.port}/metrics`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        })
      ).text();
      const interesting = (text: string, pattern: RegExp, zeros = false) =>
        text.split('\n').filter((l) => pattern.test(l) && (zeros || !/ 0$/.test(l)));
      for (const line of [
        ...interesting(
          sample,
          /^mailroom_(messages_terminal|delivery_attempts|smtp_replies|smtp_enhanced_status)_total/,
        ),
        ...interesting(sample, /^mailroom_(smtp_send_duration_seconds|delivery_delay_seconds)_(count|sum)/),
        ...interesting(sample, /^mailroom_(smtp_pool|relay_circuit|redis_connected|worker_|build_info)/),
        ...interesting(gaugeSample, /^mailroom_(queue_|messages_overdue)/, true),
      ]) {
        t.diagnostic(line);
      }
    } finally {
      await sender.close();
    }
  });

  it('evaluates every shipped rule against the live series without an error', async () => {
    const rules = await waitForValue(
      async () => {
        const all = await prometheus!.rules();
        return all.length > 0 && all.every((r) => r.health === 'ok') ? all : undefined;
      },
      { timeoutMs: SCRAPE_TIMEOUT_MS, intervalMs: 500, what: 'every rule evaluated' },
    );
    for (const rule of rules) assert.equal(rule.lastError ?? '', '', `${rule.name}: ${rule.lastError}`);
    assert.ok(rules.some((r) => r.name === 'MailroomHighBounceRate'));
    // 5% of this run bounced, on a few thousand messages: the ratio is there, at the warning line.
    const ratio = await prometheus!.value('mailroom:bounce_ratio:rate1h');
    assert.ok(ratio !== undefined && ratio > 0 && ratio < 0.1, `bounce ratio ${ratio}`);
    const firing = await prometheus!.query('ALERTS{alertstate="firing"}');
    assert.deepEqual(
      firing.map((s) => s.metric.alertname),
      [],
      'no alert fires on a healthy run',
    );
  });
});
