import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ATTEMPT_REPLY_CLASSES,
  ATTEMPT_RESULTS,
  ENHANCED_STATUS_LABELS,
  QUEUE_AGE_STATES,
  QUEUE_JOB_STATES,
  REPLY_CLASSES,
  Registry,
  SMTP_REPLY_CODES,
  SMTP_STAGES,
  TERMINAL_OUTCOMES,
  createQueueMetrics,
  createWorkerMetrics,
  type WorkerMetrics,
} from '@mailroom/metrics';

/** Every sample line of the exposition text, `name{labels}` -> value. */
async function samples(registry: Registry): Promise<Map<string, number>> {
  const text = await registry.metrics();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

/** Samples of one metric (exact name, so `_bucket` lines of a histogram are not counted under it). */
function of(all: Map<string, number>, name: string): [string, number][] {
  return [...all].filter(([key]) => key === name || key.startsWith(`${name}{`));
}

function sum(all: Map<string, number>, name: string, ...labels: string[]): number {
  return of(all, name)
    .filter(([key]) => labels.every((l) => key.includes(l)))
    .reduce((acc, [, v]) => acc + v, 0);
}

function fresh(domains = ['gmail.com', 'outlook.com']): { registry: Registry; metrics: WorkerMetrics } {
  const registry = new Registry();
  const metrics = createWorkerMetrics({
    registry,
    version: '9.9.9',
    relay: 'smtp-eu',
    domains,
    defaultMetrics: false,
  });
  return { registry, metrics };
}

describe('worker metrics', () => {
  it('starts every allowed label combination at 0', async () => {
    const { registry } = fresh();
    const all = await samples(registry);
    const domains = 3; // two listed and `other`
    const pairs = ATTEMPT_RESULTS.reduce((n, r) => n + ATTEMPT_REPLY_CLASSES[r].length, 0);
    const expected: [string, number][] = [
      ['mailroom_messages_terminal_total', TERMINAL_OUTCOMES.length * domains],
      ['mailroom_delivery_attempts_total', pairs * domains],
      ['mailroom_smtp_replies_total', SMTP_STAGES.length * (SMTP_REPLY_CODES.length + 4)],
      ['mailroom_smtp_enhanced_status_total', ENHANCED_STATUS_LABELS.length],
      ['mailroom_rate_limit_waits_total', 2 * domains],
      ['mailroom_feedback_events_total', 4 * domains],
      ['mailroom_smtp_send_duration_seconds_count', ATTEMPT_RESULTS.length],
      ['mailroom_delivery_delay_seconds_count', TERMINAL_OUTCOMES.length],
      ['mailroom_smtp_pool_size', 1],
      ['mailroom_smtp_sends_in_flight', 1],
      ['mailroom_relay_circuit_open', 1],
    ];
    for (const [name, count] of expected) {
      const series = of(all, name);
      assert.equal(series.length, count, name);
      assert.ok(
        series.every(([, v]) => v === 0),
        `${name} starts at 0`,
      );
    }
    assert.ok(
      all.has(
        'mailroom_delivery_attempts_total{result="delivered",reply_class="2xx",relay="smtp-eu",domain="other"}',
      ),
    );
    assert.ok(all.has('mailroom_messages_terminal_total{outcome="bounced",domain="gmail.com"}'));
    assert.ok(all.has('mailroom_smtp_replies_total{relay="smtp-eu",stage="rcpt",code="550"}'));
    assert.ok(all.has('mailroom_smtp_enhanced_status_total{relay="smtp-eu",enhanced="4.7.28"}'));
    assert.equal(
      all.get('mailroom_build_info{version="9.9.9",node_version="' + process.versions.node + '"}'),
      1,
    );
    assert.equal(
      of(all, 'mailroom_messages_overdue').length,
      0,
      'workers leave the overdue count to the gauge role',
    );
  });

  it('does not grow with distinct recipients, domains, codes or reply texts', async () => {
    const { registry, metrics } = fresh();
    const before = new Set((await samples(registry)).keys());
    const commands = [
      'CONN',
      'EHLO',
      'STARTTLS',
      'AUTH PLAIN',
      'MAIL FROM',
      'RCPT TO',
      'DATA',
      'RSET',
      'XYZ',
    ];
    for (let i = 0; i < 10_000; i += 1) {
      const to = `user-${i}-${(i * 7919) % 10_007}@host-${i}.example`;
      const result = ATTEMPT_RESULTS[i % ATTEMPT_RESULTS.length]!;
      const classes = ATTEMPT_REPLY_CLASSES[result];
      metrics.observeAttempt({
        result,
        replyClass: classes[i % classes.length]!,
        to,
        seconds: (i % 50) / 10,
      });
      metrics.observeReply({
        command: commands[i % commands.length],
        code: [250, 421, 450, 451, 550, 554, 599, 471][i % 8],
        enhanced: `${[2, 4, 5][i % 3]}.${i % 9}.${i % 40} text ${to}`.split(' ')[0],
      });
      metrics.observeTerminal(TERMINAL_OUTCOMES[i % TERMINAL_OUTCOMES.length]!, {
        to,
        acceptedAt: Date.now() - i,
      });
      metrics.observeRateLimitWait({ scope: i % 2 === 0 ? 'relay' : 'local', seconds: i % 300, to });
      metrics.observeFeedback(i % 3 === 0 ? 'complaint' : 'hard_bounce', to);
    }
    const afterSamples = await samples(registry);
    const after = new Set(afterSamples.keys());
    const added = [...after].filter((k) => !before.has(k));
    assert.deepEqual(added, [], 'no new series');
    assert.equal(after.size, before.size);
    assert.equal(sum(afterSamples, 'mailroom_delivery_attempts_total'), 10_000);
    assert.equal(sum(afterSamples, 'mailroom_messages_terminal_total'), 10_000);
    for (const key of after) {
      assert.ok(!key.includes('@'), `no address in ${key}`);
      assert.ok(!/host-\d|user-\d|text/.test(key), `no recipient or reply text in ${key}`);
    }
  });

  it('counts a terminal outcome under the recipient domain and observes acceptance to finish', async () => {
    const { registry, metrics } = fresh();
    metrics.observeTerminal('delivered', { to: 'ada@GMAIL.com', acceptedAt: 1_000, now: 4_000 });
    metrics.observeTerminal('delivered', { to: 'bob@googlemail.com' });
    metrics.observeTerminal('bounced', { to: 'carol@example.org', acceptedAt: 0, now: 90_000 });
    metrics.observeTerminal('expired', {}, 5);
    const all = await samples(registry);
    assert.equal(all.get('mailroom_messages_terminal_total{outcome="delivered",domain="gmail.com"}'), 2);
    assert.equal(all.get('mailroom_messages_terminal_total{outcome="bounced",domain="other"}'), 1);
    assert.equal(all.get('mailroom_messages_terminal_total{outcome="expired",domain="other"}'), 5);
    assert.equal(
      all.get('mailroom_delivery_delay_seconds_count{outcome="delivered"}'),
      1,
      'only with acceptedAt',
    );
    assert.equal(all.get('mailroom_delivery_delay_seconds_sum{outcome="delivered"}'), 3);
    assert.equal(all.get('mailroom_delivery_delay_seconds_bucket{le="5",outcome="delivered"}'), 1);
    assert.equal(all.get('mailroom_delivery_delay_seconds_bucket{le="1",outcome="delivered"}'), 0);
    assert.equal(all.get('mailroom_delivery_delay_seconds_sum{outcome="bounced"}'), 90);
    assert.equal(all.get('mailroom_delivery_delay_seconds_count{outcome="expired"}'), 0);
  });

  it('counts attempts by result, reply class, relay and domain, and times them', async () => {
    const { registry, metrics } = fresh();
    metrics.observeAttempt({ result: 'delivered', replyClass: '2xx', to: 'a@outlook.com', seconds: 0.2 });
    metrics.observeAttempt({ result: 'deferred', replyClass: '4xx', to: 'a@hotmail.com', seconds: 0.4 });
    metrics.observeAttempt({ result: 'error', replyClass: 'something-new', to: 'a@x.example', seconds: 1 });
    const all = await samples(registry);
    const key = (r: string, c: string, d: string) =>
      `mailroom_delivery_attempts_total{result="${r}",reply_class="${c}",relay="smtp-eu",domain="${d}"}`;
    assert.equal(all.get(key('delivered', '2xx', 'outlook.com')), 1);
    assert.equal(all.get(key('deferred', '4xx', 'outlook.com')), 1, 'hotmail.com is Outlook.com');
    assert.equal(all.get(key('error', 'ambiguous', 'other')), 1, 'an unknown class is counted as ambiguous');
    assert.equal(all.get('mailroom_smtp_send_duration_seconds_count{relay="smtp-eu",result="delivered"}'), 1);
    assert.equal(all.get('mailroom_smtp_send_duration_seconds_sum{relay="smtp-eu",result="error"}'), 1);
    assert.ok(REPLY_CLASSES.includes('ambiguous'));
  });

  it('counts replies by stage and code, and the same replies by enhanced status', async () => {
    const { registry, metrics } = fresh();
    metrics.observeReply({ command: 'RCPT TO', code: 550, enhanced: '5.1.1' });
    metrics.observeReply({ command: 'RCPT TO', code: 450, enhanced: '4.7.28' });
    metrics.observeReply({ command: 'DATA', code: 250 });
    metrics.observeReply({ command: 'MAIL FROM', code: 557, enhanced: '5.7.99' });
    metrics.observeReply({ command: 'CONN' }); // no reply at all: not a reply
    const all = await samples(registry);
    const reply = (stage: string, code: string) =>
      all.get(`mailroom_smtp_replies_total{relay="smtp-eu",stage="${stage}",code="${code}"}`);
    const enhanced = (e: string) =>
      all.get(`mailroom_smtp_enhanced_status_total{relay="smtp-eu",enhanced="${e}"}`);
    assert.equal(reply('rcpt', '550'), 1);
    assert.equal(reply('rcpt', '450'), 1);
    assert.equal(reply('data', '250'), 1);
    assert.equal(reply('mail', '5xx'), 1);
    assert.equal(enhanced('5.1.1'), 1);
    assert.equal(enhanced('4.7.28'), 1);
    assert.equal(enhanced('none'), 1);
    assert.equal(enhanced('5.other'), 1);
    assert.equal(sum(all, 'mailroom_smtp_replies_total'), 4);
    assert.equal(sum(all, 'mailroom_smtp_enhanced_status_total'), 4, 'both counters see the same replies');
  });

  it('reads the pool and the circuit at each scrape', async () => {
    const { registry, metrics } = fresh();
    let inFlight = 0;
    let open = true;
    metrics.trackPool({ size: 5, inFlight: () => inFlight, openConnections: () => 3 });
    metrics.trackCircuit(() => open);
    inFlight = 12;
    let all = await samples(registry);
    assert.equal(all.get('mailroom_smtp_pool_size{relay="smtp-eu"}'), 5);
    assert.equal(all.get('mailroom_smtp_sends_in_flight{relay="smtp-eu"}'), 12);
    assert.equal(all.get('mailroom_smtp_pool_connections{relay="smtp-eu"}'), 3);
    assert.equal(all.get('mailroom_relay_circuit_open{relay="smtp-eu"}'), 1);
    open = false;
    inFlight = 0;
    all = await samples(registry);
    assert.equal(all.get('mailroom_relay_circuit_open{relay="smtp-eu"}'), 0);
    assert.equal(all.get('mailroom_smtp_sends_in_flight{relay="smtp-eu"}'), 0);
  });

  it('leaves out open connections when the sender cannot tell them', async () => {
    const { registry, metrics } = fresh();
    metrics.trackPool({ size: 5, inFlight: () => 1 });
    const all = await samples(registry);
    assert.equal(of(all, 'mailroom_smtp_pool_connections').length, 0);
    assert.equal(all.get('mailroom_smtp_sends_in_flight{relay="smtp-eu"}'), 1);
  });

  it('labels the relay `default` unless named, and uses the default domain list', async () => {
    const registry = new Registry();
    const metrics = createWorkerMetrics({ registry, version: '1', defaultMetrics: false });
    metrics.observeAttempt({ result: 'delivered', replyClass: '2xx', to: 'a@yahoo.com', seconds: 0 });
    const all = await samples(registry);
    assert.equal(
      all.get(
        'mailroom_delivery_attempts_total{result="delivered",reply_class="2xx",relay="default",domain="yahoo.com"}',
      ),
      1,
    );
    assert.equal(metrics.relay, 'default');
  });

  it('shares a registry with the queue gauges, which start at 0 for every queue and state', async () => {
    const { registry } = fresh();
    const queue = createQueueMetrics({ registry, queues: ['mail', 'bulk'] });
    queue.jobs.set({ queue: 'mail', state: 'waiting' }, 7);
    const all = await samples(registry);
    assert.equal(of(all, 'mailroom_queue_jobs').length, 2 * QUEUE_JOB_STATES.length);
    assert.equal(of(all, 'mailroom_queue_oldest_job_age_seconds').length, 2 * QUEUE_AGE_STATES.length);
    assert.equal(all.get('mailroom_queue_jobs{queue="mail",state="waiting"}'), 7);
    assert.equal(all.get('mailroom_queue_jobs{queue="bulk",state="failed"}'), 0);
    assert.equal(all.get('mailroom_queue_paused{queue="bulk"}'), 0);
    assert.equal(all.get('mailroom_messages_overdue'), 0);
    assert.throws(() => createQueueMetrics({ registry, queues: ['mail'] }), /already been registered/);
  });
});
