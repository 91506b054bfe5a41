import { Counter, collectDefaultMetrics, type Registry } from 'prom-client';
import {
  DEFAULT_METRIC_DOMAINS,
  createDomainLabeler,
  domainLabelValues,
  type DomainLabeler,
} from './metric-domains.js';
import { FEEDBACK_EVENT_TYPES, type FeedbackEventType } from './worker-metrics.js';

export interface FeedbackMetricsOptions {
  /** Registry the metrics are registered on; nothing is registered globally. */
  registry: Registry;
  /**
   * Recipient domains counted under their own `domain` label (default {@link DEFAULT_METRIC_DOMAINS}), the
   * same list as the workers'; every other domain is `other`. At most 25; see `metricDomainProblems`.
   */
  domains?: readonly string[];
  /** Also collect prom-client's default process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
}

/**
 * What a mail to the unsubscribe address (List-Unsubscribe's `mailto:`) led to: the same list as
 * @mailroom/feedback's UNSUBSCRIBE_MAIL_OUTCOMES.
 */
export const UNSUBSCRIBE_MAIL_OUTCOMES = [
  'unsubscribed',
  'already_suppressed',
  'no_token',
  'invalid_token',
] as const;
export type UnsubscribeMailOutcome = (typeof UNSUBSCRIBE_MAIL_OUTCOMES)[number];

/** The metrics of the inbound feedback receiver (`mailroom inbound`). */
export interface FeedbackMetrics {
  /** The `domain` label of a recipient address. */
  readonly domainOf: DomainLabeler;
  /** A report was recorded against its message (duplicates are not counted). */
  observeFeedback(type: FeedbackEventType, to?: string): void;
  readonly feedbackEvents: Counter<'type' | 'domain'>;
  /** A mail to the unsubscribe address was handled. */
  observeUnsubscribeMail(outcome: UnsubscribeMailOutcome): void;
  readonly unsubscribeMails: Counter<'outcome'>;
}

/**
 * `mailroom_feedback_events_total`, defined exactly as the workers define it (name, help, labels, series
 * created at 0), so that sums over every process of a deployment, and the complaint and bounce ratio rules,
 * count the receiver's events with the workers'.
 */
export function createFeedbackMetrics(options: FeedbackMetricsOptions): FeedbackMetrics {
  const domainList = options.domains ?? DEFAULT_METRIC_DOMAINS;
  const domainOf = createDomainLabeler(domainList);
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: options.registry });
  const feedbackEvents = new Counter({
    name: 'mailroom_feedback_events_total',
    help: 'Out-of-band reports about sent mail (ARF complaints, DSN bounces and delays) by type and recipient domain.',
    labelNames: ['type', 'domain'],
    registers: [options.registry],
  });
  for (const type of FEEDBACK_EVENT_TYPES) {
    for (const domain of domainLabelValues(domainList)) feedbackEvents.inc({ type, domain }, 0);
  }
  // The receiver's own: no recipient domain (an invalid token names nobody); workers never see these mails.
  const unsubscribeMails = new Counter({
    name: 'mailroom_unsubscribe_mails_total',
    help: 'Mails to the List-Unsubscribe mailto address by outcome: unsubscribed, already_suppressed, no_token, invalid_token.',
    labelNames: ['outcome'],
    registers: [options.registry],
  });
  for (const outcome of UNSUBSCRIBE_MAIL_OUTCOMES) unsubscribeMails.inc({ outcome }, 0);
  return {
    domainOf,
    observeFeedback(type, to) {
      feedbackEvents.inc({ type, domain: domainOf(to) });
    },
    feedbackEvents,
    observeUnsubscribeMail(outcome) {
      unsubscribeMails.inc({ outcome });
    },
    unsubscribeMails,
  };
}
