import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * What one request to an endpoint came to. Every delivery ends with exactly one of `delivered`, `gone` and
 * `failed`; `retry` counts the tries before that.
 * - `delivered`: a 2xx answer;
 * - `retry`: another status, a timeout or a network error, tried again later;
 * - `gone`: 410 Gone, not tried again (the delivery is kept as a failed job);
 * - `failed`: a retryable failure with no time left in the endpoint's retry window.
 */
export const WEBHOOK_DELIVERY_RESULTS = ['delivered', 'retry', 'gone', 'failed'] as const;
export type WebhookDeliveryResult = (typeof WEBHOOK_DELIVERY_RESULTS)[number];

/**
 * Why events never reached the queue: `buffer_full` (Redis slow or down and the process's buffer full),
 * `shutdown` (still unqueued when the emitter's close deadline passed, or emitted after close), `error`
 * (an event that could not be taken at all, a bug).
 */
export const WEBHOOK_DROP_REASONS = ['buffer_full', 'shutdown', 'error'] as const;
export type WebhookDropReason = (typeof WEBHOOK_DROP_REASONS)[number];

export interface WebhookMetricsOptions {
  /** Registry the metrics are registered on; nothing is registered globally. */
  registry: Registry;
  /** Every configured endpoint name (the `endpoint` label values; never a URL). */
  endpoints: readonly string[];
}

export interface WebhookMetrics {
  readonly deliveries: Counter<'endpoint' | 'result'>;
  readonly deliverySeconds: Histogram<'endpoint'>;
  readonly dropped: Counter<'reason'>;
  readonly buffered: Gauge;
}

/** The webhook metrics of one process (emitter and dispatcher share them). */
export function createWebhookMetrics(options: WebhookMetricsOptions): WebhookMetrics {
  const registers = [options.registry];
  const deliveries = new Counter({
    name: 'mailroom_webhook_deliveries_total',
    help: 'Webhook requests by endpoint name and result: delivered (2xx), retry (other status, timeout, network error), gone (410, not retried), failed (retry window over).',
    labelNames: ['endpoint', 'result'],
    registers,
  });
  const deliverySeconds = new Histogram({
    name: 'mailroom_webhook_delivery_seconds',
    help: 'Duration of one webhook request, from sending it to the end of the response (or the timeout).',
    labelNames: ['endpoint'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const dropped = new Counter({
    name: 'mailroom_webhook_events_dropped_total',
    help: 'Webhook events that never reached the queue: buffer_full (Redis slow or down), shutdown, error. Must stay 0.',
    labelNames: ['reason'],
    registers,
  });
  const buffered = new Gauge({
    name: 'mailroom_webhook_buffered_events',
    help: 'Webhook events held in this process, not yet confirmed in the queue (bounded by the emitter).',
    registers,
  });
  for (const endpoint of options.endpoints) {
    for (const result of WEBHOOK_DELIVERY_RESULTS) deliveries.inc({ endpoint, result }, 0);
    deliverySeconds.zero({ endpoint });
  }
  for (const reason of WEBHOOK_DROP_REASONS) dropped.inc({ reason }, 0);
  return { deliveries, deliverySeconds, dropped, buffered };
}
