export * from './worker-metrics.js';
export * from './queue-metrics.js';
export * from './feedback-metrics.js';
export * from './metric-domains.js';
export * from './smtp-reply-labels.js';
export { Registry } from 'prom-client';
