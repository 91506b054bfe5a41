import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';

/** Terminal states a message can end in; the sum over them is "messages finished". */
export const TERMINAL_OUTCOMES = [
  'delivered',
  'bounced',
  'expired',
  'suppressed',
  'cancelled',
  'failed',
  'ambiguous',
] as const;
export type TerminalOutcome = (typeof TERMINAL_OUTCOMES)[number];

/** What one SMTP attempt led to. `deferred` retries later; `error` means no SMTP reply at all. */
export const ATTEMPT_RESULTS = ['delivered', 'deferred', 'bounced', 'error', 'paused'] as const;
export type AttemptResult = (typeof ATTEMPT_RESULTS)[number];

/** Reply classes (reliability.md 6.4): SMTP reply families and the kinds of failure without a reply. */
export const REPLY_CLASSES = [
  '2xx',
  '4xx',
  '5xx',
  'net',
  'tls',
  'auth',
  'dns',
  'timeout',
  'ambiguous',
] as const;
export type ReplyClassLabel = (typeof REPLY_CLASSES)[number];

export interface WorkerMetricsOptions {
  /** Registry the metrics are registered on; nothing is registered globally. */
  registry: Registry;
  /** Mailroom version for mailroom_build_info. */
  version: string;
  /** Also collect prom-client's default process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
}

/** The metrics a delivery worker exports. Every label value comes from a fixed list above. */
export interface WorkerMetrics {
  readonly terminal: Counter<'outcome'>;
  readonly attempts: Counter<'result' | 'reply_class'>;
  readonly sendDuration: Histogram<'result'>;
  readonly jobsActive: Gauge;
  readonly concurrency: Gauge;
  readonly redisConnected: Gauge;
  readonly configFaults: Counter<'reason'>;
  readonly duplicatesSuppressed: Counter;
  readonly duplicatesDelivered: Counter;
  readonly ambiguous: Counter<'action'>;
  readonly ledgerWriteRetries: Counter;
  readonly reconcilerRepairs: Counter<'reason'>;
  readonly overdue: Gauge;
  readonly watchdogTrips: Counter;
}

const SEND_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export function createWorkerMetrics(options: WorkerMetricsOptions): WorkerMetrics {
  const registers = [options.registry];
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: options.registry });

  const buildInfo = new Gauge({
    name: 'mailroom_build_info',
    help: 'Always 1; labels carry the Mailroom and Node.js versions.',
    labelNames: ['version', 'node_version'],
    registers,
  });
  buildInfo.set({ version: options.version, node_version: process.versions.node }, 1);

  const terminal = new Counter({
    name: 'mailroom_messages_terminal_total',
    help: 'Messages that reached a terminal state, by outcome. Exactly one increment per accepted message.',
    labelNames: ['outcome'],
    registers,
  });
  for (const outcome of TERMINAL_OUTCOMES) terminal.inc({ outcome }, 0);

  const attempts = new Counter({
    name: 'mailroom_delivery_attempts_total',
    help: 'SMTP delivery attempts by result and reply class.',
    labelNames: ['result', 'reply_class'],
    registers,
  });
  for (const result of ATTEMPT_RESULTS) {
    for (const replyClass of REPLY_CLASSES) attempts.inc({ result, reply_class: replyClass }, 0);
  }

  const sendDuration = new Histogram({
    name: 'mailroom_smtp_send_duration_seconds',
    help: 'Duration of one SMTP transaction on a pooled connection, by result.',
    labelNames: ['result'],
    buckets: SEND_BUCKETS,
    registers,
  });
  for (const result of ATTEMPT_RESULTS) sendDuration.zero({ result });

  const jobsActive = new Gauge({
    name: 'mailroom_worker_jobs_active',
    help: 'Jobs being processed by this worker now.',
    registers,
  });
  const concurrency = new Gauge({
    name: 'mailroom_worker_concurrency',
    help: 'Configured job concurrency of this worker.',
    registers,
  });
  const redisConnected = new Gauge({
    name: 'mailroom_redis_connected',
    help: '1 while the worker has a ready Redis connection.',
    registers,
  });
  const configFaults = new Counter({
    name: 'mailroom_relay_config_faults_total',
    help: 'Relay configuration faults (AUTH, TLS, relay denied, unresolvable host) that paused sending.',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of ['auth', 'tls', 'dns', 'policy']) configFaults.inc({ reason }, 0);

  const duplicatesSuppressed = new Counter({
    name: 'mailroom_duplicates_suppressed_total',
    help: 'Jobs that found their message already finished in the ledger and sent nothing.',
    registers,
  });
  const duplicatesDelivered = new Counter({
    name: 'mailroom_duplicates_delivered_total',
    help: 'Messages the relay accepted again after an earlier attempt had already finished them.',
    registers,
  });
  const ambiguous = new Counter({
    name: 'mailroom_ambiguous_total',
    help: 'Attempts that sent the whole body and got no reply (RFC 1047), by what the policy did.',
    labelNames: ['action'],
    registers,
  });
  for (const action of ['resent', 'stopped']) ambiguous.inc({ action }, 0);
  const ledgerWriteRetries = new Counter({
    name: 'mailroom_ledger_write_retries_total',
    help: 'Ledger writes retried after a Redis error (a send is never failed for it).',
    registers,
  });
  const reconcilerRepairs = new Counter({
    name: 'mailroom_reconciler_repairs_total',
    help: 'Corrections made by the reconciler, by reason. Must stay 0 in a healthy system.',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of ['job_missing', 'job_failed', 'enqueue_incomplete']) reconcilerRepairs.inc({ reason }, 0);
  const overdue = new Gauge({
    name: 'mailroom_messages_overdue',
    help: 'Messages past their max age without a terminal state (reconciler role only). Must be 0.',
    registers,
  });
  const watchdogTrips = new Counter({
    name: 'mailroom_worker_watchdog_trips_total',
    help: 'Times the watchdog found this worker idle while jobs were waiting.',
    registers,
  });

  return {
    terminal,
    attempts,
    sendDuration,
    jobsActive,
    concurrency,
    redisConnected,
    configFaults,
    duplicatesSuppressed,
    duplicatesDelivered,
    ambiguous,
    ledgerWriteRetries,
    reconcilerRepairs,
    overdue,
    watchdogTrips,
  };
}
