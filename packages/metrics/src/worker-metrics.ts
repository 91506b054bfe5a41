import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import {
  DEFAULT_METRIC_DOMAINS,
  createDomainLabeler,
  domainLabelValues,
  type DomainLabeler,
} from './metric-domains.js';
import {
  ENHANCED_STATUS_LABELS,
  SMTP_REPLY_CODES,
  SMTP_STAGES,
  enhancedStatusLabel,
  replyCodeLabel,
  smtpStageLabel,
} from './smtp-reply-labels.js';

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

/**
 * The reply classes each attempt result comes with; these pairs start at 0. Other pairs are still counted
 * (both labels stay within their lists) but appear on first use.
 */
export const ATTEMPT_REPLY_CLASSES: Readonly<Record<AttemptResult, readonly ReplyClassLabel[]>> = {
  delivered: ['2xx'],
  deferred: ['4xx', '5xx'],
  bounced: ['5xx', 'ambiguous'],
  error: ['net', 'tls', 'auth', 'dns', 'timeout', 'ambiguous'],
  paused: ['4xx', '5xx', 'tls', 'auth', 'dns', 'ambiguous'],
};

/**
 * Who held a send back: `relay` when the relay answered "slow down" (421/450 4.7.x, rate wording) and the
 * message waits for its retry; `local` when a Mailroom limiter held it before any connection.
 */
export const RATE_LIMIT_SCOPES = ['relay', 'local'] as const;
export type RateLimitScope = (typeof RATE_LIMIT_SCOPES)[number];

/** Out-of-band signals about sent mail: ARF complaints, asynchronous DSN bounces and delay notices. */
export const FEEDBACK_EVENT_TYPES = ['complaint', 'hard_bounce', 'soft_bounce', 'delay'] as const;
export type FeedbackEventType = (typeof FEEDBACK_EVENT_TYPES)[number];

export interface WorkerMetricsOptions {
  /** Registry the metrics are registered on; nothing is registered globally. */
  registry: Registry;
  /** Mailroom version for mailroom_build_info. */
  version: string;
  /** The relay's configured name, the value of every `relay` label (default `default`). Never a host. */
  relay?: string;
  /**
   * Every configured relay name (default: [`relay`]); observations name theirs and default to the first.
   * Never a host.
   */
  relays?: readonly string[];
  /** Configured domain groups (rate-limit scopes such as gmail, microsoft), for the current-rate gauge. */
  domainGroups?: readonly string[];
  /**
   * Recipient domains counted under their own `domain` label (default {@link DEFAULT_METRIC_DOMAINS});
   * every other domain is `other`. At most 25; see `metricDomainProblems`.
   */
  domains?: readonly string[];
  /** Also collect prom-client's default process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
}

/** One SMTP attempt, as the processor saw it. */
export interface AttemptObservation {
  readonly result: AttemptResult;
  /** One of {@link REPLY_CLASSES}; anything else is counted as `ambiguous`. */
  readonly replyClass: string;
  /** The recipient address; only its domain is used, as a listed domain or `other`. */
  readonly to?: string | undefined;
  /** Duration of the SMTP transaction, in seconds. */
  readonly seconds: number;
  /** The relay it went to (default: the first configured relay). */
  readonly relay?: string | undefined;
}

/** One SMTP reply: the one an attempt failed on, or the reply to the final dot. */
export interface ReplyObservation {
  /** The command it answered, as the senders name it (`RCPT TO`, `DATA`, ...). */
  readonly command?: string | undefined;
  readonly code?: number | undefined;
  /** The RFC 3463 status, e.g. `4.7.28`. */
  readonly enhanced?: string | undefined;
  /** The relay that sent it (default: the first configured relay). */
  readonly relay?: string | undefined;
}

/** The message a terminal outcome belongs to, when it is known. */
export interface TerminalObservation {
  /** The recipient address, for the `domain` label. */
  readonly to?: string | undefined;
  /** When the message was accepted (ms since the epoch), for mailroom_delivery_delay_seconds. */
  readonly acceptedAt?: number | undefined;
  /** The moment it finished (ms since the epoch; default now). */
  readonly now?: number | undefined;
}

/** How the relay pool is read at each scrape. */
export interface PoolProbe {
  /** Configured connections per process (MAILROOM_SMTP_MAX_CONNECTIONS). */
  readonly size: number;
  /** Messages handed to the pool and not answered yet (on a connection or waiting for one). */
  readonly inFlight: () => number;
  /** Connections open now; only for senders that can tell (the pipelining sender can). */
  readonly openConnections?: () => number;
}

/** The metrics a delivery worker exports. Every label value comes from a fixed list. */
export interface WorkerMetrics {
  /** The `relay` label value of this worker. */
  readonly relay: string;
  /** The `domain` label of a recipient address. */
  readonly domainOf: DomainLabeler;

  /** A message reached a terminal state (`count` messages at once, e.g. from the reconciler). */
  observeTerminal(outcome: TerminalOutcome, message?: TerminalObservation, count?: number): void;
  /** An SMTP attempt ended: counted by result, reply class, relay and domain; its duration observed. */
  observeAttempt(attempt: AttemptObservation): void;
  /** An SMTP reply: counted by stage and code, and by enhanced status. Text never becomes a label. */
  observeReply(reply: ReplyObservation): void;
  /** A send was held back by a rate limit for `seconds`. */
  observeRateLimitWait(wait: { scope: RateLimitScope; seconds: number; to?: string | undefined }): void;
  /** A complaint, asynchronous bounce or delay notice arrived about a message sent to `to`. */
  observeFeedback(type: FeedbackEventType, to?: string): void;
  /** Reads a relay's pool at every scrape (size, sends in flight, open connections). */
  trackPool(pool: PoolProbe, relay?: string): void;
  /** Reads a relay's circuit at every scrape: open while sending to it is paused (faults, bad credentials). */
  trackCircuit(isOpen: () => boolean, relay?: string): void;
  /**
   * Reads the current allowed rate (messages per second, after adaptive cuts) of each limited relay and
   * domain group at every scrape; a scope without a limit reads as absent (no sample).
   */
  trackRates(read: () => ReadonlyMap<string, number>, scope: 'relay' | 'domain_group'): void;
  /** A message went to another relay after its first choice failed before the body (no attempt spent). */
  observeReroute(from: string): void;

  readonly terminal: Counter<'outcome' | 'domain'>;
  readonly attempts: Counter<'result' | 'reply_class' | 'relay' | 'domain'>;
  readonly replies: Counter<'relay' | 'stage' | 'code'>;
  readonly enhancedStatus: Counter<'relay' | 'enhanced'>;
  readonly sendDuration: Histogram<'relay' | 'result'>;
  readonly deliveryDelay: Histogram<'outcome'>;
  readonly rateLimitWaits: Counter<'scope' | 'domain'>;
  readonly rateLimitWaitSeconds: Histogram<'scope'>;
  readonly feedbackEvents: Counter<'type' | 'domain'>;
  readonly poolSize: Gauge<'relay'>;
  readonly sendsInFlight: Gauge<'relay'>;
  readonly poolConnections: Gauge<'relay'>;
  readonly circuitOpen: Gauge<'relay'>;
  readonly currentRate: Gauge<'scope' | 'name'>;
  readonly reroutes: Counter<'relay'>;
  readonly jobsActive: Gauge;
  readonly concurrency: Gauge;
  readonly redisConnected: Gauge;
  readonly configFaults: Counter<'reason'>;
  readonly duplicatesSuppressed: Counter;
  readonly duplicatesDelivered: Counter;
  readonly ambiguous: Counter<'action'>;
  readonly ledgerWriteRetries: Counter;
  readonly reconcilerRepairs: Counter<'reason'>;
  /**
   * @deprecated The queue-gauge role exports `mailroom_messages_overdue` (see createQueueMetrics), so
   * scaled workers do not repeat it. This gauge is registered nowhere; setting it has no effect.
   */
  readonly overdue: Gauge;
  readonly watchdogTrips: Counter;
}

const SEND_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Acceptance to terminal state: from a local relay's milliseconds to a retried message's days. */
const DELIVERY_DELAY_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600, 86400, 259200];
const RATE_LIMIT_WAIT_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600];

const REPLY_CLASS_SET = new Set<string>(REPLY_CLASSES);

export function createWorkerMetrics(options: WorkerMetricsOptions): WorkerMetrics {
  const registers = [options.registry];
  const relays = options.relays && options.relays.length > 0 ? options.relays : [options.relay ?? 'default'];
  const relay = relays[0]!;
  const relaySet = new Set(relays);
  /** A configured relay name, or the first one: never a free-form value. */
  const relayOf = (name: string | undefined): string =>
    name !== undefined && relaySet.has(name) ? name : relay;
  const domainList = options.domains ?? DEFAULT_METRIC_DOMAINS;
  const domainOf = createDomainLabeler(domainList);
  const domains = domainLabelValues(domainList);
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
    help: 'Messages that reached a terminal state, by outcome and recipient domain (a listed domain or other). Exactly one increment per accepted message.',
    labelNames: ['outcome', 'domain'],
    registers,
  });
  for (const outcome of TERMINAL_OUTCOMES) for (const domain of domains) terminal.inc({ outcome, domain }, 0);

  const attempts = new Counter({
    name: 'mailroom_delivery_attempts_total',
    help: 'SMTP delivery attempts by result, reply class (2xx/4xx/5xx, or the failure without a reply), relay and recipient domain.',
    labelNames: ['result', 'reply_class', 'relay', 'domain'],
    registers,
  });
  for (const result of ATTEMPT_RESULTS) {
    for (const replyClass of ATTEMPT_REPLY_CLASSES[result]) {
      for (const r of relays)
        for (const domain of domains) attempts.inc({ result, reply_class: replyClass, relay: r, domain }, 0);
    }
  }

  const replies = new Counter({
    name: 'mailroom_smtp_replies_total',
    help: 'SMTP replies by the stage they answered and their code (allowlisted, else the class such as 4xx): every reply an attempt failed on, and every reply to the final dot.',
    labelNames: ['relay', 'stage', 'code'],
    registers,
  });
  for (const stage of SMTP_STAGES) {
    for (const code of [...SMTP_REPLY_CODES, '2xx', '3xx', '4xx', '5xx'])
      for (const r of relays) replies.inc({ relay: r, stage, code }, 0);
  }

  const enhancedStatus = new Counter({
    name: 'mailroom_smtp_enhanced_status_total',
    help: 'The same SMTP replies by RFC 3463 enhanced status: registered codes as themselves, others as N.other, none without one.',
    labelNames: ['relay', 'enhanced'],
    registers,
  });
  for (const enhanced of ENHANCED_STATUS_LABELS)
    for (const r of relays) enhancedStatus.inc({ relay: r, enhanced }, 0);

  const sendDuration = new Histogram({
    name: 'mailroom_smtp_send_duration_seconds',
    help: 'Time from handing a message to the relay pool until the attempt ended (a wait for a free connection included), by relay and result.',
    labelNames: ['relay', 'result'],
    buckets: SEND_BUCKETS,
    registers,
  });
  for (const result of ATTEMPT_RESULTS) for (const r of relays) sendDuration.zero({ relay: r, result });

  const deliveryDelay = new Histogram({
    name: 'mailroom_delivery_delay_seconds',
    help: 'Time from acceptance (the producer was answered) to the terminal state, by outcome.',
    labelNames: ['outcome'],
    buckets: DELIVERY_DELAY_BUCKETS,
    registers,
  });
  for (const outcome of TERMINAL_OUTCOMES) deliveryDelay.zero({ outcome });

  const rateLimitWaits = new Counter({
    name: 'mailroom_rate_limit_waits_total',
    help: 'Sends held back by a rate limit: scope relay (the relay said slow down) or local (a Mailroom limiter), by recipient domain.',
    labelNames: ['scope', 'domain'],
    registers,
  });
  for (const scope of RATE_LIMIT_SCOPES)
    for (const domain of domains) rateLimitWaits.inc({ scope, domain }, 0);
  const rateLimitWaitSeconds = new Histogram({
    name: 'mailroom_rate_limit_wait_seconds',
    help: 'How long a send held back by a rate limit waits before it may go again, by scope.',
    labelNames: ['scope'],
    buckets: RATE_LIMIT_WAIT_BUCKETS,
    registers,
  });
  for (const scope of RATE_LIMIT_SCOPES) rateLimitWaitSeconds.zero({ scope });

  const feedbackEvents = new Counter({
    name: 'mailroom_feedback_events_total',
    help: 'Out-of-band reports about sent mail (ARF complaints, DSN bounces and delays) by type and recipient domain.',
    labelNames: ['type', 'domain'],
    registers,
  });
  for (const type of FEEDBACK_EVENT_TYPES)
    for (const domain of domains) feedbackEvents.inc({ type, domain }, 0);

  const pools = new Map<string, PoolProbe>();
  const poolSize = new Gauge({
    name: 'mailroom_smtp_pool_size',
    help: 'SMTP connections this process may open to the relay (its maxConnections).',
    labelNames: ['relay'],
    registers,
    collect() {
      for (const r of relays) this.set({ relay: r }, pools.get(r)?.size ?? 0);
    },
  });
  const sendsInFlight = new Gauge({
    name: 'mailroom_smtp_sends_in_flight',
    help: 'Messages handed to the relay pool and not answered yet (on a connection or waiting for one); above the pool size, sends queue for a connection.',
    labelNames: ['relay'],
    registers,
    collect() {
      for (const r of relays) this.set({ relay: r }, pools.get(r)?.inFlight() ?? 0);
    },
  });
  const poolConnections = new Gauge({
    name: 'mailroom_smtp_pool_connections',
    help: 'SMTP connections open to the relay now (only from senders that report it).',
    labelNames: ['relay'],
    registers,
    collect() {
      for (const [r, pool] of pools) if (pool.openConnections) this.set({ relay: r }, pool.openConnections());
    },
  });
  const circuits = new Map<string, () => boolean>();
  const circuitOpen = new Gauge({
    name: 'mailroom_relay_circuit_open',
    help: '1 while sending to the relay is paused: its circuit opened after repeated connection failures, or a configuration fault (AUTH, TLS, relay denied).',
    labelNames: ['relay'],
    registers,
    collect() {
      for (const r of relays) this.set({ relay: r }, circuits.get(r)?.() === true ? 1 : 0);
    },
  });
  const rateReaders = new Map<'relay' | 'domain_group', () => ReadonlyMap<string, number>>();
  const rateNames = { relay: new Set(relays), domain_group: new Set(options.domainGroups ?? []) };
  const currentRate = new Gauge({
    name: 'mailroom_rate_limit_current_per_second',
    help: 'Messages per second a limited relay or domain group may take now, cluster-wide: its configured limit, lowered after throttling replies and recovering step by step.',
    labelNames: ['scope', 'name'],
    registers,
    collect() {
      this.reset();
      for (const [scope, read] of rateReaders) {
        for (const [name, rate] of read()) if (rateNames[scope].has(name)) this.set({ scope, name }, rate);
      }
    },
  });
  const reroutes = new Counter({
    name: 'mailroom_relay_reroutes_total',
    help: 'Messages moved to another relay after this relay failed before the body was sent (no attempt spent).',
    labelNames: ['relay'],
    registers,
  });
  for (const r of relays) reroutes.inc({ relay: r }, 0);

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
  for (const reason of ['job_missing', 'job_failed', 'enqueue_incomplete'])
    reconcilerRepairs.inc({ reason }, 0);
  const overdue = new Gauge({
    name: 'mailroom_messages_overdue',
    help: 'Not exported by workers: see the queue-gauge role.',
    registers: [],
  });
  const watchdogTrips = new Counter({
    name: 'mailroom_worker_watchdog_trips_total',
    help: 'Times the watchdog found this worker idle while jobs were waiting.',
    registers,
  });

  return {
    relay,
    domainOf,
    observeTerminal(outcome, message = {}, count = 1) {
      terminal.inc({ outcome, domain: domainOf(message.to) }, count);
      if (message.acceptedAt !== undefined) {
        const seconds = Math.max(0, ((message.now ?? Date.now()) - message.acceptedAt) / 1000);
        for (let i = 0; i < count; i += 1) deliveryDelay.observe({ outcome }, seconds);
      }
    },
    observeAttempt(attempt) {
      const replyClass = REPLY_CLASS_SET.has(attempt.replyClass) ? attempt.replyClass : 'ambiguous';
      const r = relayOf(attempt.relay);
      attempts.inc({
        result: attempt.result,
        reply_class: replyClass,
        relay: r,
        domain: domainOf(attempt.to),
      });
      sendDuration.observe({ relay: r, result: attempt.result }, Math.max(0, attempt.seconds));
    },
    observeReply(reply) {
      const code = replyCodeLabel(reply.code);
      if (code === undefined) return;
      const r = relayOf(reply.relay);
      replies.inc({ relay: r, stage: smtpStageLabel(reply.command), code });
      enhancedStatus.inc({ relay: r, enhanced: enhancedStatusLabel(reply.enhanced) });
    },
    observeRateLimitWait(wait) {
      rateLimitWaits.inc({ scope: wait.scope, domain: domainOf(wait.to) });
      rateLimitWaitSeconds.observe({ scope: wait.scope }, Math.max(0, wait.seconds));
    },
    observeFeedback(type, to) {
      feedbackEvents.inc({ type, domain: domainOf(to) });
    },
    trackPool(probe, name) {
      pools.set(relayOf(name), probe);
    },
    trackCircuit(isOpen, name) {
      circuits.set(relayOf(name), isOpen);
    },
    trackRates(read, scope) {
      rateReaders.set(scope, read);
    },
    observeReroute(from) {
      reroutes.inc({ relay: relayOf(from) });
    },
    terminal,
    attempts,
    replies,
    enhancedStatus,
    sendDuration,
    deliveryDelay,
    rateLimitWaits,
    rateLimitWaitSeconds,
    feedbackEvents,
    poolSize,
    sendsInFlight,
    poolConnections,
    circuitOpen,
    currentRate,
    reroutes,
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
